"""Relying parties; written only by ``idp.clients``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    """SHA-256 of a 256-bit random secret; None for a public client."""
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JsonList)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JsonList)
    grant_types: Mapped[list[str]] = mapped_column(JsonList)
    scope: Mapped[str] = mapped_column(String(500))
    is_public: Mapped[bool] = mapped_column(default=False)
    is_admin: Mapped[bool] = mapped_column(default=False)
    first_party: Mapped[bool] = mapped_column(default=False)
    """Trusted service of the same family: consent is not asked."""
    allow_stay_signed_in: Mapped[bool] = mapped_column(default=True)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    events_uri: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
