"""Membership as a person lives it, with mail through a real SMTP server.

Registration and its confirmation link, the profile (gender and birth date
fixed), recovery of a user ID and a password, a password change, one-time
codes and the step-up of a sign-in.  The provider of this module delivers
its mail over SMTP to an aiosmtpd server on loopback; each test reads the
mail as the person would: by address and subject, following its one link."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import requests

from tests.support.flows import answer_step_up, redeem, refresh
from tests.support.harness import (
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    eventually,
    pkce_pair,
)
from tests.support.mailbox import links_in, mail_to, mails_to, text_of
from tests.support.race import race
from tests.support.receiver import LogoutReceiver
from tests.support.set_receiver import SetReceiver
from tests.support.smtp import SmtpServer

PASSWORD = "a long passphrase 7"


@pytest.fixture
def idp(member_idp: LiveIdp) -> LiveIdp:
    return member_idp


@pytest.fixture
def moved(idp: LiveIdp) -> Iterator[LiveIdp]:
    yield idp
    idp.reset_clock()


def _new_name() -> str:
    return "m" + secrets.token_hex(5)


def _register(
    idp: LiveIdp,
    *,
    username: str,
    email: str,
    password: str = PASSWORD,
    gender: str = "female",
    birthdate: str = "1990-04-01",
    browser: Browser | None = None,
) -> tuple[Browser, requests.Response]:
    browser = browser or Browser(idp.url)
    form = browser.get("/register")
    assert 'id="register-form"' in form.text
    reply = browser.post(
        "/register",
        {
            "csrf_token": csrf_token(form.text),
            "username": username,
            "email": email,
            "password": password,
            "name": "Hanako Yamada",
            "gender": gender,
            "birthdate": birthdate,
        },
    )
    return browser, reply


def _one_link(idp: LiveIdp, message: Any) -> str:
    (link,) = links_in(message)
    assert link.startswith(idp.url + "/")
    return link


def _registered(idp: LiveIdp, smtp: SmtpServer) -> tuple[str, str, Browser]:
    """A member who registered and opened the confirmation link."""
    username, email = _new_name(), f"{_new_name()}@example.com"
    browser, reply = _register(idp, username=username, email=email)
    assert 'id="register-sent"' in reply.text
    link = _one_link(idp, mail_to(smtp, email, "Confirm your email address"))
    assert 'id="verified"' in browser.get(link).text
    return username, email, browser


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- registration -------------------------------------------------------------------


def test_registration_mails_a_link_that_confirms_the_address(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email = _new_name(), f"{_new_name()}@example.com"
    browser, reply = _register(idp, username=username, email=email)
    assert 'id="register-sent"' in reply.text

    message = mail_to(smtp, email, "Confirm your email address")
    assert message["Subject"] == "[Family] Confirm your email address"
    assert message["From"] == idp.settings.mail.sender
    link = _one_link(idp, message)
    assert 'id="verified"' in browser.get(link).text
    used_again = browser.get(link)
    assert used_again.status_code == 400
    assert 'role="alert"' in used_again.text


def test_before_confirming_the_address_no_service_can_be_signed_in_to(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email = _new_name(), f"{_new_name()}@example.com"
    _register(idp, username=username, email=email)
    shop = idp.create_client(first_party=True)
    browser = Browser(idp.url)
    url = authorization_url(idp, shop, code_challenge=pkce_pair()[1], code_challenge_method="S256")

    page = browser.sign_in(browser.follow(browser.get(url)), username, PASSWORD)

    assert 'id="login-form"' in page.text
    assert "Confirm your email address first" in page.text
    assert 'role="alert"' in page.text
    # The account's own pages are open to it.
    own = browser.sign_in(browser.get("/login"), username, PASSWORD)
    assert own.url.endswith("/account")
    # Once confirmed, the service lets the person in.
    browser.get(_one_link(idp, mail_to(smtp, email, "Confirm your email address")))
    assert "code" in callback_params(browser.follow(browser.get(url)))


def test_a_taken_user_id_is_refused_at_once_whatever_its_case(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, _, _ = _registered(idp, smtp)
    _, reply = _register(idp, username=username.upper(), email=f"{_new_name()}@example.com")
    assert reply.status_code == 400
    assert 'role="alert"' in reply.text
    assert "That user ID is taken" in reply.text


def test_a_registered_address_is_answered_alike_and_its_owner_told(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, email, _ = _registered(idp, smtp)
    _, reply = _register(idp, username=_new_name(), email=email.upper())
    fresh_email = f"{_new_name()}@example.com"
    _, fresh = _register(idp, username=_new_name(), email=fresh_email)

    assert reply.status_code == fresh.status_code == 200
    assert 'id="register-sent"' in reply.text
    strip = re.compile(r'name="csrf_token" value="[^"]+"|content="[^"]+"')
    assert strip.sub("", reply.text) == strip.sub("", fresh.text)
    notice = mail_to(smtp, email, "Someone tried to register with your address")
    assert len(links_in(notice)) == 1
    assert len(mails_to(smtp, email, "Confirm your email address")) == 1


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("short1", "at least 10 characters"),
        ("password123", "most common"),
        ("{username}-secret", "must not contain"),
    ],
)
def test_a_weak_password_is_refused_with_the_reason(idp: LiveIdp, password: str, says: str) -> None:
    username = _new_name()
    _, reply = _register(
        idp,
        username=username,
        email=f"{_new_name()}@example.com",
        password=password.format(username=username),
    )
    assert reply.status_code == 400
    assert says in reply.text


# --- profile ------------------------------------------------------------------------


def test_gender_and_birth_date_cannot_be_changed_even_by_a_hand_made_post(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, _, browser = _signed_in_member(idp, smtp)
    page = browser.get("/account")
    browser.post(
        "/account",
        {
            "csrf_token": csrf_token(page.text),
            "name": "New Name",
            "gender": "male",
            "birthdate": "2001-01-01",
        },
    )
    after = browser.get("/account").text
    assert 'value="New Name"' in after
    assert re.search(r'id="gender">female<', after)
    assert re.search(r'id="birthdate">1990-04-01<', after)


def _signed_in_member(idp: LiveIdp, smtp: SmtpServer) -> tuple[str, str, Browser]:
    username, email, browser = _registered(idp, smtp)
    page = browser.sign_in(browser.get("/login"), username, PASSWORD)
    assert page.url.endswith("/account")
    return username, email, browser


def test_a_new_email_address_is_used_once_its_link_is_opened_and_the_old_is_told(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, old, browser = _signed_in_member(idp, smtp)
    new = f"{_new_name()}@example.com"
    page = browser.get("/account")
    reply = browser.follow(
        browser.post(
            "/account",
            {"csrf_token": csrf_token(page.text), "name": "Hanako", "email": new},
        )
    )
    assert 'id="email-sent"' in reply.text
    assert f'value="{old}"' in browser.get("/account").text  # not yet

    browser.get(_one_link(idp, mail_to(smtp, new, "Confirm your email address")))

    assert f'value="{new}"' in browser.get("/account").text
    told = mail_to(smtp, old, "Your email address was changed")
    assert new not in text_of(told)  # masked
    assert new[:2] in text_of(told)


# --- recovery -----------------------------------------------------------------------


def _strip_tokens(html: str) -> str:
    return re.sub(r'(name="csrf_token" value|name="csrf-token" content)="[^"]+"', "", html)


def test_the_forgotten_user_id_page_answers_alike_and_mails_the_user_id(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email, _ = _registered(idp, smtp)
    browser = Browser(idp.url)

    def ask(address: str) -> requests.Response:
        form = browser.get("/recover/user-id")
        assert 'id="recover-user-id-form"' in form.text
        return browser.post(
            "/recover/user-id", {"csrf_token": csrf_token(form.text), "email": address}
        )

    known, unknown = ask(email), ask(f"{_new_name()}@example.com")

    assert known.status_code == unknown.status_code == 200
    assert 'id="recover-sent"' in known.text
    assert _strip_tokens(known.text) == _strip_tokens(unknown.text)
    assert username in text_of(mail_to(smtp, email, "Your user ID"))


def _ask_reset(idp: LiveIdp, login: str) -> requests.Response:
    browser = Browser(idp.url)
    form = browser.get("/recover/password")
    assert 'id="recover-password-form"' in form.text
    return browser.post("/recover/password", {"csrf_token": csrf_token(form.text), "login": login})


def _reset(idp: LiveIdp, link: str, password: str) -> requests.Response:
    browser = Browser(idp.url)
    form = browser.get(link)
    assert 'id="reset-password-form"' in form.text, form.text[:300]
    return browser.post(_path(link), {"csrf_token": csrf_token(form.text), "password": password})


def test_a_password_reset_ends_every_session_and_tells_the_person(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email, elsewhere = _signed_in_member(idp, smtp)
    known, unknown = _ask_reset(idp, username), _ask_reset(idp, "nobody-" + _new_name())
    assert _strip_tokens(known.text) == _strip_tokens(unknown.text)
    message = mail_to(smtp, email, "Reset your password")
    link = _one_link(idp, message)

    done = _reset(idp, link, "a brand new passphrase 9")

    assert 'id="reset-done"' in done.text
    assert elsewhere.get("/account").status_code == 303  # the other browser is signed out
    assert len(links_in(mail_to(smtp, email, "Your password was changed"))) == 1
    someone = Browser(idp.url)
    page = someone.sign_in(someone.get("/login"), username, "a brand new passphrase 9")
    assert page.url.endswith("/account")
    used = Browser(idp.url).get(link)
    assert used.status_code == 400
    assert 'role="alert"' in used.text


def test_a_reset_link_expires_after_30_minutes(moved: LiveIdp, smtp: SmtpServer) -> None:
    idp = moved
    _, email, _ = _registered(idp, smtp)
    _ask_reset(idp, email)
    link = _one_link(idp, mail_to(smtp, email, "Reset your password"))
    idp.advance(minutes=31)

    reply = Browser(idp.url).get(link)

    assert reply.status_code == 400
    assert 'role="alert"' in reply.text
    assert "expired" in reply.text


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email, here = _signed_in_member(idp, smtp)
    there = Browser(idp.url)
    there.sign_in(there.get("/login"), username, PASSWORD)
    page = here.get("/account/security")
    assert 'id="password-form"' in page.text

    wrong = here.post(
        "/account/security/password",
        {"csrf_token": csrf_token(page.text), "current_password": "nope", "new_password": "x" * 12},
    )
    assert wrong.status_code == 400
    assert 'role="alert"' in wrong.text
    right = here.post(
        "/account/security/password",
        {
            "csrf_token": csrf_token(page.text),
            "current_password": PASSWORD,
            "new_password": "another long passphrase",
        },
    )

    assert right.status_code == 303
    assert here.get("/account").status_code == 200
    assert there.get("/account").status_code == 303
    assert mail_to(smtp, email, "Your password was changed")


def test_of_two_simultaneous_openings_of_one_confirmation_link_one_confirms(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    """Single use of a mailed link holds under concurrency (CONTRACT,
    Robustness): two clicks of one link at the same moment, repeated."""
    for _ in range(3):
        username, email = _new_name(), f"{_new_name()}@example.com"
        _register(idp, username=username, email=email)
        link = _one_link(idp, mail_to(smtp, email, "Confirm your email address"))

        replies = race(*(lambda u=link: Browser(idp.url).get(u) for _ in range(2)))

        assert sorted(r.status_code for r in replies) == [200, 400], replies
        assert 'id="verified"' in next(r for r in replies if r.status_code == 200).text
        assert 'role="alert"' in next(r for r in replies if r.status_code == 400).text


def test_of_two_simultaneous_resets_through_one_link_one_sets_the_password(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    """Both forms were opened (opening is not a use); both are sent at once.
    One password is set, the other refused, and only the winner's signs in."""
    for round_ in range(3):
        username, email, _ = _registered(idp, smtp)
        _ask_reset(idp, email)
        link = _one_link(idp, mail_to(smtp, email, "Reset your password"))
        path = _path(link)
        passwords = [f"first new passphrase {round_}", f"second new passphrase {round_}"]
        browsers = [Browser(idp.url), Browser(idp.url)]
        forms = [b.get(link) for b in browsers]
        assert all('id="reset-password-form"' in f.text for f in forms)

        replies = race(
            *(
                lambda b=b, f=f, pw=pw, path=path: b.post(
                    path, {"csrf_token": csrf_token(f.text), "password": pw}
                )
                for b, f, pw in zip(browsers, forms, passwords, strict=True)
            )
        )

        assert sorted(r.status_code for r in replies) == [200, 400], replies
        won = next(i for i, r in enumerate(replies) if r.status_code == 200)
        assert 'id="reset-done"' in replies[won].text
        for i, password in enumerate(passwords):
            someone = Browser(idp.url)
            page = someone.sign_in(someone.get("/login"), username, password)
            assert page.url.endswith("/account") is (i == won)


