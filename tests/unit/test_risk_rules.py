"""The risk rules alone: signals and settings in, a decision out, no I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

from idp.config import RiskSettings
from idp.risk import (
    MAX_DELAY_SECONDS,
    Action,
    Decision,
    SignInSignals,
    address_delay,
    assess_password_failure,
    assess_refresh_reuse,
    assess_sign_in,
    failure_delay,
    notice_reasons,
)

NOW = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
RULES = RiskSettings()


def reasons(**kw: object) -> list[str]:
    given: dict[str, object] = {
        "device_seen": True,
        "country": "JP",
        "country_seen": True,
        "last_sign_in": NOW - dt.timedelta(days=1),
        "now": NOW,
        "absence_days": 30,
    }
    given.update(kw)
    return notice_reasons(**given)  # type: ignore[arg-type]


USUAL = SignInSignals(
    method="pwd",
    recent_password_failures=0,
    country="JP",
    countries_active_elsewhere=frozenset({"JP"}),
    device_suspect=False,
    device_seen=True,
    country_seen=True,
    last_sign_in=NOW - dt.timedelta(days=1),
    now=NOW,
)


def assess(rules: RiskSettings = RULES, **changes: object) -> Decision:
    return assess_sign_in(dataclasses.replace(USUAL, **changes), rules, absence_days=30)  # type: ignore[arg-type]


# --- login notifications ---------------------------------------------------------------


def test_a_known_device_and_country_seen_yesterday_needs_no_notice() -> None:
    assert reasons() == []
    assert assess() == Decision(Action.ALLOW)


def test_the_first_sign_in_on_a_device_is_noticed() -> None:
    assert reasons(device_seen=False, last_sign_in=None, country_seen=False) == [
        "new_device",
        "new_country",
    ]
    assert assess(device_seen=False) == Decision(Action.NOTIFY, ("new_device",))


def test_a_new_country_is_noticed_and_an_unknown_one_is_not() -> None:
    assert reasons(country_seen=False) == ["new_country"]
    assert reasons(country=None, country_seen=False) == []


def test_a_sign_in_after_the_absence_is_noticed() -> None:
    assert reasons(last_sign_in=NOW - dt.timedelta(days=31)) == ["absence"]
    assert reasons(last_sign_in=NOW - dt.timedelta(days=29)) == []


# --- holding a sign-in for an extra check ------------------------------------------------


def test_another_country_in_use_within_the_travel_window_is_stepped_up() -> None:
    decision = assess(country="US", country_seen=False)

    assert decision == Decision(Action.STEP_UP, ("travel", "new_country"))


def test_the_same_country_elsewhere_is_no_travel() -> None:
    assert assess(countries_active_elsewhere=frozenset({"JP"})).action is Action.ALLOW


def test_an_unknown_country_is_never_travel() -> None:
    assert assess(country=None, countries_active_elsewhere=frozenset({"US"})) == Decision(
        Action.ALLOW
    )


def test_the_right_password_after_a_burst_of_failures_is_stepped_up() -> None:
    at = RULES.step_up_after_failures

    assert assess(recent_password_failures=at - 1).action is Action.ALLOW
    assert assess(recent_password_failures=at) == Decision(Action.STEP_UP, ("failure_burst",))


def test_a_device_just_forced_out_for_misuse_is_stepped_up() -> None:
    assert assess(device_suspect=True) == Decision(Action.STEP_UP, ("suspect_device",))


def test_a_passkey_or_qr_sign_in_is_never_held_only_notified() -> None:
    for method in ("passkey", "qr"):
        decision = assess(method=method, country="US", device_suspect=True)
        assert decision == Decision(Action.NOTIFY, ("travel", "suspect_device"))


def test_failures_before_a_passkey_do_not_count_as_a_burst() -> None:
    assert assess(method="passkey", recent_password_failures=99) == Decision(Action.ALLOW)


def test_thresholds_come_from_the_settings() -> None:
    strict = RiskSettings(step_up_after_failures=1)

    assert assess(strict, recent_password_failures=1).action is Action.STEP_UP


# --- failed passwords ---------------------------------------------------------------------


def test_the_delay_grows_from_the_third_failure_to_at_most_five_seconds() -> None:
    delays = [failure_delay(n) for n in range(1, 30)]
    assert delays[:2] == [0.0, 0.0]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert delays[2] > 0
    assert max(delays) == MAX_DELAY_SECONDS


def test_a_failure_is_denied_with_its_delay_and_the_last_ones_lock() -> None:
    lock = RULES.lock_after_failures

    assert assess_password_failure(3, RULES) == Decision(
        Action.DENY, ("wrong_password",), failure_delay(3)
    )
    assert assess_password_failure(lock, RULES).reasons == ("locked",)
    assert assess_password_failure(lock + 5, RULES).delay_seconds == failure_delay(lock + 5)


def test_an_address_failing_across_accounts_is_slowed_past_its_threshold() -> None:
    at = RULES.address_slowdown_after_failures

    assert address_delay(at, RULES) == 0.0
    assert address_delay(at + 1, RULES) == 0.25
    assert address_delay(at + 1000, RULES) == MAX_DELAY_SECONDS


# --- refresh-token reuse --------------------------------------------------------------------


def test_a_reused_refresh_token_forces_the_logout() -> None:
    decision = assess_refresh_reuse(
        confidential=False, since_rotation=dt.timedelta(seconds=1), grace_seconds=10
    )
    assert decision == Decision(Action.FORCE_LOGOUT, ("refresh_token_reuse",))


def test_a_confidential_client_within_the_grace_is_allowed() -> None:
    assert assess_refresh_reuse(
        confidential=True, since_rotation=dt.timedelta(seconds=9), grace_seconds=10
    ) == Decision(Action.ALLOW, ("within_grace",))
    for since, grace in ((10, 10), (1, 0)):
        decision = assess_refresh_reuse(
            confidential=True, since_rotation=dt.timedelta(seconds=since), grace_seconds=grace
        )
        assert decision.action is Action.FORCE_LOGOUT
