"""RFC 9457 problem details for every error, and the request id every response carries.

``detail`` is always safe for clients: domain errors carry safe text by construction, framework errors
get fixed texts, and anything unexpected is a generic 500 whose detail says nothing (the full error is
logged server-side with the request id).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import Message, Scope

from domain.errors import (
    DependencyUnavailable,
    DomainError,
    Forbidden,
    GatewayRejected,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidState,
    InvalidToken,
    NotFound,
    RefundExceedsCaptured,
    SignatureInvalid,
    ValidationError,
)
from domain.idempotency import StoredResponse

log = logging.getLogger("payments.errors")

PROBLEM_JSON = "application/problem+json"
_REQUEST_ID_KEY = "payments.request_id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

STATUS_OF: dict[type[DomainError], int] = {
    ValidationError: 400,
    SignatureInvalid: 400,
    InvalidToken: 401,
    Forbidden: 403,
    NotFound: 404,
    IdempotencyRequestInProgress: 409,
    InvalidState: 409,
    IdempotencyKeyReused: 422,
    RefundExceedsCaptured: 422,
    GatewayRejected: 422,
    DependencyUnavailable: 503,
}

TITLES = {
    "validation_error": "Invalid request",
    "signature_invalid": "Signature verification failed",
    "invalid_token": "Invalid token",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "idempotency_request_in_progress": "Request in progress",
    "invalid_state": "Invalid state",
    "payload_too_large": "Payload too large",
    "idempotency_key_reused": "Idempotency key reused",
    "refund_exceeds_captured": "Refund exceeds captured amount",
    "gateway_rejected": "Rejected by the payment gateway",
    "service_unavailable": "Service unavailable",
    "internal_error": "Internal server error",
}

_HTTP_CODES = {
    400: ("validation_error", "The request is invalid."),
    401: ("invalid_token", "The access token is missing, invalid or expired."),
    403: ("forbidden", "You are not allowed to do this."),
    404: ("not_found", "The requested resource was not found."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    413: ("payload_too_large", "The request body is larger than the limit of 1 MiB."),
    415: ("validation_error", "The request body must be JSON."),
    503: ("service_unavailable", "The service is temporarily unavailable. Please retry later."),
}


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a sane token of at most 128 characters, else a new one."""
    existing = scope.get(_REQUEST_ID_KEY)
    if isinstance(existing, str):
        return existing
    rid = None
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(candidate):
                rid = candidate
            break
    rid = rid or uuid.uuid4().hex
    scope[_REQUEST_ID_KEY] = rid  # type: ignore[literal-required]
    return rid


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: every HTTP response, errors and 404s included, carries X-Request-ID."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        if not any(name.lower() == b"x-request-id" for name, _ in headers):
            headers.append((b"x-request-id", request_id_of(scope).encode("latin-1")))
            message["headers"] = headers


def problem_body(status: int, code: str, detail: str, request_id: str) -> dict[str, Any]:
    return {
        "type": f"urn:payments:problem:{code}",
        "title": TITLES.get(code, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "requestId": request_id,
    }


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def headers_for(exc: DomainError) -> dict[str, str]:
    if isinstance(exc, InvalidToken):
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if isinstance(exc, DependencyUnavailable):
        return {"Retry-After": str(exc.retry_after)}
    return {}


def render_domain_error(exc: DomainError, request_id: str) -> StoredResponse:
    """The problem response of a domain error, as bytes (also stored for idempotent replay)."""
    status = status_of(exc)
    return StoredResponse(
        status, msgspec.json.encode(problem_body(status, exc.code, exc.detail, request_id)), PROBLEM_JSON
    )


def _response(
    status: int, code: str, detail: str, request_id: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        msgspec.json.encode(problem_body(status, code, detail, request_id)),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers or {},
    )


def _safe_validation_detail(exc: ValidationException) -> str:
    parts = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra[:5]:
        if isinstance(item, dict):
            key = str(item.get("key", ""))[:64]
            message = str(item.get("message", ""))[:200]
            parts.append(f"{key}: {message}" if key else message)
    return "; ".join(parts) or "The request is invalid."


def _handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    rid = request_id_of(request.scope)
    if isinstance(exc, DomainError):
        status = status_of(exc)
        if status >= 500:
            log.warning("dependency unavailable", extra={"request_id": rid, "error": type(exc).__name__})
        return _response(status, exc.code, exc.detail, rid, headers_for(exc))
    if isinstance(exc, ValidationException):
        return _response(400, "validation_error", _safe_validation_detail(exc), rid)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        code, detail = _HTTP_CODES.get(exc.status_code, ("validation_error", "The request is invalid."))
        headers = {}
        if exc.status_code == 405 and exc.headers:
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _response(exc.status_code, code, detail, rid, headers)
    if isinstance(exc, HTTPException) and exc.status_code == 503:
        return _response(503, "service_unavailable", _HTTP_CODES[503][1], rid, {"Retry-After": "5"})
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return _response(500, "internal_error", "An unexpected error occurred.", rid)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The one exception handler: never raises, whatever went wrong while rendering."""
    try:
        return _handle(request, exc)
    except Exception:  # pragma: no cover - last line of defence
        log.exception("error while rendering an error")
        return Response(
            b'{"type":"urn:payments:problem:internal_error","title":"Internal server error",'
            b'"status":500,"detail":"An unexpected error occurred.","code":"internal_error"}',
            status_code=500,
            media_type=PROBLEM_JSON,
        )
