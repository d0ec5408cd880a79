"""Payment and refund status transitions, and the order status derived from amounts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from domain.errors import ValidationError
from domain.money import Money
from domain.payments import (
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    parse_payment_status,
    parse_refund_status,
    payment_can_move,
    refund_can_move,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = PaymentStatus
R = RefundStatus

# Every forward move; everything else (including staying put) is refused.
ALLOWED_PAYMENT_MOVES = {
    (P.CREATED, P.FAILED),
    (P.CREATED, P.AUTHORIZED),
    (P.CREATED, P.CAPTURED),
    (P.CREATED, P.REFUNDED),
    (P.FAILED, P.AUTHORIZED),  # Razorpay's late authorization
    (P.FAILED, P.CAPTURED),
    (P.FAILED, P.REFUNDED),
    (P.AUTHORIZED, P.CAPTURED),
    (P.AUTHORIZED, P.REFUNDED),
    (P.CAPTURED, P.REFUNDED),
}
ALLOWED_REFUND_MOVES = {(R.PENDING, R.PROCESSED), (R.PENDING, R.FAILED)}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(P, P)))
def test_every_payment_transition(current: PaymentStatus, new: PaymentStatus) -> None:
    assert payment_can_move(current, new) is ((current, new) in ALLOWED_PAYMENT_MOVES)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (P.CAPTURED, P.AUTHORIZED),
        (P.CAPTURED, P.FAILED),
        (P.CAPTURED, P.CREATED),
        (P.REFUNDED, P.CAPTURED),
        (P.AUTHORIZED, P.FAILED),
        (P.AUTHORIZED, P.CREATED),
        (P.FAILED, P.CREATED),
    ],
)
def test_stale_payment_snapshots_never_move_backwards(current: PaymentStatus, new: PaymentStatus) -> None:
    assert not payment_can_move(current, new)


def test_payment_rank_order() -> None:
    order = [P.CREATED, P.FAILED, P.AUTHORIZED, P.CAPTURED, P.REFUNDED]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            assert payment_can_move(a, b) is (j > i)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(R, R)))
def test_every_refund_transition(current: RefundStatus, new: RefundStatus) -> None:
    assert refund_can_move(current, new) is ((current, new) in ALLOWED_REFUND_MOVES)


def test_processed_and_failed_refunds_are_final() -> None:
    assert not refund_can_move(R.PROCESSED, R.FAILED)
    assert not refund_can_move(R.FAILED, R.PROCESSED)
    assert not refund_can_move(R.PROCESSED, R.PENDING)
    assert not refund_can_move(R.FAILED, R.PENDING)


@pytest.mark.parametrize("value", ["created", "authorized", "captured", "refunded", "failed"])
def test_parse_known_payment_status(value: str) -> None:
    assert parse_payment_status(value).value == value


@pytest.mark.parametrize("value", ["CAPTURED", "pending", "", "paid"])
def test_parse_unknown_payment_status(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_payment_status(value)


@pytest.mark.parametrize("value", ["pending", "processed", "failed"])
def test_parse_known_refund_status(value: str) -> None:
    assert parse_refund_status(value).value == value


@pytest.mark.parametrize("value", ["PROCESSED", "created", "", "captured"])
def test_parse_unknown_refund_status(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_refund_status(value)


# ---- order status from amounts -----------------------------------------------------------------


def _order(payments: list[Payment] | None = None, refunds: list[Refund] | None = None) -> Order:
    return Order(
        id="ord_1",
        user_id="u1",
        gateway_order_id="order_1",
        amount=Money.of(50000, "INR"),
        key_id="rzp_test",
        created_at=T0,
        updated_at=T0,
        payments=payments or [],
        refunds=refunds or [],
    )


def _payment(pid: str, status: PaymentStatus, captured: bool, amount: int = 50000) -> Payment:
    return Payment(
        id=pid,
        amount=amount,
        currency="INR",
        status=status,
        created_at=T0,
        updated_at=T0,
        captured_at=T0 if captured else None,
    )


def _refund(rid: str | None, amount: int, status: RefundStatus, ref: str = "rf_1") -> Refund:
    return Refund(
        ref=ref,
        payment_id="pay_1",
        amount=amount,
        currency="INR",
        status=status,
        created_at=T0,
        updated_at=T0,
        id=rid,
        booked=rid is not None and status is not R.FAILED,
    )


def test_order_without_payments_is_created() -> None:
    o = _order()
    assert o.status is OrderStatus.CREATED
    assert o.amount_paid == 0


@pytest.mark.parametrize("status", [P.CREATED, P.FAILED, P.AUTHORIZED])
def test_order_with_uncaptured_payment_is_attempted(status: PaymentStatus) -> None:
    o = _order([_payment("pay_1", status, captured=False)])
    assert o.status is OrderStatus.ATTEMPTED
    assert o.amount_paid == 0


def test_order_with_captured_payment_is_paid() -> None:
    o = _order([_payment("pay_0", P.FAILED, False), _payment("pay_1", P.CAPTURED, True)])
    assert o.status is OrderStatus.PAID
    assert o.amount_paid == 50000


def test_partially_refunded_then_refunded() -> None:
    o = _order([_payment("pay_1", P.CAPTURED, True)], [_refund("rfnd_1", 20000, R.PROCESSED)])
    assert o.status is OrderStatus.PARTIALLY_REFUNDED
    assert o.amount_refunded == 20000
    o.refunds.append(_refund("rfnd_2", 30000, R.PENDING, ref="rf_2"))
    assert o.status is OrderStatus.REFUNDED
    assert o.amount_refunded == 50000


def test_failed_refund_moves_order_back_from_refunded() -> None:
    o = _order([_payment("pay_1", P.CAPTURED, True)], [_refund("rfnd_1", 50000, R.PROCESSED)])
    assert o.status is OrderStatus.REFUNDED
    o.refunds[0].status = R.FAILED
    assert o.status is OrderStatus.PAID
    assert o.amount_refunded == 0


def test_reservations_do_not_count_as_refunded_but_hold_money() -> None:
    o = _order([_payment("pay_1", P.CAPTURED, True)], [_refund(None, 20000, R.PENDING)])
    assert o.status is OrderStatus.PAID
    assert o.amount_refunded == 0
    assert o.amount_reserved == 20000
    assert o.refundable("pay_1") == 30000


def test_failed_reservation_holds_nothing() -> None:
    o = _order([_payment("pay_1", P.CAPTURED, True)], [_refund(None, 20000, R.FAILED)])
    assert o.amount_reserved == 0
    assert o.refundable("pay_1") == 50000
