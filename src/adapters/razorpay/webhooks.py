"""Razorpay webhook bodies parsed into :class:`GatewayEvent`.

The body is parsed from the exact bytes that were verified (never re-serialized), and the entities are
read with the same parsers as API responses. Payloads are snapshots: ``status`` decides, not ``captured``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from adapters.razorpay.gateway import MalformedEntity, payment_from_entity, refund_from_entity
from domain.errors import ValidationError
from domain.webhooks import GatewayEvent


def _entity(payload: Mapping[str, object], name: str) -> object | None:
    wrapper = payload.get(name)
    if isinstance(wrapper, Mapping):
        return wrapper.get("entity")
    return None


class RazorpayEventParser:
    def parse(self, body: bytes) -> GatewayEvent:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("the webhook body is not valid JSON.") from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("event"), str):
            raise ValidationError("the webhook body has no event type.")
        event_type = str(doc["event"])
        payload = doc.get("payload")
        payload = payload if isinstance(payload, Mapping) else {}
        try:
            payment_doc = _entity(payload, "payment")
            refund_doc = _entity(payload, "refund")
            order_doc = _entity(payload, "order")
            payment = payment_from_entity(payment_doc) if payment_doc is not None else None
            refund = refund_from_entity(refund_doc) if refund_doc is not None else None
        except MalformedEntity as exc:
            raise ValidationError(f"the webhook payload is malformed: {exc}") from None
        order_id = payment.order_id if payment is not None else None
        if order_id is None and isinstance(order_doc, Mapping) and isinstance(order_doc.get("id"), str):
            order_id = str(order_doc["id"])
        created = doc.get("created_at")
        created_at = (
            datetime.fromtimestamp(created, UTC)
            if isinstance(created, int) and not isinstance(created, bool)
            else None
        )
        return GatewayEvent(event_type, order_id, payment, refund, created_at)
