"""RazorpayEventParser against every real webhook payload, and against malformed bodies.

The payloads come from ``../shared/fixtures/razorpay`` beside the repository (``RAZORPAY_FIXTURES_DIR``
overrides it); a missing folder FAILS these tests. Expected values are written out here, not read back
from the files, so a parser that reads the wrong field fails.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.razorpay.webhooks import RazorpayEventParser
from domain.errors import ValidationError
from domain.gateway import PaymentSnapshot, RefundSnapshot
from domain.webhooks import GatewayEvent

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = Path(
    os.environ.get("RAZORPAY_FIXTURES_DIR") or REPO_ROOT.parent / "shared" / "fixtures" / "razorpay"
)

parser = RazorpayEventParser()


def _read(relative: str) -> bytes:
    path = FIXTURES_DIR / relative
    if not path.is_file():
        pytest.fail(
            f"Razorpay fixture {path} is missing: put the fixtures at ../shared/fixtures/razorpay relative "
            "to the repository root, or set RAZORPAY_FIXTURES_DIR to the folder holding docs_webhooks/ "
            "and sdk_mocks/.",
            pytrace=False,
        )
    return path.read_bytes()


def _ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_CARD_PAY = "pay_DESp9bgForNoUd"
_CARD_ORDER = "order_DESoU0U4ikYA19"
_UPI_PAY = "pay_DESyzxuld02Zul"
_UPI_ORDER = "order_DESxiijbl9xjDB"


def _pay(pid: str, order: str, status: str, captured: bool, method: str, **kw: Any) -> PaymentSnapshot:
    created = 1567674797 if pid == _CARD_PAY else 1567675356
    return PaymentSnapshot(
        id=pid,
        order_id=order,
        amount=kw.pop("amount", 100),
        currency="INR",
        status=status,
        captured=captured,
        method=method,
        created_at=_ts(kw.pop("created", created)),
        **kw,
    )


_REFUND_PAYMENT = PaymentSnapshot(
    id="pay_FPoJKWQQ8lK13n",
    order_id="order_FPoIeimWki9j8A",
    amount=500000,
    currency="INR",
    status="captured",
    captured=True,
    method="netbanking",
    fee=11800,
    tax=1800,
    amount_refunded=190000,
    created_at=_ts(1597226379),
)
_REFUND = RefundSnapshot(
    id="rfnd_FS8TWyPrCsa0OB",
    payment_id="pay_FPoJKWQQ8lK13n",
    amount=50000,
    currency="INR",
    status="processed",
    notes={"comment": "Customer Notes for Webhooks."},
    created_at=_ts(1597734071),
)

# file -> the event it must parse to, written out by hand from Razorpay's documentation samples.
EXPECTED: dict[str, GatewayEvent] = {
    "docs_webhooks/order.paid.card.json": GatewayEvent(
        "order.paid",
        _CARD_ORDER,
        _pay(_CARD_PAY, _CARD_ORDER, "captured", True, "card", fee=2, tax=0),
        None,
        _ts(1567674804),
    ),
    "docs_webhooks/order.paid.upi.json": GatewayEvent(
        "order.paid",
        _UPI_ORDER,
        _pay(_UPI_PAY, _UPI_ORDER, "captured", True, "upi", fee=2, tax=0),
        None,
        _ts(1567675356),
    ),
    # ``captured: true`` on an authorized event: the status decides, the payment is NOT captured.
    "docs_webhooks/payment.authorized.card.json": GatewayEvent(
        "payment.authorized",
        _CARD_ORDER,
        _pay(_CARD_PAY, _CARD_ORDER, "authorized", True, "card"),
        None,
        _ts(1691735748),
    ),
    "docs_webhooks/payment.authorized.upi.json": GatewayEvent(
        "payment.authorized",
        _UPI_ORDER,
        _pay(_UPI_PAY, _UPI_ORDER, "authorized", False, "upi"),
        None,
        _ts(1567675356),
    ),
    # ``fee: null`` on a captured event parses as 0 (the fee is not known yet).
    "docs_webhooks/payment.captured.card.json": GatewayEvent(
        "payment.captured",
        _CARD_ORDER,
        _pay(_CARD_PAY, _CARD_ORDER, "captured", True, "card"),
        None,
        _ts(1691735748),
    ),
    "docs_webhooks/payment.captured.upi.json": GatewayEvent(
        "payment.captured",
        _UPI_ORDER,
        _pay(_UPI_PAY, _UPI_ORDER, "captured", True, "upi", fee=2, tax=0),
        None,
        _ts(1567675356),
    ),
    "docs_webhooks/payment.failed.card.json": GatewayEvent(
        "payment.failed",
        _CARD_ORDER,
        _pay(_CARD_PAY, _CARD_ORDER, "failed", True, "card"),
        None,
        _ts(1691735748),
    ),
    "docs_webhooks/payment.failed.upi.json": GatewayEvent(
        "payment.failed",
        _UPI_ORDER,
        _pay(_UPI_PAY, _UPI_ORDER, "failed", False, "upi", error_code="BAD_REQUEST_ERROR"),
        None,
        _ts(1567675356),
    ),
    "docs_webhooks/refund.created.normal_refunds.json": GatewayEvent(
        "refund.created", "order_FPoIeimWki9j8A", _REFUND_PAYMENT, _REFUND, _ts(1597734071)
    ),
    "docs_webhooks/refund.processed.normal_refunds.json": GatewayEvent(
        "refund.processed", "order_FPoIeimWki9j8A", _REFUND_PAYMENT, _REFUND, _ts(1597734071)
    ),
    # The SDK's signature vector: an "authorized" event whose payment says captured, with the old
    # ``service_tax`` field instead of ``tax``.
    "sdk_mocks/fake_payment_authorized_webhook.json": GatewayEvent(
        "payment.authorized",
        "order_100000000order",
        PaymentSnapshot(
            id="pay_6koWN7bvxujzxM",
            order_id="order_100000000order",
            amount=1000000,
            currency="INR",
            status="captured",
            captured=True,
            method="card",
            fee=23000,
            tax=3000,
            created_at=_ts(1479978483),
        ),
        None,
        _ts(1400826760),
    ),
}


def test_every_docs_webhook_payload_has_an_expectation() -> None:
    folder = FIXTURES_DIR / "docs_webhooks"
    if not folder.is_dir():
        pytest.fail(f"Razorpay fixtures folder is missing: {folder}", pytrace=False)
    on_disk = {f"docs_webhooks/{p.name}" for p in folder.glob("*.json")}
    assert on_disk, f"no webhook payloads in {folder}"
    assert on_disk <= set(EXPECTED), f"payloads without an expectation: {sorted(on_disk - set(EXPECTED))}"


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_real_payload_parses_to_the_expected_event(relative: str) -> None:
    event = parser.parse(_read(relative))
    assert event == EXPECTED[relative]


@pytest.mark.parametrize(
    "relative",
    ["docs_webhooks/payment.authorized.card.json", "docs_webhooks/payment.failed.card.json"],
)
def test_status_decides_not_the_captured_flag(relative: str) -> None:
    body = _read(relative)
    assert json.loads(body)["payload"]["payment"]["entity"]["captured"] is True
    event = parser.parse(body)
    assert event.payment is not None
    assert event.payment.status in ("authorized", "failed")


@pytest.mark.parametrize("relative", ["sdk_mocks/fake_webhook.json", "sdk_mocks/init_webhook.json"])
def test_webhook_registration_mocks_are_not_events(relative: str) -> None:
    with pytest.raises(ValidationError):
        parser.parse(_read(relative))


# ---- shapes written here --------------------------------------------------------------------------


def _refund_body(notes: Any = None, with_payment: bool = True, **refund: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": "rfnd_1",
        "entity": "refund",
        "amount": 100,
        "currency": "INR",
        "payment_id": "pay_1",
        "notes": [] if notes is None else notes,
        "created_at": 1700000000,
        "status": "pending",
        **refund,
    }
    payload: dict[str, Any] = {"refund": {"entity": entity}}
    if with_payment:
        payload["payment"] = {
            "entity": {
                "id": "pay_1",
                "entity": "payment",
                "amount": 100,
                "currency": "INR",
                "status": "captured",
                "order_id": "order_1",
                "captured": True,
                "notes": [],
            }
        }
    return {"event": "refund.created", "payload": payload, "created_at": 1700000001}


def test_empty_notes_list_becomes_an_empty_mapping() -> None:
    event = parser.parse(json.dumps(_refund_body(notes=[])).encode())
    assert event.refund is not None
    assert event.refund.notes == {}
    assert event.refund.status == "pending"


def test_refund_notes_keep_our_refund_ref_and_non_ascii_text() -> None:
    notes = {"refund_ref": "rf_abc", "reason": "₹ remboursé"}
    event = parser.parse(json.dumps(_refund_body(notes=notes), ensure_ascii=False).encode())
    assert event.refund is not None
    assert event.refund.notes == notes


def test_refund_without_payment_entity_has_no_order_id() -> None:
    event = parser.parse(json.dumps(_refund_body(with_payment=False)).encode())
    assert event.gateway_order_id is None
    assert event.payment is None
    assert event.refund is not None and event.refund.payment_id == "pay_1"


def test_order_id_falls_back_to_the_order_entity() -> None:
    body = {"event": "order.paid", "payload": {"order": {"entity": {"id": "order_X", "entity": "order"}}}}
    event = parser.parse(json.dumps(body).encode())
    assert event.gateway_order_id == "order_X"
    assert event.payment is None and event.refund is None


def test_unknown_event_type_parses_with_its_type() -> None:
    body = {"event": "payment.dispute.created", "payload": {"dispute": {"entity": {"id": "disp_1"}}}}
    event = parser.parse(json.dumps(body).encode())
    assert event == GatewayEvent("payment.dispute.created", None)


def _payment_body(**payment: Any) -> bytes:
    entity = {
        "id": "pay_1",
        "entity": "payment",
        "amount": 100,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_1",
        **payment,
    }
    return json.dumps({"event": "payment.captured", "payload": {"payment": {"entity": entity}}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="malformed-json"),
        pytest.param(b'{"event": "payment.captured"', id="truncated"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"payment.captured"', id="string"),
        pytest.param(b'{"payload": {}}', id="missing-event"),
        pytest.param(b'{"event": null, "payload": {}}', id="null-event"),
        pytest.param(b'{"event": 7, "payload": {}}', id="numeric-event"),
        pytest.param(_payment_body(amount=100.0), id="float-amount"),
        pytest.param(_payment_body(amount=100.5), id="fractional-amount"),
        pytest.param(_payment_body(amount="100"), id="string-amount"),
        pytest.param(_payment_body(amount=True), id="bool-amount"),
        pytest.param(_payment_body(amount=-1), id="negative-amount"),
        pytest.param(_payment_body(fee=2.0), id="float-fee"),
        pytest.param(_payment_body(captured="yes"), id="non-bool-captured"),
        pytest.param(_payment_body(entity="refund"), id="wrong-entity-kind"),
        pytest.param(_payment_body(id=None), id="missing-id"),
        pytest.param(
            json.dumps({"event": "payment.captured", "payload": {"payment": {"entity": []}}}).encode(),
            id="entity-not-object",
        ),
        pytest.param(json.dumps(_refund_body(amount=50.0)).encode(), id="float-refund-amount"),
        pytest.param(json.dumps(_refund_body(notes="x")).encode(), id="notes-string"),
    ],
)
def test_malformed_bodies_are_validation_errors(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parser.parse(body)
