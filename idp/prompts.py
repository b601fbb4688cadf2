"""What an authorization request needs next, and why.

The steps of authorization in their order -- sign in, step up, consent --
each a named check with reasons, as node-oidc-provider's interaction
policy.  :func:`decide` is the one function that says which step comes
next; ``idp.interactions`` asks it when a request starts, whenever a page
loads, and before a code is issued, so the decision cannot drift between
places.  No I/O here: the caller passes everything in.

The step-up step sits between sign-in and consent.  Its reasons come from
the caller (a sign-in the risk rules held, or ``acr_values`` the session has
not reached); once the session passed it they are gone and the request goes
on to consent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from idp.clients import RelyingParty
from idp.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    InvalidRequestError,
    LoginRequiredError,
    OAuthError,
)
from idp.sessions import SessionInfo, serves_client

__all__ = [
    "NextStep",
    "Situation",
    "Step",
    "decide",
    "parse_max_age",
    "parse_prompt",
    "silent_failure",
]

PROMPTS = frozenset({"none", "login", "consent", "select_account"})


class Step(StrEnum):
    """The steps of an authorization request, in the order they are asked."""

    LOGIN = "login"
    STEP_UP = "step_up"
    CONSENT = "consent"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class NextStep:
    step: Step
    reasons: tuple[str, ...]
    """Why the step is asked: ``no_session``, ``login_prompt``, ``max_age``,
    ``client_refuses_stay_signed_in``, ``account_disabled``, ``email_not_verified``,
    ``consent_prompt``, ``scopes_not_granted`` or a step-up reason."""


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything :func:`decide` looks at."""

    session: SessionInfo | None
    """The browser's sign-in session, if this request may use it."""
    member_disabled: bool
    member_unverified: bool
    """The member has not opened the link mailed to confirm the address."""
    client: RelyingParty
    prompts: frozenset[str]
    max_age: int | None
    signed_in_here: bool
    """The person signed in during this very request: ``prompt=login`` and
    ``max_age`` are then satisfied."""
    consent_given: bool
    """Earlier consent covers every scope asked for."""
    consent_decided_here: bool
    step_up_reasons: tuple[str, ...]
    """Why the session must pass an extra check first (empty: it need not):
    its sign-in was held by the risk rules, or the client asks for more than
    the session reached.  Passing it empties them."""
    idle_minutes: int
    now: dt.datetime


def parse_prompt(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    prompts = frozenset(value.split())
    if prompts - PROMPTS:
        raise InvalidRequestError("The prompt parameter has an unsupported value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    return prompts


def parse_max_age(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer.")
    return int(value)


def login_reasons(s: Situation) -> list[str]:
    """Why the person must (re-)authenticate; empty when the session serves."""
    session = s.session
    if session is None:
        return ["no_session"]
    reasons = []
    if s.member_disabled:
        reasons.append("account_disabled")
    if s.member_unverified:
        # The account may use its own pages, not sign in to a service.
        reasons.append("email_not_verified")
    if s.signed_in_here:
        return reasons
    if "login" in s.prompts:
        reasons.append("login_prompt")
    if s.max_age is not None and (
        s.max_age == 0 or (s.now - session.auth_time).total_seconds() > s.max_age
    ):
        reasons.append("max_age")
    if not serves_client(
        session,
        allow_stay_signed_in=s.client.allow_stay_signed_in,
        idle_minutes=s.idle_minutes,
        now=s.now,
    ):
        # A service that refuses long-lived sign-ins (a bank) is not served by
        # one older than an ordinary browser session would be.
        reasons.append("client_refuses_stay_signed_in")
    return reasons


def consent_reasons(s: Situation) -> list[str]:
    if s.consent_decided_here:
        return []
    if "consent" in s.prompts:
        return ["consent_prompt"]
    if s.client.first_party or s.consent_given:
        return []
    return ["scopes_not_granted"]


def decide(s: Situation) -> NextStep:
    """The next step of an authorization request."""
    if reasons := login_reasons(s):
        return NextStep(Step.LOGIN, tuple(reasons))
    if s.step_up_reasons:
        return NextStep(Step.STEP_UP, s.step_up_reasons)
    if reasons := consent_reasons(s):
        return NextStep(Step.CONSENT, tuple(reasons))
    return NextStep(Step.DONE, ())


def silent_failure(next_step: NextStep) -> OAuthError:
    """What ``prompt=none`` answers when a step would need the person
    (OIDC Core 3.1.2.6)."""
    detail = ",".join(next_step.reasons)
    if next_step.step is Step.LOGIN:
        return LoginRequiredError("The person must sign in.", detail=detail)
    if next_step.step is Step.CONSENT:
        return ConsentRequiredError("The person must consent.", detail=detail)
    return InteractionRequiredError("The person must confirm the sign-in.", detail=detail)
