"""The demo shop (``examples/shop``) end to end in a real browser.

A visitor signs in to the shop through the provider and is back at the shop
signed in, with their name (``#shop-user``) and how they signed in
(``#shop-amr``); an admin ends that sign-in on ``/admin``; the provider's
back-channel logout reaches the shop, which shows the visitor signed out
at the next page load.  The shop is the real thing: Authlib's Flask client
under granian, as ``make demo`` runs it."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.flows import answer_step_up
from tests.support.harness import Browser, LiveIdp, eventually
from tests.support.mailbox import mail_to, text_of
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer

pytest_plugins = ("tests.support.browser",)

pytestmark = pytest.mark.browser

PASSWORD = "correct horse 1"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shop(member_idp: LiveIdp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://localhost:{port}"
    client = member_idp.create_client(
        name="Family Shop",
        redirect_uris=[f"{url}/callback"],
        post_logout_redirect_uris=[f"{url}/"],
        backchannel_logout_uri=f"http://127.0.0.1:{port}/backchannel-logout",
        events_uri=f"http://127.0.0.1:{port}/events",
        first_party=True,
    )
    root = tmp_path_factory.mktemp("shop")
    credentials = root / "client.json"
    credentials.write_text(
        json.dumps({"client_id": client.client.client_id, "client_secret": client.client_secret})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "SHOP_"))}
    env.update(
        SHOP_ISSUER=member_idp.url,
        SHOP_URL=url,
        SHOP_CLIENT=str(credentials),
        SHOP_DATA=str(root / "shop.sqlite3"),
    )
    granian = str(Path(sys.executable).parent / "granian")
    process = subprocess.Popen(
        [granian, "--interface", "wsgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
         "examples.shop.app:create_app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        eventually(lambda: _answers(url), timeout=30)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/", timeout=1).ok
    except requests.RequestException:
        return False


def _admin_ends_sessions_of(idp: LiveIdp, smtp: SmtpServer, member_id: str) -> None:
    admin = idp.create_user(email=f"{secrets.token_hex(6)}@example.com", is_admin=True)
    browser = Browser(idp.url)
    browser.sign_in(browser.get("/login"), admin.username, PASSWORD)
    page = browser.follow(browser.get("/admin"))
    code = re.search(r"\b(\d{6})\b", text_of(mail_to(smtp, admin.email, "Your sign-in code")))
    assert code
    browser.follow(answer_step_up(browser, page, "otp", code.group(1)))
    user_page = browser.get(f"/admin/users/{member_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', user_page.text)
    assert token
    ended = browser.post(f"/admin/users/{member_id}/logout", {"csrf_token": token.group(1)})
    assert ended.status_code == 303


def test_a_visitor_signs_in_to_the_shop_and_an_admin_s_forced_logout_signs_them_out(
    member_idp: LiveIdp, smtp: SmtpServer, shop: str, open_device: Callable[[], Page]
) -> None:
    member = member_idp.create_user(
        email=f"{secrets.token_hex(6)}@example.com", name="Hanako Yamada"
    )
    page = open_device()
    page.goto(shop + "/")
    page.locator("a#shop-login").click()
    form = page.locator("form#login-form")
    form.locator("input[name=username]").fill(member.username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()

    expect(page.locator("#shop-user")).to_have_text("Hanako Yamada")
    expect(page.locator("#shop-amr")).to_have_attribute("data-amr", "pwd")
    page.locator("#amount").fill("1250")
    page.locator("#shop-buy").click()
    expect(page.locator("#shop-points")).to_have_text("12")

    _admin_ends_sessions_of(member_idp, smtp, member.id)

    def signed_out() -> bool:
        page.goto(shop + "/")
        return page.locator("a#shop-login").count() == 1

    assert eventually(signed_out, timeout=20)
    expect(page.locator("button#shop-logout")).to_have_count(0)
