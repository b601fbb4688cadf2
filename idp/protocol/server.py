"""Authlib's AuthorizationServer and ResourceProtector, wired to our services.

Authlib validates requests here -- client authentication, redirect URIs,
scopes, PKCE -- and never writes: its hooks only look things up.  What a
request changes is done afterwards by one of our services, called from this
module's typed functions, so that the transaction boundary is ours and
never inside an Authlib hook.  Everything Authlib raises is translated here
into ``idp.errors`` (``translate``), so the rest of the provider speaks one
error vocabulary.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.resource_protector import TokenValidator
from flask import Flask, Request, current_app
from flask import request as flask_request

from idp import bearer_tokens, clients, errors, runtime, tokens
from idp.authorization_requests import AuthorizationRequest
from idp.clients import RelyingParty
from idp.prompts import parse_max_age, parse_prompt
from idp.protocol.grants import (
    AuthorizationCodeGrant,
    ClientAdapter,
    ClientCredentialsGrant,
    OpenIDConnect,
    RefreshTokenGrant,
    S256Only,
)

__all__ = [
    "authenticate_endpoint_client",
    "build_resource_protector",
    "build_server",
    "issue_tokens",
    "translate",
    "validate_authorization",
]

_SERVER = "idp.authlib_server"

_ERRORS: dict[str, type[errors.OAuthError]] = {
    cls.error: cls
    for cls in (
        errors.InvalidRequestError,
        errors.InvalidClientError,
        errors.InvalidGrantError,
        errors.UnauthorizedClientError,
        errors.UnsupportedGrantTypeError,
        errors.UnsupportedResponseTypeError,
        errors.UnsupportedTokenTypeError,
        errors.InvalidScopeError,
        errors.AccessDeniedError,
        errors.LoginRequiredError,
        errors.ConsentRequiredError,
        errors.InvalidTokenError,
        errors.InsufficientScopeError,
    )
}


_ECHO_MIN = 6
"""A request value this long found in a library's error text is an echo."""


def _public_description(text: str | None) -> str:
    """The library's description, unless it echoes what the request sent
    (an error is shown on pages and sent to clients: never attacker text)."""
    if not text:
        return ""
    sent = [*flask_request.args.values(), *flask_request.form.values()]
    if any(len(v) >= _ECHO_MIN and v in text for v in sent):
        return ""
    return text


def translate(e: OAuth2Error) -> errors.OAuthError:
    """Authlib's error as ours, keeping its code, its description (unless it
    echoes the request), and the redirect URI it verified (if any) with the
    request's ``state``."""
    cls = _ERRORS.get(e.error or "", errors.InvalidRequestError)
    return cls(
        _public_description(e.description),
        detail=repr(e),
        redirect_uri=e.redirect_uri or None,
        state=e.state,
    )


_RESPONSE_TYPES = frozenset({"code"})
_GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})


def _verified_redirect_uri(client_id: str | None, redirect_uri: str | None) -> str | None:
    """The redirect URI an error may go to: the client's, registered exactly."""
    client = clients.lookup(client_id or "")
    if client is None:
        return None
    if redirect_uri:
        return redirect_uri if redirect_uri in client.redirect_uris else None
    return client.redirect_uris[0] if len(client.redirect_uris) == 1 else None


def _check_basic_credentials(req: Request) -> None:
    """HTTP Basic client credentials must decode (RFC 6749 §2.3.1: UTF-8,
    form-encoded, then base64); anything else is a bad client
    authentication, not a crash in the library that parses it."""
    header = req.headers.get("Authorization")
    if header is None:
        return
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.InvalidClientError("The client credentials are malformed.") from None
    if ":" not in decoded:
        raise errors.InvalidClientError("The client credentials are malformed.")


class _IssuerRequest(OAuth2Request):  # type: ignore[misc]
    """A Flask request whose URI is built from the issuer, never from Host:
    behind a TLS-terminating proxy the issuer's scheme is the truth."""

    def __init__(self, req: Request, issuer: str) -> None:
        super().__init__(method=req.method, uri=issuer + req.path, headers=req.headers)
        self._request = req
        self.payload = FlaskOAuth2Payload(req)

    @property
    def args(self) -> Any:
        return self._request.args

    @property
    def form(self) -> Any:
        return self._request.form


