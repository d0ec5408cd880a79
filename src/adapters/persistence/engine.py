"""Database URLs, the async engine, and the mapping of driver failures to ``LedgerUnavailable``.

PostgreSQL runs on asyncpg, SQLite on aiosqlite. On SQLite every connection uses WAL, enforces foreign
keys and waits ``busy_timeout`` for locks; SQLAlchemy (not the sqlite3 module) emits ``BEGIN``, and a
transaction that may write starts with ``BEGIN IMMEDIATE`` so that two writers never deadlock while
upgrading a read lock (the documented pysqlite/aiosqlite event recipe).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from domain.errors import LedgerUnavailable

T = TypeVar("T")

#: Execution option naming how a SQLite transaction begins: ``"IMMEDIATE"`` (default) or ``"DEFERRED"``.
SQLITE_BEGIN: Final = "sqlite_begin"

_PG_PREFIXES = ("postgresql+asyncpg://", "postgresql://", "postgres://")
_SQLITE_PREFIXES = ("sqlite+aiosqlite://", "sqlite+pysqlite://", "sqlite://")

# SQLSTATE classes that say "the server cannot do it now", not "the request is wrong":
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53 insufficient resources,
# 57 operator intervention (shutdown, statement timeout), 58 system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def normalize_url(url: str) -> str:
    """The async SQLAlchemy URL for a configured ``DATABASE_URL``.

    ``postgresql://``, ``postgres://`` and ``postgresql+asyncpg://`` become asyncpg; ``sqlite:///path``
    and ``sqlite+aiosqlite:///path`` become aiosqlite. Anything else is refused with ``ValueError``.
    """
    url = url.strip()
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            return "sqlite+aiosqlite://" + url[len(prefix) :]
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use postgresql:// or sqlite:///.")


def dialect_of(url: str) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    return make_url(normalize_url(url)).get_backend_name()


def default_sqlite_url(base_dir: str | os.PathLike[str] | None = None) -> str:
    """The development default: ``./var/payments.db`` (the directory is created)."""
    root = Path(base_dir) if base_dir is not None else Path.cwd()
    path = (root / "var" / "payments.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of a file-based SQLite URL (None for PostgreSQL or an in-memory database)."""
    u = make_url(normalize_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout_s: float = 10.0,
    connect_timeout_s: float = 5.0,
    command_timeout_s: float = 30.0,
    busy_timeout_s: float = 10.0,
    echo: bool = False,
) -> AsyncEngine:
    """An async engine for ``url`` (normalised) with bounded waits everywhere.

    ``connect_timeout_s`` bounds a new connection, ``command_timeout_s`` a statement (PostgreSQL),
    ``pool_timeout_s`` the wait for a pooled connection, ``busy_timeout_s`` the wait for SQLite's lock.
    """
    async_url = make_url(normalize_url(url))
    pool: dict[str, Any] = {
        "echo": echo,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": pool_timeout_s,
    }
    if async_url.get_backend_name() == "postgresql":
        engine = create_async_engine(
            async_url,
            **pool,
            pool_recycle=1800,
            pool_pre_ping=True,
            connect_args={
                "timeout": connect_timeout_s,
                "command_timeout": command_timeout_s,
                "server_settings": {"application_name": "payments"},
            },
        )
        return engine
    if async_url.database and async_url.database != ":memory:":
        # Best effort: if the directory cannot be made, connecting fails as LedgerUnavailable.
        with contextlib.suppress(OSError):
            Path(async_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(async_url, **pool, connect_args={"timeout": busy_timeout_s})
    _install_sqlite_hooks(engine, busy_timeout_ms=int(busy_timeout_s * 1000))
    return engine


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # FULL: a commit (a stored webhook, a booked capture) survives a power loss, not only a
            # crash of the process; "durable before 200" must hold on the embedded default too.
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")).upper()
        if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite begin mode {mode!r}.")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_unavailable(error: BaseException, *, connecting: bool = False) -> bool:
    """True when ``error`` means the database cannot answer now (rather than a broken invariant).

    While ``connecting``, every driver error counts (wrong database, refused login, ...).
    """
    if isinstance(error, exc.IntegrityError):
        return False
    if isinstance(
        error,
        exc.OperationalError | exc.InterfaceError | exc.TimeoutError | exc.DisconnectionError,
    ):
        return True
    if isinstance(error, exc.DBAPIError):
        if connecting or error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, OSError | TimeoutError | ConnectionError):
        return True
    return _is_asyncpg_connection_error(error)


def _is_asyncpg_connection_error(error: BaseException) -> bool:
    return isinstance(
        error,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.TooManyConnectionsError,
    )


@contextlib.contextmanager
def translate_errors(*, connecting: bool = False) -> Iterator[None]:
    """Re-raise connection-level failures as ``LedgerUnavailable``; let everything else through.

    Integrity errors (a CHECK, UNIQUE or append-only trigger refusing a write) mean a broken invariant
    and are never hidden. The client-facing detail never contains the driver's message.
    """
    try:
        yield
    except LedgerUnavailable:
        raise
    except Exception as error:
        if is_unavailable(error, connecting=connecting):
            raise LedgerUnavailable() from error
        raise


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
    """One transaction, committed when the block succeeds (rolled back if ``read_only`` or on error).

    Failing to connect or begin is ``LedgerUnavailable`` whatever the driver said; inside the block
    :func:`translate_errors` applies. On SQLite a ``read_only`` transaction begins ``DEFERRED`` (it does
    not wait for writers), any other ``IMMEDIATE``.
    """
    with translate_errors(connecting=True):
        conn = await engine.connect()
    try:
        with translate_errors(connecting=True):
            if read_only:
                conn = await conn.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            await conn.begin()
        with translate_errors():
            yield conn
            if not read_only:
                await conn.commit()
    finally:
        await discard(conn)


async def discard(conn: AsyncConnection) -> None:
    """Roll back what was not committed and give the connection back to the pool.

    A failure here must not replace the error that is already propagating; the pool invalidates a
    broken connection anyway.
    """
    try:
        if conn.in_transaction():
            await conn.rollback()
    except Exception:  # noqa: BLE001, S110 - cleanup of a connection that is already failing
        pass
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def run_on_connection(url: str, read: Callable[[Connection], T]) -> T:
    """Run a synchronous function (Alembic, the inspector) on a short-lived connection to ``url``."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()
