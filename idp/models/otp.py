"""One-time codes: TOTP secrets and recovery codes; written only by ``idp.otp``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class TotpCredential(Base):
    __tablename__ = "totp_credentials"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(200))
    """The base32 seed, sealed (``idp.sealing``): TOTP needs it to compute
    codes, so it cannot be hashed."""
    created_at: Mapped[dt.datetime]
    confirmed_at: Mapped[dt.datetime | None]
    """None until a first code proved the person's app has it."""
    last_step: Mapped[int | None]
    """The time step of the last accepted code: no code is accepted twice."""


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    used_at: Mapped[dt.datetime | None]
