"""Settings every method's config shares: the training loop's schedule, batch sizes and checkpoints.

A method config starts from `training_config(...)` and adds its own `data`, `model`, `loss` and
`optimizer` sections, so every default stays visible in that method's config file.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

__all__ = ["face_data_config", "training_config", "optimizer_config"]


def training_config(
    method: str,
    *,
    total_steps: int,
    batch_size: int,
    eval_batch_size: int,
    log_every: int,
    eval_every: int,
    checkpoint_every: int,
    best_metric: str | None,
    best_mode: str = "min",
) -> ml_collections.ConfigDict:
    """The loop's settings.

    Fields: `method` (module in `landmarkjax.methods`), `seed`, `total_steps`, `batch_size` and
    `eval_batch_size` (GLOBAL: summed over all devices and processes; multiples of the device count),
    `log_every`, `eval_every` and `checkpoint_every` (steps; 0 = only at the end), `keep_checkpoints`
    (the last N kept, plus the best), `best_metric` / `best_mode` (which evaluation metric ranks
    checkpoints, "min" or "max"), `early_stopping_patience` (0 = off; p: stop once `best_metric` has not
    improved over p evaluations in a row), `init_from` / `init_step` (start from another run's best
    checkpoint, or its step `init_step`, as if resuming it: see `landmarkjax/training/loop.py`).
    """
    config = ml_collections.ConfigDict()
    config.method = method
    config.seed = 0
    config.total_steps = total_steps
    config.batch_size = batch_size
    config.eval_batch_size = eval_batch_size
    config.log_every = log_every
    config.eval_every = eval_every
    config.checkpoint_every = checkpoint_every
    config.keep_checkpoints = 2
    config.best_metric = best_metric
    config.best_mode = best_mode
    config.early_stopping_patience = 0
    config.init_from = config_dict.placeholder(str)  # another run's workdir
    config.init_step = config_dict.placeholder(int)  # None: that run's best checkpoint
    return config


def optimizer_config(
    name: str = "adam",
    *,
    learning_rate: float,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    grad_clip_norm: float = 0.0,
) -> ml_collections.ConfigDict:
    """An `optimizer` section for `landmarkjax.training.optimizers.make_optimizer`."""
    return ml_collections.ConfigDict(
        dict(
            name=name,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            schedule=schedule,
            weight_decay=weight_decay,
            momentum=momentum,
            grad_clip_norm=grad_clip_norm,
        )
    )


def face_data_config() -> ml_collections.ConfigDict:
    """The `data` section of the face-landmark configs (supervised, SBR, semisup): which faces, the crop
    around the face box, the synthetic faces' counts and seeds, and the training augmentation."""
    data = ml_collections.ConfigDict()
    # "synthetic" (faces drawn on the fly) or a dataset built by landmarkjax.data.builders.build_dataset:
    # "face300w" (68 points), "celeba_mafl" (5 points), "synthetic_faces": landmarkjax/data/face_sources.py.
    data.source = "synthetic"
    data.tfds_data_dir = config_dict.placeholder(str)  # where it was built (not for "synthetic")
    data.tfds_config = config_dict.placeholder(str)  # builder config (synthetic_faces: "image_64")
    data.train_split = "train"
    data.eval_split = config_dict.placeholder(str)  # None: "full" for face300w, "test" otherwise
    # Also evaluated, metrics prefixed "<split>/"; None: ("common", "challenging") for face300w, () otherwise.
    data.extra_eval_splits = config_dict.placeholder(tuple)
    data.image_size = 64  # network input, pixels (a crop around the face box)
    data.source_size = 128  # side of the generated synthetic images (cropped to image_size)
    data.crop_margin = 0.25  # context around the face box, fraction of its longer side
    data.num_train = 1024
    data.num_test = 256
    data.train_seed = 0
    # "full", or "narrow": labelled synthetic faces only near-frontal, unoccluded, sharp, mouth nearly closed
    # (landmarkjax.data.synthetic.faces.FACE_COVERAGES); evaluation and SBR's clips keep the full distribution.
    data.train_coverage = "full"
    data.test_seed = 1  # a different seed: test faces are never training faces
    # The synthetic "validation" split (data.eval_split="validation"): never training, test or SBR clip faces.
    data.num_validation = 256
    data.validation_seed = 3
    data.augment = ml_collections.ConfigDict()
    data.augment.scale_range = (0.9, 1.1)
    data.augment.max_rotation = 15.0  # degrees
    data.augment.max_shift = 0.05  # fraction of the crop
    data.augment.flip_probability = 0.5
    data.augment.colour_jitter = 0.2
    return data
