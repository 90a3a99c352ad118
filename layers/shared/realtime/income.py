"""Weekly income: ISO weeks, the series of the latest weeks, and the dashboard's `income` frame.

An amount counts in the ISO week (ISO 8601, weeks start on Monday, week 1 holds the year's
first Thursday) of its transaction's `createdAt`, in UTC. So Sunday 23:59:59.999 belongs to
the week that ends, Monday 00:00 to the next, and 2027-01-03 is in 2026-W53.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from realtime.models import IncomeFrame, IncomeUpdate, WeekTotal
from realtime.store import Store

SERIES_WEEKS = 12
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_of(instant: datetime) -> str:
    year, week, _ = instant.astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


def monday_of(week: str) -> date:
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"not an ISO week: {week!r}")
    return date.fromisocalendar(int(match[1]), int(match[2]), 1)


def weeks_ending(last: str, count: int) -> list[str]:
    """`count` consecutive ISO weeks ending with `last`, oldest first."""
    monday = monday_of(last)
    weeks = []
    for back in range(count - 1, -1, -1):
        year, week, _ = (monday - timedelta(weeks=back)).isocalendar()
        weeks.append(f"{year:04d}-W{week:02d}")
    return weeks


def series(store: Store, current_week: str, count: int = SERIES_WEEKS) -> list[WeekTotal]:
    """The latest `count` weeks, oldest first, weeks without income as zeros: one Query."""
    weeks = weeks_ending(current_week, count)
    totals = store.week_totals(weeks[0], weeks[-1])
    return [
        WeekTotal(week=w, total=totals.get(w, (0, 0))[0], count=totals.get(w, (0, 0))[1])
        for w in weeks
    ]


def week_total(store: Store, week: str) -> WeekTotal:
    total, count = store.week_totals(week, week).get(week, (0, 0))
    return WeekTotal(week=week, total=total, count=count)


def income_frame(store: Store, now: datetime, updated: IncomeUpdate | None = None) -> IncomeFrame:
    """The dashboard's frame: the latest weeks and the income version they are a snapshot of
    (one consistent read, so a client may drop any frame older than one it has shown)."""
    current = week_of(now)
    weeks = weeks_ending(current, SERIES_WEEKS)
    version, totals = store.income_snapshot(weeks)
    return IncomeFrame(
        version=version,
        current_week=current,
        weeks=[WeekTotal(week=w, total=totals[w][0], count=totals[w][1]) for w in weeks],
        updated=updated,
    )
