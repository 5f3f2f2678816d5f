"""Turns experiments/hmr/results.jsonl (written by run_table.py) into the markdown table.

    PYTHONPATH=$PWD python experiments/hmr/make_table.py > experiments/hmr/TABLE.md

One line per row: mean +- std (sample std, ddof=1) over the seeds found, the number of seeds, and the row's
command (seed 0's; the others differ only in --config.seed and --workdir). MPJPE and PA-MPJPE in mm on the 14
LSP joints of the 256 held-out synthetic people, PCK@0.1 of the 2D projections, and the plausibility of the
predicted bodies (fraction of joint-angle components outside the pose sampler's limits, mean excess in
degrees, mean |beta|). For paired 3D against the mean body, the prior's key comparison (2D + prior against
2D only, both without paired 3D), IEF (3 against 1 iteration) and 6-D against axis-angle it adds paired
bootstrap 95 % intervals of the MPJPE and PA-MPJPE differences: seeds paired by seed (the mean body's one
untrained run pairs with every seed), people paired by index, resampling seeds and people with replacement
(10,000 draws).
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

METRICS = (
    ("mpjpe", "MPJPE (mm)", 1),
    ("pa_mpjpe", "PA-MPJPE (mm)", 1),
    ("pck@0.1", "PCK@0.1", 3),
    ("pose_outside_limits", "angles outside limits", 3),
    ("pose_limit_excess_deg", "excess (deg)", 2),
    ("mean_abs_betas", "mean abs beta", 2),
)
COMPARISONS = (
    ("paired3d", "mean", "paired 3D - mean body"),
    ("no3d_prior", "no3d_noprior", "2D + prior - 2D only"),
    ("paired3d", "ief1", "IEF 3 - IEF 1"),
    ("rot6d", "paired3d", "6-D - axis-angle"),
)








def table(runs: dict[str, dict[int, dict]]) -> str:
    rows = table_rows()
    scales = sorted({r["scale"] for seeds in runs.values() for r in seeds.values() if r["scale"] != "untrained"})
    header = " | ".join(label for _, label, _ in METRICS)
    lines = [f"| run | seeds | {header} | command (seed 0) |", "| --- | --- |" + " --- |" * (len(METRICS) + 1)]
    for row, (label, _) in rows.items():
        if row not in runs:
            continue
        records = [runs[row][seed] for seed in sorted(runs[row])]
        cells = [mean_std([r["metrics"][key] for r in records], digits) for key, _, digits in METRICS]
        lines.append(f"| {label} | {len(records)} | " + " | ".join(cells) + f" | `{records[0]['command']}` |")
    out = ["Scale: " + "; ".join(scales) + " (synthetic people, 256 held-out test people; seeds 0..n-1).", ""]
    out += lines
    for row_a, row_b, name in COMPARISONS:
        # The untrained mean row does not depend on the seed: its one run pairs with every seed.
        seeds_b = {seed: runs.get(row_b, {}).get(0 if row_b == "mean" else seed) for seed in runs.get(row_a, {})}
        seeds = sorted(seed for seed, record in seeds_b.items() if record is not None)
        if not seeds:
            continue
        parts = []
        for key, metric in (("per_person_mpjpe", "MPJPE"), ("per_person_pa_mpjpe", "PA-MPJPE")):
            a = np.array([runs[row_a][s][key] for s in seeds])
            b = np.array([seeds_b[s][key] for s in seeds])
            mean, low, high = paired_bootstrap(a, b)
            parts.append(f"{metric} {mean:+.1f} mm [{low:+.1f}, {high:+.1f}]")
        out += ["", f"{name}: " + ", ".join(parts) + f" (paired bootstrap 95 % intervals over {len(seeds)} seeds x "
                    f"{a.shape[1]} people; negative: the first is better)."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    print(table(load(args.results)), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
