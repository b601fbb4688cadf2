"""The one error hierarchy of the provider.

::

    IdpError
    ├── ConfigError                 start-up stops; message names the key
    ├── UsageError                  a bad CLI argument (exit status 2)
    ├── NotFoundError               an unknown user, client, session
    ├── NotAllowedError             the actor may not do this
    ├── ConflictError               a username or email already taken
    ├── SignInError                 what a person sees on the sign-in page
    │   ├── InvalidCredentialsError same text for unknown user and bad password
    │   ├── AccountDisabledError
    │   └── RateLimitedError
    ├── InteractionError            an unknown, expired or foreign interaction
    ├── AuthorizationPageError      an authorization error that must not redirect
    └── OAuthError                  the wire error codes of RFC 6749 / OIDC
        ├── InvalidRequestError, InvalidClientError, InvalidGrantError,
        ├── UnauthorizedClientError, UnsupportedGrantTypeError,
        ├── UnsupportedResponseTypeError, InvalidScopeError, AccessDeniedError,
        ├── LoginRequiredError, ConsentRequiredError, InteractionRequiredError,
        ├── RequestNotSupportedError, RequestUriNotSupportedError,
        ├── InvalidTokenError, InsufficientScopeError, ServerError
        └── UnsupportedTokenTypeError

Each surface renders them in one place: JSON at the API endpoints
(``idp.protocol.endpoints``), a redirect only when ``redirectable`` and the
redirect URI was verified, a page in ``consent_ui``.  ``description`` goes to
the client (fixed ASCII, no secrets); ``detail`` goes to logs and audit only,
as node-oidc-provider splits ``error_description`` from ``error_detail``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "AccountDisabledError",
    "AuthorizationPageError",
    "ConfigError",
    "ConflictError",
    "ConsentRequiredError",
    "IdpError",
    "InsufficientScopeError",
    "InteractionError",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidCredentialsError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "LoginRequiredError",
    "NotAllowedError",
    "NotFoundError",
    "OAuthError",
    "RateLimitedError",
    "RequestNotSupportedError",
    "RequestUriNotSupportedError",
    "ServerError",
    "SignInError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "UnsupportedTokenTypeError",
    "UsageError",
]


class IdpError(Exception):
    """Base of every error the provider raises on purpose."""


class ConfigError(IdpError):
    """The configuration cannot be used; start-up stops."""


class UsageError(IdpError):
    """A command-line argument is wrong."""


class NotFoundError(IdpError):
    """The thing named does not exist (or is not visible to the actor)."""


class NotAllowedError(IdpError):
    """The actor may not perform this action."""


class ConflictError(IdpError):
    """The value is already taken."""


class InteractionError(IdpError):
    """The sign-in step cannot continue: unknown, expired or already used."""


class SignInError(IdpError):
    """A refusal shown to the person on the sign-in page."""

    message: ClassVar[str] = "Sign-in failed."

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.message)
        self.detail = detail


class InvalidCredentialsError(SignInError):
    message = "The user ID or password is incorrect."


class AccountDisabledError(SignInError):
    message = "This account is locked. Contact support to unlock it."


class RateLimitedError(SignInError):
    message = "Too many attempts. Wait a minute and try again."

    def __init__(self, detail: str = "", *, retry_after_seconds: int = 60) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class OAuthError(IdpError):
    """An error with an RFC 6749 / OIDC wire code."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400
    redirectable: ClassVar[bool] = True

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail

    def to_json(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    error = "invalid_client"
    status_code = 401
    redirectable = False


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class UnsupportedTokenTypeError(OAuthError):
    error = "unsupported_token_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class AccessDeniedError(OAuthError):
    error = "access_denied"
    status_code = 403


class LoginRequiredError(OAuthError):
    error = "login_required"


class ConsentRequiredError(OAuthError):
    error = "consent_required"


class InteractionRequiredError(OAuthError):
    error = "interaction_required"


class RequestNotSupportedError(OAuthError):
    """OIDC Core 3.1.2.6: the ``request`` parameter is not supported."""

    error = "request_not_supported"


class RequestUriNotSupportedError(OAuthError):
    """OIDC Core 3.1.2.6: the ``request_uri`` parameter is not supported."""

    error = "request_uri_not_supported"


class InvalidTokenError(OAuthError):
    error = "invalid_token"
    status_code = 401
    redirectable = False


class InsufficientScopeError(OAuthError):
    error = "insufficient_scope"
    status_code = 403
    redirectable = False


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class AuthorizationPageError(IdpError):
    """An authorization error that must not be redirected (unknown client or
    unverified redirect URI): the pages show it to the person instead."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description or error.error)
        self.error = error
