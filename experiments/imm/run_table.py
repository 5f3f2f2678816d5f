"""The IMM results table on synthetic faces (issue 13): one training run per (row, seed), one JSON line per run.

Rows (each an override of `landmarkjax/configs/imm.py`, except the references):

| row | what |
| --- | --- |
| `mean_shape` | reference: every test face gets the training faces' mean landmarks (no points at all) |
| `untrained` | reference: K = 10 points of the untrained pose network (seed's initialisation), regressed |
| `k10_tps_pixel` | K = 10, TPS pairs, pixel L2 (the input term of the loss only) |
| `k30_tps_pixel` | K = 30, TPS pairs, pixel L2 |
| `k10_video_pixel` | K = 10, video pairs (two frames of a synthetic clip), pixel L2 |
| `k10_tps_vgg_random` | K = 10, TPS pairs, VGG-16 perceptual loss, fixed random weights |
| `k10_tps_vgg_colorization` | K = 10, TPS pairs, VGG-16 trained here by colourisation on the training faces |
| `supervised` | the supervised CPM on the 68 labelled points (`landmarkjax/configs/supervised.py`) |

K and the pairs are compared under the pixel loss, the perceptual networks under K = 10 and TPS pairs: a
VGG-16 step costs ~6x a pixel step at 64 px on this CPU (1.79 s against 0.31 s, batch 16), and three seeds
of every row at one budget must fit in a session.

Protocol, every trained row: `--steps` steps (batch 16, 64 px), evaluated every `--eval_every` steps on the
validation faces (`data.eval_split=validation`: the regressor fitted on the first 1,024 training faces, NME
on 256 validation faces); the best validation checkpoint is then scored once on the 256 test faces (the
regressor refitted on the same training faces, inter-ocular NME per test face, stored for paired
intervals). The IMM regressor is the official linear map without bias from the K points (pixels) to the 68
landmarks. Each run is one `python train.py ...` command (printed and stored), made in-process through
`landmarkjax.runs.train_and_evaluate`; runs already in the results file are skipped, so the script resumes.

    PYTHONPATH=$PWD python experiments/imm/run_table.py --seeds=0,1,2
    PYTHONPATH=$PWD python experiments/imm/run_table.py --rows=k10_tps_pixel --seeds=0 --list

`k10_tps_vgg_colorization` first trains its perceptual network once (`landmarkjax/configs/colorization.py`
at CPU scale: `COLORIZATION_STEPS` steps of `COLORIZATION_BATCH` 64 px crops of the 1,024 training faces,
no labels, seed 0) in `<workdirs>/colorization_vgg`, exported to `vgg16_colorization.npz` there and fed to
IMM with the "colorization" preset (the L* of the RGB images, as the network was trained); its evaluation
(ab error against predicting grey) goes to `result.json` beside it. `--tiny` shrinks everything (32 px,
K = 4, 2 steps, 8 faces) to check the script; its numbers mean nothing and go to `results_tiny.jsonl`.
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

from table_stats import done_runs, logged_eval_metric, train_command  # noqa: E402

RESULTS = os.path.join(HERE, "results.jsonl")
IMM_CONFIG = "landmarkjax/configs/imm.py"
SUPERVISED_CONFIG = "landmarkjax/configs/supervised.py"

#: row -> (label, config overrides); None: a reference computed without training.
ROWS = {
    "mean_shape": ("mean training shape", None),
    "untrained": ("K = 10, untrained network", None),
    "k10_tps_pixel": ("K = 10, TPS, pixel L2", {"imm.perceptual": "pixel"}),
    "k30_tps_pixel": ("K = 30, TPS, pixel L2", {"imm.perceptual": "pixel", "imm.num_landmarks": 30}),
    "k10_video_pixel": ("K = 10, video, pixel L2", {"imm.perceptual": "pixel", "imm.pairs": "video"}),
    "k10_tps_vgg_random": ("K = 10, TPS, random VGG-16", {"imm.perceptual": "vgg_random"}),
    "k10_tps_vgg_colorization": (
        "K = 10, TPS, colourisation VGG-16",
        {"imm.perceptual": "vgg_file", "imm.vgg_preprocess": "colorization"},
    ),
    "supervised": ("supervised CPM, 68 labelled points", {}),
}

#: The colourisation network of `k10_tps_vgg_colorization`, at CPU scale.
COLORIZATION_STEPS = 100
COLORIZATION_BATCH = 8
COLORIZATION_DIRNAME = "colorization_vgg"
COLORIZATION_FILENAME = "vgg16_colorization.npz"
TEST_BATCH = 32


def config_path(row: str) -> str:
    return SUPERVISED_CONFIG if row == "supervised" else IMM_CONFIG


def row_overrides(row: str, seed: int, args: argparse.Namespace, vgg_path: str | None = None) -> dict:
    """The --config overrides of `row`'s run with `seed` (the references use the K = 10 IMM config)."""
    steps = args.supervised_steps if row == "supervised" else args.steps
    overrides = {
        "seed": seed,
        "total_steps": steps,
        "eval_every": args.eval_every,
        "checkpoint_every": args.eval_every,
        "keep_checkpoints": 1,  # the latest, plus the best by validation NME
        "log_every": 50,
        "data.eval_split": "validation",
    }
    if row == "supervised":
        overrides["data.extra_eval_splits"] = ()
    elif ROWS[row][1] is not None:
        overrides.update(ROWS[row][1])
        if row == "k10_tps_vgg_colorization":
            overrides["imm.vgg_weights_path"] = vgg_path or os.path.join(
                args.workdirs, COLORIZATION_DIRNAME, COLORIZATION_FILENAME
            )
    if args.tiny:
        overrides.update(
            {
                "total_steps": 2,
                "eval_every": 2,
                "checkpoint_every": 2,
                "batch_size": 4,
                "eval_batch_size": 4,
                "data.image_size": 32,
                "data.source_size": 48,
                "data.num_train": 8,
                "data.num_test": 4,
                "data.num_validation": 4,
            }
        )
        if row == "supervised":
            overrides.update({"model.backbone_widths": (4, 8), "model.stage_width": 8, "model.num_stages": 1})
        else:
            overrides.update(
                {
                    "imm.num_landmarks": 4,
                    "imm.perceptual_layers": ("conv1_2",),
                    "model.encoder_widths": (4, 8),
                    "model.render_width": 8,
                    "model.render_min_width": 4,
                    "eval.num_regression_faces": 8,
                }
            )
    return overrides


