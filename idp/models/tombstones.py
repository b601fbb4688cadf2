"""What remains of a cancelled membership; written only by ``idp.accounts``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class Tombstone(Base):
    """A cancelled member: the ``sub`` and a hash of the user ID, so that
    neither is ever given to another person; nothing else is kept."""

    __tablename__ = "tombstones"

    sub: Mapped[str] = mapped_column(String(36), primary_key=True)
    username_key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    cancelled_at: Mapped[dt.datetime]
