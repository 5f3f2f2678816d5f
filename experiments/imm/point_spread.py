"""Where the table's discovered points sit: one JSON line per trained IMM run (and the untrained networks).

    PYTHONPATH=$PWD python experiments/imm/point_spread.py > experiments/imm/points.jsonl
    PYTHONPATH=$PWD python experiments/imm/point_spread.py --seeds=0 --picture=experiments/imm/points.jpg

For each run under `--workdirs` (the chosen checkpoint, as scored in results.jsonl) on the 256 test faces:
  * "at_border": the fraction of (face, point) pairs within one pose-map cell of the map's edge, where the
    points of a collapsed bottleneck end up (they then encode position, not the face);
  * "spread_px": the std over faces of each point's position, averaged over points and axes (pixels at 64 px;
    the 68 true landmarks move by about 3 px on these aligned crops).
`--picture` (a .png or .jpg) saves instead, for seed 0's run of each trained row in table order, its points
coloured by index on 8 test faces, then the last row's own picture (its points again, then three TPS pairs:
source, target and reconstruction).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from run_table import ROWS  # noqa: E402


def spread(points: np.ndarray, pose_size: int, stride: int) -> dict:
    """Statistics of `points` [N, K, 2] (x, y) pixels of a `pose_size`^2 pose map with `stride`."""
    from landmarkjax.ops.heatmaps import image_to_heatmap_coords

    cells = np.asarray(image_to_heatmap_coords(points, stride))
    border = (cells < 1.0) | (cells > pose_size - 2.0)
    return {
        "at_border": float(border.any(-1).mean()),
        "spread_px": float(points.std(axis=0).mean()),
    }


def main(argv: list[str] | None = None) -> None:
    import jax

    from landmarkjax import runs
    from landmarkjax.data.visualize import contact_sheet
    from run_table import make_config, points_and_landmarks, untrained_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdirs", default=os.path.join("workdir", "imm_table"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows of run_table.ROWS")
    parser.add_argument("--picture", default=None, help="save seed 0's pictures here (PNG) instead")
    args = parser.parse_args(argv)
    pictures = []
    for row in args.rows.split(","):
        if row in ("mean_shape", "supervised") or row not in ROWS:
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            if row == "untrained":
                method, params = untrained_params(make_config(row, {"seed": seed}))
                step = 0
            else:
                workdir = os.path.join(args.workdirs, row, f"seed{seed}")
                if not os.path.exists(os.path.join(workdir, "config.json")):
                    continue
                restored = runs.restore_run(workdir)
                method, params, step = restored.method, restored.state.params, restored.step
                if args.picture and seed == 0:
                    batch = next(iter(method.eval_loader(8, "test")))
                    points = np.asarray(jax.jit(method.predict_points)(params, batch["image"]))
                    pictures.append(contact_sheet(batch["image"], points, ncols=8))
                    last = (method, restored, batch)
            if args.picture:
                continue
            points, landmarks, _ = points_and_landmarks(method, params, method.eval_loader(32, "test"))
            record = {
                "row": row,
                "seed": seed,
                "step": step,
                **spread(points, method.pose_size, method.stride),
                "landmark_spread_px": float(landmarks.std(axis=0).mean()),
            }
            print(json.dumps(record), flush=True)
    if args.picture and pictures:
        from PIL import Image

        method, restored, batch = last  # the last row's own picture: its points, then TPS pairs redrawn
        pictures.append(method.visualize(restored.state, batch, restored.frozen))

        width = max(p.shape[1] for p in pictures)
        padded = [np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
        stacked = np.concatenate(padded)
        Image.fromarray(stacked).save(args.picture, quality=85)


if __name__ == "__main__":
    main(sys.argv[1:])
