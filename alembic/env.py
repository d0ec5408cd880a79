"""Alembic environment: runs the migrations on the async engine of ``adapters.persistence.engine``.

The URL comes from ``alembic -x url=...``, else from ``config.attributes["url"]`` (set by
``adapters.persistence.migrations``), else from ``DATABASE_URL``, else the SQLite default; it is
normalised like the service's own (``postgresql://`` -> asyncpg, ``sqlite:///`` -> aiosqlite).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from adapters.persistence.engine import create_engine, default_sqlite_url, normalize_url
from adapters.persistence.tables import metadata

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    url = (
        x_args.get("url")
        or config.attributes.get("url")
        or os.environ.get("DATABASE_URL")
        or default_sqlite_url()
    )
    return normalize_url(str(url))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLAlchemy emits BEGIN on SQLite too (engine.py), so DDL is transactional on both engines.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
