"""Supervised CPM landmark detector on synthetic 64x64 faces (the baseline, and SBR's stage 1).

Run (a few minutes on a 2-core CPU):

    python train.py --config=landmarkjax/configs/supervised.py --workdir=./workdir/supervised
    python eval.py --config=landmarkjax/configs/supervised.py --workdir=./workdir/supervised

Any field can be overridden on the command line, e.g. `--config.total_steps=3000` or
`--config.model.stage_width=128`. The detector follows the CPM of Supervision-by-Registration (Dong et
al., CVPR 2018): several stages, each supervised with heatmap MSE, Gaussian targets thresholded at 0.01
and a background map; it is scaled down (narrower, stride 4 at 64 px) so that it trains on a CPU.

On 300-W (68 points; NME on `full`, `common` and `challenging`), once built with `build_dataset` (README,
"Training on 300-W"):

    python train.py --config=landmarkjax/configs/supervised.py --config.data.source=face300w \
        --config.data.tfds_data_dir=/data/tfds

Read-out (`loss.coord_locator`, `eval.locator`). The coordinate loss, evaluation, inference and SBR's
registration loss all read landmarks with SBR's own peak finder, `local_soft_argmax` (argmax, then the
value-weighted centroid of the heatmap in a 7x7 window, `eval.radius = 3`), instead of the global soft-argmax
at temperature 0.05 used before issue 11 (still available: `--config.loss.coord_locator=soft_argmax
--config.eval.locator=soft_argmax`). On ideal Gaussian heatmaps of this config's sigma (1 cell) the global
softmax snaps toward the grid, up to 0.38 cells (1.5 px) off, while the local centroid stays within 0.005
cells (`python benchmarks/readout.py`, BENCHMARKS.md). On trained detectors, though, what matters is that the
read-out is the one the coordinate loss trained: the old detector (500 steps, seed 0) scores NME 0.0418 with
its global softmax but 0.0599 with the local centroid, while a detector whose coordinate loss trains the local
centroid scores 0.0407 with it (AUC@0.08 0.513 vs 0.484; failure rate 4.3 % vs 2.0 %; one seed each, so the
NME difference is within run-to-run noise). The two read-outs are hence switched together, and this one is
chosen because it is also exact on ideal Gaussians, so sharper heatmaps later in training (or the VGG-16
detector's) are not snapped to the grid.
"""

from __future__ import annotations

import ml_collections

from landmarkjax.configs.common import face_data_config, optimizer_config, training_config


def get_config() -> ml_collections.ConfigDict:
    """The supervised method's defaults."""
    config = training_config(
        "supervised",
        total_steps=500,
        batch_size=32,
        eval_batch_size=64,
        log_every=20,
        eval_every=250,
        checkpoint_every=100,
        best_metric="nme",
        best_mode="min",
    )

    config.data = face_data_config()

    config.model = ml_collections.ConfigDict()
    config.model.backbone_widths = (16, 32, 64)  # 3 blocks -> stride 4 (16x16 heatmaps at 64 px)
    config.model.convs_per_block = (1,)  # one count for all blocks, or one per block (VGG-16: (2, 2, 3, 3))
    config.model.feature_widths = ()  # () = one convolution of stage_width channels
    config.model.stage_width = 48
    config.model.num_stages = 3
    config.model.stage1_depth = 1
    config.model.stage1_head_width = 0  # 0 = no 1x1 layer before the heads
    config.model.stage_depth = 3
    config.model.stage_kernel_size = 3
    config.model.stage_dilation = 2
    config.model.stage_small_depth = 0  # 3x3 convolutions after those in each refinement stage (SBR: 4)
    config.model.stage_head_width = 0
    config.model.with_background = True

    config.loss = ml_collections.ConfigDict()
    config.loss.heatmap_sigma = 1.0  # heatmap cells (= 4 px at stride 4)
    config.loss.target_threshold = 0.01
    config.loss.heatmap_weight = 1.0
    config.loss.coord_weight = 0.05
    config.loss.coord_temperature = 0.05  # temperature of the "soft_argmax" read-out (heatmap values peak at 1)
    # The read-out the coordinate loss trains (radius: eval.radius): "local_soft_argmax", or "soft_argmax"
    # (the global softmax at coord_temperature, the default before issue 11). Keep it equal to eval.locator:
    # a detector read with another read-out than the one it was trained for scores far worse (docstring).
    config.loss.coord_locator = "local_soft_argmax"

    config.eval = ml_collections.ConfigDict()
    # How landmarks are read off the last stage's heatmaps for evaluation and inference (see the docstring):
    # SBR's peak finder (argmax, then the value-weighted centroid of a (2 radius + 1)^2 window), or
    # "soft_argmax" (the global softmax at loss.coord_temperature, the default before issue 11); the same as
    # loss.coord_locator.
    config.eval.locator = "local_soft_argmax"
    config.eval.radius = 3  # local_soft_argmax window half-size, heatmap cells (3 sigma at sigma 1)
    config.eval.threshold = 0.08  # AUC / failure-rate threshold on the inter-ocular NME
    config.eval.num_visualized = 16

    config.optimizer = optimizer_config("adam", learning_rate=2e-3, warmup_steps=50, schedule="cosine")
    return config
