"""Small ``Provide`` functions: handlers get services from the container kept in app state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request

from application.idempotency import IdempotencyService
from application.payments import PaymentService

if TYPE_CHECKING:
    from entrypoints.container import Container


def container_of(request: Request[Any, Any, Any]) -> Container:
    container: Container = request.app.state.container
    return container


async def provide_payment_service(request: Request[Any, Any, Any]) -> PaymentService:
    service: PaymentService = container_of(request).payment_service()
    return service


async def provide_idempotency_service(request: Request[Any, Any, Any]) -> IdempotencyService:
    service: IdempotencyService = container_of(request).idempotency_service()
    return service
