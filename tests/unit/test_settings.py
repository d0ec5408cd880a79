"""Configuration: one clear line naming the bad variable; production refuses development defaults."""

from __future__ import annotations

import pytest

from entrypoints.container import REAL_RAZORPAY_URL, gateway_base_url
from entrypoints.settings import ConfigError, load_settings

PROD_OK = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://u:p@db:5432/payments",
    "REDIS_URL": "redis://cache:6379/0",
    "JWT_SECRET": "x" * 32,
    "RAZORPAY_KEY_ID": "rzp_live_abc",
    "RAZORPAY_KEY_SECRET": "live-secret",
    "RAZORPAY_WEBHOOK_SECRET": "whsec",
}


def test_development_defaults_use_sqlite_and_the_simulator() -> None:
    s = load_settings({})
    assert s.uses_sqlite and s.uses_simulator and s.redis_url is None
    assert gateway_base_url(s).endswith("/_simulator")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_forms_are_accepted(url: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database_url == expected


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RAZORPAY_TIMEOUT_MS": "fast"}, "RAZORPAY_TIMEOUT_MS"),
        ({"RAZORPAY_TIMEOUT_MS": "60000"}, "RAZORPAY_TIMEOUT_MS"),  # would outlast the capture claim
        ({"SHUTDOWN_TIMEOUT": "-1"}, "SHUTDOWN_TIMEOUT"),
        ({"CIRCUIT_BREAKER_GATEWAY_FAILURE_THRESHOLD": "0"}, "CIRCUIT_BREAKER_GATEWAY_FAILURE_THRESHOLD"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS"),
        ({"JWT_ALGORITHMS": "HS256,RS256", "JWT_PUBLIC_KEY": "k"}, "JWT_ALGORITHMS"),
        ({"JWT_ALGORITHMS": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"RAZORPAY_BASE_URL": "http://sim:9000/v1"}, "RAZORPAY_BASE_URL"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert variable in message and "\n" not in message


@pytest.mark.parametrize(
    ("drop_or_change", "variable"),
    [
        ({"DATABASE_URL": None}, "DATABASE_URL"),
        ({"REDIS_URL": None}, "REDIS_URL"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_SECRET": None}, "JWT_SECRET"),
        ({"RAZORPAY_KEY_SECRET": None}, "RAZORPAY_KEY_SECRET"),
        ({"RAZORPAY_WEBHOOK_SECRET": None}, "RAZORPAY_WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_development_defaults(
    drop_or_change: dict[str, str | None], variable: str
) -> None:
    env = dict(PROD_OK)
    for k, v in drop_or_change.items():
        if v is None:
            env.pop(k)
        else:
            env[k] = v
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert variable in str(info.value)


def test_production_with_everything_set_talks_to_the_real_gateway() -> None:
    s = load_settings(PROD_OK)
    assert s.is_production and not s.uses_simulator and not s.auto_migrate
    assert gateway_base_url(s) == REAL_RAZORPAY_URL


def test_per_breaker_overrides_fall_back_to_the_global_values() -> None:
    s = load_settings(
        {"CIRCUIT_BREAKER_FAILURE_THRESHOLD": "7", "CIRCUIT_BREAKER_GATEWAY_FAILURE_THRESHOLD": "2"}
    )
    assert s.breaker("gateway").failure_threshold == 2
    assert s.breaker("ledger").failure_threshold == 7
