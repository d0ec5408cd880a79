"""Configuration from the environment, validated once at start-up.

A bad value stops start-up with one line naming the variable (``ConfigError``). Production refuses the
development defaults (the simulator, the in-process session store, default secrets). The variables are
listed in the README; this is a small hand-written parser rather than pydantic-settings because the rules
are cross-field (production vs development) and the one-line error format is part of the contract.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-use-in-production!"
DEV_RAZORPAY_KEY_ID = "rzp_test_simulator"
DEV_RAZORPAY_KEY_SECRET = "dev-only-razorpay-key-secret"
DEV_WEBHOOK_SECRET = "dev-only-razorpay-webhook-secret"
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/payments.db"

# A gateway call may take up to twice its timeout plus a second, and a capture one fetch more: with at
# most 30 s that stays well inside the 120 s capture claim (domain.payments.CAPTURE_CLAIM_SECONDS).
MAX_GATEWAY_TIMEOUT_MS = 30_000

ALLOWED_JWT_ALGORITHMS = frozenset(
    {
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)


class ConfigError(Exception):
    """A configuration value is wrong. ``str()`` is the one line to show."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5
    reset_timeout_ms: int = 60_000
    monitoring_period_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class Settings:
    app_env: str = "development"
    database_url: str = DEFAULT_SQLITE_URL
    redis_url: str | None = None
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = 10
    razorpay_key_id: str = DEV_RAZORPAY_KEY_ID
    razorpay_key_secret: str = DEV_RAZORPAY_KEY_SECRET
    razorpay_webhook_secret: str = DEV_WEBHOOK_SECRET
    razorpay_webhook_secret_previous: str | None = None
    razorpay_base_url: str | None = None  # None: the built-in simulator (development only)
    razorpay_timeout_ms: int = 10_000
    razorpay_max_workers: int = 8
    breakers: dict[str, BreakerSettings] = field(default_factory=dict)
    session_ttl: int = 86_400
    session_cleanup_interval: int = 3_600
    shutdown_drain_delay_ms: int = 0
    shutdown_timeout_ms: int = 30_000
    force_exit_timeout_ms: int = 35_000
    max_body_bytes: int = 1024 * 1024
    auto_migrate: bool = True
    log_level: str = "INFO"
    public_url: str | None = None  # where this instance is reachable (the embedded simulator needs it)
    workers_enabled: bool = True
    webhook_workers: int = 1
    webhook_retry_interval_ms: int = 2_000
    webhook_max_attempts: int = 8
    reconcile_interval_ms: int = 60_000
    reconcile_min_age_s: int = 900
    reconcile_max_age_s: int = 3 * 86_400
    idempotency_purge_interval_ms: int = 600_000

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def uses_simulator(self) -> bool:
        """Development without RAZORPAY_BASE_URL serves the built-in simulator; production the real API."""
        return self.razorpay_base_url is None and not self.is_production

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def breaker(self, name: str) -> BreakerSettings:
        return self.breakers.get(name, BreakerSettings())


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 10**9) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _str(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def normalise_database_url(url: str) -> str:
    """Accept ``postgresql://``, ``postgres://``, ``postgresql+asyncpg://`` and SQLite URLs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    for prefix in ("sqlite+aiosqlite://", "sqlite://"):
        if url.startswith(prefix):
            return "sqlite+aiosqlite://" + url[len(prefix) :]
    raise ConfigError("DATABASE_URL must start with postgresql://, postgres:// or sqlite:///")


def _breakers(env: Mapping[str, str]) -> dict[str, BreakerSettings]:
    base = BreakerSettings(
        failure_threshold=_int(env, "CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5, 1, 10_000),
        reset_timeout_ms=_int(env, "CIRCUIT_BREAKER_RESET_TIMEOUT", 60_000, 1, 86_400_000),
        monitoring_period_ms=_int(env, "CIRCUIT_BREAKER_MONITORING_PERIOD", 10_000, 1, 86_400_000),
    )
    out = {}
    for name in ("gateway", "ledger", "session_store"):
        p = f"CIRCUIT_BREAKER_{name.upper()}_"
        out[name] = BreakerSettings(
            failure_threshold=_int(env, p + "FAILURE_THRESHOLD", base.failure_threshold, 1, 10_000),
            reset_timeout_ms=_int(env, p + "RESET_TIMEOUT", base.reset_timeout_ms, 1, 86_400_000),
            monitoring_period_ms=_int(env, p + "MONITORING_PERIOD", base.monitoring_period_ms, 1, 86_400_000),
        )
    return out


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ``ConfigError`` naming the first bad variable."""
    env = os.environ if env is None else env
    app_env = (_str(env, "APP_ENV") or "development").lower()
    if app_env not in ("development", "production"):
        raise ConfigError(f"APP_ENV must be 'development' or 'production', got {app_env!r}")
    prod = app_env == "production"

    database_url = normalise_database_url(_str(env, "DATABASE_URL") or DEFAULT_SQLITE_URL)
    redis_url = _str(env, "REDIS_URL")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")

    algorithms = tuple(a.strip() for a in (_str(env, "JWT_ALGORITHMS") or "HS256").split(",") if a.strip())
    for alg in algorithms:
        if alg not in ALLOWED_JWT_ALGORITHMS:
            raise ConfigError(f"JWT_ALGORITHMS has an unsupported algorithm {alg!r}")
    symmetric = any(a.startswith("HS") for a in algorithms)
    asymmetric = any(not a.startswith("HS") for a in algorithms)
    if symmetric and asymmetric:
        raise ConfigError("JWT_ALGORITHMS must not mix HMAC (HS*) and public-key algorithms")
    jwt_secret = _str(env, "JWT_SECRET") or DEV_JWT_SECRET
    jwt_public_key = _str(env, "JWT_PUBLIC_KEY")
    jwt_jwks_url = _str(env, "JWT_JWKS_URL")
    if asymmetric and not (jwt_public_key or jwt_jwks_url):
        raise ConfigError("JWT_PUBLIC_KEY or JWT_JWKS_URL is required for the configured JWT_ALGORITHMS")
    if jwt_public_key and "\\n" in jwt_public_key:
        jwt_public_key = jwt_public_key.replace("\\n", "\n")

    base_url = _str(env, "RAZORPAY_BASE_URL")
    if base_url is not None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("RAZORPAY_BASE_URL must be an http(s) URL")
        base_url = base_url.rstrip("/")
        if base_url.endswith("/v1"):
            raise ConfigError("RAZORPAY_BASE_URL must be given without /v1, like the SDK's base_url")

    settings = Settings(
        app_env=app_env,
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=jwt_secret,
        jwt_algorithms=algorithms,
        jwt_public_key=jwt_public_key,
        jwt_jwks_url=jwt_jwks_url,
        jwt_audience=_str(env, "JWT_AUDIENCE"),
        jwt_issuer=_str(env, "JWT_ISSUER"),
        jwt_leeway_seconds=_int(env, "JWT_LEEWAY_SECONDS", 10, 0, 3600),
        razorpay_key_id=_str(env, "RAZORPAY_KEY_ID") or DEV_RAZORPAY_KEY_ID,
        razorpay_key_secret=_str(env, "RAZORPAY_KEY_SECRET") or DEV_RAZORPAY_KEY_SECRET,
        razorpay_webhook_secret=_str(env, "RAZORPAY_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET,
        razorpay_webhook_secret_previous=_str(env, "RAZORPAY_WEBHOOK_SECRET_PREVIOUS"),
        razorpay_base_url=base_url,
        razorpay_timeout_ms=_int(env, "RAZORPAY_TIMEOUT_MS", 10_000, 100, MAX_GATEWAY_TIMEOUT_MS),
        razorpay_max_workers=_int(env, "RAZORPAY_MAX_WORKERS", 8, 1, 256),
        breakers=_breakers(env),
        session_ttl=_int(env, "SESSION_TTL", 86_400, 60, 366 * 86_400),
        session_cleanup_interval=_int(env, "SESSION_CLEANUP_INTERVAL", 3_600, 1, 86_400),
        shutdown_drain_delay_ms=_int(env, "SHUTDOWN_DRAIN_DELAY", 0, 0, 600_000),
        shutdown_timeout_ms=_int(env, "SHUTDOWN_TIMEOUT", 30_000, 0, 3_600_000),
        force_exit_timeout_ms=_int(env, "FORCE_EXIT_TIMEOUT", 35_000, 0, 3_600_000),
        auto_migrate=_bool(env, "AUTO_MIGRATE", not prod),
        log_level=(_str(env, "LOG_LEVEL") or "INFO").upper(),
        public_url=_str(env, "PUBLIC_URL"),
        workers_enabled=_bool(env, "WORKERS_ENABLED", True),
        webhook_workers=_int(env, "WEBHOOK_WORKERS", 1, 1, 64),
        webhook_retry_interval_ms=_int(env, "WEBHOOK_RETRY_INTERVAL", 2_000, 10, 3_600_000),
        webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
        reconcile_interval_ms=_int(env, "RECONCILE_INTERVAL", 60_000, 10, 86_400_000),
        reconcile_min_age_s=_int(env, "RECONCILE_MIN_AGE", 900, 0, 30 * 86_400),
        reconcile_max_age_s=_int(env, "RECONCILE_MAX_AGE", 3 * 86_400, 1, 365 * 86_400),
        idempotency_purge_interval_ms=_int(env, "IDEMPOTENCY_PURGE_INTERVAL", 600_000, 10, 86_400_000),
    )
    if prod:
        _refuse_development_defaults(settings)
    return settings


def _refuse_development_defaults(s: Settings) -> None:
    if s.uses_sqlite:
        raise ConfigError(
            "DATABASE_URL must name PostgreSQL in production (SQLite is the development default)"
        )
    if s.redis_url is None:
        raise ConfigError(
            "REDIS_URL is required in production (the in-process session store is for development)"
        )
    if any(a.startswith("HS") for a in s.jwt_algorithms) and (
        s.jwt_secret == DEV_JWT_SECRET or len(s.jwt_secret.encode()) < 32
    ):
        raise ConfigError("JWT_SECRET must be set to at least 32 bytes in production")
    if s.razorpay_key_id == DEV_RAZORPAY_KEY_ID or s.razorpay_key_secret == DEV_RAZORPAY_KEY_SECRET:
        raise ConfigError("RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET must be set in production")
    if s.razorpay_webhook_secret == DEV_WEBHOOK_SECRET:
        raise ConfigError("RAZORPAY_WEBHOOK_SECRET must be set in production")
