"""Interactions: the state machine of an authorization request.

The authorization endpoint validates a request and calls :func:`start`,
which binds the browser's sign-in session at once and asks
``idp.prompts.decide`` what comes next: nothing (a code is issued now),
or a step for the person -- sign in, step up, consent.  Then the request is
stored under a random uid and the browser goes to that step's page.  Each
page asks :func:`next_step` what to show, and finishes its step through one
call (:func:`finish_login` from the sign-in service, :func:`finish_consent`,
:func:`abort`) that records the answer and returns the next URL.
``/authorize/resume/<uid>`` calls :func:`resume`, which only issues the code
(or the error) once every step is done.  This is node-oidc-provider's
interaction and Hydra's login challenge: the protocol never renders and the
UI never decides.

An interaction is single use (spent by a conditional update in the
transaction that issues its code), expires after
``tokens.interaction_ttl_seconds`` and is bound to one sign-in session: the
browser's at the start, or the one a sign-in through it opens.  A page in
another browser, holding only the uid, is asked to sign in first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from idp import (
    acr,
    clients,
    clock,
    codes,
    consents,
    events,
    members,
    runtime,
    step_up,
)
from idp.authorization_requests import AuthorizationRequest, error_redirect, to_client
from idp.clients import RelyingParty
from idp.db import db, delete_batch, new_secret, refuse, rowcount, secret_hash, service
from idp.errors import (
    AccessDeniedError,
    InteractionError,
    NotFoundError,
    StepUpRefusedError,
)
from idp.models import Interaction
from idp.prompts import NextStep, Situation, Step, decide, silent_failure
from idp.sessions import SessionInfo

__all__ = [
    "Next",
    "Pending",
    "Step",
    "abort",
    "finish_consent",
    "finish_login",
    "finish_step_up",
    "forget_user",
    "next_step",
    "purge_expired",
    "resume",
    "start",
    "step_up_question",
]

_STEP_PAGES = {Step.LOGIN: "/login", Step.STEP_UP: "/login/step-up", Step.CONSENT: "/consent"}


@dataclass(frozen=True, slots=True)
class Pending:
    """An interaction as its pages see it: what to ask, and why."""

    uid: str
    step: Step
    reasons: tuple[str, ...]
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    login_hint: str
    user_id: str | None
    expires_at: dt.datetime

    @property
    def url(self) -> str:
        """The page of this step (the resume endpoint once all are done)."""
        return _step_url(self.uid, self.step)


def _step_url(uid: str, step: Step) -> str:
    settings = runtime.current().settings
    if step is Step.DONE:
        return settings.url(f"/authorize/resume/{uid}")
    return settings.url(f"{_STEP_PAGES[step]}?interaction={uid}")


def step_up_reasons(request: AuthorizationRequest, session: SessionInfo | None) -> tuple[str, ...]:
    """Why this request needs a step-up of the session: the risk rules held
    its sign-in (``idp.step_up`` has their reasons), or the client asked for
    the strong level (``acr_values``) and the session has not reached it."""
    if session is None:
        return ()
    if session.held:
        return step_up.reasons_of(session.id) or ("held",)
    if session.acr != acr.STRONG and acr.STRONG in request.acr_values:
        return ("acr_values",)
    return ()


def _situation(
    request: AuthorizationRequest,
    client: RelyingParty,
    session: SessionInfo | None,
    *,
    signed_in_here: bool = False,
    consent_decided_here: bool = False,
) -> Situation:
    member_disabled = False
    member_unverified = False
    consent_given = False
    if session is not None:
        try:
            member = members.get(session.user_id)
        except NotFoundError:
            session = None
        else:
            member_disabled, member_unverified = member.disabled, not member.email_verified
    if session is not None:
        consent_given = consents.covers(
            session.user_id, client.client_id, frozenset(request.scope.split())
        )
    return Situation(
        session=session,
        member_disabled=member_disabled,
        member_unverified=member_unverified,
        client=client,
        prompts=request.prompts,
        max_age=request.max_age,
        signed_in_here=signed_in_here,
        consent_given=consent_given,
        consent_decided_here=consent_decided_here,
        step_up_reasons=step_up_reasons(request, session),
        idle_minutes=runtime.current().settings.session.idle_minutes,
        now=clock.now(),
    )


def _client(request: AuthorizationRequest) -> RelyingParty:
    """The request's client, still registered with the same redirect URI."""
    client = clients.lookup(request.client_id)
    if client is None or request.redirect_uri not in client.redirect_uris:
        raise InteractionError("The service that sent you here is no longer registered.")
    return client


