"""The protocol's JSON endpoints (CONTRACT "Protocol endpoints"); no HTML here.

Discovery, JWKS, token, introspection, revocation and UserInfo.  Their
errors are JSON whatever the ``Accept`` header (:func:`render_error`, which
the composition root uses for this blueprint and the admin API's): the
RFC 6749 / OIDC code, a 401 always with ``WWW-Authenticate``, and at the
bearer endpoints every 400, 401 and 403 with ``WWW-Authenticate: Bearer``
(RFC 6750 §3.1).

Failed client authentications and invalid grants are counted per (client,
address); a request that fails beyond ``ratelimit.token`` is answered 429
instead of its error, one that succeeds is never throttled
(``idp.ratelimit``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Flask, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from idp import acr, errors, introspection, members, runtime
from idp.errors import OAuthError, RateLimitedError, UnavailableError
from idp.protocol.authorization import reject_repeated
from idp.protocol.documents import PublishedDocuments
from idp.protocol.express import ExpressLane, userinfo_answer
from idp.protocol.server import (
    authenticate_endpoint_client,
    build_resource_protector,
    build_server,
    issue_tokens,
    translate,
)
from idp.ratelimit import failures, limit_retry_after, named_client_id, request_ip

__all__ = [
    "bearer",
    "discovery_document",
    "install",
    "json_response",
    "render_error",
]

bp = Blueprint("protocol", __name__)
_DISCOVERY = "idp.discovery_bytes"
_protector = build_resource_protector()


def discovery_document(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "end_session_endpoint": issuer + "/logout",
        "introspection_endpoint": issuer + "/introspect",
        "revocation_endpoint": issuer + "/revoke",
        "scopes_supported": ["openid", "profile", "email", "offline_access", "admin"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": list(acr.VALUES),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "azp",
            "sid",
            "at_hash",
            "name",
            "preferred_username",
            "email",
            "email_verified",
            "gender",
            "birthdate",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON body that no cache keeps."""
    response = Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def _challenge(e: OAuthError, scheme: str) -> dict[str, str]:
    if scheme == "Bearer" and e.status_code in (400, 401, 403):
        return {"WWW-Authenticate": f'Bearer realm="idp", error="{e.error}"'}
    if e.status_code == 401:
        return {"WWW-Authenticate": 'Basic realm="idp"'}
    return {}


_HTTP_ERRORS = {401: "invalid_token", 404: "not_found", 429: "rate_limited"}


def render_error(e: Exception) -> Response:
    """Any error at a JSON endpoint, as JSON with the right status and headers."""
    scheme = g.get("auth_scheme", "Basic")
    if isinstance(e, OAuth2Error):
        e = translate(e)
    if isinstance(e, OAuthError):
        if e.status_code >= 500:
            current_app.logger.error("server error: %s", e.detail)
        return json_response(e.to_json(), e.status_code, _challenge(e, scheme))
    if isinstance(e, RateLimitedError):
        body = {"error": "rate_limited", "error_description": e.description}
        return json_response(body, 429, {"Retry-After": str(e.retry_after_seconds)})
    if isinstance(e, UnavailableError):
        # RFC 6749 §4.1.2.1's code for a server that cannot answer for now.
        body = {"error": "temporarily_unavailable", "error_description": e.description}
        return json_response(body, 503, {"Retry-After": str(e.retry_after_seconds)})
    if isinstance(e, HTTPException):
        status = e.code or 500
        headers: dict[str, str] = {}
        if isinstance(e, MethodNotAllowed):
            headers.update((k, v) for k, v in e.get_headers() if k == "Allow")
        if status == 429:
            headers["Retry-After"] = str(limit_retry_after(e))
        error = _HTTP_ERRORS.get(status, "invalid_request" if status < 500 else "server_error")
        if status == 401:
            headers["WWW-Authenticate"] = f'{scheme} realm="idp"'
        return json_response(
            {"error": error, "error_description": e.description or e.name}, status, headers
        )
    current_app.logger.error("unexpected error", exc_info=e)
    return json_response(
        {"error": "server_error", "error_description": "Something went wrong on our side."}, 500
    )


