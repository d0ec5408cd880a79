"""The ``payments`` command: serve, migrate, token, simulator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from entrypoints.settings import ConfigError, Settings, load_settings


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings_or_exit()
    _configure_logging(settings.log_level)
    local = f"http://127.0.0.1:{args.port}"
    if settings.uses_simulator and not settings.public_url:
        os.environ["PUBLIC_URL"] = local  # the embedded simulator is reached through this server
    if not settings.is_production and settings.uses_sqlite:
        os.makedirs("var", exist_ok=True)
    if not settings.is_production:
        from adapters.auth.jwt_verifier import issue_token

        token = issue_token(
            settings.jwt_secret,
            "admin",
            role="admin",
            ttl_seconds=86_400,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        print(
            f"Payments API on {local} (development: {settings.database_url}, "
            f"gateway {'simulator at ' + local + '/_simulator' if settings.uses_simulator else 'configured'})"
        )
        print(f"Admin token (24 h): {token}")
        print(f"Try: curl -s -H 'Authorization: Bearer {token}' {local}/api/payments/orders")
        sys.stdout.flush()
    uvicorn.run(
        "entrypoints.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from adapters.persistence.migrations import upgrade

    settings = _settings_or_exit()
    if settings.uses_sqlite:
        os.makedirs("var", exist_ok=True)
    asyncio.run(upgrade(settings.database_url))
    print("database is at the latest revision")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from adapters.auth.jwt_verifier import issue_token

    settings = _settings_or_exit()
    if not all(a.startswith("HS") for a in settings.jwt_algorithms):
        print(
            "configuration error: `payments token` signs with JWT_SECRET and needs an HS* algorithm",
            file=sys.stderr,
        )
        return 2
    print(
        issue_token(
            settings.jwt_secret,
            args.sub,
            role=args.role,
            ttl_seconds=args.ttl,
            session_id=args.session_id,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            algorithm=settings.jwt_algorithms[0],
        )
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run only the background workers (no HTTP), until SIGTERM or SIGINT."""
    import signal

    from entrypoints.container import build_container, build_workers

    settings = _settings_or_exit()
    _configure_logging(settings.log_level)
    if settings.uses_simulator:
        print(
            "configuration error: RAZORPAY_BASE_URL must be set for `payments worker` "
            "(the embedded simulator lives inside `payments serve`)",
            file=sys.stderr,
        )
        return 2

    async def run() -> None:
        container = build_container(settings)
        if settings.auto_migrate:
            from adapters.persistence.migrations import upgrade

            await upgrade(settings.database_url)
        workers = build_workers(container)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        workers.start()
        await stop.wait()
        logging.getLogger("payments").info("Stopping queue workers...")
        await workers.stop(settings.shutdown_timeout_ms / 1000)
        await container.gateway().close()
        await container.ledger().close()

    asyncio.run(run())
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from adapters.razorpay.simulator import run_simulator

    settings = _settings_or_exit()
    _configure_logging(settings.log_level)
    print(f"Razorpay simulator on http://{args.host}:{args.port} (key id {settings.razorpay_key_id})")
    sys.stdout.flush()
    run_simulator(args.host, args.port, settings.razorpay_key_id, settings.razorpay_key_secret)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payments", description="Resilient Razorpay payment service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="migrate the database to the latest revision")
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="print a signed access token (uses JWT_SECRET)")
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--role", default=None, help="e.g. admin")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--session-id", default=None)
    token.set_defaults(func=cmd_token)

    worker = sub.add_parser("worker", help="run only the background workers (webhook retrier, reconciler)")
    worker.set_defaults(func=cmd_worker)

    sim = sub.add_parser("simulator", help="run the Razorpay-compatible simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9000)
    sim.set_defaults(func=cmd_simulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