class Server(AuthorizationServer):  # type: ignore[misc]
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        _check_basic_credentials(flask_request)
        return _IssuerRequest(flask_request, runtime.current().settings.server.issuer)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Any:
        # Rendered by the endpoint module, in our one error format.
        raise translate(error)


def _server() -> Server:
    server: Server = current_app.extensions[_SERVER]
    return server


def _query_client(client_id: str) -> ClientAdapter | None:
    rp = clients.lookup(client_id)
    return ClientAdapter(rp) if rp else None


def validate_authorization() -> AuthorizationRequest:
    """The authorization request of this Flask request, validated.

    Raises an OAuthError: with ``redirect_uri`` set when the client and the
    redirect URI were verified (it may be sent back), else without."""
    values = flask_request.values
    if values.get("response_type") not in _RESPONSE_TYPES:
        # Checked before Authlib, whose own error would quote the value.
        verified = _verified_redirect_uri(values.get("client_id"), values.get("redirect_uri"))
        raise errors.UnsupportedResponseTypeError(
            "Only response_type=code is supported.",
            redirect_uri=verified,
            state=values.get("state"),
        )
    try:
        grant = _server().get_consent_grant(request=None, end_user=None)
    except OAuth2Error as e:
        raise translate(e) from e
    payload = grant.request.payload
    data = payload.data
    redirect_uri = grant.redirect_uri
    state = payload.state
    try:
        prompts = parse_prompt(data.get("prompt"))
        max_age = parse_max_age(data.get("max_age"))
    except errors.OAuthError as e:
        raise e.with_redirect(redirect_uri, state) from None
    return AuthorizationRequest(
        client_id=grant.request.client.client_id,
        redirect_uri=redirect_uri,
        scope=grant.request.scope or "",
        state=state,
        nonce=data.get("nonce"),
        code_challenge=data.get("code_challenge"),
        code_challenge_method=data.get("code_challenge_method"),
        prompts=prompts,
        max_age=max_age,
        login_hint=str(data.get("login_hint") or "")[:254],
        acr_values=tuple(str(data.get("acr_values") or "").split()[:8]),
    )


def issue_tokens() -> tokens.TokenSet:
    """The token endpoint: Authlib authenticates the client and validates the
    grant (look-ups only); our service then issues, in its own transaction."""
    if flask_request.form.get("grant_type") not in _GRANT_TYPES:
        # Checked before Authlib, whose own error would quote the value.
        raise errors.UnsupportedGrantTypeError("The grant type is not supported.")
    server = _server()
    try:
        oauth_request = server.create_oauth2_request(None)
        grant = server.get_token_grant(oauth_request)
        grant.validate_token_request()
    except OAuth2Error as e:
        raise translate(e) from e
    issued: tokens.TokenSet = grant.issue()
    return issued


_ENDPOINT_AUTH_METHODS = {
    "introspection": ["client_secret_basic", "client_secret_post"],
    "revocation": ["client_secret_basic", "client_secret_post", "none"],
}


def authenticate_endpoint_client(endpoint: str) -> RelyingParty:
    """The client authenticated at the introspection or revocation endpoint,
    by that endpoint's methods; raises InvalidClientError."""
    server = _server()
    try:
        oauth_request = server.create_oauth2_request(None)
        client: ClientAdapter = server.authenticate_client(
            oauth_request, _ENDPOINT_AUTH_METHODS[endpoint], endpoint
        )
    except OAuth2Error as e:
        raise translate(e) from e
    return client.rp


def build_server(app: Flask) -> Server:
    server = Server(app, query_client=_query_client, save_token=lambda token, request: None)
    server.scopes_supported = list(clients.SCOPES)
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True), OpenIDConnect()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    app.extensions[_SERVER] = server
    return server


class _JwtValidator(TokenValidator):  # type: ignore[misc]
    """Bearer access tokens: our signed JWTs, checked against the revocation record."""

    TOKEN_TYPE = "bearer"  # noqa: S105 - a token type name

    def authenticate_token(self, token_string: str) -> bearer_tokens.AccessClaims:
        return bearer_tokens.verify_access_token(token_string)

    def validate_token(self, token: bearer_tokens.AccessClaims, scopes: Any, request: Any) -> None:
        if self.scope_insufficient(" ".join(token.scopes), scopes):
            raise errors.InsufficientScopeError("The access token lacks a required scope.")


def build_resource_protector() -> ResourceProtector:
    protector = ResourceProtector()
    protector.register_token_validator(_JwtValidator(realm="idp"))
    return protector
