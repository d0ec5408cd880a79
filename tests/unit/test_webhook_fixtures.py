"""Every documented Razorpay webhook payload, signed and received end to end by WebhookService.

The fixtures folder is ``../shared/fixtures/razorpay`` relative to the repository root, or
``RAZORPAY_FIXTURES_DIR``. When it is missing these tests FAIL (never skip): a green run must mean the
real payloads were exercised. The refund samples are not arithmetically consistent (their refund amount
and ``amount_refunded`` disagree with the payment): they are used as shapes, on an order whose amount is
the payment's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.razorpay.webhooks import RazorpayEventParser
from application.webhooks import WebhookService
from domain.errors import SignatureInvalid
from domain.journal import Account, Posting
from domain.money import Money
from domain.payments import Order, OrderStatus, PaymentStatus, RefundStatus
from domain.webhooks import InboxStatus
from tests.fakes import FakeClock, InMemoryLedger, InMemoryWebhookInbox

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_WEBHOOK_SECRET = "whsec_fixture_tests_0123456789"

SDK_VECTOR = "sdk_mocks/fake_payment_authorized_webhook.json"
SDK_SECRET = "key_secret"
SDK_SIGNATURE = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"

# The documented payloads, and the fee and tax each one must book. Written out, so that a file that
# disappears (or one that nobody looked at) fails instead of silently testing less.
DOCS_WEBHOOKS = {
    "order.paid.card.json": (2, 0),
    "order.paid.upi.json": (2, 0),
    "payment.authorized.card.json": (0, 0),
    "payment.authorized.upi.json": (0, 0),
    "payment.captured.card.json": (0, 0),  # fee: null in the sample
    "payment.captured.upi.json": (2, 0),
    "payment.failed.card.json": (0, 0),
    "payment.failed.upi.json": (0, 0),
    "refund.created.normal_refunds.json": (11800, 1800),
    "refund.processed.normal_refunds.json": (11800, 1800),
}


def fixtures_dir() -> Path:
    configured = os.environ.get("RAZORPAY_FIXTURES_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "fixtures" / "razorpay"


def read_fixture(relative: str) -> bytes:
    root = fixtures_dir()
    path = root / relative
    if not root.is_dir():
        pytest.fail(
            f"Razorpay fixtures folder is missing: {root}. Put the fixtures at ../shared/fixtures/razorpay "
            "relative to the repository root (with docs_webhooks/ and sdk_mocks/), or set "
            "RAZORPAY_FIXTURES_DIR to the folder that holds them.",
            pytrace=False,
        )
    if not path.is_file():
        pytest.fail(f"Razorpay fixture {path} is missing from {root}.", pytrace=False)
    return path.read_bytes()


def sign(body: bytes, secret: str = TEST_WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_service(ledger: InMemoryLedger, inbox: InMemoryWebhookInbox, secret: str) -> WebhookService:
    return WebhookService(ledger, inbox, RazorpayEventParser(), FakeClock(), [secret])


async def order_for(ledger: InMemoryLedger, doc: dict[str, Any]) -> Order:
    """Our order mirroring the payload's: same gateway order id, amount and currency as its payment."""
    payment = doc["payload"]["payment"]["entity"]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    order = Order(
        id="ord_fixture",
        user_id="user_1",
        gateway_order_id=payment["order_id"],
        amount=Money.order_amount(payment["amount"], payment["currency"]),
        key_id="rzp_test_fixture",
        created_at=now,
        updated_at=now,
    )
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()
    return order


async def load(ledger: InMemoryLedger, order_id: str) -> Order:
    async with ledger.unit_of_work() as uow:
        order = await uow.get_order(order_id)
    assert order is not None
    return order


# ---- location -------------------------------------------------------------------------------------


def test_fixtures_folder_is_beside_the_repository_or_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAZORPAY_FIXTURES_DIR", raising=False)
    assert fixtures_dir() == REPO_ROOT.parent / "shared" / "fixtures" / "razorpay"
    monkeypatch.setenv("RAZORPAY_FIXTURES_DIR", "/somewhere/else")
    assert fixtures_dir() == Path("/somewhere/else")


