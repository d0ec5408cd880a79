"""The ledger schema and the webhook inbox as SQLAlchemy Core tables (``alembic/versions`` creates them).

Invariants live in the database, with the same meaning on PostgreSQL and SQLite: CHECKs on amounts and
statuses, ``refunded + reserved <= paid`` on every order, one journal transaction per key, one refund per
gateway refund id, a refund's payment belongs to the refund's order, and append-only journal tables
(triggers, created by the migration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from domain.webhooks import InboxStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ORDER_STATUSES = ("created", "attempted", "paid", "partially_refunded", "refunded")
PAYMENT_STATUSES = ("created", "failed", "authorized", "captured", "refunded")
REFUND_STATUSES = ("pending", "processed", "failed")
IDEMPOTENCY_STATUSES = ("in_progress", "completed")
WEBHOOK_STATUSES = tuple(s.value for s in InboxStatus)


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text of ``column IN ('a', 'b')`` for a CHECK constraint (values are our own constants)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both engines.

    PostgreSQL stores ``timestamptz``; SQLite stores the naive UTC time. Values read back are always
    aware UTC datetimes; naive values are refused on the way in (they are ambiguous).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given where an aware UTC time is required.")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> Any:
    return JSON().with_variant(JSONB(), "postgresql")


orders = Table(
    "orders",
    metadata,
    Column("id", String, primary_key=True),
    Column("user_id", String, nullable=False),
    Column("gateway_order_id", String, nullable=False, unique=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String, nullable=False),
    Column("receipt", String, nullable=True),
    Column("notes", json_type(), nullable=False),
    Column("key_id", String, nullable=False),
    Column("amount_paid", BigInteger, nullable=False, server_default="0"),
    Column("amount_refunded", BigInteger, nullable=False, server_default="0"),
    Column("amount_reserved", BigInteger, nullable=False, server_default="0"),
    Column("status", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The reconciler's lease: no other reconciler picks the order before this time.
    Column("reconcile_lease_until", UtcDateTime, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("length(currency) = 3", name="currency_code"),
    CheckConstraint("amount_paid >= 0", name="amount_paid_non_negative"),
    CheckConstraint("amount_refunded >= 0", name="amount_refunded_non_negative"),
    CheckConstraint("amount_reserved >= 0", name="amount_reserved_non_negative"),
    CheckConstraint("amount_refunded + amount_reserved <= amount_paid", name="refunds_within_paid"),
    CheckConstraint(in_list("status", ORDER_STATUSES), name="status"),
    Index("ix_orders_user_created", "user_id", "created_at", "id"),
    Index("ix_orders_status_created", "status", "created_at"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", String, primary_key=True),
    Column("order_id", String, ForeignKey("orders.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String, nullable=False),
    Column("status", String, nullable=False),
    Column("method", String, nullable=True),
    Column("fee", BigInteger, nullable=False, server_default="0"),
    Column("tax", BigInteger, nullable=False, server_default="0"),
    Column("captured_at", UtcDateTime, nullable=True),
    Column("capture_requested_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("fee >= 0", name="fee_non_negative"),
    CheckConstraint("tax >= 0", name="tax_non_negative"),
    CheckConstraint(in_list("status", PAYMENT_STATUSES), name="status"),
    # A refund names (payment, order) together, so its payment must be of its order.
    UniqueConstraint("id", "order_id"),
    Index("ix_payments_order_id", "order_id"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("ref", String, primary_key=True),
    Column("id", String, nullable=True, unique=True),
    Column("order_id", String, ForeignKey("orders.id"), nullable=False),
    Column("payment_id", String, nullable=False),
    Column("position", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String, nullable=False),
    Column("status", String, nullable=False),
    Column("booked", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(in_list("status", REFUND_STATUSES), name="status"),
    ForeignKeyConstraint(
        ["payment_id", "order_id"],
        ["payments.id", "payments.order_id"],
        name="fk_refunds_payment_of_order",
    ),
    Index("ix_refunds_order_id", "order_id"),
)

journal_transactions = Table(
    "journal_transactions",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String, nullable=False, unique=True),
    Column("kind", String, nullable=False),
    Column("order_id", String, ForeignKey("orders.id"), nullable=False),
    Column("currency", String, nullable=False),
    Column("reference", String, nullable=False, server_default=""),
    Column("meta", json_type(), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    CheckConstraint("length(key) > 0", name="key_not_empty"),
    Index("ix_journal_transactions_order_id", "order_id"),
)

journal_postings = Table(
    "journal_postings",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("transaction_id", BigInteger, ForeignKey("journal_transactions.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("debit_account", String, nullable=False),
    Column("credit_account", String, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("debit_account <> credit_account", name="distinct_accounts"),
    UniqueConstraint("transaction_id", "position"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("fingerprint", String, nullable=False),
    Column("status", String, nullable=False),
    # The fencing token of the current in-progress claim (migration 0003); NULL once completed.
    Column("claim_token", String, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("content_type", String, nullable=True),
    Column("locked_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    CheckConstraint(in_list("status", IDEMPOTENCY_STATUSES), name="status"),
    CheckConstraint("status <> 'completed' OR response_status IS NOT NULL", name="completed_has_response"),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

# The webhook inbox: one row per gateway event id, with the exact body bytes that were verified. No foreign
# key to orders: an event may name an order this service does not know (it is stored and ignored).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String, primary_key=True),
    Column("event_type", String, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("lease_token", String, nullable=True),  # the lease of the worker applying it
    Column("last_error", String, nullable=True),
    Column("order_id", String, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("processed_at", UtcDateTime, nullable=True),
    CheckConstraint(in_list("status", WEBHOOK_STATUSES), name="status"),
    CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    Index("ix_webhook_events_status_next_attempt", "status", "next_attempt_at"),
    Index("ix_webhook_events_received", "received_at", "id"),
)

#: Tables that only ever grow; the migration adds triggers rejecting UPDATE and DELETE on them.
APPEND_ONLY_TABLES = ("journal_transactions", "journal_postings")
