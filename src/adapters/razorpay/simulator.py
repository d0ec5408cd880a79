"""A Razorpay-compatible simulator: the same HTTP API the SDK speaks, in memory, plus a Checkout step,
forced status changes and run-time fault injection.

Endpoints (paths are relative to wherever the app is served or mounted; the SDK's ``base_url`` points at
that root, without ``/v1``):

* Razorpay API (HTTP Basic auth with ``key_id``/``key_secret``):
  ``POST/GET /v1/orders``, ``GET /v1/orders/{id}``, ``GET /v1/orders/{id}/payments``,
  ``GET /v1/payments/{id}``, ``POST /v1/payments/{id}/capture``, ``POST /v1/payments/{id}/refund``
  (honours ``X-Refund-Idempotency``), ``GET /v1/payments/{id}/refunds``, ``GET /v1/refunds/{id}``.
* Checkout (no auth, it stands for the browser): ``POST /v1/checkout/pay``
  ``{"order_id", "method"?, "outcome"?: "authorized"|"captured"|"failed"}``. Success answers
  ``{"razorpay_order_id", "razorpay_payment_id", "razorpay_signature"}``; ``failed`` answers HTTP 400
  with Razorpay's error JSON whose ``metadata`` holds ``payment_id`` and ``order_id`` (as Checkout's
  failure handler receives it).
* Control (no auth): ``GET/POST/DELETE /_simulator/faults`` and ``POST /_simulator/payments/{id}/status``
  ``{"status": "authorized"|"captured"|"failed"}``.

Faults (``POST /_simulator/faults`` ``{"mode", "count"?, "latencyMs"?, "paths"?}``) apply to ``/v1/``
requests, except the Checkout step unless ``paths`` names it; ``count`` requests (default: all until
cleared); ``paths`` is a path prefix or a list of prefixes relative to the simulator root. Modes:
``error_500`` (Razorpay SERVER_ERROR JSON), ``html_502`` (a proxy's HTML page), ``latency`` (async sleep,
then the normal answer), ``drop`` (the response starts, a few body bytes go out and the connection is
closed: ``requests`` raises ``ChunkedEncodingError``; uvicorn logs "ASGI callable returned without
completing response").

Fees on capture: ``fee`` = 2 % of the amount plus 18 % GST on that, ``tax`` = the GST part (Razorpay's
``fee`` includes ``tax``), all integers (floor).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, delete, get, post
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers import ASGIRouteHandler, asgi
from litestar.params import FromPath
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from domain.money import CURRENCIES
from domain.signatures import payment_signature

__all__ = [
    "SimulatorState",
    "create_simulator_app",
    "create_simulator_mount",
    "run_simulator",
]

_ALNUM = string.ascii_letters + string.digits
_IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{10,64}$")
_FAULT_MODES = ("none", "error_500", "html_502", "latency", "drop")
_CHECKOUT_PREFIX = "/v1/checkout/"

_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------------------------------
# Errors in Razorpay's shape
# --------------------------------------------------------------------------------------------------


class RazorpayApiError(Exception):
    """An error answered in Razorpay's JSON shape."""

    def __init__(
        self,
        description: str,
        *,
        status: int = 400,
        code: str = "BAD_REQUEST_ERROR",
        field_name: str | None = None,
        source: str = "business",
        step: str = "payment_initiation",
        reason: str = "input_validation_failed",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.body = _error_body(description, code, field_name, source, step, reason, metadata)


def _error_body(
    description: str,
    code: str = "BAD_REQUEST_ERROR",
    field_name: str | None = None,
    source: str = "business",
    step: str = "payment_initiation",
    reason: str = "input_validation_failed",
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "description": description,
        "source": source,
        "step": step,
        "reason": reason,
        "metadata": dict(metadata or {}),
    }
    if field_name is not None:
        error["field"] = field_name
    return {"error": error}


def _auth_failed_body() -> dict[str, Any]:
    return _error_body("Authentication failed", source="NA", step="NA", reason="NA")


def _server_error_body() -> dict[str, Any]:
    return _error_body(
        "The server encountered an error. The incident has been reported to admins.",
        code="SERVER_ERROR",
        source="NA",
        step="NA",
        reason="server_error",
    )


def _on_api_error(_: Request[Any, Any, Any], exc: RazorpayApiError) -> Response[Any]:
    return Response(exc.body, status_code=exc.status)


def _on_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 404:
        return Response(_error_body("The requested URL was not found on the server."), status_code=400)
    if exc.status_code == 405:
        return Response(_error_body("The requested URL was not found on the server."), status_code=400)
    if exc.status_code >= 500:
        return Response(_server_error_body(), status_code=500)
    return Response(_error_body("The request is invalid."), status_code=exc.status_code)


def _on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return Response(_server_error_body(), status_code=500)


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultConfig:
    mode: str = "none"
    remaining: int | None = None  # None: until cleared
    latency_ms: int = 0
    paths: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "count": self.remaining,
            "latencyMs": self.latency_ms,
            "paths": list(self.paths),
        }


