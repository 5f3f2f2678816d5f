"""IMM: unsupervised landmarks by conditional image generation (Jakab et al., NeurIPS 2018), synthetic faces.

Run (CPU default: 64 px, a narrow network, K = 10; `get_config("k30")` sets K = 30):

    python train.py --config=landmarkjax/configs/imm.py --workdir=./workdir/imm
    python train.py --config=landmarkjax/configs/imm.py:k30 --workdir=./workdir/imm_k30
    python eval.py --config=landmarkjax/configs/imm.py --workdir=./workdir/imm

`get_config("paper")` (or `:paper`, and `:paper_k30`) is the paper's scale: 128 px, encoder widths 32-256
(16x16 pose maps), renderer from 256 channels, batch 50 (the official run took ~3M batches). Every run
uses the paper's optimiser: Adam 1e-3, gradient clipping at global norm 1.0, constant rate (the official
x0.95 decay every 100k steps never triggers at these lengths).

The perceptual network is a frozen input (`imm.perceptual`):
  * "vgg_random": a VGG-`imm.vgg_depth` with fixed random weights drawn from `imm.vgg_seed`;
  * "vgg_file": weights read by `landmarkjax.models.vgg.load_vgg_params` from `imm.vgg_weights_path`
    (torchvision `.npz`/`.pth` or Keras `.h5`), e.g. `--config.imm.perceptual=vgg_file
    --config.imm.vgg_weights_path=/data/vgg16.npz --config.imm.vgg_preprocess=torchvision`; the fully
    unsupervised choice is a VGG-16 trained here by colourisation (`landmarkjax/configs/colorization.py`,
    exported with `landmarkjax.runs.export_vgg_weights`), which sees only lightness:
    `--config.imm.perceptual=vgg_file --config.imm.vgg_weights_path=<workdir>/vgg16_colorization.npz
    --config.imm.vgg_preprocess=colorization` (the preset computes L* from the RGB images, as in training);
  * "pixel": the input-layer term of the loss only (plain pixel L2 with its running average), no network.
Pairs (`imm.pairs`): "tps" (the authors' two-stage random TPS of one face, drawn in the train step) or
"video" (two frames of one synthetic clip). Evaluation fits a linear map without bias from the K points
to the 68 (or MAFL's 5) landmarks on `eval.num_regression_faces` training faces and reports the
inter-ocular NME on the test faces.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from landmarkjax.configs.common import optimizer_config, training_config

VARIANTS = ("k30", "paper", "paper_k30")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """IMM's defaults; `variant` None (K = 10, 64 px), "k30", "paper" (128 px, official widths), "paper_k30"."""
    if variant not in (None, "", *VARIANTS):
        raise ValueError(f"variant must be one of {VARIANTS} or None; got {variant!r}.")
    config = training_config(
        "imm",
        total_steps=2000,
        batch_size=16,
        eval_batch_size=64,
        log_every=20,
        eval_every=500,
        checkpoint_every=250,
        best_metric="nme",
        best_mode="min",
    )

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # or "celeba_mafl" (5 points; landmarkjax/data/face_sources.py), TPS pairs only
    config.data.tfds_data_dir = config_dict.placeholder(str)
    config.data.tfds_config = config_dict.placeholder(str)
    config.data.train_split = "train"
    config.data.eval_split = config_dict.placeholder(str)  # None: the dataset's test split
    config.data.extra_eval_splits = ()
    config.data.image_size = 64  # network input, pixels (a crop around the face box)
    config.data.source_size = 128  # side of the generated synthetic faces (cropped to image_size)
    config.data.crop_margin = 0.25
    config.data.num_train = 1024
    config.data.num_test = 256
    config.data.train_seed = 0
    config.data.test_seed = 1
    # The synthetic "validation" split (`--config.data.eval_split=validation`): checkpoints ranked on faces
    # that are neither training nor test faces.
    config.data.num_validation = 256
    config.data.validation_seed = 3

    config.imm = ml_collections.ConfigDict()
    config.imm.num_landmarks = 10  # K
    config.imm.gaussian_std = 0.1  # bottleneck std in [-1, 1] units (official)
    config.imm.pairs = "tps"  # "tps" or "video"
    config.imm.clip_frames = 4  # frames per synthetic clip for video pairs (two are drawn)
    config.imm.tps_grid_size = 10
    # The authors' warps (landmarkjax.ops.tps.IMM_TARGET_TPS / IMM_SOURCE_TPS); rotation in degrees.
    config.imm.target_tps = ml_collections.ConfigDict(
        dict(rotation_deg=0.0, scale_std=0.0, translation_std=0.1, warp_std=(0.001, 0.005))
    )
    config.imm.source_tps = ml_collections.ConfigDict(
        dict(rotation_deg=5.0, scale_std=0.1, translation_std=0.1, warp_std=(0.001, 0.01))
    )
    config.imm.perceptual = "vgg_random"  # "vgg_random", "vgg_file" or "pixel"
    config.imm.vgg_weights_path = config_dict.placeholder(str)  # for "vgg_file"
    config.imm.vgg_depth = 16
    config.imm.vgg_seed = 0  # the fixed random weights of "vgg_random"
    # "caffe" (Keras/Caffe ImageNet VGGs), "torchvision", "colorization" (L* only: the VGG that
    # landmarkjax/configs/colorization.py trains) or "none".
    config.imm.vgg_preprocess = "caffe"
    # VGG layers compared after the input (a subset of IMM_PERCEPTUAL_LAYERS, in that order).
    config.imm.perceptual_layers = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
    config.imm.average_decay = 0.99
    config.imm.loss_scale = 1000.0

    config.model = ml_collections.ConfigDict()
    config.model.encoder_widths = (16, 32, 64)  # 3 blocks: 16x16 pose maps at 64 px (stride 4)
    config.model.render_width = 64
    config.model.render_min_width = 16

    config.eval = ml_collections.ConfigDict()
    config.eval.num_regression_faces = 1024  # training faces the linear regressor is fitted on
    config.eval.num_visualized = 8

    config.optimizer = optimizer_config(
        "adam", learning_rate=1e-3, warmup_steps=0, schedule="constant", grad_clip_norm=1.0
    )

    if variant in ("k30", "paper_k30"):
        config.imm.num_landmarks = 30
    if variant in ("paper", "paper_k30"):
        config.data.image_size = 128
        config.data.source_size = 160
        config.batch_size = 50
        config.eval_batch_size = 50
        config.model.encoder_widths = (32, 64, 128, 256)
        config.model.render_width = 256
        config.model.render_min_width = 32
    return config
