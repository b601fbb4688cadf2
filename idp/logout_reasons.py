"""Why a session ended: the reasons a forced logout (``idp.forced_logout``)
records in the audit log and on the session.

A module of its own, importing nothing of the provider: the command line
offers the reasons an admin may give (``idp sessions revoke --reason``)
before it loads any service."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MISUSE_REASONS", "LogoutReason"]


class LogoutReason(StrEnum):
    """Why a session ended: recorded in the audit log and on the session."""

    SIGNOUT = "signout"
    """The person signed out of this browser (offline tokens survive)."""
    RP_LOGOUT = "rp_logout"
    """A relying service asked (RP-initiated logout; offline tokens survive)."""
    USER_REVOKED = "user_revoked"
    """The person ended another of their sessions ("sign out other devices")."""
    ADMIN = "admin"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 - a reason, not a secret
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_DELETED = "account_deleted"
    ACCOUNT_CANCELLED = "account_cancelled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    STEP_UP_REFUSED = "step_up_refused"
    """The fifth wrong answer to an extra check."""
    REPLACED = "replaced"
    """Another account signed in on the same browser."""


MISUSE_REASONS = frozenset(
    {
        LogoutReason.REFRESH_TOKEN_REUSE,
        LogoutReason.SUSPICIOUS_ACTIVITY,
        LogoutReason.STEP_UP_REFUSED,
    }
)
