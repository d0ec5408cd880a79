"""Capture claims on payments: when we asked the gateway to capture a payment of the order.

Taken under the order's row lock before the capture call, so that two payments of one order (a customer
who paid twice) are never both captured by the service. Nullable: most payments are never claimed.

Revision ID: 0004_payment_capture_claim
Revises: 0003_idempotency_claim_token
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_payment_capture_claim"
down_revision: str | None = "0003_idempotency_claim_token"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("capture_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite: batch mode copies the table without the column (keeping its CHECKs and keys).
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("capture_requested_at")
