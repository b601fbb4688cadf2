"""Authlib grant classes wired to our services.

Authlib validates each request (client authentication, redirect URI, PKCE,
scope) through the hooks below, which only look things up.  Issuing is
``issue()``, ours, called by ``idp.protocol.server.issue_tokens`` after
validation: it hands the validated grant to one service of ``idp.codes``,
``idp.rotation`` or ``idp.tokens``, which is the transaction.  Adapters expose our frozen
dataclasses through the mixin methods Authlib calls.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError as AuthlibInvalidRequest,
)
from authlib.oauth2.rfc6749.errors import (
    InvalidScopeError as AuthlibInvalidScope,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from idp import clients, codes, rotation, tokens
from idp.clients import RelyingParty

__all__ = [
    "AuthorizationCodeGrant",
    "ClientAdapter",
    "ClientCredentialsGrant",
    "OpenIDConnect",
    "RefreshTokenGrant",
    "S256Only",
]

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


class ClientAdapter(ClientMixin):  # type: ignore[misc]  # Authlib is untyped
    """A RelyingParty seen through Authlib's ClientMixin."""

    def __init__(self, rp: RelyingParty) -> None:
        self.rp = rp
        self.client_id = rp.client_id

    def get_client_id(self) -> str:
        return self.rp.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous registration may omit redirect_uri.
        return self.rp.redirect_uris[0] if len(self.rp.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        asked = (scope or "").split()
        if "offline_access" in asked and "offline_access" not in self.rp.scopes:
            # A service that refuses long-lived sign-ins simply does not get
            # offline access (OIDC Core 11 lets the provider ignore it).
            asked.remove("offline_access")
        if not asked:
            return None
        if not set(asked) <= self.rp.scopes:
            return None
        return " ".join(dict.fromkeys(asked))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.rp.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.check_secret(self.rp, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.rp.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.rp.allows_grant("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return self.rp.allows_grant(grant_type)


class _CodeAdapter:
    def __init__(self, grant: codes.CodeGrant) -> None:
        self.grant = grant
        self.code_challenge = grant.code_challenge
        self.code_challenge_method = grant.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


class _RefreshAdapter:
    def __init__(self, grant: rotation.RefreshGrant) -> None:
        self.grant = grant

    def check_client(self, client: ClientAdapter) -> bool:
        return self.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.grant.scope


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (RFC 9700 §2.1.1): plain is refused, and a public
    client must send a challenge at the authorization endpoint already."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib's class API
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.rp.is_public and not challenge:
            raise AuthlibInvalidRequest("A public client must use PKCE (code_challenge with S256).")
        if challenge and method != "S256":
            raise AuthlibInvalidRequest("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


def _confidential(request: Any) -> bool:
    """Authenticated by a secret (not a public client)."""
    return request.auth_method in ("client_secret_basic", "client_secret_post")


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: ClientAdapter) -> str:
        """Exact match (RFC 9700 §4.1.3), with an error that does not quote
        the URI (Authlib's would, and fails on a backslash in it)."""
        redirect_uri = request.payload.redirect_uri
        if redirect_uri:
            if not client.check_redirect_uri(redirect_uri):
                raise AuthlibInvalidRequest("The redirect_uri is not registered for this client.")
            return str(redirect_uri)
        default = client.get_default_redirect_uri()
        if not default:
            raise AuthlibInvalidRequest("redirect_uri is required.")
        return default

    def query_authorization_code(self, code: str, client: ClientAdapter) -> _CodeAdapter | None:
        grant = codes.find(code, client.client_id)
        return _CodeAdapter(grant) if grant else None

    def issue(self) -> tokens.TokenSet:
        adapter: _CodeAdapter = self.request.authorization_code
        return codes.exchange(adapter.grant, client=self.request.client.rp)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshAdapter | None:
        grant = rotation.find(refresh_token, self.request.client.client_id)
        return _RefreshAdapter(grant) if grant else None

    def issue(self) -> tokens.TokenSet:
        adapter: _RefreshAdapter = self.request.refresh_token
        return rotation.rotate(
            adapter.grant,
            client=self.request.client.rp,
            confidential=_confidential(self.request),
            scope=self.request.payload.scope,
        )


def machine_scope(rp: RelyingParty, requested: str | None) -> str | None:
    """The scope of a ``client_credentials`` token for ``rp``, or None when
    it may not ask for it: scopes of its registration only, never a
    person's (``idp.protocol.express`` asks too)."""
    asked = set((requested or "").split())
    if asked & USER_SCOPES or not asked <= rp.scopes:
        return None
    return " ".join(sorted(asked))


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if machine_scope(self.request.client.rp, self.request.payload.scope) is None:
            raise AuthlibInvalidScope("The client may not request this scope.")

    def issue(self) -> tokens.TokenSet:
        rp: RelyingParty = self.request.client.rp
        return tokens.issue_for_client(rp, machine_scope(rp, self.request.payload.scope) or "")


class OpenIDConnect:
    """OIDC extension of the code grant: ``openid`` requests must name a
    redirect URI explicitly (OIDC Core 3.1.2.1)."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self._validate)

    @staticmethod
    def _validate(grant: Any, redirect_uri: str) -> None:
        scopes = (grant.request.payload.scope or "").split()
        if "openid" in scopes and not grant.request.payload.redirect_uri:
            raise AuthlibInvalidRequest("redirect_uri is required for OpenID Connect requests.")
        if "admin" in scopes:
            raise AuthlibInvalidScope("The admin scope is granted by client_credentials only.")
        nonce = grant.request.payload.data.get("nonce")
        if nonce is not None and len(nonce) > 255:
            raise AuthlibInvalidRequest("nonce is too long.")
