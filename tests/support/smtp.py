"""A real SMTP server (aiosmtpd) on a loopback port, for mail delivery tests.

It records every message it accepts, parsed as an ``EmailMessage``.
``down()`` stops it (connection refused) and ``up()`` starts it again on
the same port, so a test can show that mail waits until the server is back.
``rcpt_reply`` / ``data_reply`` make it answer a chosen status instead
(``"450 4.2.0 try later"``, ``"550 5.1.1 no such user"``), and
``slow_seconds`` makes it wait that long before answering RCPT (a server
too slow for the client's timeout; nothing is recorded then).  With
``users``, it offers AUTH LOGIN/PLAIN over the plain connection and records
who logged in."""

from __future__ import annotations

import asyncio
import threading
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_port

__all__ = ["SmtpServer"]


class SmtpServer:
    def __init__(self, *, users: dict[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.users = users
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.slow_seconds = 0.0
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    def up(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.users is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.users is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        if self.users.get(login) != password:
            return AuthResult(success=False, handled=False)
        with self._lock:
            self.logins.append(login)
        return AuthResult(success=True)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.server.slow_seconds:
            await asyncio.sleep(self.server.slow_seconds)
            return "451 4.3.0 too late"
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.server.data_reply:
            return self.server.data_reply
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        with self.server._lock:
            self.server.messages.append(message)
            self.server.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"
