"""``/login``: password sign-in, for an authorization request or on its own.

Reached with ``?interaction=`` from the authorization endpoint, it finishes
that interaction and sends the browser back to resume it; reached with
``?next=`` (or nothing) it signs in and shows that page of the provider."""

from __future__ import annotations

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
    return page(
        "login.html",
        status,
        interaction=uid,
        next=safe_next(request.values.get("next"), ""),
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
    s = settings()
    uid = request.form.get("interaction", "")
    if uid:
        interactions.load(uid)  # unusable: an error page, before any work
    username = request.form.get("username", "")
    ip = client_ip()
    try:
        member = accounts.authenticate(username, request.form.get("password", ""), ip=ip)
    except SignInError as e:
        return _login_page(200, error=e.message, username=username)
    previous = signed_in()
    response = redirect("/", 303)
    device_id = cookies.ensure_device(request, response, s)
    started = sessions.start(
        user_id=member.id,
        policy=s.session,
        remember=request.form.get("remember") in ("on", "1", "true", "yes"),
        amr=["pwd"],
        ip=ip,
        user_agent=remote.user_agent(request),
        device_id=device_id,
        replaces=previous.session.id if previous else None,
    )
    cookies.set_session(response, s, started.cookie_value, remember=started.session.remember)
    if uid:
        interactions.finish_login(uid, user_id=member.id, session_id=started.session.id)
        response.headers["Location"] = s.url(f"/authorize/resume/{uid}")
    else:
        response.headers["Location"] = s.url(safe_next(request.form.get("next")))
    return response


@bp.post("/login/cancel")
def login_cancel() -> Response:
    uid = request.form.get("interaction", "")
    interactions.deny_login(uid)
    return redirect(settings().url(f"/authorize/resume/{uid}"), 303)
