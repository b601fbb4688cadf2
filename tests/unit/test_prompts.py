"""Which step an authorization request needs next: sign-in, step-up, consent, or none."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from idp.clients import RelyingParty
from idp.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    InvalidRequestError,
    LoginRequiredError,
)
from idp.prompts import (
    NextStep,
    Situation,
    Step,
    decide,
    parse_max_age,
    parse_prompt,
    silent_failure,
)
from idp.sessions import SessionInfo

NOW = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.UTC)
IDLE_MINUTES = 30


def a_session(
    *, signed_in_ago: dt.timedelta = dt.timedelta(minutes=5), **overrides: Any
) -> SessionInfo:
    auth_time = NOW - signed_in_ago
    session = SessionInfo(
        id="sid-1",
        user_id="user-1",
        device_id="device-1",
        ip="192.0.2.1",
        country="JP",
        user_agent="Mozilla/5.0",
        remember=False,
        auth_time=auth_time,
        amr=("pwd",),
        acr="1",
        created_at=auth_time,
        last_seen_at=NOW,
        expires_at=NOW + dt.timedelta(minutes=IDLE_MINUTES),
        ended_at=None,
    )
    return dataclasses.replace(session, **overrides)


def a_client(**overrides: Any) -> RelyingParty:
    client = RelyingParty(
        client_id="shop",
        name="Shop",
        redirect_uris=("https://shop.example/callback",),
        post_logout_redirect_uris=(),
        grant_types=("authorization_code", "refresh_token"),
        scopes=frozenset({"openid", "profile", "email"}),
        is_public=False,
        is_admin=False,
        first_party=False,
        allow_stay_signed_in=True,
        backchannel_logout_uri=None,
        events_uri=None,
        created_at=NOW - dt.timedelta(days=100),
        secret_hash=None,
    )
    return dataclasses.replace(client, **overrides)


def decide_for(
    *,
    session: SessionInfo | None,
    client: RelyingParty | None = None,
    prompt: str | None = None,
    max_age: int | None = None,
    consent_given: bool = True,
    user_disabled: bool = False,
    signed_in_here: bool = False,
    consent_decided_here: bool = False,
    step_up_reasons: tuple[str, ...] = (),
) -> NextStep:
    return decide(
        Situation(
            session=session,
            member_disabled=user_disabled,
            member_unverified=False,
            client=client or a_client(),
            prompts=parse_prompt(prompt),
            max_age=max_age,
            signed_in_here=signed_in_here,
            consent_given=consent_given,
            consent_decided_here=consent_decided_here,
            step_up_reasons=step_up_reasons,
            idle_minutes=IDLE_MINUTES,
            now=NOW,
        )
    )


LOGIN = NextStep(Step.LOGIN, ("no_session",))
DONE = NextStep(Step.DONE, ())


# --- sign-in --------------------------------------------------------------------------


def test_no_session_asks_for_login() -> None:
    assert decide_for(session=None) == LOGIN


def test_a_valid_session_with_consent_issues_at_once() -> None:
    assert decide_for(session=a_session()) == DONE


def test_prompt_login_with_a_session_asks_for_login() -> None:
    decision = decide_for(session=a_session(), prompt="login")

    assert decision == NextStep(Step.LOGIN, ("login_prompt",))


def test_max_age_exceeded_asks_for_login() -> None:
    session = a_session(signed_in_ago=dt.timedelta(minutes=10))

    decision = decide_for(session=session, max_age=300)

    assert decision == NextStep(Step.LOGIN, ("max_age",))


def test_max_age_not_yet_exceeded_keeps_the_session() -> None:
    session = a_session(signed_in_ago=dt.timedelta(minutes=4))

    decision = decide_for(session=session, max_age=300)

    assert decision == DONE


def test_disabled_account_asks_for_login() -> None:
    decision = decide_for(session=a_session(), user_disabled=True)

    assert decision == NextStep(Step.LOGIN, ("account_disabled",))


def test_client_refusing_stay_signed_in_asks_for_login_on_an_old_remembered_session() -> None:
    session = a_session(remember=True, signed_in_ago=dt.timedelta(minutes=IDLE_MINUTES + 1))

    decision = decide_for(session=session, client=a_client(allow_stay_signed_in=False))

    assert decision == NextStep(Step.LOGIN, ("client_refuses_stay_signed_in",))


def test_client_refusing_stay_signed_in_accepts_a_recent_remembered_session() -> None:
    session = a_session(remember=True, signed_in_ago=dt.timedelta(minutes=IDLE_MINUTES - 1))

    decision = decide_for(session=session, client=a_client(allow_stay_signed_in=False))

    assert decision == DONE


def test_signing_in_during_the_request_satisfies_prompt_login_and_max_age() -> None:
    session = a_session(signed_in_ago=dt.timedelta(seconds=1))

    decision = decide_for(session=session, prompt="login", max_age=0, signed_in_here=True)

    assert decision == DONE


def test_signing_in_during_the_request_satisfies_a_bank() -> None:
    session = a_session(remember=True, signed_in_ago=dt.timedelta(minutes=IDLE_MINUTES + 1))

    decision = decide_for(
        session=session, client=a_client(allow_stay_signed_in=False), signed_in_here=True
    )

    assert decision == DONE


def test_prompt_none_without_session_answers_login_required() -> None:
    decision = decide_for(session=None, prompt="none")

    assert isinstance(silent_failure(decision), LoginRequiredError)


# --- step-up -------------------------------------------------------------------------


def test_step_up_comes_after_sign_in_and_before_consent() -> None:
    decision = decide_for(session=a_session(), consent_given=False, step_up_reasons=("travel",))

    assert decision == NextStep(Step.STEP_UP, ("travel",))


def test_a_session_with_nothing_left_to_check_goes_on_to_consent() -> None:
    # Passing the step-up empties its reasons (idp.step_up).
    decision = decide_for(session=a_session(), consent_given=False, step_up_reasons=())

    assert decision == NextStep(Step.CONSENT, ("scopes_not_granted",))


def test_sign_in_comes_before_a_step_up() -> None:
    assert decide_for(session=None, step_up_reasons=("travel",)) == LOGIN


def test_prompt_none_needing_a_step_up_answers_interaction_required() -> None:
    decision = decide_for(session=a_session(), prompt="none", step_up_reasons=("travel",))

    assert isinstance(silent_failure(decision), InteractionRequiredError)


# --- consent -----------------------------------------------------------------------


def test_prompt_none_needing_consent_answers_consent_required() -> None:
    decision = decide_for(session=a_session(), prompt="none", consent_given=False)

    assert isinstance(silent_failure(decision), ConsentRequiredError)


def test_consent_given_during_the_request_is_done_even_with_prompt_consent() -> None:
    decision = decide_for(
        session=a_session(), prompt="consent", consent_given=False, consent_decided_here=True
    )

    assert decision == DONE


def test_third_party_client_without_remembered_consent_asks_for_consent() -> None:
    decision = decide_for(session=a_session(), consent_given=False)

    assert decision == NextStep(Step.CONSENT, ("scopes_not_granted",))


def test_first_party_client_skips_consent() -> None:
    decision = decide_for(
        session=a_session(), client=a_client(first_party=True), consent_given=False
    )

    assert decision == DONE


def test_remembered_consent_skips_consent() -> None:
    decision = decide_for(session=a_session(), consent_given=True)

    assert decision == DONE


@pytest.mark.parametrize(
    ("first_party", "consent_given"), [(True, True), (False, True), (True, False)]
)
def test_prompt_consent_always_asks_for_consent(first_party: bool, consent_given: bool) -> None:
    decision = decide_for(
        session=a_session(),
        client=a_client(first_party=first_party),
        prompt="consent",
        consent_given=consent_given,
    )

    assert decision == NextStep(Step.CONSENT, ("consent_prompt",))


# --- parsing the request parameters ------------------------------------------------------


def test_prompt_absent_is_empty() -> None:
    assert parse_prompt(None) == frozenset()


def test_prompt_is_a_space_separated_set() -> None:
    assert parse_prompt("login consent") == frozenset({"login", "consent"})


def test_prompt_none_combined_with_another_value_is_invalid() -> None:
    with pytest.raises(InvalidRequestError):
        parse_prompt("none login")


def test_unknown_prompt_value_is_invalid() -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        parse_prompt("login bogus")

    # Fixed text: nothing the request sent is echoed back.
    assert excinfo.value.description == "The prompt parameter has an unsupported value."


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0", 0), ("300", 300)])
def test_max_age_is_a_non_negative_integer_or_absent(raw: str | None, expected: int | None) -> None:
    assert parse_max_age(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "-1",
        "+5",
        "1.5",
        "ten",
        " 5",
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u0663", id="arabic-indic-three"),
    ],
)
def test_max_age_other_than_ascii_digits_is_invalid(raw: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_max_age(raw)
