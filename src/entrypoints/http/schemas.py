"""Request bodies (decoded strictly: a float or a string is never an amount) and response shapes."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from domain.errors import ValidationError
from domain.payments import Order, Refund

T = TypeVar("T")

ShortStr = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CreateOrderRequest(msgspec.Struct, forbid_unknown_fields=True):
    amount: int
    currency: str = "INR"
    receipt: str | None = None
    notes: dict[str, Any] | None = None


class VerifyPaymentRequest(msgspec.Struct, forbid_unknown_fields=True):
    razorpay_order_id: ShortStr
    razorpay_payment_id: ShortStr
    razorpay_signature: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class CreateRefundRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    amount: int | None = None
    payment_id: ShortStr | None = None
    notes: dict[str, Any] | None = None


def decode_body(raw: bytes, type_: type[T]) -> T:
    """Strict JSON decoding; every failure is a ``ValidationError`` with a short, safe message."""
    if not raw.strip():
        raise ValidationError("the request body must be a JSON object.")
    try:
        return msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationError(_clip(str(exc))) from None
    except msgspec.DecodeError:
        raise ValidationError("the request body is not valid JSON.") from None


def _clip(message: str, limit: int = 200) -> str:
    message = "".join(ch if ch.isprintable() else "?" for ch in message)
    return message if len(message) <= limit else message[: limit - 3] + "..."


def ts(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.isoformat().replace("+00:00", "Z"))


def refund_json(r: Refund) -> dict[str, Any]:
    return {
        "id": r.id,
        "paymentId": r.payment_id,
        "amount": r.amount,
        "status": r.status.value,
        "createdAt": ts(r.created_at),
    }


def order_json(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "gatewayOrderId": o.gateway_order_id,
        "amount": o.amount.amount,
        "currency": o.currency,
        "receipt": o.receipt,
        "notes": o.notes,
        "status": o.status.value,
        "amountPaid": o.amount_paid,
        "amountRefunded": o.amount_refunded,
        "payments": [
            {
                "id": p.id,
                "status": p.status.value,
                "amount": p.amount,
                "method": p.method,
                "capturedAt": ts(p.captured_at),
            }
            for p in o.payments
        ],
        # Reservations (refunds the gateway has not confirmed yet) have no gateway id and are not shown.
        "refunds": [refund_json(r) for r in o.refunds if r.id is not None],
        "keyId": o.key_id,
        "createdAt": ts(o.created_at),
        "updatedAt": ts(o.updated_at),
    }
