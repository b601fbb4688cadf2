"""The services each session reached, per-message outbox leases, refresh grace, interaction login.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 17:00:00

``session_clients`` is filled from the token rows that still exist, so that
a forced logout after the upgrade still reaches services that hold them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from idp.db import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_clients",
        sa.Column("session_id", sa.String(length=43), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("first_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["signin_sessions.id"],
            name=op.f("fk_session_clients_session_id_signin_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "client_id", name="pk_session_clients"),
    )
    op.execute(
        """
        INSERT INTO session_clients (session_id, client_id, first_at)
        SELECT t.session_id, t.client_id, MIN(t.at) FROM (
            SELECT session_id, client_id, created_at AS at FROM refresh_tokens
            UNION ALL
            SELECT session_id, client_id, issued_at AS at FROM access_tokens
            WHERE session_id IS NOT NULL
        ) AS t
        JOIN signin_sessions s ON s.id = t.session_id
        GROUP BY t.session_id, t.client_id
        """
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("grace_uses", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("login_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("login_at")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_column("grace_uses")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("lease_id")
    op.drop_table("session_clients")
