"""Easy Login with passkeys: sign-in on ``/login`` and the ``/account/passkeys`` page.

The browser side is ``static/webauthn.js`` (ours, no CDN); it sends the CSRF
token in ``X-CSRFToken`` on every POST, which Flask-WTF checks before these
views run.  Registering a passkey needs a sign-in of the last few minutes:
a stolen session alone must not be able to add its own key to the account.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from flask import jsonify, redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.account import require_signed_in
from consent_ui.context import client_ip, page, refusal, settings, signed_in
from consent_ui.signin import complete_sign_in
from idp import clock, interactions, passkeys
from idp.errors import InteractionError, NotFoundError, UsageError
from idp.passkeys import PasskeyError
from idp.ratelimit import ip_key, limiter, signin_limit

RECENT_SIGN_IN = dt.timedelta(minutes=5)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


# --- sign-in ------------------------------------------------------------------------


@bp.post("/login/passkey/options")
@limiter.limit(signin_limit, key_func=ip_key)
def passkey_signin_options() -> Response:
    """A challenge for any passkey of this site (no user ID needed)."""
    return jsonify({"publicKey": passkeys.authentication_options()})


@bp.post("/login/passkey")
@limiter.limit(signin_limit, key_func=ip_key)
def passkey_signin() -> Response:
    body = _body()
    credential = body.get("credential")
    interaction = str(body.get("interaction") or "")
    if not isinstance(credential, dict):
        return refusal("The passkey answer is missing.")
    try:
        if interaction:
            interactions.load(interaction)
        member, _ = passkeys.authenticate(credential, ip=client_ip())
    except (PasskeyError, InteractionError) as e:
        return refusal(getattr(e, "message", str(e)))
    response = jsonify({})
    target = complete_sign_in(
        response,
        member_id=member.id,
        amr=list(passkeys.AMR),
        remember=bool(body.get("remember")),
        interaction=interaction or None,
        next_path=str(body.get("next") or ""),
    )
    response.set_data(jsonify({"redirect": target}).get_data())
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
        error=request.args.get("error"),
        timezone=settings().alerts.timezone,
    )


def _recent_sign_in_required() -> Response | None:
    me = signed_in()
    if me is None:
        return refusal(
            "Sign in first.", 401, redirect=settings().url("/login?next=/account/passkeys")
        )
    if clock.now() - me.session.auth_time > RECENT_SIGN_IN:
        return refusal(
            "For your security, sign in again before adding a passkey.",
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
    body = _body()
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return refusal("The passkey answer is missing.")
    try:
        info = passkeys.register(
            me.member, credential, session_id=me.session.id, name=str(body.get("name") or "")
        )
    except PasskeyError as e:
        return refusal(e.message)
    return jsonify(
        {"id": info.id, "name": info.name, "redirect": settings().url("/account/passkeys")}
    )


@bp.post("/account/passkeys/<int:passkey_id>/rename")
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


@bp.post("/account/passkeys/<int:passkey_id>/delete")
def passkey_delete(passkey_id: int) -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101
    with contextlib.suppress(NotFoundError):  # already gone, or not theirs: nothing to say
        passkeys.delete(me.member.id, passkey_id)
    return redirect(settings().url("/account/passkeys"), 303)
