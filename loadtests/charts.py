"""Charts of latency against load from a ``loadtests/run.py`` report (locust's
``<step>_stats_history.csv``, one row per second and entry, plus ``summary.json``).

    .venv/bin/python loadtests/charts.py var/loadtest --out docs/img

For each journey measured at several user counts: one PNG with the journeys completed per
second (left) and the journey's median and 95th percentile time (right) against the number
of simulated people, each point the steady part of one step (the first seconds, while users
start, are left out). The figures in docs/capacite.md come from these runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

WARMUP_SECONDS = 3


def step_points(history: Path) -> dict[str, dict[str, float]]:
    """Per JOURNEY entry of one step: mean journeys/s, median of the per-second p50 and p95."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    with history.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Type"] == "JOURNEY" and row["50%"] != "N/A":
                rows[row["Name"]].append(row)
    points: dict[str, dict[str, float]] = {}
    for name, entries in rows.items():
        start = int(entries[0]["Timestamp"])
        steady = [r for r in entries if int(r["Timestamp"]) - start >= WARMUP_SECONDS] or entries
        points[name] = {
            "per_second": statistics.mean(float(r["Requests/s"]) for r in steady),
            "p50": statistics.median(float(r["50%"]) for r in steady),
            "p95": statistics.median(float(r["95%"]) for r in steady),
        }
    return points


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.split(" (")[0].lower()).strip("-")[:50]


def draw(report: Path, out: Path) -> list[Path]:
    summary: dict[str, Any] = json.loads((report / "summary.json").read_text())
    series: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    for step in summary["steps"]:
        history = report / f"{step['label']}_stats_history.csv"
        for name, point in step_points(history).items():
            series[name].append((int(step["users"]), point))
    meta = summary["meta"]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, points in sorted(series.items()):
        if len(points) < 2:
            continue
        points.sort(key=lambda p: p[0])
        users = [u for u, _ in points]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
        left.plot(users, [p["per_second"] for _, p in points], marker="o", color="#1b6ca8")
        left.set_xlabel("utilisateurs simultanés (boucle fermée, sans pause)")
        left.set_ylabel("parcours terminés par seconde")
        left.set_xscale("log", base=2)
        left.set_xticks(users, [str(u) for u in users])
        left.set_ylim(bottom=0)
        left.grid(alpha=0.3)
        right.plot(users, [p["p50"] for _, p in points], marker="o", label="médiane",
                   color="#2a9d8f")
        right.plot(users, [p["p95"] for _, p in points], marker="s", label="95e centile",
                   color="#c0392b")
        right.set_xlabel("utilisateurs simultanés")
        right.set_ylabel("durée du parcours (ms)")
        right.set_xscale("log", base=2)
        right.set_xticks(users, [str(u) for u in users])
        right.set_ylim(bottom=0)
        right.legend()
        right.grid(alpha=0.3)
        fig.suptitle(f"{name}\n{meta['backend']}, {meta['workers']} worker(s), "
                     f"{meta['cpus']} cœurs partagés ({meta['date']})", fontsize=9)
        fig.tight_layout()
        path = out / f"capacite-{slug(name)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Latency against load, from locust's CSV.")
    parser.add_argument("report", type=Path, help="a loadtests/run.py report directory")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    for path in draw(args.report, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
