"""The markdown `make bench` prints (and docs/benchmarks.md quotes): the throughput table, the
peers table, and each target of the throughput issue as a ratio within the one run."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = tuple[str, "float | Spread", str, bool | None]  # name, measured, goal, met (None: none)


def find(rows: list[dict[str, Any]], name: str, path: str, conns: int) -> dict[str, Any]:
    return next(
        r for r in rows if r["name"] == name and r["path"] == path and r["connections"] == conns
    )


def best(rows: list[dict[str, Any]], name: str) -> float:
    """The higher req/s of a row measured more than once."""
    return max(r["req_s"] for r in rows if r["name"] == name)


# The 1-against-2-worker pair's rows (bench/run.py), alternated round after round.
ONE_WORKER = "pair: service, 1 worker"
TWO_WORKERS = "pair: service, 2 workers"


def peer_summary(peers: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per configuration: the median over its rounds of req/s, p99 and server cores at 32
    connections and of req/s and p50 at one, and the range of its 32-connection req/s."""
    summary: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["name"] for r in peers["rows"]):
        c32 = [r for r in peers["rows"] if r["name"] == name and r["connections"] == 32]
        c1 = [r for r in peers["rows"] if r["name"] == name and r["connections"] == 1]
        summary[name] = {
            "req_s": statistics.median(r["req_s"] for r in c32),
            "low": min(r["req_s"] for r in c32),
            "high": max(r["req_s"] for r in c32),
            "p99_ms": statistics.median(r["p99_ms"] for r in c32),
            "cores": statistics.median(r["server_cores"] for r in c32),
            "c1_req_s": statistics.median(r["req_s"] for r in c1),
            "c1_p50_ms": statistics.median(r["p50_ms"] for r in c1),
            "errors": sum(r["errors"] for r in c32 + c1),
        }
    return summary


@dataclass(frozen=True)
class Spread:
    """A ratio taken within each round (both sides measured minutes apart at most), as the
    median of the rounds with their lowest and highest."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.low:.2f}–{self.high:.2f})"


def alternated(rows: list[dict[str, Any]], after: str, before: str) -> Spread:
    """`after` over `before`, taken within each round (their n-th rows), as a Spread."""
    values = [
        a["req_s"] / b["req_s"]
        for a, b in zip(
            (r for r in rows if r["name"] == after),
            (r for r in rows if r["name"] == before),
            strict=True,
        )
    ]
    return Spread.of(values)


def per_round(peers: dict[str, Any], ratio: Callable[[dict[str, dict[int, Any]]], float]) -> Spread:
    """`ratio` of each round's rows (by configuration name, then connections)."""
    values = []
    for round_ in sorted({r["round"] for r in peers["rows"]}):
        rows: dict[str, dict[int, Any]] = {}
        for r in peers["rows"]:
            if r["round"] == round_:
                rows.setdefault(r["name"], {})[r["connections"]] = r
        values.append(ratio(rows))
    return Spread.of(values)


def _vs_best_peer(rows: dict[str, dict[int, Any]]) -> float:
    ours = rows.pop("latentserve")
    return float(ours[32]["req_s"] / max(r[32]["req_s"] for r in rows.values()))


def _p99_vs_lowest_peer(rows: dict[str, dict[int, Any]]) -> float:
    ours = rows.pop("latentserve")
    return float(ours[32]["p99_ms"] / min(r[32]["p99_ms"] for r in rows.values()))


def _c1_vs_plain_route(rows: dict[str, dict[int, Any]]) -> float:
    return float(rows["latentserve"][1]["req_s"] / rows["plain FastAPI route"][1]["req_s"])


PEER_TARGETS = [
    ("/classify c=32 req/s vs the best peer", _vs_best_peer, ">= 1.5x", 1.5),
    ("/classify c=32 p99 vs the lowest peer p99", _p99_vs_lowest_peer, "< 1x", -0.9999),
    ("/classify c=1 req/s vs the plain FastAPI route", _c1_vs_plain_route, ">= 1.0x", 1.0),
]


