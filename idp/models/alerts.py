"""What an account has been seen from; written only by ``idp.alerts``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class Sighting(Base):
    """A device (``idp_device`` value) or a country an account signed in from."""

    __tablename__ = "account_sightings"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "kind", "value", name="pk_account_sightings"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    """``device`` or ``country``."""
    value: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[dt.datetime]
    last_at: Mapped[dt.datetime]
