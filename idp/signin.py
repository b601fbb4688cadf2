"""Sign-in: a person proves who they are (password, passkey, QR) and gets a session.

Each way in is one service: it checks the proof, asks the risk rules
(``idp.risk``) what the sign-in needs, opens (or renews) the sign-in session
-- held for an extra check when the rules say so -- records the attempt,
mails the login notification when one is due and, when the sign-in belongs
to an authorization request, finishes that interaction's sign-in step: one
transaction, which says where the browser goes next.  The pages set the
cookie and redirect.

A failed password is counted and recorded whether or not the account
exists: the same work, the same write and the same answer for an unknown
user ID, a wrong password and a locked account."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from idp import (
    accounts,
    alerts,
    clock,
    events,
    geo,
    interactions,
    members,
    passkeys,
    qr,
    risk,
    runtime,
    sessions,
    step_up,
)
from idp.db import refuse, service
from idp.errors import (
    AccountDisabledError,
    EmailNotVerifiedError,
    InvalidCredentialsError,
    PasskeyError,
    RateLimitedError,
    SignInError,
)
from idp.interactions import Step
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

    @property
    def country(self) -> str | None:
        return geo.country_of(self.ip, runtime.current().settings.geoip.database)


@dataclass(frozen=True, slots=True)
class Completed:
    session: SessionInfo
    cookie_value: str
    """For the ``idp_session`` cookie; the server keeps only its digest."""
    next_url: str
    """The next step of the authorization request, or the page asked for --
    the extra check first when the sign-in is held."""


def _signals(
    *, member_id: str, method: str, browser: Browser, country: str | None
) -> risk.SignInSignals:
    settings = runtime.current().settings
    now = clock.now()
    seen = alerts.sightings(member_id, device_id=browser.device_id, country=country)
    return risk.SignInSignals(
        method=method,
        recent_password_failures=risk.password_guard(member_id).count() if method == "pwd" else 0,
        country=country,
        countries_active_elsewhere=sessions.countries_active_since(
            member_id, now - dt.timedelta(hours=settings.risk.travel_hours)
        ),
        device_suspect=sessions.device_forced_out_since(
            browser.device_id, now - dt.timedelta(hours=settings.risk.suspect_device_hours)
        ),
        device_seen=seen.device_seen,
        country_seen=seen.country_seen,
        last_sign_in=seen.last_sign_in,
        now=now,
    )


def _complete(
    *,
    member_id: str,
    method: str,
    amr: list[str],
    remember: bool,
    browser: Browser,
    interaction: str | None,
    next_path: str,
) -> Completed:
    settings = runtime.current().settings
    if interaction and not members.get(member_id).email_verified:
        # The account may see its own pages, not sign in to a service.
        raise EmailNotVerifiedError(detail="email not verified")
    country = browser.country
    decision = risk.assess_sign_in(
        _signals(member_id=member_id, method=method, browser=browser, country=country),
        settings.risk,
        absence_days=settings.alerts.absence_days,
    )
    held = decision.action is risk.Action.STEP_UP
    if method == "pwd" and not held:
        risk.password_guard(member_id).clear()  # the owner is back: mistypes start over
    started = sessions.start(
        user_id=member_id,
        policy=settings.session,
        remember=remember,
        amr=amr,
        ip=browser.ip,
        user_agent=browser.user_agent,
        device_id=browser.device_id,
        country=country,
        replaces=browser.session_id,
        held=held,
    )
    session = started.session
    alerts.remember(user_id=member_id, device_id=browser.device_id, country=country)
    asked = held and step_up.ask(session.id, decision.reasons)
    if interaction:
        nxt = interactions.finish_login(interaction, session=session)
        target = nxt.url
        if nxt.step is Step.STEP_UP and not held:
            # The service asks for more than this sign-in gave (acr_values).
            asked = step_up.ask(session.id, nxt.reasons)
    elif held:
        target = settings.url(f"/login/step-up?next={quote(next_path, safe='/')}")
    else:
        target = settings.url(next_path)
    notice = list(decision.reasons) + (["step_up"] if asked else [])
    if notice:
        alerts.notify(user_id=member_id, ip=browser.ip, country=country, reasons=notice)
    events.record_attempt(
        user_id=member_id,
        method=method,
        result="step_up" if held else "success",
        reason=",".join(decision.reasons),
        device_id=browser.device_id,
        user_agent=browser.user_agent,
        ip=browser.ip,
        country=country,
    )
    return Completed(session=session, cookie_value=started.cookie_value, next_url=target)


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
    An address that failed often across accounts waits before its password
    is checked; a failure is answered after the delay of ``idp.risk``; while
    the account's password sign-ins are locked, the right password too is
    answered as a wrong one."""
    if interaction:
        interactions.next_step(interaction, session=None)  # unusable: fail before any work
    settings = runtime.current().settings
    rate = settings.ratelimit.signin
    account = accounts.login_key(login)
    account_key = f"signin|{account}|{browser.ip}"
    address_key = f"signin-ip|{browser.ip}"
    if (retry := failures().blocked(rate, account_key)) is not None or (
        retry := failures().blocked(across_accounts(rate), address_key)
    ) is not None:
        raise RateLimitedError(retry_after_seconds=retry)
    address = risk.address_guard(browser.ip)
    if slowdown := risk.address_delay(address.count(), settings.risk):
        time.sleep(slowdown)  # every attempt from the address, before the check
    guard = risk.password_guard(account)
    locked = guard.locked()
    try:
        member = accounts.authenticate(login, password)
        if locked:
            # The right password during a lock gets the wrong-password answer.
            raise InvalidCredentialsError(detail="password sign-in locked")
    except SignInError as e:
        _refuse_password(e, account=account, browser=browser, keys=(account_key, address_key))
    return _complete(
        member_id=member.id,
        method="pwd",
        amr=["pwd"],
        remember=remember,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )


