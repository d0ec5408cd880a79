"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from domain.errors import DependencyUnavailable
from entrypoints.http.deps import container_of


@get("/health/live", summary="Liveness", tags=["operations"])
async def live() -> dict[str, str]:
    return {"status": "live"}


@get("/health/ready", summary="Readiness", tags=["operations"])
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
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
    body = {"status": "ready" if ok else "unavailable", "checks": checks}
    headers = {} if ok else {"Retry-After": "5"}
    return Response(
        msgspec.json.encode(body),
        status_code=200 if ok else 503,
        media_type="application/json",
        headers=headers,
    )
