"""Turns experiments/vos/results.jsonl (written by run_table.py) into the README's markdown table.

    python experiments/vos/make_table.py

Per row: mean +- std (ddof=1) over seeds of J&F, J and F means and J decay. Differences between training
schemes are paired by seed (same seed: same initialisation, data order and evaluation videos) and given with a
95 % Student-t interval over the seeds (the per-video scores are not stored, so seeds are the only unit).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # table_stats.py in experiments/

from table_stats import load_runs as load, paired_t_interval as paired_interval  # noqa: E402
ROWS = ("raw_colour", "random_init", "pairwise", "memory", "memory_momentum")
METRICS = (("j_and_f_mean", "J&F"), ("j_mean", "J mean"), ("f_mean", "F mean"), ("j_decay", "J decay"))
COMPARISONS = (("memory", "pairwise"), ("memory_momentum", "memory"), ("pairwise", "random_init"))






def table(runs: dict[str, dict[int, dict]]) -> str:
    lines = ["| row | steps | seeds | " + " | ".join(name for _, name in METRICS) + " |"]
    lines.append("| --- " * (3 + len(METRICS)) + "|")
    for row in ROWS:
        if row not in runs:
            continue
        records = [runs[row][seed] for seed in sorted(runs[row])]
        cells = []
        for key, _ in METRICS:
            values = np.array([r[key] for r in records])
            cells.append(f"{values.mean():.3f} +- {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}")
        lines.append(f"| {row} | {records[0]['steps']} | {len(records)} | " + " | ".join(cells) + " |")
    for a, b in COMPARISONS:
        seeds = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
        if len(seeds) > 1:
            mean, low, high = paired_interval(
                [runs[a][s]["j_and_f_mean"] for s in seeds], [runs[b][s]["j_and_f_mean"] for s in seeds]
            )
            lines.append(f"\nJ&F({a}) - J&F({b}) = {mean:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}] ({len(seeds)} seeds, paired).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(HERE, "results.jsonl"))
    args = parser.parse_args()
    print(table(load(args.results)), end="")


if __name__ == "__main__":
    main()
