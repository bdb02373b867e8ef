"""The peer comparison's figures: medians of per-round ratios, not ratios of averages, so one
slow round of one server cannot decide the verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # as bench/run.py imports it

from report import (  # noqa: E402
    ONE_WORKER,
    PEER_TARGETS,
    TWO_WORKERS,
    alternated,
    peer_summary,
    peers_table,
    per_round,
)


def _row(name: str, round_: int, conns: int, req_s: float, p99: float) -> dict[str, Any]:
    return {"name": name, "round": round_, "connections": conns, "req_s": req_s,
            "p99_ms": p99, "p50_ms": p99 / 4, "server_cores": 1.0, "errors": 0}  # fmt: skip


def _peers(ours: list[float], theirs: list[float], plain_c1: list[float]) -> dict[str, Any]:
    rows = []
    for round_, (a, b, c) in enumerate(zip(ours, theirs, plain_c1, strict=True)):
        rows += [
            _row("latentserve", round_, 32, a, 50),
            _row("latentserve", round_, 1, 400, 2),
            _row("MLServer", round_, 32, b, 90),
            _row("MLServer", round_, 1, 300, 3),
            _row("plain FastAPI route", round_, 32, b / 2, 40),
            _row("plain FastAPI route", round_, 1, c, 2),
        ]
    return {"rounds": len(ours), "duration_s": 10, "rows": rows,
            "processes": {"latentserve": 1, "MLServer": 2, "plain FastAPI route": 1},
            "peak_rss_mb": {"latentserve": 700, "MLServer": 900, "plain FastAPI route": 600},
            "versions": {}}  # fmt: skip


def test_ratios_are_taken_within_each_round_then_the_median() -> None:
    # Round 1 was slow for everyone: within-round ratios are 1.5, 1.5, 1.0.
    peers = _peers(ours=[1500, 600, 1000], theirs=[1000, 400, 1000], plain_c1=[400, 500, 200])
    vs_best, p99, c1 = (ratio for _, ratio, _, _ in PEER_TARGETS)
    spread = per_round(peers, vs_best)
    assert (spread.median, spread.low, spread.high) == (1.5, 1.0, 1.5)
    assert per_round(peers, p99).median == 50 / 40  # the plain route's p99 is the lowest
    c1_spread = per_round(peers, c1)
    assert (c1_spread.median, c1_spread.low, c1_spread.high) == (1.0, 0.8, 2.0)
    assert str(c1_spread) == "1.00 (0.80–2.00)"


def test_the_table_shows_each_servers_median_and_range() -> None:
    peers = _peers(ours=[1500, 600, 1000], theirs=[1000, 400, 1000], plain_c1=[400, 500, 200])
    assert peer_summary(peers)["latentserve"]["req_s"] == 1000  # the median, not the mean
    table = "\n".join(peers_table(peers))
    assert "| latentserve | 1000 (600–1500) |" in table
    assert "3 rounds" in table and "medians over the rounds" in table


def test_two_workers_against_one_is_taken_within_each_alternated_pair() -> None:
    # The machine slowed in round 1: both sides read low, their ratio did not.
    rows = [
        _row(name, round_, 32, req_s, 20)
        for round_, (one, two) in enumerate([(2000, 3600), (1000, 1900), (2100, 3400)])
        for name, req_s in ((ONE_WORKER, one), (TWO_WORKERS, two))
    ]
    spread = alternated(rows, TWO_WORKERS, ONE_WORKER)
    assert (spread.median, spread.low, spread.high) == (1.8, 3400 / 2100, 1.9)
    # The ratio of the medians would have read 3400 / 2000 = 1.70.
