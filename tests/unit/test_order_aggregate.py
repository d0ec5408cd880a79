"""The Order aggregate: folding payment and refund snapshots in, exactly once, in any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidState, NotFound, RefundExceedsCaptured, ValidationError
from domain.gateway import PaymentSnapshot, RefundSnapshot
from domain.journal import Account, JournalTransaction, balances
from domain.money import Money
from domain.payments import Order, OrderStatus, PaymentStatus, RefundStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AMOUNT = 50000
GW_ORDER = "order_G1"


def _t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_order(amount: int = AMOUNT, currency: str = "INR") -> Order:
    return Order(
        id="ord_1",
        user_id="u1",
        gateway_order_id=GW_ORDER,
        amount=Money.order_amount(amount, currency),
        key_id="rzp_test",
        created_at=T0,
        updated_at=T0,
    )


def pay_snap(
    status: str,
    pid: str = "pay_1",
    *,
    amount: int = AMOUNT,
    captured: bool | None = None,
    fee: int = 0,
    tax: int = 0,
    order_id: str | None = GW_ORDER,
    currency: str = "INR",
) -> PaymentSnapshot:
    return PaymentSnapshot(
        id=pid,
        order_id=order_id,
        amount=amount,
        currency=currency,
        status=status,
        captured=status in ("captured", "refunded") if captured is None else captured,
        method="card",
        fee=fee,
        tax=tax,
    )


def refund_snap(
    status: str,
    rid: str = "rfnd_1",
    *,
    amount: int = AMOUNT,
    pid: str = "pay_1",
    currency: str = "INR",
    notes: dict[str, str] | None = None,
) -> RefundSnapshot:
    return RefundSnapshot(rid, pid, amount, currency, status, notes or {})


def paid_order(amount: int = AMOUNT, fee: int = 0, tax: int = 0) -> tuple[Order, list[JournalTransaction]]:
    o = make_order(amount)
    effects = o.apply_payment(pay_snap("captured", amount=amount, fee=fee, tax=tax), _t(1))
    return o, effects


class Journal:
    """What a ledger with unique keys does with the effects: each key once."""

    def __init__(self) -> None:
        self.txns: dict[str, JournalTransaction] = {}

    def post(self, effects: list[JournalTransaction]) -> None:
        for t in effects:
            self.txns.setdefault(t.key, t)

    def balances(self) -> dict[str, int]:
        return balances(self.txns.values()).get("INR", {})


# ---- payments -------------------------------------------------------------------------------------


def test_authorized_snapshot_records_an_attempt_without_money() -> None:
    o = make_order()
    assert o.apply_payment(pay_snap("authorized"), _t(1)) == []
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.AUTHORIZED
    assert not p.is_captured
    assert o.status is OrderStatus.ATTEMPTED
    assert o.updated_at == _t(1)


def test_capture_effect() -> None:
    o = make_order()
    o.apply_payment(pay_snap("authorized"), _t(1))
    effects = o.apply_payment(pay_snap("captured"), _t(2))
    assert [t.key for t in effects] == ["capture:pay_1"]
    (t,) = effects
    assert t.kind == "capture"
    assert t.order_id == "ord_1"
    assert t.currency == "INR"
    assert t.reference == "pay_1"
    assert t.lines() == [(Account.GATEWAY_RECEIVABLE, AMOUNT), (Account.SALES, -AMOUNT)]
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.CAPTURED
    assert p.captured_at == _t(2)
    assert o.status is OrderStatus.PAID
    assert o.amount_paid == AMOUNT


def test_apply_payment_is_idempotent() -> None:
    o = make_order()
    snap = pay_snap("captured")
    first = o.apply_payment(snap, _t(1))
    second = o.apply_payment(snap, _t(2))
    assert len(first) == 1
    assert second == []
    assert o.amount_paid == AMOUNT
    assert len(o.payments) == 1
    p = o.payment("pay_1")
    assert p is not None
    assert p.captured_at == _t(1)


def test_out_of_order_authorized_after_captured_stays_captured() -> None:
    o = make_order()
    effects = o.apply_payment(pay_snap("captured"), _t(1))
    effects += o.apply_payment(pay_snap("authorized", captured=False), _t(2))
    effects += o.apply_payment(pay_snap("created", captured=False), _t(3))
    effects += o.apply_payment(pay_snap("failed", captured=False), _t(4))
    assert [t.key for t in effects] == ["capture:pay_1"]
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.CAPTURED
    assert o.status is OrderStatus.PAID


def test_captured_flag_on_an_authorized_snapshot_does_not_capture() -> None:
    o = make_order()
    effects = o.apply_payment(pay_snap("authorized", captured=True), _t(1))
    assert effects == []
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.AUTHORIZED
    assert not p.is_captured
    assert o.status is OrderStatus.ATTEMPTED


def test_late_authorization_after_failure() -> None:
    o = make_order()
    o.apply_payment(pay_snap("failed"), _t(1))
    assert o.status is OrderStatus.ATTEMPTED
    o.apply_payment(pay_snap("authorized"), _t(2))
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.AUTHORIZED
    assert len(o.apply_payment(pay_snap("captured"), _t(3))) == 1
    assert o.status is OrderStatus.PAID


def test_refunded_snapshot_of_a_never_seen_captured_payment_captures_once() -> None:
    o = make_order()
    effects = o.apply_payment(pay_snap("refunded", captured=True), _t(1))
    assert [t.key for t in effects] == ["capture:pay_1"]
    p = o.payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.REFUNDED
    assert o.apply_payment(pay_snap("captured"), _t(2)) == []


def test_refunded_snapshot_of_an_uncaptured_payment_is_no_capture() -> None:
    # Razorpay auto-refunds authorized payments that were never captured.
    o = make_order()
    o.apply_payment(pay_snap("authorized"), _t(1))
    assert o.apply_payment(pay_snap("refunded", captured=False), _t(2)) == []
    assert o.amount_paid == 0
    assert o.status is OrderStatus.ATTEMPTED


def test_fee_and_tax_effect_postings() -> None:
    o, effects = paid_order(fee=1180, tax=180)
    assert [t.key for t in effects] == ["capture:pay_1", "fee:pay_1"]
    fee = effects[1]
    assert fee.kind == "gateway_fee"
    assert fee.lines() == [
        (Account.GATEWAY_FEES, 1000),
        (Account.GATEWAY_RECEIVABLE, -1000),
        (Account.GATEWAY_TAX, 180),
        (Account.GATEWAY_RECEIVABLE, -180),
    ]
    b = balances(effects)["INR"]
    assert b == {
        "gateway_receivable": AMOUNT - 1180,
        "sales": -AMOUNT,
        "gateway_fees": 1000,
        "gateway_tax": 180,
    }
    p = o.payment("pay_1")
    assert p is not None
    assert (p.fee, p.tax) == (1180, 180)


@pytest.mark.parametrize(
    ("fee", "tax", "lines"),
    [
        (0, 0, None),
        (1000, 0, [(Account.GATEWAY_FEES, 1000), (Account.GATEWAY_RECEIVABLE, -1000)]),
        (180, 180, [(Account.GATEWAY_TAX, 180), (Account.GATEWAY_RECEIVABLE, -180)]),
    ],
)
def test_fee_effect_variants(fee: int, tax: int, lines: list[tuple[Account, int]] | None) -> None:
    _, effects = paid_order(fee=fee, tax=tax)
    fee_txns = [t for t in effects if t.kind == "gateway_fee"]
    if lines is None:
        assert fee_txns == []
    else:
        assert [t.lines() for t in fee_txns] == [lines]


def test_fee_on_authorized_snapshot_is_not_booked_until_capture() -> None:
    o = make_order()
    assert o.apply_payment(pay_snap("authorized", fee=1180, tax=180), _t(1)) == []
    effects = o.apply_payment(pay_snap("captured", fee=1180, tax=180), _t(2))
    assert [t.key for t in effects] == ["capture:pay_1", "fee:pay_1"]


def test_wrong_order_id_refused() -> None:
    o = make_order()
    with pytest.raises(InvalidState):
        o.apply_payment(pay_snap("captured", order_id="order_OTHER"), _t(1))
    assert o.payments == []


def test_wrong_currency_refused() -> None:
    o = make_order()
    with pytest.raises(InvalidState):
        o.apply_payment(pay_snap("captured", currency="USD"), _t(1))
    assert o.payments == []


def test_unknown_payment_status_refused() -> None:
    o = make_order()
    with pytest.raises(ValidationError):
        o.apply_payment(pay_snap("pending"), _t(1))
    assert o.payments == []


def test_two_attempts_one_failed_one_captured() -> None:
    o = make_order()
    assert o.apply_payment(pay_snap("failed", "pay_A"), _t(1)) == []
    effects = o.apply_payment(pay_snap("captured", "pay_B"), _t(2))
    assert [t.key for t in effects] == ["capture:pay_B"]
    assert o.amount_paid == AMOUNT
    assert o.status is OrderStatus.PAID


SNAPSHOT_SEQUENCE = [
    pay_snap("created", captured=False),
    pay_snap("failed", captured=False),
    pay_snap("authorized", captured=False),
    pay_snap("authorized", captured=True),
    pay_snap("captured", fee=1180, tax=180),
    pay_snap("refunded", captured=True, fee=1180, tax=180),
]


@settings(database=None, deadline=None, max_examples=150)
@given(st.permutations(SNAPSHOT_SEQUENCE), st.integers(min_value=0, max_value=2))
def test_any_delivery_order_captures_exactly_once(perm: list[PaymentSnapshot], repeats: int) -> None:
    o = make_order()
    journal = Journal()
    keys: list[str] = []
    for i, snap in enumerate(perm + perm[:repeats]):
        effects = o.apply_payment(snap, _t(i + 1))
        keys += [t.key for t in effects]
        journal.post(effects)
    assert keys == ["capture:pay_1", "fee:pay_1"]
    p = o.payment("pay_1")
    assert p is not None
    assert p.is_captured
    assert p.status is PaymentStatus.REFUNDED  # the highest status seen wins
    assert journal.balances()["sales"] == -AMOUNT


# ---- reserving refunds ----------------------------------------------------------------------------


def test_reserve_refund_defaults_to_all_that_is_left() -> None:
    o, _ = paid_order()
    r = o.reserve_refund("rf_1", None, None, _t(2))
    assert r.amount == AMOUNT
    assert r.payment_id == "pay_1"
    assert r.status is RefundStatus.PENDING
    assert r.is_reservation
    assert o.amount_reserved == AMOUNT
    assert o.amount_refunded == 0
    assert o.refundable("pay_1") == 0


def test_reserve_partial_refunds_then_default_takes_the_rest() -> None:
    o, _ = paid_order()
    assert o.reserve_refund("rf_1", 20000, None, _t(2)).amount == 20000
    assert o.refundable("pay_1") == 30000
    assert o.reserve_refund("rf_2", None, "pay_1", _t(3)).amount == 30000
    assert o.refundable("pay_1") == 0


def test_reserve_refund_same_ref_returns_the_same_reservation() -> None:
    o, _ = paid_order()
    first = o.reserve_refund("rf_1", 20000, None, _t(2))
    again = o.reserve_refund("rf_1", 20000, None, _t(3))
    assert again is first
    assert len(o.refunds) == 1
    assert o.amount_reserved == 20000


def test_over_refund_refused() -> None:
    o, _ = paid_order()
    with pytest.raises(RefundExceedsCaptured):
        o.reserve_refund("rf_1", AMOUNT + 1, None, _t(2))
    o.reserve_refund("rf_2", 30000, None, _t(3))
    with pytest.raises(RefundExceedsCaptured):
        o.reserve_refund("rf_3", 20001, None, _t(4))
    assert [r.ref for r in o.refunds] == ["rf_2"]


def test_explicit_refund_of_a_fully_refunded_payment_exceeds_captured() -> None:
    # Regression: this used to raise InvalidState (409); the contract says 422 refund_exceeds_captured.
    o, _ = paid_order()
    o.reserve_refund("rf_1", None, None, _t(2))
    with pytest.raises(RefundExceedsCaptured):
        o.reserve_refund("rf_2", 100, None, _t(3))


def test_default_refund_of_a_fully_refunded_payment_is_invalid_state() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", None, None, _t(2))
    with pytest.raises(InvalidState):
        o.reserve_refund("rf_2", None, None, _t(3))


@pytest.mark.parametrize("status", ["created", "authorized", "failed"])
def test_refund_without_captured_payment_is_invalid_state(status: str) -> None:
    o = make_order()
    o.apply_payment(pay_snap(status, captured=False), _t(1))
    with pytest.raises(InvalidState):
        o.reserve_refund("rf_1", 100, None, _t(2))
    assert o.refunds == []


def test_refund_of_an_order_without_payments_is_invalid_state() -> None:
    with pytest.raises(InvalidState):
        make_order().reserve_refund("rf_1", None, None, _t(1))


def test_refund_of_an_uncaptured_payment_is_invalid_state_and_of_an_unknown_one_not_found() -> None:
    o, _ = paid_order()
    o.apply_payment(pay_snap("failed", "pay_2"), _t(2))
    with pytest.raises(InvalidState):
        o.reserve_refund("rf_1", 100, "pay_2", _t(3))
    with pytest.raises(NotFound):
        o.reserve_refund("rf_1", 100, "pay_nope", _t(3))
    assert o.refunds == []


@pytest.mark.parametrize("amount", [100.0, 20000.0, "20000", True, 0, -100])
def test_refund_amount_must_be_a_positive_int(amount: object) -> None:
    o, _ = paid_order()
    with pytest.raises(ValidationError):
        o.reserve_refund("rf_1", amount, None, _t(2))  # type: ignore[arg-type]
    assert o.refunds == []


def test_refund_amount_follows_currency_step() -> None:
    o = make_order(10000, "KWD")
    o.apply_payment(pay_snap("captured", amount=10000, currency="KWD"), _t(1))
    with pytest.raises(ValidationError):
        o.reserve_refund("rf_1", 1005, None, _t(2))
    assert o.reserve_refund("rf_1", 1010, None, _t(2)).amount == 1010


def test_default_payment_is_the_one_with_most_left() -> None:
    o = make_order()
    o.apply_payment(pay_snap("captured", "pay_A", amount=AMOUNT), _t(1))
    o.apply_payment(pay_snap("captured", "pay_B", amount=AMOUNT), _t(2))
    o.reserve_refund("rf_1", 40000, "pay_A", _t(3))
    r = o.reserve_refund("rf_2", None, None, _t(4))
    assert r.payment_id == "pay_B"
    assert r.amount == AMOUNT


def test_release_refund_frees_the_amount() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", AMOUNT, None, _t(2))
    assert o.refundable("pay_1") == 0
    o.release_refund("rf_1", _t(3))
    r = o.refund_by_ref("rf_1")
    assert r is not None
    assert r.status is RefundStatus.FAILED
    assert o.amount_reserved == 0
    assert o.refundable("pay_1") == AMOUNT
    assert o.updated_at == _t(3)
    assert o.reserve_refund("rf_2", AMOUNT, None, _t(4)).amount == AMOUNT


def test_release_does_not_touch_a_confirmed_refund() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", AMOUNT, None, _t(2))
    o.apply_refund(refund_snap("processed"), _t(3), ref="rf_1")
    o.release_refund("rf_1", _t(4))
    r = o.refund_by_ref("rf_1")
    assert r is not None
    assert r.status is RefundStatus.PROCESSED
    assert o.amount_refunded == AMOUNT


def test_release_of_unknown_ref_is_a_no_op() -> None:
    o, _ = paid_order()
    o.release_refund("rf_nope", _t(2))
    assert o.refunds == []


# ---- applying refund snapshots --------------------------------------------------------------------


def test_confirmed_refund_is_booked_once() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", 20000, None, _t(2))
    effects = o.apply_refund(refund_snap("processed", amount=20000), _t(3), ref="rf_1")
    assert [t.key for t in effects] == ["refund:rfnd_1"]
    assert effects[0].lines() == [(Account.REFUNDS, 20000), (Account.GATEWAY_RECEIVABLE, -20000)]
    r = o.refund_by_ref("rf_1")
    assert r is not None
    assert r.id == "rfnd_1"
    assert r.booked
    assert o.amount_refunded == 20000
    assert o.amount_reserved == 0
    assert o.status is OrderStatus.PARTIALLY_REFUNDED
    assert o.apply_refund(refund_snap("processed", amount=20000), _t(4), ref="rf_1") == []


def test_webhook_after_api_confirmation_is_not_booked_twice() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", AMOUNT, None, _t(2))
    journal = Journal()
    journal.post(o.apply_refund(refund_snap("pending"), _t(3), ref="rf_1"))
    # the webhook: same gateway id, no ref from the caller
    journal.post(o.apply_refund(refund_snap("processed"), _t(4)))
    journal.post(o.apply_refund(refund_snap("processed", notes={"refund_ref": "rf_1"}), _t(5)))
    assert list(journal.txns) == ["refund:rfnd_1"]
    assert len(o.refunds) == 1
    assert o.refunds[0].status is RefundStatus.PROCESSED
    assert o.amount_refunded == AMOUNT
    assert o.status is OrderStatus.REFUNDED


def test_webhook_before_api_confirmation_matches_the_reservation_by_its_notes_ref() -> None:
    # Regression: a webhook carrying our ref in its notes used to be added as an external refund beside
    # the still-open reservation, and refunds + reservations then exceeded the capture.
    o, _ = paid_order()
    o.reserve_refund("rf_1", AMOUNT, None, _t(2))
    journal = Journal()
    journal.post(o.apply_refund(refund_snap("processed", notes={"refund_ref": "rf_1"}), _t(3)))
    journal.post(o.apply_refund(refund_snap("processed"), _t(4), ref="rf_1"))  # the API's answer
    assert list(journal.txns) == ["refund:rfnd_1"]
    assert len(o.refunds) == 1
    assert o.amount_reserved == 0
    assert o.amount_refunded == AMOUNT
    assert o.status is OrderStatus.REFUNDED


def test_external_refund_is_added_and_booked_once() -> None:
    o, _ = paid_order()
    snap = refund_snap("processed", "rfnd_dash", amount=15000)
    effects = o.apply_refund(snap, _t(2))
    assert [t.key for t in effects] == ["refund:rfnd_dash"]
    assert o.apply_refund(snap, _t(3)) == []
    assert o.apply_refund(snap, _t(4), ref="rf_unknown") == []
    assert len(o.refunds) == 1
    r = o.refunds[0]
    assert r.ref == "ext_rfnd_dash"
    assert r.id == "rfnd_dash"
    assert o.amount_refunded == 15000
    assert o.refundable("pay_1") == AMOUNT - 15000


def test_external_refund_with_unknown_ref_is_added() -> None:
    o, _ = paid_order()
    effects = o.apply_refund(refund_snap("pending", "rfnd_X", amount=100), _t(2), ref="rf_someone_else")
    assert [t.key for t in effects] == ["refund:rfnd_X"]
    assert len(o.refunds) == 1
    assert o.refunds[0].ref == "rf_someone_else"


def test_ref_of_another_confirmed_refund_does_not_steal_it() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", 10000, None, _t(2))
    o.apply_refund(refund_snap("processed", "rfnd_1", amount=10000), _t(3), ref="rf_1")
    effects = o.apply_refund(refund_snap("processed", "rfnd_2", amount=5000), _t(4), ref="rf_1")
    assert [t.key for t in effects] == ["refund:rfnd_2"]
    assert {r.id for r in o.refunds} == {"rfnd_1", "rfnd_2"}
    assert o.amount_refunded == 15000


def test_failed_after_pending_books_a_reversal() -> None:
    o, _ = paid_order()
    o.reserve_refund("rf_1", AMOUNT, None, _t(2))
    journal = Journal()
    first = o.apply_refund(refund_snap("pending"), _t(3), ref="rf_1")
    assert [t.key for t in first] == ["refund:rfnd_1"]
    assert o.status is OrderStatus.REFUNDED
    journal.post(first)
    failed = o.apply_refund(refund_snap("failed"), _t(4))
    assert [t.key for t in failed] == ["refund_reversal:rfnd_1"]
    assert failed[0].lines() == [(Account.GATEWAY_RECEIVABLE, AMOUNT), (Account.REFUNDS, -AMOUNT)]
    journal.post(failed)
    assert o.amount_refunded == 0
    assert o.status is OrderStatus.PAID
    assert o.refundable("pay_1") == AMOUNT
    assert journal.balances()["refunds"] == 0
    # stale or repeated snapshots change nothing now
    assert o.apply_refund(refund_snap("failed"), _t(5)) == []
    assert o.apply_refund(refund_snap("processed"), _t(6)) == []
    assert o.apply_refund(refund_snap("pending"), _t(7)) == []
    assert o.refunds[0].status is RefundStatus.FAILED


def test_failed_refund_never_booked_needs_no_reversal() -> None:
    o, _ = paid_order()
    assert o.apply_refund(refund_snap("failed", "rfnd_ext", amount=100), _t(2)) == []
    assert o.refunds[0].status is RefundStatus.FAILED
    assert o.amount_refunded == 0
    assert o.status is OrderStatus.PAID


def test_processed_refund_does_not_fail_afterwards() -> None:
    o, _ = paid_order()
    o.apply_refund(refund_snap("processed"), _t(2))
    assert o.apply_refund(refund_snap("failed"), _t(3)) == []
    assert o.refunds[0].status is RefundStatus.PROCESSED
    assert o.amount_refunded == AMOUNT


def test_refund_of_uncaptured_payment_refused() -> None:
    o = make_order()
    o.apply_payment(pay_snap("authorized"), _t(1))
    with pytest.raises(InvalidState):
        o.apply_refund(refund_snap("processed"), _t(2))
    assert o.refunds == []


def test_refund_in_other_currency_refused() -> None:
    o, _ = paid_order()
    with pytest.raises(InvalidState):
        o.apply_refund(refund_snap("processed", currency="USD"), _t(2))


def test_external_refunds_beyond_capture_refused() -> None:
    o, _ = paid_order()
    o.apply_refund(refund_snap("processed", "rfnd_1", amount=30000), _t(2))
    with pytest.raises(RefundExceedsCaptured):
        o.apply_refund(refund_snap("processed", "rfnd_2", amount=30000), _t(3))


def test_capture_and_refund_journal_balances_to_zero() -> None:
    o, effects = paid_order(fee=1180, tax=180)
    journal = Journal()
    journal.post(effects)
    o.reserve_refund("rf_1", 20000, None, _t(2))
    journal.post(o.apply_refund(refund_snap("processed", amount=20000), _t(3), ref="rf_1"))
    b = journal.balances()
    assert b == {
        "gateway_receivable": AMOUNT - 1180 - 20000,
        "sales": -AMOUNT,
        "gateway_fees": 1000,
        "gateway_tax": 180,
        "refunds": 20000,
    }
    assert sum(b.values()) == 0
    assert -b["sales"] - b["refunds"] == o.amount_paid - o.amount_refunded


@settings(database=None, deadline=None, max_examples=80)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pending", "processed", "failed"]),
            st.sampled_from(["rfnd_1", "rfnd_2", "rfnd_3"]),
            st.sampled_from([None, "rf_1", "rf_2"]),
        ),
        max_size=12,
    )
)
def test_refund_snapshots_in_any_order_keep_journal_and_amounts_consistent(
    deliveries: list[tuple[str, str, str | None]],
) -> None:
    o, effects = paid_order()
    o.reserve_refund("rf_1", 10000, None, _t(2))
    o.reserve_refund("rf_2", 10000, None, _t(2))
    journal = Journal()
    journal.post(effects)
    amounts = {"rfnd_1": 10000, "rfnd_2": 10000, "rfnd_3": 10000}
    for i, (status, rid, ref) in enumerate(deliveries):
        all_effects = o.apply_refund(refund_snap(status, rid, amount=amounts[rid]), _t(10 + i), ref=ref)
        for t in all_effects:
            assert t.key not in journal.txns  # an effect is never produced twice
        journal.post(all_effects)
    b = journal.balances()
    assert sum(b.values()) == 0
    assert b.get("refunds", 0) == o.amount_refunded
    assert 0 <= o.amount_refunded + o.amount_reserved <= o.amount_paid
    assert len({r.id for r in o.refunds if r.id is not None}) == len([r for r in o.refunds if r.id])
