"""Which prompt an authorization request needs, and why.

Named checks with reasons, as node-oidc-provider's interaction policy: the
authorization endpoint asks :func:`decide` and either issues a code at once,
starts an interaction for ``login`` or ``consent``, or (``prompt=none``)
answers with ``login_required`` / ``consent_required``.  No I/O here: the
caller passes the session, client and remembered consent in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from idp.clients import RelyingParty
from idp.errors import ConsentRequiredError, InvalidRequestError, LoginRequiredError
from idp.sessions import SessionInfo

__all__ = ["Decision", "decide", "parse_max_age", "parse_prompt"]

PROMPTS = frozenset({"none", "login", "consent", "select_account"})


@dataclass(frozen=True, slots=True)
class Decision:
    prompt: str | None
    """None: issue now; else ``login`` or ``consent``."""
    reasons: tuple[str, ...]


def parse_prompt(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    prompts = frozenset(value.split())
    unknown = prompts - PROMPTS
    if unknown:
        raise InvalidRequestError(f"Unsupported prompt value '{sorted(unknown)[0]}'.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    return prompts


def parse_max_age(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer.")
    return int(value)


def login_reasons(
    *,
    session: SessionInfo | None,
    user_disabled: bool,
    client: RelyingParty,
    prompts: frozenset[str],
    max_age: int | None,
    idle_minutes: int,
    now: dt.datetime,
) -> list[str]:
    """Why the person must (re-)authenticate; empty when the session serves."""
    if session is None:
        return ["no_session"]
    reasons = []
    if user_disabled:
        reasons.append("account_disabled")
    if "login" in prompts:
        reasons.append("login_prompt")
    if max_age is not None and (
        max_age == 0 or (now - session.auth_time).total_seconds() > max_age
    ):
        reasons.append("max_age")
    if (
        not client.allow_stay_signed_in
        and session.remember
        and now - session.auth_time > dt.timedelta(minutes=idle_minutes)
    ):
        # A service that refuses long-lived sign-ins (a bank) is not served by
        # one older than an ordinary browser session would be.
        reasons.append("client_refuses_stay_signed_in")
    return reasons


def decide(
    *,
    session: SessionInfo | None,
    user_disabled: bool,
    client: RelyingParty,
    prompts: frozenset[str],
    max_age: int | None,
    consent_given: bool,
    idle_minutes: int,
    now: dt.datetime,
) -> Decision:
    """The next step of an authorization request.

    Raises LoginRequiredError / ConsentRequiredError for ``prompt=none``
    when a step would need the person."""
    reasons = login_reasons(
        session=session,
        user_disabled=user_disabled,
        client=client,
        prompts=prompts,
        max_age=max_age,
        idle_minutes=idle_minutes,
        now=now,
    )
    if reasons:
        if "none" in prompts:
            raise LoginRequiredError("The person must sign in.", detail=",".join(reasons))
        return Decision(prompt="login", reasons=tuple(reasons))
    consent_reasons = consent_needed(client=client, prompts=prompts, consent_given=consent_given)
    if consent_reasons:
        if "none" in prompts:
            raise ConsentRequiredError("The person must consent.", detail=",".join(consent_reasons))
        return Decision(prompt="consent", reasons=tuple(consent_reasons))
    return Decision(prompt=None, reasons=())


def consent_needed(
    *, client: RelyingParty, prompts: frozenset[str], consent_given: bool
) -> list[str]:
    if "consent" in prompts:
        return ["consent_prompt"]
    if client.first_party or consent_given:
        return []
    return ["scopes_not_granted"]
