"""Mail to members: rendered when the event happens, delivered by the worker.

:func:`queue` renders a message from ``idp/mail_templates`` at once and adds
it to the outbox in the caller's transaction, so the mail and the event it
tells of (a password reset, a cancelled membership) commit or roll back
together: a mail is never sent for something that did not happen, and never
lost for something that did.  The worker calls :func:`deliver` through the
configured backend and retries a failure with back-off for
``mail.retry_hours``; an address the server refuses for good (a 5xx) is
recorded as undelivered at once instead of being retried for days.

Rendering at queue time means a retry sends the very same message (same
Date, same Message-ID), and a template or setting changed in between does
not change a mail already promised.  A mail that asks the person to act
holds exactly one link, under ``server.issuer``: :func:`queue` refuses any
other, so a link built from a request's ``Host`` cannot be mailed.

Backends: ``smtp`` (smtplib; STARTTLS or implicit TLS, optional login),
``file`` (one ``.eml`` file per message, written atomically and named after
the outbox row, so that a repeated delivery overwrites instead of
duplicating) and ``console`` (standard output, for development)."""

from __future__ import annotations

import contextvars
import datetime as dt
import email.policy
import email.utils
import functools
import gettext
import os
import re
import smtplib
import ssl
import sys
import tempfile
import zoneinfo
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import jinja2
from babel.support import Translations

from idp import clock, members, outbox, runtime
from idp.config import MailSettings, Settings
from idp.errors import DeliveryFailedError, NotFoundError
from idp.outbox import OutboxItem
from idp.texts import N_

__all__ = [
    "CONTEXT_KEYS",
    "KEPT_WHEN_FINISHED",
    "KIND",
    "SUBJECTS",
    "deliver",
    "file_name",
    "queue",
]

KIND = "mail"

SUBJECTS: Final[Mapping[str, str]] = {
    "confirm_email": N_("Confirm your email address"),
    "user_id": N_("Your user ID"),
    "reset_password": N_("Reset your password"),
    "password_changed": N_("Your password was changed"),
    "signin_code": N_("Your sign-in code"),
    "signin_ended": N_("Your sign-in was ended"),
    "membership_cancelled": N_("Your membership was cancelled"),
    "email_changed": N_("Your email address was changed"),
    "register_attempt": N_("Someone tried to register with your address"),
    "login_notification": N_("Login Notification ({when})"),
}
"""Each template and its subject (after ``alerts.brand_prefix``), as CONTRACT.md words them;
``{when}`` is the context's time in ``alerts.timezone``."""

CONTEXT_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "confirm_email": ("name", "link"),
    "user_id": ("name", "username", "link"),
    "reset_password": ("name", "link", "minutes"),
    "password_changed": ("name", "when", "link"),
    "signin_code": ("name", "code"),
    "signin_ended": ("name", "when", "reason", "link"),
    "membership_cancelled": ("name",),
    "email_changed": ("name", "new_address", "link"),
    "register_attempt": ("link",),
    "login_notification": ("name", "when", "ip", "location", "link"),
}
"""The context each template needs.  ``link`` is an absolute URL under the
issuer; ``when`` a datetime (shown in ``alerts.timezone``) or ready text;
``code`` six digits; ``new_address`` is shown partly masked; ``location``
a country name, or empty when unknown (the line is left out).  Other keys are
ignored, but ``name`` where a template does not need it (register_attempt)."""

KEPT_WHEN_FINISHED: Final[tuple[str, ...]] = ("message_id", "template", "user_id")
"""What stays of a mail's outbox row once delivered or given up: not the
address, not the body (a single-use link, a code)."""

TEMPLATES_DIR = Path(__file__).with_name("mail_templates")
POLICY = email.policy.default.clone(cte_type="7bit", max_line_length=998)
"""Bodies in 7-bit encodings (any server carries them), and lines up to
RFC 5322's limit rather than 78 characters, so that a link is never split by
a soft line break: it stays whole in a raw ``.eml`` file too."""

TRANSLATIONS_DIR = Path(__file__).with_name("translations")
LANGUAGES = ("en", "ja")
_language: contextvars.ContextVar[str] = contextvars.ContextVar("idp_mail_language", default="en")


@functools.cache
def _translations(language: str) -> gettext.NullTranslations:
    """The catalog of mail (and of the provider's sentences) in ``language``."""
    if language == "en":
        return gettext.NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [language])


