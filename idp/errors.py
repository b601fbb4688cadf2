"""The one error hierarchy of the provider.

::

    IdpError                        description (public) and detail (private)
    ├── ConfigError                 start-up stops; message names the key
    ├── UsageError                  a bad CLI argument or form value (exit status 2)
    ├── NotFoundError               an unknown user, client, session
    ├── NotAllowedError             the actor may not do this
    ├── ConflictError               a username or email already taken
    ├── RateLimitedError            too many failures: 429 with Retry-After
    ├── SignInError                 what a person sees on the sign-in page
    │   ├── InvalidCredentialsError same text for unknown user and bad password
    │   ├── AccountDisabledError
    │   └── EmailNotVerifiedError   no service before the address is confirmed
    ├── PasskeyError                a passkey ceremony was refused
    ├── QrError                     a QR sign-in step was refused
    ├── LinkError                   a mailed link is unknown, used or expired
    ├── OtpError                    a one-time code (or birth date) was refused
    │   └── StepUpRefusedError      the fifth wrong answer: the sign-in is refused
    ├── InteractionError            an unknown, expired or foreign interaction
    ├── DeliveryFailedError         one outbox delivery attempt failed
    ├── AuthorizationPageError      an authorization error that must not redirect
    └── OAuthError                  the wire error codes of RFC 6749 / OIDC
        ├── InvalidRequestError, InvalidClientError, InvalidGrantError,
        ├── UnauthorizedClientError, UnsupportedGrantTypeError,
        ├── UnsupportedResponseTypeError, InvalidScopeError, AccessDeniedError,
        ├── LoginRequiredError, ConsentRequiredError, InteractionRequiredError,
        ├── RequestNotSupportedError, RequestUriNotSupportedError,
        ├── InvalidTokenError, InsufficientScopeError, ServerError
        └── UnsupportedTokenTypeError

Every error carries a ``description`` that may be shown (to a person or a
client: fixed text, never an echo of what the request sent, no secrets) and
a ``detail`` for logs and audit only, as node-oidc-provider splits
``error_description`` from ``error_detail``.

Each surface renders them in one place, chosen by the blueprint that served
the request: JSON at the protocol and admin endpoints, pages in
``consent_ui``.  An :class:`OAuthError` raised at the authorization endpoint
carries the verified redirect URI and ``state``; it is redirected only when
it has them and is ``redirectable``, else it becomes an
:class:`AuthorizationPageError`.  A library's exceptions become ours (``from
e``) in the module that wraps the library.
"""

from __future__ import annotations

from typing import ClassVar

from idp.texts import N_

__all__ = [
    "AccessDeniedError",
    "AccountDisabledError",
    "AuthorizationPageError",
    "ConfigError",
    "ConflictError",
    "ConsentRequiredError",
    "DeliveryFailedError",
    "EmailNotVerifiedError",
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
    "LinkError",
    "LoginRequiredError",
    "NotAllowedError",
    "NotFoundError",
    "OAuthError",
    "OtpError",
    "PasskeyError",
    "QrError",
    "RateLimitedError",
    "RequestNotSupportedError",
    "RequestUriNotSupportedError",
    "ServerError",
    "SignInError",
    "StepUpRefusedError",
    "UnauthorizedClientError",
    "UnavailableError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "UnsupportedTokenTypeError",
    "UsageError",
]


class IdpError(Exception):
    """Base of every error the provider raises on purpose."""

    default_description: ClassVar[str] = N_("Something went wrong.")

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        self.description = description or self.default_description
        self.detail = detail
        super().__init__(self.description)


class ConfigError(IdpError):
    """The configuration cannot be used; start-up stops."""


class SealedValueError(IdpError):
    """A value sealed at rest (``idp.sealing``) that the data key cannot
    open: altered, moved to another row, or sealed under another key."""


class UsageError(IdpError):
    """A command-line argument or a form value is wrong."""


class NotFoundError(IdpError):
    """The thing named does not exist (or is not visible to the actor)."""


class NotAllowedError(IdpError):
    """The actor may not perform this action."""


class ConflictError(IdpError):
    """The value is already taken."""


class UnavailableError(IdpError):
    """The database did not answer (down, restarting, out of connections, or
    SQLite's lock held past its timeout): 503 with ``Retry-After``, so that a
    load balancer and a client try again instead of taking it as a fault."""

    default_description = N_("The service is unavailable for a moment. Try again shortly.")
    retry_after_seconds: ClassVar[int] = 5


class RateLimitedError(IdpError):
    """Too many failures from here: answered 429 with ``Retry-After``."""

    default_description = N_("Too many attempts. Wait a minute and try again.")

    def __init__(
        self, description: str = "", *, detail: str = "", retry_after_seconds: int = 60
    ) -> None:
        super().__init__(description, detail=detail)
        self.retry_after_seconds = max(1, retry_after_seconds)


class SignInError(IdpError):
    """A refusal shown to the person on the sign-in page."""

    default_description = N_("Sign-in failed.")


class InvalidCredentialsError(SignInError):
    default_description = N_("The user ID or password is incorrect.")


class AccountDisabledError(SignInError):
    default_description = N_("This account is locked. Contact support to unlock it.")


class EmailNotVerifiedError(SignInError):
    default_description = N_(
        "Confirm your email address first: open the link we mailed you when you registered."
    )


class PasskeyError(IdpError):
    """A passkey ceremony was refused; the description is what the person sees."""

    default_description = N_("The passkey could not be verified.")


class QrError(IdpError):
    """A QR sign-in step was refused; the description is what the person sees."""

    default_description = N_("This sign-in request cannot be used.")


class LinkError(IdpError):
    """A mailed link cannot be used: unknown, used already, or expired."""

    default_description = N_("This link cannot be used. Ask for a new one.")


class OtpError(IdpError):
    """A one-time code, recovery code or birth date was not accepted."""

    default_description = N_("That code is not right. Try again.")


class StepUpRefusedError(OtpError):
    """The fifth wrong answer to an extra check: the sign-in is refused for good."""

    default_description = N_(
        "Too many wrong answers: this sign-in was refused. Start again from the service."
    )


class InteractionError(IdpError):
    """The sign-in step cannot continue: unknown, expired or already used."""

    default_description = N_("This sign-in request is unknown.")


class DeliveryFailedError(IdpError):
    """One delivery attempt of an outbox message failed.

    ``permanent``: another attempt cannot succeed (a refused address)."""

    def __init__(self, detail: str, *, permanent: bool = False) -> None:
        super().__init__("The message could not be delivered.", detail=detail)
        self.permanent = permanent

    def __str__(self) -> str:
        return self.detail


class OAuthError(IdpError):
    """An error with an RFC 6749 / OIDC wire code.

    At the authorization endpoint it carries the verified ``redirect_uri``
    and the request's ``state``, so that it can be sent back to the client."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400
    redirectable: ClassVar[bool] = True

    def __init__(
        self,
        description: str = "",
        *,
        detail: str = "",
        redirect_uri: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(description or self.error, detail=detail)
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    def to_json(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def with_redirect(self, redirect_uri: str, state: str | None) -> OAuthError:
        """The same error, addressed to a verified redirect URI."""
        return type(self)(
            self.description, detail=self.detail, redirect_uri=redirect_uri, state=state
        )


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
        super().__init__(error.description or error.error, detail=error.detail)
        self.error = error
