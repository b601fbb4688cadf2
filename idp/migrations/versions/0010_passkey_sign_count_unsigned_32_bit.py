"""A passkey's sign count holds the whole of WebAuthn's unsigned 32-bit range.

The authenticator reports its signature counter as an unsigned 32-bit
number (WebAuthn §6.1, ``signCount``).  PostgreSQL's ``integer`` is signed
and ends at 2**31 - 1, so a counter past it (an authenticator that starts
high, or one that has signed that often) made the sign-in that reported it
fail on the write.  ``bigint`` holds it.  (SQLite's integers are 64-bit
whatever the column says; its column is retyped to match the model, which
SQLite does by copying the small table.)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.alter_column(
            "sign_count", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.alter_column(
            "sign_count", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
