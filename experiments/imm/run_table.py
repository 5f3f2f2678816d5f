"""The IMM results table on synthetic faces: one training run per (row, seed), one JSON line per run.

Rows (each an override of `landmarkjax/configs/imm.py`; the supervised CPM at the same resolution is the
reference row):

| row | K | pairs | perceptual network |
| --- | --- | --- | --- |
| `k10_tps_vgg_random` | 10 | TPS | VGG-16, fixed random weights |
| `k30_tps_vgg_random` | 30 | TPS | VGG-16, fixed random weights |
| `k10_video_vgg_random` | 10 | video | VGG-16, fixed random weights |
| `k10_tps_pixel` | 10 | TPS | none (pixel L2) |
| `k10_tps_vgg_colorization` | 10 | TPS | VGG-16 self-trained by colourisation on the training faces |
| `supervised` | - | - | the supervised CPM (`landmarkjax/configs/supervised.py`) |

Each run trains in `<workdir>/<row>/seed<s>` and appends {"row", "seed", "command", "steps", "nme",
"train_nme", "seconds", ...} to `experiments/imm/results.jsonl` (or `--output`). Commands:

    python experiments/imm/run_table.py --rows=k10_tps_vgg_random,k10_tps_pixel --seeds=0,1,2 --steps=2000
    python experiments/imm/run_table.py --rows=k10_tps_vgg_colorization --seeds=0,1,2 --steps=2000
    python experiments/imm/run_table.py --rows=k10_tps_pixel --seeds=0 --tiny   # a seconds-long check

The `k10_tps_vgg_colorization` row first needs its perceptual network: `landmarkjax/configs/colorization.py`
trained at CPU scale (`colorization_config`: `COLORIZATION_STEPS` steps of `COLORIZATION_BATCH` 64 px
crops of the same 1,024 synthetic training faces, no labels, seed 0: 194 s of CPU time, which took 14.7 min
of wall time on the shared 2-core machine at load ~13; ab error 12.5 on held-out faces against 17.0 for
predicting grey) in the fixed workdir `<workdir>/colorization_vgg`, exported to
`<workdir>/colorization_vgg/vgg16_colorization.npz` and fed to IMM with the "colorization" preset (the L*
of the RGB images, as the network was trained). Every seed of the row shares that one network, which is
reused when the file exists (delete it to retrain; `--tiny` uses `colorization_vgg_tiny`); its evaluation
(ab error, colourfulness on held-out faces) goes to `<workdir>/colorization_vgg/result.json`. To prepare it
alone:

    python experiments/imm/run_table.py --rows=k10_tps_vgg_colorization --prepare_only

`--tiny` shrinks everything (32 px, K = 4, 2 steps, 8 faces, one VGG layer) to check that the script runs;
its numbers mean nothing and are written to `results_tiny.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

from landmarkjax.configs import colorization as colorization_configs
from landmarkjax.configs import imm as imm_configs
from landmarkjax.configs import supervised as supervised_configs
from landmarkjax.runs import export_vgg_weights
from landmarkjax.runs import train_and_evaluate

HERE = os.path.dirname(os.path.abspath(__file__))

ROWS = {
    "k10_tps_vgg_random": dict(variant=None, pairs="tps", perceptual="vgg_random"),
    "k30_tps_vgg_random": dict(variant="k30", pairs="tps", perceptual="vgg_random"),
    "k10_video_vgg_random": dict(variant=None, pairs="video", perceptual="vgg_random"),
    "k10_tps_pixel": dict(variant=None, pairs="tps", perceptual="pixel"),
    "k10_tps_vgg_colorization": dict(variant=None, pairs="tps", perceptual="vgg_colorization"),
    "supervised": None,
}

#: The colourisation network of `k10_tps_vgg_colorization`, at CPU scale.
COLORIZATION_STEPS = 100
COLORIZATION_BATCH = 8
COLORIZATION_DIRNAME = "colorization_vgg"
COLORIZATION_FILENAME = "vgg16_colorization.npz"


def colorization_config(tiny: bool):
    """The colourisation run behind `k10_tps_vgg_colorization` (seed 0; `tiny`: 2 steps at 32 px)."""
    config = colorization_configs.get_config()
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


def colorization_vgg(workdir: str, tiny: bool) -> str:
    """The exported colourisation VGG-16 under `workdir` (trained and exported first unless present)."""
    run_dir = os.path.join(workdir, COLORIZATION_DIRNAME + ("_tiny" if tiny else ""))
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


def row_config(row: str, seed: int, steps: int | None, tiny: bool, vgg_path: str | None = None):
    """The config of `row` with `seed` (model init, data order and warps), optionally `steps` long;
    `vgg_path` is the colourisation VGG file of `k10_tps_vgg_colorization`."""
    spec = ROWS[row]
    if spec is None:
        config = supervised_configs.get_config()
    else:
        config = imm_configs.get_config(spec["variant"])
        config.imm.pairs = spec["pairs"]
        config.imm.perceptual = spec["perceptual"]
        if spec["perceptual"] == "vgg_colorization":
            if vgg_path is None:
                raise ValueError(f"row {row} needs the colourisation VGG file (colorization_vgg).")
            config.imm.perceptual = "vgg_file"
            config.imm.vgg_weights_path = vgg_path
            config.imm.vgg_preprocess = "colorization"
    config.seed = seed
    if steps is not None:
        config.total_steps = steps
    if tiny:
        config.total_steps = 2
        config.batch_size = config.eval_batch_size = 4
        config.log_every, config.eval_every, config.checkpoint_every = 1, 0, 0
        config.data.image_size, config.data.source_size = 32, 48
        config.data.num_train, config.data.num_test = 8, 4
        if spec is not None:
            config.imm.num_landmarks = 4
            config.imm.perceptual_layers = ("conv1_2",)
            config.model.encoder_widths = (4, 8)
            config.model.render_width, config.model.render_min_width = 8, 4
            config.eval.num_regression_faces = 8
        else:
            config.model.backbone_widths = (4, 8)
            config.model.stage_width = 8
            config.model.num_stages = 1
    return config


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows of ROWS")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument("--workdir", default=os.path.join("workdir", "imm_table"))
    parser.add_argument("--output", default=None, help="JSON-lines file (default under experiments/imm/)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long check of the script")
    parser.add_argument(
        "--prepare_only", action="store_true", help="only train/export the colourisation VGG the rows need"
    )
    args = parser.parse_args(argv)
    rows = [row for row in args.rows.split(",") if row]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    output = args.output or os.path.join(HERE, "results_tiny.jsonl" if args.tiny else "results.jsonl")
    needs_vgg = any(ROWS[row] and ROWS[row]["perceptual"] == "vgg_colorization" for row in rows)
    vgg_path = colorization_vgg(args.workdir, args.tiny) if needs_vgg else None
    if args.prepare_only:
        return
    for row in rows:
        for seed in (int(s) for s in args.seeds.split(",")):
            config = row_config(row, seed, args.steps, args.tiny, vgg_path)
            workdir = os.path.join(args.workdir, row, f"seed{seed}")
            start = time.time()
            result = train_and_evaluate(config, workdir)
            record = {
                "row": row,
                "seed": seed,
                "command": " ".join(["python", "experiments/imm/run_table.py", *argv]),
                "steps": int(result["step"]),
                "image_size": config.data.image_size,
                "seconds": round(time.time() - start, 1),
                "device": jax.devices()[0].platform,
                **{key: float(value) for key, value in result.items() if key != "step"},
            }
            with open(output, "a") as file:
                file.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
