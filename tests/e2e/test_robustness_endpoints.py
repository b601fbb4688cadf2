"""CONTRACT "Robustness", endpoint by endpoint: whatever arrives, an answer.

Every route the application serves gets the cases a black-box run found
breaking something: methods it does not take (405 with ``Allow``), an empty
``Authorization`` header, HTTP Basic credentials that are not UTF-8, junk
bytes, repeated parameters, bearer garbage.  None may be answered 5xx or by
a closed connection, every 401 says ``WWW-Authenticate``.  Then the
specific findings, each by name."""

from __future__ import annotations

import base64
import http.client
import re
from urllib.parse import quote, urlsplit

import pytest

from tests.support.flows import register_software_passkey, sign_in
from tests.support.harness import Browser, LiveIdp, authorization_url, csrf_token, pkce_pair

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?\w+>")


def _paths(idp: LiveIdp) -> list[tuple[str, frozenset[str]]]:
    """Every path the application serves (its variables filled with junk)
    and all the methods it takes there."""
    found: dict[str, set[str]] = {}
    for rule in idp.app.url_map.iter_rules():
        path = _VARIABLE.sub(lambda m: "1" if m["converter"] == "int" else "x", rule.rule)
        found.setdefault(path, set()).update(rule.methods or ())
    return sorted((path, frozenset(methods)) for path, methods in found.items())


def _send(
    idp: LiveIdp,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> http.client.HTTPResponse:
    """One request on a fresh connection; a closed connection fails the test."""
    port = urlsplit(idp.url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    all_headers = {"Host": f"localhost:{port}", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        response.read()
    except (http.client.RemoteDisconnected, ConnectionResetError) as e:
        pytest.fail(f"{method} {path} {headers}: the connection was closed without an answer ({e})")
    finally:
        connection.close()
    return response


def _assert_sane(response: http.client.HTTPResponse, what: str) -> None:
    assert response.status < 500, f"{what}: {response.status}"
    if response.status == 405:
        assert response.getheader("Allow"), f"{what}: 405 without Allow"
    if response.status == 401:
        assert response.getheader("WWW-Authenticate"), f"{what}: 401 without WWW-Authenticate"


NOT_UTF8_BASIC = "Basic " + base64.b64encode(b"\xff\xfe\xfd:\xc3\x28").decode()
NUL_BASIC = "Basic " + base64.b64encode(b"shop%00:secret").decode()
NUL_FORM = b"&".join(
    b"%s=a%%00b" % name
    for name in (b"client_id", b"username", b"login", b"email", b"token", b"code", b"nonce")
)

CASES: dict[str, tuple[dict[str, str], bytes | None]] = {
    "empty-authorization": ({"Authorization": ""}, b""),
    "blank-basic": ({"Authorization": "Basic "}, b"grant_type=client_credentials"),
    "not-utf8-basic": ({"Authorization": NOT_UTF8_BASIC}, b"grant_type=client_credentials"),
    "not-base64-basic": ({"Authorization": "Basic %%%"}, b"token=x"),
    "bearer-garbage": ({"Authorization": "Bearer \x7f.\x7f.\x7f"}, None),
    "junk-body": ({}, b"\x00\xff\xfe=\x80&%zz=%%"),
    "repeated-params": ({}, b"client_id=a&client_id=b&token=x&token=y&grant_type=x&grant_type=y"),
    "json-body": ({"Content-Type": "application/json"}, b'{"credential": [1, {}'),
    # PostgreSQL cannot hold a NUL in text: each of these reached it once (a 500).
    "nul-in-form": ({}, NUL_FORM),
    "nul-in-basic": ({"Authorization": NUL_BASIC}, b"grant_type=client_credentials&token=x"),
    "nul-in-json": ({"Content-Type": "application/json"}, b'{"credential": "\\u0000"}'),
    "lone-surrogate-json": ({"Content-Type": "application/json"}, b'{"name": "\\ud800"}'),
}


@pytest.fixture(scope="module")
def routes(live_idp: LiveIdp) -> list[tuple[str, frozenset[str]]]:
    paths = _paths(live_idp)
    assert any(path == "/token" for path, _ in paths)
    return paths


def test_a_method_an_endpoint_does_not_take_is_405_with_allow(
    live_idp: LiveIdp, routes: list[tuple[str, frozenset[str]]]
) -> None:
    for path, allowed in routes:
        for method in METHODS:
            if method in allowed:
                continue
            response = _send(live_idp, method, path, body=b"" if method != "GET" else None)
            assert response.status == 405, f"{method} {path}: {response.status}"
            allow = {m.strip() for m in (response.getheader("Allow") or "").split(",")}
            assert allow >= set(allowed) - {"OPTIONS"}, f"{method} {path}: Allow {allow}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_endpoint_answers_bad_input_without_a_5xx(
    live_idp: LiveIdp, routes: list[tuple[str, frozenset[str]]], case: str
) -> None:
    headers, body = CASES[case]
    for path, allowed in routes:
        for method in sorted(allowed - {"HEAD", "OPTIONS"}):
            response = _send(
                live_idp, method, path, headers=headers, body=None if method == "GET" else body
            )
            _assert_sane(response, f"{case}: {method} {path}")


# --- the findings, by name -------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(live_idp: LiveIdp) -> object:
    return live_idp.create_client(name="Robust shop")


@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
def test_non_utf8_basic_credentials_are_invalid_client(live_idp: LiveIdp, endpoint: str) -> None:
    response = _send(
        live_idp,
        "POST",
        endpoint,
        headers={"Authorization": NOT_UTF8_BASIC},
        body=b"grant_type=client_credentials&token=x",
    )
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Basic realm="idp"'


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("POST", "/token", {}, b"grant_type=client_credentials&client_id=shop%00"),
        ("POST", "/token", {"Authorization": NUL_BASIC}, b"grant_type=client_credentials"),
        ("POST", "/introspect", {"Authorization": NUL_BASIC}, b"token=x"),
        ("POST", "/revoke", {}, b"token=x&client_id=%00"),
        ("GET", "/userinfo?access_token=%00", {}, None),
        ("GET", "/admin/api/users/a%00b/sessions", {}, None),
    ],
    ids=["token-form", "token-basic", "introspect-basic", "revoke", "userinfo", "admin-path"],
)
def test_a_nul_character_is_an_invalid_request_at_the_json_endpoints(
    live_idp: LiveIdp, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    """The same 400 on either database (PostgreSQL cannot store a NUL;
    ``idp.text_input``), before any credential or token is looked at."""
    response = _send(live_idp, method, path, headers=headers, body=body)

    assert response.status == 400
    assert response.getheader("Content-Type", "").startswith("application/json")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/authorize?response_type=code&client_id=%00&scope=openid", None),
        ("POST", "/login", b"username=a%00&password=x"),
        ("POST", "/recover/password", b"login=a%00b@example.com"),
        ("GET", "/logout?client_id=%00&post_logout_redirect_uri=x", None),
    ],
    ids=["authorize", "login", "recover", "logout"],
)
def test_a_nul_character_is_a_readable_400_page(
    live_idp: LiveIdp, method: str, path: str, body: bytes | None
) -> None:
    response = _send(live_idp, method, path, body=body)

    assert response.status == 400
    assert response.getheader("Content-Type", "").startswith("text/html")


