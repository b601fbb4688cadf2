"""``/admin/api``: admins list and end sign-in sessions.

Authenticated by a bearer access token from the ``client_credentials``
grant carrying the ``admin`` scope, which only clients created with
``--admin`` can get.  No token (or an invalid one) is 401, a valid token
without ``admin`` is 403, an unknown user or session 404 -- always JSON,
and every 401 says ``WWW-Authenticate: Bearer``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g
from werkzeug.wrappers import Response

from idp import accounts, errors, forced_logout, sessions
from idp.errors import NotFoundError
from idp.protocol.endpoints import bearer, json_response
from idp.ratelimit import request_ip

__all__ = ["PREFIX", "install"]

PREFIX = "/admin/api"
"""Every path under it is the API's: one no route takes is answered in JSON too."""
bp = Blueprint("admin_api", __name__, url_prefix=PREFIX)


@bp.before_request
def _bearer_endpoint() -> None:
    """Every error here says how to authenticate: with a bearer token."""
    g.auth_scheme = "Bearer"


def _admin() -> str:
    """The admin client's id, or the right error."""
    access = bearer("admin")
    if access.user_id is not None:
        # The admin scope is only ever granted by client_credentials.
        raise errors.InsufficientScopeError("An admin token comes from client_credentials.")
    return str(access.client_id)


def _not_found() -> Response:
    return json_response({"error": "not_found"}, 404)


def _member(user_ref: str) -> Any:
    try:
        return accounts.find(user_ref)
    except NotFoundError:
        return None


@bp.get("/users/<path:user_ref>/sessions")
def list_sessions(user_ref: str) -> Response:
    _admin()
    member = _member(user_ref)
    if member is None:
        return _not_found()
    return json_response({"sessions": [s.to_json() for s in sessions.list_for_user(member.id)]})


@bp.delete("/sessions/<sid>")
def end_session(sid: str) -> Response:
    client_id = _admin()
    try:
        info = sessions.get(sid)
    except NotFoundError:
        return _not_found()
    report = forced_logout.force_logout(
        session_ids=[info.id],
        reason=forced_logout.LogoutReason.ADMIN,
        actor=f"client:{client_id}",
        ip=request_ip(),
    )
    return json_response({"session_id": info.id, "ended": bool(report.session_ids)})


@bp.post("/users/<path:user_ref>/logout")
def logout_user(user_ref: str) -> Response:
    client_id = _admin()
    member = _member(user_ref)
    if member is None:
        return _not_found()
    report = forced_logout.force_logout(
        user_id=member.id,
        reason=forced_logout.LogoutReason.ADMIN,
        actor=f"client:{client_id}",
        ip=request_ip(),
    )
    return json_response({"user_id": member.id, "ended": list(report.session_ids)})


def install(app: Flask) -> None:
    app.register_blueprint(bp)
