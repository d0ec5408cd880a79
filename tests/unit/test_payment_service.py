"""PaymentService with the fake gateway, the in-memory ledger and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

import pytest

from application.payments import PaymentService, refund_ref_for
from domain.errors import (
    GatewayRejected,
    GatewayUnavailable,
    InvalidState,
    NotFound,
    RefundExceedsCaptured,
    SignatureInvalid,
    ValidationError,
)
from domain.gateway import RefundSnapshot
from domain.payments import Order, OrderStatus, PaymentStatus, RefundStatus
from domain.signatures import payment_signature
from tests.fakes import FakeClock, FakeGateway, InMemoryLedger

KEY_SECRET = "test_key_secret"
USER = "user_1"
OTHER = "user_2"


class LostResponseGateway(FakeGateway):
    """Refunds at the gateway, then loses the answer (a timeout after the request got through)."""

    lose_next_refund_response: bool = True

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        snap = await super().refund_payment(payment_id, amount, idempotency_key, notes)
        if self.lose_next_refund_response:
            self.lose_next_refund_response = False
            raise GatewayUnavailable()
        return snap


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(ledger: InMemoryLedger, gateway: FakeGateway, clock: FakeClock) -> PaymentService:
    return PaymentService(ledger, gateway, clock, KEY_SECRET)


def sign(order: Order, payment_id: str) -> str:
    return payment_signature(order.gateway_order_id, payment_id, KEY_SECRET)


async def paid_order(
    service: PaymentService, gateway: FakeGateway, amount: int = 50000, fee: int = 0, tax: int = 0
) -> tuple[Order, str]:
    order = await service.create_order(USER, amount, "INR")
    pid = gateway.pay(order.gateway_order_id, "authorized", fee=fee, tax=tax)
    order = await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    return order, pid


# ---- create_order -----------------------------------------------------------------------------------


async def test_create_order_stores_the_gateway_order(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger, clock: FakeClock
) -> None:
    order = await service.create_order(USER, 50000, "INR", receipt="rcpt_1", notes={"k": "v"})
    assert gateway.calls == ["create_order"]
    assert order.gateway_order_id in gateway.orders
    assert order.id.startswith("ord_")
    assert order.amount.amount == 50000
    assert order.currency == "INR"
    assert order.receipt == "rcpt_1"
    assert order.notes == {"k": "v"}
    assert order.key_id == gateway.key_id
    assert order.created_at == clock.now()
    assert order.status is OrderStatus.CREATED
    stored = await service.get_order(order.id, USER)
    assert stored.gateway_order_id == order.gateway_order_id
    assert stored is not order  # the ledger keeps its own copy
    assert ledger.transactions == []


@pytest.mark.parametrize(
    ("amount", "currency", "receipt", "notes"),
    [
        pytest.param(50000, "INR", "r" * 41, None, id="receipt-41-chars"),
        pytest.param(50000, "INR", None, {f"k{i}": "v" for i in range(16)}, id="16-notes"),
        pytest.param(50000, "INR", None, {"k": 1}, id="non-string-note-value"),
        pytest.param(50000, "INR", None, {1: "v"}, id="non-string-note-key"),
        pytest.param(50000, "INR", None, {"k": "v" * 257}, id="note-too-long"),
        pytest.param(99, "INR", None, None, id="below-minimum"),
        pytest.param(500.0, "INR", None, None, id="float-amount"),
        pytest.param("50000", "INR", None, None, id="string-amount"),
        pytest.param(True, "INR", None, None, id="bool-amount"),
        pytest.param(50000, "XYZ", None, None, id="unknown-currency"),
        pytest.param(50000, "inr", None, None, id="lowercase-currency"),
        pytest.param(1005, "KWD", None, None, id="kwd-step"),
    ],
)
async def test_create_order_validation_reaches_neither_gateway_nor_ledger(
    service: PaymentService,
    gateway: FakeGateway,
    ledger: InMemoryLedger,
    amount: object,
    currency: object,
    receipt: str | None,
    notes: dict[object, object] | None,
) -> None:
    with pytest.raises(ValidationError):
        await service.create_order(USER, amount, currency, receipt=receipt, notes=notes)  # type: ignore[arg-type]
    assert gateway.calls == []
    assert gateway.orders == {}
    assert ledger.orders == {}
    assert ledger.commits == 0


async def test_create_order_at_the_limits_is_accepted(service: PaymentService) -> None:
    notes = {f"k{i}": "v" * 256 for i in range(15)}
    order = await service.create_order(USER, 100, "INR", receipt="r" * 40, notes=notes)
    assert order.receipt == "r" * 40
    assert len(order.notes) == 15


async def test_create_order_gateway_unavailable_stores_nothing(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    gateway.unavailable.add("create_order")
    with pytest.raises(GatewayUnavailable):
        await service.create_order(USER, 50000, "INR")
    assert ledger.orders == {}


# ---- get / list -----------------------------------------------------------------------------------


async def test_get_order_of_another_user_is_not_found(service: PaymentService) -> None:
    order = await service.create_order(USER, 50000, "INR")
    with pytest.raises(NotFound):
        await service.get_order(order.id, OTHER)
    assert (await service.get_order(order.id, OTHER, is_admin=True)).id == order.id
    with pytest.raises(NotFound):
        await service.get_order("ord_missing", USER, is_admin=True)


@pytest.mark.parametrize("limit", [0, -1, 101, True, 5.5, 20.0])
async def test_list_orders_limit_validation(service: PaymentService, limit: object) -> None:
    with pytest.raises(ValidationError):
        await service.list_orders(USER, limit=limit)  # type: ignore[arg-type]


async def test_list_orders_pages_through_own_orders_only(service: PaymentService, clock: FakeClock) -> None:
    mine = []
    for _ in range(3):
        mine.append(await service.create_order(USER, 50000, "INR"))
        clock.advance(1)
    await service.create_order(OTHER, 50000, "INR")
    first = await service.list_orders(USER, limit=2)
    assert [o.id for o in first.orders] == [mine[2].id, mine[1].id]
    assert first.next_cursor is not None
    second = await service.list_orders(USER, limit=100, cursor=first.next_cursor)
    assert [o.id for o in second.orders] == [mine[0].id]
    assert second.next_cursor is None
    assert len((await service.list_orders(USER, limit=1)).orders) == 1


# ---- verify_payment --------------------------------------------------------------------------------


async def test_verify_captures_an_authorized_payment_once(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "authorized", fee=1180, tax=180)
    verified = await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert gateway.calls.count("capture_payment") == 1
    assert gateway.payments[pid].status == "captured"
    assert verified.status is OrderStatus.PAID
    assert verified.amount_paid == 50000
    payment = verified.payment(pid)
    assert payment is not None
    assert payment.status is PaymentStatus.CAPTURED
    assert [t.key for t in ledger.transactions] == [f"capture:{pid}", f"fee:{pid}"]
    stored = await service.get_order(order.id, USER)
    assert stored.status is OrderStatus.PAID

    again = await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert again.status is OrderStatus.PAID
    assert gateway.calls.count("capture_payment") == 1  # already captured: no second capture call
    assert [t.key for t in ledger.transactions] == [f"capture:{pid}", f"fee:{pid}"]
    assert await ledger.balances() == {
        "INR": {"gateway_receivable": 48820, "sales": -50000, "gateway_fees": 1000, "gateway_tax": 180}
    }


async def test_verify_of_an_already_captured_payment_does_not_capture_again(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "captured")
    verified = await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert verified.status is OrderStatus.PAID
    assert "capture_payment" not in gateway.calls
    assert [t.key for t in ledger.transactions] == [f"capture:{pid}"]


@pytest.mark.parametrize(
    "bad_signature",
    [
        pytest.param("", id="empty"),
        pytest.param("0" * 64, id="zeros"),
        pytest.param("wrong-secret", id="wrong-secret"),
        pytest.param("other-payment", id="other-payment"),
    ],
)
async def test_verify_with_a_wrong_signature_stores_nothing(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger, bad_signature: str
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "authorized")
    signature = {
        "wrong-secret": payment_signature(order.gateway_order_id, pid, "not_the_secret"),
        "other-payment": payment_signature(order.gateway_order_id, "pay_other", KEY_SECRET),
    }.get(bad_signature, bad_signature)
    commits = ledger.commits
    with pytest.raises(SignatureInvalid):
        await service.verify_payment(USER, order.gateway_order_id, pid, signature)
    assert gateway.calls == ["create_order"]  # neither fetched nor captured
    assert gateway.payments[pid].status == "authorized"
    assert ledger.commits == commits
    assert ledger.transactions == []
    assert (await service.get_order(order.id, USER)).payments == []


async def test_verify_with_signature_for_another_order_is_refused(
    service: PaymentService, gateway: FakeGateway
) -> None:
    mine = await service.create_order(USER, 50000, "INR")
    other = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(other.gateway_order_id, "authorized")
    # a valid signature for the other order, presented with my order id
    with pytest.raises(SignatureInvalid):
        await service.verify_payment(USER, mine.gateway_order_id, pid, sign(other, pid))


async def test_verify_of_a_payment_of_another_order_is_invalid_state(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    mine = await service.create_order(USER, 50000, "INR")
    other = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(other.gateway_order_id, "authorized")
    with pytest.raises(InvalidState):
        await service.verify_payment(USER, mine.gateway_order_id, pid, sign(mine, pid))
    assert "capture_payment" not in gateway.calls
    assert ledger.transactions == []


async def test_verify_of_another_users_order_is_not_found(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "authorized")
    with pytest.raises(NotFound):
        await service.verify_payment(OTHER, order.gateway_order_id, pid, sign(order, pid))
    with pytest.raises(NotFound):
        await service.verify_payment(USER, "order_unknown", pid, sign(order, pid))
    assert gateway.calls == ["create_order"]
    assert ledger.transactions == []


async def test_verify_of_a_failed_payment_is_invalid_state_and_records_the_attempt(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "failed")
    with pytest.raises(InvalidState, match="failed"):
        await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert "capture_payment" not in gateway.calls
    stored = await service.get_order(order.id, USER)
    assert stored.status is OrderStatus.ATTEMPTED
    payment = stored.payment(pid)
    assert payment is not None
    assert payment.status is PaymentStatus.FAILED
    assert ledger.transactions == []


async def test_verify_when_capture_is_unavailable_stores_no_capture(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "authorized")
    gateway.unavailable.add("capture_payment")
    with pytest.raises(GatewayUnavailable):
        await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert ledger.transactions == []
    gateway.unavailable.clear()
    verified = await service.verify_payment(USER, order.gateway_order_id, pid, sign(order, pid))
    assert verified.status is OrderStatus.PAID
    assert [t.key for t in ledger.transactions] == [f"capture:{pid}"]


async def test_apply_payment_snapshot_of_unknown_order_is_not_found(
    service: PaymentService, gateway: FakeGateway
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "captured")
    snap = await gateway.fetch_payment(pid)
    with pytest.raises(NotFound):
        await service.apply_payment_snapshot("ord_missing", snap)


async def test_payment_snapshots_applied_twice_capture_once(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order = await service.create_order(USER, 50000, "INR")
    pid = gateway.pay(order.gateway_order_id, "captured")
    snap = await gateway.fetch_payment(pid)
    await service.apply_payment_snapshot(order.id, snap)
    await service.apply_payment_snapshot(order.id, snap)
    assert [t.key for t in ledger.transactions] == [f"capture:{pid}"]


# ---- refunds -----------------------------------------------------------------------------------------


async def test_full_refund(service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger) -> None:
    order, pid = await paid_order(service, gateway)
    result = await service.refund(order.id, "admin", amount=50000)
    assert result.refund.amount == 50000
    assert result.refund.payment_id == pid
    assert result.refund.id is not None
    assert result.refund.status is RefundStatus.PROCESSED
    assert result.order.status is OrderStatus.REFUNDED
    assert result.order.amount_refunded == 50000
    assert gateway.payments[pid].refunded == 50000
    assert [t.kind for t in await ledger.journal(order.id)] == ["capture", "refund"]
    stored = await service.get_order(order.id, USER)
    assert stored.status is OrderStatus.REFUNDED
    assert stored.amount_reserved == 0
    assert (await ledger.balances())["INR"] == {"gateway_receivable": 0, "sales": -50000, "refunds": 50000}


async def test_default_refund_is_all_that_is_left(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order, pid = await paid_order(service, gateway)
    partial = await service.refund(order.id, "admin", amount=20000)
    assert partial.order.status is OrderStatus.PARTIALLY_REFUNDED
    assert partial.order.amount_refunded == 20000
    rest = await service.refund(order.id, "admin")
    assert rest.refund.amount == 30000
    assert rest.order.status is OrderStatus.REFUNDED
    assert gateway.payments[pid].refunded == 50000
    assert [t.kind for t in ledger.transactions] == ["capture", "refund", "refund"]
    with pytest.raises(InvalidState):
        await service.refund(order.id, "admin")
    with pytest.raises(RefundExceedsCaptured):
        await service.refund(order.id, "admin", amount=100)


async def test_refund_sends_our_ref_as_idempotency_key_and_in_notes(
    service: PaymentService, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway)
    result = await service.refund(
        order.id, "admin", amount=100, notes={"reason": "x"}, idempotency_key="key-1"
    )
    ref = refund_ref_for("admin", order.id, "key-1")
    assert result.refund.ref == ref
    assert list(gateway.refund_tokens) == [ref]
    assert len(ref) >= 10
    assert result.refund.id is not None
    snap = gateway.refunds[result.refund.id]
    assert snap.notes == {"reason": "x", "refund_ref": ref, "order_id": order.id}


async def test_over_refund_is_refused_before_the_gateway(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order, _ = await paid_order(service, gateway)
    with pytest.raises(RefundExceedsCaptured):
        await service.refund(order.id, "admin", amount=50001)
    assert "refund_payment" not in gateway.calls
    assert (await service.get_order(order.id, USER)).refunds == []


@pytest.mark.parametrize("amount", [100.0, "100", True, 0])
async def test_refund_amount_validation(
    service: PaymentService, gateway: FakeGateway, amount: object
) -> None:
    order, _ = await paid_order(service, gateway)
    with pytest.raises(ValidationError):
        await service.refund(order.id, "admin", amount=amount)  # type: ignore[arg-type]
    assert "refund_payment" not in gateway.calls


async def test_refund_notes_leave_room_for_ours(service: PaymentService, gateway: FakeGateway) -> None:
    order, _ = await paid_order(service, gateway)
    with pytest.raises(ValidationError):
        await service.refund(order.id, "admin", notes={f"k{i}": "v" for i in range(14)})
    assert "refund_payment" not in gateway.calls


async def test_refund_of_unpaid_or_unknown_order(service: PaymentService, gateway: FakeGateway) -> None:
    order = await service.create_order(USER, 50000, "INR")
    with pytest.raises(InvalidState):
        await service.refund(order.id, "admin")
    with pytest.raises(NotFound):
        await service.refund("ord_missing", "admin")
    assert "refund_payment" not in gateway.calls


async def test_gateway_rejection_releases_the_reservation(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order, _ = await paid_order(service, gateway)
    gateway.reject.add("refund_payment")
    with pytest.raises(GatewayRejected):
        await service.refund(order.id, "admin", amount=50000, idempotency_key="key-rejected")
    stored = await service.get_order(order.id, USER)
    assert stored.amount_reserved == 0
    assert stored.refundable(stored.payments[0].id) == 50000
    assert [r.status for r in stored.refunds] == [RefundStatus.FAILED]
    assert stored.status is OrderStatus.PAID
    assert [t.kind for t in ledger.transactions] == ["capture"]
    # the same key stays refused; a new request can refund the freed amount
    gateway.reject.clear()
    with pytest.raises(InvalidState):
        await service.refund(order.id, "admin", amount=50000, idempotency_key="key-rejected")
    result = await service.refund(order.id, "admin", amount=50000, idempotency_key="key-new")
    assert result.order.status is OrderStatus.REFUNDED


async def test_gateway_unavailable_keeps_the_reservation_and_retry_books_one_refund(
    ledger: InMemoryLedger, clock: FakeClock
) -> None:
    gateway = LostResponseGateway()
    service = PaymentService(ledger, gateway, clock, KEY_SECRET)
    order, pid = await paid_order(service, gateway)
    with pytest.raises(GatewayUnavailable):
        await service.refund(order.id, "admin", amount=20000, idempotency_key="key-1")
    stored = await service.get_order(order.id, USER)
    assert stored.amount_reserved == 20000  # the refund may have happened: keep it reserved
    assert stored.refundable(pid) == 30000
    assert [t.kind for t in ledger.transactions] == ["capture"]
    with pytest.raises(RefundExceedsCaptured):
        await service.refund(order.id, "admin", amount=30001, idempotency_key="key-2")

    result = await service.refund(order.id, "admin", amount=20000, idempotency_key="key-1")
    ref = refund_ref_for("admin", order.id, "key-1")
    sent = [c for c in gateway.calls if c == "refund_payment"]
    assert len(sent) == 2
    assert list(gateway.refund_tokens) == [ref]  # both attempts carried the same reference
    assert len(gateway.refunds) == 1
    assert gateway.payments[pid].refunded == 20000
    assert result.refund.ref == ref
    assert result.order.amount_refunded == 20000
    assert result.order.amount_reserved == 0
    assert len(result.order.refunds) == 1
    assert [t.kind for t in ledger.transactions] == ["capture", "refund"]

    # a third call with the key returns the confirmed refund without calling the gateway again
    third = await service.refund(order.id, "admin", amount=20000, idempotency_key="key-1")
    assert third.refund.id == result.refund.id
    assert [c for c in gateway.calls if c == "refund_payment"] == sent
    assert [t.kind for t in ledger.transactions] == ["capture", "refund"]


async def test_gateway_unavailable_before_sending_then_retry(
    service: PaymentService, gateway: FakeGateway, ledger: InMemoryLedger
) -> None:
    order, _ = await paid_order(service, gateway)
    gateway.unavailable.add("refund_payment")
    with pytest.raises(GatewayUnavailable):
        await service.refund(order.id, "admin", idempotency_key="key-1")
    assert (await service.get_order(order.id, USER)).amount_reserved == 50000
    gateway.unavailable.clear()
    result = await service.refund(order.id, "admin", idempotency_key="key-1")
    assert result.refund.amount == 50000
    assert result.order.status is OrderStatus.REFUNDED
    assert [t.kind for t in ledger.transactions] == ["capture", "refund"]


async def test_refunds_without_idempotency_key_are_distinct(
    service: PaymentService, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway)
    a = await service.refund(order.id, "admin", amount=100)
    b = await service.refund(order.id, "admin", amount=100)
    assert a.refund.ref != b.refund.ref
    assert a.refund.id != b.refund.id
    assert b.order.amount_refunded == 200


async def test_balances_after_capture_and_refund_total_zero(
    service: PaymentService, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway, fee=1180, tax=180)
    await service.refund(order.id, "admin", amount=20000)
    b = await service.balances()
    assert b == {
        "INR": {
            "gateway_receivable": 50000 - 1180 - 20000,
            "sales": -50000,
            "gateway_fees": 1000,
            "gateway_tax": 180,
            "refunds": 20000,
        }
    }
    assert sum(b["INR"].values()) == 0


def test_refund_ref_is_stable_per_user_order_and_key() -> None:
    a = refund_ref_for("u1", "ord_1", "key")
    assert a == refund_ref_for("u1", "ord_1", "key")
    assert a != refund_ref_for("u2", "ord_1", "key")
    assert a != refund_ref_for("u1", "ord_1", "key2")
    # The same key reused on another order (after it expired) must not reuse the gateway's refund token.
    assert a != refund_ref_for("u1", "ord_2", "key")
    assert refund_ref_for("u1", "ord_1", None) != refund_ref_for("u1", "ord_1", None)
    for ref in (a, refund_ref_for("u1", "ord_1", None)):
        assert len(ref) >= 10
        assert all(c.isalnum() or c in "_-" for c in ref)


# ---- the in-memory ledger behaves like a transactional one -------------------------------------


async def test_in_memory_ledger_stores_only_on_commit(
    service: PaymentService, ledger: InMemoryLedger, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway)
    (capture,) = await ledger.journal(order.id)
    refund_txn = replace(capture, key="refund:rfnd_uncommitted", kind="refund")
    async with ledger.unit_of_work() as uow:
        loaded = await uow.get_order(order.id, for_update=True)
        assert loaded is not None
        loaded.reserve_refund("rf_uncommitted", 100, None, loaded.updated_at)
        await uow.save_order(loaded)
        assert await uow.post(refund_txn) is True
        assert await uow.post(refund_txn) is False  # unique within the unit too
        # leaving without commit rolls back
    assert (await service.get_order(order.id, USER)).refunds == []
    assert [t.key for t in await ledger.journal()] == [capture.key]


async def test_in_memory_ledger_copies_on_load(
    service: PaymentService, ledger: InMemoryLedger, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway)
    async with ledger.unit_of_work() as uow:
        loaded = await uow.get_order(order.id)
        assert loaded is not None
        loaded.payments.clear()  # changing a loaded copy changes nothing stored
        await uow.commit()
    assert (await service.get_order(order.id, USER)).status is OrderStatus.PAID


async def test_in_memory_ledger_posts_each_key_once(
    ledger: InMemoryLedger, service: PaymentService, gateway: FakeGateway
) -> None:
    order, _ = await paid_order(service, gateway)
    (capture,) = await ledger.journal(order.id)
    async with ledger.unit_of_work() as uow:
        assert await uow.post(capture) is False
        await uow.commit()
    assert len(await ledger.journal()) == 1


async def test_in_memory_ledger_finds_orders_by_payment_and_leases_reconciliation(
    ledger: InMemoryLedger, service: PaymentService, gateway: FakeGateway, clock: FakeClock
) -> None:
    paid, pid = await paid_order(service, gateway)
    unpaid = await service.create_order(USER, 50000, "INR")
    async with ledger.unit_of_work() as uow:
        found = await uow.get_order_by_payment_id(pid)
        assert found is not None
        assert found.id == paid.id
        assert await uow.get_order_by_payment_id("pay_unknown") is None
    now = clock.now()
    window = (now + timedelta(seconds=1), now - timedelta(hours=1))
    assert await ledger.orders_to_reconcile(*window, now, 60, 10) == [unpaid.id]
    assert await ledger.orders_to_reconcile(*window, now, 60, 10) == []  # leased
    later = now + timedelta(seconds=61)
    assert await ledger.orders_to_reconcile(*window, later, 60, 10) == [unpaid.id]
