"""Orders, payments and refunds, and the rules by which they change.

The :class:`Order` is the aggregate: payments and refunds change only through it, while the caller
holds the order's row lock. Statuses of payments and refunds only move forward (a late or repeated
snapshot changes nothing), and each money effect is returned as a :class:`JournalTransaction` whose key
makes it happen once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.errors import InvalidState, NotFound, RefundExceedsCaptured, ValidationError
from domain.gateway import PaymentSnapshot, RefundSnapshot
from domain.journal import Account, JournalTransaction, Posting
from domain.money import Money


class OrderStatus(StrEnum):
    CREATED = "created"
    ATTEMPTED = "attempted"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentStatus(StrEnum):
    CREATED = "created"
    FAILED = "failed"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


# How long a claim to capture one payment of an order keeps other payments of the order from being
# captured (longer than any gateway call may take; a crashed claimant's claim lapses after it).
CAPTURE_CLAIM_SECONDS = 120

# A payment status only moves to a higher rank. ``failed -> authorized`` is Razorpay's late
# authorization; ``captured -> failed`` or ``refunded -> captured`` can only be stale snapshots.
_PAYMENT_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.FAILED: 1,
    PaymentStatus.AUTHORIZED: 2,
    PaymentStatus.CAPTURED: 3,
    PaymentStatus.REFUNDED: 4,
}

_REFUND_NEXT = {
    RefundStatus.PENDING: {RefundStatus.PROCESSED, RefundStatus.FAILED},
    RefundStatus.PROCESSED: set(),
    RefundStatus.FAILED: set(),
}


def payment_can_move(current: PaymentStatus, new: PaymentStatus) -> bool:
    """True when ``current -> new`` is a forward move of a payment."""
    return _PAYMENT_RANK[new] > _PAYMENT_RANK[current]


def refund_can_move(current: RefundStatus, new: RefundStatus) -> bool:
    """True when ``current -> new`` is a forward move of a refund."""
    return new in _REFUND_NEXT[current]


def parse_payment_status(value: str) -> PaymentStatus:
    try:
        return PaymentStatus(value)
    except ValueError:
        raise ValidationError(f"unknown payment status {value!r}.") from None


def parse_refund_status(value: str) -> RefundStatus:
    try:
        return RefundStatus(value)
    except ValueError:
        raise ValidationError(f"unknown refund status {value!r}.") from None


@dataclass(slots=True)
class Payment:
    """A gateway payment attempt on one of our orders. ``id`` is the gateway's ``pay_...``."""

    id: str
    amount: int
    currency: str
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    method: str | None = None
    fee: int = 0
    tax: int = 0
    captured_at: datetime | None = None
    capture_requested_at: datetime | None = None  # we claimed the right to capture it (see claim_capture)

    @property
    def is_captured(self) -> bool:
        return self.captured_at is not None


@dataclass(slots=True)
class Refund:
    """A refund of (part of) a captured payment.

    ``ref`` is ours: it is sent as the refund idempotency header and in the refund's notes, so a retry
    cannot refund twice and a webhook for this refund is recognised. ``id`` is the gateway's
    ``rfnd_...`` once the gateway confirmed the refund; until then the refund is a *reservation* that
    counts against what can still be refunded.
    """

    ref: str
    payment_id: str
    amount: int
    currency: str
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    id: str | None = None
    booked: bool = False  # the refund's journal transaction was posted

    @property
    def is_reservation(self) -> bool:
        return self.id is None and self.status is RefundStatus.PENDING

    @property
    def holds_money(self) -> bool:
        """Counts against the captured amount (pending or processed, confirmed or reserved)."""
        return self.status is not RefundStatus.FAILED


