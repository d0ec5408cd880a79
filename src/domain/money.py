"""Money in integer minor units of an ISO 4217 currency.

No float ever becomes money: amounts are ``int`` (and not ``bool``) or they are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency as the gateway accepts it.

    ``exponent`` is the number of minor-unit digits. ``minimum`` is the smallest order amount in minor
    units. ``step`` is the granularity of amounts: three-decimal currencies (KWD, BHD, OMR) must end in 0.
    """

    code: str
    exponent: int
    minimum: int
    step: int = 1


def _c(code: str, exponent: int, minimum: int | None = None) -> Currency:
    step = 10 if exponent == 3 else 1
    return Currency(code, exponent, minimum if minimum is not None else 10**exponent, step)


# Currencies Razorpay accepts for international payments (a well-known subset); minimum order amount
# is one major unit (INR: 100 paise, as Razorpay documents), except where Razorpay documents otherwise.
CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        _c("INR", 2, 100),
        _c("USD", 2),
        _c("EUR", 2),
        _c("GBP", 2),
        _c("SGD", 2),
        _c("AED", 2),
        _c("AUD", 2),
        _c("CAD", 2),
        _c("CHF", 2),
        _c("HKD", 2),
        _c("MYR", 2),
        _c("NZD", 2),
        _c("SAR", 2),
        _c("SEK", 2),
        _c("THB", 2),
        _c("ZAR", 2),
        _c("JPY", 0),
        _c("KRW", 0),
        _c("VND", 0),
        _c("KWD", 3),
        _c("BHD", 3),
        _c("OMR", 3),
    )
}

# Upper bound of a single amount in minor units: far above any real order, far below 2**63.
MAX_AMOUNT = 10**12


def currency_of(code: object) -> Currency:
    """Look up a supported currency by its ISO code (exact, upper case)."""
    if not isinstance(code, str) or code not in CURRENCIES:
        raise ValidationError("currency must be a supported ISO 4217 code such as INR.")
    return CURRENCIES[code]


def parse_minor_units(value: object, field: str = "amount") -> int:
    """Accept only a JSON integer: floats, numeric strings and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be an integer number of minor units (e.g. paise).")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency. Immutable; arithmetic keeps the currency."""

    amount: int
    currency: Currency

    def __post_init__(self) -> None:
        parse_minor_units(self.amount)
        if self.amount < 0:
            raise ValidationError("amount must not be negative.")
        if self.amount > MAX_AMOUNT:
            raise ValidationError(f"amount must be at most {MAX_AMOUNT}.")
        if self.amount % self.currency.step:
            raise ValidationError(
                f"{self.currency.code} amounts must be a multiple of {self.currency.step} minor units."
            )

    @classmethod
    def of(cls, amount: object, currency: object) -> Money:
        """Build from untrusted input (an integer and an ISO code)."""
        return cls(parse_minor_units(amount), currency_of(currency))

    @classmethod
    def order_amount(cls, amount: object, currency: object) -> Money:
        """An amount a customer can be charged: at least the currency's minimum."""
        money = cls.of(amount, currency)
        if money.amount < money.currency.minimum:
            raise ValidationError(
                f"amount must be at least {money.currency.minimum} for {money.currency.code}."
            )
        return money

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError("currencies differ.")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __str__(self) -> str:
        exp = self.currency.exponent
        if exp == 0:
            return f"{self.amount} {self.currency.code}"
        major, minor = divmod(self.amount, 10**exp)
        return f"{major}.{minor:0{exp}d} {self.currency.code}"
