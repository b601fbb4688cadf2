"""Authlib's AuthorizationServer and ResourceProtector, wired to our services.

Everything Authlib raises is translated here into our ``idp.errors``
classes (``translate``), so the rest of the provider, and every response,
speaks one error vocabulary.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.resource_protector import TokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, Request

from idp import clients, errors, runtime, tokens
from idp.protocol.grants import (
    AuthorizationCodeGrant,
    ClientAdapter,
    ClientCredentialsGrant,
    OpenIDConnect,
    RefreshTokenGrant,
    S256Only,
)

__all__ = ["Server", "StoredRequest", "build_resource_protector", "build_server", "translate"]

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


def translate(e: OAuth2Error) -> errors.OAuthError:
    """Authlib's error as ours, keeping its code and description."""
    cls = _ERRORS.get(e.error or "", errors.InvalidRequestError)
    ours = cls(e.description or "", detail=repr(e))
    ours.redirect_uri = e.redirect_uri  # type: ignore[attr-defined]
    ours.state = e.state  # type: ignore[attr-defined]
    ours.used_basic_auth = e.status_code == 401  # type: ignore[attr-defined]
    return ours


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


class StoredRequest(OAuth2Request):  # type: ignore[misc]
    """An authorization request replayed from an interaction record."""

    def __init__(self, params: dict[str, str], issuer: str) -> None:
        super().__init__(method="GET", uri=issuer + "/authorize", headers={})
        self._params = params
        self.payload = BasicOAuth2Payload(params)

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return {}


class Server(AuthorizationServer):  # type: ignore[misc]
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        from flask import request as flask_request

        return _IssuerRequest(flask_request, runtime.current().settings.server.issuer)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Any:
        # Rendered by the endpoint module, in our one error format.
        raise translate(error)


def _query_client(client_id: str) -> ClientAdapter | None:
    rp = clients.lookup(client_id)
    return ClientAdapter(rp) if rp else None


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def create_endpoint_response(self, request: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        client = self.authenticate_endpoint_client(request)
        self.check_params(request, client)
        answer = tokens.introspect(
            request.form["token"], client.rp, request.form.get("token_type_hint")
        )
        return 200, answer, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012

    def create_endpoint_response(self, request: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        client = self.authenticate_endpoint_client(request)
        self.check_params(request, client)
        tokens.revoke(request.form["token"], client.rp, request.form.get("token_type_hint"))
        return 200, {}, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def build_server(app: Flask) -> Server:
    server = Server(app, query_client=_query_client, save_token=lambda token, request: None)
    server.scopes_supported = list(clients.SCOPES)
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True), OpenIDConnect()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(_Introspection)
    server.register_endpoint(_Revocation)
    return server


class _JwtValidator(TokenValidator):  # type: ignore[misc]
    """Bearer access tokens: our signed JWTs, checked against the revocation record."""

    TOKEN_TYPE = "bearer"  # noqa: S105 - a token type name

    def authenticate_token(self, token_string: str) -> tokens.AccessClaims:
        return tokens.verify_access_token(token_string)

    def validate_token(self, token: tokens.AccessClaims, scopes: Any, request: Any) -> None:
        if self.scope_insufficient(" ".join(token.scopes), scopes):
            raise errors.InsufficientScopeError("The access token lacks a required scope.")


def build_resource_protector() -> ResourceProtector:
    protector = ResourceProtector()
    protector.register_token_validator(_JwtValidator(realm="idp"))
    return protector
