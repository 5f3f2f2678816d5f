"""Turns experiments/semisup/results.jsonl (written by run_table.py) into the markdown table.

    PYTHONPATH=$PWD python experiments/semisup/make_table.py > experiments/semisup/TABLE.md

One line per row: mean +- std (sample std, ddof=1) over the seeds found, the number of seeds, and the row's
command (seed 0's; the others differ only in --config.seed and --workdir). For the key comparison (+ ELT +
attributes against supervised only, both at 5 % landmark labels) it adds a paired bootstrap 95 % interval of
the NME difference: seeds paired by seed, faces paired by index (the same 256 test faces), resampling seeds and
faces with replacement (10,000 draws).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # run_table.py here, table_stats.py in experiments/

from run_table import RESULTS, table_rows  # noqa: E402
from table_stats import load_runs as load, mean_std, paired_bootstrap  # noqa: E402

METRICS = (("nme", "NME", 4), ("auc@0.08", "AUC@0.08", 3), ("failure_rate@0.08", "failure @0.08", 3))








def table(runs: dict[str, dict[int, dict]]) -> str:
    rows = table_rows()
    scales = sorted({record["scale"] for seeds in runs.values() for record in seeds.values()})
    lines = [
        "| run | seeds | NME (inter-ocular) | AUC@0.08 | failure @0.08 | command (seed 0) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row, (label, _) in rows.items():
        if row not in runs:
            continue
        records = [runs[row][seed] for seed in sorted(runs[row])]
        cells = [mean_std([r["metrics"][key] for r in records], digits) for key, _, digits in METRICS]
        lines.append(f"| {label} | {len(records)} | " + " | ".join(cells) + f" | `{records[0]['command']}` |")
    out = ["Scale: " + "; ".join(scales) + " (synthetic faces, 68 points, 256 test faces; seeds 0..n-1).", ""]
    out += lines
    full = np.mean([r["metrics"]["nme"] for r in runs["sup100"].values()]) if "sup100" in runs else None
    for percent in ("1", "5", "100"):
        supervised_row, both_row = f"sup{percent}", f"both{percent}"
        seeds = sorted(set(runs.get(supervised_row, {})) & set(runs.get(both_row, {})))
        if not seeds:
            continue
        supervised = np.array([runs[supervised_row][s]["per_face_nme"] for s in seeds])
        both = np.array([runs[both_row][s]["per_face_nme"] for s in seeds])
        mean, low, high = paired_bootstrap(both, supervised)
        line = (
            f"{percent} % landmarks: NME(+ ELT + attributes) - NME(supervised only) = {mean:+.4f}, paired "
            f"bootstrap 95 % interval [{low:+.4f}, {high:+.4f}] over {len(seeds)} seeds x "
            f"{supervised.shape[1]} test faces (negative: ELT + attributes is better)."
        )
        if full is not None and percent != "100":
            gap = supervised.mean() - full
            line += f" Gap of supervised only to 100 % labels (NME {full:.4f}): {gap:+.4f}"
            line += f", of which ELT + attributes close {-mean / gap * 100:.0f} %." if gap > high - low else "."
        out += ["", line]
    for row, baseline, what in _OTHER_COMPARISONS:
        seeds = sorted(set(runs.get(row, {})) & set(runs.get(baseline, {})))
        if not seeds:
            continue
        a = np.array([runs[row][s]["per_face_nme"] for s in seeds])
        b = np.array([runs[baseline][s]["per_face_nme"] for s in seeds])
        mean, low, high = paired_bootstrap(a, b)
        out += ["", f"{what} = {mean:+.4f}, paired bootstrap 95 % interval [{low:+.4f}, {high:+.4f}] over "
                f"{len(seeds)} seeds x {a.shape[1]} test faces (negative: the first is better)."]
    return "\n".join(out) + "\n"


# (row, baseline row, what the difference is) for the single-loss and architecture rows.
_OTHER_COMPARISONS = (
    ("elt1", "sup1", "1 % landmarks: NME(+ ELT) - NME(supervised only)"),
    ("attr1", "sup1", "1 % landmarks: NME(+ attributes) - NME(supervised only)"),
    ("both1", "elt1", "1 % landmarks: NME(+ ELT + attributes) - NME(+ ELT)"),
    ("elt5", "sup5", "5 % landmarks: NME(+ ELT) - NME(supervised only)"),
    ("attr5", "sup5", "5 % landmarks: NME(+ attributes) - NME(supervised only)"),
    ("elt100", "sup100", "100 % landmarks: NME(+ ELT) - NME(supervised only)"),
    ("attr100", "sup100", "100 % landmarks: NME(+ attributes) - NME(supervised only)"),
    ("sumnet100", "sup100", "100 % landmarks: NME(SumNet) - NME(RCN)"),
    ("finest100", "sup100", "100 % landmarks: NME(RCN, finest branch only) - NME(RCN, all branches)"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    print(table(load(args.results)), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
