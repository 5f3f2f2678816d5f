"""Runs SBR's experiment (issue 11) on the synthetic faces at CPU scale: S / D / G / O from one stage-1 detector.

For every cell (regime, n_L, seed):
  1. stage 1: the detector on n_L labelled faces until the validation NME stops improving (evaluated every
     50 steps on 32 validation clips x 8 frames; stopped after `--patience` evaluations without a new best;
     at most `--stage1_max` steps); its best checkpoint is kept;
  2. four stage-2 arms of `--stage2` steps, each started from that checkpoint (`config.init_from`: the same
     weights, optimiser moments and data position, so identical batches; clips always drawn):
       S  registration weight 0: continued supervised training, the fair baseline;
       D  detached LK targets (the official code's released configs, `stable: 1`);
       G  gradient through LK (the paper's Eq. 7);
       O  oracle registration: the neighbours' detections moved by the true motion, the ceiling without
          tracker error;
     D / G / O choose their weight on their first stage-2 batch so that the registration gradient is
     `--fraction` of the supervised one; each arm's length is chosen on the validation clips (every 25
     steps; `config.best_metric`), never on the test split;
  3. the chosen checkpoint of each arm (and the stage-1 checkpoint) on the test faces: 256 stills (NME,
     per subset) and 128 clips x 16 frames (NME, jitter), stored per still and per clip for paired
     intervals.

Regimes: A, labelled faces from the full generator; B, a coverage gap: labelled faces only near-frontal,
unoccluded, sharp, mouth nearly closed (`data.train_coverage=narrow`), unlabelled clips (2,048) and test
faces from the full distribution. Each run is one `python train.py --config=landmarkjax/configs/sbr.py ...`
(printed and stored), made in-process through `landmarkjax.runs.train_and_evaluate`. Every finished cell
appends one JSON line per arm to `experiments/sbr/results.jsonl`; finished cells are skipped, and an arm
asked for in a cell whose stage 1 is already recorded is added from that cell's stage-1 checkpoint.

    PYTHONPATH=$PWD python experiments/sbr/run_table.py --cells=B64 --seeds=0,1,2
    PYTHONPATH=$PWD python experiments/sbr/run_table.py --cells=A64,B1024 --seeds=0 --list
    PYTHONPATH=$PWD python experiments/sbr/run_table.py --cells=B64 --seeds=0,1,2 --arms=I
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

from table_stats import logged_eval_metric, train_command  # noqa: E402


RESULTS = os.path.join(HERE, "results.jsonl")
CONFIG_PATH = "landmarkjax/configs/sbr.py"
REGIMES = {"A": "full", "B": "narrow"}
ARMS = {
    "S": ("continued supervised (weight 0)", {"sbr.registration_weight": 0.0}),
    "D": ("detached LK targets (official)", {"sbr.registration_targets": "official"}),
    "G": ("gradient through LK (paper)", {"sbr.registration_targets": "paper"}),
    "O": ("oracle registration (true motion)", {"sbr.registration_targets": "oracle"}),
    # Not in the default --arms: G with the tracks differentiated implicitly (at their converged warps)
    # instead of through every LK iteration, the cheaper gradient (BENCHMARKS.md); added to a finished cell
    # with --arms=I.
    "I": (
        "gradient through LK, implicit",
        {"sbr.registration_targets": "paper", "sbr.lk.differentiation": "implicit"},
    ),
}
NUM_TEST_CLIPS = 128
TEST_CLIP_LENGTH = 16
JAW = slice(0, 17)  # iBUG 68: the face outline


_RENDERED: dict = {}


def share_rendered_sources() -> None:
    """Lets every run of this process reuse the synthetic records already rendered (an experiment-only
    speed-up: each method otherwise keeps its own cache, and rendering the 2,048 unlabelled clips at the
    tracking scale costs ~1.1 s of CPU per stage-2 batch, more than the step; every arm and cell draws the
    same clips)."""
    from landmarkjax.methods.supervised import SupervisedMethod

    if getattr(SupervisedMethod._memoized, "shared", False):
        return
    original = SupervisedMethod._memoized

    def memoized(self, source):
        key = repr(source)
        if key not in _RENDERED:
            _RENDERED[key] = original(self, source)
        return _RENDERED[key]

    memoized.shared = True
    SupervisedMethod._memoized = memoized


def cell_overrides(regime: str, num_labelled: int, seed: int) -> dict:
    """The data and loop settings every run of a cell shares (stage 1 and the arms)."""
    return {
        "seed": seed,
        "data.train_seed": 10 + seed,  # a different labelled set per seed, never the 1/2/3 of test/clips/val
        "data.num_train": num_labelled,
        "data.train_coverage": REGIMES[regime],
        "data.num_train_clips": 2048,
        "data.eval_split": "validation",
        "data.extra_eval_splits": (),
        "keep_checkpoints": 1,  # the latest, plus the best by validation NME
    }


def stage1_overrides(args: argparse.Namespace) -> dict:
    return {
        "sbr.stage1_steps": args.stage1_max,
        "sbr.stage2_steps": 0,
        "eval_every": 50,
        "checkpoint_every": 50,
        "early_stopping_patience": args.patience,
    }


def arm_overrides(arm: str, stage1_step: int, stage1_workdir: str, args: argparse.Namespace) -> dict:
    overrides = {
        "sbr.stage1_steps": stage1_step,
        "sbr.stage2_steps": args.stage2,
        "init_from": stage1_workdir,
        "eval_every": 25,
        "checkpoint_every": 25,
        **ARMS[arm][1],
    }
    if arm != "S":
        overrides["sbr.registration_gradient_fraction"] = args.fraction
    return overrides


def command(overrides: dict, workdir: str) -> str:
    return train_command(CONFIG_PATH, overrides, workdir)


def make_config(overrides: dict):
    from landmarkjax.configs.sbr import get_config

    config = get_config()
    config.update_from_flattened_dict(overrides)
    return config


def still_subsets(data) -> dict[str, list[int]]:
    """Per test still (record order): large |yaw| (>= 0.4 rad), occluded, in the narrow coverage (0/1)."""
    from landmarkjax.data.sources import derive_seed
    from landmarkjax.data.synthetic.faces import in_coverage, sample_face

    flags = {"large_yaw": [], "occluded": [], "in_coverage": []}
    for index in range(data.num_test):
        _, state, scene = sample_face(np.random.default_rng(derive_seed(data.test_seed, index)), data.source_size)
        flags["large_yaw"].append(int(abs(state.yaw) >= 0.4))
        flags["occluded"].append(int(scene.occluder is not None))
        flags["in_coverage"].append(int(in_coverage(state, scene, "narrow")))
    return flags


def evaluate_on_test(workdir: str, step: int | None = None) -> dict:
    """A checkpoint of `workdir` on the test stills and test clips, per still and per clip."""
    import jax
    import jax.numpy as jnp

    from landmarkjax import metrics, runs
    from landmarkjax.data.augment import CropFace
    from landmarkjax.data.pipeline import one_pass_loader
    from landmarkjax.data.sources import SyntheticFaceClipSource
    from landmarkjax.methods.supervised import SupervisedMethod

    run = runs.restore_run(workdir, step=step)
    method, data = run.method, run.method.config.data
    params = jax.device_get(run.state.params)
    detect = jax.jit(lambda frames: method.detect(params, frames)[0])

    def errors(predicted, truth, visibility):
        """(NME, NME of the jaw points, NME of the inner points) per face, all over the inter-ocular distance."""
        truth, visibility = jnp.asarray(truth), jnp.asarray(visibility)
        inter_ocular = jnp.linalg.norm(truth[..., 36, :] - truth[..., 45, :], axis=-1)
        inner = slice(JAW.stop, None)
        return tuple(
            metrics.nme(predicted[..., points, :], truth[..., points, :], inter_ocular, visibility[..., points])
            for points in (slice(None), JAW, inner)
        )

    stills = {"nme": [], "nme_jaw": [], "nme_inner": []}
    for batch in SupervisedMethod.eval_loader(method, 32, "test"):
        frames = jnp.asarray(batch["image"])[:, None]
        predicted = detect(frames)[:, 0]
        for name, value in zip(stills, errors(predicted, batch["landmarks"], batch["visibility"]), strict=True):
            stills[name].append(np.asarray(value))
    stills = {name: np.concatenate(value) for name, value in stills.items()}
    clips = {"nme": [], "jitter": [], "gt_jitter": []}
    source = method._memoized(
        SyntheticFaceClipSource(NUM_TEST_CLIPS, num_frames=TEST_CLIP_LENGTH, size=data.source_size, seed=data.test_seed)
    )
    for batch in one_pass_loader(source, batch_size=8, seed=0, augment=CropFace(data.image_size, data.crop_margin)):
        predicted = detect(jnp.asarray(batch["frames"]))
        nme = metrics.nme(predicted, batch["landmarks"], "inter_ocular", batch["visibility"])
        clips["nme"].append(np.asarray(jnp.mean(nme, axis=1)))
        clips["jitter"].append(np.asarray(metrics.jitter(predicted)))
        clips["gt_jitter"].append(np.asarray(metrics.jitter(jnp.asarray(batch["landmarks"]))))
    clips = {name: np.concatenate(value) for name, value in clips.items()}
    return {"step": run.step, "stills": stills, "clips": clips}


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values).reshape(-1)]


def _summary(test: dict) -> dict:
    return {
        "test_still_nme": float(np.mean(test["stills"]["nme"])),
        "test_clip_nme": float(np.mean(test["clips"]["nme"])),
        "test_jitter": float(np.mean(test["clips"]["jitter"])),
    }


_BASE_KEYS = (
    "cell", "regime", "num_labelled", "seed", "stage1_step", "stage1_command", "stage1_validation_nme", "scale"
)


def run_cell(
    regime: str,
    num_labelled: int,
    seed: int,
    arms: list[str],
    args: argparse.Namespace,
    stage1_record: dict | None = None,
) -> list[dict]:
    """Stage 1 and then `arms`; with `stage1_record` (the cell's recorded stage 1), `arms` only."""
    from landmarkjax import runs

    cell = f"{regime}{num_labelled}"
    root = os.path.join(args.workdirs, f"{cell}_seed{seed}")
    shared = cell_overrides(regime, num_labelled, seed)
    stage1_dir = os.path.join(root, "stage1")
    stage1 = {**shared, **stage1_overrides(args)}
    stage1_cmd = command(stage1, stage1_dir)
    print(stage1_cmd, flush=True)
    if args.list:
        return []
    if stage1_record is not None:
        return _run_arms(arms, {key: stage1_record[key] for key in _BASE_KEYS}, shared, stage1_dir, root, args)
    start = time.perf_counter()
    runs.train_and_evaluate(make_config(stage1), stage1_dir)
    stage1_test = evaluate_on_test(stage1_dir)
    best = stage1_test["step"]
    stage1_s = round(time.perf_counter() - start, 1)
    base = {
        "cell": cell,
        "regime": regime,
        "num_labelled": num_labelled,
        "seed": seed,
        "stage1_step": best,
        "stage1_command": stage1_cmd,
        "stage1_validation_nme": logged_eval_metric(stage1_dir, best),
        "scale": f"stage1<={args.stage1_max} patience {args.patience}, stage2 {args.stage2}, fraction {args.fraction}",
    }
    records = [
        {
            **base,
            "arm": "stage1",
            "label": "stage-1 detector",
            "command": stage1_cmd,
            "step": best,
            "validation_nme": base["stage1_validation_nme"],
            **_summary(stage1_test),
            "wall_s": stage1_s,
            "per_still_nme": _rounded(stage1_test["stills"]["nme"]),
            "per_still_nme_jaw": _rounded(stage1_test["stills"]["nme_jaw"]),
            "per_still_nme_inner": _rounded(stage1_test["stills"]["nme_inner"]),
            "per_clip_nme": _rounded(stage1_test["clips"]["nme"]),
            "per_clip_jitter": _rounded(stage1_test["clips"]["jitter"]),
        }
    ]
    print(json.dumps({k: v for k, v in records[0].items() if not k.startswith("per_")}), flush=True)
    return records + _run_arms(arms, base, shared, stage1_dir, root, args)


def _run_arms(
    arms: list[str], base: dict, shared: dict, stage1_dir: str, root: str, args: argparse.Namespace
) -> list[dict]:
    from landmarkjax import runs

    records = []
    for arm in arms:
        workdir = os.path.join(root, arm)
        overrides = {**shared, **arm_overrides(arm, base["stage1_step"], stage1_dir, args)}
        cmd = command(overrides, workdir)
        print(cmd, flush=True)
        start = time.perf_counter()
        runs.train_and_evaluate(make_config(overrides), workdir)
        test = evaluate_on_test(workdir)
        record = {
            **base,
            "arm": arm,
            "label": ARMS[arm][0],
            "command": cmd,
            "step": test["step"],
            "validation_nme": logged_eval_metric(workdir, test["step"]),
            **_summary(test),
            "wall_s": round(time.perf_counter() - start, 1),
            "per_still_nme": _rounded(test["stills"]["nme"]),
            "per_still_nme_jaw": _rounded(test["stills"]["nme_jaw"]),
            "per_still_nme_inner": _rounded(test["stills"]["nme_inner"]),
            "per_clip_nme": _rounded(test["clips"]["nme"]),
            "per_clip_jitter": _rounded(test["clips"]["jitter"]),
        }
        records.append(record)
        print(json.dumps({k: v for k, v in record.items() if not k.startswith("per_")}), flush=True)
    return records


def read_records(path: str) -> list[dict]:
    """Every record of a results file ([] if it does not exist yet)."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="B64,A64,B1024,A1024", help="regime (A/B) + n_L, comma-separated")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="S,D,G,O")
    parser.add_argument("--stage1_max", type=int, default=1500)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--stage2", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--workdirs", default=os.path.join("workdir", "sbr_table"))
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--list", action="store_true", help="print the stage-1 commands, run nothing")
    args = parser.parse_args(argv)
    args.arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = [arm for arm in args.arms if arm not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose among {list(ARMS)}")
    recorded = read_records(args.results)
    stage1_records = {(r["cell"], r["seed"], r["scale"]): r for r in recorded if r["arm"] == "stage1"}
    arms_done = {(r["cell"], r["seed"], r["scale"], r["arm"]) for r in recorded}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        for cell in [c.strip() for c in args.cells.split(",") if c.strip()]:
            regime, num_labelled = cell[0], int(cell[1:])
            if regime not in REGIMES:
                parser.error(f"cell {cell!r}: the regime is A or B")
            scale = (
                f"stage1<={args.stage1_max} patience {args.patience}, stage2 {args.stage2}, fraction {args.fraction}"
            )
            key = (cell, seed, scale)
            arms = [arm for arm in args.arms if key + (arm,) not in arms_done]
            if key in stage1_records and not arms:
                print(f"skip {cell} seed {seed}: already in {args.results}", flush=True)
                continue
            share_rendered_sources()
            records = run_cell(regime, num_labelled, seed, arms, args, stage1_records.get(key))
            if records:  # one write per cell on an O_APPEND descriptor: parallel jobs may share the file
                text = "".join(json.dumps(record) + "\n" for record in records).encode()
                descriptor = os.open(args.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(descriptor, text)
                finally:
                    os.close(descriptor)


if __name__ == "__main__":
    main(sys.argv[1:])