def make_config(row: str, overrides: dict):
    from landmarkjax.configs import imm, supervised

    config = (supervised if row == "supervised" else imm).get_config()
    config.update_from_flattened_dict(overrides)
    return config


def command(row: str, overrides: dict, workdir: str) -> str:
    return train_command(config_path(row), overrides, workdir)


def colorization_config(tiny: bool):
    """The colourisation run behind `k10_tps_vgg_colorization` (seed 0; `tiny`: 2 steps at 32 px)."""
    from landmarkjax.configs import colorization

    config = colorization.get_config()
    config.total_steps = COLORIZATION_STEPS
    config.batch_size = COLORIZATION_BATCH
    config.checkpoint_every = 0  # at the end only
    config.log_every = 10
    if tiny:
        config.total_steps = 2
        config.batch_size = config.eval_batch_size = 4
        config.log_every = 1
        config.data.image_size, config.data.source_size = 32, 48
        config.data.num_train, config.data.num_test = 8, 4
        config.colorization.prior_images = 8
        config.model.head_width = 8
    return config


def colorization_vgg(workdirs: str, tiny: bool) -> str:
    """The exported colourisation VGG-16 under `workdirs` (trained and exported first unless present)."""
    from landmarkjax.runs import export_vgg_weights, train_and_evaluate

    run_dir = os.path.join(workdirs, COLORIZATION_DIRNAME + ("_tiny" if tiny else ""))
    path = os.path.join(run_dir, COLORIZATION_FILENAME)
    if os.path.exists(path):
        return path
    start = time.time()
    result = train_and_evaluate(colorization_config(tiny), run_dir)
    export_vgg_weights(run_dir, path)
    record = {"seconds": round(time.time() - start, 1), **{key: float(value) for key, value in result.items()}}
    with open(os.path.join(run_dir, "result.json"), "w") as file:
        json.dump(record, file)
    print(json.dumps({"colorization_vgg": path, **record}), flush=True)
    return path


