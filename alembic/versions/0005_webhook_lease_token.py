"""Lease tokens on webhook events: the worker holding an event, so a lapsed one cannot overwrite it.

``claim``/``claim_due`` write a new random token with the lease; ``finish`` writes only while the row
still carries the caller's token. Nullable: an event nobody holds has none.

Revision ID: 0005_webhook_lease_token
Revises: 0004_payment_capture_claim
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_webhook_lease_token"
down_revision: str | None = "0004_payment_capture_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_events", sa.Column("lease_token", sa.String(), nullable=True))


def downgrade() -> None:
    # SQLite: batch mode copies the table without the column (keeping its CHECKs and indexes).
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_column("lease_token")