def test_missing_fixtures_folder_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAZORPAY_FIXTURES_DIR", str(tmp_path / "nope"))
    with pytest.raises(pytest.fail.Exception, match="Razorpay fixtures folder is missing"):
        read_fixture("docs_webhooks/order.paid.card.json")


def test_every_documented_webhook_payload_is_covered() -> None:
    folder = fixtures_dir() / "docs_webhooks"
    if not folder.is_dir():
        read_fixture("docs_webhooks")  # fails with the message
    on_disk = {p.name for p in folder.glob("*.json")}
    assert on_disk == set(DOCS_WEBHOOKS), (
        f"not covered: {sorted(on_disk - set(DOCS_WEBHOOKS))}, gone: {sorted(set(DOCS_WEBHOOKS) - on_disk)}"
    )


# ---- every documented payload, received -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCS_WEBHOOKS))
async def test_documented_payload_is_received_and_applied(name: str) -> None:
    body = read_fixture(f"docs_webhooks/{name}")
    doc = json.loads(body)
    event_type = doc["event"]
    assert name.startswith(event_type + ".")
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    order = await order_for(ledger, doc)
    service = make_service(ledger, inbox, TEST_WEBHOOK_SECRET)

    receipt = await service.receive(body, sign(body), "evt_" + name.removesuffix(".json").replace(".", "_"))
    assert receipt.duplicate is False
    stored = await inbox.get(receipt.event_id)
    assert stored is not None
    assert stored.body == body  # the exact bytes are kept
    assert (stored.status, stored.event_type, stored.order_id) == (
        InboxStatus.PROCESSED,
        event_type,
        order.id,
    )

    # A redelivery (another event id, same bytes) changes nothing.
    await service.receive(body, sign(body), "evt_again")
    final = await load(ledger, order.id)
    journal = await ledger.journal(order.id)
    pay_doc = doc["payload"]["payment"]["entity"]
    payment = final.payment(pay_doc["id"])
    assert payment is not None and len(final.payments) == 1
    amount = pay_doc["amount"]
    fee, tax = DOCS_WEBHOOKS[name]

    if event_type == "payment.authorized":
        assert final.status is OrderStatus.ATTEMPTED
        assert payment.status is PaymentStatus.AUTHORIZED and not payment.is_captured
        assert journal == []
    elif event_type == "payment.failed":
        assert final.status is OrderStatus.ATTEMPTED
        assert payment.status is PaymentStatus.FAILED and not payment.is_captured
        assert journal == []
    else:
        assert payment.status is PaymentStatus.CAPTURED and payment.is_captured
        assert final.amount_paid == amount
        assert (payment.fee, payment.tax) == (fee, tax)
        capture = [t for t in journal if t.kind == "capture"]
        fees = [t for t in journal if t.kind == "gateway_fee"]
        assert [t.key for t in capture] == [f"capture:{payment.id}"]
        assert capture[0].postings == (Posting(Account.GATEWAY_RECEIVABLE, Account.SALES, amount),)
        if fee:
            expected_fee: list[Posting] = [
                Posting(Account.GATEWAY_FEES, Account.GATEWAY_RECEIVABLE, fee - tax)
            ]
            if tax:
                expected_fee.append(Posting(Account.GATEWAY_TAX, Account.GATEWAY_RECEIVABLE, tax))
            assert [t.postings for t in fees] == [tuple(expected_fee)]
        else:
            assert fees == []
        if event_type in ("payment.captured", "order.paid"):
            assert final.status is OrderStatus.PAID
            assert final.refunds == []
            assert len(journal) == 1 + len(fees)
        else:
            refund_doc = doc["payload"]["refund"]["entity"]
            assert final.status is OrderStatus.PARTIALLY_REFUNDED
            assert len(final.refunds) == 1
            refund = final.refunds[0]
            assert (refund.id, refund.payment_id, refund.amount, refund.status, refund.booked) == (
                refund_doc["id"],
                payment.id,
                refund_doc["amount"],
                RefundStatus.PROCESSED,
                True,
            )
            assert refund.ref == f"ext_{refund_doc['id']}"  # made outside the service
            assert final.amount_refunded == refund_doc["amount"]
            refunds = [t for t in journal if t.kind == "refund"]
            assert [t.key for t in refunds] == [f"refund:{refund.id}"]
            assert refunds[0].postings == (
                Posting(Account.REFUNDS, Account.GATEWAY_RECEIVABLE, refund_doc["amount"]),
            )
            assert len(journal) == 1 + len(fees) + 1
    balances = await ledger.balances()
    for accounts in balances.values():
        assert sum(accounts.values()) == 0


async def test_refund_created_then_processed_samples_book_the_refund_once() -> None:
    created = read_fixture("docs_webhooks/refund.created.normal_refunds.json")
    processed = read_fixture("docs_webhooks/refund.processed.normal_refunds.json")
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    order = await order_for(ledger, json.loads(created))
    service = make_service(ledger, inbox, TEST_WEBHOOK_SECRET)
    await service.receive(processed, sign(processed), "evt_processed")
    await service.receive(created, sign(created), "evt_created")
    final = await load(ledger, order.id)
    assert len(final.refunds) == 1 and final.refunds[0].status is RefundStatus.PROCESSED
    keys = [t.key for t in await ledger.journal(order.id)]
    assert keys == ["capture:pay_FPoJKWQQ8lK13n", "fee:pay_FPoJKWQQ8lK13n", "refund:rfnd_FS8TWyPrCsa0OB"]


async def test_documented_payload_signed_with_another_secret_is_refused() -> None:
    body = read_fixture("docs_webhooks/payment.captured.upi.json")
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    await order_for(ledger, json.loads(body))
    service = make_service(ledger, inbox, TEST_WEBHOOK_SECRET)
    with pytest.raises(SignatureInvalid):
        await service.receive(body, sign(body, "whsec_other"), "evt_1")
    assert inbox.events == {} and ledger.transactions == []


# ---- the SDK's published webhook vector -----------------------------------------------------------


def test_sdk_vector_is_the_published_signature() -> None:
    body = read_fixture(SDK_VECTOR)
    assert body.endswith(b"}\n")
    assert sign(body, SDK_SECRET) == SDK_SIGNATURE


async def test_sdk_vector_verifies_through_receive() -> None:
    body = read_fixture(SDK_VECTOR)
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    service = make_service(ledger, inbox, SDK_SECRET)
    receipt = await service.receive(body, SDK_SIGNATURE, "evt_sdk_vector")
    assert receipt.duplicate is False
    stored = await inbox.get("evt_sdk_vector")
    assert stored is not None and stored.body == body and stored.event_type == "payment.authorized"
    assert stored.status is InboxStatus.IGNORED  # no order of ours is order_100000000order


async def test_sdk_vector_without_its_final_newline_does_not_verify() -> None:
    body = read_fixture(SDK_VECTOR)
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    service = make_service(ledger, inbox, SDK_SECRET)
    with pytest.raises(SignatureInvalid):
        await service.receive(body.removesuffix(b"\n"), SDK_SIGNATURE, "evt_sdk_vector")
    assert inbox.events == {}
    assert ledger.commits == 0


@pytest.mark.parametrize("order", [("payment.captured", "order.paid"), ("order.paid", "payment.captured")])
async def test_card_samples_book_the_fee_whichever_comes_first(order: tuple[str, str]) -> None:
    """The card ``payment.captured`` sample has ``fee: null``; its ``order.paid`` says fee 2.

    Regression: the fee was taken only from the snapshot that captured, so captured-then-paid booked no
    fee at all while paid-then-captured booked 2.
    """
    bodies = [read_fixture(f"docs_webhooks/{event}.card.json") for event in order]
    ledger, inbox = InMemoryLedger(), InMemoryWebhookInbox()
    placed = await order_for(ledger, json.loads(bodies[0]))
    service = make_service(ledger, inbox, TEST_WEBHOOK_SECRET)
    for i, body in enumerate(bodies):
        await service.receive(body, sign(body), f"evt_{i}")
    final = await load(ledger, placed.id)
    payment = final.payments[0]
    assert (payment.fee, payment.tax) == (2, 0)
    journal = await ledger.journal(placed.id)
    assert sorted(t.key for t in journal) == ["capture:pay_DESp9bgForNoUd", "fee:pay_DESp9bgForNoUd"]
    fee = next(t for t in journal if t.kind == "gateway_fee")
    assert fee.postings == (Posting(Account.GATEWAY_FEES, Account.GATEWAY_RECEIVABLE, 2),)
