"""Runs the HMR table's rows (Kanazawa et al. 2018) on the synthetic people at CPU scale.

Each trained row is the equivalent of one `python train.py --config=landmarkjax/configs/hmr.py ...` call (the
exact command is printed and stored), made through `landmarkjax.runs.train_and_evaluate` with the same config
overrides. Every finished run appends one JSON line to `experiments/hmr/results.jsonl` (row, seed, command,
final test metrics, per-person MPJPE and PA-MPJPE in mm); runs already in that file are skipped, so the script
can be stopped and started again.

    PYTHONPATH=$PWD python experiments/hmr/run_table.py                              # every row, 3 seeds
    PYTHONPATH=$PWD python experiments/hmr/run_table.py --rows=no3d_prior,no3d_noprior   # the prior's effect
    PYTHONPATH=$PWD python experiments/hmr/run_table.py --list                       # rows and commands only

Rows: "mean" (no training: every person gets the IEF regressor's starting Theta, the rest pose standing
upright facing the camera with zero betas and camera [0.9, 0, 0]: the baseline every trained row must beat;
one run, it does not depend on the seed), then the trained rows of `TRAINED_ROWS`. Nothing is tuned: loss
weights are the paper's (config defaults), every run trains for the same number of steps and is evaluated
once, at its last step, on the same 256 held-out synthetic people (no checkpoint is selected on them).
`--steps`, `--batch_size`, `--width`, `--hidden` set the scale shared by every row and are part of every
printed command; the prior starts at half of `--steps` (`hmr.discriminator_start`). The default scale (500 steps
x batch 32 at 64 px, 1024 training people) takes about 3.5 minutes per run on one core of a shared 2-core
CPU (a 400-step run took 3 min 18 s, rendering the people included).
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
CONFIG_PATH = "landmarkjax/configs/hmr.py"

#: Row id -> (label, config overrides). Every row but "no3d_*" has paired 3D for every training image.
TRAINED_ROWS: dict[str, tuple[str, dict]] = {
    "paired3d": ("paired 3D + 2D + prior, IEF 3 iterations", {}),
    "no3d_prior": ("2D + adversarial prior, no paired 3D", {"hmr.use_3d": False}),
    "no3d_noprior": ("2D only, no paired 3D, no prior", {"hmr.use_3d": False, "hmr.adversarial_weight": 0.0}),
    "ief1": ("paired 3D + 2D + prior, IEF 1 iteration", {"model.num_iterations": 1}),
    "rot6d": ("paired 3D + 2D + prior, 6-D rotations", {"model.pose_representation": "6d"}),
}
MEAN_ROW = ("mean", "mean parameters, no training")


def table_rows() -> dict[str, tuple[str, dict | None]]:
    """{row id: (label, overrides)} in the table's order; the mean row's overrides are None (not trained)."""
    return {MEAN_ROW[0]: (MEAN_ROW[1], None), **TRAINED_ROWS}


def scale_overrides(args: argparse.Namespace) -> dict:
    """The CPU scale every trained row shares."""
    return {
        "total_steps": args.steps,
        "batch_size": args.batch_size,
        "model.width": args.width,
        "model.hidden": args.hidden,
        "optimizer.warmup_steps": max(1, args.steps // 20),
        # The encoder alone for the first half, then the prior (rows without the prior ignore it): from
        # scratch, the prior from step 0 pulls the untrained encoder's bodies towards random mocap poses
        # (400-step probe, paired 3D: PA-MPJPE 206 mm from step 0, 174 mm from step 200; mean body 183).
        "hmr.discriminator_start": args.steps // 2,
        "eval_every": 0,  # evaluated once, at the last step
        "checkpoint_every": 0,
        "log_every": 25,
    }


def command(overrides: dict, workdir: str) -> str:
    return train_command(CONFIG_PATH, overrides, workdir)


def make_config(overrides: dict):
    from landmarkjax.configs.hmr import get_config

    config = get_config()
    config.update_from_flattened_dict(overrides)  # dotted keys, e.g. "hmr.use_3d"
    return config


def per_person_errors(method, params, frozen) -> dict[str, np.ndarray]:
    """MPJPE and PA-MPJPE (mm, 14 LSP joints) of every test person, as the method's summary averages them."""
    import jax

    from landmarkjax import metrics

    state_like = type("State", (), {"params": params})()
    step = jax.jit(lambda batch: method.eval_step(state_like, batch, frozen))
    pred, true = [], []
    for batch in method.eval_loader(method.config.eval_batch_size):
        outputs = step({key: batch[key] for key in ("image", "keypoints_2d", "visibility", "joints_3d")})
        pred.append(np.asarray(outputs["pred_joints_3d"], np.float64) * 1000.0)
        true.append(np.asarray(outputs["true_joints_3d"], np.float64) * 1000.0)
    pred, true = np.concatenate(pred), np.concatenate(true)
    return {
        "mpjpe": np.asarray(metrics.mpjpe(pred, true, root_joint=(2, 3))),
        "pa_mpjpe": np.asarray(metrics.pa_mpjpe(pred, true)),
    }


