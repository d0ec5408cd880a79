"""Money: integer minor units only, currency rules, arithmetic and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.money import CURRENCIES, MAX_AMOUNT, Money, currency_of, parse_minor_units

INR = currency_of("INR")
USD = currency_of("USD")
JPY = currency_of("JPY")
KWD = currency_of("KWD")


@pytest.mark.parametrize("value", [500.0, 500.5, "500", "5e2", True, False, None, [500], {"a": 1}])
def test_only_ints_are_minor_units(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_minor_units(value)
    with pytest.raises(ValidationError):
        Money.of(value, "INR")
    with pytest.raises(ValidationError):
        Money.order_amount(value, "INR")


def test_money_constructor_refuses_a_float_amount() -> None:
    with pytest.raises(ValidationError):
        Money(500.0, INR)  # type: ignore[arg-type]


def test_int_is_accepted_and_kept_exactly() -> None:
    assert parse_minor_units(50000) == 50000
    m = Money.of(50000, "INR")
    assert m.amount == 50000
    assert type(m.amount) is int
    assert m.currency is INR


@pytest.mark.parametrize(("code", "exponent"), [("INR", 2), ("USD", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_currency_exponents(code: str, exponent: int) -> None:
    assert currency_of(code).exponent == exponent


@pytest.mark.parametrize(("amount", "ok"), [(1005, False), (1001, False), (1010, True), (1000, True)])
def test_three_decimal_currencies_must_end_in_zero(amount: int, ok: bool) -> None:
    if ok:
        assert Money.order_amount(amount, "KWD").amount == amount
    else:
        with pytest.raises(ValidationError, match="multiple of 10"):
            Money.of(amount, "KWD")


@pytest.mark.parametrize("code", ["INR", "USD", "JPY", "EUR"])
def test_two_and_zero_decimal_currencies_take_any_unit(code: str) -> None:
    assert Money.of(12345, code).amount == 12345


@pytest.mark.parametrize(("amount", "ok"), [(99, False), (1, False), (0, False), (100, True), (101, True)])
def test_inr_minimum_order_amount_is_100_paise(amount: int, ok: bool) -> None:
    if ok:
        assert Money.order_amount(amount, "INR").amount == amount
    else:
        with pytest.raises(ValidationError, match="at least 100"):
            Money.order_amount(amount, "INR")


def test_minimum_is_per_currency() -> None:
    assert Money.order_amount(1, "JPY").amount == 1
    with pytest.raises(ValidationError):
        Money.order_amount(990, "KWD")  # one dinar is 1000 fils


def test_zero_is_money_but_not_an_order_amount() -> None:
    assert Money.of(0, "INR").amount == 0
    with pytest.raises(ValidationError):
        Money.order_amount(0, "INR")


def test_negative_amount_refused() -> None:
    with pytest.raises(ValidationError):
        Money.of(-100, "INR")


def test_upper_bound() -> None:
    assert Money.of(MAX_AMOUNT, "INR").amount == MAX_AMOUNT
    with pytest.raises(ValidationError, match="at most"):
        Money.of(MAX_AMOUNT + 1, "INR")
    with pytest.raises(ValidationError):
        Money.of(2**63, "INR")


@pytest.mark.parametrize("code", ["inr", "Inr", "XYZ", "", " INR", "INR ", None, 356, b"INR"])
def test_unknown_or_lowercase_currency_refused(code: object) -> None:
    with pytest.raises(ValidationError):
        currency_of(code)
    with pytest.raises(ValidationError):
        Money.of(50000, code)


def test_currency_table_is_consistent() -> None:
    for code, cur in CURRENCIES.items():
        assert cur.code == code
        assert code.isupper()
        assert len(code) == 3
        assert cur.step == (10 if cur.exponent == 3 else 1)
        assert cur.minimum % cur.step == 0


def test_addition_and_subtraction_keep_the_currency() -> None:
    a, b = Money.of(30000, "INR"), Money.of(20000, "INR")
    assert a + b == Money.of(50000, "INR")
    assert (a + b).currency is INR
    assert a - b == Money.of(10000, "INR")
    assert (a - b).currency is INR


def test_mixing_currencies_refused() -> None:
    with pytest.raises(ValidationError, match="currencies differ"):
        Money.of(100, "INR") + Money.of(100, "USD")
    with pytest.raises(ValidationError, match="currencies differ"):
        Money.of(100, "INR") - Money.of(100, "USD")


def test_subtraction_below_zero_refused() -> None:
    with pytest.raises(ValidationError):
        Money.of(100, "INR") - Money.of(101, "INR")


def test_addition_above_upper_bound_refused() -> None:
    with pytest.raises(ValidationError):
        Money.of(MAX_AMOUNT, "INR") + Money.of(1, "INR")


def test_money_is_immutable() -> None:
    m = Money.of(100, "INR")
    with pytest.raises(AttributeError):
        m.amount = 200  # type: ignore[misc]


@pytest.mark.parametrize(
    ("amount", "code", "text"),
    [
        (50000, "INR", "500.00 INR"),
        (100, "INR", "1.00 INR"),
        (105, "INR", "1.05 INR"),
        (5, "USD", "0.05 USD"),
        (0, "INR", "0.00 INR"),
        (500, "JPY", "500 JPY"),
        (1010, "KWD", "1.010 KWD"),
        (50, "KWD", "0.050 KWD"),
        (123456789, "INR", "1234567.89 INR"),
    ],
)
def test_str_formatting(amount: int, code: str, text: str) -> None:
    assert str(Money.of(amount, code)) == text


@settings(database=None, deadline=None)
@given(
    st.sampled_from(sorted(CURRENCIES)),
    st.integers(min_value=0, max_value=MAX_AMOUNT // 2),
    st.integers(min_value=0, max_value=MAX_AMOUNT // 2),
)
def test_arithmetic_is_exact(code: str, x: int, y: int) -> None:
    step = CURRENCIES[code].step
    a, b = Money.of(x - x % step, code), Money.of(y - y % step, code)
    total = a + b
    assert total.amount == a.amount + b.amount
    assert (total - b) == a
    # str() round-trips to the same number of minor units
    digits = str(total).split(" ")[0].replace(".", "")
    assert int(digits) == total.amount
