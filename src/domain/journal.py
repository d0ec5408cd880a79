"""The double-entry journal.

A money movement is one :class:`JournalTransaction` made of :class:`Posting` s. Each posting moves a
positive amount from a credited account to a debited account in one currency, so every transaction sums
to zero per currency by construction; :meth:`JournalTransaction.lines` shows the classic signed view
(debit positive, credit negative). Transactions are append-only: corrections are new transactions with
their own key. The key makes an effect happen once (``capture:pay_X``, ``refund:rfnd_X``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.errors import ValidationError


class Account(StrEnum):
    """The chart of accounts of the service."""

    GATEWAY_RECEIVABLE = "gateway_receivable"  # asset: what the gateway owes us
    SALES = "sales"  # revenue
    REFUNDS = "refunds"  # contra-revenue
    GATEWAY_FEES = "gateway_fees"  # expense
    GATEWAY_TAX = "gateway_tax"  # expense: tax on the gateway's fee


@dataclass(frozen=True, slots=True)
class Posting:
    """``amount`` minor units debited to ``debit`` and credited to ``credit``."""

    debit: Account
    credit: Account
    amount: int

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise ValidationError("a posting amount must be a positive integer.")
        if self.debit == self.credit:
            raise ValidationError("a posting must move money between two different accounts.")


@dataclass(frozen=True, slots=True)
class JournalTransaction:
    """One money movement: postings in a single currency under a unique key."""

    key: str
    kind: str
    order_id: str
    currency: str
    postings: tuple[Posting, ...]
    occurred_at: datetime
    reference: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.postings:
            raise ValidationError("a journal transaction needs at least one posting.")
        if not self.key:
            raise ValidationError("a journal transaction needs a key.")

    def lines(self) -> list[tuple[Account, int]]:
        """Signed lines, debit positive and credit negative; they always sum to zero."""
        out: list[tuple[Account, int]] = []
        for p in self.postings:
            out.append((p.debit, p.amount))
            out.append((p.credit, -p.amount))
        return out


def balances(transactions: Iterable[JournalTransaction]) -> dict[str, dict[str, int]]:
    """Trial balance: per currency, each account's signed balance (debit positive)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for txn in transactions:
        for account, amount in txn.lines():
            out[txn.currency][account.value] += amount
    return {cur: dict(accts) for cur, accts in out.items()}


def is_balanced(transaction: JournalTransaction) -> bool:
    """True when the signed lines of the transaction sum to zero (always, by construction)."""
    return sum(amount for _, amount in transaction.lines()) == 0
