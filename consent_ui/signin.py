"""``/login``: password sign-in, for an authorization request or on its own.

Reached with ``?interaction=`` from the authorization endpoint, it finishes
that interaction and sends the browser back to resume it; reached with
``?next=`` (or nothing) it signs in and shows that page of the provider."""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import client_ip, page, safe_next, settings, signed_in
from idp import accounts, clients, cookies, interactions, remote, sessions
from idp.errors import SignInError
from idp.ratelimit import limiter, signin_key, signin_limit


def _login_page(status: int = 200, *, error: str | None = None, username: str = "") -> Response:
    uid = request.values.get("interaction", "")
    client_name = None
    if uid:
        info = interactions.load(uid)
        rp = clients.lookup(info.client_id)
        client_name = rp.name if rp else None
        username = username or info.login_hint
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
        error=error,
        username=username,
    )


@bp.get("/login")
def login_form() -> Response:
    return _login_page()


@bp.post("/login")
@limiter.limit(signin_limit, key_func=signin_key, methods=["POST"])
def login_submit() -> Response:
    uid = request.form.get("interaction", "")
    if uid:
        interactions.load(uid)  # unusable: an error page, before any work
    username = request.form.get("username", "")
    ip = client_ip()
    try:
        member = accounts.authenticate(username, request.form.get("password", ""), ip=ip)
    except SignInError as e:
        return _login_page(200, error=e.message, username=username)
    target = complete_sign_in(
        response := redirect("/", 303),
        member_id=member.id,
        amr=["pwd"],
        remember=request.form.get("remember") in ("on", "1", "true", "yes"),
        interaction=uid,
        next_path=request.form.get("next"),
    )
    response.headers["Location"] = target
    return response


def complete_sign_in(
    response: Response,
    *,
    member_id: str,
    amr: list[str],
    remember: bool,
    interaction: str | None,
    next_path: str | None,
) -> str:
    """Open the session for someone who just proved who they are (password,
    passkey or QR), set the cookies on ``response`` and say where to go:
    back to the authorization request, or a page of the provider."""
    s = settings()
    previous = signed_in()
    started = sessions.start(
        user_id=member_id,
        policy=s.session,
        remember=remember,
        amr=amr,
        ip=client_ip(),
        user_agent=remote.user_agent(request),
        device_id=cookies.ensure_device(request, response, s),
        replaces=previous.session.id if previous else None,
    )
    cookies.set_session(response, s, started.cookie_value, remember=started.session.remember)
    if interaction:
        interactions.finish_login(interaction, user_id=member_id, session_id=started.session.id)
        return s.url(f"/authorize/resume/{interaction}")
    return s.url(safe_next(next_path))


@bp.post("/login/cancel")
def login_cancel() -> Response:
    uid = request.form.get("interaction", "")
    interactions.deny_login(uid)
    return redirect(settings().url(f"/authorize/resume/{uid}"), 303)