@service
def start(request: AuthorizationRequest, *, session: SessionInfo | None) -> str:
    """Begin an authorization request in a browser with ``session`` (or none);
    returns where the browser goes next.

    When the session serves the request as it is, the code is issued at
    once and the URL is the client's redirect URI.  Otherwise the request is
    stored, bound to the session, and the URL is the page of the first step;
    with ``prompt=none`` that is an error for the client instead (raised as
    an OAuthError addressed to its redirect URI)."""
    client = _client(request)
    nxt = decide(_situation(request, client, session))
    if nxt.step is Step.DONE and session is not None:
        return _issue_code(request, session)
    if "none" in request.prompts:
        raise error_redirect(request, silent_failure(nxt))
    uid = new_secret(24)
    now = clock.now()
    ttl = dt.timedelta(seconds=runtime.current().settings.tokens.interaction_ttl_seconds)
    db.session.add(
        Interaction(
            uid_hash=secret_hash(uid),
            client_id=client.client_id,
            params=request.to_json(),
            prompt=str(nxt.step),
            reasons=list(nxt.reasons),
            session_id=session.id if session is not None else None,
            user_id=session.user_id if session is not None else None,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return _step_url(uid, nxt.step)


def _issue_code(request: AuthorizationRequest, session: SessionInfo) -> str:
    code = codes.issue(
        client_id=request.client_id,
        session=session,
        redirect_uri=request.redirect_uri,
        scope=request.scope,
        nonce=request.nonce,
        code_challenge=request.code_challenge,
        code_challenge_method=request.code_challenge_method,
    )
    return to_client(request, {"code": code})


def _row(uid: str) -> Interaction:
    if not uid or len(uid) > 64:
        raise InteractionError("This sign-in request is unknown.")
    row = db.session.execute(
        select(Interaction)
        .where(Interaction.uid_hash == secret_hash(uid))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        raise InteractionError("This sign-in request is unknown.")
    if row.completed_at is not None:
        raise InteractionError("This sign-in request was already used.")
    if row.expires_at <= clock.now():
        raise InteractionError(
            "This sign-in request has expired. Go back to the service and start again."
        )
    return row


def _bound(row: Interaction, session: SessionInfo | None) -> SessionInfo | None:
    """The browser's session if it is the one this interaction is bound to."""
    if session is not None and session.id == row.session_id:
        return session
    return None


def _decide(row: Interaction, session: SessionInfo | None) -> tuple[NextStep, RelyingParty]:
    request = AuthorizationRequest.from_json(row.params)
    client = _client(request)
    bound = _bound(row, session)
    if row.error:
        return NextStep(Step.DONE, ("refused",)), client
    situation = _situation(
        request,
        client,
        bound,
        signed_in_here=bound is not None and row.login_at is not None,
        consent_decided_here=bound is not None and row.consent_scope is not None,
    )
    return decide(situation), client


def next_step(uid: str, *, session: SessionInfo | None) -> Pending:
    """What the interaction needs from the person in this browser now.
    Raises InteractionError if it is unknown, used or expired.  Writes nothing."""
    row = _row(uid)
    nxt, client = _decide(row, session)
    request = AuthorizationRequest.from_json(row.params)
    return Pending(
        uid=uid,
        step=nxt.step,
        reasons=nxt.reasons,
        client_id=client.client_id,
        client_name=client.name,
        scopes=tuple(request.scope.split()),
        login_hint=request.login_hint,
        user_id=row.user_id,
        expires_at=row.expires_at,
    )


@dataclass(frozen=True, slots=True)
class Next:
    """Where an interaction goes after a step."""

    url: str
    step: Step
    reasons: tuple[str, ...]


@service
def finish_login(uid: str, *, session: SessionInfo) -> Next:
    """The person signed in through this interaction with ``session`` (just
    opened or renewed by the sign-in service, in the same transaction).
    Binds the interaction to it; returns what comes next."""
    row = _row(uid)
    if row.user_id is not None and row.user_id != session.user_id:
        # Another account signed in midway: earlier consent was not theirs.
        row.consent_scope = None
    row.user_id = session.user_id
    row.session_id = session.id
    row.login_at = clock.now()
    nxt, _ = _decide(row, session)
    return Next(url=_step_url(uid, nxt.step), step=nxt.step, reasons=nxt.reasons)


@service
def finish_consent(uid: str, *, session: SessionInfo | None, allow: bool) -> str:
    """Record the person's decision on the scopes asked for; returns the next
    URL.  Allowing remembers the consent for later requests of the client."""
    row = _row(uid)
    nxt, client = _decide(row, session)
    if nxt.step is not Step.CONSENT or session is None:
        # Signed out meanwhile, another browser, or nothing to consent to.
        return _step_url(uid, nxt.step)
    scope = AuthorizationRequest.from_json(row.params).scope
    if allow:
        row.consent_scope = scope
        consents.grant(session.user_id, client.client_id, frozenset(scope.split()))
    else:
        row.error = "access_denied"
        events.record("consent.denied", user_id=session.user_id, client_id=client.client_id)
    return _step_url(uid, Step.DONE)


def _step_up_session(
    uid: str, session: SessionInfo | None
) -> tuple[Interaction, SessionInfo, tuple[str, ...]]:
    row = _row(uid)
    nxt, _ = _decide(row, session)
    if nxt.step is not Step.STEP_UP or session is None:
        raise InteractionError("There is no extra check to do for this sign-in.")
    return row, session, nxt.reasons


def step_up_question(uid: str, *, session: SessionInfo | None) -> step_up.Question:
    """The step-up page of this interaction is shown: what it asks (see
    ``idp.step_up.prepare``).  Raises InteractionError when none is due."""
    _, session, reasons = _step_up_session(uid, session)
    return step_up.prepare(session, reasons=reasons)


@service
def finish_step_up(uid: str, *, session: SessionInfo | None, answer: str) -> str:
    """Check the answer to the step-up's question; returns the next URL.

    A wrong answer raises OtpError (counted); the fifth raises
    StepUpRefusedError, and the client then learns ``access_denied``."""
    row, session, _ = _step_up_session(uid, session)
    row_id = row.id
    try:
        stepped = step_up.answer(session, answer)
    except StepUpRefusedError as e:
        refuse(e, record=lambda: _mark_refused(row_id))
    if stepped is None:
        return _step_url(uid, Step.STEP_UP)  # the birth date comes next
    nxt, _ = _decide(_row(uid), stepped)
    return _step_url(uid, nxt.step)


def _mark_refused(row_id: int) -> None:
    db.session.execute(
        update(Interaction).where(Interaction.id == row_id).values(error="access_denied")
    )


@service
def abort(uid: str) -> str:
    """The person gave up: the client learns ``access_denied``.  Returns the
    resume URL that tells it."""
    row = _row(uid)
    row.error = "access_denied"
    return _step_url(uid, Step.DONE)


@service
def resume(uid: str, *, session: SessionInfo | None) -> str:
    """Finish the interaction: returns the client's redirect URI with a code
    (or with the error the person chose), or the page of a step still to do.

    Spends the interaction by a conditional update in the transaction that
    issues the code, so two concurrent resumes issue one code."""
    row = _row(uid)
    nxt, _ = _decide(row, session)
    if nxt.step is not Step.DONE:
        return _step_url(uid, nxt.step)
    spent = db.session.execute(
        update(Interaction)
        .where(
            Interaction.id == row.id,
            Interaction.completed_at.is_(None),
            Interaction.expires_at > clock.now(),
        )
        .values(completed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if rowcount(spent) != 1:
        raise InteractionError("This sign-in request was already used.")
    request = AuthorizationRequest.from_json(row.params)
    if row.error:
        error = AccessDeniedError("The person did not allow the request.")
        return to_client(request, error.to_json())
    bound = _bound(row, session)
    assert bound is not None  # noqa: S101 - decide() asks for login without a bound session
    return _issue_code(request, bound)


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` interactions past their expiry (joins the
    caller's transaction); returns how many went."""
    return delete_batch(Interaction, Interaction.expires_at < now, batch=batch)


def forget_user(user_id: str) -> None:
    """Delete a cancelled member's pending interactions (joins the caller's transaction)."""
    db.session.execute(delete(Interaction).where(Interaction.user_id == user_id))