# --- discovery and keys ---------------------------------------------------------


DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


# GET and HEAD of these two are answered before Flask (answered_before_flask);
# the views give every other method its 405 with Allow, as any route does.
@bp.get(DISCOVERY_PATHS[0])
@bp.get(DISCOVERY_PATHS[1])
def discovery() -> Response:
    body: bytes = current_app.extensions[_DISCOVERY]
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/jwks.json")
def jwks() -> Response:
    response = Response(runtime.current().keys.jwks_bytes(), mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


# --- token, introspection, revocation -------------------------------------------


@contextmanager
def _failures_counted() -> Iterator[None]:
    """Count a failed client authentication or invalid grant against the
    (client, address) pair; beyond ``ratelimit.token`` it is answered 429."""
    try:
        yield
    except OAuthError as e:
        if e.error in ("invalid_client", "invalid_grant"):
            failures().refuse_if_over(
                runtime.current().settings.ratelimit.token,
                f"token|{named_client_id()}|{request_ip()}",
            )
        raise


_NO_STORE = {"Pragma": "no-cache"}


@bp.post("/token")
def token() -> Response:
    reject_repeated(request.form)
    if not request.form.get("grant_type"):
        raise errors.InvalidRequestError("grant_type is missing.")
    with _failures_counted():
        issued = issue_tokens()
    return json_response(issued.to_json(), 200, _NO_STORE)


def _token_parameter() -> str:
    value = request.form.get("token")
    if not value:
        raise errors.InvalidRequestError("token is missing.")
    return value


@bp.post("/introspect")
def introspect() -> Response:
    """RFC 7662; the ``token_type_hint`` is not needed (§2.1 lets us ignore it)."""
    reject_repeated(request.form)
    with _failures_counted():
        client = authenticate_endpoint_client("introspection")
    return json_response(introspection.introspect(_token_parameter(), client))


@bp.post("/revoke")
def revoke() -> Response:
    """RFC 7009; an unknown ``token_type_hint`` is ignored (§2.1), and an
    unknown or foreign token is answered 200 like any other (§2.2)."""
    reject_repeated(request.form)
    with _failures_counted():
        client = authenticate_endpoint_client("revocation")
    introspection.revoke(_token_parameter(), client)
    return json_response({}, 200)


# --- UserInfo -----------------------------------------------------------------------


def bearer(*scopes: str) -> Any:
    """The verified access token of this request, or InvalidTokenError /
    InsufficientScopeError (rendered with ``WWW-Authenticate: Bearer``)."""
    g.auth_scheme = "Bearer"
    try:
        return _protector.validate_request(
            scopes=list(scopes) or None, request=_BearerRequest(request.headers)
        )
    except OAuth2Error as e:
        ours = translate(e)
        if ours.error not in ("insufficient_scope",):
            raise errors.InvalidTokenError(e.description or "A bearer token is required.") from e
        raise ours from e


class _BearerRequest:
    def __init__(self, headers: Any) -> None:
        self.headers = headers


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    g.auth_scheme = "Bearer"
    reject_repeated(request.values)
    access = bearer("openid")
    return json_response(userinfo_answer(access, members.find_committed(access.user_id)))


def answered_before_flask(app: Flask) -> PublishedDocuments:
    """The WSGI layers in front of Flask: the published documents
    (``idp.protocol.documents``), then the plain cases of UserInfo,
    introspection and machine tokens (``idp.protocol.express``); the views
    here answer what they pass on."""
    keys = runtime.current_from(app).keys
    return PublishedDocuments(
        ExpressLane(app.wsgi_app, app),
        discovery=app.extensions[_DISCOVERY],
        discovery_paths=DISCOVERY_PATHS,
        jwks=keys.jwks_bytes,
        jwks_path="/jwks.json",
    )


def install(app: Flask, issuer: str) -> None:
    """Register the endpoints; the discovery document is serialised once."""
    from idp.protocol import authorization

    build_server(app)
    app.extensions[_DISCOVERY] = json.dumps(
        discovery_document(issuer), separators=(",", ":")
    ).encode()
    app.register_blueprint(bp)
    app.register_blueprint(authorization.bp)
