"""Self-supervised colourisation (Zhang et al. 2016; Larsson et al. 2017): the perceptual VGG for IMM.

Run (CPU scale: the full-width VGG-16 trunk on 64 px crops of the synthetic faces IMM trains on):

    python train.py --config=landmarkjax/configs/colorization.py --workdir=./workdir/colorization
    python eval.py --config=landmarkjax/configs/colorization.py --workdir=./workdir/colorization
    python -c "from landmarkjax.runs import export_vgg_weights; \
        export_vgg_weights('workdir/colorization', 'workdir/colorization/vgg16_colorization.npz')"
    python train.py --config=landmarkjax/configs/imm.py --workdir=./workdir/imm_colorization \
        --config.imm.perceptual=vgg_file --config.imm.vgg_preprocess=colorization \
        --config.imm.vgg_weights_path=workdir/colorization/vgg16_colorization.npz

`get_config("128")` trains at 128 px (IMM's paper scale, `configs/imm.py:paper`) with batch 32.
Other images: `--config.data.source=images --config.data.image_glob='/data/photos/*.jpg'` (the last
`data.num_test` files, sorted, are held out), or a built TFDS dataset with an `image` feature:
`--config.data.source=tfds --config.data.tfds_name=celeb_a --config.data.tfds_data_dir=/data/tfds`.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from landmarkjax.configs.common import optimizer_config, training_config

VARIANTS = ("128",)


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """Colourisation defaults; `variant` None (64 px, 300 steps of 16) or "128" (128 px, batch 32)."""
    if variant not in (None, "", *VARIANTS):
        raise ValueError(f"variant must be one of {VARIANTS} or None; got {variant!r}.")
    config = training_config(
        "colorization",
        total_steps=300,
        batch_size=16,
        eval_batch_size=32,
        log_every=10,
        eval_every=0,  # only at the end
        checkpoint_every=100,
        best_metric="ab_error",
        best_mode="min",
    )

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # "synthetic" faces, "images" (data.image_glob) or "tfds"
    config.data.image_glob = config_dict.placeholder(str)  # for "images": e.g. "/data/photos/**/*.jpg"
    config.data.tfds_name = config_dict.placeholder(str)  # for "tfds": a built dataset with an image feature
    config.data.tfds_data_dir = config_dict.placeholder(str)
    config.data.tfds_config = config_dict.placeholder(str)
    config.data.train_split = "train"  # "tfds" splits
    config.data.eval_split = "test"
    config.data.image_size = 64  # network input, pixels (a multiple of 16)
    config.data.source_size = 128  # side of the generated synthetic faces
    config.data.crop_margin = 0.25  # face crops as IMM's (landmarkjax/configs/imm.py)
    config.data.num_train = 1024  # synthetic faces (the ones IMM trains on: same seed)
    config.data.num_test = 64  # synthetic faces, or the held-out files of "images"
    config.data.train_seed = 0
    config.data.test_seed = 1

    config.colorization = ml_collections.ConfigDict()
    config.colorization.bin_size = 10.0  # ab quantisation (262 in-gamut bins)
    config.colorization.target_stride = 4  # predictions and targets at H / 4 x W / 4
    config.colorization.soft_neighbours = 5
    config.colorization.soft_sigma = 5.0
    config.colorization.prior_images = 256  # training images the class prior is counted on
    config.colorization.prior_sigma = 5.0
    config.colorization.rebalance_mix = 0.5  # lambda
    config.colorization.temperature = 0.38  # annealed mean

    config.model = ml_collections.ConfigDict()
    config.model.vgg_depth = 16
    config.model.head_width = 256

    config.optimizer = optimizer_config(
        "adam", learning_rate=3e-4, warmup_steps=20, schedule="constant", grad_clip_norm=1.0
    )

    if variant == "128":
        config.data.image_size = 128
        config.data.source_size = 160
        config.batch_size = 32
        config.total_steps = 20000
        config.eval_every = 2000
        config.checkpoint_every = 1000
    return config
