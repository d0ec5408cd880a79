"""Razorpay webhooks (no JWT: the HMAC signature authenticates) and their admin view."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import Parameter

from application.webhooks import WebhookService
from domain.sessions import Principal
from domain.webhooks import InboxEvent
from entrypoints.http.auth import provide_principal, require_admin
from entrypoints.http.deps import container_of
from entrypoints.http.schemas import ts

JSON = "application/json"


async def provide_webhook_service(request: Request[Any, Any, Any]) -> WebhookService:
    service: WebhookService = container_of(request).webhook_service()
    return service


def event_json(e: InboxEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "eventType": e.event_type,
        "status": e.status.value,
        "attempts": e.attempts,
        "lastError": e.last_error,
        "orderId": e.order_id,
        "receivedAt": ts(e.received_at),
        "processedAt": ts(e.processed_at),
        "nextAttemptAt": ts(e.next_attempt_at),
    }


class WebhooksController(Controller):
    path = "/api/payments"
    tags = ["webhooks"]
    dependencies = {"webhooks": Provide(provide_webhook_service)}

    @post("/webhooks/razorpay", status_code=200, summary="Receive a Razorpay webhook")
    async def receive(self, request: Request[Any, Any, Any], webhooks: WebhookService) -> Response[bytes]:
        body = await request.body()  # the raw bytes: the signature is over them, never a re-serialization
        receipt = await webhooks.receive(
            body,
            request.headers.get("x-razorpay-signature"),
            request.headers.get("x-razorpay-event-id"),
        )
        return Response(
            msgspec.json.encode({"success": True, "duplicate": receipt.duplicate}),
            status_code=200,
            media_type=JSON,
        )


class WebhookAdminController(Controller):
    path = "/api/payments/admin/webhook-events"
    tags = ["webhooks"]
    dependencies = {"principal": Provide(provide_principal), "webhooks": Provide(provide_webhook_service)}

    @get("/", summary="Stored webhook events (admin)")
    async def list_events(
        self,
        principal: Principal,
        webhooks: WebhookService,
        status: str | None = Parameter(default=None, max_length=20),
        limit: int = Parameter(default=50, ge=1, le=100),
        cursor: str | None = Parameter(default=None, max_length=200),
    ) -> Response[bytes]:
        require_admin(principal)
        events, next_cursor = await webhooks.list_events(status, limit, cursor)
        return Response(
            msgspec.json.encode(
                {"success": True, "events": [event_json(e) for e in events], "nextCursor": next_cursor}
            ),
            media_type=JSON,
        )

    @post("/{event_id:str}/redrive", status_code=200, summary="Re-drive a stored webhook event (admin)")
    async def redrive(self, event_id: str, principal: Principal, webhooks: WebhookService) -> Response[bytes]:
        require_admin(principal)
        event = await webhooks.redrive(event_id)
        return Response(msgspec.json.encode({"success": True, "event": event_json(event)}), media_type=JSON)