@dataclass
class _RefundToken:
    payment_id: str
    amount: int | None
    refund_id: str


@dataclass
class SimulatorState:
    """Everything the simulator knows. Handlers never await while holding ``lock``."""

    key_id: str
    key_secret: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_tokens: dict[str, _RefundToken] = field(default_factory=dict)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def take_fault(self, path: str) -> FaultConfig | None:
        """The fault to apply to this request, if any (and count it)."""
        with self.lock:
            f = self.faults
            if f.mode == "none" or not path.startswith("/v1/"):
                return None
            if f.paths:
                if not any(path.startswith(p) for p in f.paths):
                    return None
            elif path.startswith(_CHECKOUT_PREFIX):
                return None
            taken = FaultConfig(f.mode, None, f.latency_ms, f.paths)
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0:
                    self.faults = FaultConfig()
            return taken


def _new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALNUM) for _ in range(14))


def _now() -> int:
    return int(time.time())


def _notes_out(notes: Mapping[str, str]) -> dict[str, str] | list[Any]:
    return dict(notes) if notes else []  # Razorpay answers [] for empty notes


def _fees(amount: int) -> tuple[int, int]:
    base = amount * 2 // 100
    tax = base * 18 // 100
    return base + tax, tax


# --------------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------------


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise RazorpayApiError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise RazorpayApiError("The request body must be a JSON object.")
    return body


def _amount(value: object, currency: str, field_name: str = "amount") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RazorpayApiError(f"The {field_name} must be an integer.", field_name=field_name)
    minimum = CURRENCIES[currency].minimum if currency in CURRENCIES else 100
    if value < minimum:
        exp = CURRENCIES[currency].exponent if currency in CURRENCIES else 2
        shown = f"{minimum / 10**exp:.{exp}f}" if exp else str(minimum)
        raise RazorpayApiError(f"The amount must be at least {currency} {shown}", field_name=field_name)
    return value


def _notes_in(value: object) -> dict[str, str]:
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise RazorpayApiError("The notes field must be an object.", field_name="notes")
    if len(value) > 15:
        raise RazorpayApiError(
            "Number of fields in notes should be less than or equal to 15", field_name="notes"
        )
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str | int) or isinstance(v, bool) or len(str(v)) > 256:
            raise RazorpayApiError("The notes values must be strings of at most 256 characters.")
        out[str(k)] = str(v)
    return out


def _lookup(table: Mapping[str, dict[str, Any]], entity_id: str, prefix: str) -> dict[str, Any]:
    if not re.fullmatch(rf"{prefix}_[A-Za-z0-9]{{14}}", entity_id):
        raise RazorpayApiError(f"{entity_id[:64]} is not a valid id")
    found = table.get(entity_id)
    if found is None:
        raise RazorpayApiError("The id provided does not exist")
    return found


