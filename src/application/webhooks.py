"""Receiving gateway webhooks and applying them to the ledger exactly once.

``receive`` verifies the signature over the raw bytes and commits the event to the inbox before the
caller answers 200: nothing acknowledged is ever lost. It then tries to apply the event at once; if that
fails for any reason the event stays pending and the inbox retrier applies it later with backoff, until
it ends ``dead`` after ``MAX_ATTEMPTS`` and waits for an admin to re-drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.errors import DependencyUnavailable, DomainError, NotFound, SignatureInvalid, ValidationError
from domain.ports import Clock, GatewayEventParser, Ledger, WebhookInbox
from domain.signatures import verify_webhook_signature
from domain.webhooks import HANDLED_EVENTS, MAX_ATTEMPTS, InboxEvent, InboxStatus, backoff

log = logging.getLogger(__name__)

_EVENT_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,100}$")
LEASE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    duplicate: bool


class WebhookService:
    """The webhook use cases: receive, apply, retry, list and re-drive."""

    def __init__(
        self,
        ledger: Ledger,
        inbox: WebhookInbox,
        parser: GatewayEventParser,
        clock: Clock,
        secrets: Sequence[str],
        max_attempts: int = MAX_ATTEMPTS,
        inline_budget_s: float = 2.0,
    ) -> None:
        self._ledger = ledger
        self._inbox = inbox
        self._parser = parser
        self._clock = clock
        self._secrets = [s for s in secrets if s]
        self._max_attempts = max_attempts
        self._inline_budget_s = inline_budget_s
        self._inline: set[asyncio.Task[InboxStatus | None]] = set()

    async def receive(self, body: bytes, signature: str | None, event_id: str | None) -> Receipt:
        """Verify, store durably, then try to apply. Raises ``SignatureInvalid`` with nothing stored."""
        if not verify_webhook_signature(body, signature, self._secrets):
            raise SignatureInvalid("the webhook signature does not verify.")
        if event_id is not None and not _EVENT_ID.match(event_id):
            # A signed delivery is never refused for its id (Razorpay would retry it for 24 h and then
            # drop it): it is keyed by its body instead.
            log.warning("webhook with a malformed X-Razorpay-Event-Id; keyed by its body")
            event_id = None
        # Without an event id, the body itself identifies the delivery (a retry has the same bytes).
        eid = event_id or "body_" + hashlib.sha256(body).hexdigest()[:40]
        now = self._clock.now()
        try:
            event_type = self._parser.parse(body).type
        except ValidationError:
            event_type = "unparseable"
        stored = await self._inbox.store(
            InboxEvent(id=eid, event_type=event_type[:100], body=body, received_at=now, next_attempt_at=now)
        )
        if not stored:
            return Receipt(eid, duplicate=True)
        # The event is durable: apply it now, but never keep Razorpay waiting (it gives up after 5 s and
        # retries). An apply that takes longer goes on in the background; the retrier covers a crash.
        task = asyncio.create_task(self.process(eid), name=f"webhook:{eid}")
        self._inline.add(task)
        task.add_done_callback(self._inline_done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=self._inline_budget_s)
        return Receipt(eid, duplicate=False)

    def _inline_done(self, task: asyncio.Task[InboxStatus | None]) -> None:
        self._inline.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("webhook not applied inline; left for the retrier", exc_info=task.exception())

    async def drain(self, timeout_s: float) -> None:
        """Wait for inline applications still running (shutdown); what is left, the retrier applies."""
        if self._inline:
            await asyncio.wait(set(self._inline), timeout=timeout_s)

    async def process(self, event_id: str) -> InboxStatus | None:
        """Lease and apply one pending event; None when somebody else holds it or it is not pending."""
        event = await self._inbox.claim(event_id, self._clock.now(), LEASE_SECONDS)
        if event is None:
            return None
        return await self._attempt(event)

    async def process_due(self, limit: int = 5, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Apply the pending events that are due (the inbox retrier's step). Returns how many it tried.

        Small batches, so that the lease (60 s) comfortably outlasts the batch; ``should_stop`` ends it
        between events on shutdown (the events left keep their lease and come back when it ends).
        """
        events = await self._inbox.claim_due(self._clock.now(), limit, LEASE_SECONDS)
        tried = 0
        for event in events:
            if should_stop():
                break
            await self._attempt(event)
            tried += 1
        return tried

    async def _attempt(self, event: InboxEvent) -> InboxStatus:
        attempts = event.attempts + 1
        try:
            status, order_id, note = await self._apply(event)
        except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
            now = self._clock.now()
            # An outage of a dependency says nothing about the event: it is retried (at most hourly)
            # until the dependency is back, never dead-lettered for it.
            transient = isinstance(exc, DependencyUnavailable)
            dead = attempts >= self._max_attempts and not transient
            reason = exc.detail if isinstance(exc, DomainError) else type(exc).__name__
            await self._finish(
                event,
                InboxStatus.DEAD if dead else InboxStatus.PENDING,
                now,
                attempts=attempts,
                next_attempt_at=None if dead else now + backoff(attempts),
                last_error=reason[:500],
            )
            log.warning("webhook %s attempt %d failed: %s", event.id, attempts, reason)
            return InboxStatus.DEAD if dead else InboxStatus.PENDING
        await self._finish(
            event, status, self._clock.now(), attempts=attempts, last_error=note, order_id=order_id
        )
        return status

    async def _finish(self, event: InboxEvent, status: InboxStatus, now: datetime, **outcome: Any) -> None:
        written = await self._inbox.finish(event.id, status, now, lease_token=event.lease_token, **outcome)
        if not written:
            # Our lease lapsed and another worker holds the event now: its outcome stands. (The ledger
            # is right either way: applying an event twice changes the books once.)
            log.info("webhook %s: lease lost before finishing; the new holder's outcome stands", event.id)

    async def _apply(self, event: InboxEvent) -> tuple[InboxStatus, str | None, str | None]:
        try:
            parsed = self._parser.parse(event.body)
        except ValidationError as exc:
            # Retrying cannot fix a malformed body: dead-letter it at once for an admin to look at.
            return InboxStatus.DEAD, None, exc.detail
        if parsed.type not in HANDLED_EVENTS:
            return InboxStatus.IGNORED, None, f"event type {parsed.type!r} is not handled"
        now = self._clock.now()
        async with self._ledger.unit_of_work() as uow:
            order = None
            if parsed.gateway_order_id:
                order = await uow.get_order_by_gateway_id(parsed.gateway_order_id, for_update=True)
            elif parsed.refund is not None:
                order = await uow.get_order_by_payment_id(parsed.refund.payment_id, for_update=True)
            if order is None:
                return InboxStatus.IGNORED, None, "no order of this service matches the event"
            if parsed.payment is not None:
                for txn in order.apply_payment(parsed.payment, now):
                    await uow.post(txn)
            if parsed.refund is not None:
                ref = parsed.refund.notes.get("refund_ref")
                for txn in order.apply_refund(parsed.refund, now, ref=ref):
                    await uow.post(txn)
            await uow.save_order(order)
            await uow.commit()
        return InboxStatus.PROCESSED, order.id, None

    # ---- admin ----------------------------------------------------------------------------------
    async def list_events(
        self, status: str | None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[InboxEvent], str | None]:
        if status is not None:
            try:
                wanted: InboxStatus | None = InboxStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in InboxStatus)
                raise ValidationError(f"status must be one of {allowed}.") from None
        else:
            wanted = None
        if not 1 <= limit <= 100:
            raise ValidationError("limit must be between 1 and 100.")
        return await self._inbox.list(wanted, limit, cursor)

    async def redrive(self, event_id: str) -> InboxEvent:
        """Put an event back in the queue and try it once now."""
        event = await self._inbox.redrive(event_id, self._clock.now())
        if event is None:
            raise NotFound("webhook event not found.")
        try:
            await self.process(event_id)
        except Exception:
            log.warning("re-driven webhook %s failed again", event_id, exc_info=True)
        return await self._inbox.get(event_id) or event
