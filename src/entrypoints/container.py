"""The dependency-injector container: the only composition root.

It builds each adapter and hands the ports to the application services. Tests override any provider
(``container.gateway.override(providers.Object(fake))``). Nothing here connects: engines and clients
connect lazily on first use, and ``create_app()`` decides when to build the container.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from dependency_injector import containers, providers

from adapters.auth.jwt_verifier import JwtVerifier
from adapters.persistence.engine import create_engine
from adapters.persistence.idempotency import SqlIdempotencyStore
from adapters.persistence.ledger import SqlLedger
from adapters.persistence.webhook_inbox import SqlWebhookInbox
from adapters.razorpay.gateway import RazorpayGateway
from adapters.razorpay.webhooks import RazorpayEventParser
from application.idempotency import IdempotencyService
from application.payments import PaymentService
from application.reconciler import Reconciler, ReconcilerSettings
from application.webhooks import WebhookService
from domain.clock import SystemClock
from entrypoints.settings import Settings
from entrypoints.workers import Job, StopCheck, WorkerPool

SIMULATOR_MOUNT = "/_simulator"
REAL_RAZORPAY_URL = "https://api.razorpay.com"


def gateway_base_url(settings: Settings) -> str:
    """Where the SDK sends requests: the configured server, the embedded simulator, or Razorpay."""
    if settings.razorpay_base_url is not None:
        return settings.razorpay_base_url
    if settings.uses_simulator:
        return (settings.public_url or "http://127.0.0.1:8000").rstrip("/") + SIMULATOR_MOUNT
    return REAL_RAZORPAY_URL


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)

    engine = providers.Singleton(create_engine, settings.provided.database_url)
    ledger = providers.Singleton(SqlLedger, engine)
    idempotency_store = providers.Singleton(SqlIdempotencyStore, engine)

    gateway = providers.Singleton(
        RazorpayGateway,
        key_id=settings.provided.razorpay_key_id,
        key_secret=settings.provided.razorpay_key_secret,
        base_url=providers.Callable(gateway_base_url, settings),
        timeout_s=providers.Callable(lambda s: s.razorpay_timeout_ms / 1000, settings),
        max_workers=settings.provided.razorpay_max_workers,
    )

    token_verifier = providers.Singleton(
        JwtVerifier,
        algorithms=settings.provided.jwt_algorithms,
        secret=settings.provided.jwt_secret,
        public_key=settings.provided.jwt_public_key,
        jwks_url=settings.provided.jwt_jwks_url,
        audience=settings.provided.jwt_audience,
        issuer=settings.provided.jwt_issuer,
        leeway_seconds=settings.provided.jwt_leeway_seconds,
    )

    payment_service = providers.Singleton(
        PaymentService,
        ledger=ledger,
        gateway=gateway,
        clock=clock,
        key_secret=settings.provided.razorpay_key_secret,
    )
    idempotency_service = providers.Singleton(IdempotencyService, store=idempotency_store, clock=clock)

    webhook_inbox = providers.Singleton(SqlWebhookInbox, engine)
    event_parser = providers.Singleton(RazorpayEventParser)
    webhook_service = providers.Singleton(
        WebhookService,
        ledger=ledger,
        inbox=webhook_inbox,
        parser=event_parser,
        clock=clock,
        secrets=providers.Callable(
            lambda s: [s.razorpay_webhook_secret, s.razorpay_webhook_secret_previous or ""], settings
        ),
        max_attempts=settings.provided.webhook_max_attempts,
    )
    reconciler = providers.Singleton(
        Reconciler,
        ledger=ledger,
        gateway=gateway,
        payments=payment_service,
        clock=clock,
        settings=providers.Callable(
            lambda s: ReconcilerSettings(
                min_age=timedelta(seconds=s.reconcile_min_age_s),
                max_age=timedelta(seconds=s.reconcile_max_age_s),
            ),
            settings,
        ),
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


def build_workers(container: Container) -> WorkerPool:
    """The background jobs of one instance (the inbox retrier, the reconciler, the key purge)."""
    s: Settings = container.settings()
    webhooks: WebhookService = container.webhook_service()
    reconciler: Reconciler = container.reconciler()
    idempotency: IdempotencyService = container.idempotency_service()
    retriers = [
        Job(
            f"webhook-retrier-{n}",
            s.webhook_retry_interval_ms / 1000,
            lambda stop: webhooks.process_due(should_stop=stop),
        )
        for n in range(1, s.webhook_workers + 1)
    ]
    return WorkerPool(
        [
            *retriers,
            Job(
                "reconciler",
                s.reconcile_interval_ms / 1000,
                lambda stop: reconciler.run_once(should_stop=stop),
            ),
            Job(
                "idempotency-purge", s.idempotency_purge_interval_ms / 1000, _once(idempotency.purge_expired)
            ),
        ]
    )


def _once(step: Callable[[], Awaitable[int]]) -> Callable[[StopCheck], Awaitable[int]]:
    """A step whose result is not "more work waiting": always wait for the interval after it."""

    async def run(_: StopCheck) -> int:
        await step()
        return 0

    return run
