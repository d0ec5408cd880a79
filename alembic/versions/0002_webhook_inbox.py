"""The webhook inbox: every gateway event stored durably, keyed by its event id, before it is acknowledged.

Revision ID: 0002_webhook_inbox
Revises: 0001_initial
Create Date: 2026-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_webhook_inbox"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the code's enum does.
STATUSES = ("pending", "processed", "ignored", "dead")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts() -> sa.types.TypeEngine[object]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("locked_until", _ts(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("processed_at", _ts(), nullable=True),
        sa.CheckConstraint(_in("status", STATUSES), name=op.f("ck_webhook_events_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_webhook_events_attempts_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index("ix_webhook_events_status_next_attempt", "webhook_events", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_events_received", "webhook_events", ["received_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_events_received", table_name="webhook_events")
    op.drop_index("ix_webhook_events_status_next_attempt", table_name="webhook_events")
    op.drop_table("webhook_events")
