"""A database that cannot answer is ``LedgerUnavailable`` (503), quickly; broken invariants are not."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import exc

from adapters.persistence.engine import create_engine, is_unavailable, normalize_url
from adapters.persistence.idempotency import SqlIdempotencyStore
from adapters.persistence.ledger import SqlLedger
from domain.errors import LedgerUnavailable

DEAD_PG = "postgresql://postgres@127.0.0.1:1/postgres"


async def test_ledger_on_a_dead_postgres_server_raises_ledger_unavailable_quickly() -> None:
    ledger = SqlLedger(create_engine(DEAD_PG, connect_timeout_s=2.0))
    started = time.monotonic()
    try:
        with pytest.raises(LedgerUnavailable):
            await ledger.ping()
        with pytest.raises(LedgerUnavailable):
            async with ledger.unit_of_work() as uow:
                await uow.get_order("ord_1")
        with pytest.raises(LedgerUnavailable):
            await ledger.list_orders("user_1", 10, None)
        with pytest.raises(LedgerUnavailable):
            await ledger.balances()
        store = SqlIdempotencyStore(ledger.engine)
        with pytest.raises(LedgerUnavailable):
            await store.begin("s", "k", "fp", datetime(2026, 1, 1, tzinfo=UTC), 60)
    finally:
        await ledger.close()
    assert time.monotonic() - started < 5.0


async def test_ledger_unavailable_detail_does_not_leak_the_driver_message() -> None:
    ledger = SqlLedger(create_engine(DEAD_PG, connect_timeout_s=2.0))
    try:
        with pytest.raises(LedgerUnavailable) as info:
            await ledger.ping()
    finally:
        await ledger.close()
    assert "127.0.0.1" not in info.value.detail
    assert info.value.code == "service_unavailable"
    assert info.value.__cause__ is not None  # the real cause stays available for the server's logs


async def test_unreachable_sqlite_file_raises_ledger_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    ledger = SqlLedger(create_engine(f"sqlite:///{blocker}/ledger.db"))
    try:
        with pytest.raises(LedgerUnavailable):
            await ledger.ping()
    finally:
        await ledger.close()
        await asyncio.sleep(0.1)  # let aiosqlite's worker thread report its failed connect to this loop


def test_integrity_errors_are_not_mistaken_for_unavailability() -> None:
    integrity = exc.IntegrityError("INSERT ...", {}, Exception("CHECK constraint failed"))
    operational = exc.OperationalError("SELECT 1", {}, Exception("database is locked"))
    assert not is_unavailable(integrity)
    assert not is_unavailable(integrity, connecting=True)
    assert is_unavailable(operational)
    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(TimeoutError())
    assert not is_unavailable(ValueError("bug"))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///var/payments.db", "sqlite+aiosqlite:///var/payments.db"),
        ("sqlite+aiosqlite:////abs/p.db", "sqlite+aiosqlite:////abs/p.db"),
    ],
)
def test_database_urls_are_normalised_to_the_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "nonsense"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url(url)