def test_a_passkey_named_with_half_a_surrogate_pair_is_refused(live_idp: LiveIdp) -> None:
    """JSON may escape half of a UTF-16 pair; no database driver can store
    the string it decodes to (``idp.text_input``)."""
    member = live_idp.create_user()

    reply, _ = register_software_passkey(
        live_idp, member.username, "correct horse 1", name="phone \ud800"
    )

    assert reply.status_code == 400
    with live_idp.services():
        from idp import passkeys

        assert passkeys.list_for_user(member.id) == []


@pytest.mark.parametrize(
    "redirect_uri",
    ["http:\\\\evil.example\\cb", "https:/\\evil.example", "\\\\evil.example", "http://[evil"],
)
def test_a_malformed_redirect_uri_is_a_page_never_a_redirect(
    live_idp: LiveIdp, shop: object, redirect_uri: str
) -> None:
    url = authorization_url(live_idp, shop, redirect_uri=redirect_uri)
    response = _send(live_idp, "GET", url.removeprefix(live_idp.url))
    assert response.status == 400
    assert response.getheader("Location") is None


def test_userinfo_with_a_repeated_parameter_says_how_to_authenticate(live_idp: LiveIdp) -> None:
    response = _send(live_idp, "GET", "/userinfo?a=1&a=2")
    assert response.status in (400, 401)
    assert response.getheader("WWW-Authenticate", "").startswith("Bearer ")