@dataclass(slots=True)
class Order:
    """An order of one user, mirrored at the gateway as ``gateway_order_id``."""

    id: str
    user_id: str
    gateway_order_id: str
    amount: Money
    key_id: str
    created_at: datetime
    updated_at: datetime
    receipt: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    payments: list[Payment] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)

    # ---- derived amounts -------------------------------------------------------------------------
    @property
    def currency(self) -> str:
        return self.amount.currency.code

    @property
    def amount_paid(self) -> int:
        return sum(p.amount for p in self.payments if p.is_captured)

    @property
    def amount_refunded(self) -> int:
        """Refunds the gateway confirmed and that did not fail."""
        return sum(r.amount for r in self.refunds if r.id is not None and r.holds_money)

    @property
    def amount_reserved(self) -> int:
        """Refunds requested from the gateway and not yet confirmed."""
        return sum(r.amount for r in self.refunds if r.is_reservation)

    @property
    def status(self) -> OrderStatus:
        paid = self.amount_paid
        if paid == 0:
            return OrderStatus.ATTEMPTED if self.payments else OrderStatus.CREATED
        refunded = self.amount_refunded
        if refunded == 0:
            return OrderStatus.PAID
        return OrderStatus.PARTIALLY_REFUNDED if refunded < paid else OrderStatus.REFUNDED

    def payment(self, payment_id: str) -> Payment | None:
        return next((p for p in self.payments if p.id == payment_id), None)

    def refund_by_ref(self, ref: str) -> Refund | None:
        return next((r for r in self.refunds if r.ref == ref), None)

    def refund_by_id(self, refund_id: str) -> Refund | None:
        return next((r for r in self.refunds if r.id == refund_id), None)

    def refundable(self, payment_id: str) -> int:
        """What can still be refunded of a captured payment (reservations count as spent)."""
        p = self.payment(payment_id)
        if p is None or not p.is_captured:
            return 0
        spent = sum(r.amount for r in self.refunds if r.payment_id == payment_id and r.holds_money)
        return p.amount - spent

    # ---- payments -------------------------------------------------------------------------------
    def apply_payment(self, snap: PaymentSnapshot, now: datetime) -> list[JournalTransaction]:
        """Fold a payment snapshot into the order; return the money effects it newly causes.

        Applying the same snapshot twice, or an older one after a newer one, changes nothing.
        """
        if snap.order_id is not None and snap.order_id != self.gateway_order_id:
            raise InvalidState("the payment does not belong to this order.")
        if snap.currency != self.currency:
            raise InvalidState("the payment's currency differs from the order's.")
        new_status = parse_payment_status(snap.status)
        # A refunded snapshot implies a capture only if the payment was captured before.
        captured_now = new_status is PaymentStatus.CAPTURED or (
            new_status is PaymentStatus.REFUNDED and snap.captured
        )
        p = self.payment(snap.id)
        if p is None:
            p = Payment(
                id=snap.id,
                amount=snap.amount,
                currency=snap.currency,
                status=new_status,
                created_at=snap.created_at or now,
                updated_at=now,
                method=snap.method,
            )
            self.payments.append(p)
        elif payment_can_move(p.status, new_status):
            p.status = new_status
            p.updated_at = now
        if snap.method and not p.method:
            p.method = snap.method
        effects: list[JournalTransaction] = []
        if captured_now and not p.is_captured:
            p.captured_at = now
            p.fee, p.tax = snap.fee, snap.tax
            if _PAYMENT_RANK[p.status] < _PAYMENT_RANK[PaymentStatus.CAPTURED]:
                p.status = PaymentStatus.CAPTURED
            p.updated_at = now
            self.updated_at = now
            effects.extend(self._capture_effects(p, now))
        elif captured_now and p.fee == 0 and p.tax == 0 and (snap.fee or snap.tax):
            # Captured while the fee was unknown (Razorpay may send ``fee: null`` on payment.captured):
            # book the fee from the first later snapshot that knows it, once (key ``fee:<payment>``).
            p.fee, p.tax = snap.fee, snap.tax
            p.updated_at = self.updated_at = now
            effects.extend(t for t in self._capture_effects(p, now) if t.kind == "gateway_fee")
        elif p.updated_at == now:
            self.updated_at = now
        return effects

    def _capture_effects(self, p: Payment, now: datetime) -> list[JournalTransaction]:
        out = [
            JournalTransaction(
                key=f"capture:{p.id}",
                kind="capture",
                order_id=self.id,
                currency=self.currency,
                postings=(Posting(Account.GATEWAY_RECEIVABLE, Account.SALES, p.amount),),
                occurred_at=now,
                reference=p.id,
            )
        ]
        fee_net = max(0, p.fee - p.tax)
        tax = max(0, min(p.tax, p.fee))
        postings = []
        if fee_net:
            postings.append(Posting(Account.GATEWAY_FEES, Account.GATEWAY_RECEIVABLE, fee_net))
        if tax:
            postings.append(Posting(Account.GATEWAY_TAX, Account.GATEWAY_RECEIVABLE, tax))
        if postings:
            out.append(
                JournalTransaction(
                    key=f"fee:{p.id}",
                    kind="gateway_fee",
                    order_id=self.id,
                    currency=self.currency,
                    postings=tuple(postings),
                    occurred_at=now,
                    reference=p.id,
                )
            )
        return out

    def claim_capture(self, payment_id: str, now: datetime) -> bool:
        """Claim the right to capture an authorized payment; False when it is captured already.

        Called under the order's row lock before the gateway is asked to capture, so that two payments
        of one order (a customer paying twice, in two tabs) are never both captured by us: a payment
        that would take ``amount_paid`` over the order's amount is refused, and so is one while another
        payment's claim is live. A refused payment stays authorized; the gateway releases it.
        """
        p = self.payment(payment_id)
        if p is None:
            raise InvalidState("the payment is not known on this order.")
        if p.is_captured:
            return False
        if p.status is not PaymentStatus.AUTHORIZED:
            raise InvalidState(f"the payment is {p.status.value}, not authorized.")
        if self.amount_paid + p.amount > self.amount.amount:
            raise InvalidState("the order is already paid; this payment will not be captured.")
        claimed = sum(
            o.amount
            for o in self.payments
            if o.id != p.id
            and not o.is_captured
            and o.capture_requested_at is not None
            and (now - o.capture_requested_at).total_seconds() < CAPTURE_CLAIM_SECONDS
        )
        if claimed and self.amount_paid + claimed + p.amount > self.amount.amount:
            raise InvalidState("another payment of this order is being captured; retry later.")
        p.capture_requested_at = now
        p.updated_at = self.updated_at = now
        return True

    # ---- refunds --------------------------------------------------------------------------------
    def reserve_refund(self, ref: str, amount: int | None, payment_id: str | None, now: datetime) -> Refund:
        """Reserve a refund before asking the gateway, so concurrent refunds cannot exceed captures.

        ``amount`` defaults to all that is left of the payment; ``payment_id`` defaults to the
        captured payment with the most left to refund.
        """
        existing = self.refund_by_ref(ref)
        if existing is not None:
            return existing
        captured = [p for p in self.payments if p.is_captured]
        if not captured:
            raise InvalidState("the order has no captured payment to refund.")
        if payment_id is None:
            target = max(captured, key=lambda p: self.refundable(p.id))
        else:
            found = self.payment(payment_id)
            if found is None:
                raise NotFound("no payment with that id on this order.")
            if not found.is_captured:
                raise InvalidState("that payment of the order is not captured.")
            target = found
        left = self.refundable(target.id)
        if amount is None:
            if left <= 0:
                raise InvalidState("everything captured has already been refunded.")
            amount = left
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValidationError("amount must be a positive integer number of minor units.")
        Money(amount, self.amount.currency)  # step and range rules of the currency
        if amount > left:
            raise RefundExceedsCaptured(
                f"the refund of {amount} exceeds the {left} that is left to refund on the payment."
            )
        refund = Refund(
            ref=ref,
            payment_id=target.id,
            amount=amount,
            currency=self.currency,
            status=RefundStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        self.refunds.append(refund)
        self.updated_at = now
        return refund

    def release_refund(self, ref: str, now: datetime) -> None:
        """The gateway refused a reserved refund: it never happened, its amount is free again."""
        r = self.refund_by_ref(ref)
        if r is not None and r.is_reservation:
            r.status = RefundStatus.FAILED
            r.updated_at = self.updated_at = now

    def apply_refund(
        self, snap: RefundSnapshot, now: datetime, ref: str | None = None
    ) -> list[JournalTransaction]:
        """Fold a refund snapshot into the order; return the money effects it newly causes.

        The refund is matched by gateway id, else by our ``ref`` (from the API call or the refund's
        notes); otherwise it is a refund made outside the service (the dashboard) and is added.
        """
        if snap.currency != self.currency:
            raise InvalidState("the refund's currency differs from the order's.")
        new_status = parse_refund_status(snap.status)
        if ref is None:
            ref = snap.notes.get("refund_ref")  # a webhook for a refund we requested carries our ref
        r = self.refund_by_id(snap.id)
        if r is None and ref is not None:
            r = self.refund_by_ref(ref)
            if r is not None and r.id is not None and r.id != snap.id:
                r = None
        if r is None:
            p = self.payment(snap.payment_id)
            if p is None or not p.is_captured:
                raise InvalidState("the refunded payment is not captured on this order.")
            taken = ref is not None and self.refund_by_ref(ref) is not None
            r = Refund(
                ref=ref if ref is not None and not taken else f"ext_{snap.id}",
                payment_id=snap.payment_id,
                amount=snap.amount,
                currency=snap.currency,
                status=RefundStatus.PENDING,
                created_at=snap.created_at or now,
                updated_at=now,
                id=snap.id,
            )
            self.refunds.append(r)
        if r.id is None:
            if r.status is RefundStatus.FAILED:
                # We had given this reservation up (the gateway refused it, or the reconciler found no
                # trace of it), but the gateway did make the refund: its word wins, the money left.
                r.status = RefundStatus.PENDING
            r.id = snap.id
            r.amount = snap.amount
            r.updated_at = now
        if refund_can_move(r.status, new_status):
            r.status = new_status
            r.updated_at = now
        effects: list[JournalTransaction] = []
        if r.status is not RefundStatus.FAILED and not r.booked:
            r.booked = True
            effects.append(self._refund_effect(r, now, reversal=False))
        elif r.status is RefundStatus.FAILED and r.booked:
            effects.append(self._refund_effect(r, now, reversal=True))
            r.booked = False
        if effects or r.updated_at == now:
            self.updated_at = now
        if self.amount_refunded + self.amount_reserved > self.amount_paid:
            raise RefundExceedsCaptured("refunds would exceed what was captured.")
        return effects

    def _refund_effect(self, r: Refund, now: datetime, reversal: bool) -> JournalTransaction:
        assert r.id is not None
        if reversal:
            posting = Posting(Account.GATEWAY_RECEIVABLE, Account.REFUNDS, r.amount)
            key, kind = f"refund_reversal:{r.id}", "refund_reversal"
        else:
            posting = Posting(Account.REFUNDS, Account.GATEWAY_RECEIVABLE, r.amount)
            key, kind = f"refund:{r.id}", "refund"
        return JournalTransaction(
            key=key,
            kind=kind,
            order_id=self.id,
            currency=self.currency,
            postings=(posting,),
            occurred_at=now,
            reference=r.id,
        )
