"""What the payment gateway tells us: snapshots of its entities, in our own types.

Webhook payloads and API responses are snapshots taken at some moment; they may arrive late or out of
order. The aggregate decides what a snapshot changes (see ``domain.payments``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class GatewayOrder:
    id: str
    amount: int
    currency: str
    status: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """A payment as the gateway reported it at one moment."""

    id: str
    order_id: str | None
    amount: int
    currency: str
    status: str  # created | authorized | captured | refunded | failed
    captured: bool = False
    method: str | None = None
    fee: int = 0
    tax: int = 0
    amount_refunded: int = 0
    error_code: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundSnapshot:
    """A refund as the gateway reported it at one moment."""

    id: str
    payment_id: str
    amount: int
    currency: str
    status: str  # pending | processed | failed
    notes: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
