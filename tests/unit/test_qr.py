"""The QR request's rules, without a browser: single use, bound, expiring."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from idp import clock, qr
from idp.db import db
from idp.models import AuditEvent
from idp.qr import QrError


@pytest.fixture
def frozen(app: Flask) -> Iterator[None]:
    clock.freeze()
    yield
    clock.unfreeze()


def _start() -> qr.Started:
    return qr.start(
        ip="203.0.113.9", user_agent="Mozilla/5.0 (X11; Linux) Chrome/156", return_to="/account"
    )


def test_the_link_carries_a_random_token_and_three_choices_include_the_number(frozen: None) -> None:
    started = _start()
    info = qr.describe(started.token)
    assert started.url.endswith("/qr/" + started.token)
    assert len(started.token) >= 43
    assert len(info.choices) == 3
    assert len(set(info.choices)) == 3
    assert started.match_code in info.choices
    assert all(len(c) == 2 and c.isdigit() for c in info.choices)
    assert info.requester_ip == "203.0.113.9"


def test_opening_the_link_is_not_a_use(frozen: None) -> None:
    started = _start()
    for _ in range(3):
        assert qr.describe(started.token).state == "pending"


def test_a_wrong_number_denies_the_request_for_good(frozen: None) -> None:
    started = _start()
    wrong = next(c for c in qr.describe(started.token).choices if c != started.match_code)
    with pytest.raises(QrError, match="not the number"):
        qr.pick(started.token, wrong)
    assert qr.status(started.public_id, started.binding).state == "denied"
    with pytest.raises(QrError):
        qr.pick(started.token, started.match_code)


def test_the_right_number_returns_a_passkey_challenge_once(frozen: None) -> None:
    started = _start()
    options = qr.pick(started.token, started.match_code)
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []
    with pytest.raises(QrError, match="already picked"):
        qr.pick(started.token, started.match_code)
    assert qr.status(started.public_id, started.binding).state == "denied"


def test_deny_ends_the_request(frozen: None) -> None:
    started = _start()
    qr.deny(started.token)
    assert qr.status(started.public_id, started.binding).state == "denied"
    with pytest.raises(QrError):
        qr.deny(started.token)


def test_the_request_expires_after_its_ttl(frozen: None) -> None:
    started = _start()
    clock.advance(seconds=121)
    assert qr.status(started.public_id, started.binding).state == "expired"
    with pytest.raises(QrError, match="expired"):
        qr.pick(started.token, started.match_code)


def test_another_browser_learns_nothing_and_collects_nothing(frozen: None) -> None:
    started = _start()
    for binding in (None, "", "someone-else"):
        with pytest.raises(QrError, match="unknown"):
            qr.status(started.public_id, binding)
        with pytest.raises(QrError, match="unknown"):
            qr.collect(started.public_id, binding)


def test_a_pending_request_cannot_be_collected(frozen: None) -> None:
    started = _start()
    with pytest.raises(QrError, match="not been approved"):
        qr.collect(started.public_id, started.binding)


def test_approval_needs_the_number_first(frozen: None) -> None:
    started = _start()
    with pytest.raises(QrError, match="Pick the number"):
        qr.approve(started.token, {"id": "x", "rawId": "x", "response": {}, "type": "public-key"})


def test_an_unknown_link_is_refused(frozen: None) -> None:
    for token in ("nope", "", "x" * 500):
        with pytest.raises(QrError, match="unknown"):
            qr.describe(token)


def test_the_qr_svg_is_an_inline_svg_element(frozen: None) -> None:
    svg = qr.svg("http://localhost:5000/qr/abc")
    assert svg.startswith("<svg")
    assert "<script" not in svg


def test_denials_are_audited(frozen: None) -> None:
    started = _start()
    qr.deny(started.token, ip="198.51.100.7")
    kinds = db.session.scalars(select(AuditEvent.kind)).all()
    assert "qr.started" in kinds
    assert "qr.denied" in kinds
