"""Payment use cases: create an order, verify a Checkout payment, refund, read orders and balances.

Every state change runs in one ledger unit of work under the order's row lock. No database transaction is
held open while the gateway is called: a refund is *reserved* first (so concurrent refunds cannot exceed
what was captured), then sent to the gateway with an idempotency key, then confirmed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from domain.errors import (
    GatewayRejected,
    InvalidState,
    NotFound,
    SignatureInvalid,
    ValidationError,
)
from domain.gateway import PaymentSnapshot, RefundSnapshot
from domain.journal import JournalTransaction
from domain.money import Money
from domain.payments import Order, PaymentStatus, Refund, RefundStatus
from domain.ports import Clock, Ledger, LedgerUnitOfWork, OrderPage, PaymentGateway
from domain.signatures import verify_payment_signature

MAX_RECEIPT = 40
MAX_NOTES = 15
MAX_NOTE_LENGTH = 256
MAX_PAGE = 100


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex}"


def validate_notes(notes: Mapping[str, object] | None) -> dict[str, str]:
    """Razorpay's notes rules: at most 15 string pairs of at most 256 characters each."""
    if notes is None:
        return {}
    if len(notes) > MAX_NOTES:
        raise ValidationError(f"notes may have at most {MAX_NOTES} keys.")
    out: dict[str, str] = {}
    for k, v in notes.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValidationError("notes must map strings to strings.")
        if not k or len(k) > MAX_NOTE_LENGTH or len(v) > MAX_NOTE_LENGTH:
            raise ValidationError(f"note keys and values must be at most {MAX_NOTE_LENGTH} characters.")
        out[k] = v
    return out


def validate_receipt(receipt: str | None) -> str | None:
    if receipt is None:
        return None
    if len(receipt) > MAX_RECEIPT:
        raise ValidationError(f"receipt must be at most {MAX_RECEIPT} characters.")
    return receipt


def refund_ref_for(user_id: str, order_id: str, idempotency_key: str | None) -> str:
    """Our refund reference, sent as ``X-Refund-Idempotency`` (>= 10 chars of ``[A-Za-z0-9_-]``).

    Derived from the client's Idempotency-Key when there is one, so a retried request re-sends the same
    reference and the gateway cannot refund twice.
    """
    if idempotency_key is None:
        return f"rf_{uuid.uuid4().hex}"
    digest = hashlib.sha256(f"{user_id}\0{order_id}\0{idempotency_key}".encode()).hexdigest()
    return f"rf_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class _Change:
    uow: LedgerUnitOfWork
    order: Order

    async def post(self, transactions: Iterable[JournalTransaction]) -> None:
        for txn in transactions:
            await self.uow.post(txn)


@dataclass(frozen=True, slots=True)
class RefundResult:
    order: Order
    refund: Refund


