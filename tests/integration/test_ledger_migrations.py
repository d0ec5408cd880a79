"""The migrations create, remove and re-create the whole schema on both engines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapters.persistence.engine import create_engine, run_on_connection
from adapters.persistence.migrations import current_revision, downgrade, head_revision, upgrade
from adapters.persistence.tables import idempotency_keys, metadata

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

    return await run_on_connection(url, read)


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


IDEMPOTENCY_ROWS = [
    {
        "scope": "user_1:POST:/api/payments/orders",
        "key": "done",
        "fingerprint": "fp",
        "status": "completed",
        "response_status": 201,
        "response_body": b'{"ok":true}',
        "content_type": "application/json",
        "locked_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "expires_at": datetime(2026, 1, 2, tzinfo=UTC),
    },
    {
        "scope": "user_1:POST:/api/payments/orders",
        "key": "running",
        "fingerprint": "fp",
        "status": "in_progress",
        "response_status": None,
        "response_body": None,
        "content_type": None,
        "locked_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "expires_at": datetime(2026, 1, 2, tzinfo=UTC),
    },
]


async def _idempotency_keys_schema(url: str) -> dict[str, Any]:
    """What the database says idempotency_keys is: columns, primary key, CHECKs, indexes."""

    def read(conn: Connection) -> dict[str, Any]:
        insp = inspect(conn)
        return {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns("idempotency_keys")
            ],
            "pk": insp.get_pk_constraint("idempotency_keys")["constrained_columns"],
            "checks": sorted(
                (str(c["name"]), " ".join(c["sqltext"].split()))
                for c in insp.get_check_constraints("idempotency_keys")
            ),
            "indexes": sorted(
                (str(i["name"]), tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes("idempotency_keys")
            ),
        }

    return await run_on_connection(url, read)


async def _idempotency_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT * FROM idempotency_keys ORDER BY key"))
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


async def test_migration_0003_adds_the_claim_token_and_its_downgrade_restores_0002(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    await upgrade(url, "0002_webhook_inbox")
    at_0002 = await _idempotency_keys_schema(url)
    assert "claim_token" not in [c[0] for c in at_0002["columns"]]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(idempotency_keys.insert(), IDEMPOTENCY_ROWS)
    finally:
        await engine.dispose()
    rows_at_0002 = await _idempotency_rows(url)

    await upgrade(url, "0003_idempotency_claim_token")
    at_0003 = await _idempotency_keys_schema(url)
    token_column = [c for c in at_0003["columns"] if c[0] == "claim_token"]
    assert len(token_column) == 1
    assert token_column[0][2] is True  # nullable: existing rows have no token
    assert {**at_0003, "columns": [c for c in at_0003["columns"] if c[0] != "claim_token"]} == at_0002
    assert await _idempotency_rows(url) == [{**r, "claim_token": None} for r in rows_at_0002]

    await downgrade(url, "0002_webhook_inbox")
    assert await current_revision(url) == "0002_webhook_inbox"
    assert await _idempotency_keys_schema(url) == at_0002  # CHECKs, key and index survive (SQLite batch)
    assert await _idempotency_rows(url) == rows_at_0002  # and so do the rows
    engine = create_engine(url)
    try:
        with pytest.raises(IntegrityError):  # the CHECK is still enforced, not only still named
            async with engine.begin() as conn:
                await conn.execute(
                    idempotency_keys.insert(),
                    {**IDEMPOTENCY_ROWS[0], "key": "bad", "status": "completed", "response_status": None},
                )
    finally:
        await engine.dispose()

    await upgrade(url, "0003_idempotency_claim_token")
    assert await _idempotency_keys_schema(url) == at_0003
    await upgrade(url)  # and on to whatever comes after 0003
    assert await current_revision(url) == head_revision()
