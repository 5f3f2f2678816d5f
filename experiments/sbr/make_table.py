"""Turns experiments/sbr/results.jsonl (written by run_table.py) into the markdown tables of the SBR experiment.

    PYTHONPATH=$PWD python experiments/sbr/make_table.py > experiments/sbr/TABLE.md

Per cell (regime, n_L): one line per arm (the stage-1 detector, then S, D, G, O from it) with mean +- std
(sample std) over the seeds found of the test-still NME, AUC@0.08 and failure rate (256 stills), the test-clip
NME and jitter (128 clips x 16 frames), and the stage-2 length chosen on the validation clips; then the still
NME per subset (|yaw| >= 0.4, occluded, inside / outside the narrow coverage of regime B's labelled faces; jaw
vs inner points); then each arm minus S, paired by seed and by clip (clip NME, jitter) or still (still NME):
the mean difference and its paired-bootstrap 95 % interval (seeds and examples resampled, 10,000 draws).
"""

from __future__ import annotations

import collections
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # run_table.py here, table_stats.py in experiments/

from run_table import ARMS, RESULTS, read_records, still_subsets  # noqa: E402
from table_stats import mean_std, paired_bootstrap  # noqa: E402

ORDER = ("stage1", *ARMS)
CELL_NAMES = {"A": "regime A (labelled faces from the full generator)", "B": "regime B (coverage gap)"}


def _auc_and_failure(errors: np.ndarray, threshold: float = 0.08) -> tuple[float, float]:
    """AUC of the cumulative error distribution up to `threshold` (normalised to [0, 1]) and failure rate."""
    from landmarkjax import metrics

    return float(metrics.auc(errors, threshold)), float(metrics.failure_rate(errors, threshold))


def by_cell(records: list[dict]) -> dict[str, dict[str, dict[int, dict]]]:
    """{cell: {arm: {seed: record}}}; a later record of the same cell, arm and seed replaces an earlier one."""
    cells: dict = collections.defaultdict(lambda: collections.defaultdict(dict))
    for record in records:
        cells[record["cell"]][record["arm"]][record["seed"]] = record
    return cells


def _cell_sort_key(cell: str) -> tuple[int, str]:
    return int(cell[1:]), cell[0]


def cell_table(cell: str, arms: dict[str, dict[int, dict]], subsets: dict[str, np.ndarray]) -> list[str]:
    # The seeds that stage 1 and the four main arms share; an added arm (e.g. I) is shown once it has them all.
    main = [arm for arm in ("stage1", "S", "D", "G", "O") if arm in arms] or list(arms)
    seeds = sorted(set.intersection(*(set(arms[arm]) for arm in main)))
    arms = {arm: runs for arm, runs in arms.items() if arm in main or set(seeds) <= set(runs)}
    out = [f"### {CELL_NAMES[cell[0]]}, n_L = {cell[1:]}", ""]
    out.append(f"Seeds {seeds} (every arm of a seed starts from that seed's stage-1 checkpoint).")
    steps = [arms["stage1"][s]["step"] for s in seeds] if "stage1" in arms else []
    if steps:
        out.append(f"Stage-1 length chosen on validation: {steps} steps.")
    out += [
        "",
        "| arm | still NME | AUC@0.08 | failure @0.08 | clip NME | jitter (px/frame^2) | stage-2 steps chosen |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm in ORDER:
        if arm not in arms:
            continue
        records = [arms[arm][s] for s in seeds]
        auc_failure = [_auc_and_failure(np.asarray(r["per_still_nme"])) for r in records]
        stage2 = "-" if arm == "stage1" else str([r["step"] - r["stage1_step"] for r in records])
        label = "stage-1 detector" if arm == "stage1" else f"{arm}: {ARMS[arm][0]}"
        out.append(
            f"| {label} | {mean_std([r['test_still_nme'] for r in records], 4)} | "
            f"{mean_std([a for a, _ in auc_failure], 3)} | {mean_std([f for _, f in auc_failure], 3)} | "
            f"{mean_std([r['test_clip_nme'] for r in records], 4)} | {mean_std([r['test_jitter'] for r in records], 3)} | "
            f"{stage2} |"
        )
    out += ["", "Still NME per subset (mean over seeds; number of stills in brackets):", ""]
    names = [
        ("large yaw (>= 0.4 rad)", subsets["large_yaw"] == 1),
        ("occluded", subsets["occluded"] == 1),
        ("in narrow coverage", subsets["in_coverage"] == 1),
        ("outside it", subsets["in_coverage"] == 0),
    ]
    header = " | ".join(f"{name} [{int(mask.sum())}]" for name, mask in names)
    out += [f"| arm | {header} | jaw points | inner points |", "| --- |" + " --- |" * (len(names) + 2)]
    for arm in ORDER:
        if arm not in arms:
            continue
        per_still = np.array([arms[arm][s]["per_still_nme"] for s in seeds])
        cells = [f"{per_still[:, mask].mean():.4f}" for _, mask in names]
        for key in ("per_still_nme_jaw", "per_still_nme_inner"):
            cells.append(f"{np.mean([arms[arm][s][key] for s in seeds]):.4f}")
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    if "S" in arms:
        out += ["", "Each arm minus S (paired bootstrap 95 % intervals; negative = better than S):", ""]
        out += ["| arm - S | still NME | clip NME | clip jitter |", "| --- | --- | --- | --- |"]
        # Every arm against S; the implicit gradient also against the unrolled one it replaces.
        pairs = [(arm, "S") for arm in ORDER if arm != "S" and arm in arms]
        pairs += [("I", "G")] if "I" in arms and "G" in arms else []
        for arm, baseline in pairs:
            cells = []
            for key, digits in (("per_still_nme", 4), ("per_clip_nme", 4), ("per_clip_jitter", 3)):
                a = np.array([arms[arm][s][key] for s in seeds])
                b = np.array([arms[baseline][s][key] for s in seeds])
                mean, low, high = paired_bootstrap(a, b)
                cells.append(f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
            out.append(f"| {arm} - {baseline} | " + " | ".join(cells) + " |")
    out += ["", "Commands (seed " + str(seeds[0]) + "; the other seeds differ in --config.seed, data.train_seed and"
            " --workdir):", ""]
    for arm in ORDER:
        if arm in arms:
            out.append(f"- {arm}: `{arms[arm][seeds[0]]['command']}`")
    out.append("")
    return out


def main() -> None:
    from landmarkjax.configs.sbr import get_config

    path = sys.argv[1] if len(sys.argv) > 1 else RESULTS
    records = read_records(path)
    if not records:
        raise SystemExit(f"no runs in {path}")
    subsets = {name: np.array(flags) for name, flags in still_subsets(get_config().data).items()}
    scales = sorted({record["scale"] for record in records})
    lines = [
        "# SBR: S / D / G / O from one stage-1 detector (synthetic faces, 64 px CPM, CPU scale)",
        "",
        "Generated by `PYTHONPATH=$PWD python experiments/sbr/make_table.py` from `experiments/sbr/results.jsonl`"
        " (written by `experiments/sbr/run_table.py`). Scale: " + "; ".join(scales) + ".",
        "",
    ]
    cells = by_cell(records)
    for cell in sorted(cells, key=_cell_sort_key):
        lines += cell_table(cell, cells[cell], subsets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
