"""``/admin``: admins find a member, see their sessions and sign-ins, end one
session or all, disable and enable the account -- after a fresh passkey or
one-time code, and audited with their own identity.  Others get 404."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.flows import answer_step_up, register_software_passkey
from tests.support.harness import Browser, LiveIdp, csrf_token
from tests.support.mailbox import mail_to, text_of
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse 1"


@pytest.fixture
def idp(member_idp: LiveIdp) -> LiveIdp:
    return member_idp


@pytest.fixture
def moved(idp: LiveIdp) -> Iterator[LiveIdp]:
    yield idp
    idp.reset_clock()


def _person(idp: LiveIdp, *, admin: bool = False) -> Any:
    return idp.create_user(email=f"{secrets.token_hex(6)}@example.com", is_admin=admin)


def _signed_in(idp: LiveIdp, member: Any) -> Browser:
    browser = Browser(idp.url)
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    return browser


def _mailed_code(smtp: SmtpServer, address: str, nth: int = 1) -> str:
    found = re.search(r"\b(\d{6})\b", text_of(mail_to(smtp, address, "Your sign-in code", nth=nth)))
    assert found
    return found.group(1)


def _past_the_step_up(idp: LiveIdp, smtp: SmtpServer, admin: Any, browser: Browser) -> None:
    asked = browser.get("/admin")
    assert asked.status_code == 303
    assert asked.headers["Location"] == idp.url + "/login/step-up?next=/admin"
    page = browser.follow(asked)
    passed = answer_step_up(browser, page, "otp", _mailed_code(smtp, admin.email))
    assert passed.headers["Location"] == idp.url + "/admin"


def _admin_browser(idp: LiveIdp, smtp: SmtpServer) -> tuple[Any, Browser]:
    admin = _person(idp, admin=True)
    browser = _signed_in(idp, admin)
    _past_the_step_up(idp, smtp, admin, browser)
    return admin, browser


def test_someone_without_the_admin_role_gets_404(idp: LiveIdp) -> None:
    browser = _signed_in(idp, _person(idp))

    assert browser.get("/admin").status_code == 404
    assert browser.get(f"/admin/users/{_person(idp).id}").status_code == 404


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(idp: LiveIdp) -> None:
    reply = Browser(idp.url).get("/admin")

    assert reply.status_code == 303
    assert reply.headers["Location"] == idp.url + "/login?next=/admin"


def test_a_password_alone_is_not_enough_an_admin_is_asked_for_a_one_time_code(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, browser = _admin_browser(idp, smtp)

    page = browser.get("/admin")

    assert page.status_code == 200
    assert 'id="admin-search"' in page.text


def test_a_passkey_sign_in_opens_the_admin_pages_at_once(idp: LiveIdp) -> None:
    admin = _person(idp, admin=True)
    registered, phone = register_software_passkey(idp, admin.username, PASSWORD)
    assert registered.status_code == 200, registered.text
    fresh = Browser(idp.url)
    token = csrf_token(fresh.get("/login").text)
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    options = fresh.http.post(
        idp.url + "/login/passkey/options", headers=headers, data="{}", timeout=10
    ).json()["publicKey"]
    fresh.http.post(
        idp.url + "/login/passkey",
        headers=headers,
        data=json.dumps({"credential": phone.get(options)}),
        timeout=10,
    )

    assert 'id="admin-search"' in fresh.get("/admin").text


def test_after_ten_minutes_the_code_is_asked_again(moved: LiveIdp, smtp: SmtpServer) -> None:
    idp = moved
    _, browser = _admin_browser(idp, smtp)
    idp.advance(minutes=11)

    asked = browser.get("/admin")

    assert asked.headers["Location"] == idp.url + "/login/step-up?next=/admin"


def test_a_member_is_found_by_user_id_email_or_sub(idp: LiveIdp, smtp: SmtpServer) -> None:
    _, browser = _admin_browser(idp, smtp)
    member = _person(idp)

    for query in (member.username.upper(), member.email, member.id):
        page = browser.get("/admin", params={"q": query})
        links = re.findall(r'class="admin-user-link" href="([^"]+)"', page.text)
        assert links == [f"/admin/users/{member.id}"], query
    nobody = browser.get("/admin", params={"q": "nobody-" + secrets.token_hex(4)})
    assert "admin-user-link" not in nobody.text


def _post(browser: Browser, page_path: str, target: str, **data: str) -> Any:
    token = csrf_token(browser.get(page_path).text)
    return browser.post(target, {"csrf_token": token, **data})


def test_an_admin_ends_one_session_then_all_and_it_is_audited(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    admin, browser = _admin_browser(idp, smtp)
    member = _person(idp)
    phone, laptop = _signed_in(idp, member), _signed_in(idp, member)
    user_page = f"/admin/users/{member.id}"
    rows = re.findall(r'data-session-id="([^"]+)"', browser.get(user_page).text)
    assert len(rows) == 2

    ended = _post(browser, user_page, f"{user_page}/sessions/{rows[0]}/revoke", revoke=rows[0])

    assert ended.status_code == 303
    assert [phone.get("/account").status_code, laptop.get("/account").status_code].count(303) == 1
    _post(browser, user_page, f"{user_page}/logout")
    assert phone.get("/account").status_code == laptop.get("/account").status_code == 303
    history = browser.get(user_page).text
    assert 'id="admin-events"' in history
    assert "session.ended" in history
    with idp.services():
        from idp import events

        actors = {
            e.detail.get("actor")
            for e in events.list_for_user(member.id)
            if e.kind == "session.ended"
        }
    assert actors == {f"admin:{admin.id}"}


def test_disabling_ends_every_session_and_enabling_lets_the_member_back(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, browser = _admin_browser(idp, smtp)
    member = _person(idp)
    theirs = _signed_in(idp, member)
    user_page = f"/admin/users/{member.id}"

    _post(browser, user_page, f"{user_page}/disable", action="disable")

    assert theirs.get("/account").status_code == 303
    page = browser.get(user_page).text
    assert 'data-status="disabled"' in page
    assert 'id="admin-enable"' in page
    _post(browser, user_page, f"{user_page}/disable", action="enable")
    assert _signed_in(idp, member).get("/account").status_code == 200


def test_an_admin_action_without_the_csrf_token_changes_nothing(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, browser = _admin_browser(idp, smtp)
    member = _person(idp)
    theirs = _signed_in(idp, member)

    reply = browser.post(f"/admin/users/{member.id}/logout", {})

    assert reply.status_code == 400
    assert theirs.get("/account").status_code == 200
