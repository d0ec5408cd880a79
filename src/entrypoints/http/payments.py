"""The payments routes of API.md (prefix ``/api/payments``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import Parameter

from application.idempotency import IdempotencyService
from application.payments import PaymentService
from domain.errors import DomainError
from domain.idempotency import StoredResponse, fingerprint
from domain.sessions import Principal
from entrypoints.http.auth import provide_principal, require_admin
from entrypoints.http.deps import provide_idempotency_service, provide_payment_service
from entrypoints.http.problems import render_domain_error, request_id_of
from entrypoints.http.schemas import (
    CreateOrderRequest,
    CreateRefundRequest,
    VerifyPaymentRequest,
    decode_body,
    order_json,
    refund_json,
)

JSON = "application/json"


def _json(status: int, payload: dict[str, Any]) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=JSON)


async def _idempotent(
    request: Request[Any, Any, Any],
    principal: Principal,
    idempotency: IdempotencyService,
    endpoint: str,
    raw: bytes,
    produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> Response[bytes]:
    """Run ``produce`` under the request's Idempotency-Key, if it has one (Stripe's semantics)."""

    async def handler() -> StoredResponse:
        status, payload = await produce()
        return StoredResponse(status, msgspec.json.encode(payload), JSON)

    key = request.headers.get("idempotency-key")
    if key is None:
        stored = await handler()
        return Response(stored.body, status_code=stored.status, media_type=stored.content_type)
    rid = request_id_of(request.scope)

    def render(exc: DomainError) -> StoredResponse:
        return render_domain_error(exc, rid)

    result = await idempotency.run(
        scope=f"{principal.user_id}|{endpoint}",
        key=key,
        fingerprint=fingerprint(request.method, request.url.path, raw),
        handler=handler,
        render_error=render,
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(
        result.response.body,
        status_code=result.response.status,
        media_type=result.response.content_type,
        headers=headers,
    )


class PaymentsController(Controller):
    path = "/api/payments"
    tags = ["payments"]
    dependencies = {
        "principal": Provide(provide_principal),
        "payments": Provide(provide_payment_service),
        "idempotency": Provide(provide_idempotency_service),
    }

    @post("/orders", status_code=201, summary="Create an order")
    async def create_order(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        payments: PaymentService,
        idempotency: IdempotencyService,
    ) -> Response[bytes]:
        raw = await request.body()
        body = decode_body(raw, CreateOrderRequest)

        async def produce() -> tuple[int, dict[str, Any]]:
            order = await payments.create_order(
                principal.user_id, body.amount, body.currency, body.receipt, body.notes
            )
            return 201, {"success": True, "order": order_json(order)}

        return await _idempotent(request, principal, idempotency, "POST /orders", raw, produce)

    @get("/orders", summary="List the caller's orders")
    async def list_orders(
        self,
        principal: Principal,
        payments: PaymentService,
        limit: int = Parameter(default=20, ge=1, le=100),
        cursor: str | None = Parameter(default=None, max_length=200),
    ) -> Response[bytes]:
        page = await payments.list_orders(principal.user_id, limit, cursor)
        return _json(
            200,
            {"success": True, "orders": [order_json(o) for o in page.orders], "nextCursor": page.next_cursor},
        )

    @get("/orders/{order_id:str}", summary="Get an order (owner or admin)")
    async def get_order(
        self, order_id: str, principal: Principal, payments: PaymentService
    ) -> Response[bytes]:
        order = await payments.get_order(order_id, principal.user_id, principal.is_admin)
        return _json(200, {"success": True, "order": order_json(order)})

    @post("/verify", status_code=200, summary="Verify a Checkout payment and capture it")
    async def verify(
        self, request: Request[Any, Any, Any], principal: Principal, payments: PaymentService
    ) -> Response[bytes]:
        body = decode_body(await request.body(), VerifyPaymentRequest)
        order = await payments.verify_payment(
            principal.user_id, body.razorpay_order_id, body.razorpay_payment_id, body.razorpay_signature
        )
        return _json(200, {"success": True, "order": order_json(order)})

    @post("/orders/{order_id:str}/refunds", status_code=201, summary="Refund an order (admin)")
    async def refund(
        self,
        order_id: str,
        request: Request[Any, Any, Any],
        principal: Principal,
        payments: PaymentService,
        idempotency: IdempotencyService,
    ) -> Response[bytes]:
        require_admin(principal)
        raw = await request.body()
        body = decode_body(raw or b"{}", CreateRefundRequest)
        key = request.headers.get("idempotency-key")

        async def produce() -> tuple[int, dict[str, Any]]:
            result = await payments.refund(
                order_id, principal.user_id, body.amount, body.payment_id, body.notes, idempotency_key=key
            )
            return 201, {"success": True, "refund": refund_json(result.refund)}

        return await _idempotent(request, principal, idempotency, "POST /orders/{id}/refunds", raw, produce)

    @get("/admin/ledger/balance", summary="Trial balance of the ledger (admin)")
    async def ledger_balance(self, principal: Principal, payments: PaymentService) -> Response[bytes]:
        require_admin(principal)
        balances = await payments.balances()
        return _json(
            200,
            {
                "success": True,
                "balances": {
                    currency: {"accounts": accounts, "total": sum(accounts.values())}
                    for currency, accounts in sorted(balances.items())
                },
            },
        )
