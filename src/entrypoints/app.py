"""The Litestar application factory. Build the app only here; nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from entrypoints.container import SIMULATOR_MOUNT, Container, build_container, build_workers
from entrypoints.http.health import live, live_head, ready, ready_head
from entrypoints.http.payments import PaymentsController
from entrypoints.http.problems import add_request_id_header, handle_exception
from entrypoints.http.webhooks import WebhookAdminController, WebhooksController
from entrypoints.settings import Settings, load_settings

log = logging.getLogger("payments")


def create_app(settings: Settings | None = None, container: Container | None = None) -> Litestar:
    """Build the app. ``settings`` default to the environment; tests may pass a prepared container."""
    settings = settings or load_settings()
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.auto_migrate:
            from adapters.persistence.migrations import upgrade

            await upgrade(settings.database_url)
        app.state.shutting_down = False
        workers = build_workers(container) if settings.workers_enabled else None
        if workers is not None:
            workers.start()
        app.state.workers = workers
        try:
            yield
        finally:
            app.state.shutting_down = True
            if workers is not None:
                await workers.stop(settings.shutdown_timeout_ms / 1000)
            await container.webhook_service().drain(settings.shutdown_timeout_ms / 1000)
            for name, close in (("gateway", container.gateway().close), ("ledger", container.ledger().close)):
                try:
                    await close()
                except Exception:
                    log.exception("closing %s failed", name)

    handlers: list[Any] = [
        PaymentsController,
        WebhooksController,
        WebhookAdminController,
        live,
        live_head,
        ready,
        ready_head,
    ]
    if settings.uses_simulator:
        from adapters.razorpay.simulator import create_simulator_mount

        handlers.append(
            create_simulator_mount(SIMULATOR_MOUNT, settings.razorpay_key_id, settings.razorpay_key_secret)
        )

    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers={Exception: handle_exception},
        before_send=[add_request_id_header],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Payments API", version="0.1.0", path="/schema"),
        debug=False,
    )
    app.state.container = container
    app.state.settings = settings
    app.state.shutting_down = False
    return app
