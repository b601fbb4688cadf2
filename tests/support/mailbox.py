"""Reading the provider's mail as a person would: by address and subject.

The member tests run their provider with the ``smtp`` backend against a
real SMTP server on loopback (``tests.support.smtp``); these helpers wait
for a message to arrive (the worker delivers it on its own time) and read
its plain-text part and its links."""

from __future__ import annotations

import re
from email.message import EmailMessage

from tests.support.harness import eventually
from tests.support.smtp import SmtpServer

__all__ = ["links_in", "mail_to", "mails_to", "text_of"]

_URL = re.compile(r"https?://[^\s<>\"')]+")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "a mail without a plain-text part"
    content: str = part.get_content()
    return content


def links_in(message: EmailMessage) -> list[str]:
    return sorted(set(_URL.findall(text_of(message))))


def mails_to(smtp: SmtpServer, address: str, subject: str) -> list[EmailMessage]:
    return [
        m
        for m in smtp.received()
        if str(m["To"]).casefold() == address.casefold() and str(m["Subject"]).endswith(subject)
    ]


def mail_to(smtp: SmtpServer, address: str, subject: str, *, nth: int = 1) -> EmailMessage:
    """The ``nth`` mail to ``address`` whose subject ends with ``subject``,
    once it has arrived."""
    found = eventually(lambda: (m := mails_to(smtp, address, subject)) and len(m) >= nth and m)
    return found[nth - 1]
