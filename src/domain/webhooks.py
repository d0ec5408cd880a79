"""Gateway events (webhooks) and the inbox that makes them durable before they are acknowledged.

An event is stored in the inbox, keyed by the gateway's event id, *before* the webhook is answered
with 200; applying it to the ledger happens after, inline when possible and else by the inbox retrier.
Applying is idempotent (the aggregate's forward-only rules and the journal's unique keys), so an event
that is applied twice, late or out of order changes the books once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.gateway import PaymentSnapshot, RefundSnapshot


class InboxStatus(StrEnum):
    PENDING = "pending"  # stored, not applied yet (or a transient failure; retried with backoff)
    PROCESSED = "processed"  # applied to the ledger
    IGNORED = "ignored"  # stored and acknowledged, nothing to apply (unknown type or order)
    DEAD = "dead"  # failed too often; waits for an admin to re-drive it


# The events that change orders; any other type is stored, acknowledged and ignored.
HANDLED_EVENTS = frozenset(
    {
        "payment.authorized",
        "payment.captured",
        "payment.failed",
        "order.paid",
        "refund.created",
        "refund.processed",
        "refund.failed",
    }
)

MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 3600.0


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones: 5 s, 10 s, 20 s, ... at most 1 h."""
    seconds = BASE_BACKOFF_SECONDS * (2 ** max(0, attempts - 1))
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """What a webhook says, in our types. Snapshots are ``None`` when the payload has no such entity."""

    type: str
    gateway_order_id: str | None
    payment: PaymentSnapshot | None = None
    refund: RefundSnapshot | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class InboxEvent:
    """One webhook delivery as stored: the exact raw body, so it can be re-verified and re-parsed."""

    id: str
    event_type: str
    body: bytes
    received_at: datetime
    status: InboxStatus = InboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    order_id: str | None = None
    processed_at: datetime | None = None
    lease_token: str | None = None  # set by claim/claim_due: who holds the event (see WebhookInbox.finish)