def _refuse_password(
    error: SignInError, *, account: str, browser: Browser, keys: tuple[str, str]
) -> None:
    """Count and record a refused password, then answer after the delay."""
    rate = runtime.current().settings.ratelimit.signin
    disabled = isinstance(error, AccountDisabledError)
    hold = 0.0

    def record() -> None:
        nonlocal hold
        reason = "account_disabled"
        if not disabled:
            decision = risk.assess_password_failure(
                risk.password_guard(account).failed(), runtime.current().settings.risk
            )
            risk.address_guard(browser.ip).failed()
            hold, reason = decision.delay_seconds, decision.reasons[0]
            if error.detail == "unknown user":
                reason = "unknown_user"
        events.record_attempt(
            user_id=None if account.startswith("name:") else account,
            method="pwd",
            result="failure",
            reason=reason,
            device_id=browser.device_id,
            user_agent=browser.user_agent,
            ip=browser.ip,
            country=browser.country,
        )
        account_key, address_key = keys
        failures().count(rate, account_key)
        failures().count(across_accounts(rate), address_key)

    try:
        refuse(error, record=record)
    finally:
        # After the commit: nothing is locked while the answer waits.
        time.sleep(hold)


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
    try:
        member, _ = passkeys.authenticate(credential, purpose="signin", ip=browser.ip)
    except PasskeyError as e:
        reason = e.detail or "refused"
        refuse(e, record=lambda: _record_failure(browser, "passkey", reason))
    return _complete(
        member_id=member.id,
        method="passkey",
        amr=list(passkeys.AMR),
        remember=remember,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )


def _record_failure(browser: Browser, method: str, reason: str) -> None:
    events.record_attempt(
        user_id=None,
        method=method,
        result="failure",
        reason=reason,
        device_id=browser.device_id,
        user_agent=browser.user_agent,
        ip=browser.ip,
        country=browser.country,
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
        method="qr",
        amr=list(qr.AMR),
        remember=False,
        browser=browser,
        interaction=interaction,
        next_path=next_path,
    )