def mean_parameter_state(method, seed: int = 0):
    """The initial state with the IEF regressor's last layer zeroed: every iteration returns the mean Theta."""
    import jax
    import jax.numpy as jnp

    state = method.init_state(jax.random.key(seed))
    generator = jax.tree.map(lambda x: x, state.params["generator"])
    fc3 = generator["regressor"]["fc3"]
    generator["regressor"]["fc3"] = {name: jnp.zeros_like(value) for name, value in fc3.items()}
    return state.replace(params={**state.params, "generator": generator})


def evaluate_mean_row() -> tuple[dict, dict[str, np.ndarray]]:
    """(summary, per-person errors) of the mean parameters on the test people (the method's own evaluation)."""
    from landmarkjax.methods.hmr import build
    from landmarkjax.training import sharding
    from landmarkjax.training.loop import place_frozen_inputs
    from landmarkjax.training.method import EvalContext

    method = build(make_config({}))
    state = mean_parameter_state(method)
    mesh = sharding.make_data_mesh()
    frozen = place_frozen_inputs(method, mesh)
    context = EvalContext(mesh, sharding.per_process_batch_size(method.config.eval_batch_size, mesh))
    summary = method.evaluate(state, frozen, context)
    return summary, per_person_errors(method, state.params, frozen)


def main(argv: list[str] | None = None) -> None:
    rows = table_rows()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(rows), help=f"comma-separated row ids of {list(rows)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--workdirs", default=os.path.join("workdir", "hmr_table"))
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--list", action="store_true", help="print the rows and commands, run nothing")
    args = parser.parse_args(argv)

    chosen = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in chosen if row not in rows]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose among {list(rows)}")
    scale = scale_overrides(args)
    scale_tag = (
        f"64px width={args.width} hidden={args.hidden} {args.steps} steps x batch {args.batch_size}, "
        f"3D weight 60, prior from step {args.steps // 2}"
    )
    done = done_runs(args.results)

    def append(record: dict, per_person: dict[str, np.ndarray]) -> None:
        record.update({f"per_person_{key}": [round(float(v), 3) for v in value] for key, value in per_person.items()})
        with open(args.results, "a") as file:
            file.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if not k.startswith("per_person")}), flush=True)

    if MEAN_ROW[0] in chosen:
        cmd = f"PYTHONPATH=$PWD python experiments/hmr/run_table.py --rows={MEAN_ROW[0]} --seeds=1"
        if (MEAN_ROW[0], 0, "untrained") in done:
            print(f"skip {MEAN_ROW[0]}: already in {args.results}", flush=True)
        elif args.list:
            print(cmd, flush=True)
        else:
            start = time.perf_counter()
            summary, per_person = evaluate_mean_row()
            record = {"row": MEAN_ROW[0], "label": MEAN_ROW[1], "seed": 0, "scale": "untrained", "command": cmd,
                      "metrics": summary, "wall_s": round(time.perf_counter() - start, 1)}
            append(record, per_person)
    for seed in range(args.seeds):  # seeds outermost: a partial file still has whole seeds of every row
        for row in chosen:
            label, row_overrides = rows[row]
            if row_overrides is None:
                continue
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
            run = runs.restore_run(workdir, step=int(final["step"]))
            per_person = per_person_errors(run.method, run.state.params, run.frozen)
            if abs(float(np.mean(per_person["mpjpe"])) - final["mpjpe"]) > 1e-2:
                raise RuntimeError(
                    f"per-person MPJPEs average {np.mean(per_person['mpjpe'])}, the run reported {final['mpjpe']}"
                )
            record = {"row": row, "label": label, "seed": seed, "scale": scale_tag, "command": cmd,
                      "metrics": final, "wall_s": round(time.perf_counter() - start, 1)}
            append(record, per_person)


if __name__ == "__main__":
    main(sys.argv[1:])