class PaymentService:
    """The payment use cases. Needs only ports; built by the container."""

    def __init__(self, ledger: Ledger, gateway: PaymentGateway, clock: Clock, key_secret: str) -> None:
        self._ledger = ledger
        self._gateway = gateway
        self._clock = clock
        self._key_secret = key_secret

    # ---- orders ---------------------------------------------------------------------------------
    async def create_order(
        self,
        user_id: str,
        amount: object,
        currency: object,
        receipt: str | None = None,
        notes: Mapping[str, object] | None = None,
    ) -> Order:
        """Create the order at the gateway, then store it. Invalid input reaches neither."""
        money = Money.order_amount(amount, currency)
        receipt = validate_receipt(receipt)
        clean_notes = validate_notes(notes)
        order_id = new_order_id()
        gw = await self._gateway.create_order(money, receipt, clean_notes)
        now = self._clock.now()
        order = Order(
            id=order_id,
            user_id=user_id,
            gateway_order_id=gw.id,
            amount=money,
            key_id=self._gateway.key_id,
            created_at=now,
            updated_at=now,
            receipt=receipt,
            notes=clean_notes,
        )
        async with self._ledger.unit_of_work() as uow:
            await uow.add_order(order)
            await uow.commit()
        return order

    async def get_order(self, order_id: str, user_id: str, is_admin: bool = False) -> Order:
        """An order its owner (or an admin) may see; anybody else gets NotFound, never Forbidden."""
        async with self._ledger.unit_of_work(read_only=True) as uow:
            order = await uow.get_order(order_id)
        if order is None or (order.user_id != user_id and not is_admin):
            raise NotFound("order not found.")
        return order

    async def list_orders(self, user_id: str, limit: int = 20, cursor: str | None = None) -> OrderPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}.")
        return await self._ledger.list_orders(user_id, limit, cursor)

    # ---- payments -------------------------------------------------------------------------------
    async def verify_payment(
        self, user_id: str, gateway_order_id: str, payment_id: str, signature: str
    ) -> Order:
        """Verify a Checkout callback and capture the payment if it is only authorized.

        The signature is checked against the gateway order id we stored for the caller's order. Any
        number of concurrent calls for one payment capture it once in the journal.
        """
        async with self._ledger.unit_of_work(read_only=True) as uow:
            order = await uow.get_order_by_gateway_id(gateway_order_id)
        if order is None or order.user_id != user_id:
            raise NotFound("order not found.")
        if not verify_payment_signature(order.gateway_order_id, payment_id, signature, self._key_secret):
            raise SignatureInvalid("the payment signature does not verify.")
        snap = await self._gateway.fetch_payment(payment_id)
        if snap.order_id != order.gateway_order_id:
            raise InvalidState("the payment does not belong to this order.")
        if snap.status == PaymentStatus.AUTHORIZED:
            snap = await self.capture_authorized(order.id, snap)
        order = await self.apply_payment_snapshot(order.id, snap)
        payment = order.payment(payment_id)
        if payment is None or not payment.is_captured:
            state = payment.status.value if payment else snap.status
            raise InvalidState(f"the payment is {state}, not captured.")
        return order

    async def capture_authorized(self, order_id: str, snap: PaymentSnapshot) -> PaymentSnapshot:
        """Capture an authorized payment of the order at the gateway, unless that would charge twice.

        The claim is taken under the order's row lock and committed before the gateway call, so no
        database transaction is held across the network and two payments of one order are never both
        captured. Returns the gateway's snapshot after the capture (or the given one if there was
        nothing to do).
        """
        refused: InvalidState | None = None
        async with self._changing(order_id) as change:
            await change.post(change.order.apply_payment(snap, self._clock.now()))
            try:
                claimed = change.order.claim_capture(snap.id, self._clock.now())
            except InvalidState as exc:
                refused = exc  # the attempt is still recorded (committed) when its capture is refused
        if refused is not None:
            raise refused
        if not claimed:
            return snap
        return await self._gateway.capture_payment(snap.id, snap.amount, snap.currency)

    async def apply_payment_snapshot(self, order_id: str, snap: PaymentSnapshot) -> Order:
        """Fold what the gateway says about a payment into the order, exactly once."""
        async with self._changing(order_id) as change:
            await change.post(change.order.apply_payment(snap, self._clock.now()))
        return change.order

    # ---- refunds --------------------------------------------------------------------------------
    async def refund(
        self,
        order_id: str,
        user_id: str,
        amount: int | None = None,
        payment_id: str | None = None,
        notes: Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Refund all that is left, or part of it, of a captured payment of the order."""
        clean_notes = validate_notes(notes)
        if len(clean_notes) > MAX_NOTES - 2:
            raise ValidationError(f"refund notes may have at most {MAX_NOTES - 2} keys.")
        ref = refund_ref_for(user_id, order_id, idempotency_key)
        async with self._changing(order_id) as change:
            order = change.order
            refund = order.reserve_refund(ref, amount, payment_id, self._clock.now())
        if refund.id is not None:
            return RefundResult(order, refund)  # an earlier attempt with this key got through
        if refund.status is RefundStatus.FAILED:
            raise InvalidState("this refund request was refused by the gateway before.")
        gateway_notes = {**clean_notes, "refund_ref": ref, "order_id": order.id}
        try:
            snap = await self._gateway.refund_payment(refund.payment_id, refund.amount, ref, gateway_notes)
        except GatewayRejected:
            await self.release_refund(order_id, ref)
            raise
        # GatewayUnavailable propagates: the reservation stays, because the refund may have happened.
        # A retry with the same Idempotency-Key re-sends the same reference; the reconciler settles
        # the rest.
        order = await self.apply_refund_snapshot(order_id, snap, ref=ref)
        confirmed = order.refund_by_ref(ref) or order.refund_by_id(snap.id)
        assert confirmed is not None
        return RefundResult(order, confirmed)

    async def apply_refund_snapshot(
        self, order_id: str, snap: RefundSnapshot, ref: str | None = None
    ) -> Order:
        """Fold what the gateway says about a refund into the order, exactly once."""
        async with self._changing(order_id) as change:
            await change.post(change.order.apply_refund(snap, self._clock.now(), ref=ref))
        return change.order

    async def release_refund(self, order_id: str, ref: str) -> None:
        """Give up a refund reservation the gateway never made (its amount is refundable again)."""
        async with self._changing(order_id) as change:
            change.order.release_refund(ref, self._clock.now())

    @asynccontextmanager
    async def _changing(self, order_id: str) -> AsyncIterator[_Change]:
        """One state change of an order: its row lock, then save and commit when the block succeeds."""
        async with self._ledger.unit_of_work() as uow:
            order = await uow.get_order(order_id, for_update=True)
            if order is None:
                raise NotFound("order not found.")
            yield _Change(uow, order)
            await uow.save_order(order)
            await uow.commit()

    # ---- reports --------------------------------------------------------------------------------
    async def balances(self) -> dict[str, dict[str, int]]:
        return await self._ledger.balances()
