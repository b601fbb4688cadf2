"""``/account/security``: the password and one-time codes; ``/account/cancel``.

Changing the password needs the current one and ends every other session.
TOTP is set up in two steps (a QR code and key, then a first code), shows
the recovery codes once, and is turned off only after a fresh sign-in, as
is cancelling the membership: a stolen session alone can do neither."""

from __future__ import annotations

import datetime as dt

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.account import require_signed_in
from consent_ui.context import SignedIn, page, settings, signed_in
from consent_ui.i18n import N_
from idp import clock, cookies, membership, otp, recovery
from idp.errors import InvalidCredentialsError, NotAllowedError, OtpError, UsageError

RECENT_SIGN_IN = dt.timedelta(minutes=5)

_NOTICES = {
    "password": N_("Your password is changed. Every other device is signed out."),
    "removed": N_("One-time codes are off."),
}


def _me() -> SignedIn:
    me = signed_in()
    assert me is not None  # noqa: S101 - the caller checked require_signed_in()
    return me


def _security_page(status: int = 200, **context: object) -> Response:
    me = _me()
    on = otp.has_totp(me.member.id)
    return page(
        "security.html",
        status,
        totp_on=on,
        codes_left=otp.recovery_codes_left(me.member.id) if on else None,
        notice=_NOTICES.get(request.args.get("done", "")),
        **context,
    )


@bp.get("/account/security")
def security_page() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    return _security_page()


@bp.post("/account/security/password")
def change_password() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = _me()
    try:
        recovery.change_password(
            me.member.id,
            session_id=me.session.id,
            current=request.form.get("current_password", ""),
            new=request.form.get("new_password", ""),
        )
    except (InvalidCredentialsError, UsageError) as e:
        return _security_page(400, error=e.description)
    return redirect(settings().url("/account/security?done=password"), 303)


@bp.post("/account/security/totp")
def totp_setup() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = _me()
    try:
        setup = otp.begin_setup(me.member.id, username=me.member.username)
    except UsageError as e:
        return _security_page(400, error=e.description)
    svg = setup.svg.replace(
        "<svg", '<svg id="totp-qr" class="qr" role="img" aria-label="QR code for your app"', 1
    )
    return _security_page(setup={"svg": svg, "secret": setup.secret})


@bp.post("/account/security/totp/confirm")
def totp_confirm() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    try:
        codes = otp.confirm_setup(_me().member.id, request.form.get("otp", ""))
    except OtpError as e:
        return _security_page(400, error=e.description)
    return _security_page(recovery_codes=codes)


@bp.post("/account/security/totp/remove")
def totp_remove() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = _me()
    if clock.now() - me.session.auth_time > RECENT_SIGN_IN:
        return redirect(settings().url("/login?next=/account/security"), 303)
    otp.remove(me.member.id)
    return redirect(settings().url("/account/security?done=removed"), 303)


def _fresh(me: SignedIn) -> bool:
    return clock.now() - me.session.auth_time <= membership.RECENT_SIGN_IN


@bp.get("/account/cancel")
def cancel_page() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    return page("cancel.html", fresh=_fresh(_me()))


@bp.post("/account/cancel")
def cancel_submit() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = _me()
    try:
        membership.cancel(me.member.id, session_id=me.session.id)
    except NotAllowedError as e:
        return page("cancel.html", 403, fresh=False, error=e.description)
    response = page("cancelled.html", me=None)
    cookies.clear_session(response, settings())
    return response
