"""Fencing tokens on idempotency keys: each claim carries the random token of the request that holds it.

A retry that takes over a stale in-progress claim writes a new token; ``complete``/``release`` only write
while the row still carries the caller's token. Nullable: completed rows hold no claim, and rows claimed
before this migration have no token (their requests run the old code; a stale one is taken over, with a
token, like any other).

Revision ID: 0003_idempotency_claim_token
Revises: 0002_webhook_inbox
Create Date: 2026-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_idempotency_claim_token"
down_revision: str | None = "0002_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("claim_token", sa.String(), nullable=True))


def downgrade() -> None:
    # SQLite cannot always drop a column in place: batch mode copies the table without it (keeping its
    # CHECKs, primary key and index); on PostgreSQL this is a plain ALTER TABLE ... DROP COLUMN.
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("claim_token")
