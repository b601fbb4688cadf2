"""Rate limits on every credential check (Flask-Limiter).

Counters live in Redis when ``redis.url`` is set, so that every node counts
together; otherwise in this process's memory.  The sign-in limit is keyed by
account *and* client IP: one attacker cannot lock a person out from
everywhere, and one IP cannot try many passwords on one account.  The token
endpoint is limited per client."""

from __future__ import annotations

import base64

from flask import Flask, request
from flask_limiter import Limiter

from idp import remote, runtime
from idp.config import Settings

__all__ = ["client_key", "ip_key", "limiter", "signin_key", "signin_limit", "token_limit"]


def _ip() -> str:
    return remote.client_ip(request, runtime.current().settings.server.trusted_proxies)


limiter = Limiter(key_func=_ip, headers_enabled=True, strategy="moving-window")


def ip_key() -> str:
    """Per client IP: ceremonies that name no account until they succeed."""
    return f"ip|{_ip()}"


def signin_key() -> str:
    login = (request.form.get("username") or "").strip().casefold()[:254]
    return f"signin|{_ip()}|{login}"


def client_key() -> str:
    """The client named by HTTP Basic or the form (authenticated or not: a
    flood of bad secrets for one client_id is limited just the same)."""
    client_id = request.form.get("client_id", "")
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            client_id = base64.b64decode(auth[6:], validate=True).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            client_id = "malformed"
    return f"client|{client_id[:64] or _ip()}"


def signin_limit() -> str:
    return runtime.current().settings.ratelimit.signin


def token_limit() -> str:
    return runtime.current().settings.ratelimit.token


def init_app(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit.enabled
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis.url or "memory://"
    app.config["RATELIMIT_KEY_PREFIX"] = "idp"
    app.config["RATELIMIT_SWALLOW_ERRORS"] = False
    limiter.init_app(app)
