"""Runs the semi-supervised table's rows (Honari et al. 2018) on the synthetic faces at CPU scale.

Each run is the equivalent of one `python train.py --config=landmarkjax/configs/semisup.py ...` call (the
exact command is printed and stored), made through `landmarkjax.runs.train_and_evaluate` with the same
config overrides. Every finished run appends one JSON line to `experiments/semisup/results.jsonl` (row,
seed, command, final test metrics, per-face test NMEs); runs already in that file are skipped, so the script
can be stopped and started again.

    PYTHONPATH=$PWD python experiments/semisup/run_table.py                         # every row, 3 seeds
    PYTHONPATH=$PWD python experiments/semisup/run_table.py --rows=sup5,both5       # the key comparison
    PYTHONPATH=$PWD python experiments/semisup/run_table.py --list                  # rows and commands only

Nothing is tuned: the loss weights are the config's defaults (landmark 1, attributes 1, ELT 0.01), fixed in
advance, and every run trains for the same number of steps and is evaluated once, at its last step, on the
256 test faces (no checkpoint or weight is selected on the test split). `--steps`, `--image_size`,
`--widths`, `--batch_size` set the scale shared by every row and are part of every printed command (the
defaults, 48 px, RCN widths 8/16/24/24, 500 steps of batch 8, take 3-5 minutes a run on a shared 2-core CPU:
the 5 % rows, 2 x 3 runs, in about 22 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # table_stats.py in experiments/

from table_stats import done_runs, train_command  # noqa: E402
RESULTS = os.path.join(HERE, "results.jsonl")
CONFIG_PATH = "landmarkjax/configs/semisup.py"

# The regimes of each fraction of landmark labels: the loss weights each row sets (None: the default).
_REGIMES = {
    "sup": ("supervised only", {"semisup.elt_weight": 0.0, "semisup.attribute_weight": 0.0}),
    "elt": ("+ ELT", {"semisup.attribute_weight": 0.0}),
    "attr": ("+ attributes", {"semisup.elt_weight": 0.0}),
    "both": ("+ ELT + attributes", {}),
}
_FRACTIONS = {"1": 0.01, "5": 0.05, "100": 1.0}


def table_rows() -> dict[str, tuple[str, dict]]:
    """{row id: (label, config overrides)} in the table's order."""
    rows = {}
    for percent, fraction in _FRACTIONS.items():
        for regime, (label, overrides) in _REGIMES.items():
            rows[f"{regime}{percent}"] = (
                f"{percent} % landmarks, RCN, {label}",
                {"semisup.labelled_fraction": fraction, **overrides},
            )
    supervised_100 = {"semisup.labelled_fraction": 1.0, **_REGIMES["sup"][1]}
    rows["sumnet100"] = (
        "100 % landmarks, SumNet, supervised only",
        {**supervised_100, "model.architecture": "sumnet"},
    )
    rows["finest100"] = (
        "100 % landmarks, RCN, finest branch only (coarse branches masked)",
        {**supervised_100, "model.branch_mask": (True, False, False, False)},
    )
    rows["coarse100"] = (
        "100 % landmarks, RCN, finest branch masked",
        {**supervised_100, "model.branch_mask": (False, True, True, True)},
    )
    return rows


def scale_overrides(args: argparse.Namespace) -> dict:
    """The CPU scale every row shares."""
    return {
        "data.image_size": args.image_size,
        "model.widths": tuple(args.widths),
        "total_steps": args.steps,
        "batch_size": args.batch_size,
        "optimizer.warmup_steps": max(1, args.steps // 10),
        "eval_every": 0,  # evaluated once, at the last step
        "checkpoint_every": 0,
        "log_every": 25,
    }


def command(overrides: dict, workdir: str) -> str:
    return train_command(CONFIG_PATH, overrides, workdir)


def make_config(overrides: dict):
    from landmarkjax.configs.semisup import get_config

    config = get_config()
    config.update_from_flattened_dict(overrides)  # dotted keys, e.g. "semisup.elt_weight"
    return config


def per_face_nme(workdir: str, step: int) -> np.ndarray:
    """Inter-ocular NME of every test face for the checkpoint at `step` (what the run's final metrics average)."""
    import jax

    from landmarkjax import metrics, runs

    run = runs.restore_run(workdir, step=step)
    method = run.method
    params = jax.device_get(run.state.params)
    predict = jax.jit(lambda images: method.predict(params, images)[0])
    errors = []
    for batch in method.eval_loader(method.config.eval_batch_size):
        predicted = predict(batch["image"])
        errors.append(np.asarray(metrics.nme(predicted, batch["landmarks"], "inter_ocular", batch["visibility"])))
    return np.concatenate(errors)


def main(argv: list[str] | None = None) -> None:
    rows = table_rows()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(rows), help=f"comma-separated row ids of {list(rows)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--widths", type=int, nargs=4, default=(8, 16, 24, 24))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workdirs", default=os.path.join("workdir", "semisup_table"))
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--list", action="store_true", help="print the rows and commands, run nothing")
    args = parser.parse_args(argv)

    chosen = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in chosen if row not in rows]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose among {list(rows)}")
    scale = scale_overrides(args)
    scale_tag = (
        f"{args.image_size}px widths={'/'.join(map(str, args.widths))} {args.steps} steps x batch {args.batch_size}"
    )
    done = done_runs(args.results)
    for seed in range(args.seeds):  # seeds outermost: a partial file still has whole seeds of every row
        for row in chosen:
            label, row_overrides = rows[row]
            if (row, seed, scale_tag) in done:
                print(f"skip {row} seed {seed}: already in {args.results}", flush=True)
                continue
            overrides = {**row_overrides, **scale, "seed": seed}
            workdir = os.path.join(args.workdirs, f"{row}_seed{seed}")
            cmd = command(overrides, workdir)
            print(cmd, flush=True)
            if args.list:
                continue
            from landmarkjax import runs

            start = time.perf_counter()
            final = runs.train_and_evaluate(make_config(overrides), workdir)
            errors = per_face_nme(workdir, int(final["step"]))
            if abs(float(np.mean(errors)) - final["nme"]) > 1e-4:
                raise RuntimeError(f"per-face NMEs average {np.mean(errors)}, the run reported {final['nme']}")
            record = {
                "row": row,
                "label": label,
                "seed": seed,
                "scale": scale_tag,
                "command": cmd,
                "metrics": final,
                "wall_s": round(time.perf_counter() - start, 1),
                "per_face_nme": [round(float(e), 6) for e in errors],
            }
            with open(args.results, "a") as file:
                file.write(json.dumps(record) + "\n")
            print(json.dumps({k: v for k, v in record.items() if k != "per_face_nme"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
