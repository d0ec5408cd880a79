"""Test databases: which PostgreSQL server to use, and throw-away databases on it.

The server is, in this order: ``TEST_DATABASE_URL`` when set; a testcontainers PostgreSQL when a Docker
engine answers; the local server ``postgresql://postgres@127.0.0.1:5432/postgres`` when it accepts
connections. Otherwise the tests fail (they do not skip) and say so. Every test run works in databases of
its own (``payments_test_<pid>_<random>...``) and drops them at the end, so CI can share one server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

T = TypeVar("T")

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "payments_test"
POSTGRES_IMAGE = "postgres:16-alpine"

NO_SERVER_MESSAGE = (
    "No PostgreSQL server for the integration tests. Do one of: "
    "(1) set TEST_DATABASE_URL=postgresql://user:password@host:port/postgres (a server where the user may "
    "CREATE DATABASE); "
    "(2) start a Docker engine, so that testcontainers can run a PostgreSQL container; "
    f"(3) run a local PostgreSQL that accepts {LOCAL_SERVER_URL}."
)


class NoPostgresServer(RuntimeError):
    """None of the three ways to get a PostgreSQL server worked."""


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _plain(url: str) -> str:
    """A libpq-style URL asyncpg accepts (no ``+asyncpg``)."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(server_url: str, database: str) -> str:
    """``server_url`` pointing at ``database`` instead."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


async def accepts_connections(url: str, timeout_s: float = 3.0) -> bool:
    try:
        conn = await asyncpg.connect(_plain(url), timeout=timeout_s)
    except Exception:
        return False
    await conn.close()
    return True


def docker_engine_answers(timeout_s: float = 3.0) -> bool:
    """True when a Docker engine answers a ping (the docker client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        pass
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


@dataclass
class PostgresServer:
    """A server the tests may create databases on. ``url`` names a maintenance database."""

    url: str
    source: str  # "TEST_DATABASE_URL", "testcontainers" or "local"
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def resolve_postgres_server() -> PostgresServer:
    """Find the PostgreSQL server for this run; raise :class:`NoPostgresServer` naming the options."""
    env_url = os.environ.get("TEST_DATABASE_URL")
    if env_url:
        if not run_sync(lambda: accepts_connections(env_url, timeout_s=10.0)):
            raise NoPostgresServer(
                f"TEST_DATABASE_URL is set but does not accept connections. {NO_SERVER_MESSAGE}"
            )
        return PostgresServer(_plain(env_url), "TEST_DATABASE_URL")
    if docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(POSTGRES_IMAGE, driver=None)
        container.start()
        return PostgresServer(_plain(container.get_connection_url()), "testcontainers", container.stop)
    if run_sync(lambda: accepts_connections(LOCAL_SERVER_URL)):
        return PostgresServer(LOCAL_SERVER_URL, "local")
    raise NoPostgresServer(NO_SERVER_MESSAGE)


def unique_database_name(prefix: str = DATABASE_PREFIX) -> str:
    """``<prefix>_<pid>_<random>``: unique per run and per xdist worker, safe as an identifier."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    return f'"{name}"'


async def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (optionally a copy of ``template``); return its URL."""
    conn = await asyncpg.connect(_plain(server_url), timeout=10)
    try:
        sql = f"CREATE DATABASE {_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_ident(template)} STRATEGY FILE_COPY"
        await conn.execute(sql)
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting whoever is still on it."""
    conn = await asyncpg.connect(_plain(server_url), timeout=10)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


async def drop_databases_with_prefix(server_url: str, prefix: str) -> int:
    """Drop every database whose name starts with ``prefix`` (this run's own); return how many."""
    conn = await asyncpg.connect(_plain(server_url), timeout=10)
    try:
        names = [
            r["datname"]
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
            )
        ]
        for name in names:
            with contextlib.suppress(asyncpg.InvalidCatalogNameError):
                await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
    return len(names)
