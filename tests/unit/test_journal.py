"""The double-entry journal: postings, transactions and the trial balance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.journal import Account, JournalTransaction, Posting, balances, is_balanced

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = Account


def _txn(key: str, *postings: Posting, currency: str = "INR") -> JournalTransaction:
    return JournalTransaction(
        key=key, kind="test", order_id="ord_1", currency=currency, postings=postings, occurred_at=T0
    )


@pytest.mark.parametrize("amount", [0, -1, -50000, 1.0, 100.0, 0.5, "100", True, None])
def test_posting_refuses_non_positive_and_non_int_amounts(amount: object) -> None:
    with pytest.raises(ValidationError):
        Posting(A.GATEWAY_RECEIVABLE, A.SALES, amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("account", list(Account))
def test_posting_refuses_same_account(account: Account) -> None:
    with pytest.raises(ValidationError, match="two different accounts"):
        Posting(account, account, 100)


def test_posting_accepts_positive_int() -> None:
    p = Posting(A.GATEWAY_RECEIVABLE, A.SALES, 1)
    assert (p.debit, p.credit, p.amount) == (A.GATEWAY_RECEIVABLE, A.SALES, 1)


def test_transaction_needs_postings_and_key() -> None:
    with pytest.raises(ValidationError):
        _txn("k")
    with pytest.raises(ValidationError):
        _txn("", Posting(A.GATEWAY_RECEIVABLE, A.SALES, 100))


def test_lines_are_signed_debit_positive() -> None:
    t = _txn(
        "fee:pay_1",
        Posting(A.GATEWAY_FEES, A.GATEWAY_RECEIVABLE, 1000),
        Posting(A.GATEWAY_TAX, A.GATEWAY_RECEIVABLE, 180),
    )
    assert t.lines() == [
        (A.GATEWAY_FEES, 1000),
        (A.GATEWAY_RECEIVABLE, -1000),
        (A.GATEWAY_TAX, 180),
        (A.GATEWAY_RECEIVABLE, -180),
    ]
    assert sum(amount for _, amount in t.lines()) == 0
    assert is_balanced(t)


def test_capture_fee_and_refund_scenario_balances() -> None:
    txns = [
        _txn("capture:pay_1", Posting(A.GATEWAY_RECEIVABLE, A.SALES, 50000)),
        _txn(
            "fee:pay_1",
            Posting(A.GATEWAY_FEES, A.GATEWAY_RECEIVABLE, 1000),
            Posting(A.GATEWAY_TAX, A.GATEWAY_RECEIVABLE, 180),
        ),
        _txn("refund:rfnd_1", Posting(A.REFUNDS, A.GATEWAY_RECEIVABLE, 20000)),
    ]
    assert all(is_balanced(t) for t in txns)
    b = balances(txns)
    assert b == {
        "INR": {
            "gateway_receivable": 50000 - 1000 - 180 - 20000,
            "sales": -50000,
            "gateway_fees": 1000,
            "gateway_tax": 180,
            "refunds": 20000,
        }
    }
    assert sum(b["INR"].values()) == 0


def test_refund_reversal_cancels_the_refund() -> None:
    txns = [
        _txn("capture:pay_1", Posting(A.GATEWAY_RECEIVABLE, A.SALES, 50000)),
        _txn("refund:rfnd_1", Posting(A.REFUNDS, A.GATEWAY_RECEIVABLE, 50000)),
        _txn("refund_reversal:rfnd_1", Posting(A.GATEWAY_RECEIVABLE, A.REFUNDS, 50000)),
    ]
    b = balances(txns)["INR"]
    assert b["refunds"] == 0
    assert b["gateway_receivable"] == 50000
    assert b["sales"] == -50000


def test_balances_are_per_currency() -> None:
    txns = [
        _txn("capture:pay_1", Posting(A.GATEWAY_RECEIVABLE, A.SALES, 50000)),
        _txn("capture:pay_2", Posting(A.GATEWAY_RECEIVABLE, A.SALES, 700), currency="USD"),
    ]
    b = balances(txns)
    assert b == {
        "INR": {"gateway_receivable": 50000, "sales": -50000},
        "USD": {"gateway_receivable": 700, "sales": -700},
    }


def test_empty_journal_has_no_balances() -> None:
    assert balances([]) == {}


@st.composite
def _valid_posting(draw: st.DrawFn) -> Posting:
    debit, credit = draw(st.permutations(list(Account)))[:2]
    return Posting(debit, credit, draw(st.integers(min_value=1, max_value=10**12)))


@st.composite
def _transaction(draw: st.DrawFn) -> JournalTransaction:
    postings = draw(st.lists(_valid_posting(), min_size=1, max_size=4))
    currency = draw(st.sampled_from(["INR", "USD", "JPY"]))
    key = draw(st.text(min_size=1, max_size=10))
    return _txn(key, *postings, currency=currency)


@settings(database=None, deadline=None, max_examples=60)
@given(st.lists(_transaction(), max_size=30))
def test_any_sequence_of_valid_transactions_balances_to_zero(txns: list[JournalTransaction]) -> None:
    for t in txns:
        assert is_balanced(t)
    b = balances(txns)
    assert set(b) == {t.currency for t in txns}
    for accounts in b.values():
        assert sum(accounts.values()) == 0
        assert set(accounts) <= {a.value for a in Account}
    # debits of every posting show up in the debited account's balance
    for currency, accounts in b.items():
        for account in Account:
            expected = sum(
                (p.amount if p.debit is account else 0) - (p.amount if p.credit is account else 0)
                for t in txns
                if t.currency == currency
                for p in t.postings
            )
            assert accounts.get(account.value, 0) == expected