def test_userinfo_bad_request_carries_a_bearer_challenge(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    response = _send(
        live_idp,
        "POST",
        "/userinfo",
        headers={"Authorization": "Bearer " + signed.tokens["access_token"]},
        body=b"x=1&x=2",
    )
    assert response.status == 400
    assert response.getheader("WWW-Authenticate") == 'Bearer realm="idp", error="invalid_request"'


def test_an_unknown_token_type_hint_is_ignored(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    client_id, secret = signed.auth
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = quote(signed.tokens["access_token"])
    response = _send(
        live_idp,
        "POST",
        "/introspect",
        headers={"Authorization": "Basic " + basic},
        body=f"token={token}&token_type_hint=id_token".encode(),
    )
    assert response.status == 200
    revoked = _send(
        live_idp,
        "POST",
        "/revoke",
        headers={"Authorization": "Basic " + basic},
        body=f"token={token}&token_type_hint=bogus".encode(),
    )
    assert revoked.status == 200


@pytest.fixture
def signed_in_browser(live_idp: LiveIdp) -> Browser:
    return sign_in(live_idp).browser


@pytest.mark.parametrize("body", [b"[1]", b'"match"', b"5", b"null"])
def test_every_form_past_its_csrf_check_takes_json_that_is_no_object(
    live_idp: LiveIdp, routes: list[tuple[str, frozenset[str]]], body: bytes
) -> None:
    """The pages' scripts send a JSON object; a JSON array, string or number
    (a hand-made request, signed in and with the CSRF token) was a 500 at the
    QR approval's number once."""
    browser = sign_in(live_idp).browser
    headers = {
        "X-CSRFToken": csrf_token(browser.get("/account").text),
        "Content-Type": "application/json",
    }
    for path, allowed in routes:
        if "POST" not in allowed:
            continue
        reply = browser.http.post(
            browser.base + path, data=body, headers=headers, allow_redirects=False, timeout=10
        )
        assert reply.status_code < 500, f"{body!r}: POST {path}: {reply.status_code}"


@pytest.mark.parametrize("ended", ["\u00b2", "\u0663", "-1", "9" * 40, "x"])
def test_the_sessions_page_takes_any_ended_count(signed_in_browser: Browser, ended: str) -> None:
    assert signed_in_browser.get("/account/sessions?ended=" + quote(ended)).status_code == 200


@pytest.mark.parametrize("passkey_id", ["2147483648", "9223372036854775808", "9" * 30])
@pytest.mark.parametrize("action", ["rename", "delete"])
def test_a_passkey_number_past_the_column_is_not_found(
    signed_in_browser: Browser, passkey_id: str, action: str
) -> None:
    """A number no passkey can have (PostgreSQL's ``integer`` ends at 2**31 - 1,
    SQLite's at 2**63 - 1) is no such page, not a database error."""
    token = csrf_token(signed_in_browser.get("/account/passkeys").text)

    reply = signed_in_browser.http.post(
        f"{signed_in_browser.base}/account/passkeys/{passkey_id}/{action}",
        data={"csrf_token": token, "name": "phone"},
        allow_redirects=False,
        timeout=10,
    )

    assert reply.status_code == 404


def test_request_text_is_never_echoed_in_an_alert(live_idp: LiveIdp, shop: object) -> None:
    marker = "INJECTED<b>marker"
    for extra in ({"response_type": marker}, {"prompt": marker}, {"scope": "openid " + marker}):
        url = authorization_url(
            live_idp,
            shop,
            code_challenge=pkce_pair()[1],
            code_challenge_method="S256",
            **extra,
        )
        browser = Browser(live_idp.url)
        reply = browser.follow(browser.get(url))
        assert "INJECTED" not in reply.text
        assert "INJECTED" not in reply.headers.get("Location", "").replace("%3C", "<")


def test_the_demo_callback_exists_only_on_the_embedded_defaults(live_idp: LiveIdp) -> None:
    assert _send(live_idp, "GET", "/demo/callback?error=x").status == 404


def test_a_logout_token_is_no_id_token_hint(live_idp: LiveIdp) -> None:
    from idp import backchannel

    signed = sign_in(live_idp)
    with live_idp.services():
        logout_token = backchannel.logout_token(
            client_id=signed.client.client.client_id, sid="sid", sub=signed.member.id
        )
    page = signed.browser.get("/logout?id_token_hint=" + logout_token)
    assert page.status_code == 400
    assert 'id="logout-form"' not in page.text
    assert signed.browser.get("/account").status_code == 200  # still signed in


def test_the_csrf_check_holds_for_the_sign_in_form(live_idp: LiveIdp) -> None:
    browser = Browser(live_idp.url)
    page = browser.get("/login")
    assert csrf_token(page.text)
    reply = browser.post("/login", {"username": "x", "password": "y"})
    assert reply.status_code == 400
