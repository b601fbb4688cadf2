"""Authlib grant classes wired to our services.

Authlib validates each request (client authentication, redirect URI, PKCE,
scope); the ``create_*_response`` methods are ours so that every token is
issued by ``idp.tokens`` with its session and family attached.  Adapters
expose our frozen dataclasses through the mixin methods Authlib calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError as AuthlibInvalidGrant,
)
from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError as AuthlibInvalidRequest,
)
from authlib.oauth2.rfc6749.errors import (
    InvalidScopeError as AuthlibInvalidScope,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from idp import accounts, clients, codes, runtime, sessions, tokens
from idp.accounts import Member
from idp.clients import RelyingParty
from idp.db import db
from idp.errors import NotFoundError
from idp.sessions import SessionInfo

__all__ = [
    "AuthorizationCodeGrant",
    "ClientAdapter",
    "ClientCredentialsGrant",
    "OpenIDConnect",
    "RefreshTokenGrant",
    "S256Only",
    "SignedIn",
]

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
NO_STORE = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The ``grant_user`` of an authorization: who, and by which session."""

    member: Member
    session: SessionInfo


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
    def __init__(self, grant: tokens.RefreshGrant) -> None:
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


def _token_response(
    *,
    client: RelyingParty,
    member: Member | None,
    scope: str,
    session_id: str | None,
    family_id: str | None,
    auth_time: dt.datetime | None,
    amr: tuple[str, ...],
    acr: str,
    nonce: str | None,
    refresh: dict[str, Any] | None,
) -> dict[str, Any]:
    access = tokens.issue_access_token(
        client_id=client.client_id,
        scope=scope,
        user_id=member.id if member else None,
        session_id=session_id,
        family_id=family_id,
        auth_time=auth_time,
        acr=acr,
    )
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": scope,
    }
    if refresh is not None:
        body["refresh_token"] = tokens.issue_refresh_token(**refresh)
    scopes = frozenset(scope.split())
    if member is not None and session_id and auth_time and "openid" in scopes:
        body["id_token"] = tokens.sign_id_token(
            client_id=client.client_id,
            user_claims=accounts.userinfo_claims(member, scopes),
            session_id=session_id,
            auth_time=auth_time,
            amr=amr,
            acr=acr,
            nonce=nonce,
            access_token=access.token,
        )
    return body


def _refresh_scope(client: RelyingParty, session_remember: bool, scope: str) -> tuple[str, bool]:
    """Drop offline_access unless the person chose to stay signed in and the
    client allows it; returns (scope, offline)."""
    scopes = scope.split()
    offline = "offline_access" in scopes and session_remember and client.allow_stay_signed_in
    if "offline_access" in scopes and not offline:
        scopes.remove("offline_access")
    return " ".join(scopes), offline


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def create_authorization_response(self, redirect_uri: str, grant_user: SignedIn) -> Any:
        # Our code, bound to the session, and RFC 9207's ``iss`` beside it.
        settings = runtime.current().settings
        payload = self.request.payload
        session = grant_user.session
        scope, _ = _refresh_scope(self.request.client.rp, session.remember, self.request.scope)
        code = codes.issue(
            client_id=self.request.client.client_id,
            user_id=grant_user.member.id,
            session_id=session.id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=payload.data.get("nonce"),
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            auth_time=session.auth_time,
            amr=list(session.amr),
            acr=session.acr,
            ttl_seconds=settings.tokens.code_ttl_seconds,
        )
        db.session.commit()
        params = [("code", code)]
        if payload.state:
            params.append(("state", payload.state))
        params.append(("iss", settings.server.issuer))
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params))]

    def query_authorization_code(self, code: str, client: ClientAdapter) -> _CodeAdapter | None:
        grant = codes.redeem(code, client.client_id)
        return _CodeAdapter(grant) if grant else None

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        adapter: _CodeAdapter = self.request.authorization_code
        grant = adapter.grant
        rp: RelyingParty = self.request.client.rp
        session = sessions.get_live(grant.session_id)
        try:
            member = accounts.get(grant.user_id)
        except NotFoundError:
            member = None
        if session is None or member is None or member.disabled:
            raise AuthlibInvalidGrant("The sign-in behind this code has ended.")
        family_id = tokens.new_family_id()
        if not codes.mark_exchanged(grant, family_id):
            db.session.rollback()
            raise AuthlibInvalidGrant("The code was already used.")
        scope, offline = _refresh_scope(rp, session.remember, grant.scope)
        refresh = None
        if rp.allows_grant("refresh_token"):
            refresh = {
                "family_id": family_id,
                "client_id": rp.client_id,
                "user_id": member.id,
                "session_id": session.id,
                "scope": scope,
                "offline": offline,
                "auth_time": grant.auth_time,
                "amr": grant.amr,
                "acr": grant.acr,
            }
        body = _token_response(
            client=rp,
            member=member,
            scope=scope,
            session_id=session.id,
            family_id=family_id,
            auth_time=grant.auth_time,
            amr=grant.amr,
            acr=grant.acr,
            nonce=grant.nonce,
            refresh=refresh,
        )
        db.session.commit()
        return 200, body, NO_STORE


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshAdapter | None:
        grant = tokens.find_refresh_token(refresh_token, self.request.client.client_id)
        return _RefreshAdapter(grant) if grant else None

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        grant: tokens.RefreshGrant = self.request.refresh_token.grant
        rp: RelyingParty = self.request.client.rp
        try:
            member = accounts.get(grant.user_id)
        except NotFoundError:
            member = None
        if member is None or member.disabled:
            raise AuthlibInvalidGrant("The account behind this token is unavailable.")
        if not tokens.spend_refresh_token(grant):
            db.session.rollback()
            raise AuthlibInvalidGrant("The refresh token was already used.")
        scope = self.request.payload.scope or grant.scope
        scope = " ".join(s for s in grant.scope.split() if s in scope.split())
        refresh = {
            "family_id": grant.family_id,
            "client_id": rp.client_id,
            "user_id": member.id,
            "session_id": grant.session_id,
            "scope": grant.scope,  # narrowing applies to this access token only
            "offline": grant.offline,
            "auth_time": grant.auth_time,
            "amr": grant.amr,
            "acr": grant.acr,
        }
        body = _token_response(
            client=rp,
            member=member,
            scope=scope,
            session_id=grant.session_id,
            family_id=grant.family_id,
            auth_time=grant.auth_time,
            amr=grant.amr,
            acr=grant.acr,
            nonce=None,
            refresh=refresh,
        )
        db.session.commit()
        return 200, body, NO_STORE


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_token_request(self) -> None:
        super().validate_token_request()
        asked = set((self.request.payload.scope or "").split())
        rp: RelyingParty = self.request.client.rp
        if asked & USER_SCOPES or not asked <= rp.scopes:
            raise AuthlibInvalidScope("The client may not request this scope.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        rp: RelyingParty = self.request.client.rp
        scope = " ".join(sorted(set((self.request.payload.scope or "").split())))
        body = _token_response(
            client=rp,
            member=None,
            scope=scope,
            session_id=None,
            family_id=None,
            auth_time=None,
            amr=(),
            acr="",
            nonce=None,
            refresh=None,
        )
        db.session.commit()
        return 200, body, NO_STORE


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