def _collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"entity": "collection", "count": len(items), "items": items}


def _sim(request: Request[Any, Any, Any]) -> SimulatorState:
    state: SimulatorState = request.app.state.simulator
    return state


def _ok(body: Any) -> Response[Any]:
    return Response(body, status_code=200)


# --------------------------------------------------------------------------------------------------
# Entity mutations (call with the lock held)
# --------------------------------------------------------------------------------------------------


def _mark_captured(s: SimulatorState, p: dict[str, Any]) -> None:
    fee, tax = _fees(p["amount"])
    p.update(status="captured", captured=True, fee=fee, tax=tax)
    order = s.orders.get(p["order_id"] or "")
    if order is not None:
        order["amount_paid"] = order["amount"]
        order["amount_due"] = 0
        order["status"] = "paid"


def _mark_failed(p: dict[str, Any]) -> None:
    p.update(
        status="failed",
        captured=False,
        error_code="BAD_REQUEST_ERROR",
        error_description="Payment failed",
        error_source="customer",
        error_step="payment_authorization",
        error_reason="payment_failed",
    )


def _new_payment(s: SimulatorState, order: dict[str, Any], method: str) -> dict[str, Any]:
    pid = _new_id("pay")
    p: dict[str, Any] = {
        "id": pid,
        "entity": "payment",
        "amount": order["amount"],
        "currency": order["currency"],
        "status": "authorized",
        "order_id": order["id"],
        "invoice_id": None,
        "international": False,
        "method": method,
        "amount_refunded": 0,
        "refund_status": None,
        "captured": False,
        "description": None,
        "card_id": _new_id("card") if method == "card" else None,
        "bank": "HDFC" if method == "netbanking" else None,
        "wallet": None,
        "vpa": "success@razorpay" if method == "upi" else None,
        "email": "void@razorpay.com",
        "contact": "+919000090000",
        "notes": [],
        "fee": None,
        "tax": None,
        "error_code": None,
        "error_description": None,
        "error_source": None,
        "error_step": None,
        "error_reason": None,
        "acquirer_data": {},
        "created_at": _now(),
    }
    s.payments[pid] = p
    order["attempts"] += 1
    if order["status"] == "created":
        order["status"] = "attempted"
    return p


# --------------------------------------------------------------------------------------------------
# Razorpay API handlers
# --------------------------------------------------------------------------------------------------


