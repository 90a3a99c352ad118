"""Demo data for `make run`, dated relative to today so the dashboard's 12 weeks show it.

    python local/seed.py > .local/seed.json      # then: apigw-local start --seed .local/seed.json

Prints apigw-local's seed format, {"TableLogicalId": [items]}: transactions over the last
four ISO weeks, some verified (their weeks' totals included), most pending for the demo.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "shared"))

from realtime import clock, ids, income  # noqa: E402 - the layer is not installed

# (days ago, hour, amount in cents, description, verified)
DEMO = [
    (22, 9, 125000, "Consulting, October", True),
    (20, 16, 48000, "Workshop tickets", True),
    (15, 11, 99900, "Annual subscription", True),
    (13, 14, 15050, "Merchandise order", False),
    (9, 8, 230000, "Project milestone 2", False),
    (6, 17, 7500, "Donation", False),
    (2, 10, 61000, "Training day", False),
    (1, 13, 18990, "Support plan", False),
]


def build(now: datetime) -> dict[str, list[dict[str, object]]]:
    transactions, weeks = [], {}
    for days_ago, hour, amount, description, verified in DEMO:
        created = (now - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0,
                                                          microsecond=0)
        week = income.week_of(created)
        item: dict[str, object] = {
            "id": ids.new_id(created), "kind": "transaction", "amount": amount,
            "description": description, "status": "pending",
            "createdAt": clock.iso(created), "week": week,
        }
        if verified:
            item.update(status="verified", verifiedAt=clock.iso(created + timedelta(hours=4)),
                        verifiedBy="admin")
            total = weeks.setdefault(week, {"series": "weekly", "week": week, "total": 0,
                                            "count": 0})
            total["total"] += amount
            total["count"] += 1
        transactions.append(item)
    return {"TransactionsTable": transactions, "WeeklyIncomeTable": list(weeks.values())}


if __name__ == "__main__":
    json.dump(build(clock.now()), sys.stdout, indent=2)
    print()
