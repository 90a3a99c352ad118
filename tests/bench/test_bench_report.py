"""The benchmark's statistics, presence views and figures table (no servers, no timing)."""

import math

from bench.harness import cpu_delta, percentile
from bench.load import View
from bench.report import Row, markdown, number, rows


def test_percentile_is_nearest_rank_and_nan_when_empty():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(samples, 50) == 3.0
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 5.0
    assert percentile(list(range(1, 101)), 99) == 99
    assert math.isnan(percentile([], 50))


def test_cpu_delta_per_group():
    before = {"gateway": {"cpu_s": 1.0}, "workers": {"cpu_s": 2.0}}
    after = {"gateway": {"cpu_s": 1.5}, "workers": {"cpu_s": 4.25}, "dynamodb": {"cpu_s": 0.5}}
    assert cpu_delta(before, after) == {"gateway": 0.5, "workers": 2.25, "dynamodb": 0.5}


def test_view_applies_snapshots_and_deltas():
    view = View()
    view.apply({"type": "presence", "members": ["a", "b"], "count": 2})
    view.apply({"type": "joined", "user": "c"})
    assert view.consistent({"a", "b", "c"})
    view.apply({"type": "left", "user": "a"})
    assert not view.consistent({"a", "b", "c"})
    assert view.consistent({"b", "c"})
    assert view.count == 2


def test_capped_view_is_consistent_by_count_and_listed_members():
    truth = {f"u{n}" for n in range(150)}
    view = View()
    view.apply({"type": "presence", "members": sorted(truth)[:100], "count": 150})
    assert view.capped and view.consistent(truth)
    view.apply({"type": "presence", "members": sorted(truth)[:100], "count": 149})
    assert not view.consistent(truth)
    view.apply({"type": "presence", "members": ["stranger"] + sorted(truth)[:99], "count": 150})
    assert not view.consistent(truth)


def results():
    def target(burst, paced50, paced99, consistent, room, new, rss, verify, echo, pipelined):
        return {
            "burst": {"deliveries_per_s": burst, "lost": 0},
            "paced": {"p50_ms": paced50, "p99_ms": paced99, "lost": 0},
            "joins": {"answered": 200, "all_consistent_ms": consistent},
            "curve": {"1000": {"p50_ms": room, "reached_all": 5, "messages": 5}},
            "new_per_s": new, "rss_mib": rss, "from_answer_p50_ms": verify,
            "p50_ms": echo, "pipelined": {"per_s": pipelined, "frames": 1000},
        }

    ours = target(6000, 20, 120, None, 250, 400, 900, 10, 0.5, 2500)
    channels = target(5000, 25, 90, 300, 200, 1500, 200, 5, 0.2, 4000)
    floor = target(100000, 5, 10, 50, 20, 3000, 50, None, 0.1, 40000)
    rooms_part = {"clients": 200, "messages": 200, "sizes": [10, 1000]}
    by_group = {"rooms": dict(rooms_part), "connections": {}, "dashboards": {}, "echo": {}}
    for name, data in (("apigw-local", ours), ("channels", channels), ("floor", floor)):
        by_group["rooms"][name] = {k: data[k] for k in ("burst", "paced", "joins", "curve")}
        by_group["connections"][name] = {"new_per_s": data["new_per_s"],
                                         "rss_mib": data["rss_mib"], "idle": 10000,
                                         "idle_still_open": 10000, "new_connections": 2000}
        by_group["dashboards"][name] = {"from_answer_p50_ms": data["from_answer_p50_ms"],
                                        "subscribers": 100}
        by_group["echo"][name] = {"p50_ms": data["p50_ms"], "pipelined": data["pipelined"]}
    by_group["echo"]["apigw-local-https"] = {"p50_ms": 1.2}
    return by_group


def test_rows_compare_with_baselines_and_judge_targets():
    table = {row.target: row for row in rows(results())}
    burst = table["≥ 1.0× Channels, 0 lost"]
    assert burst.ours == 6000 and burst.channels == 5000 and burst.met is True
    assert burst.ratio(burst.channels) == 1.2
    assert table["≤ 30 ms, 0 lost"].met is True
    assert table["≤ 100 ms, 0 lost"].met is False
    joins = table["all answered, ≤ 2 000 ms"]
    assert math.isinf(joins.ours) and joins.met is False  # never consistent
    assert table["≤ 300 ms, reaches all"].met is True
    assert table["≥ 500/s"].met is False
    assert table["≤ 1 024 MiB, all open"].met is True
    assert table["≤ 50 ms"].met is True and table["≤ 50 ms"].floor is None
    assert table["≤ 0.6 ms"].met is True
    assert table["≤ 1.0 ms"].met is False
    assert table["≥ 2 000/s"].met is True


def test_rows_leave_out_benchmarks_not_run():
    only_echo = {"echo": results()["echo"]}
    assert {row.target for row in rows(only_echo)} == {"≤ 0.6 ms", "≤ 1.0 ms", "≥ 2 000/s"}


def test_markdown_table():
    row = Row("echo", "ms", 0.5, channels=0.25, floor=None, target="≤ 0.6 ms", met=True)
    text = markdown({"when": "2026-11-30T20:00:00Z", "command": "python -m bench"}, [row])
    assert "| echo | 0.5 ms | 0.25 | — | 2.00× | — | ≤ 0.6 ms | met |" in text
    assert number(12345.6) == "12 346" and number(math.inf) == "never"
    assert number(float("nan")) == "n/a" and number(None) == "—"


def test_no_ratio_of_figures_at_or_below_zero():
    assert Row("verify", "ms", -2.0, channels=1.0).ratio(1.0) is None
    assert Row("verify", "ms", 2.0, channels=-1.0).ratio(-1.0) is None


def test_capped_view_counts_later_joins():
    truth = {f"u{n:03}" for n in range(150)}
    view = View()
    view.apply({"type": "presence", "members": sorted(truth)[:100], "count": 140})
    for user in sorted(truth)[140:]:
        view.apply({"type": "joined", "user": user})
    assert view.count == 150 and view.consistent(truth)
    view.apply({"type": "joined", "user": "u145"})  # a repeat changes nothing
    assert view.count == 150


def test_capped_view_is_unsure_of_unlisted_joins():
    truth = {f"u{n:03}" for n in range(150)}
    view = View()
    view.apply({"type": "presence", "members": sorted(truth)[:100], "count": 150})
    view.apply({"type": "joined", "user": "u120"})  # joined before the snapshot was read
    assert view.count == 151 and view.consistent(truth)
    assert not view.consistent(truth | {"u999"} | {"u998"})