@post("/v1/orders", status_code=200)
async def create_order(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await _json_body(request)
    currency = body.get("currency", "INR")
    if not isinstance(currency, str) or currency not in CURRENCIES:
        raise RazorpayApiError("Currency is not supported", field_name="currency")
    amount = _amount(body.get("amount"), currency)
    receipt = body.get("receipt")
    if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
        raise RazorpayApiError("The receipt may not be greater than 40 characters.", field_name="receipt")
    notes = _notes_in(body.get("notes"))
    s = _sim(request)
    order: dict[str, Any] = {
        "id": _new_id("order"),
        "entity": "order",
        "amount": amount,
        "amount_paid": 0,
        "amount_due": amount,
        "currency": currency,
        "receipt": receipt,
        "offer_id": None,
        "status": "created",
        "attempts": 0,
        "notes": _notes_out(notes),
        "created_at": _now(),
    }
    with s.lock:
        s.orders[order["id"]] = order
        return _ok(dict(order))


def _page_params(request: Request[Any, Any, Any]) -> tuple[int, int]:
    """Razorpay's ``count`` (1..100, default 10) and ``skip`` query parameters."""
    try:
        count = int(request.query_params.get("count", 10))
        skip = int(request.query_params.get("skip", 0))
    except ValueError:
        raise RazorpayApiError("The count and skip must be integers.") from None
    return max(1, min(count, 100)), max(skip, 0)


@get("/v1/orders")
async def list_orders(request: Request[Any, Any, Any]) -> Response[Any]:
    count, skip = _page_params(request)
    s = _sim(request)
    with s.lock:
        newest = sorted(s.orders.values(), key=lambda o: o["created_at"], reverse=True)
        return _ok(_collection([dict(o) for o in newest[skip : skip + count]]))


@get("/v1/orders/{order_id:str}")
async def fetch_order(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        return _ok(dict(_lookup(s.orders, order_id, "order")))


@get("/v1/orders/{order_id:str}/payments")
async def fetch_order_payments(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        _lookup(s.orders, order_id, "order")
        items = [dict(p) for p in s.payments.values() if p["order_id"] == order_id]
        return _ok(_collection(items))


@get("/v1/payments/{payment_id:str}")
async def fetch_payment(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        return _ok(dict(_lookup(s.payments, payment_id, "pay")))


@post("/v1/payments/{payment_id:str}/capture", status_code=200)
async def capture_payment(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[Any]:
    body = await _json_body(request)
    s = _sim(request)
    with s.lock:
        p = _lookup(s.payments, payment_id, "pay")
        amount = _amount(body.get("amount"), p["currency"])
        currency = body.get("currency")
        if p["status"] in ("captured", "refunded") or p["captured"]:
            raise RazorpayApiError("This payment has already been captured")
        if p["status"] != "authorized":
            raise RazorpayApiError(
                "Only payments which have been authorized and not yet captured can be captured"
            )
        if currency is not None and currency != p["currency"]:
            raise RazorpayApiError(
                "The currency should be same as the payment currency", field_name="currency"
            )
        if amount != p["amount"]:
            raise RazorpayApiError(
                "Capture amount must be equal to the amount authorized", field_name="amount"
            )
        _mark_captured(s, p)
        return _ok(dict(p))


@post("/v1/payments/{payment_id:str}/refund", status_code=200)
async def refund_payment(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[Any]:
    body = await _json_body(request)
    token = request.headers.get("x-refund-idempotency")
    if token is not None and not _IDEMPOTENCY_KEY_RE.match(token):
        raise RazorpayApiError("The idempotency key format is invalid.")
    s = _sim(request)
    with s.lock:
        p = _lookup(s.payments, payment_id, "pay")
        requested = body.get("amount")
        if token is not None and token in s.refund_tokens:
            seen = s.refund_tokens[token]
            if seen.payment_id != payment_id or seen.amount != requested:
                raise RazorpayApiError(
                    "Different request with the same idempotency key has already been processed.",
                    source="NA",
                    step="NA",
                    reason="NA",
                )
            return _ok(dict(s.refunds[seen.refund_id]))
        if not p["captured"]:
            raise RazorpayApiError("The payment status should be captured for action to be taken")
        left = p["amount"] - p["amount_refunded"]
        if left <= 0:
            raise RazorpayApiError("The payment has been fully refunded already")
        amount = left if requested is None else _amount(requested, p["currency"])
        if amount > left:
            raise RazorpayApiError(
                "The refund amount provided is greater than amount captured", field_name="amount"
            )
        notes = _notes_in(body.get("notes"))
        receipt = body.get("receipt")
        refund = {
            "id": _new_id("rfnd"),
            "entity": "refund",
            "amount": amount,
            "currency": p["currency"],
            "payment_id": payment_id,
            "notes": _notes_out(notes),
            "receipt": receipt if isinstance(receipt, str) else None,
            "acquirer_data": {"arn": None},
            "created_at": _now(),
            "batch_id": None,
            "status": "processed",
            "speed_processed": "normal",
            "speed_requested": "normal",
        }
        s.refunds[refund["id"]] = refund
        if token is not None:
            s.refund_tokens[token] = _RefundToken(payment_id, requested, refund["id"])
        p["amount_refunded"] += amount
        full = p["amount_refunded"] >= p["amount"]
        p["refund_status"] = "full" if full else "partial"
        if full:
            p["status"] = "refunded"
        return _ok(dict(refund))


@get("/v1/payments/{payment_id:str}/refunds")
async def fetch_payment_refunds(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[Any]:
    count, skip = _page_params(request)
    s = _sim(request)
    with s.lock:
        _lookup(s.payments, payment_id, "pay")
        mine = sorted(
            (r for r in s.refunds.values() if r["payment_id"] == payment_id), key=lambda r: r["created_at"]
        )
        return _ok(_collection([dict(r) for r in mine[skip : skip + count]]))


@get("/v1/refunds/{refund_id:str}")
async def fetch_refund(request: Request[Any, Any, Any], refund_id: FromPath[str]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        return _ok(dict(_lookup(s.refunds, refund_id, "rfnd")))


# --------------------------------------------------------------------------------------------------
# Checkout and control handlers
# --------------------------------------------------------------------------------------------------


@post("/v1/checkout/pay", status_code=200)
async def checkout_pay(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await _json_body(request)
    order_id = body.get("order_id")
    method = body.get("method", "card")
    outcome = body.get("outcome", "authorized")
    if not isinstance(order_id, str):
        raise RazorpayApiError("The order_id field is required.", field_name="order_id")
    if method not in ("card", "upi", "netbanking", "wallet"):
        raise RazorpayApiError("The method is invalid.", field_name="method")
    if outcome not in ("authorized", "captured", "failed"):
        raise RazorpayApiError("The outcome must be authorized, captured or failed.")
    s = _sim(request)
    with s.lock:
        order = _lookup(s.orders, order_id, "order")
        if order["status"] == "paid":
            raise RazorpayApiError("Order has already been paid")
        p = _new_payment(s, order, method)
        if outcome == "captured":
            _mark_captured(s, p)
        elif outcome == "failed":
            _mark_failed(p)
            raise RazorpayApiError(
                "Payment failed",
                source="customer",
                step="payment_authorization",
                reason="payment_failed",
                metadata={"payment_id": p["id"], "order_id": order_id},
            )
    return _ok(
        {
            "razorpay_order_id": order_id,
            "razorpay_payment_id": p["id"],
            "razorpay_signature": payment_signature(order_id, p["id"], s.key_secret),
        }
    )


@get("/_simulator/faults")
async def get_faults(request: Request[Any, Any, Any]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        return _ok({"faults": s.faults.as_json()})


@post("/_simulator/faults", status_code=200)
async def set_faults(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await _json_body(request)
    mode = body.get("mode")
    count = body.get("count")
    latency = body.get("latencyMs", 0)
    paths = body.get("paths")
    if mode not in _FAULT_MODES:
        raise RazorpayApiError(f"mode must be one of {', '.join(_FAULT_MODES)}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise RazorpayApiError("count must be a positive integer")
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 600_000:
        raise RazorpayApiError("latencyMs must be an integer between 0 and 600000")
    if paths is None:
        prefixes: tuple[str, ...] = ()
    elif isinstance(paths, str):
        prefixes = (paths,)
    elif isinstance(paths, list) and all(isinstance(p, str) for p in paths):
        prefixes = tuple(paths)
    else:
        raise RazorpayApiError("paths must be a path prefix or a list of them")
    s = _sim(request)
    with s.lock:
        s.faults = FaultConfig(mode, count, latency, prefixes) if mode != "none" else FaultConfig()
        return _ok({"faults": s.faults.as_json()})


@delete("/_simulator/faults", status_code=200)
async def clear_faults(request: Request[Any, Any, Any]) -> Response[Any]:
    s = _sim(request)
    with s.lock:
        s.faults = FaultConfig()
        return _ok({"faults": s.faults.as_json()})


@post("/_simulator/payments/{payment_id:str}/status", status_code=200)
async def force_payment_status(request: Request[Any, Any, Any], payment_id: FromPath[str]) -> Response[Any]:
    body = await _json_body(request)
    status = body.get("status")
    if status not in ("authorized", "captured", "failed"):
        raise RazorpayApiError("status must be authorized, captured or failed")
    s = _sim(request)
    with s.lock:
        p = _lookup(s.payments, payment_id, "pay")
        if status == "captured":
            _mark_captured(s, p)
        elif status == "failed":
            _mark_failed(p)
        else:
            p.update(status="authorized", captured=False, fee=None, tax=None)
        return _ok(dict(p))


# --------------------------------------------------------------------------------------------------
# Middleware: faults first (they stand for the network in front of Razorpay), then authentication
# --------------------------------------------------------------------------------------------------


async def _send_raw(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    *,
    length: int | None = None,
    more: bool = False,
) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body) if length is None else length).encode()),
        ],
    }
    await send(start)
    chunk: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": more}
    await send(chunk)


async def _send_json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    await _send_raw(send, status, b"application/json", json.dumps(body).encode())


def _fault_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        state: SimulatorState = scope["litestar_app"].state.simulator
        fault = state.take_fault(scope["path"])
        if fault is None:
            await app(scope, receive, send)
        elif fault.mode == "latency":
            await asyncio.sleep(fault.latency_ms / 1000)
            await app(scope, receive, send)
        elif fault.mode == "error_500":
            await _send_json(send, 500, _server_error_body())
        elif fault.mode == "html_502":
            await _send_raw(send, 502, b"text/html", _HTML_502)
        else:  # drop: promise a body, send a few bytes, and return without completing the response
            await _send_raw(send, 200, b"application/json", b'{"id": "', length=4096, more=True)

    return middleware


def _auth_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == ScopeType.HTTP else ""
        if path.startswith("/v1/") and not path.startswith(_CHECKOUT_PREFIX):
            state: SimulatorState = scope["litestar_app"].state.simulator
            header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not _authorized(header, state.key_id, state.key_secret):
                await _send_json(send, 401, _auth_failed_body())
                return
        await app(scope, receive, send)

    return middleware


def _authorized(header: bytes, key_id: str, key_secret: str) -> bool:
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return False
    expected = f"{key_id}:{key_secret}".encode()
    return hmac.compare_digest(given, expected)


# --------------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------------


def create_simulator_app(key_id: str, key_secret: str) -> Litestar:
    """The simulator as a Litestar app. Its state is ``app.state.simulator`` (a :class:`SimulatorState`).

    Works served on its own or mounted inside another app (all paths are relative to its root; it
    needs no lifespan events).
    """
    app = Litestar(
        route_handlers=[
            create_order,
            list_orders,
            fetch_order,
            fetch_order_payments,
            fetch_payment,
            capture_payment,
            refund_payment,
            fetch_payment_refunds,
            fetch_refund,
            checkout_pay,
            get_faults,
            set_faults,
            clear_faults,
            force_payment_status,
        ],
        middleware=[_fault_middleware, _auth_middleware],
        exception_handlers={
            RazorpayApiError: _on_api_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        debug=False,
    )
    app.state.simulator = SimulatorState(key_id=key_id, key_secret=key_secret)
    return app


def create_simulator_mount(path: str, key_id: str, key_secret: str) -> ASGIRouteHandler:
    """A route handler that mounts a new simulator at ``path`` inside another Litestar app.

    The inner app gets a shallow copy of the scope with its own ``state``, so that it neither sees
    nor overwrites the outer app's per-connection state.
    """
    simulator = create_simulator_app(key_id, key_secret)

    @asgi(path, is_mount=True, copy_scope=False)
    async def razorpay_simulator(scope: Scope, receive: Receive, send: Send) -> None:
        inner: Any = {**scope, "state": {}}
        await simulator(inner, receive, send)

    return razorpay_simulator


def run_simulator(host: str, port: int, key_id: str, key_secret: str) -> None:
    """Serve the simulator with uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_simulator_app(key_id, key_secret), host=host, port=port, log_level="info")
