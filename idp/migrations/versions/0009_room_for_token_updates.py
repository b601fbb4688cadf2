"""Room in the token tables' pages for their updates (PostgreSQL only).

Every refresh spends its token (``spent_at``) and every forced logout
revokes thousands at once (``revoked_at``).  Neither column is indexed, so
PostgreSQL can update such a row in place on its page (a heap-only tuple)
without a new entry in each of the table's five or six indexes -- but only
when the page has room.  At the default fill factor of 100 pages are packed
full, and every such update also wrote every index.  A fill factor of 70
leaves room: a forced logout of 1,000 sessions x 10 services revoked its
10,000 access tokens in ~100-160 ms instead of ~210-270 ms (``make bench``'s
forced-logout scene, four runs).  Pages written from now on get the room;
SQLite has no such setting.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("refresh_tokens", "access_tokens")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