def targets(results: dict[str, Any]) -> list[Check]:
    """The throughput issue's targets, then ratios with no target (met None)."""
    rows = results["rows"]
    hello = find(rows, "hello-world ceiling", "/", 32)
    base32 = find(rows, "unbatched baseline", "/classify", 32)
    base1 = find(rows, "unbatched baseline", "/classify", 1)
    svc32 = find(rows, "service, 1 PNG", "/classify", 32)
    svc1 = find(rows, "service, 1 PNG", "/classify", 1)
    big = find(rows, "service, 256 PNGs", "/classify", 8)
    svc2 = find(rows, TWO_WORKERS, "/classify", 32)  # its first round
    hello2 = find(rows, "hello-world, 2 workers", "/", 32)
    floor32 = find(rows, "no-model floor", "/classify", 32)
    inproc = results["in_process"]["batch_512_images_s"]
    peak = results["peak_rss_mb"]["service"]
    checks: list[tuple[str, float, str, float]] = []
    spreads: list[tuple[str, Spread, str, float]] = []
    if "peers" in results:
        peers = results["peers"]
        spreads += [
            (name, per_round(peers, ratio), goal, bound)
            for name, ratio, goal, bound in PEER_TARGETS
        ]
    workers = alternated(rows, TWO_WORKERS, ONE_WORKER)
    spreads.append(("2 workers vs 1 worker, /classify c=32 req/s", workers, ">= 1.7x", 1.7))
    svc, floor = svc32["req_s"], floor32["req_s"]
    checks += [
        ("service c=32 req/s vs its no-model floor", svc / floor, ">= 0.9x", 0.9),
        ("no-model floor c=32 req/s vs hello-world", floor / hello["req_s"], ">= 0.35x", 0.35),
        ("256-image images/s vs in-process batch 512", big["images_s"] / inproc, ">= 0.6x", 0.6),
        ("server cores, /classify c=32", svc32["server_cores"], ">= 1.6", 1.6),
        ("peak RSS per worker, MB (every shipped model)", peak, "<= 600", -600),
        ("c=1 p50 minus unbatched p50 (ms)", svc1["p50_ms"] - base1["p50_ms"], "<= 1 ms", -1.0),
    ]
    context = [
        ("/classify c=32 req/s vs unbatched", svc32["req_s"] / base32["req_s"]),
        (
            "service on granian vs on uvicorn, c=32 (alternated pair)",
            best(rows, "pair: service on granian") / best(rows, "pair: service on uvicorn"),
        ),
        (
            "no-model floor on granian vs on uvicorn, c=32",
            find(rows, "no-model floor on granian", "/classify", 32)["req_s"] / floor32["req_s"],
        ),
        ("hello-world 2 workers vs 1", hello2["req_s"] / hello["req_s"]),
        (
            "V2 binary PNG c=32 req/s vs /classify c=32 (alternated pair)",
            best(rows, "pair: V2 binary PNG") / best(rows, "pair: native /classify"),
        ),
    ]
    measured: list[Check] = [
        (f"{name}, median of rounds (range)", spread, goal, _met(spread.median, bound))
        for name, spread, goal, bound in spreads
    ]
    measured += [(name, value, goal, _met(value, bound)) for name, value, goal, bound in checks]
    if "machine_cores" in svc32:  # whether the worker's missing cores sat idle or went to wrk
        context += [
            ("machine busy cores during /classify c=32", svc32["machine_cores"]),
            ("wrk cores during /classify c=32", svc32["client_cores"]),
            ("machine busy cores, 2 workers, /classify c=32 (first round)", svc2["machine_cores"]),
        ]
    if split := svc2.get("connections_per_process"):  # uneven accepts leave a worker short
        context.append(
            (
                "2 workers: the busier one's share of the connections (first round)",
                max(split) / sum(split),
            )
        )
    return measured + [(name, value, "–", None) for name, value in context]


def _met(value: float, bound: float) -> bool:
    """A positive bound is a floor, a negative one (its magnitude) a ceiling."""
    return value >= bound if bound > 0 else value <= -bound


def _cores(row: dict[str, Any], key: str) -> str:
    """A cores figure, or a dash in results from before it was measured."""
    return f"{row[key]:.2f}" if key in row else "–"


def throughput_table(results: dict[str, Any]) -> list[str]:
    lines = [
        f"Machine: {results['machine']}; wrk on the same machine, {results['duration_s']} s "
        f"per run, one uvicorn worker, model `{results['model']}`.",
        "",
        "| run | path | conns | images/req | req/s | images/s | p50 ms | p99 ms | server cores "
        "| wrk cores | machine busy cores | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['name']} | {r['path']} | {r['connections']} | {r['images_per_request']} | "
            f"{r['req_s']:.0f} | {r['images_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['server_cores']:.2f} | {_cores(r, 'client_cores')} | "
            f"{_cores(r, 'machine_cores')} | {r['errors']} |"
        )
    inproc = results["in_process"]
    return [
        *lines,
        "",
        f"In-process encoder + head (no HTTP, {inproc.get('runtime', 'ModelVersion')}): "
        f"{inproc['batch_512_images_s']:.0f} "
        f"images/s at batch 512, {inproc['batch_1_images_s']:.0f} images/s one image "
        "per call.",
        "",
        "Peak RSS per server process: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in results["peak_rss_mb"].items())
        + ".",
    ]


def peers_table(peers: dict[str, Any]) -> list[str]:
    summary = peer_summary(peers)
    lines = [
        "",
        f"Peers: {peers['rounds']} rounds of {peers['duration_s']} s per configuration and "
        "connection count, every server up throughout, one loaded at a time, the rounds "
        "interleaved; medians over the rounds (32-connection req/s range in brackets). "
        "One PNG (or its pixels) per request. "
        "Peak RSS: the sum over the configuration's processes.",
        "",
        "| server | c=32 req/s | c=32 p99 ms | c=32 server cores | c=1 req/s | c=1 p50 ms "
        "| processes | peak RSS MB | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['req_s']:.0f} ({s['low']:.0f}–{s['high']:.0f}) | {s['p99_ms']:.1f} "
            f"| {s['cores']:.2f} | {s['c1_req_s']:.0f} | {s['c1_p50_ms']:.2f} "
            f"| {peers['processes'][name]} | {peers['peak_rss_mb'][name]:.0f} | {s['errors']} |"
        )
    lines += ["", "Versions: " + "; ".join(f"{k}: {v}" for k, v in peers["versions"].items())]
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = throughput_table(results)
    if "peers" in results:
        lines += peers_table(results["peers"])
    lines += ["", "| target | measured | goal | met |", "| --- | --- | --- | --- |"]
    for name, value, goal, ok in targets(results):
        met = "–" if ok is None else "yes" if ok else "**no**"
        shown = value if isinstance(value, Spread) else f"{value:.2f}"
        lines.append(f"| {name} | {shown} | {goal} | {met} |")
    errors = sum(r["errors"] for r in results["rows"])
    errors += sum(r["errors"] for r in results.get("peers", {}).get("rows", []))
    lines.append(f"| errors in every run | {errors} | 0 | {'yes' if errors == 0 else '**no**'} |")
    return "\n".join(lines) + "\n"
