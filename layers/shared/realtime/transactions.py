"""Transactions: create, list, and verify exactly once (then tell the dashboards).

Verification is one DynamoDB transaction (see `Store.verify_transaction`): the status flips
pending → verified under a condition and the amount is added to the week in the same write,
so a repeat or a race is refused by the database itself, never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from realtime import clock, income
from realtime.fanout import Fanout, FanoutResult
from realtime.ids import new_id
from realtime.models import DASHBOARD, IncomeUpdate, NewTransaction, Transaction, WeekTotal
from realtime.store import AlreadyVerified, NotFound, Store, channel_target

# A createdAt may lie in the past (imports) but not in the future beyond clock skew.
MAX_FUTURE = timedelta(minutes=5)

__all__ = ["AlreadyVerified", "NotFound", "Verified", "create", "list_page", "verify"]


class InvalidTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Verified:
    transaction: Transaction
    week: WeekTotal
    push: FanoutResult | None


def create(store: Store, body: NewTransaction, now: datetime) -> Transaction:
    created = body.created_at or now
    if created > now + MAX_FUTURE:
        raise InvalidTransaction("createdAt: must not be in the future")
    transaction = Transaction(
        id=new_id(created),
        amount=body.amount,
        description=body.description,
        status="pending",
        created_at=clock.iso(created),
        week=income.week_of(created),
    )
    store.put_transaction(transaction)
    return transaction


def list_page(
    store: Store, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Transaction], str | None]:
    return store.list_transactions(status, limit, cursor)


def verify(
    store: Store, transaction_id: str, by: str, now: datetime, fanout: Fanout | None = None
) -> Verified:
    """Verify once; raises NotFound or AlreadyVerified. Then push absolute totals."""
    pending = store.get_transaction(transaction_id)
    if pending is None:
        raise NotFound(transaction_id)
    if pending.status == "verified":
        raise AlreadyVerified(transaction_id)
    store.verify_transaction(pending, by=by, at=clock.iso(now))
    verified = pending.model_copy(
        update={"status": "verified", "verified_at": clock.iso(now), "verified_by": by}
    )
    week = income.week_total(store, verified.week)
    push = None
    if fanout is not None:
        frame = income.income_frame(
            store, now, IncomeUpdate(week=verified.week, transaction_id=verified.id)
        )
        push = fanout.to_target(channel_target(DASHBOARD), frame)
    return Verified(verified, week, push)