def points_and_landmarks(method, params, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import jax

    predict = jax.jit(method.predict_points)
    points, landmarks, visibility = [], [], []
    for batch in loader:
        points.append(np.asarray(predict(params, batch["image"])))
        landmarks.append(batch["landmarks"])
        visibility.append(batch["visibility"])
    return np.concatenate(points), np.concatenate(landmarks), np.concatenate(visibility)


def per_face_nme(predicted: np.ndarray, landmarks: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    from landmarkjax import metrics

    return np.asarray(
        metrics.nme(predicted.astype(np.float32), landmarks.astype(np.float32), "inter_ocular", visibility)
    )


def imm_test_errors(method, params) -> dict:
    """The regressor fitted on the training faces' points, then per-test-face NME (and the fit's NME)."""
    from landmarkjax.methods.imm import apply_landmark_regressor, fit_landmark_regressor

    fit_points, fit_landmarks, fit_visibility = points_and_landmarks(
        method, params, method.regression_loader(TEST_BATCH)
    )
    weights = fit_landmark_regressor(fit_points, fit_landmarks)
    points, landmarks, visibility = points_and_landmarks(method, params, method.eval_loader(TEST_BATCH, "test"))
    fit_errors = per_face_nme(apply_landmark_regressor(weights, fit_points), fit_landmarks, fit_visibility)
    return {
        "test": per_face_nme(apply_landmark_regressor(weights, points), landmarks, visibility),
        "train_nme": float(np.mean(fit_errors)),
    }


def mean_shape_errors(config) -> dict:
    """Every test face predicted as the mean landmarks of the regression (training) faces."""
    from landmarkjax.methods.imm import IMMMethod

    method = IMMMethod(config)
    landmarks = np.concatenate([b["landmarks"] for b in method.regression_loader(TEST_BATCH)])
    test = list(method.eval_loader(TEST_BATCH, "test"))
    truth = np.concatenate([b["landmarks"] for b in test])
    visibility = np.concatenate([b["visibility"] for b in test])
    mean = np.broadcast_to(landmarks.mean(axis=0), truth.shape)
    return {"test": per_face_nme(mean, truth, visibility), "train_nme": None}


def untrained_params(config) -> tuple:
    """(the IMM method of `config`, its parameters as `train.py` initialises them for `config.seed`)."""
    import jax

    from landmarkjax.methods.imm import IMMMethod

    method = IMMMethod(config)
    init_rng, _ = jax.random.split(jax.random.key(config.seed))  # as landmarkjax.training.loop
    return method, method.init_state(init_rng).params


def untrained_errors(config) -> dict:
    """The K points of the untrained pose network, regressed."""
    return imm_test_errors(*untrained_params(config))


def supervised_test_errors(workdir: str) -> tuple[int, np.ndarray]:
    import jax

    from landmarkjax import runs

    run = runs.restore_run(workdir)
    predict = jax.jit(lambda images: run.method.predict(run.state.params, images)[0])
    errors = [
        per_face_nme(np.asarray(predict(b["image"])), b["landmarks"], b["visibility"])
        for b in run.method.eval_loader(TEST_BATCH, "test")
    ]
    return run.step, np.concatenate(errors)


def run_row(row: str, seed: int, args: argparse.Namespace, vgg_path: str | None) -> dict:
    from landmarkjax import runs

    overrides = row_overrides(row, seed, args, vgg_path)
    config = make_config(row, overrides)
    workdir = os.path.join(args.workdirs, row, f"seed{seed}")
    start = time.perf_counter()
    record = {"row": row, "seed": seed, "label": ROWS[row][0]}
    if row == "mean_shape":
        errors, step, validation = mean_shape_errors(config), 0, None
        record["command"] = "(no training: the mean landmarks of the regression faces)"
    elif row == "untrained":
        errors, step, validation = untrained_errors(config), 0, None
        record["command"] = "(no training: the initial parameters of the k10_tps_pixel run with this seed)"
    else:
        record["command"] = command(row, overrides, workdir)
        print(record["command"], flush=True)
        runs.train_and_evaluate(config, workdir)
        if row == "supervised":
            step, test = supervised_test_errors(workdir)
            errors = {"test": test, "train_nme": None}
        else:
            restored = runs.restore_run(workdir)
            step = restored.step
            errors = imm_test_errors(restored.method, restored.state.params)
        validation = logged_eval_metric(workdir, step)
    record.update(
        {
            "scale": args.scale,
            "step": int(step),
            "validation_nme": validation,
            "test_nme": float(np.mean(errors["test"])),
            "train_nme": errors["train_nme"],
            "wall_s": round(time.perf_counter() - start, 1),
            "per_face_nme": [round(float(v), 6) for v in errors["test"]],
        }
    )
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows of ROWS")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every IMM row")
    parser.add_argument("--supervised_steps", type=int, default=500, help="the supervised CPM's steps (its default)")
    parser.add_argument("--eval_every", type=int, default=100, help="validation evaluations (and checkpoints)")
    parser.add_argument("--workdirs", default=os.path.join("workdir", "imm_table"))
    parser.add_argument("--results", default=None, help="JSON-lines file (default under experiments/imm/)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long check of the script")
    parser.add_argument("--list", action="store_true", help="print the rows' commands, run nothing")
    args = parser.parse_args(argv)
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.scale = "tiny" if args.tiny else f"64 px, batch 16, {args.steps} steps (supervised {args.supervised_steps})"
    results = args.results or os.path.join(HERE, "results_tiny.jsonl" if args.tiny else "results.jsonl")
    if args.list:
        for row in rows:
            for seed in seeds:
                if ROWS[row][1] is not None:
                    print(command(row, row_overrides(row, seed, args), os.path.join(args.workdirs, row, f"seed{seed}")))
        return
    done = done_runs(results)
    vgg_path = colorization_vgg(args.workdirs, args.tiny) if "k10_tps_vgg_colorization" in rows else None
    for seed in seeds:
        for row in rows:
            if (row, seed, args.scale) in done or (row == "mean_shape" and seed != 0):
                continue  # already run; the mean shape does not depend on the seed (recorded as seed 0)
            record = run_row(row, seed, args, vgg_path)
            line = (json.dumps(record) + "\n").encode()
            descriptor = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:  # one write on an O_APPEND descriptor: parallel jobs may share the file
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
            print(json.dumps({k: v for k, v in record.items() if k != "per_face_nme"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
