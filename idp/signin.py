"""Sign-in: a person proves who they are (password, passkey, QR) and gets a session.

Each way in is one service: it checks the proof, opens (or renews) the
sign-in session and, when the sign-in belongs to an authorization request,
finishes that interaction's sign-in step -- one transaction -- and says
where the browser goes next.  The pages set the cookie and redirect.

A failed password is counted (``idp.ratelimit``) and recorded in the audit
log whether or not the account exists: the same work, the same write and the
same answer for an unknown user ID and a wrong password."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from idp import accounts, alerts, events, interactions, passkeys, qr, risk, runtime, sessions
from idp.db import refuse, service
from idp.errors import (
    AccountDisabledError,
    EmailNotVerifiedError,
    InvalidCredentialsError,
    RateLimitedError,
    SignInError,
)
from idp.ratelimit import across_accounts, failures
from idp.sessions import SessionInfo

__all__ = ["Browser", "Completed", "with_passkey", "with_password", "with_qr"]


@dataclass(frozen=True, slots=True)
class Browser:
    """Where a sign-in comes from."""

    ip: str
    user_agent: str
    device_id: str | None
    session_id: str | None
    """The browser's current session, renewed by the same person signing in again."""


@dataclass(frozen=True, slots=True)
class Completed:
    session: SessionInfo
    cookie_value: str
    """For the ``idp_session`` cookie; the server keeps only its digest."""
    next_url: str
    """The next step of the authorization request, or the page asked for."""


def _complete(
    *,
    member_id: str,
    amr: list[str],
    remember: bool,
    browser: Browser,
    interaction: str | None,
    next_path: str,
) -> Completed:
    settings = runtime.current().settings
    if interaction and not accounts.get(member_id).email_verified:
        # The account may see its own pages, not sign in to a service.
        raise EmailNotVerifiedError(detail="email not verified")
    started = sessions.start(
        user_id=member_id,
        policy=settings.session,
        remember=remember,
        amr=amr,
        ip=browser.ip,
        user_agent=browser.user_agent,
        device_id=browser.device_id,
        replaces=browser.session_id,
    )
    alerts.note_sign_in(
        user_id=member_id,
        device_id=browser.device_id,
        ip=browser.ip,
        country=started.session.country,
    )
    if interaction:
        target = interactions.finish_login(interaction, session=started.session)
    else:
        target = settings.url(next_path)
    return Completed(session=started.session, cookie_value=started.cookie_value, next_url=target)


@service
def with_password(
    *,
    login: str,
    password: str,
    remember: bool,
    browser: Browser,
    interaction: str | None = None,
    next_path: str = "/account",
) -> Completed:
    """Sign in with a user ID (or email) and password.

    Raises RateLimitedError when this address failed too often for this
    account or across accounts (the password is then not checked),
    InvalidCredentialsError or AccountDisabledError (recorded, counted).
    A failure is answered after the delay of ``idp.risk``; while the
    account's password sign-ins are locked, the right password too is
    answered as a wrong one."""
    if interaction:
        interactions.next_step(interaction, session=None)  # unusable: fail before any work
    rate = runtime.current().settings.ratelimit.signin
    account_key = f"signin|{accounts.login_key(login)}|{browser.ip}"
    address_key = f"signin-ip|{browser.ip}"
    if (retry := failures().blocked(rate, account_key)) is not None or (
        retry := failures().blocked(across_accounts(rate), address_key)
    ) is not None:
        raise RateLimitedError(retry_after_seconds=retry)
    guard = risk.password_guard(accounts.login_key(login))
    locked = guard.locked()
    try:
        member = accounts.authenticate(login, password)
        if locked:
            # The right password during a lock gets the wrong-password answer.
            raise InvalidCredentialsError(detail="password sign-in locked")
    except SignInError as e:
        refused = e
        hold = 0.0

        def record() -> None:
            nonlocal hold
            user_id = accounts.login_key(login)
            events.record(
                "signin.refused" if isinstance(refused, AccountDisabledError) else "signin.failed",
                user_id=None if user_id.startswith("name:") else user_id,
                ip=browser.ip,
                method="pwd",
                reason=refused.detail,
            )
            failures().count(rate, account_key)
            failures().count(across_accounts(rate), address_key)
            if not isinstance(refused, AccountDisabledError):
                hold = guard.failed()

        try:
            refuse(e, record=record)
        finally:
            # After the commit: nothing is locked while the answer waits.
            time.sleep(hold)
    return _complete(
        member_id=member.id,
        amr=["pwd"],
        remember=remember,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )


@service
def with_passkey(
    *,
    credential: dict[str, Any],
    remember: bool,
    browser: Browser,
    interaction: str | None = None,
    next_path: str = "/account",
) -> Completed:
    """Sign in with a discoverable passkey (no user ID typed).  Raises
    PasskeyError (recorded) or InteractionError."""
    if interaction:
        interactions.next_step(interaction, session=None)
    member, _ = passkeys.authenticate(credential, purpose="signin", ip=browser.ip)
    return _complete(
        member_id=member.id,
        amr=list(passkeys.AMR),
        remember=remember,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )


@service
def with_qr(*, public_id: str, binding: str | None, browser: Browser) -> Completed:
    """The browser that showed a QR code collects the phone's approval, once,
    and continues where it came from.  Raises QrError or InteractionError."""
    user_id, status = qr.collect(public_id, binding)
    interaction = None
    next_path = "/account"
    if status.return_to.startswith("interaction:"):
        interaction = status.return_to.removeprefix("interaction:")
    else:
        next_path = status.return_to
    return _complete(
        member_id=user_id,
        amr=list(qr.AMR),
        remember=False,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )
