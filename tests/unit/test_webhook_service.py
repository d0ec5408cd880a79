"""WebhookService with the in-memory ledger and inbox, the fake gateway and a fake clock.

Signatures are checked through ``receive`` (the raw bytes, never a re-serialization), and every refusal
must leave nothing behind. Then: duplicates, unknown types and orders, refunds made through the API or
outside it, and the retry / dead-letter / re-drive cycle of the inbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from adapters.razorpay.webhooks import RazorpayEventParser
from application.payments import PaymentService, refund_ref_for
from application.webhooks import LEASE_SECONDS, WebhookService
from domain.errors import GatewayUnavailable, NotFound, SignatureInvalid, ValidationError
from domain.gateway import RefundSnapshot
from domain.journal import Account, Posting
from domain.payments import Order, OrderStatus, PaymentStatus, RefundStatus
from domain.signatures import payment_signature
from domain.webhooks import MAX_ATTEMPTS, InboxEvent, InboxStatus, backoff
from tests.fakes import FakeClock, FakeGateway, InMemoryLedger, InMemoryWebhookInbox

WEBHOOK_SECRET = "whsec_current_0123456789"
PREVIOUS_SECRET = "whsec_previous_9876543210"
KEY_SECRET = "api_key_secret_abcdef"
USER = "user_1"
AMOUNT = 50000


# ---- payload builders -----------------------------------------------------------------------------


def payment_entity(
    pid: str,
    gw_order: str,
    status: str,
    amount: int = AMOUNT,
    fee: int | None = None,
    tax: int | None = None,
    notes: Any = None,
) -> dict[str, Any]:
    return {
        "id": pid,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": gw_order,
        "method": "card",
        "captured": status in ("captured", "refunded"),
        "notes": [] if notes is None else notes,
        "fee": fee,
        "tax": tax,
        "created_at": 1767225600,
    }


def refund_entity(
    rid: str, pid: str, amount: int, status: str, notes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "id": rid,
        "entity": "refund",
        "amount": amount,
        "currency": "INR",
        "payment_id": pid,
        "notes": dict(notes) if notes else [],
        "status": status,
        "created_at": 1767225700,
    }


def event_body(event: str, **entities: dict[str, Any] | None) -> bytes:
    payload = {name: {"entity": e} for name, e in entities.items() if e is not None}
    doc = {
        "entity": "event",
        "account_id": "acc_test",
        "event": event,
        "contains": sorted(payload),
        "payload": payload,
        "created_at": 1767225800,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    clock: FakeClock
    ledger: InMemoryLedger
    inbox: InMemoryWebhookInbox
    gateway: FakeGateway
    payments: PaymentService
    webhooks: WebhookService
    seq: int = 0

    async def deliver(self, body: bytes, event_id: str | None = None, secret: str = WEBHOOK_SECRET) -> Any:
        if event_id is None:
            self.seq += 1
            event_id = f"evt_{self.seq:04d}"
        return await self.webhooks.receive(body, sign(body, secret), event_id)

    async def order(self, order_id: str) -> Order:
        async with self.ledger.unit_of_work() as uow:
            found = await uow.get_order(order_id)
        assert found is not None
        return found

    def journal_keys(self) -> list[str]:
        return [t.key for t in self.ledger.transactions]


def make_world(gateway: FakeGateway | None = None, **service_kw: Any) -> World:
    clock = FakeClock()
    ledger = InMemoryLedger()
    inbox = InMemoryWebhookInbox()
    gw = gateway or FakeGateway()
    payments = PaymentService(ledger, gw, clock, KEY_SECRET)
    webhooks = WebhookService(
        ledger, inbox, RazorpayEventParser(), clock, [WEBHOOK_SECRET, PREVIOUS_SECRET], **service_kw
    )
    return World(clock, ledger, inbox, gw, payments, webhooks)


@pytest.fixture
def world() -> World:
    return make_world()


async def new_order(world: World) -> Order:
    return await world.payments.create_order(USER, AMOUNT, "INR")


async def paid_through_api(world: World, fee: int = 1180, tax: int = 180) -> tuple[Order, str]:
    order = await new_order(world)
    pid = world.gateway.pay(order.gateway_order_id, "authorized", fee=fee, tax=tax)
    sig = payment_signature(order.gateway_order_id, pid, KEY_SECRET)
    order = await world.payments.verify_payment(USER, order.gateway_order_id, pid, sig)
    return order, pid


def captured_body(order: Order, pid: str = "pay_W0001", **kw: Any) -> bytes:
    return event_body(
        "payment.captured", payment=payment_entity(pid, order.gateway_order_id, "captured", **kw)
    )


async def paid_through_webhook(world: World, pid: str = "pay_W0001") -> Order:
    order = await new_order(world)
    await world.deliver(captured_body(order, pid, fee=1180, tax=180))
    order = await world.order(order.id)
    assert order.status is OrderStatus.PAID
    return order


def assert_nothing_stored(world: World, commits_before: int) -> None:
    assert world.inbox.events == {}
    assert world.ledger.commits == commits_before
    assert world.ledger.transactions == []


# ---- signatures -----------------------------------------------------------------------------------


def _base64_digest(body: bytes) -> str:
    return base64.b64encode(hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).digest()).decode()


BAD_SIGNATURES: dict[str, Callable[[bytes], str | None]] = {
    "api-key-secret": lambda body: sign(body, KEY_SECRET),
    "base64-of-right-digest": _base64_digest,
    "upper-case-hex": lambda body: sign(body).upper(),
    "padded-with-space": lambda body: sign(body) + " ",
    "sha256=-prefixed": lambda body: "sha256=" + sign(body),
    "truncated": lambda body: sign(body)[:-2],
    "unknown-secret": lambda body: sign(body, "whsec_someone_else"),
    "empty": lambda body: "",
    "none": lambda body: None,
}


@pytest.mark.parametrize("kind", sorted(BAD_SIGNATURES))
async def test_wrong_signature_forms_are_refused_and_store_nothing(world: World, kind: str) -> None:
    order = await new_order(world)
    body = captured_body(order)
    commits = world.ledger.commits
    with pytest.raises(SignatureInvalid):
        await world.webhooks.receive(body, BAD_SIGNATURES[kind](body), "evt_bad")
    assert_nothing_stored(world, commits)
    assert (await world.order(order.id)).status is OrderStatus.CREATED


async def test_re_serialized_body_does_not_verify(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order)
    for reserialized in (
        json.dumps(json.loads(body)).encode(),
        json.dumps(json.loads(body), separators=(",", ":")).encode(),
    ):
        assert reserialized != body
        commits = world.ledger.commits
        with pytest.raises(SignatureInvalid):
            await world.webhooks.receive(reserialized, sign(body), "evt_1")
        with pytest.raises(SignatureInvalid):
            await world.webhooks.receive(body, sign(reserialized), "evt_1")
        assert_nothing_stored(world, commits)


async def test_body_with_non_ascii_notes_verifies_over_its_raw_bytes(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order, notes={"reason": "₹500 pour le café", "city": "Bengaluru"})
    assert "₹".encode() in body and "é".encode() in body  # raw UTF-8, not \\u escapes
    receipt = await world.deliver(body, "evt_utf8")
    assert receipt.duplicate is False
    stored = await world.inbox.get("evt_utf8")
    assert stored is not None and stored.body == body
    assert stored.status is InboxStatus.PROCESSED
    assert (await world.order(order.id)).status is OrderStatus.PAID


async def test_escaped_non_ascii_is_different_bytes_and_needs_its_own_signature(world: World) -> None:
    order = await new_order(world)
    raw = captured_body(order, notes={"reason": "₹ é"})
    escaped = json.dumps(json.loads(raw), indent=2).encode()  # \u20b9 \u00e9
    assert escaped != raw
    with pytest.raises(SignatureInvalid):
        await world.webhooks.receive(escaped, sign(raw), "evt_1")
    assert (await world.deliver(escaped, "evt_1")).duplicate is False


@pytest.mark.parametrize("position", [0, 37, -30, -1])
async def test_one_changed_byte_fails_and_writes_nothing(world: World, position: int) -> None:
    order = await new_order(world)
    body = captured_body(order)
    signature = sign(body)
    tampered = bytearray(body)
    tampered[position] ^= 0x01
    commits = world.ledger.commits
    with pytest.raises(SignatureInvalid):
        await world.webhooks.receive(bytes(tampered), signature, "evt_1")
    assert_nothing_stored(world, commits)


async def test_amount_tampering_is_refused(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order)
    tampered = body.replace(b'"amount": 50000', b'"amount": 50001', 1)
    assert tampered != body
    with pytest.raises(SignatureInvalid):
        await world.webhooks.receive(tampered, sign(body), "evt_1")
    assert world.inbox.events == {}


async def test_rotation_accepts_the_previous_secret(world: World) -> None:
    order = await new_order(world)
    receipt = await world.deliver(captured_body(order), "evt_prev", secret=PREVIOUS_SECRET)
    assert receipt.duplicate is False
    assert (await world.order(order.id)).status is OrderStatus.PAID


async def test_without_rotation_the_previous_secret_is_refused() -> None:
    w = make_world()
    w.webhooks = WebhookService(w.ledger, w.inbox, RazorpayEventParser(), w.clock, [WEBHOOK_SECRET, ""])
    order = await new_order(w)
    with pytest.raises(SignatureInvalid):
        await w.deliver(captured_body(order), secret=PREVIOUS_SECRET)
    assert w.inbox.events == {}


async def test_no_configured_secret_refuses_everything_even_an_empty_key_hmac() -> None:
    w = make_world()
    w.webhooks = WebhookService(w.ledger, w.inbox, RazorpayEventParser(), w.clock, ["", ""])
    order = await new_order(w)
    with pytest.raises(SignatureInvalid):
        await w.deliver(captured_body(order), secret="")
    assert w.inbox.events == {}


@pytest.mark.parametrize("event_id", ["", "evt 1", "evt/1", "x" * 101, "évt"])
async def test_malformed_event_id_is_keyed_by_the_body_never_refused(world: World, event_id: str) -> None:
    """A signed delivery is never refused for its id: Razorpay would retry it for 24 h and drop it."""
    order = await new_order(world)
    body = captured_body(order)
    first = await world.webhooks.receive(body, sign(body), event_id)
    again = await world.webhooks.receive(body, sign(body), event_id)
    assert first.event_id.startswith("body_") and not first.duplicate
    assert again.event_id == first.event_id and again.duplicate
    assert list(world.inbox.events) == [first.event_id]
    assert (await world.order(order.id)).status is OrderStatus.PAID


# ---- receiving ------------------------------------------------------------------------------------


async def test_duplicate_event_id_is_acknowledged_once_and_applied_once(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order, fee=1180, tax=180)
    first = await world.deliver(body, "evt_dup")
    second = await world.deliver(body, "evt_dup")
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.event_id == second.event_id == "evt_dup"
    assert list(world.inbox.events) == ["evt_dup"]
    assert world.journal_keys() == ["capture:pay_W0001", "fee:pay_W0001"]


async def test_same_event_under_a_new_id_changes_the_books_once(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order, fee=1180, tax=180)
    await world.deliver(body, "evt_a")
    receipt = await world.deliver(body, "evt_b")
    assert receipt.duplicate is False
    assert world.journal_keys() == ["capture:pay_W0001", "fee:pay_W0001"]
    assert {e.status for e in world.inbox.events.values()} == {InboxStatus.PROCESSED}


async def test_without_event_id_the_body_identifies_the_delivery(world: World) -> None:
    order = await new_order(world)
    body = captured_body(order)
    first = await world.webhooks.receive(body, sign(body), None)
    second = await world.webhooks.receive(body, sign(body), None)
    assert first.event_id.startswith("body_") and first.event_id == second.event_id
    assert (first.duplicate, second.duplicate) == (False, True)
    assert world.journal_keys() == ["capture:pay_W0001"]


async def test_unknown_event_type_is_stored_ignored_and_acknowledged(world: World) -> None:
    order, _ = await paid_through_api(world)
    journal = list(world.ledger.transactions)
    body = event_body(
        "payment.dispute.created",
        dispute={"id": "disp_1", "entity": "dispute", "amount": 100, "currency": "INR"},
    )
    receipt = await world.deliver(body, "evt_dispute")
    assert receipt.duplicate is False
    stored = await world.inbox.get("evt_dispute")
    assert stored is not None
    assert (stored.status, stored.event_type, stored.attempts) == (
        InboxStatus.IGNORED,
        "payment.dispute.created",
        1,
    )
    assert stored.processed_at == world.clock.now()
    assert world.ledger.transactions == journal
    assert (await world.order(order.id)).status is OrderStatus.PAID


async def test_event_for_an_order_of_somebody_else_is_stored_and_ignored(world: World) -> None:
    await new_order(world)
    commits = world.ledger.commits
    body = event_body("payment.captured", payment=payment_entity("pay_X", "order_not_ours", "captured"))
    receipt = await world.deliver(body, "evt_foreign")
    assert receipt.duplicate is False
    stored = await world.inbox.get("evt_foreign")
    assert stored is not None and stored.status is InboxStatus.IGNORED and stored.order_id is None
    assert world.ledger.commits == commits and world.ledger.transactions == []


async def test_refund_event_without_payment_entity_for_unknown_payment_is_ignored(world: World) -> None:
    await paid_through_webhook(world)
    body = event_body("refund.processed", refund=refund_entity("rfnd_X", "pay_unknown", 100, "processed"))
    await world.deliver(body, "evt_r")
    stored = await world.inbox.get("evt_r")
    assert stored is not None and stored.status is InboxStatus.IGNORED


async def test_refund_event_without_payment_entity_finds_the_order_by_payment(world: World) -> None:
    order = await paid_through_webhook(world)
    body = event_body("refund.processed", refund=refund_entity("rfnd_X", "pay_W0001", 1000, "processed"))
    await world.deliver(body, "evt_r")
    stored = await world.inbox.get("evt_r")
    assert stored is not None and stored.status is InboxStatus.PROCESSED and stored.order_id == order.id
    assert (await world.order(order.id)).amount_refunded == 1000


async def test_signed_but_unparseable_body_is_kept_and_dead_lettered_at_once(world: World) -> None:
    body = b"this is not json"
    receipt = await world.deliver(body, "evt_garbage")
    assert receipt.duplicate is False
    stored = await world.inbox.get("evt_garbage")
    assert stored is not None and stored.body == body and stored.event_type == "unparseable"
    assert stored.status is InboxStatus.DEAD  # retrying cannot fix a malformed body
    assert stored.last_error and "json" in stored.last_error.lower()


async def test_processed_event_records_its_order(world: World) -> None:
    order = await new_order(world)
    await world.deliver(captured_body(order), "evt_1")
    stored = await world.inbox.get("evt_1")
    assert stored is not None
    assert (stored.status, stored.order_id, stored.attempts, stored.last_error) == (
        InboxStatus.PROCESSED,
        order.id,
        1,
        None,
    )


# ---- refunds --------------------------------------------------------------------------------------


async def test_refund_webhook_before_api_confirmation_matches_the_reservation(world: World) -> None:
    order, pid = await paid_through_api(world)
    ref = refund_ref_for(USER, order.id, "idem-1")
    # What PaymentService.refund does first: reserve, commit, then ask the gateway.
    async with world.ledger.unit_of_work() as uow:
        locked = await uow.get_order(order.id, for_update=True)
        assert locked is not None
        locked.reserve_refund(ref, 20000, None, world.clock.now())
        await uow.save_order(locked)
        await uow.commit()
    snap = await world.gateway.refund_payment(pid, 20000, ref, {"refund_ref": ref, "order_id": order.id})
    # The gateway's webhook overtakes the API answer.
    body = event_body(
        "refund.processed",
        refund=refund_entity(snap.id, pid, 20000, "processed", notes=snap.notes),
        payment=payment_entity(pid, order.gateway_order_id, "captured", fee=1180, tax=180),
    )
    await world.deliver(body, "evt_refund")
    after_webhook = await world.order(order.id)
    assert len(after_webhook.refunds) == 1
    refund = after_webhook.refunds[0]
    assert (refund.ref, refund.id, refund.status, refund.booked) == (
        ref,
        snap.id,
        RefundStatus.PROCESSED,
        True,
    )
    assert (after_webhook.amount_refunded, after_webhook.amount_reserved) == (20000, 0)
    assert world.journal_keys().count(f"refund:{snap.id}") == 1
    journal = list(world.ledger.transactions)
    # The API confirmation comes in: nothing left to do.
    confirmed = await world.payments.apply_refund_snapshot(order.id, snap, ref=ref)
    assert world.ledger.transactions == journal
    assert confirmed.refunds == after_webhook.refunds
    assert confirmed.status is OrderStatus.PARTIALLY_REFUNDED


class WebhookRacingGateway(FakeGateway):
    """Delivers the refund's webhooks while the refund call is still on its way back."""

    world: World | None = None
    statuses: tuple[str, ...] = ("pending",)

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        snap = await super().refund_payment(payment_id, amount, idempotency_key, notes)
        assert self.world is not None
        order_id = self.payments[payment_id].order_id
        for i, status in enumerate(self.statuses):
            body = event_body(
                f"refund.{'created' if status == 'pending' else status}",
                refund=refund_entity(snap.id, payment_id, amount, status, notes=snap.notes),
                payment=payment_entity(payment_id, order_id, "captured", fee=1180, tax=180),
            )
            await self.world.deliver(body, f"evt_race_{i}")
        return snap


@pytest.mark.parametrize("statuses", [("pending",), ("processed",), ("pending", "processed")])
async def test_refund_through_the_api_racing_its_webhooks_is_booked_once(statuses: tuple[str, ...]) -> None:
    gateway = WebhookRacingGateway()
    gateway.statuses = statuses
    w = make_world(gateway)
    gateway.world = w
    order, _ = await paid_through_api(w)
    result = await w.payments.refund(order.id, USER, amount=20000, idempotency_key="idem-race")
    final = await w.order(order.id)
    assert len(final.refunds) == 1
    assert final.refunds[0].ref == refund_ref_for(USER, order.id, "idem-race")
    assert result.refund.id == final.refunds[0].id
    assert final.refunds[0].status is RefundStatus.PROCESSED
    assert (final.amount_refunded, final.amount_reserved) == (20000, 0)
    assert sorted(k.split(":")[0] for k in w.journal_keys()) == ["capture", "fee", "refund"]
    assert all(e.status is InboxStatus.PROCESSED for e in w.inbox.events.values())


async def test_dashboard_refund_is_booked_once_from_its_events(world: World) -> None:
    order = await paid_through_webhook(world)
    pay = payment_entity("pay_W0001", order.gateway_order_id, "captured", fee=1180, tax=180)
    created = event_body(
        "refund.created", refund=refund_entity("rfnd_D1", "pay_W0001", 15000, "pending"), payment=pay
    )
    processed = event_body(
        "refund.processed", refund=refund_entity("rfnd_D1", "pay_W0001", 15000, "processed"), payment=pay
    )
    await world.deliver(created)
    after_created = await world.order(order.id)
    assert after_created.amount_refunded == 15000
    assert after_created.status is OrderStatus.PARTIALLY_REFUNDED
    await world.deliver(processed)
    await world.deliver(processed)  # a second delivery under another event id
    final = await world.order(order.id)
    assert [(r.id, r.ref, r.status, r.amount) for r in final.refunds] == [
        ("rfnd_D1", "ext_rfnd_D1", RefundStatus.PROCESSED, 15000)
    ]
    assert world.journal_keys().count("refund:rfnd_D1") == 1
    refund_txn = next(t for t in world.ledger.transactions if t.key == "refund:rfnd_D1")
    assert refund_txn.postings == (Posting(Account.REFUNDS, Account.GATEWAY_RECEIVABLE, 15000),)
    balances = await world.ledger.balances()
    assert balances["INR"]["refunds"] == 15000
    assert balances["INR"]["gateway_receivable"] == AMOUNT - 1180 - 15000


async def test_full_dashboard_refund_with_refunded_payment_snapshot(world: World) -> None:
    order = await paid_through_webhook(world)
    pay = payment_entity("pay_W0001", order.gateway_order_id, "refunded", fee=1180, tax=180)
    body = event_body(
        "refund.processed", refund=refund_entity("rfnd_F", "pay_W0001", AMOUNT, "processed"), payment=pay
    )
    await world.deliver(body)
    final = await world.order(order.id)
    assert final.status is OrderStatus.REFUNDED
    assert final.payments[0].status is PaymentStatus.REFUNDED
    assert world.journal_keys() == ["capture:pay_W0001", "fee:pay_W0001", "refund:rfnd_F"]


async def test_refund_failed_after_processed_leaves_it_processed(world: World) -> None:
    order = await paid_through_webhook(world)
    pay = payment_entity("pay_W0001", order.gateway_order_id, "captured", fee=1180, tax=180)
    await world.deliver(
        event_body(
            "refund.processed", refund=refund_entity("rfnd_P", "pay_W0001", 10000, "processed"), payment=pay
        )
    )
    journal = list(world.ledger.transactions)
    await world.deliver(
        event_body("refund.failed", refund=refund_entity("rfnd_P", "pay_W0001", 10000, "failed"), payment=pay)
    )
    final = await world.order(order.id)
    assert final.refunds[0].status is RefundStatus.PROCESSED
    assert final.amount_refunded == 10000
    assert world.ledger.transactions == journal


async def test_refund_failed_for_a_pending_refund_reverses_its_booking(world: World) -> None:
    order = await paid_through_webhook(world)
    pay = payment_entity("pay_W0001", order.gateway_order_id, "captured", fee=1180, tax=180)
    await world.deliver(
        event_body(
            "refund.created", refund=refund_entity("rfnd_Q", "pay_W0001", 10000, "pending"), payment=pay
        )
    )
    assert (await world.order(order.id)).amount_refunded == 10000
    await world.deliver(
        event_body("refund.failed", refund=refund_entity("rfnd_Q", "pay_W0001", 10000, "failed"), payment=pay)
    )
    final = await world.order(order.id)
    assert final.refunds[0].status is RefundStatus.FAILED
    assert final.amount_refunded == 0
    assert final.status is OrderStatus.PAID
    assert world.journal_keys()[-2:] == ["refund:rfnd_Q", "refund_reversal:rfnd_Q"]
    reversal = world.ledger.transactions[-1]
    assert reversal.kind == "refund_reversal"
    assert reversal.postings == (Posting(Account.GATEWAY_RECEIVABLE, Account.REFUNDS, 10000),)
    assert (await world.ledger.balances())["INR"]["refunds"] == 0
    # A late refund.processed for the failed refund moves nothing back.
    await world.deliver(
        event_body(
            "refund.processed", refund=refund_entity("rfnd_Q", "pay_W0001", 10000, "processed"), payment=pay
        )
    )
    assert (await world.order(order.id)).amount_refunded == 0
    assert len(world.ledger.transactions) == 4


# ---- retries, dead letters, re-drive --------------------------------------------------------------


async def test_failing_application_is_retried_with_backoff(world: World) -> None:
    order = await new_order(world)
    world.ledger.unavailable = True
    receipt = await world.deliver(captured_body(order), "evt_retry")
    assert receipt.duplicate is False  # acknowledged: it is stored
    received_at = world.clock.now()
    stored = await world.inbox.get("evt_retry")
    assert stored is not None
    assert (stored.status, stored.attempts) == (InboxStatus.PENDING, 1)
    assert stored.next_attempt_at == received_at + backoff(1) == received_at + timedelta(seconds=5)
    assert stored.last_error
    world.ledger.unavailable = False
    world.clock.advance(4.9)
    assert await world.webhooks.process_due() == 0
    assert (await world.order(order.id)).status is OrderStatus.CREATED
    world.clock.advance(0.1)
    assert await world.webhooks.process_due() == 1
    stored = await world.inbox.get("evt_retry")
    assert stored is not None and (stored.status, stored.attempts) == (InboxStatus.PROCESSED, 2)
    assert (await world.order(order.id)).status is OrderStatus.PAID
    assert await world.webhooks.process_due() == 0


def poison_body(order: Order) -> bytes:
    """An event that fails the same way on every attempt: a capture in another currency than the order's."""
    entity = payment_entity("pay_W0001", order.gateway_order_id, "captured")
    entity["currency"] = "USD"
    return event_body("payment.captured", payment=entity)


async def test_after_max_attempts_a_poison_event_is_dead_then_redrive_retries_it(world: World) -> None:
    order = await new_order(world)
    await world.deliver(poison_body(order), "evt_dead")
    for attempt in range(1, MAX_ATTEMPTS):
        stored = await world.inbox.get("evt_dead")
        assert stored is not None
        assert (stored.status, stored.attempts) == (InboxStatus.PENDING, attempt)
        assert stored.next_attempt_at == world.clock.now() + backoff(attempt)
        world.clock.advance(backoff(attempt).total_seconds())
        assert await world.webhooks.process_due() == 1
    stored = await world.inbox.get("evt_dead")
    assert stored is not None
    assert (stored.status, stored.attempts, stored.next_attempt_at) == (InboxStatus.DEAD, MAX_ATTEMPTS, None)
    assert stored.last_error and "currency" in stored.last_error
    world.clock.advance(10 * 3600)
    assert await world.webhooks.process_due() == 0
    dead, _ = await world.webhooks.list_events("dead")
    assert [e.id for e in dead] == ["evt_dead"]
    # Re-driven: back to pending with attempts counted afresh (it fails again, being poison).
    redriven = await world.webhooks.redrive("evt_dead")
    assert (redriven.status, redriven.attempts) == (InboxStatus.PENDING, 1)
    assert redriven.next_attempt_at == world.clock.now() + backoff(1)
    assert world.journal_keys() == []


async def test_a_dependency_outage_never_dead_letters_an_event(world: World) -> None:
    """Hours of database trouble: the event is retried (at most hourly) and applied when it is back."""
    order = await new_order(world)
    world.ledger.unavailable = True
    await world.deliver(captured_body(order), "evt_outage")
    for _ in range(MAX_ATTEMPTS + 6):
        world.clock.advance(3600)
        await world.webhooks.process_due()
    stored = await world.inbox.get("evt_outage")
    assert stored is not None and stored.status is InboxStatus.PENDING
    assert stored.attempts > MAX_ATTEMPTS
    assert stored.next_attempt_at is not None
    assert stored.next_attempt_at - world.clock.now() <= backoff(100)  # capped at an hour
    world.ledger.unavailable = False
    world.clock.advance(3600)
    assert await world.webhooks.process_due() == 1
    applied = await world.inbox.get("evt_outage")
    assert applied is not None and applied.status is InboxStatus.PROCESSED
    assert (await world.order(order.id)).status is OrderStatus.PAID
    assert world.journal_keys() == ["capture:pay_W0001"]


async def test_small_max_attempts_dead_letters_sooner() -> None:
    w = make_world(max_attempts=2)
    order = await new_order(w)
    await w.deliver(poison_body(order), "evt_1")
    w.clock.advance(backoff(1).total_seconds())
    await w.webhooks.process_due()
    stored = await w.inbox.get("evt_1")
    assert stored is not None and (stored.status, stored.attempts) == (InboxStatus.DEAD, 2)


async def test_redrive_of_an_unknown_event_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.webhooks.redrive("evt_nope")


async def test_redrive_of_an_ignored_event_re_applies_it_once_its_order_exists(world: World) -> None:
    order = await new_order(world)
    body = event_body("payment.captured", payment=payment_entity("pay_L", "order_later", "captured"))
    await world.deliver(body, "evt_early")
    assert (await world.inbox.get("evt_early")).status is InboxStatus.IGNORED  # type: ignore[union-attr]
    # An admin fixes the mapping (here: the order's gateway id) and re-drives the event.
    async with world.ledger.unit_of_work() as uow:
        o = await uow.get_order(order.id, for_update=True)
        assert o is not None
        o.gateway_order_id = "order_later"
        await uow.save_order(o)
        await uow.commit()
    event = await world.webhooks.redrive("evt_early")
    assert event.status is InboxStatus.PROCESSED
    assert world.journal_keys() == ["capture:pay_L"]


async def test_redrive_of_a_processed_event_changes_nothing(world: World) -> None:
    order = await new_order(world)
    await world.deliver(captured_body(order), "evt_done")
    event = await world.webhooks.redrive("evt_done")
    assert (event.status, event.attempts) == (InboxStatus.PROCESSED, 1)
    assert world.journal_keys() == ["capture:pay_W0001"]


# ---- listing --------------------------------------------------------------------------------------


async def test_list_events_filters_by_status_and_pages_newest_first(world: World) -> None:
    order = await new_order(world)
    await world.deliver(captured_body(order), "evt_processed")
    world.clock.advance(1)
    await world.deliver(event_body("payment.dispute.created", dispute={"id": "d"}), "evt_ignored")
    world.clock.advance(1)
    world.ledger.unavailable = True
    await world.deliver(captured_body(order, "pay_W0002"), "evt_pending")
    world.ledger.unavailable = False

    for status, expected in [
        ("processed", ["evt_processed"]),
        ("ignored", ["evt_ignored"]),
        ("pending", ["evt_pending"]),
        ("dead", []),
        (None, ["evt_pending", "evt_ignored", "evt_processed"]),
    ]:
        events, next_cursor = await world.webhooks.list_events(status)
        assert [e.id for e in events] == expected, status
        assert next_cursor is None

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await world.webhooks.list_events(None, limit=1, cursor=cursor)
        seen.extend(e.id for e in page)
        if cursor is None:
            break
    assert seen == ["evt_pending", "evt_ignored", "evt_processed"]


@pytest.mark.parametrize("status", ["bogus", "PROCESSED", "", "failed"])
async def test_list_events_rejects_an_unknown_status(world: World, status: str) -> None:
    with pytest.raises(ValidationError):
        await world.webhooks.list_events(status)


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_list_events_rejects_a_bad_limit(world: World, limit: int) -> None:
    with pytest.raises(ValidationError):
        await world.webhooks.list_events(None, limit=limit)


# ---- the in-memory inbox keeps the port's promises -------------------------------------------------


def _event(event_id: str, world: World, **kw: Any) -> InboxEvent:
    now = world.clock.now()
    fields: dict[str, Any] = {"next_attempt_at": now, **kw}
    return InboxEvent(id=event_id, event_type="payment.captured", body=b"{}", received_at=now, **fields)


async def test_inbox_store_is_unique_and_copies(world: World) -> None:
    inbox = world.inbox
    event = _event("e1", world)
    assert await inbox.store(event) is True
    assert await inbox.store(_event("e1", world, attempts=5)) is False
    event.status = InboxStatus.DEAD
    got = await inbox.get("e1")
    assert got is not None and got.status is InboxStatus.PENDING and got.attempts == 0
    got.attempts = 9
    assert (await inbox.get("e1")).attempts == 0  # type: ignore[union-attr]
    assert await inbox.get("e2") is None


async def test_inbox_lease_keeps_an_event_from_a_second_claimer_until_it_expires(world: World) -> None:
    inbox, now = world.inbox, world.clock.now()
    await inbox.store(_event("e1", world))
    assert await inbox.claim("e1", now, 60) is not None
    assert await inbox.claim("e1", now, 60) is None
    assert await inbox.claim_due(now, 10, 60) == []
    later = now + timedelta(seconds=60)  # the first worker died; its lease ran out
    again = await inbox.claim_due(later, 10, 60)
    assert [e.id for e in again] == ["e1"]
    assert await inbox.claim("e1", later, 60) is None
    assert await inbox.finish(
        "e1", InboxStatus.PENDING, later, lease_token=again[0].lease_token, attempts=1, next_attempt_at=later
    )
    assert await inbox.claim("e1", later, 60) is not None  # finish released the lease


async def test_inbox_claim_due_respects_next_attempt_limit_and_status(world: World) -> None:
    inbox, now = world.inbox, world.clock.now()
    await inbox.store(_event("due_late", world, next_attempt_at=now - timedelta(seconds=1)))
    await inbox.store(_event("due_now", world))
    await inbox.store(_event("future", world, next_attempt_at=now + timedelta(seconds=1)))
    await inbox.store(_event("done", world, status=InboxStatus.PROCESSED))
    await inbox.store(_event("dead", world, status=InboxStatus.DEAD))
    first = await inbox.claim_due(now, 1, LEASE_SECONDS)
    assert [e.id for e in first] == ["due_late"]
    rest = await inbox.claim_due(now, 10, LEASE_SECONDS)
    assert [e.id for e in rest] == ["due_now"]
    assert await inbox.claim("done", now, 60) is None
    assert await inbox.claim("dead", now, 60) is None


async def test_inbox_finish_and_redrive(world: World) -> None:
    inbox, now = world.inbox, world.clock.now()
    await inbox.store(_event("e1", world))
    claimed = await inbox.claim("e1", now, 60)
    assert claimed is not None
    assert await inbox.finish(
        "e1",
        InboxStatus.DEAD,
        now,
        lease_token=claimed.lease_token,
        attempts=8,
        last_error="boom",
        order_id="ord_1",
    )
    dead = await inbox.get("e1")
    assert dead is not None
    assert (dead.status, dead.attempts, dead.last_error, dead.order_id, dead.next_attempt_at) == (
        InboxStatus.DEAD,
        8,
        "boom",
        "ord_1",
        None,
    )
    later = now + timedelta(hours=1)
    back = await inbox.redrive("e1", later)
    assert back is not None
    assert (back.status, back.attempts, back.next_attempt_at) == (InboxStatus.PENDING, 0, later)
    [claimed_again] = await inbox.claim_due(later, 10, 60)
    assert claimed_again.id == "e1"
    assert await inbox.finish(
        "e1", InboxStatus.PROCESSED, later, lease_token=claimed_again.lease_token, attempts=1
    )
    done = await inbox.get("e1")
    assert done is not None and done.processed_at == later and done.order_id == "ord_1"
    assert await inbox.redrive("missing", later) is None


async def test_inbox_rejects_a_malformed_cursor(world: World) -> None:
    with pytest.raises(ValidationError):
        await world.inbox.list(None, 10, "not-a-cursor")


# ---- statuses never move backwards ----------------------------------------------------------------


async def test_payment_failed_after_capture_changes_nothing(world: World) -> None:
    order = await paid_through_webhook(world)
    journal = list(world.ledger.transactions)
    await world.deliver(
        event_body("payment.failed", payment=payment_entity("pay_W0001", order.gateway_order_id, "failed"))
    )
    final = await world.order(order.id)
    assert final.status is OrderStatus.PAID
    assert final.payments[0].status is PaymentStatus.CAPTURED
    assert world.ledger.transactions == journal


async def test_late_authorization_after_failure_moves_forward(world: World) -> None:
    order = await new_order(world)
    gw = order.gateway_order_id
    await world.deliver(event_body("payment.failed", payment=payment_entity("pay_L1", gw, "failed")))
    assert (await world.order(order.id)).payments[0].status is PaymentStatus.FAILED
    await world.deliver(event_body("payment.authorized", payment=payment_entity("pay_L1", gw, "authorized")))
    final = await world.order(order.id)
    assert final.payments[0].status is PaymentStatus.AUTHORIZED
    assert final.status is OrderStatus.ATTEMPTED
    assert world.ledger.transactions == []


class LostAnswerGateway(FakeGateway):
    """Refunds at the gateway, then the answer is lost (a timeout after the request got through)."""

    lose_next: bool = True

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        snap = await super().refund_payment(payment_id, amount, idempotency_key, notes)
        if self.lose_next:
            self.lose_next = False
            raise GatewayUnavailable()
        return snap


async def test_webhook_settles_an_api_refund_whose_answer_was_lost() -> None:
    gateway = LostAnswerGateway()
    w = make_world(gateway)
    order, pid = await paid_through_api(w)
    with pytest.raises(GatewayUnavailable):
        await w.payments.refund(order.id, USER, amount=20000, idempotency_key="idem-lost")
    reserved = await w.order(order.id)
    assert (reserved.amount_reserved, reserved.amount_refunded) == (20000, 0)
    [snap] = gateway.refunds.values()
    await w.deliver(
        event_body(
            "refund.processed",
            refund=refund_entity(snap.id, pid, 20000, "processed", notes=snap.notes),
            payment=payment_entity(pid, order.gateway_order_id, "captured", fee=1180, tax=180),
        )
    )
    settled = await w.order(order.id)
    assert (settled.amount_reserved, settled.amount_refunded) == (0, 20000)
    assert [(r.ref, r.id) for r in settled.refunds] == [
        (refund_ref_for(USER, order.id, "idem-lost"), snap.id)
    ]
    # The client retries with the same Idempotency-Key: the refund is not asked for, nor booked, again.
    result = await w.payments.refund(order.id, USER, amount=20000, idempotency_key="idem-lost")
    assert result.refund.id == snap.id
    assert gateway.calls.count("refund_payment") == 1
    assert w.journal_keys().count(f"refund:{snap.id}") == 1
    assert len((await w.order(order.id)).refunds) == 1


async def test_a_stale_worker_cannot_overwrite_the_outcome_of_the_worker_that_took_over(world: World) -> None:
    inbox, now = world.inbox, world.clock.now()
    await inbox.store(_event("e1", world))
    slow = await inbox.claim("e1", now, 60)
    later = now + timedelta(seconds=61)
    fast = await inbox.claim("e1", later, 60)
    assert slow is not None and fast is not None and slow.lease_token != fast.lease_token
    assert await inbox.finish("e1", InboxStatus.PROCESSED, later, lease_token=fast.lease_token, attempts=1)
    assert not await inbox.finish("e1", InboxStatus.DEAD, later, lease_token=slow.lease_token, attempts=8)
    got = await inbox.get("e1")
    assert got is not None and got.status is InboxStatus.PROCESSED
