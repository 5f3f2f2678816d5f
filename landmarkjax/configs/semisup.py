"""Semi-supervised landmarks (Honari et al., CVPR 2018) with an RCN (Honari et al., CVPR 2016) on synthetic faces.

Run (the defaults are a first guess, neither timed nor tuned yet; tests/test_semisup.py trains a 2-step
version of this config end to end):

    python train.py --config=landmarkjax/configs/semisup.py --workdir=./workdir/semisup
    python eval.py --config=landmarkjax/configs/semisup.py --workdir=./workdir/semisup

Three streams per step: `semisup.labelled_fraction` S of the training faces with landmarks (RCN loss:
per-landmark softmax over pixels + NLL), `semisup.attribute_fraction` M with attributes (predicted from
the soft-argmax landmarks), and every training face for the ELT loss. Any field can be overridden, e.g.
`--config.semisup.labelled_fraction=0.05 --config.semisup.elt_weight=0` (no ELT) or
`--config.model.architecture=sumnet`.

Real data (built first with `landmarkjax.data.builders.build_dataset`, see README "Training on 300-W"):

    python train.py --config=landmarkjax/configs/semisup.py:celeba_mafl --config.data.tfds_data_dir=DIR
    python train.py --config=landmarkjax/configs/semisup.py:face300w --config.data.tfds_data_dir=DIR

`celeba_mafl`: 5 landmarks and CelebA's 40 binary attributes (the paper's real-data setting for the
attribute loss); `face300w`: 68 landmarks and no attributes, so landmarks + ELT only.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from landmarkjax.configs.common import face_data_config, optimizer_config, training_config
from landmarkjax.face_layout import CELEBA_ATTRIBUTE_NAMES

VARIANTS = ("synthetic", "celeba_mafl", "face300w")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The semi-supervised method's defaults; `variant` in VARIANTS picks the data (default: synthetic)."""
    variant = variant or "synthetic"
    if variant not in VARIANTS:
        raise ValueError(f"semisup config variant must be one of {VARIANTS}; got {variant!r}.")
    config = training_config(
        "semisup",
        total_steps=500,
        batch_size=16,
        eval_batch_size=64,
        log_every=20,
        eval_every=250,
        checkpoint_every=100,
        best_metric="nme",
        best_mode="min",
    )

    # The attributes used here are the synthetic faces' (FACE_ATTRIBUTE_NAMES); 64 px is divisible by
    # 2 ** (number of branches - 1).
    config.data = face_data_config()

    config.model = ml_collections.ConfigDict()
    config.model.architecture = "rcn"  # or "sumnet"
    config.model.widths = (16, 32, 48, 48)  # one per branch, finest first (4 branches: 64, 32, 16, 8 px)
    config.model.encoder_depth = 1
    config.model.decoder_depth = 1  # RCN decoder convolutions per branch (SumNet: per-branch convolutions)
    # The masking ablation: one bool per branch (finest first), False drops that branch in training and
    # evaluation, e.g. (True, False, False, False) keeps the finest branch alone; None keeps every branch.
    config.model.branch_mask = config_dict.placeholder(tuple)
    config.model.attribute_hidden_widths = (64, 64)

    config.semisup = ml_collections.ConfigDict()
    config.semisup.labelled_fraction = 0.05  # S / N: faces whose landmarks are used, in (0, 1]
    config.semisup.attribute_fraction = 1.0  # M / N: faces whose attributes are used, in (0, 1]
    config.semisup.landmark_weight = 1.0
    config.semisup.attribute_weight = 1.0
    config.semisup.elt_weight = 0.01  # squared pixels: small
    config.semisup.regression_attributes = ("yaw", "pitch", "roll")  # head pose, radians
    config.semisup.binary_attributes = ("smile", "eyes_open")  # classified as value > threshold
    config.semisup.binary_thresholds = (0.5, 0.6)
    config.semisup.soft_argmax_temperature = 1.0
    config.semisup.elt_stop_gradient = "none"  # "none", "warped" or "original"
    config.semisup.elt_max_rotation = 0.3  # radians
    config.semisup.elt_scale_range = (0.9, 1.1)
    config.semisup.elt_max_translation = 0.05  # fraction of the image size
    config.semisup.elt_flip_probability = 0.5

    config.eval = ml_collections.ConfigDict()
    config.eval.locator = "soft_argmax"  # or "argmax" (the 2016 code's test-time read-out)
    config.eval.threshold = 0.08
    config.eval.num_visualized = 16

    config.optimizer = optimizer_config("adam", learning_rate=2e-3, warmup_steps=50, schedule="cosine")

    if variant == "celeba_mafl":
        config.data.source = "celeba_mafl"
        config.semisup.regression_attributes = ()
        config.semisup.binary_attributes = CELEBA_ATTRIBUTE_NAMES  # stored as 1 (present) / 0 (absent)
        config.semisup.binary_thresholds = (0.5,) * len(CELEBA_ATTRIBUTE_NAMES)
    elif variant == "face300w":
        config.data.source = "face300w"
        config.semisup.attribute_weight = 0.0
        config.semisup.regression_attributes = ()
        config.semisup.binary_attributes = ()
        config.semisup.binary_thresholds = ()
    return config