def _gettext(message: str) -> str:
    return _translations(_language.get()).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _translations(_language.get()).ngettext(singular, plural, n)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
_env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
_URL = re.compile(r"(https?)://", re.IGNORECASE)


def queue(
    *,
    to: str,
    template: str,
    context: Mapping[str, Any],
    user_id: str | None = None,
    language: str | None = None,
) -> None:
    """Render a mail now and add it to the outbox (joins the caller's transaction).

    ``user_id`` names the member in the audit log should the mail prove
    undeliverable; the mail is in their language (``language`` says which
    when there is no member yet, English otherwise).  Raises ValueError for
    an unknown template, a missing context key, a link not under the issuer,
    a code that is not six digits or an address that cannot go in a header:
    mistakes of the caller, found before anything is promised.  Nothing is
    sent until the caller commits."""
    settings = runtime.current().settings
    values = _context(settings, template, context)
    local, _, domain = to.rpartition("@")
    if not local or not domain or any(c.isspace() or not c.isprintable() for c in to):
        raise ValueError(f"mail {template!r} to {to!r} cannot be written: not an address")
    token = _language.set(_member_language(user_id) if language is None else language)
    try:
        subject = settings.alerts.brand_prefix + _gettext(SUBJECTS[template]).format(**values)
        text = _env.get_template(f"{template}.txt").render(values)
        html = _env.get_template(f"{template}.html").render(
            values, subject=subject, lang=_language.get()
        )
    finally:
        _language.reset(token)
    payload = {
        "user_id": user_id,
        "template": template,
        "to": to,
        "from": settings.mail.sender,
        "subject": subject,
        "text": text,
        "html": html,
        "date": email.utils.format_datetime(clock.now()),
        "message_id": email.utils.make_msgid(domain=settings.issuer_host or "localhost"),
    }
    try:  # a header that cannot be written fails here, not in the worker
        _message(payload)
    except (ValueError, TypeError) as e:
        raise ValueError(f"mail {template!r} to {to!r} cannot be written: {e}") from e
    outbox.enqueue_many(KIND, [payload], ttl=dt.timedelta(hours=settings.mail.retry_hours))


def _member_language(user_id: str | None) -> str:
    if user_id is None:
        return "en"
    try:
        language = members.get(user_id).language
    except NotFoundError:
        return "en"
    return language if language in LANGUAGES else "en"


