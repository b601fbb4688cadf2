"""The risk rules against a live provider behind one trusted proxy.

Where a sign-in comes from is the ``X-Forwarded-For`` entry that the one
trusted proxy wrote, and its country comes from a small MaxMind-format
database built here.  A sign-in from another country while a session
elsewhere is in use, the right password after a burst of failures, and a
device just forced out for misuse are each held for an extra check:
passing it gives ``amr`` with ``otp`` and ``mfa``, failing it refuses the
sign-in; either way the owner is mailed.  Every attempt is recorded, listed
and purged when its time is up."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.flows import answer_step_up, redeem, refresh, sign_in
from tests.support.geodb import IN_GB, IN_JP, IN_US, OUTSIDE, write_country_database
from tests.support.harness import (
    IDP,
    Backend,
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    eventually,
    pkce_pair,
    start_live_idp,
)
from tests.support.mailbox import mail_to, mails_to, text_of
from tests.support.receiver import LogoutReceiver
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse 1"
NOTICE = "Login Notification ("


@pytest.fixture(scope="module")
def idp(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[LiveIdp]:
    root: Path = tmp_path_factory.mktemp("risk-live")
    database = write_country_database(root / "countries.mmdb")
    with start_live_idp(
        root,
        backend,
        name="risk_live",
        smtp_port=smtp.port,
        extra_config=f'[geoip]\ndatabase = "{database}"\n'
        "[risk]\nstep_up_after_failures = 2\naddress_slowdown_after_failures = 3\n",
        trusted_proxies=1,
    ) as live:
        yield live


@pytest.fixture
def moved(idp: LiveIdp) -> Iterator[LiveIdp]:
    yield idp
    idp.reset_clock()


def _from(idp: LiveIdp, ip: str) -> Browser:
    """A browser behind the provider's one trusted proxy, which says ``ip``."""
    browser = Browser(idp.url)
    browser.http.headers["X-Forwarded-For"] = ip
    return browser


def _member(idp: LiveIdp) -> Any:
    return idp.create_user(email=f"{secrets.token_hex(6)}@example.com")


def _address() -> str:
    """A fresh global address the test database does not know (no country)."""
    return f"9.9.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"


def _notices(smtp: SmtpServer, address: str) -> list[Any]:
    return [m for m in mails_to(smtp, address, ")") if NOTICE in str(m["Subject"])]


def _strong_flow(idp: LiveIdp, browser: Browser, member: Any) -> tuple[requests.Response, str, Any]:
    """Start an authorization request and sign in with the password; the page
    it stops on, the PKCE verifier and the client."""
    shop = idp.create_client(first_party=True)
    verifier, challenge = pkce_pair()
    url = authorization_url(idp, shop, code_challenge=challenge, code_challenge_method="S256")
    page = browser.sign_in(browser.follow(browser.get(url)), member.username, PASSWORD)
    return page, verifier, shop


def _signed_in_at_home(idp: LiveIdp, member: Any) -> Browser:
    """The member signed in from Japan: a session in use there from now on."""
    at_home = _from(idp, IN_JP)
    at_home.sign_in(at_home.get("/login"), member.username, PASSWORD)
    return at_home


def _mailed_code(smtp: SmtpServer, address: str, nth: int = 1) -> str:
    found = re.search(r"\b(\d{6})\b", text_of(mail_to(smtp, address, "Your sign-in code", nth=nth)))
    assert found
    return found.group(1)


