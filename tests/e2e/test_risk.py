"""Failed passwords on one account: a growing delay, then a lock (CONTRACT "Step-up and risk").

The provider of this module locks after three failures, so that the rule
shows in a few attempts.  A wrong password, an unknown user ID and a locked
account get the same answer; a passkey still signs in during the lock; a
password reset lifts it.  And a reused refresh token mails the person that
a sign-in was ended."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from idp.risk import MAX_DELAY_SECONDS, failure_delay
from tests.support.authenticator import SoftAuthenticator
from tests.support.flows import (
    WRONG_PASSWORD,
    password_attempt,
    refresh,
    register_software_passkey,
    sign_in,
)
from tests.support.harness import (
    Backend,
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    eventually,
    pkce_pair,
    start_live_idp,
)
from tests.support.mailbox import links_in, mail_to, text_of
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse 1"
WRONG = WRONG_PASSWORD


@pytest.fixture(scope="module")
def idp(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[LiveIdp]:
    root: Path = tmp_path_factory.mktemp("risk")
    with start_live_idp(
        root,
        backend,
        name="risk",
        smtp_port=smtp.port,
        extra_config="[risk]\nlock_after_failures = 3\nlock_minutes = 15\n",
    ) as live:
        yield live


def test_the_delay_grows_from_the_third_failure_to_at_most_five_seconds() -> None:
    delays = [failure_delay(n) for n in range(1, 30)]
    assert delays[:2] == [0.0, 0.0]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert delays[2] > 0
    assert max(delays) == MAX_DELAY_SECONDS


def test_a_failure_is_answered_after_its_delay(idp: LiveIdp) -> None:
    member = idp.create_user()
    for _ in range(2):
        password_attempt(idp, member.username, "wrong password")
    started = time.monotonic()
    password_attempt(idp, member.username, "wrong password")
    assert time.monotonic() - started >= failure_delay(3)


def test_after_the_failures_even_the_right_password_is_answered_as_wrong(idp: LiveIdp) -> None:
    member = idp.create_user()
    answers = [password_attempt(idp, member.username, "wrong password") for _ in range(3)]
    assert answers == [WRONG] * 3
    assert password_attempt(idp, member.username, PASSWORD) == WRONG
    assert password_attempt(idp, member.email, PASSWORD) == WRONG  # every name of the account


def test_a_wrong_password_an_unknown_user_id_and_a_locked_account_look_alike(
    idp: LiveIdp,
) -> None:
    member, locked = idp.create_user(), idp.create_user()
    for _ in range(3):
        password_attempt(idp, locked.username, "wrong password")
    assert (
        password_attempt(idp, member.username, "wrong password")
        == password_attempt(idp, "nobody-" + secrets.token_hex(4), "wrong password")
        == password_attempt(idp, locked.username, PASSWORD)
        == WRONG
    )


def _passkey_of(idp: LiveIdp, username: str) -> SoftAuthenticator:
    """Sign in and register a software passkey through the account page's API."""
    registered, phone = register_software_passkey(idp, username, PASSWORD)
    assert registered.status_code == 200, registered.text
    return phone


