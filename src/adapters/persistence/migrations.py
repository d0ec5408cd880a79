"""Running the Alembic migrations from code (the CLI, the app's start-up, the tests).

Alembic's ``env.py`` drives the async engine with ``asyncio.run``, which cannot run inside an event loop
that is already running; so the migration always runs where no loop runs: :func:`upgrade` and
:func:`downgrade` are coroutines that run it in a worker thread (the caller's loop keeps serving), and
the ``*_sync`` variants run it in place, or in a worker thread when the calling thread runs a loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from adapters.persistence.engine import normalize_url, run_on_connection

T = TypeVar("T")

#: The repository's ``alembic/`` directory (``src/adapters/persistence`` -> repository root).
DEFAULT_SCRIPT_LOCATION = Path(__file__).resolve().parents[3] / "alembic"


def alembic_config(url: str, script_location: str | Path | None = None) -> Config:
    """An Alembic ``Config`` for ``url`` without touching logging or reading ``alembic.ini``."""
    location = Path(script_location) if script_location is not None else DEFAULT_SCRIPT_LOCATION
    if not (location / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic environment at {location}.")
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["url"] = normalize_url(url)
    cfg.attributes["configure_logger"] = False
    return cfg


def _run_outside_loop(fn: Callable[[], T]) -> T:
    """Call ``fn`` here, or in a worker thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="alembic-migrations", daemon=True)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return result[0]


def upgrade_sync(url: str, revision: str = "head", script_location: str | Path | None = None) -> None:
    """Migrate the database at ``url`` up to ``revision``, blocking (a worker thread if a loop runs)."""
    cfg = alembic_config(url, script_location)
    _run_outside_loop(lambda: command.upgrade(cfg, revision))


def downgrade_sync(url: str, revision: str, script_location: str | Path | None = None) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` removes everything), blocking."""
    cfg = alembic_config(url, script_location)
    _run_outside_loop(lambda: command.downgrade(cfg, revision))


async def upgrade(url: str, revision: str = "head", script_location: str | Path | None = None) -> None:
    """Migrate up to ``revision`` in a worker thread, without blocking the running event loop."""
    await asyncio.to_thread(upgrade_sync, url, revision, script_location)


async def downgrade(url: str, revision: str, script_location: str | Path | None = None) -> None:
    """Migrate down to ``revision`` in a worker thread, without blocking the running event loop."""
    await asyncio.to_thread(downgrade_sync, url, revision, script_location)


def head_revision(script_location: str | Path | None = None) -> str | None:
    """The newest revision the code knows."""
    cfg = alembic_config("sqlite://", script_location)
    return ScriptDirectory.from_config(cfg).get_current_head()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when it was never migrated)."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    return await run_on_connection(url, read)


async def ensure_schema(url: str) -> None:
    """Migrate to head when the database is behind (used for the SQLite development default)."""
    if await current_revision(url) != head_revision():
        await upgrade(url)
