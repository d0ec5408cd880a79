"""The migrations create, remove and re-create the whole schema on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from adapters.persistence.engine import create_engine
from adapters.persistence.migrations import current_revision, downgrade, head_revision, upgrade
from adapters.persistence.tables import metadata

TABLES = {
    "orders",
    "payments",
    "refunds",
    "journal_transactions",
    "journal_postings",
    "idempotency_keys",
    "webhook_events",
}


async def _schema(url: str) -> tuple[set[str], set[str]]:
    """(tables, triggers) in the database at ``url``."""

    def read(conn: Connection) -> tuple[set[str], set[str]]:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        if conn.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        triggers = {r[0] for r in conn.execute(text(sql))}
        return tables, triggers

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def test_migrations_go_up_down_to_base_and_up_again(empty_database_url: str) -> None:
    url = empty_database_url
    assert await current_revision(url) is None

    await upgrade(url)
    tables, triggers = await _schema(url)
    assert tables == TABLES
    assert len(triggers) >= 4  # UPDATE and DELETE rejected on both journal tables
    assert all(t.startswith(("journal_transactions", "journal_postings")) for t in triggers)
    assert await current_revision(url) == head_revision()

    await downgrade(url, "base")
    assert await _schema(url) == (set(), set())
    assert await current_revision(url) is None

    await upgrade(url)
    assert await _schema(url) == (tables, triggers)


async def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    """tables.py (what the code uses) and the migration (what the database has) do not drift."""

    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_sqlite_commits_are_durable_across_power_loss(tmp_path: Path) -> None:
    """synchronous=FULL: WAL with NORMAL may lose the last commits (an acknowledged webhook) on power loss."""
    engine = create_engine(f"sqlite:///{tmp_path / 'durable.db'}")
    try:
        async with engine.connect() as conn:
            level = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert level == 2  # FULL
