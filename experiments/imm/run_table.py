"""The IMM results table on synthetic faces: one training run per (row, seed), one JSON line per run.

Rows (each an override of `landmarkjax/configs/imm.py`; the supervised CPM at the same resolution is the
reference row):

| row | K | pairs | perceptual network |
| --- | --- | --- | --- |
| `k10_tps_vgg_random` | 10 | TPS | VGG-16, fixed random weights |
| `k30_tps_vgg_random` | 30 | TPS | VGG-16, fixed random weights |
| `k10_video_vgg_random` | 10 | video | VGG-16, fixed random weights |
| `k10_tps_pixel` | 10 | TPS | none (pixel L2) |
| `supervised` | - | - | the supervised CPM (`landmarkjax/configs/supervised.py`) |

Each run trains in `<workdir>/<row>/seed<s>` and appends {"row", "seed", "command", "steps", "nme",
"train_nme", "seconds", ...} to `experiments/imm/results.jsonl` (or `--output`). Commands:

    python experiments/imm/run_table.py --rows=k10_tps_vgg_random,k10_tps_pixel --seeds=0,1,2 --steps=2000
    python experiments/imm/run_table.py --rows=k10_tps_pixel --seeds=0 --tiny   # a seconds-long check

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

from landmarkjax.configs import imm as imm_configs
from landmarkjax.configs import supervised as supervised_configs
from landmarkjax.runs import train_and_evaluate

HERE = os.path.dirname(os.path.abspath(__file__))

ROWS = {
    "k10_tps_vgg_random": dict(variant=None, pairs="tps", perceptual="vgg_random"),
    "k30_tps_vgg_random": dict(variant="k30", pairs="tps", perceptual="vgg_random"),
    "k10_video_vgg_random": dict(variant=None, pairs="video", perceptual="vgg_random"),
    "k10_tps_pixel": dict(variant=None, pairs="tps", perceptual="pixel"),
    "supervised": None,
}


def row_config(row: str, seed: int, steps: int | None, tiny: bool):
    """The config of `row` with `seed` (model init, data order and warps), optionally `steps` long."""
    spec = ROWS[row]
    if spec is None:
        config = supervised_configs.get_config()
    else:
        config = imm_configs.get_config(spec["variant"])
        config.imm.pairs = spec["pairs"]
        config.imm.perceptual = spec["perceptual"]
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
    args = parser.parse_args(argv)
    rows = [row for row in args.rows.split(",") if row]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    output = args.output or os.path.join(HERE, "results_tiny.jsonl" if args.tiny else "results.jsonl")
    for row in rows:
        for seed in (int(s) for s in args.seeds.split(",")):
            config = row_config(row, seed, args.steps, args.tiny)
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
