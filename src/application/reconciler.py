"""The reconciler: asks the gateway about orders whose outcome we may have missed.

Customers close the browser before the Checkout callback, webhooks get lost or disabled, and a refund
call can time out after the gateway did it. The reconciler looks at orders still ``created``/``attempted``
after a while, and at refund reservations the gateway never confirmed, and applies what the gateway says
through the same exactly-once paths as ``/verify`` and webhooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from application.payments import PaymentService
from domain.errors import GatewayRejected, GatewayUnavailable, InvalidState, LedgerUnavailable
from domain.payments import PaymentStatus
from domain.ports import Clock, Ledger, PaymentGateway

log = logging.getLogger(__name__)


# After this many orders in a row for which the gateway failed, the batch ends (it is likely down).
MAX_GATEWAY_FAILURES_IN_A_ROW = 3


@dataclass(frozen=True, slots=True)
class ReconcilerSettings:
    min_age: timedelta = timedelta(minutes=15)  # leave fresh orders to /verify and webhooks
    max_age: timedelta = timedelta(days=3)  # give up on orders nobody paid for
    reservation_timeout: timedelta = timedelta(minutes=30)  # unconfirmed refund with no trace: released
    lease_seconds: float = 300.0
    batch: int = 20


class Reconciler:
    def __init__(
        self,
        ledger: Ledger,
        gateway: PaymentGateway,
        payments: PaymentService,
        clock: Clock,
        settings: ReconcilerSettings | None = None,
    ) -> None:
        self._ledger = ledger
        self._gateway = gateway
        self._payments = payments
        self._clock = clock
        self._s = settings or ReconcilerSettings()

    async def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Reconcile one batch of leased orders; return how many were looked at.

        One order's failure never holds up the others. The batch ends early when the ledger is down,
        when the gateway failed for several orders in a row, or when ``should_stop`` says the worker
        is shutting down (the orders left keep their lease and come back when it ends).
        """
        now = self._clock.now()
        ids = await self._ledger.orders_to_reconcile(
            created_before=now - self._s.min_age,
            created_after=now - self._s.max_age,
            now=now,
            lease_seconds=self._s.lease_seconds,
            limit=self._s.batch,
        )
        done = gateway_failures = 0
        for order_id in ids:
            if should_stop():
                break
            done += 1
            try:
                await self.reconcile_order(order_id)
                gateway_failures = 0
            except LedgerUnavailable:
                log.warning("reconciler: the ledger is unavailable; will try again later")
                break
            except GatewayUnavailable:
                gateway_failures += 1
                log.warning("reconciler: the gateway failed for order %s", order_id)
                if gateway_failures >= MAX_GATEWAY_FAILURES_IN_A_ROW:
                    break
            except Exception:  # one bad order must not stop the reconciler for every other one
                log.exception("reconciler: order %s not reconciled", order_id)
        return done

    async def reconcile_order(self, order_id: str) -> None:
        """Apply what the gateway knows of one order's payments and unconfirmed refunds.

        Two passes: first every payment the gateway settled (captured, failed, refunded), and only then
        the authorized ones, so that a payment the gateway captured but we never recorded makes the
        order paid *before* another authorized payment of it could be captured.
        """
        async with self._ledger.unit_of_work(read_only=True) as uow:
            order = await uow.get_order(order_id)
        if order is None:
            return
        snapshots = await self._gateway.fetch_order_payments(order.gateway_order_id)
        settled = [s for s in snapshots if s.status != PaymentStatus.AUTHORIZED]
        authorized = [s for s in snapshots if s.status == PaymentStatus.AUTHORIZED]
        for snap in settled:
            order = await self._payments.apply_payment_snapshot(order_id, snap)
        for snap in authorized:
            # The customer paid and the callback never came: capture, as /verify would have
            # (never a second payment of an order that is paid already).
            try:
                captured = await self._payments.capture_authorized(order_id, snap)
            except (InvalidState, GatewayRejected) as exc:
                log.info("reconciler: payment %s of order %s not captured: %s", snap.id, order_id, exc.detail)
                captured = snap
            order = await self._payments.apply_payment_snapshot(order_id, captured)
        for reservation in [r for r in order.refunds if r.is_reservation]:
            found = None
            for refund in await self._gateway.fetch_payment_refunds(reservation.payment_id):
                if refund.notes.get("refund_ref") == reservation.ref:
                    found = refund
                    break
            if found is not None:
                await self._payments.apply_refund_snapshot(order_id, found, ref=reservation.ref)
            elif self._clock.now() - reservation.created_at > self._s.reservation_timeout:
                await self._payments.release_refund(order_id, reservation.ref)
