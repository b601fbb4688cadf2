"""Mail is never lost (CONTRACT "Mail"): rendered with the event, delivered by the worker.

Each template carries its contract subject after the brand prefix, a plain
text part and at most one link, under the issuer.  Delivery goes to a real
SMTP server on loopback (aiosmtpd), or to ``.eml`` files; a server that is
down, slow or answering 4xx gets the mail later, once; a 5xx for the
recipient is recorded as undelivered and not retried."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from idp import clock, config, events, mail, outbox, serving, worker
from idp.config import Settings
from idp.db import db
from idp.errors import ConfigError
from idp.models import OutboxMessage
from tests.support.harness import IDP, app_for
from tests.support.smtp import SmtpServer

PREFIX = "[Example] "
USER = "4f1c2a9e-7d1b-4c55-9a6e-0c1d2e3f4a5b"
TO = "hanako@example.com"

CONTRACT_SUBJECTS = {
    "confirm_email": "Confirm your email address",
    "user_id": "Your user ID",
    "reset_password": "Reset your password",
    "password_changed": "Your password was changed",
    "signin_code": "Your sign-in code",
    "signin_ended": "Your sign-in was ended",
    "membership_cancelled": "Your membership was cancelled",
    "email_changed": "Your email address was changed",
    "register_attempt": "Someone tried to register with your address",
}
WITHOUT_LINK = {"signin_code", "membership_cancelled"}


def contexts(issuer: str) -> dict[str, dict[str, Any]]:
    reset = f"{issuer}/recover/password"
    when = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)
    return {
        "confirm_email": {"name": "Hanako", "link": f"{issuer}/register/verify/Zq3x"},
        "user_id": {"name": "Hanako", "username": "hanako", "link": f"{issuer}/login"},
        "reset_password": {"name": "Hanako", "link": f"{reset}/Kp9w", "minutes": 30},
        "password_changed": {"name": "Hanako", "when": when, "link": reset},
        "signin_code": {"name": "Hanako", "code": "042917"},
        "signin_ended": {
            "name": "Hanako",
            "when": when,
            "reason": "A sign-in token was used twice, so it may have been copied.",
            "link": reset,
        },
        "membership_cancelled": {"name": "Hanako"},
        "email_changed": {"name": "Hanako", "new_address": "hanako.new@example.org", "link": reset},
        "register_attempt": {"link": reset},
        "login_notification": {
            "name": "Hanako",
            "when": when,
            "ip": "203.0.113.9",
            "location": "",
            "link": reset,
        },
    }


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze()
    yield
    clock.unfreeze()


@contextlib.contextmanager
def mail_app(settings: Settings, **mail_settings: Any) -> Iterator[Flask]:
    changed = dataclasses.replace(
        settings,
        alerts=dataclasses.replace(settings.alerts, brand_prefix=PREFIX),
        mail=dataclasses.replace(settings.mail, **mail_settings),
    )
    with app_for(changed) as application:
        yield application


@pytest.fixture
def file_app(app_settings: Settings) -> Iterator[Flask]:
    with mail_app(app_settings) as application:
        yield application


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.down()


@pytest.fixture
def smtp_app(app_settings: Settings, smtp_server: SmtpServer) -> Iterator[Flask]:
    with mail_app(
        app_settings,
        backend="smtp",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_timeout_seconds=1,
    ) as application:
        yield application


def settings_of(app: Flask) -> Settings:
    from idp import runtime

    return runtime.current_from(app).settings


def queue(app: Flask, template: str, *, to: str = TO, **context: Any) -> dict[str, Any]:
    given = context or contexts(settings_of(app).server.issuer)[template]
    mail.queue(to=to, template=template, context=given, user_id=USER)
    db.session.commit()
    return given


def eml_files(app: Flask) -> list[Path]:
    return sorted(Path(settings_of(app).mail.file_dir).glob("*.eml"))


def delivered_file(app: Flask) -> EmailMessage:
    assert worker.run_once() == 1
    (path,) = eml_files(app)
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


def urls(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", text)


def rows() -> list[OutboxMessage]:
    db.session.rollback()  # see what the worker committed
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# --- what a mail says ------------------------------------------------------------------


def test_the_templates_are_the_contract_subjects() -> None:
    assert dict(mail.SUBJECTS) == {
        **CONTRACT_SUBJECTS,
        "login_notification": "Login Notification ({when})",
    }


def test_the_login_notification_says_when_from_where_and_what_to_do(file_app: Flask) -> None:
    queue(file_app, "login_notification")

    message = delivered_file(file_app)

    assert message["Subject"] == PREFIX + "Login Notification (2025/01/02 12:04 JST(GMT+09:00))"
    text, _ = parts(message)
    assert "Date and Time of Login: 2025/01/02 12:04 JST(GMT+09:00)" in text
    assert "IP Address: 203.0.113.9" in text
    assert "Location:" not in text  # an unknown country leaves the line out
    assert len(urls(text)) == 1


@pytest.mark.parametrize(("template", "subject"), CONTRACT_SUBJECTS.items())
def test_each_mail_has_its_subject_after_the_brand_prefix(
    file_app: Flask, template: str, subject: str
) -> None:
    queue(file_app, template)

    message = delivered_file(file_app)

    assert message["Subject"] == PREFIX + subject


@pytest.mark.parametrize("template", CONTRACT_SUBJECTS)
def test_each_mail_goes_from_the_sender_with_text_and_an_html_alternative(
    file_app: Flask, template: str
) -> None:
    queue(file_app, template)

    message = delivered_file(file_app)

    assert message["From"] == "no-reply@localhost"
    assert message["To"] == TO
    assert message.get_content_type() == "multipart/alternative"
    assert message["Date"] is not None
    assert message["Message-ID"] is not None
    text, html = parts(message)
    assert text.startswith("Hello Hanako,\n") or template == "register_attempt"
    assert '<html lang="en">' in html


@pytest.mark.parametrize("template", sorted(set(CONTRACT_SUBJECTS) - WITHOUT_LINK))
def test_a_mail_that_asks_to_act_holds_exactly_one_link_under_the_issuer(
    file_app: Flask, template: str
) -> None:
    link = queue(file_app, template)["link"]

    text, html = parts(delivered_file(file_app))

    assert link.startswith(settings_of(file_app).server.issuer + "/")
    assert urls(text) == [link]
    assert urls(html) == [link]
    assert re.findall(r'href="([^"]*)"', html) == [link]


@pytest.mark.parametrize("template", sorted(WITHOUT_LINK))
def test_a_mail_without_an_action_holds_no_link(file_app: Flask, template: str) -> None:
    queue(file_app, template)

    text, html = parts(delivered_file(file_app))

    assert urls(text) == []
    assert urls(html) == []


def test_the_sign_in_code_mail_holds_the_six_digits(file_app: Flask) -> None:
    queue(file_app, "signin_code", name="Hanako", code="042917")

    text, html = parts(delivered_file(file_app))

    assert re.findall(r"\b[0-9]{6}\b", text) == ["042917"]
    assert "042917" in html


def test_the_old_address_is_told_the_new_one_partly_masked(file_app: Flask) -> None:
    issuer = settings_of(file_app).server.issuer
    queue(
        file_app,
        "email_changed",
        name="Hanako",
        new_address="hanako.new@example.org",
        link=f"{issuer}/recover/password",
    )

    text, html = parts(delivered_file(file_app))

    assert "changed to ha***@example.org." in text
    assert "hanako.new" not in text + html


def test_times_are_shown_in_the_alerts_time_zone(file_app: Flask) -> None:
    issuer = settings_of(file_app).server.issuer
    queue(
        file_app,
        "password_changed",
        name="Hanako",
        when=dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC),
        link=f"{issuer}/recover/password",
    )

    text, _ = parts(delivered_file(file_app))

    assert "changed on 2025/01/02 12:04 JST(GMT+09:00)." in text


def test_a_name_is_escaped_in_html_and_adds_no_link(file_app: Flask) -> None:
    issuer = settings_of(file_app).server.issuer
    link = f"{issuer}/register/verify/Zq3x"
    queue(file_app, "confirm_email", name="<b>Eve</b> https://evil.example/x", link=link)

    text, html = parts(delivered_file(file_app))

    assert urls(text) == [link]
    assert urls(html) == [link]
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html


# --- queueing is part of the caller's transaction --------------------------------------


def test_a_mail_is_queued_in_the_callers_transaction(file_app: Flask) -> None:
    context = contexts(settings_of(file_app).server.issuer)["reset_password"]
    mail.queue(to=TO, template="reset_password", context=context, user_id=USER)
    db.session.rollback()

    assert rows() == []
    mail.queue(to=TO, template="reset_password", context=context, user_id=USER)
    db.session.commit()
    (row,) = rows()
    assert row.kind == "mail"
    assert row.expires_at - row.created_at == dt.timedelta(hours=72)


@pytest.mark.parametrize(
    ("template", "change", "message"),
    [
        ("reset_password", {"link": "http://evil.example/recover/password/Kp9w"}, "under"),
        ("reset_password", {"link": "/recover/password/Kp9w"}, "under"),
        ("signin_code", {"code": "12345"}, "six digits"),
        ("signin_code", {"code": "\uff10\uff14\uff12\uff19\uff11\uff17"}, "six digits"),
        ("user_id", {"username": None}, "needs username"),
        ("unknown", {}, "unknown mail template"),
    ],
)
def test_a_mail_the_caller_got_wrong_is_refused_before_anything_is_queued(
    file_app: Flask, template: str, change: dict[str, Any], message: str
) -> None:
    context = dict(contexts(settings_of(file_app).server.issuer).get(template, {}))
    context.update(change)
    context = {k: v for k, v in context.items() if v is not None}

    with pytest.raises(ValueError, match=message):
        mail.queue(to=TO, template=template, context=context, user_id=USER)

    assert rows() == []


@pytest.mark.parametrize("to", ["hanako", "hanako@example.com\r\nBcc: eve@example.com"])
def test_an_address_that_cannot_be_written_is_refused(file_app: Flask, to: str) -> None:
    context = contexts(settings_of(file_app).server.issuer)["membership_cancelled"]

    with pytest.raises(ValueError, match="cannot be written"):
        mail.queue(to=to, template="membership_cancelled", context=context)


# --- the file and console backends -----------------------------------------------------


def test_the_file_backend_writes_one_eml_file_per_message(file_app: Flask) -> None:
    queue(file_app, "confirm_email")
    queue(file_app, "membership_cancelled")

    assert worker.run_once() == 2

    first, second = rows()
    names = [f"{r.created_at:%Y%m%dT%H%M%S.%fZ}-{r.id:010d}.eml" for r in (first, second)]
    assert [f.name for f in eml_files(file_app)] == names
    directory = Path(settings_of(file_app).mail.file_dir)
    assert sorted(p.name for p in directory.iterdir()) == names  # no temporary file left


def test_a_repeated_file_delivery_does_not_duplicate_the_mail(
    file_app: Flask, frozen_clock: None
) -> None:
    queue(file_app, "reset_password")
    # A worker writes the file and dies before it records the delivery ...
    item = outbox.claim_next()
    assert item is not None
    mail.deliver(item)
    # ... so its lease runs out and another worker delivers the message again.
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)

    assert worker.run_once() == 1

    (row,) = rows()
    assert row.delivered_at is not None
    directory = Path(settings_of(file_app).mail.file_dir)
    assert [p.name for p in directory.iterdir()] == [
        f"{row.created_at:%Y%m%dT%H%M%S.%fZ}-{row.id:010d}.eml"
    ]


def test_the_console_backend_prints_the_message(
    app_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with mail_app(app_settings, backend="console") as application:
        queue(application, "membership_cancelled", name="Hanako")
        assert worker.run_once() == 1

    out = capsys.readouterr().out
    assert f"Subject: {PREFIX}Your membership was cancelled\n" in out
    assert f"To: {TO}\n" in out


# --- SMTP ------------------------------------------------------------------------------


def test_smtp_delivers_from_the_sender_to_the_member(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    smtp_server.up()
    link = queue(smtp_app, "reset_password")["link"]

    assert worker.run_once() == 1

    (message,) = smtp_server.received()
    assert message["From"] == "no-reply@localhost"
    assert message["To"] == TO
    assert message["Subject"] == PREFIX + "Reset your password"
    assert urls(parts(message)[0]) == [link]
    assert smtp_server.envelopes == [("no-reply@localhost", [TO])]
    (row,) = rows()
    assert row.delivered_at is not None


def test_smtp_logs_in_when_a_user_is_set(app_settings: Settings) -> None:
    with (
        SmtpServer(users={"idp": "mail secret"}) as server,
        mail_app(
            app_settings,
            backend="smtp",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_user="idp",
            smtp_password="mail secret",
        ),
    ):
        queue_args = contexts(app_settings.server.issuer)["membership_cancelled"]
        mail.queue(to=TO, template="membership_cancelled", context=queue_args)
        db.session.commit()
        assert worker.run_once() == 1

        assert server.logins == ["idp"]
        assert len(server.received()) == 1


def test_mail_waits_while_the_server_is_down_and_arrives_once_when_it_is_up(
    smtp_app: Flask, smtp_server: SmtpServer, frozen_clock: None
) -> None:
    queue(smtp_app, "reset_password", to="hanako@example.com")
    queue(smtp_app, "reset_password", to="taro@example.com")
    assert worker.run_once() == 2  # refused: nothing listens
    clock.advance(seconds=1)
    assert worker.run_once() == 2  # still down
    clock.advance(seconds=1)
    assert worker.run_once() == 0  # the second back-off is 2 s

    smtp_server.up()
    clock.advance(seconds=1)
    assert worker.run_once() == 2
    clock.advance(minutes=5)
    assert worker.run_once() == 0

    received = smtp_server.received()
    assert sorted(m["To"] for m in received) == ["hanako@example.com", "taro@example.com"]
    assert [r.attempts for r in rows()] == [3, 3]
    assert all(r.delivered_at is not None for r in rows())


def test_a_server_too_slow_to_answer_is_tried_again(
    smtp_app: Flask, smtp_server: SmtpServer, frozen_clock: None
) -> None:
    smtp_server.up()
    smtp_server.slow_seconds = 1.5  # the client gives up after 1 s
    queue(smtp_app, "membership_cancelled", name="Hanako")
    assert worker.run_once() == 1
    (row,) = rows()
    assert row.delivered_at is None
    assert "timed out" in (row.last_error or "")

    smtp_server.slow_seconds = 0
    clock.advance(seconds=1)
    assert worker.run_once() == 1

    assert len(smtp_server.received()) == 1


def test_a_4xx_answer_is_tried_again(
    smtp_app: Flask, smtp_server: SmtpServer, frozen_clock: None
) -> None:
    smtp_server.up()
    smtp_server.rcpt_reply = "450 4.2.1 mailbox busy, try later"
    queue(smtp_app, "membership_cancelled", name="Hanako")
    assert worker.run_once() == 1
    (row,) = rows()
    assert row.failed_at is None
    assert row.delivered_at is None
    assert "450 4.2.1 mailbox busy, try later" in (row.last_error or "")

    smtp_server.rcpt_reply = None
    clock.advance(seconds=1)
    assert worker.run_once() == 1

    assert len(smtp_server.received()) == 1
    assert events.list_for_user(USER) == []


@pytest.mark.parametrize(
    ("hook", "reply"),
    [("rcpt_reply", "550 5.1.1 no such user"), ("data_reply", "554 5.6.0 message refused")],
)
def test_a_5xx_refusal_is_recorded_undelivered_and_not_retried(
    smtp_app: Flask, smtp_server: SmtpServer, frozen_clock: None, hook: str, reply: str
) -> None:
    smtp_server.up()
    setattr(smtp_server, hook, reply)
    queue(smtp_app, "reset_password")

    assert worker.run_once() == 1
    clock.advance(hours=1)
    assert worker.run_once() == 0

    (row,) = rows()
    assert row.failed_at is not None
    assert row.attempts == 1
    (event,) = events.list_for_user(USER)
    assert event.kind == "mail.undelivered"
    assert smtp_server.received() == []


def test_mail_undeliverable_for_retry_hours_is_recorded_undelivered(
    smtp_app: Flask, frozen_clock: None
) -> None:
    queue(smtp_app, "reset_password")  # the server never comes up
    assert worker.run_once() == 1

    clock.advance(hours=72, seconds=1)
    assert worker.run_once() == 1

    (row,) = rows()
    assert row.failed_at is not None
    assert [e.kind for e in events.list_for_user(USER)] == ["mail.undelivered"]


def test_the_body_is_gone_from_the_outbox_once_delivered(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    smtp_server.up()
    link = queue(smtp_app, "reset_password")["link"]
    (queued,) = rows()
    assert link in queued.payload

    worker.run_once()

    (row,) = rows()
    assert row.delivered_at is not None
    kept = json.loads(row.payload)
    assert sorted(kept) == ["message_id", "template", "user_id"]
    assert kept["template"] == "reset_password"
    assert kept["user_id"] == USER
    assert kept["message_id"] == smtp_server.received()[0]["Message-ID"]


# --- settings and the command line -----------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"IDP_MAIL_RETRY_HOURS": "0"}, "mail.retry_hours = 0: expected an integer >= 1"),
        (
            {"IDP_MAIL_SMTP_TIMEOUT_SECONDS": "0"},
            "mail.smtp_timeout_seconds = 0: expected an integer >= 1",
        ),
        ({"IDP_MAIL_SMTP_TIMEOUT_SECONDS": "21"}, "mail.smtp_timeout_seconds = 21"),
    ],
)
def test_mail_settings_out_of_range_stop_start_up(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        config.load(None, environ)

    assert str(excinfo.value).startswith(message)


def test_serve_on_the_embedded_defaults_says_where_mail_goes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    serving.announce(config.load(None, {}), None)

    lines = capsys.readouterr().err.splitlines()
    assert "  Mail           written to var/mail/ (one .eml file per message)" in lines


def test_mail_flush_delivers_queued_mail(
    app: Flask, app_settings: Settings, tmp_path: Path
) -> None:
    queue(app, "membership_cancelled", name="Hanako")

    subprocess.run([IDP, "--config", str(tmp_path / "idp.toml"), "mail", "flush"], check=True)

    assert len(list(Path(app_settings.mail.file_dir).glob("*.eml"))) == 1
    (row,) = rows()
    assert row.delivered_at is not None


def test_an_unusual_address_stays_one_recipient(file_app: Flask) -> None:
    queue(file_app, "membership_cancelled", to="hana,taro@example.com", name="Hanako")

    message = delivered_file(file_app)

    assert [a.addr_spec for a in message["To"].addresses] == ['"hana,taro"@example.com']