def _id_claims(tokens: dict[str, Any]) -> dict[str, Any]:
    import base64

    part = tokens["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


# --- where a sign-in comes from ----------------------------------------------------------


def test_the_location_line_names_the_country_of_the_forwarded_address(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    browser = _from(idp, f"203.0.113.7, {IN_JP}")  # only the proxy's entry counts

    browser.sign_in(browser.get("/login"), member.username, PASSWORD)

    (notice,) = eventually(lambda: _notices(smtp, member.email))
    body = text_of(notice)
    assert f"IP Address: {IN_JP}" in body
    assert "Location: Japan" in body


def test_an_address_outside_the_database_leaves_the_location_out(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    browser = _from(idp, OUTSIDE)

    browser.sign_in(browser.get("/login"), member.username, PASSWORD)

    (notice,) = eventually(lambda: _notices(smtp, member.email))
    assert f"IP Address: {OUTSIDE}" in text_of(notice)
    assert "Location:" not in text_of(notice)


# --- another country while a session elsewhere is in use --------------------------------


def test_a_sign_in_from_another_country_is_stepped_up_and_passing_adds_otp_and_mfa(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    _signed_in_at_home(idp, member)
    abroad = _from(idp, IN_US)

    page, verifier, shop = _strong_flow(idp, abroad, member)

    assert 'id="otp-form"' in page.text
    assert 'id="step-up-reason"' in page.text
    notice = eventually(
        lambda: len(_notices(smtp, member.email)) == 2 and _notices(smtp, member.email)
    )[1]
    assert "Location: United States" in text_of(notice)
    leaving = abroad.follow(answer_step_up(abroad, page, "otp", _mailed_code(smtp, member.email)))
    tokens = redeem(idp, shop, callback_params(leaving)["code"], verifier).json()
    claims = _id_claims(tokens)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "urn:idp:acr:2"


def test_a_failed_travel_step_up_is_refused_and_the_owner_told(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    at_home = _signed_in_at_home(idp, member)
    abroad = _from(idp, IN_GB)
    page, _, _ = _strong_flow(idp, abroad, member)
    code = _mailed_code(smtp, member.email)
    wrong = "000000" if code != "000000" else "111111"

    for _ in range(4):
        page = answer_step_up(abroad, page, "otp", wrong)
        assert page.status_code == 400
        assert 'role="alert"' in page.text
    refused = answer_step_up(abroad, page, "otp", wrong)

    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert 'id="otp-form"' not in refused.text
    back = re.search(
        r'id="step-up-back" href="([^"]+)"|href="([^"]+)" id="step-up-back"', refused.text
    )
    assert back
    leaving = abroad.get((back.group(1) or back.group(2)).replace("&amp;", "&"))
    assert callback_params(leaving)["error"] == "access_denied"
    assert abroad.get("/account").status_code == 303  # no session was left behind
    ended = mail_to(smtp, member.email, "Your sign-in was ended")
    assert "extra check" in text_of(ended)
    assert len(_notices(smtp, member.email)) == 2  # home, and the held sign-in abroad
    assert at_home.get("/account").status_code == 200  # the owner's own session lives on


def test_the_same_browser_in_another_country_within_the_window_is_stepped_up(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    browser = _from(idp, IN_JP)
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    browser.http.headers["X-Forwarded-For"] = IN_GB

    reply = browser.submit_login(browser.get("/login"), member.username, PASSWORD)

    assert reply.headers["Location"] == idp.url + "/login/step-up?next=/account"


def test_another_country_after_the_travel_window_is_only_notified(
    moved: LiveIdp, smtp: SmtpServer
) -> None:
    idp = moved
    member = _member(idp)
    _signed_in_at_home(idp, member)
    idp.advance(hours=idp.settings.risk.travel_hours, minutes=1)
    abroad = _from(idp, IN_US)

    reply = abroad.submit_login(abroad.get("/login"), member.username, PASSWORD)

    assert reply.headers["Location"] == idp.url + "/account"
    notices = eventually(
        lambda: len(_notices(smtp, member.email)) == 2 and _notices(smtp, member.email)
    )
    assert "Location: United States" in text_of(notices[1])


def test_a_held_sign_in_serves_nothing_until_the_check_is_passed(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    _signed_in_at_home(idp, member)
    abroad = _from(idp, IN_US)
    page, _, shop = _strong_flow(idp, abroad, member)
    assert 'id="otp-form"' in page.text

    assert abroad.get("/account").status_code == 303
    silent = authorization_url(
        idp, shop, prompt="none", code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    assert callback_params(abroad.get(silent))["error"] == "login_required"


def test_a_held_sign_in_with_no_service_behind_it_is_checked_then_shown_the_account(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    _signed_in_at_home(idp, member)
    abroad = _from(idp, IN_US)

    reply = abroad.submit_login(
        abroad.get("/login?next=/account/sessions"), member.username, PASSWORD
    )

    assert reply.status_code == 303
    assert reply.headers["Location"] == idp.url + "/login/step-up?next=/account/sessions"
    page = abroad.follow(reply)
    passed = answer_step_up(abroad, page, "otp", _mailed_code(smtp, member.email))
    assert passed.headers["Location"] == idp.url + "/account/sessions"
    sessions_page = abroad.get("/account/sessions")
    assert sessions_page.status_code == 200
    assert 'id="session-list"' in sessions_page.text


def test_two_right_answers_at_once_step_the_session_up_once(idp: LiveIdp, smtp: SmtpServer) -> None:
    member = _member(idp)
    _signed_in_at_home(idp, member)
    abroad = _from(idp, IN_US)
    reply = abroad.submit_login(abroad.get("/login"), member.username, PASSWORD)
    page = abroad.follow(reply)
    code = _mailed_code(smtp, member.email)
    replies: list[int] = []
    start = threading.Barrier(2)

    def answer() -> None:
        start.wait()
        replies.append(answer_step_up(abroad, page, "otp", code).status_code)

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The loser is told the check was answered, or (if it came second) sent on.
    assert set(replies) <= {303, 400}
    assert abroad.get("/account").status_code == 200
    passed = [e for e in _events(idp, member.username) if e.get("method") == "step_up"]
    assert [e["result"] for e in passed] == ["success"]


# --- a burst of failures, a suspect device, a slowed address -----------------------------


def test_the_right_password_after_a_burst_of_failures_is_stepped_up(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = _member(idp)
    browser = _from(idp, _address())
    for _ in range(2):
        browser.submit_login(browser.get("/login"), member.username, "wrong password")

    page, _, _ = _strong_flow(idp, browser, member)

    assert 'id="otp-form"' in page.text
    assert "many wrong passwords" in page.text


def test_a_device_forced_out_for_a_reused_refresh_token_is_stepped_up(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    public = idp.create_client(public=True, first_party=True)
    member = _member(idp)
    browser = _from(idp, _address())
    signed = sign_in(idp, client=public, member=member, browser=browser)
    old = signed.tokens["refresh_token"]
    refresh(idp, public, old)
    assert refresh(idp, public, old).json()["error"] == "invalid_grant"  # reuse: forced out

    page, _, _ = _strong_flow(idp, browser, member)

    assert 'id="otp-form"' in page.text
    assert "suspected misuse" in page.text


def test_a_reused_refresh_token_logs_out_every_service_and_mails_the_owner(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    receiver = LogoutReceiver().up()
    try:
        bank = idp.create_client(public=True, first_party=True, backchannel_logout_uri=receiver.uri)
        member = _member(idp)
        signed = sign_in(idp, client=bank, member=member, browser=_from(idp, _address()))
        sid = _id_claims(signed.tokens)["sid"]
        old = signed.tokens["refresh_token"]
        refresh(idp, bank, old)

        refresh(idp, bank, old)

        assert eventually(lambda: receiver.claims_for(idp.url, sid=sid))
        mail_to(smtp, member.email, "Your sign-in was ended")
    finally:
        receiver.down()


def test_an_address_failing_across_accounts_is_slowed_before_its_password_is_checked(
    idp: LiveIdp,
) -> None:
    address = _address()
    for _ in range(4):  # a different account each time: credential stuffing
        stuffer = _from(idp, address)
        stuffer.submit_login(stuffer.get("/login"), _member(idp).username, "Password1!")
    member = _member(idp)
    browser = _from(idp, address)
    page = browser.get("/login")

    started = time.monotonic()
    reply = browser.submit_login(page, member.username, PASSWORD)

    assert time.monotonic() - started >= 0.25
    assert reply.status_code == 303  # slowed, not refused: the right password still signs in


# --- every attempt recorded, listed and purged -------------------------------------------


def _events(idp: LiveIdp, user: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    done = subprocess.run(
        [IDP, "--config", str(idp.config_path), "events", "list", "--user", user, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events: list[dict[str, Any]] = json.loads(done.stdout)["events"]
    return events


def test_every_attempt_is_listed_with_its_method_result_address_and_country(
    idp: LiveIdp,
) -> None:
    member = _member(idp)
    browser = _from(idp, IN_JP)
    browser.submit_login(browser.get("/login"), member.username, "wrong password")
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)

    attempts = [e for e in _events(idp, member.username) if "method" in e]

    assert [(a["kind"], a["method"], a["reason"], a["ip"], a["country"]) for a in attempts] == [
        ("signin.success", "pwd", "new_device,new_country", IN_JP, "JP"),
        ("signin.failure", "pwd", "wrong_password", IN_JP, "JP"),
    ]
    page = browser.get("/account/sessions").text
    activity = page[page.index('id="recent-activity"') :]
    assert activity.index("Signed in with a password") < activity.index("Wrong password")
    assert "Japan" in activity
    in_japanese = browser.get("/account/sessions?lang=ja").text
    assert "日本" in in_japanese[in_japanese.index('id="recent-activity"') :]


def test_attempts_are_purged_by_the_worker_when_their_time_is_up(moved: LiveIdp) -> None:
    idp = moved
    member = _member(idp)
    browser = _from(idp, _address())
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    assert any("method" in e for e in _events(idp, member.username))

    idp.advance(days=idp.settings.events.signin_retention_days + 1)

    assert eventually(
        lambda: not any("method" in e for e in _events(idp, member.username)), timeout=30
    )
