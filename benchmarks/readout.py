"""Heatmap read-out error against the sub-cell position of the landmark (SBR issue 11, audit item 1).

Usage:
  python benchmarks/readout.py [--steps 20] [--noise 0.02] [--seed 0]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="sub-cell offsets per axis")
    parser.add_argument("--noise", type=float, default=0.02, help="std of the additive noise (peak = 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
