"""Easy Login with passkeys: sign-in on ``/login`` and the ``/account/passkeys`` page.

The browser side is ``static/webauthn.js`` (ours, no CDN); it sends the CSRF
token in ``X-CSRFToken`` on every POST, which Flask-WTF checks before these
views run.  Registering a passkey needs a sign-in of the last few minutes:
a stolen session alone must not be able to add its own key to the account.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from flask import jsonify, redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.account import require_signed_in
from consent_ui.context import json_object, page, refusal, safe_next, settings, signed_in
from consent_ui.i18n import N_
from consent_ui.signin import browser, set_signed_in
from idp import clock, passkeys, runtime, signin
from idp.errors import (
    InteractionError,
    NotFoundError,
    PasskeyError,
    RateLimitedError,
    SignInError,
    UsageError,
)
from idp.ratelimit import ceremony_key, ceremony_limit, failures, limiter, request_ip

RECENT_SIGN_IN = dt.timedelta(minutes=5)

# A passkey's number in a path: at most what its column holds on PostgreSQL
# (``integer``); a larger one matches no route (404) instead of reaching the
# database as a number it refuses.
_PASSKEY_ID = "int(max=2147483647)"


# --- sign-in ------------------------------------------------------------------------


@bp.post("/login/passkey/options")
@limiter.limit(ceremony_limit, key_func=ceremony_key)
def passkey_signin_options() -> Response:
    """A challenge for any passkey of this site (no user ID needed)."""
    return jsonify({"publicKey": passkeys.authentication_options()})


@bp.post("/login/passkey")
def passkey_signin() -> Response:
    body = json_object()
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return refusal(N_("The passkey answer is missing."))
    response = jsonify({})
    rate = runtime.current().settings.ratelimit.signin
    try:
        completed = signin.with_passkey(
            credential=credential,
            remember=bool(body.get("remember")),
            browser=browser(response),
            interaction=str(body.get("interaction") or "") or None,
            next_path=safe_next(str(body.get("next") or "")),
        )
    except PasskeyError as e:
        # A refused assertion counts as a failed sign-in from this address.
        try:
            failures().refuse_if_over(rate, f"signin-ip|{request_ip()}")
        except RateLimitedError as limited:
            return refusal(limited.description, 429)
        return refusal(e.description)
    except (InteractionError, SignInError) as e:
        return refusal(e.description)
    set_signed_in(response, completed)
    response.set_data(jsonify({"redirect": completed.next_url}).get_data())
    return response


# --- the account's passkeys -------------------------------------------------------------


@bp.get("/account/passkeys")
def passkey_list() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101 - require_signed_in() returned None
    return page(
        "passkeys.html",
        items=passkeys.list_for_user(me.member.id),
        error=request.args.get("error") if request.args.get("error") == "name_required" else None,
        timezone=settings().alerts.timezone,
    )


def _recent_sign_in_required() -> Response | None:
    me = signed_in()
    if me is None:
        return refusal(
            N_("Sign in first."), 401, redirect=settings().url("/login?next=/account/passkeys")
        )
    if clock.now() - me.session.auth_time > RECENT_SIGN_IN:
        return refusal(
            N_("For your security, sign in again before adding a passkey."),
            403,
            redirect=settings().url("/login?next=/account/passkeys"),
        )
    return None


@bp.post("/account/passkeys/options")
def passkey_registration_options() -> Response:
    if (refused := _recent_sign_in_required()) is not None:
        return refused
    me = signed_in()
    assert me is not None  # noqa: S101
    return jsonify(
        {"publicKey": passkeys.registration_options(me.member, session_id=me.session.id)}
    )


@bp.post("/account/passkeys")
def passkey_register() -> Response:
    if (refused := _recent_sign_in_required()) is not None:
        return refused
    me = signed_in()
    assert me is not None  # noqa: S101
    body = json_object()
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return refusal(N_("The passkey answer is missing."))
    try:
        info = passkeys.register(
            me.member, credential, session_id=me.session.id, name=str(body.get("name") or "")
        )
    except PasskeyError as e:
        return refusal(e.description)
    return jsonify(
        {"id": info.id, "name": info.name, "redirect": settings().url("/account/passkeys")}
    )


@bp.post(f"/account/passkeys/<{_PASSKEY_ID}:passkey_id>/rename")
def passkey_rename(passkey_id: int) -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101
    try:
        passkeys.rename(me.member.id, passkey_id, request.form.get("name", ""))
    except UsageError:
        return redirect(settings().url("/account/passkeys?error=name_required"), 303)
    except NotFoundError:
        pass  # not theirs: nothing to say
    return redirect(settings().url("/account/passkeys"), 303)


@bp.post(f"/account/passkeys/<{_PASSKEY_ID}:passkey_id>/delete")
def passkey_delete(passkey_id: int) -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101
    with contextlib.suppress(NotFoundError):  # already gone, or not theirs: nothing to say
        passkeys.delete(me.member.id, passkey_id)
    return redirect(settings().url("/account/passkeys"), 303)
