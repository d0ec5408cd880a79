"""The payment gateway port on the official Razorpay SDK (``razorpay`` 2.0.x).

Facts about the SDK this adapter is built around (see ``razorpay/client.py``):

* It is synchronous ``requests``. Calls run in a bounded :class:`ThreadPoolExecutor`, and each worker
  thread owns its own ``razorpay.Client`` and ``requests.Session`` (a session is not thread-safe).
* It has no default timeout. Every call passes ``timeout=`` (the SDK forwards extra keyword arguments
  to ``requests``), and the session also sets it as a default, so no request can hang forever.
* ``enable_retry`` is never turned on: it would send POSTs (order creation, capture) again.
* ``payment.capture`` writes into a shared default ``data`` dict, and ``payment.refund(id, 100)`` sends
  a bare ``100``: every call here passes a fresh dict.
* ``Client.request`` ``print()``s to stdout whenever ``requests`` raises (timeout, reset, and an HTML
  body, because ``requests``' ``JSONDecodeError`` is a ``RequestException`` too). Redirecting
  ``sys.stdout`` would be process-global and race with other threads, and shadowing ``print`` in the
  SDK module would patch a third-party module for the whole process. Instead each client gets a
  :class:`_GuardedSession` that classifies the HTTP exchange *before* the SDK sees it: transport
  errors, 5xx, 429, authentication failures and non-JSON bodies are raised as :class:`_Unavailable`,
  which is not a ``requests`` exception, so the SDK's ``except`` blocks (and their prints) never run.
  The SDK only ever sees JSON answers with a 2xx or 4xx status.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import razorpay
import requests
from razorpay.errors import BadRequestError, GatewayError, ServerError

from domain.errors import GatewayRejected, GatewayUnavailable
from domain.gateway import GatewayOrder, PaymentSnapshot, RefundSnapshot
from domain.money import Money

__all__ = [
    "MalformedEntity",
    "RazorpayGateway",
    "order_from_entity",
    "payment_from_entity",
    "refund_from_entity",
    "safe_gateway_detail",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Ids are formatted into URL paths by the SDK without escaping: refuse anything that could change the
# path ("../", "?", "/") before it reaches the SDK.
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# Razorpay's rule for X-Refund-Idempotency.
_IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{10,64}$")

_DEFAULT_REJECTION = "The payment gateway rejected the request."
_MAX_DETAIL = 200


# --------------------------------------------------------------------------------------------------
# Entity parsing (shared with the webhook adapter)
# --------------------------------------------------------------------------------------------------


class MalformedEntity(ValueError):
    """A gateway entity does not have the shape or types Razorpay documents."""


def _req_str(d: Mapping[str, object], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise MalformedEntity(f"{key} must be a non-empty string")
    return v


def _opt_str(d: Mapping[str, object], key: str) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise MalformedEntity(f"{key} must be a string or null")
    return v


def _int(d: Mapping[str, object], key: str, default: int | None = None) -> int:
    """An integer amount; floats, strings and booleans are refused (no float ever becomes money)."""
    v = d.get(key)
    if v is None:
        if default is None:
            raise MalformedEntity(f"{key} is required")
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedEntity(f"{key} must be an integer")
    if v < 0:
        raise MalformedEntity(f"{key} must not be negative")
    return v


def _timestamp(d: Mapping[str, object], key: str = "created_at") -> datetime | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedEntity(f"{key} must be unix seconds")
    return datetime.fromtimestamp(v, UTC)


def _notes(d: Mapping[str, object]) -> dict[str, str]:
    """Razorpay sends ``[]`` for empty notes. Values are strings; other scalars are stringified."""
    v = d.get("notes")
    if v is None or v == []:
        return {}
    if not isinstance(v, Mapping):
        raise MalformedEntity("notes must be an object")
    out: dict[str, str] = {}
    for k, val in v.items():
        if not isinstance(k, str):
            raise MalformedEntity("notes keys must be strings")
        if isinstance(val, str):
            out[k] = val
        elif val is None or isinstance(val, int | float | bool):
            out[k] = "" if val is None else str(val)
        else:
            raise MalformedEntity("notes values must be strings")
    return out


def _check_entity(d: object, kind: str) -> Mapping[str, object]:
    if not isinstance(d, Mapping):
        raise MalformedEntity(f"a {kind} entity must be a JSON object")
    entity = d.get("entity")
    if entity is not None and entity != kind:
        raise MalformedEntity(f"expected a {kind} entity, got {entity!r}")
    return d


def payment_from_entity(d: object) -> PaymentSnapshot:
    """A Razorpay payment entity (API response or webhook ``payload.payment.entity``) as a snapshot.

    Branch on ``status``, not on ``captured``: ``captured`` may be true on an ``authorized`` event.
    When ``captured`` is absent it is derived from ``status``. Old payloads carry ``service_tax``
    instead of ``tax``. Raises :class:`MalformedEntity` on a wrong shape or a non-integer amount.
    """
    e = _check_entity(d, "payment")
    status = _req_str(e, "status").lower()
    captured = e.get("captured")
    if captured is None:
        captured = status in ("captured", "refunded")
    if not isinstance(captured, bool):
        raise MalformedEntity("captured must be a boolean")
    tax_key = "tax" if e.get("tax") is not None else "service_tax"
    return PaymentSnapshot(
        id=_req_str(e, "id"),
        order_id=_opt_str(e, "order_id"),
        amount=_int(e, "amount"),
        currency=_req_str(e, "currency"),
        status=status,
        captured=captured,
        method=_opt_str(e, "method"),
        fee=_int(e, "fee", 0),
        tax=_int(e, tax_key, 0),
        amount_refunded=_int(e, "amount_refunded", 0),
        error_code=_opt_str(e, "error_code"),
        created_at=_timestamp(e),
    )


def refund_from_entity(d: object) -> RefundSnapshot:
    """A Razorpay refund entity as a snapshot.

    A refund without ``status`` (some SDK collection samples) is taken as ``pending``: it is neither
    known to be processed nor known to have failed.
    """
    e = _check_entity(d, "refund")
    status = _opt_str(e, "status")
    return RefundSnapshot(
        id=_req_str(e, "id"),
        payment_id=_req_str(e, "payment_id"),
        amount=_int(e, "amount"),
        currency=_req_str(e, "currency"),
        status=(status or "pending").lower(),
        notes=_notes(e),
        created_at=_timestamp(e),
    )


def order_from_entity(d: object) -> GatewayOrder:
    """A Razorpay order entity as a :class:`GatewayOrder`."""
    e = _check_entity(d, "order")
    return GatewayOrder(
        id=_req_str(e, "id"),
        amount=_int(e, "amount"),
        currency=_req_str(e, "currency"),
        status=_req_str(e, "status").lower(),
        receipt=_opt_str(e, "receipt"),
    )


def _collection_items(d: object) -> list[object]:
    if not isinstance(d, Mapping) or not isinstance(d.get("items"), list):
        raise MalformedEntity("expected a collection with items")
    items: list[object] = d["items"]
    return items


# --------------------------------------------------------------------------------------------------
# Safe error details
# --------------------------------------------------------------------------------------------------

_REDACTIONS = (
    re.compile(r"rzp_(?:test|live)_[A-Za-z0-9]+", re.IGNORECASE),  # API key ids
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # e-mail addresses
    re.compile(r"(?<![A-Za-z0-9])\d(?:[ -]?\d){11,18}(?![A-Za-z0-9])"),  # card-number-like digit runs
    re.compile(r"[A-Za-z0-9+/=_-]{24,}"),  # long opaque tokens: secrets, signatures, JWT parts
)


def safe_gateway_detail(raw: object) -> str:
    """The gateway's reason made safe for a client: one printable line, no key or token, bounded."""
    text = raw if isinstance(raw, str) else ""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    for pattern in _REDACTIONS:
        text = pattern.sub("[redacted]", text)
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1].rstrip() + "…"
    return text or _DEFAULT_REJECTION


