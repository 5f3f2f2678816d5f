"""Turns experiments/imm/results.jsonl (written by run_table.py) into the markdown table.

    PYTHONPATH=$PWD python experiments/imm/make_table.py > experiments/imm/TABLE.md

One line per row: regressed test NME (inter-ocular, 256 test faces) as mean +- std (sample std, ddof=1)
over the seeds found, the validation NME of the chosen checkpoint and its step, the NME of the regressor on
its own training faces, the number of seeds, and seed 0's command (the others differ only in --config.seed
and --workdir). Then paired bootstrap 95 % intervals of test-NME differences (seeds paired by seed, faces by
index; the mean shape's one computation pairs with every seed; 10,000 draws resampling seeds and faces).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # run_table.py here, table_stats.py in experiments/

from run_table import RESULTS, ROWS  # noqa: E402
from table_stats import load_runs, mean_std, paired_bootstrap  # noqa: E402

#: (row a, row b): the differences a - b the table reports.
COMPARISONS = (
    ("k10_tps_pixel", "untrained"),
    ("k10_tps_pixel", "mean_shape"),
    ("untrained", "mean_shape"),
    ("k10_tps_vgg_random", "untrained"),
    ("k10_tps_vgg_colorization", "untrained"),
    ("k10_tps_vgg_random", "k10_tps_pixel"),
    ("k10_tps_vgg_colorization", "k10_tps_vgg_random"),
    ("k30_tps_pixel", "k10_tps_pixel"),
    ("k10_video_pixel", "k10_tps_pixel"),
    ("supervised", "mean_shape"),
)


def table(runs: dict[str, dict[int, dict]]) -> str:
    scales = sorted({r["scale"] for seeds in runs.values() for r in seeds.values()})
    lines = [
        "| row | seeds | test NME | validation NME | chosen step | train-fit NME | command (seed 0) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, (label, _) in ROWS.items():
        if row not in runs:
            continue
        records = [runs[row][seed] for seed in sorted(runs[row])]
        validation = [r["validation_nme"] for r in records if r["validation_nme"] is not None]
        train_fit = [r["train_nme"] for r in records if r["train_nme"] is not None and np.isfinite(r["train_nme"])]
        steps = ", ".join(str(r["step"]) for r in records)
        lines.append(
            f"| {label} | {len(records)} | {mean_std([r['test_nme'] for r in records], 4)} | "
            f"{mean_std(validation, 4) if validation else '-'} | {steps} | "
            f"{mean_std(train_fit, 4) if train_fit else '-'} | `{records[0]['command']}` |"
        )
    out = ["Scale: " + "; ".join(scales) + " (synthetic faces, 256 test faces; seeds 0..n-1).", "", *lines, ""]
    for row_a, row_b in COMPARISONS:
        if row_a not in runs or row_b not in runs:
            continue
        pairs = {seed: runs[row_b].get(0 if row_b == "mean_shape" else seed) for seed in runs[row_a]}
        seeds = sorted(seed for seed, record in pairs.items() if record is not None)
        if not seeds:
            continue
        a = np.array([runs[row_a][s]["per_face_nme"] for s in seeds])
        b = np.array([pairs[s]["per_face_nme"] for s in seeds])
        mean, low, high = paired_bootstrap(a, b)
        out.append(
            f"- {ROWS[row_a][0]} - {ROWS[row_b][0]}: {mean:+.4f} [{low:+.4f}, {high:+.4f}] "
            f"({len(seeds)} seeds x {a.shape[1]} faces; negative: the first is better)"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    print(table(load_runs(args.results)), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
