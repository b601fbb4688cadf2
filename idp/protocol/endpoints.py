"""The protocol endpoints (CONTRACT "Protocol endpoints"); no HTML here.

Authorization validates the request with Authlib, then asks
``idp.prompts`` what it needs: a code at once, an interaction handed to
``consent_ui`` (``/login`` or ``/consent``), or a ``prompt=none`` error.
Errors leave in one of two forms: a redirect with ``error`` to a redirect
URI that was verified against the client's registration, or an
:class:`~idp.errors.AuthorizationPageError` that the pages render.  Nothing is ever
redirected to an unverified URI.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Flask, current_app, g, redirect, request
from werkzeug.wrappers import Response

from idp import accounts, clock, consents, cookies, errors, interactions, prompts, runtime, sessions
from idp.accounts import Member
from idp.errors import AuthorizationPageError, NotFoundError, OAuthError
from idp.protocol.grants import SignedIn
from idp.protocol.server import (
    Server,
    StoredRequest,
    build_resource_protector,
    build_server,
    translate,
)
from idp.ratelimit import client_key, limiter, token_limit
from idp.sessions import SessionInfo

__all__ = ["bearer", "discovery_document", "install", "json_error", "json_response"]

bp = Blueprint("protocol", __name__)
_SERVER = "idp.authlib_server"
_DISCOVERY = "idp.discovery_bytes"
_protector = build_resource_protector()
_SINGLE_VALUED = ("response_type", "client_id", "redirect_uri", "scope", "state")


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
        "acr_values_supported": list(sessions.ACR_VALUES),
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


def json_error(e: OAuthError, *, scheme: str = "Basic") -> Response:
    """An OAuth error as JSON; a 401 always says how to authenticate."""
    headers: dict[str, str] = {}
    if e.status_code == 401:
        if scheme == "Bearer":
            headers["WWW-Authenticate"] = f'Bearer realm="idp", error="{e.error}"'
        else:
            headers["WWW-Authenticate"] = 'Basic realm="idp"'
    elif e.status_code == 403 and scheme == "Bearer":
        headers["WWW-Authenticate"] = f'Bearer realm="idp", error="{e.error}"'
    return json_response(e.to_json(), e.status_code, headers)


def _reject_repeated(values: Any, names: tuple[str, ...] | None = None) -> None:
    """RFC 6749 §3.1: request and response parameters MUST NOT be repeated."""
    for name in values:
        if (names is None or name in names) and len(values.getlist(name)) > 1:
            raise errors.InvalidRequestError(f"Parameter '{name}' is repeated.")


# --- discovery and keys ---------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
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


# --- authorization ------------------------------------------------------------


def _current_session() -> tuple[SessionInfo | None, Member | None]:
    settings = runtime.current().settings
    session = cookies.current_session(request, settings)
    if session is None:
        return None, None
    try:
        return session, accounts.get(session.user_id)
    except NotFoundError:
        return None, None


def _redirect_error(e: OAuthError, redirect_uri: str, state: str | None) -> Response:
    params = {"error": e.error}
    if e.description:
        params["error_description"] = e.description
    if state:
        params["state"] = state
    params["iss"] = runtime.current().settings.server.issuer
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + sep + urlencode(params), 302)


def _fail(e: OAuthError | OAuth2Error, state: str | None = None) -> Response:
    ours = translate(e) if isinstance(e, OAuth2Error) else e
    target = getattr(ours, "redirect_uri", None)
    if target and ours.redirectable:
        return _redirect_error(ours, target, getattr(ours, "state", None) or state)
    raise AuthorizationPageError(ours)


def _server() -> Server:
    server: Server = current_app.extensions[_SERVER]
    return server


def _validate(oauth_request: Any) -> Any:
    return _server().get_consent_grant(request=oauth_request, end_user=None)


def _issue(grant: Any, member: Member, session: SessionInfo) -> Response:
    response: Response = _server().create_authorization_response(
        request=grant.request, grant_user=SignedIn(member=member, session=session), grant=grant
    )
    return response


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    values = request.values
    state = values.get("state")
    try:
        _reject_repeated(values, _SINGLE_VALUED)
        grant = _validate(None)
    except (OAuthError, OAuth2Error) as e:
        return _fail(e, state if len(values.getlist("state")) == 1 else None)
    redirect_uri = grant.redirect_uri
    settings = runtime.current().settings
    try:
        _reject_repeated(values)
        if "request" in values:
            raise errors.RequestNotSupportedError("Request objects are not supported.")
        if "request_uri" in values:
            raise errors.RequestUriNotSupportedError("request_uri is not supported.")
        prompt_set = prompts.parse_prompt(values.get("prompt"))
        max_age = prompts.parse_max_age(values.get("max_age"))
        rp = grant.request.client.rp
        session, member = _current_session()
        scopes = frozenset((grant.request.scope or "").split())
        decision = prompts.decide(
            session=session,
            user_disabled=bool(member and member.disabled),
            client=rp,
            prompts=prompt_set,
            max_age=max_age,
            consent_given=bool(member and consents.covers(member.id, rp.client_id, scopes)),
            idle_minutes=settings.session.idle_minutes,
            now=clock.now(),
        )
    except OAuthError as e:
        e.redirect_uri = redirect_uri  # type: ignore[attr-defined]
        return _fail(e, state)
    if decision.prompt is None and session is not None and member is not None:
        return _issue(grant, member, session)
    assert decision.prompt is not None  # noqa: S101 - decide() asks for login without a session
    params = values.to_dict()
    if not params.get("redirect_uri"):
        params["redirect_uri"] = redirect_uri
    params["scope"] = grant.request.scope
    uid = interactions.start(
        client_id=rp.client_id,
        params=params,
        prompt=decision.prompt,
        reasons=list(decision.reasons),
        ttl_seconds=settings.tokens.interaction_ttl_seconds,
    )
    return redirect(settings.url(f"/{decision.prompt}?interaction={uid}"), 303)


@bp.get("/authorize/resume/<uid>")
def resume(uid: str) -> Response:
    """Where the pages send the browser once an interaction step is done."""
    settings = runtime.current().settings
    info = interactions.load(uid)  # InteractionError: rendered by the pages
    stored = StoredRequest(info.params, settings.server.issuer)
    try:
        grant = _validate(stored)
    except (OAuthError, OAuth2Error) as e:
        return _fail(e)
    state = info.params.get("state")
    if info.error:
        interactions.complete(uid)
        return _redirect_error(errors.AccessDeniedError(), grant.redirect_uri, state)
    session, member = _current_session()
    if session is None or member is None or session.id != info.session_id:
        # Not signed in through this interaction in this browser: sign in.
        return redirect(settings.url(f"/login?interaction={uid}"), 303)
    if member.disabled:
        return _redirect_error(errors.AccessDeniedError(), grant.redirect_uri, state)
    rp = grant.request.client.rp
    scopes = frozenset((grant.request.scope or "").split())
    wants_consent = "consent" in prompts.parse_prompt(info.params.get("prompt"))
    consent_ok = info.consent_scope is not None or (
        not wants_consent
        and not prompts.consent_needed(
            client=rp,
            prompts=frozenset(),
            consent_given=consents.covers(member.id, rp.client_id, scopes),
        )
    )
    if not consent_ok:
        return redirect(settings.url(f"/consent?interaction={uid}"), 303)
    interactions.complete(uid)
    return _issue(grant, member, session)


# --- token, introspection, revocation -------------------------------------------


@bp.post("/token")
@limiter.limit(token_limit, key_func=client_key)
def token() -> Response:
    _reject_repeated(request.form)
    if not request.form.get("grant_type"):
        raise errors.InvalidRequestError("grant_type is missing.")
    response: Response = _server().create_token_response()
    return response


@bp.post("/introspect")
@limiter.limit(token_limit, key_func=client_key)
def introspect() -> Response:
    _reject_repeated(request.form)
    response: Response = _server().create_endpoint_response("introspection")
    return response


@bp.post("/revoke")
@limiter.limit(token_limit, key_func=client_key)
def revoke() -> Response:
    _reject_repeated(request.form)
    response: Response = _server().create_endpoint_response("revocation")
    return response


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
    _reject_repeated(request.values)
    access = bearer("openid")
    if access.user_id is None:
        raise errors.InvalidTokenError("The access token does not name a person.")
    try:
        member = accounts.get(access.user_id)
    except NotFoundError:
        raise errors.InvalidTokenError("The account no longer exists.") from None
    if member.disabled:
        raise errors.InvalidTokenError("The account is disabled.")
    return json_response(accounts.userinfo_claims(member, access.scopes))


def install(app: Flask, issuer: str) -> None:
    """Register the endpoints; the discovery document is serialised once."""
    app.extensions[_SERVER] = build_server(app)
    app.extensions[_DISCOVERY] = json.dumps(
        discovery_document(issuer), separators=(",", ":")
    ).encode()
    app.register_blueprint(bp)