def test_a_passkey_still_signs_in_during_the_lock_and_is_notified(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    phone = _passkey_of(idp, member.username)
    for _ in range(3):
        password_attempt(idp, member.username, "wrong password")
    browser = Browser(idp.url)
    token = csrf_token(browser.get("/login").text)
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    options = browser.http.post(
        idp.url + "/login/passkey/options", headers=headers, data="{}", timeout=10
    ).json()["publicKey"]

    reply = browser.http.post(
        idp.url + "/login/passkey",
        headers=headers,
        data=json.dumps({"credential": phone.get(options)}),
        timeout=10,
    )

    assert reply.status_code == 200, reply.text
    assert reply.json()["redirect"] == idp.url + "/account"
    # Two browsers, two first sign-ins: each was noticed, the passkey's too.
    with contextlib.suppress(AssertionError):  # what came is shown below
        eventually(lambda: len(_notices(smtp, member.email)) >= 2)
    notices = [str(m["Subject"]) for m in _notices(smtp, member.email)]
    assert len(notices) == 2, (notices, idp.log())


def test_a_password_reset_lifts_the_lock(idp: LiveIdp, smtp: SmtpServer) -> None:
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    for _ in range(3):
        password_attempt(idp, member.username, "wrong password")
    browser = Browser(idp.url)
    form = browser.get("/recover/password")
    browser.post("/recover/password", {"csrf_token": csrf_token(form.text), "login": member.email})
    (link,) = links_in(mail_to(smtp, member.email, "Reset your password"))
    page = browser.get(link)
    browser.post(
        urlsplit(link).path,
        {"csrf_token": csrf_token(page.text), "password": "a fresh long passphrase"},
    )

    assert password_attempt(idp, member.username, "a fresh long passphrase") == "signed in"


def test_a_reused_refresh_token_mails_that_the_sign_in_was_ended(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    public = idp.create_client(public=True, first_party=True)
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    signed = sign_in(idp, client=public, member=member)
    old = signed.tokens["refresh_token"]
    refresh(idp, public, old)

    refresh(idp, public, old)

    message = mail_to(smtp, member.email, "Your sign-in was ended")
    assert len(links_in(message)) == 1


# --- login notifications ------------------------------------------------------------


NOTICE = "Login Notification ("
SUBJECT = re.compile(r"^Login Notification \(\d{4}/\d{2}/\d{2} \d{2}:\d{2} JST\(GMT\+09:00\)\)$")


def _notices(smtp: SmtpServer, address: str) -> list[Any]:
    return [m for m in smtp.received() if str(m["To"]) == address and NOTICE in str(m["Subject"])]


@pytest.fixture
def moved(idp: LiveIdp) -> Iterator[LiveIdp]:
    yield idp
    idp.reset_clock()


def test_the_first_sign_in_from_a_browser_sends_one_notice_and_the_second_none(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    browser = Browser(idp.url)
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)

    (notice,) = eventually(lambda: _notices(smtp, member.email))
    assert SUBJECT.match(str(notice["Subject"]))
    body = text_of(notice)
    assert "Date and Time of Login: " in body
    assert "IP Address: 127.0.0.1" in body
    assert "Location:" not in body  # no country database: the line is left out
    assert len(links_in(notice)) == 1

    page = browser.get("/account")
    browser.post("/signout", {"csrf_token": csrf_token(page.text)})
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    assert _quiet(idp)
    assert len(_notices(smtp, member.email)) == 1


def test_a_sign_in_after_a_long_absence_sends_a_notice(moved: LiveIdp, smtp: SmtpServer) -> None:
    idp = moved
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    browser = Browser(idp.url)
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    eventually(lambda: _notices(smtp, member.email))
    idp.advance(days=idp.settings.alerts.absence_days + 1)

    again = Browser(idp.url)
    again.http.cookies.set("idp_device", browser.http.cookies.get("idp_device") or "")
    again.sign_in(again.get("/login"), member.username, PASSWORD)

    assert eventually(lambda: len(_notices(smtp, member.email)) == 2)


def test_a_silent_reauthorization_is_no_sign_in(idp: LiveIdp, smtp: SmtpServer) -> None:
    member = idp.create_user(email=f"{secrets.token_hex(5)}@example.com")
    shop = idp.create_client(first_party=True)
    signed = sign_in(idp, client=shop, member=member)
    eventually(lambda: _notices(smtp, member.email))
    url = authorization_url(
        idp, shop, prompt="none", code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )

    assert "code" in callback_params(signed.browser.get(url))
    assert _quiet(idp)
    assert len(_notices(smtp, member.email)) == 1


def _quiet(idp: LiveIdp) -> bool:
    """Whether every mail queued so far has been delivered (nothing in flight)."""
    from sqlalchemy import func, select

    from idp.db import db
    from idp.models import OutboxMessage

    def drained() -> bool:
        with idp.services():
            waiting = db.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
            )
        return waiting == 0

    return bool(eventually(drained))
