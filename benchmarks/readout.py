"""Heatmap read-out error against the sub-cell position of the landmark (SBR issue 11, audit item 1).

Usage:
  python benchmarks/readout.py [--steps 20] [--noise 0.02] [--seed 0]
  python benchmarks/readout.py --workdir=./workdir/supervised   # also: a trained detector's NME per read-out

A landmark at (7 + u, 7 + v) cells of a 16 x 16 map (the CPU detector's heatmap size), u and v swept over
[0, 1) in `--steps` steps, is rendered as an ideal Gaussian bump (peak 1, `render_gaussian_heatmaps`) at
sigma 1 cell (the supervised/SBR configs' `loss.heatmap_sigma`) and 0.5 cell (the `sbr.py:vgg16` variant and
SBR's own 4 px at stride 8); also the same bump thresholded at 0.01 as the training targets are
(`heatmap_targets`), and the bump plus i.i.d. Gaussian noise of std `--noise` (a crude stand-in for a
trained detector's residual, which a wide window sums up). Each read-out is compared with the closed-form
centre (the point it was rendered at).

Read-outs: the global `soft_argmax` over the heatmap VALUES at several temperatures (0.05 is the configs'
old default, `loss.coord_temperature`), `local_soft_argmax` (SBR's argmax + value-weighted centroid) at
radius 1-4 cells, and `soft_argmax(log heatmap)` (integral regression with the heatmap as log-density:
exact for a Gaussian, undefined for a regressed map with values <= 0).

Printed, one JSON line per (heatmap kind, sigma, read-out): the largest and mean Euclidean error over the
2-D sweep in cells, and the x error at x offsets 0, 0.1, ..., 0.5 (y on a cell centre); by symmetry the
error at 1 - u is minus the error at u.

With `--workdir` (a finished supervised or SBR run), its best checkpoint's last-stage heatmaps of the run's
evaluation stills (the supervised method's `eval_loader`; SBR: the first frame of every evaluation clip) are
read with each read-out, plus two hybrids (the local centroid of max(h - a peak, 0), and a softmax at
temperature t restricted to the window), and one JSON line each gives the NME (inter-ocular) and the
failure rate at 0.08; also a line of heatmap statistics (mean peak, share of cells above 0.05).
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.ops import heatmaps as hm

SIZE = 16
CENTRE = 7.0


def read_outs() -> dict:
    """{name: function of [P, H, W, 1] heatmaps -> [P, 1, 2] (x, y) cells}."""
    outs = {f"soft_argmax_t{t:g}": (lambda t: lambda m: hm.soft_argmax(m, t))(t) for t in (0.02, 0.05, 0.1, 0.2)}
    for radius in (1, 2, 3, 4):
        outs[f"local_soft_argmax_r{radius}"] = (lambda r: lambda m: hm.local_soft_argmax(m, r))(radius)
    outs["soft_argmax_of_log"] = lambda m: hm.soft_argmax(jnp.log(jnp.maximum(m, 1e-30)), 1.0)
    return outs


def trained_detector(workdir: str) -> None:
    """NME of a trained run's heatmaps under each read-out (see the module docstring)."""
    from landmarkjax import metrics, runs

    run = runs.restore_run(workdir)
    method, params = run.method, run.state.params
    keypoints = method.model.num_keypoints
    last_stage = jax.jit(lambda p, x: method.model.apply({"params": p}, x)[-1][..., :keypoints])
    maps, truth, visible = [], [], []
    for batch in method.eval_loader(64):
        images = batch["image"] if "image" in batch else batch["frames"][:, 0]
        landmarks = batch["landmarks"] if "image" in batch else batch["landmarks"][:, 0]
        visibility = batch["visibility"] if "image" in batch else batch["visibility"][:, 0]
        maps.append(np.asarray(last_stage(params, jnp.asarray(images))))
        truth.append(landmarks)
        visible.append(visibility)
    maps, truth, visible = jnp.asarray(np.concatenate(maps)), np.concatenate(truth), np.concatenate(visible)
    peaks = np.asarray(jnp.max(maps, axis=(1, 2)))
    print(json.dumps({"figure": "trained_heatmaps", "workdir": workdir, "mean_peak": round(float(peaks.mean()), 4),
                      "share_above_0.05": round(float(np.mean(np.asarray(maps) > 0.05)), 4)}))

    def minus_peak(alpha, radius):
        def read(h):
            peak = jnp.max(h, axis=(-3, -2), keepdims=True)
            return hm.local_soft_argmax(jnp.maximum(h - alpha * peak, 0.0), radius)
        return read

    def window_softmax(temperature, radius):
        def read(h):
            peak = jnp.max(h, axis=(-3, -2), keepdims=True)
            return hm.local_soft_argmax(jnp.exp((h - peak) / temperature), radius, threshold=0.0)
        return read

    outs = {name: read for name, read in read_outs().items() if name != "soft_argmax_of_log"}
    outs["argmax"] = lambda h: hm.local_soft_argmax(h, 0)
    outs["local_minus_0.5_peak_r3"] = minus_peak(0.5, 3)
    outs["window_softmax_t0.05_r3"] = window_softmax(0.05, 3)
    for name, read in outs.items():
        points = hm.heatmap_to_image_coords(jax.jit(read)(maps), method.model.stride)
        errors = np.asarray(metrics.nme(points, truth, "inter_ocular", visible))
        print(json.dumps({"figure": "trained_detector_nme", "workdir": workdir, "readout": name,
                          "nme": round(float(np.nanmean(errors)), 5),
                          "failure_rate@0.08": round(float(np.mean(errors > 0.08)), 4),
                          "num_examples": int(errors.shape[0])}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="sub-cell offsets per axis")
    parser.add_argument("--noise", type=float, default=0.02, help="std of the additive noise (peak = 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="a trained run to read out (see the docstring)")
    args = parser.parse_args()
    if args.workdir:
        trained_detector(args.workdir)
    offsets = np.arange(args.steps) / args.steps
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="xy"), axis=-1).reshape(-1, 2)
    sweep = np.stack([offsets, np.zeros_like(offsets)], axis=-1)  # x offset only
    points = jnp.asarray(CENTRE + np.concatenate([grid, sweep]), jnp.float32)[:, None, :]  # [P, 1, 2]
    rng = np.random.default_rng(args.seed)
    for sigma in (1.0, 0.5):
        ideal = hm.render_gaussian_heatmaps(points, SIZE, SIZE, sigma)
        kinds = {
            "ideal": ideal,
            "thresholded_0.01": jnp.where(ideal >= 0.01, ideal, 0.0),
            f"noise_{args.noise:g}": ideal + jnp.asarray(rng.normal(0.0, args.noise, ideal.shape), jnp.float32),
        }
        for kind, maps in kinds.items():
            for name, read in read_outs().items():
                if name == "soft_argmax_of_log" and kind != "ideal":
                    continue  # log of zeros / negative values: not a read-out of such maps
                located = np.asarray(jax.jit(read)(maps))[:, 0]
                error = located - np.asarray(points)[:, 0]
                radial = np.linalg.norm(error[: len(grid)], axis=-1)
                x_error = error[len(grid):, 0]
                at = {f"{u:.1f}": round(float(x_error[i]), 4) for i, u in enumerate(offsets) if u <= 0.5 + 1e-9
                      and abs(u * 10 - round(u * 10)) < 1e-9}
                print(json.dumps({
                    "figure": "readout_error_cells", "heatmap": kind, "sigma_cells": sigma, "readout": name,
                    "max_error": round(float(radial.max()), 4), "mean_error": round(float(radial.mean()), 4),
                    "x_error_at_x_offset": at, "device": jax.devices()[0].platform,
                }))


if __name__ == "__main__":
    main()