def _context(settings: Settings, template: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if template not in SUBJECTS:
        raise ValueError(
            f"unknown mail template {template!r}; expected one of {', '.join(SUBJECTS)}"
        )
    needed = CONTEXT_KEYS[template]
    missing = [k for k in needed if k not in given]
    if missing:
        raise ValueError(f"mail template {template!r} needs {', '.join(missing)} in its context")
    values = {k: given[k] for k in needed}
    if template == "register_attempt" and "name" in given:
        values["name"] = given["name"]
    if "link" in values:
        values["link"] = _checked_link(settings, values["link"])
    if "code" in values and not re.fullmatch(r"[0-9]{6}", str(values["code"])):
        raise ValueError(f"mail template {template!r}: code must be six digits")
    if "when" in values:
        values["when"] = _local_time(values["when"], settings.alerts.timezone)
    if "new_address" in values:
        values["new_address"] = _masked(str(values["new_address"]))
    for key in ("name", "reason", "username", "location"):
        if key in values:
            # A name is the member's own text: it must not add a second link.
            values[key] = _URL.sub(r"\1: //", str(values[key]))
    return values


def _checked_link(settings: Settings, link: Any) -> str:
    """The one link a mail may hold: absolute, under the issuer, one line."""
    if (
        not isinstance(link, str)
        or not link.startswith(settings.server.issuer + "/")
        or any(c.isspace() for c in link)
    ):
        raise ValueError(f"a mailed link must be an absolute URL under {settings.server.issuer}")
    return link


def _local_time(value: Any, timezone: str) -> str:
    """``2025/01/02 12:04 JST(GMT+09:00)``, the form of the login notification."""
    if not isinstance(value, dt.datetime):
        return str(value)
    if value.tzinfo is None:
        raise ValueError("a mailed time must be timezone-aware")
    local = value.astimezone(zoneinfo.ZoneInfo(timezone))
    offset = local.strftime("%z")  # +0900
    return f"{local:%Y/%m/%d %H:%M} {local.tzname()}(GMT{offset[:3]}:{offset[3:]})"


def _masked(address: str) -> str:
    """``ha***@example.com``: enough for its owner to recognise, not to read off."""
    local, _, domain = address.rpartition("@")
    shown = local[:2] if len(local) > 3 else local[:1] if len(local) > 1 else ""
    return f"{shown}***@{domain}" if domain else "***"


def _message(payload: Mapping[str, Any]) -> EmailMessage:
    local, _, domain = str(payload["to"]).rpartition("@")
    message = EmailMessage(policy=POLICY)
    message["Date"] = payload["date"]
    message["Message-ID"] = payload["message_id"]
    message["From"] = payload["from"]
    message["To"] = Address(username=local, domain=domain)  # quoted as needed: one address
    message["Subject"] = payload["subject"]
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


def deliver(item: OutboxItem) -> None:
    """Send one queued mail through the configured backend.

    Raises DeliveryFailedError when the attempt failed and may succeed later
    (a server down, slow or answering 4xx), and with ``permanent`` when it
    cannot (the server refused the recipient, the sender or the message with
    a 5xx).  Safe to retry: the file backend overwrites its own file, and a
    server sees the same Message-ID."""
    settings = runtime.current().settings.mail
    message = _message(item.payload)
    if settings.backend == "smtp":
        _send_smtp(message, str(item.payload["to"]), settings)
    elif settings.backend == "file":
        _write_file(message, item, Path(settings.file_dir))
    else:
        sys.stdout.write(message.as_string() + "\n")
        sys.stdout.flush()


def _send_smtp(message: EmailMessage, to: str, s: MailSettings) -> None:
    where = f"SMTP {s.smtp_host}:{s.smtp_port}"
    local_hostname = runtime.current().settings.issuer_host or "localhost"
    connection: smtplib.SMTP | None = None
    try:
        if s.smtp_tls:
            connection = smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                local_hostname=local_hostname,
                timeout=s.smtp_timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            connection = smtplib.SMTP(
                s.smtp_host,
                s.smtp_port,
                local_hostname=local_hostname,
                timeout=s.smtp_timeout_seconds,
            )
            if s.smtp_starttls:
                connection.starttls(context=ssl.create_default_context())
        if s.smtp_user:
            connection.login(s.smtp_user, s.smtp_password)
        connection.send_message(message, to_addrs=[to])  # the envelope, not the header
    except smtplib.SMTPRecipientsRefused as e:
        answers = list(e.recipients.values())
        raise DeliveryFailedError(
            f"{where}: recipient refused: {_answers(answers)}",
            permanent=all(code >= 500 for code, _ in answers),
        ) from e
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        what = "sender" if isinstance(e, smtplib.SMTPSenderRefused) else "message"
        raise DeliveryFailedError(
            f"{where}: {what} refused: {_answers([(e.smtp_code, e.smtp_error)])}",
            permanent=e.smtp_code >= 500,
        ) from e
    except smtplib.SMTPResponseException as e:
        raise DeliveryFailedError(f"{where}: {_answers([(e.smtp_code, e.smtp_error)])}") from e
    except (smtplib.SMTPException, OSError) as e:  # refused, reset, timed out, TLS
        raise DeliveryFailedError(f"{where}: {type(e).__name__}: {e}") from e
    finally:
        if connection is not None:
            _quit(connection)


def _quit(connection: smtplib.SMTP) -> None:
    """Say goodbye, ignoring the answer: the mail was accepted (or not) already,
    and a QUIT that times out must not make an accepted mail look failed."""
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


def _answers(answers: Sequence[tuple[int, bytes | str]]) -> str:
    parts = []
    for code, text in answers:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        parts.append(f"{code} {decoded}")
    return "; ".join(parts)


def file_name(item: OutboxItem) -> str:
    """``20250102T030405.123456Z-0000000042.eml``: sorts by the time the mail
    was queued, and the same outbox row always gets the same name."""
    queued = item.created_at.astimezone(dt.UTC)
    return f"{queued:%Y%m%dT%H%M%S.%fZ}-{item.id:010d}.eml"


def _write_file(message: EmailMessage, item: OutboxItem, directory: Path) -> None:
    """Write to a temporary file beside the target, then rename: a reader
    (or a crash) never sees half a message, and a repeat replaces the file."""
    target = directory / file_name(item)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(message.as_bytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise DeliveryFailedError(f"cannot write {target}: {e.strerror or e}") from e
