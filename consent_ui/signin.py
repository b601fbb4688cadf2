"""``/login``: password sign-in, for an authorization request or on its own.

Reached with ``?interaction=`` from the authorization endpoint, it asks the
interaction what it needs (the page says why a service asks the person to
sign in again) and finishes its sign-in step; reached with ``?next=`` (or
nothing) it signs in and shows that page of the provider.  Every way in
(password here, passkey and QR in their modules) goes through one service
of ``idp.signin`` and one helper here that sets the cookies."""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import client_ip, page, safe_next, settings, signed_in
from consent_ui.i18n import N_
from idp import cookies, interactions, remote, signin
from idp.errors import RateLimitedError, SignInError
from idp.interactions import Step

REASON_TEXT = {
    "login_prompt": N_("The service asks you to sign in again."),
    "max_age": N_("The service asks you to sign in again: your last sign-in was a while ago."),
    "client_refuses_stay_signed_in": (
        N_("This service does not accept a long-lived sign-in: sign in again to continue.")
    ),
    "account_disabled": N_("This account is locked. Contact support to unlock it."),
    "email_not_verified": (
        N_("Confirm your email address first: open the link we mailed you when you registered.")
    ),
}


def browser(response: Response) -> signin.Browser:
    """Where a sign-in comes from; sets (or renews) the device cookie."""
    me = signed_in()
    return signin.Browser(
        ip=client_ip(),
        user_agent=remote.user_agent(request),
        device_id=cookies.ensure_device(request, response, settings()),
        session_id=me.session.id if me else None,
    )


def set_signed_in(response: Response, completed: signin.Completed) -> None:
    cookies.set_session(
        response, settings(), completed.cookie_value, remember=completed.session.remember
    )


def _login_page(
    status: int = 200,
    *,
    error: str | None = None,
    username: str = "",
    pending: interactions.Pending | None = None,
) -> Response:
    """The sign-in page; ``pending`` is the interaction's step when the
    caller has just read it (one read of the interaction, not two)."""
    uid = request.values.get("interaction", "")
    client_name = None
    notices: list[str] = []
    if uid:
        if pending is None:
            me = signed_in()
            pending = interactions.next_step(uid, session=me.session if me else None)
        client_name = pending.client_name
        username = username or pending.login_hint
        notices = [REASON_TEXT[r] for r in pending.reasons if r in REASON_TEXT]
    next_path = safe_next(request.values.get("next"), "")
    query = (
        f"interaction={quote(uid)}" if uid else (f"next={quote(next_path)}" if next_path else "")
    )
    return page(
        "login.html",
        status,
        interaction=uid,
        next=next_path,
        qr_url="/login/qr" + (f"?{query}" if query else ""),
        client_name=client_name,
        notices=notices,
        error=error,
        username=username,
    )


@bp.get("/login")
def login_form() -> Response:
    uid = request.args.get("interaction", "")
    if uid:
        me = signed_in()
        pending = interactions.next_step(uid, session=me.session if me else None)
        if pending.step is not Step.LOGIN:
            # Signed in already (another tab, the back button): on to what is due.
            return redirect(pending.url, 303)
        return _login_page(pending=pending)
    return _login_page()


@bp.post("/login")
def login_submit() -> Response:
    uid = request.form.get("interaction", "") or None
    username = request.form.get("username", "")
    response = redirect(settings().url("/account"), 303)
    try:
        completed = signin.with_password(
            login=username,
            password=request.form.get("password", ""),
            remember=request.form.get("remember") in ("on", "1", "true", "yes"),
            browser=browser(response),
            interaction=uid,
            next_path=safe_next(request.form.get("next")),
        )
    except RateLimitedError as e:
        refused = _login_page(429, error=e.description, username=username)
        refused.headers["Retry-After"] = str(e.retry_after_seconds)
        return refused
    except SignInError as e:
        return _login_page(200, error=e.description, username=username)
    set_signed_in(response, completed)
    response.headers["Location"] = completed.next_url
    return response


@bp.post("/login/cancel")
def login_cancel() -> Response:
    uid = request.form.get("interaction", "")
    return redirect(interactions.abort(uid), 303)
