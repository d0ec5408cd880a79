"""Liveness and readiness (GET, and HEAD for load balancers that probe with it)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, head

from domain.errors import DependencyUnavailable
from entrypoints.http.deps import container_of


@get("/health/live", summary="Liveness", tags=["operations"])
async def live() -> dict[str, str]:
    return {"status": "live"}


@head("/health/live", summary="Liveness", tags=["operations"])
async def live_head() -> None:
    return None


async def _readiness(request: Request[Any, Any, Any]) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, str] = {}
    ok = True
    if getattr(request.app.state, "shutting_down", False):
        checks["shutdown"] = "in progress"
        ok = False
    try:
        await container_of(request).ledger().ping()
        checks["ledger"] = "ok"
    except DependencyUnavailable:
        checks["ledger"] = "unavailable"
        ok = False
    return ok, {"status": "ready" if ok else "unavailable", "checks": checks}


@get("/health/ready", summary="Readiness", tags=["operations"])
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    ok, body = await _readiness(request)
    return Response(
        msgspec.json.encode(body),
        status_code=200 if ok else 503,
        media_type="application/json",
        headers={} if ok else {"Retry-After": "5"},
    )


@head("/health/ready", summary="Readiness", tags=["operations"])
async def ready_head(request: Request[Any, Any, Any]) -> Response[None]:
    ok, _ = await _readiness(request)
    return Response(None, status_code=200 if ok else 503, headers={} if ok else {"Retry-After": "5"})
