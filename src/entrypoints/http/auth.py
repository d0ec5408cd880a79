"""Bearer authentication as a Litestar dependency, and the admin check."""

from __future__ import annotations

from typing import Any

from litestar import Request

from domain.errors import Forbidden, InvalidToken
from domain.sessions import Principal
from entrypoints.http.deps import container_of


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The verified caller; any problem with the token is the same 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise InvalidToken()
    verifier = container_of(request).token_verifier()
    return await verifier.verify(token)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("this endpoint is for administrators.")
