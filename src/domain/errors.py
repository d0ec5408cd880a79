"""Domain errors.

Every error the service reports to a client is one of these. Each carries a stable machine-readable
``code`` (the contract's ``code`` field) and a ``detail`` that is safe to show to a client: no upstream
raw message, secret, SQL or stack trace is ever put in ``detail``.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error with a client-facing meaning."""

    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationError(DomainError):
    """The request is malformed or a value is out of its allowed range."""

    code = "validation_error"


class SignatureInvalid(DomainError):
    """A payment or webhook signature does not verify."""

    code = "signature_invalid"


class NotFound(DomainError):
    """The resource does not exist, or it belongs to somebody else."""

    code = "not_found"


class Forbidden(DomainError):
    """The caller is authenticated but not allowed to do this."""

    code = "forbidden"


class InvalidToken(DomainError):
    """The bearer token is missing, malformed, expired, wrongly signed or revoked.

    One error for every reason so that refusals are no oracle.
    """

    code = "invalid_token"

    def __init__(self, detail: str = "The access token is missing, invalid or expired.") -> None:
        super().__init__(detail)


class InvalidState(DomainError):
    """The requested transition is not allowed in the resource's current state."""

    code = "invalid_state"


class RefundExceedsCaptured(DomainError):
    """Refunds would exceed what was captured."""

    code = "refund_exceeds_captured"


class GatewayRejected(DomainError):
    """The payment gateway refused the request as invalid.

    ``detail`` holds the gateway's reason only after the adapter made it safe.
    """

    code = "gateway_rejected"


class IdempotencyRequestInProgress(DomainError):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_request_in_progress"


class IdempotencyKeyReused(DomainError):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"


class DependencyUnavailable(DomainError):
    """A dependency (gateway, ledger database, session store) cannot answer now.

    ``retry_after`` is a hint in whole seconds for the client.
    """

    code = "service_unavailable"

    def __init__(self, dependency: str, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail or f"The {dependency} is temporarily unavailable. Please retry later.")
        self.dependency = dependency
        self.retry_after = max(1, int(retry_after))


class GatewayUnavailable(DependencyUnavailable):
    """The payment gateway did not answer usefully (5xx, HTML, reset, timeout)."""

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__("payment gateway", detail, retry_after)


class LedgerUnavailable(DependencyUnavailable):
    """The ledger database cannot be reached or failed."""

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__("ledger", detail, retry_after)


class SessionStoreUnavailable(DependencyUnavailable):
    """The session store cannot answer; authentication fails closed."""

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__("session store", detail, retry_after)
