"""`make soak` in short: clients in rooms, joining and leaving, against `apigw-local start`
with the app as its own process; every delivery checked (bench/soak.py). No timing asserted:
each wait is bounded and the figures are counts."""

import json
import subprocess
import sys

import pytest

from bench.harness import ROOT
from bench.soak import Client, Sent, Soak, Stay, violations

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_short_soak_delivers_every_message_once_in_order_to_its_room_only():
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--clients", "40", "--rooms", "4",
         "--messages", "10", "--churn", "4", "--timeout", "180"],
        cwd=ROOT, capture_output=True, text=True, timeout=850)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    result = json.loads(run.stdout)
    assert result["sent"] == result["acknowledged"] == 400
    # Every client is a member of its room for most sends: plenty was owed, and all of it came.
    assert result["expected"] > 400 * 5
    assert result["received"] >= result["expected"]
    assert (result["missing"], result["duplicated"], result["misordered"],
            result["foreign"]) == (0, 0, 0, 0)
    assert "acknowledged" in run.stderr  # progress lines
    assert set(result["rss_mib"]) == {"gateway", "dynamodb", "workers"}
    # DynamoDB's growth follows what it stored (moto's objects: about 10 times DynamoDB's own
    # measure of the chat's items, a little more here where the allocator's settling is a
    # larger share); it was 70 times when moto kept a copy of every item each Query answered.
    memory = result["dynamodb_memory"]
    assert memory["items_stored"] >= 2 * 400  # each message and its clientId claim
    assert memory["growth_per_stored_byte"] < 30, memory


def _client(user: str, stays: dict[str, list[Stay]], messages) -> Client:
    client = Client.__new__(Client)
    client.user, client.stays, client.messages = user, stays, messages
    return client


def test_check_counts_each_kind_of_violation():
    run = Soak(clients=2, rooms=2, messages=2, churn=0, timeout=1)
    run.sent = {"a-1": Sent("r0", "a", 1, at=10, acked=11, id="m1"),
                "a-2": Sent("r0", "a", 2, at=12, acked=13, id="m2"),
                "b-1": Sent("r1", "b", 1, at=10, acked=11, id="m3")}
    member = _client("a", {"r0": [Stay(join_sent=1, answered=2)]},
                     [("r0", "m2", 2), ("r0", "m1", 1), ("r0", "m1", 1)])
    # Left r1 (its own `left` at 5) before m3 was sent, yet received it.
    outsider = _client("c", {"r1": [Stay(join_sent=1, answered=2, leave_sent=4, left=5)]},
                       [("r1", "m3", 1)])
    # In r0 throughout, received nothing.
    silent = _client("d", {"r0": [Stay(join_sent=1, answered=2)]}, [])
    tallies = run.check([member, outsider, silent])
    assert tallies == {"expected": 4, "received": 4, "duplicated": 1, "missing": 2,
                       "misordered": 2, "foreign": 1, "unknown": 0}
    result = {**tallies, "errors": 0, "problems": [], "clients": 2, "messages_each": 2,
              "acknowledged": 3}
    assert "1 duplicated" in violations(result) and "3 of 4 messages acknowledged" in \
        violations(result)