# --------------------------------------------------------------------------------------------------
# Transport guard
# --------------------------------------------------------------------------------------------------


class _Unavailable(Exception):
    """The HTTP exchange failed or answered nothing the SDK should interpret.

    Deliberately not a ``requests`` exception, so that ``razorpay.Client.request`` does not catch it
    (and does not ``print()``): it reaches :meth:`RazorpayGateway._invoke` untouched.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _GuardedSession(requests.Session):
    """A ``requests.Session`` that enforces a timeout and turns every unusable answer into
    :class:`_Unavailable` before the SDK parses it."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout_s)
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.Timeout as exc:
            raise _Unavailable(f"timeout: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise _Unavailable(f"transport: {type(exc).__name__}") from exc
        status = response.status_code
        if status in (401, 403):
            # Our credentials are wrong or revoked: a configuration fault of ours, not an invalid
            # request by the client. Every call will fail alike, so the breaker should see it.
            logger.error("razorpay refused the API credentials (HTTP %s)", status)
            raise _Unavailable(f"authentication failed: HTTP {status}")
        if status >= 500 or status == 429:
            raise _Unavailable(f"HTTP {status}")
        if status != 204:
            try:
                response.json()
            except ValueError as exc:  # HTML from a proxy, truncated body, ...
                raise _Unavailable(f"HTTP {status} with a non-JSON body") from exc
        return response


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class RazorpayGateway:
    """``domain.ports.PaymentGateway`` on the official Razorpay SDK.

    ``base_url`` is given like the SDK's own (``https://api.razorpay.com``, without ``/v1``); ``None``
    means the real Razorpay API. ``timeout_s`` is the connect and the read timeout of each HTTP request;
    a whole call (including the wait for a free worker) is abandoned after ``2 * timeout_s + 1`` s.
    """

    def __init__(
        self,
        key_id: str,
        key_secret: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        max_workers: int = 8,
    ) -> None:
        if not key_id or not key_secret:
            raise ValueError("Razorpay key id and key secret are required")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError("timeout_s must be a positive number")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._key_id = key_id
        self._key_secret = key_secret
        self._base_url = base_url.rstrip("/") if base_url else None
        self._timeout_s = float(timeout_s)
        self._deadline_s = 2 * self._timeout_s + 1.0
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="razorpay")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._closed = False

    @property
    def key_id(self) -> str:
        return self._key_id

    # -- plumbing ---------------------------------------------------------------------------------
    def _client(self) -> Any:
        """This worker thread's own SDK client (created on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            session = _GuardedSession(self._timeout_s)
            options: dict[str, Any] = {}
            if self._base_url is not None:
                options["base_url"] = self._base_url
            client = razorpay.Client(session=session, auth=(self._key_id, self._key_secret), **options)
            # Never client.enable_retry(True): it re-sends POSTs (orders, captures).
            self._local.client = client
            with self._sessions_lock:
                self._sessions.append(session)
        return client

    def _invoke(self, op: str, fn: Callable[[Any], T]) -> T:
        """Run one SDK call in this worker thread and translate every failure into a domain error."""
        try:
            return fn(self._client())
        except BadRequestError as exc:
            raise GatewayRejected(safe_gateway_detail(str(exc))) from None
        except _Unavailable as exc:
            logger.warning("razorpay %s: gateway unavailable (%s)", op, exc.reason)
            raise GatewayUnavailable() from None
        except (GatewayError, ServerError) as exc:
            logger.warning("razorpay %s: gateway error (%s)", op, type(exc).__name__)
            raise GatewayUnavailable() from None
        except requests.RequestException as exc:  # defensive: the session should have caught it
            logger.warning("razorpay %s: transport error (%s)", op, type(exc).__name__)
            raise GatewayUnavailable() from None
        except MalformedEntity as exc:
            logger.warning("razorpay %s: malformed answer (%s)", op, exc)
            raise GatewayUnavailable() from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # An answer the SDK could not interpret (e.g. JSON that is not an object).
            logger.warning("razorpay %s: unexpected answer (%s)", op, type(exc).__name__)
            raise GatewayUnavailable() from None

    async def _run(self, op: str, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise GatewayUnavailable()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._invoke, op, fn)
        except RuntimeError:  # executor shut down concurrently
            raise GatewayUnavailable() from None
        try:
            return await asyncio.wait_for(future, self._deadline_s)
        except TimeoutError:
            # The worker may still finish the call; the outcome of a POST is then unknown, which the
            # caller treats like any other unavailability (and reconciliation settles later).
            logger.warning("razorpay %s: no answer within %.1f s", op, self._deadline_s)
            raise GatewayUnavailable() from None

    @staticmethod
    def _check_id(value: str, what: str) -> None:
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise GatewayRejected(f"The {what} id is not valid.")

    # -- the port -----------------------------------------------------------------------------------
    async def create_order(
        self, amount: Money, receipt: str | None, notes: Mapping[str, str]
    ) -> GatewayOrder:
        data: dict[str, Any] = {"amount": amount.amount, "currency": amount.currency.code}
        if receipt is not None:
            data["receipt"] = receipt
        data["notes"] = dict(notes)
        timeout = self._timeout_s
        return await self._run(
            "create_order", lambda c: order_from_entity(c.order.create(data=data, timeout=timeout))
        )

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        self._check_id(payment_id, "payment")
        timeout = self._timeout_s
        return await self._run(
            "fetch_payment",
            lambda c: payment_from_entity(c.payment.fetch(payment_id, {}, timeout=timeout)),
        )

    async def capture_payment(self, payment_id: str, amount: int, currency: str) -> PaymentSnapshot:
        self._check_id(payment_id, "payment")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount must be a positive integer of minor units")
        timeout = self._timeout_s

        def capture(c: Any) -> PaymentSnapshot:
            # A fresh dict every time: capture() writes "amount" into the dict it is given.
            return payment_from_entity(
                c.payment.capture(payment_id, amount, data={"currency": currency}, timeout=timeout)
            )

        try:
            return await self._run("capture_payment", capture)
        except GatewayRejected:
            # "This payment has already been captured" (or a lost answer to our own earlier capture):
            # if the gateway now shows the payment captured, the capture is done.
            snapshot = await self.fetch_payment(payment_id)
            if snapshot.status == "captured":
                return snapshot
            raise

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        self._check_id(payment_id, "payment")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount must be a positive integer of minor units")
        if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise ValueError("idempotency_key must be 10-64 characters of [A-Za-z0-9_-]")
        timeout = self._timeout_s
        notes_copy = dict(notes)

        def refund(c: Any) -> RefundSnapshot:
            # Always a dict with "amount" (a bare int would be sent as the body), fresh every call.
            return refund_from_entity(
                c.payment.refund(
                    payment_id,
                    {"amount": amount, "notes": dict(notes_copy)},
                    headers={"X-Refund-Idempotency": idempotency_key},
                    timeout=timeout,
                )
            )

        return await self._run("refund_payment", refund)

    async def fetch_refund(self, refund_id: str) -> RefundSnapshot:
        self._check_id(refund_id, "refund")
        timeout = self._timeout_s
        return await self._run(
            "fetch_refund", lambda c: refund_from_entity(c.refund.fetch(refund_id, {}, timeout=timeout))
        )

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        self._check_id(gateway_order_id, "order")
        timeout = self._timeout_s

        def fetch(c: Any) -> list[PaymentSnapshot]:
            # GET /v1/orders/{id}/payments
            answer = c.order.payments(gateway_order_id, {}, timeout=timeout)
            return [payment_from_entity(item) for item in _collection_items(answer)]

        return await self._run("fetch_order_payments", fetch)

    async def fetch_payment_refunds(self, payment_id: str) -> list[RefundSnapshot]:
        self._check_id(payment_id, "payment")
        timeout = self._timeout_s

        def fetch(c: Any) -> list[RefundSnapshot]:
            # GET /v1/payments/{id}/refunds, page by page (at most 100 each; a fresh dict every call:
            # the SDK's default one is shared)
            out: list[RefundSnapshot] = []
            while True:
                answer = c.payment.fetch_multiple_refund(
                    payment_id, {"count": 100, "skip": len(out)}, timeout=timeout
                )
                page = [refund_from_entity(item) for item in _collection_items(answer)]
                out.extend(page)
                if len(page) < 100 or len(out) >= 10_000:
                    return out

        return await self._run("fetch_payment_refunds", fetch)

    async def close(self) -> None:
        """Stop taking calls, let running ones finish (bounded by their timeouts), close sessions."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
