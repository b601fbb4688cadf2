"""Room for a sealed TOTP seed.

A TOTP seed is now kept sealed under the data key (``idp.sealing``):
``sealed:v1:`` and the base64url of nonce, ciphertext and tag, some 90
characters for a 32-character seed, past the 64 the column held.  The seeds
already stored are sealed by ``idp init`` after it migrates (the migration
has no data key); until then they are read as they are.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("totp_credentials", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", type_=sa.String(200), existing_type=sa.String(64), existing_nullable=False
        )


def downgrade() -> None:
    # Fails while a sealed seed is stored (it does not fit back); an earlier
    # release could not read one anyway.
    with op.batch_alter_table("totp_credentials", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", type_=sa.String(64), existing_type=sa.String(200), existing_nullable=False
        )