# --- one-time codes and the step-up ------------------------------------------------------


def _turn_on_totp(browser: Browser) -> tuple[pyotp.TOTP, list[str]]:
    page = browser.get("/account/security")
    setup = browser.post("/account/security/totp", {"csrf_token": csrf_token(page.text)})
    assert 'id="totp-qr"' in setup.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    confirmed = browser.post(
        "/account/security/totp/confirm",
        {"csrf_token": csrf_token(setup.text), "otp": totp.now()},
    )
    # That code's time step is used up: the next codes come from the next step.
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", confirmed.text)
    assert 'id="recovery-codes"' in confirmed.text
    assert len(codes) == 10
    return totp, codes


def _next_code(totp: pyotp.TOTP) -> str:
    """The code of the next time step (accepted: the app's clock may run ahead)."""
    return str(totp.at(time.time() + totp.interval))


def _strong_request(idp: LiveIdp, client: Any) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    url = authorization_url(
        idp,
        client,
        code_challenge=challenge,
        code_challenge_method="S256",
        acr_values="urn:idp:acr:2",
    )
    return url, verifier


def _id_claims(tokens: dict[str, Any]) -> dict[str, Any]:
    part = tokens["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_step_up_with_totp_adds_otp_and_mfa_and_a_code_works_once(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, _, browser = _signed_in_member(idp, smtp)
    totp, _ = _turn_on_totp(browser)
    shop = idp.create_client(first_party=True)
    url, verifier = _strong_request(idp, shop)

    page = browser.follow(browser.get(url))
    assert 'id="login-form"' not in page.text  # signed in already: the step-up only
    code = _next_code(totp)
    leaving = browser.follow(answer_step_up(browser, page, "otp", code))
    tokens = redeem(idp, shop, callback_params(leaving)["code"], verifier).json()

    claims = _id_claims(tokens)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "urn:idp:acr:2"


def test_a_totp_code_is_never_accepted_twice(idp: LiveIdp, smtp: SmtpServer) -> None:
    username, _, browser = _signed_in_member(idp, smtp)
    totp, _ = _turn_on_totp(browser)
    shop = idp.create_client(first_party=True)
    code = _next_code(totp)
    first = Browser(idp.url)
    first.sign_in(first.get("/login"), username, PASSWORD)
    page = first.follow(first.get(_strong_request(idp, shop)[0]))
    assert "code=" in first.follow(answer_step_up(first, page, "otp", code)).headers["Location"]

    second = Browser(idp.url)
    second.sign_in(second.get("/login"), username, PASSWORD)
    page = second.follow(second.get(_strong_request(idp, shop)[0]))
    again = answer_step_up(second, page, "otp", code)
    assert again.status_code == 400
    assert 'role="alert"' in again.text


def test_a_recovery_code_passes_a_step_up_once(idp: LiveIdp, smtp: SmtpServer) -> None:
    username, _, browser = _signed_in_member(idp, smtp)
    _, codes = _turn_on_totp(browser)
    shop = idp.create_client(first_party=True)
    for expected in (303, 400):
        other = Browser(idp.url)
        other.sign_in(other.get("/login"), username, PASSWORD)
        page = other.follow(other.get(_strong_request(idp, shop)[0]))
        assert answer_step_up(other, page, "otp", codes[0]).status_code == expected


def test_without_totp_the_step_up_code_comes_by_mail(idp: LiveIdp, smtp: SmtpServer) -> None:
    _, email, browser = _signed_in_member(idp, smtp)
    shop = idp.create_client(first_party=True)
    url, verifier = _strong_request(idp, shop)

    page = browser.follow(browser.get(url))
    message = mail_to(smtp, email, "Your sign-in code")
    assert links_in(message) == []
    code = re.search(r"\b(\d{6})\b", text_of(message))
    assert code
    wrong = answer_step_up(
        browser, page, "otp", "000000" if code.group(1) != "000000" else "111111"
    )
    assert wrong.status_code == 400
    assert 'role="alert"' in wrong.text
    leaving = browser.follow(answer_step_up(browser, wrong, "otp", code.group(1)))

    tokens = redeem(idp, shop, callback_params(leaving)["code"], verifier).json()
    assert _id_claims(tokens)["amr"] == ["pwd", "otp", "mfa"]


def test_the_fifth_wrong_answer_refuses_the_sign_in(idp: LiveIdp, smtp: SmtpServer) -> None:
    _, _, browser = _signed_in_member(idp, smtp)
    shop = idp.create_client(first_party=True)
    page = browser.follow(browser.get(_strong_request(idp, shop)[0]))
    for _ in range(5):
        page = answer_step_up(browser, page, "otp", "999999")
    assert page.status_code == 403
    assert "refused" in page.text
    assert 'role="alert"' in page.text
    assert 'id="otp-form"' not in page.text


def test_a_password_sign_in_is_stepped_up_when_the_service_asks(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    username, email, _ = _registered(idp, smtp)
    shop = idp.create_client(first_party=True)
    url, verifier = _strong_request(idp, shop)
    browser = Browser(idp.url)

    page = browser.sign_in(browser.follow(browser.get(url)), username, PASSWORD)
    code = re.search(r"\b(\d{6})\b", text_of(mail_to(smtp, email, "Your sign-in code")))
    assert code
    leaving = browser.follow(answer_step_up(browser, page, "otp", code.group(1)))

    tokens = redeem(idp, shop, callback_params(leaving)["code"], verifier).json()
    assert _id_claims(tokens)["acr"] == "urn:idp:acr:2"


def test_prompt_none_needing_a_step_up_is_interaction_required(
    idp: LiveIdp, smtp: SmtpServer
) -> None:
    _, _, browser = _signed_in_member(idp, smtp)
    shop = idp.create_client(first_party=True)
    url, _ = _strong_request(idp, shop)
    assert callback_params(browser.get(url + "&prompt=none"))["error"] == "interaction_required"


# --- cancelling the membership ----------------------------------------------------------


def _tokens_for(idp: LiveIdp, client: Any, browser: Browser, username: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    url = authorization_url(idp, client, code_challenge=challenge, code_challenge_method="S256")
    leaving = browser.authorize(url, username=username, password=PASSWORD)
    reply = redeem(idp, client, callback_params(leaving)["code"], verifier)
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


def _cancel(browser: Browser) -> requests.Response:
    page = browser.get("/account/cancel")
    assert 'id="cancel-form"' in page.text, page.text[:400]
    return browser.post("/account/cancel", {"csrf_token": csrf_token(page.text)})


def test_cancelling_needs_a_fresh_sign_in(moved: LiveIdp, smtp: SmtpServer) -> None:
    idp = moved
    _, _, browser = _signed_in_member(idp, smtp)
    idp.advance(minutes=6)
    page = browser.get("/account/cancel")
    assert 'id="cancel-form"' not in page.text
    assert 'id="cancel-reauth"' in page.text


@pytest.fixture
def receivers() -> Iterator[tuple[LogoutReceiver, SetReceiver]]:
    logout, events = LogoutReceiver().up(), SetReceiver().up()
    yield logout, events
    logout.down()
    events.down()


def test_cancelling_deletes_everything_tells_every_service_and_frees_the_address(
    idp: LiveIdp, smtp: SmtpServer, receivers: tuple[LogoutReceiver, SetReceiver]
) -> None:
    logout, set_receiver = receivers
    shop = idp.create_client(
        first_party=True, backchannel_logout_uri=logout.uri, events_uri=set_receiver.uri
    )
    username, email, browser = _signed_in_member(idp, smtp)
    tokens = _tokens_for(idp, shop, browser, username)
    sub = _id_claims(tokens)["sub"]

    done = _cancel(browser)

    assert 'id="cancel-done"' in done.text
    assert mail_to(smtp, email, "Your membership was cancelled")
    refreshed = refresh(idp, shop, tokens["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"
    assert eventually(lambda: logout.claims_for(idp.url, sub=sub))
    purged = eventually(lambda: set_receiver.tokens)
    assert _set_events(idp, purged[0]) == (
        sub,
        ["https://schemas.openid.net/secevent/risc/event-type/account-purged"],
    )
    _assert_nothing_left(idp, sub)
    _, taken = _register(idp, username=username, email=f"{_new_name()}@example.com")
    assert "That user ID is taken" in taken.text
    again = _new_name()
    _, reply = _register(idp, username=again, email=email)
    assert 'id="register-sent"' in reply.text
    Browser(idp.url).get(_one_link(idp, mail_to(smtp, email, "Confirm your email address", nth=2)))
    fresh = _tokens_for(idp, shop, Browser(idp.url), again)
    assert _id_claims(fresh)["sub"] != sub


def _set_events(idp: LiveIdp, token: str) -> tuple[str, list[str]]:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    jwks = KeySet.import_key_set(requests.get(idp.url + "/jwks.json", timeout=5).json())
    decoded = jwt.decode(token, jwks, algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "secevent+jwt"
    return decoded.claims["sub_id"]["sub"], sorted(decoded.claims["events"])


def _assert_nothing_left(idp: LiveIdp, sub: str) -> None:
    from sqlalchemy import func, select

    from idp.db import db
    from idp.models import (
        AccessToken,
        AuditEvent,
        Consent,
        Passkey,
        RefreshToken,
        SignInSession,
        User,
    )

    with idp.services():
        assert db.session.get(User, sub) is None
        for model in (SignInSession, Passkey, Consent, AccessToken, RefreshToken):
            count = db.session.scalar(
                select(func.count()).select_from(model).where(model.user_id == sub)
            )
            assert count == 0, model.__name__
        kinds = db.session.scalars(select(AuditEvent.kind).where(AuditEvent.user_id == sub)).all()
        # The member's history is gone; what remains is the cancellation and
        # the provider's record of telling the services.
        assert "account.cancelled" in kinds
        assert {k for k in kinds if not k.endswith(".delivered")} == {"account.cancelled"}
