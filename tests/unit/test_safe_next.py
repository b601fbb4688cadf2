"""Return paths after sign-in: on this provider only, never an open redirect."""

from __future__ import annotations

import pytest

from consent_ui.context import safe_next

DEFAULT = "/account"


@pytest.mark.parametrize(
    "value",
    ["/account", "/account/sessions", "/account/security?tab=totp", "/consent#top"],
)
def test_local_path_is_kept(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("//evil.example", id="scheme-relative"),
        pytest.param("//evil.example/account", id="scheme-relative-with-path"),
        pytest.param("https://evil.example/x", id="absolute-url"),
        pytest.param("/\\evil", id="backslash"),
        pytest.param("\\\\evil.example", id="double-backslash"),
        pytest.param("javascript:alert(1)", id="javascript-scheme"),
        pytest.param("account", id="no-leading-slash"),
        pytest.param("/account\nLocation: https://evil.example", id="newline"),
        pytest.param("/\t/evil.example", id="tab-hiding-scheme-relative"),
        pytest.param("/account\x00", id="nul"),
        pytest.param("//[evil.example", id="unbalanced-bracket-in-host"),
        pytest.param("/" + "a" * 512, id="longer-than-512"),
    ],
)
def test_anything_else_falls_back_to_the_default(value: str | None) -> None:
    assert safe_next(value) == DEFAULT


def test_fallback_is_the_default_given() -> None:
    assert safe_next("https://evil.example/x", default="/") == "/"
