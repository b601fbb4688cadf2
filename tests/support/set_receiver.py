"""A relying service's Security Event Token endpoint (RFC 8935) on a loopback port.

Like :class:`tests.support.receiver.LogoutReceiver`, but it records each
POST as it came (raw body and ``Content-Type``) and answers ``status``
(202 Accepted unless a test chooses otherwise).  ``down()`` closes the
listening socket and ``up()`` opens it again on the same port."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.receiver import PostReceiver

__all__ = ["Received", "SetReceiver"]


@dataclass(frozen=True)
class Received:
    body: bytes
    content_type: str


class SetReceiver(PostReceiver):
    """The events endpoint of a relying service; answers 202 (RFC 8935)."""

    path = "/events"

    def __init__(self) -> None:
        super().__init__()
        self.status = 202

    @property
    def received(self) -> list[Received]:
        return [Received(body=body, content_type=kind) for body, kind in self.posts]

    @property
    def tokens(self) -> list[str]:
        return [r.body.decode() for r in self.received]
