"""Integration fixtures: a migrated ledger on SQLite and on PostgreSQL for every test.

Each test gets a database of its own: on SQLite a copy of a migrated template file in ``tmp_path``, on
PostgreSQL a ``CREATE DATABASE ... TEMPLATE`` copy of this run's migrated database. Every PostgreSQL
database of the run is named ``payments_test_<pid>_<random>...`` and dropped at the end of the session.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence.engine import create_engine
from adapters.persistence.idempotency import SqlIdempotencyStore
from adapters.persistence.ledger import SqlLedger
from adapters.persistence.migrations import upgrade_sync
from domain.money import Money, currency_of
from domain.payments import Order, Payment, PaymentStatus, Refund, RefundStatus
from tests.support.databases import (
    PostgresServer,
    create_database,
    drop_database,
    drop_databases_with_prefix,
    run_sync,
    unique_database_name,
)

ENGINES = ["sqlite", "postgresql"]
_counter = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_kind") == "postgresql":
            item.add_marker(pytest.mark.postgres)


@dataclass(frozen=True)
class RunDatabase:
    server_url: str
    name: str  # the migrated template; every database of the run starts with this name
    url: str


@pytest.fixture(scope="session")
def pg_run_database(postgres_server: PostgresServer) -> Iterator[RunDatabase]:
    name = unique_database_name()
    url = run_sync(lambda: create_database(postgres_server.url, name))
    try:
        upgrade_sync(url)
        yield RunDatabase(postgres_server.url, name, url)
    finally:
        run_sync(lambda: drop_databases_with_prefix(postgres_server.url, name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_sync(f"sqlite:///{path}")
    return path


@pytest.fixture(params=ENGINES)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of this test's own."""
    if db_kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "ledger.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    run: RunDatabase = request.getfixturevalue("pg_run_database")
    name = f"{run.name}_c{next(_counter)}"
    url = await create_database(run.server_url, name, template=run.name)
    try:
        yield url
    finally:
        await drop_database(run.server_url, name)


@pytest.fixture
async def empty_database_url(
    db_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A database of this test's own that was never migrated."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    run: RunDatabase = request.getfixturevalue("pg_run_database")
    name = f"{run.name}_e{next(_counter)}"
    url = await create_database(run.server_url, name)
    try:
        yield url
    finally:
        await drop_database(run.server_url, name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=10, max_overflow=15)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def ledger(engine: AsyncEngine) -> SqlLedger:
    return SqlLedger(engine)


@pytest.fixture
def idempotency_store(engine: AsyncEngine) -> SqlIdempotencyStore:
    return SqlIdempotencyStore(engine)


T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def make_order() -> Callable[..., Order]:
    """A factory of orders: ``make_order(paid=True, refunds=[(amount, status, confirmed)], ...)``."""
    seq = itertools.count(1)

    def build(
        *,
        user_id: str = "user_1",
        amount: int = 50_000,
        currency: str = "INR",
        created_at: datetime = T0,
        paid: bool = False,
        refunds: list[tuple[int, RefundStatus, bool]] | None = None,
    ) -> Order:
        n = next(seq)
        order = Order(
            id=f"ord_{n:04d}_{created_at.timestamp():.0f}_{user_id}",
            user_id=user_id,
            gateway_order_id=f"order_gw_{n:04d}_{created_at.timestamp():.0f}_{user_id}",
            amount=Money(amount, currency_of(currency)),
            key_id="rzp_test_key",
            created_at=created_at,
            updated_at=created_at,
            receipt=f"rcpt_{n}",
            notes={"purpose": "test", "n": str(n)},
        )
        if paid:
            order.payments.append(
                Payment(
                    id=f"pay_{order.id}",
                    amount=amount,
                    currency=currency,
                    status=PaymentStatus.CAPTURED,
                    created_at=created_at,
                    updated_at=created_at + timedelta(seconds=5),
                    method="card",
                    fee=236,
                    tax=36,
                    captured_at=created_at + timedelta(seconds=5),
                )
            )
        for i, (r_amount, status, confirmed) in enumerate(refunds or []):
            order.refunds.append(
                Refund(
                    ref=f"rf_{order.id}_{i}",
                    payment_id=f"pay_{order.id}",
                    amount=r_amount,
                    currency=currency,
                    status=status,
                    created_at=created_at + timedelta(minutes=1 + i),
                    updated_at=created_at + timedelta(minutes=2 + i),
                    id=f"rfnd_{order.id}_{i}" if confirmed else None,
                    booked=confirmed and status is not RefundStatus.FAILED,
                )
            )
        return order

    return build
