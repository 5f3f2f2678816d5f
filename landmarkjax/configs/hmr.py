"""HMR: human mesh recovery (Kanazawa et al., CVPR 2018) on synthetic people, at CPU scale by default.

Run (64 px synthetic people, a small ResNet encoder, 3 IEF iterations, paired 3D for every training image,
the factorised adversarial prior on the synthetic mocap set):

    python train.py --config=landmarkjax/configs/hmr.py --workdir=./workdir/hmr
    python eval.py --workdir=./workdir/hmr
    python eval.py --workdir=./workdir/hmr --config.data.source=h36m --config.data.h36m_dir=/data/h36m_eval

Named variants, `--config=landmarkjax/configs/hmr.py:VARIANT` (the rows of the HMR table):
  * `paired3d` (= the default): 2D keypoints + 3D joints + SMPL parameters on every image, with the prior;
  * `no3d_prior`: no paired 3D (`hmr.use_3d=False`), 2D keypoints + the adversarial prior;
  * `no3d_noprior`: no paired 3D, 2D keypoints only (`hmr.adversarial_weight=0`: no discriminator);
  * `ief1`: paired 3D with one IEF iteration instead of three;
  * `rot6d`: paired 3D with the continuous 6-D rotation representation (Zhou et al. 2019) for the pose;
  * `paper`: the paper's network and input (ResNet-50, fc 1024, 224 px, batch 64, Adam 1e-5 / 1e-4), for an
    accelerator.

Loss weights are the paper's (`landmarkjax.losses.HMR_LOSS_WEIGHTS`): 2D keypoints 60, 3D joints 60, SMPL
parameters 60 (lambda (L_reproj + L_3D), lambda = 60; the official `do_train.sh` passes `--e_3d_weight 60`),
adversarial 1 (encoder) and 1 (discriminator). The discriminator sees poses and shapes from
`SyntheticMocapSource` (its own seed stream, never the training images' bodies), or from AMASS-style
`.npz` files with `--config.data.mocap_path='/data/amass/*.npz'`. Any field can be overridden, e.g.
`--config.hmr.discriminator_steps=2` (two discriminator updates per encoder update) or
`--config.hmr.discriminator_start=200` (the encoder alone for 200 steps first).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from landmarkjax.configs.common import optimizer_config, training_config

VARIANTS = ("paired3d", "no3d_prior", "no3d_noprior", "ief1", "rot6d", "paper")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """HMR's defaults; `variant` one of `VARIANTS` (None or "" = "paired3d")."""
    if variant not in (None, "", *VARIANTS):
        raise ValueError(f"variant must be one of {VARIANTS} or None; got {variant!r}.")
    config = training_config(
        "hmr",
        total_steps=600,
        batch_size=32,
        eval_batch_size=64,
        log_every=25,
        eval_every=0,
        checkpoint_every=200,
        best_metric="pa_mpjpe",
        best_mode="min",
    )

    config.data = ml_collections.ConfigDict()
    # Training always uses the synthetic people; `source` picks the EVALUATION set: "synthetic" (held-out
    # synthetic people, seed `test_seed`) or "h36m" (a Human3.6M-style folder, landmarkjax/data/h36m.py).
    config.data.source = "synthetic"
    config.data.image_size = 64  # network input and synthetic image side, pixels
    config.data.num_train = 1024
    config.data.num_test = 256
    config.data.train_seed = 0
    config.data.test_seed = 1  # test people are never training people
    config.data.max_occluders = 2
    # The discriminator's real bodies: None = SyntheticMocapSource(num_mocap, seed=mocap_seed); otherwise a
    # glob or comma-separated list of AMASS-style .npz files (poses [N, 72+], betas), every mocap_stride-th
    # frame.
    config.data.num_mocap = 4096
    config.data.mocap_seed = 0
    config.data.mocap_path = config_dict.placeholder(str)
    config.data.mocap_stride = 1
    # Human3.6M-style evaluation (data.source="h36m"): the folder, the cameras kept (None = all) and the
    # crop around the projected joints (side = crop_scale x the joints' larger extent).
    config.data.h36m_dir = config_dict.placeholder(str)
    config.data.h36m_cameras = config_dict.placeholder(tuple)
    config.data.h36m_crop_scale = 1.45

    # The body model: the synthetic SMPL-format model the synthetic people are made from (model_seed), or an
    # SMPL model file (.pkl / .npz; with a cocoplus regressor for all 19 keypoints).
    config.body = ml_collections.ConfigDict()
    config.body.model_seed = 0
    config.body.model_path = config_dict.placeholder(str)

    config.model = ml_collections.ConfigDict()
    config.model.encoder = "small"  # "small" (basic-block ResNet [1, 1, 1, 1]) or "resnet50"
    config.model.width = 16  # the small encoder's first width (8 x width features)
    config.model.hidden = 256  # IEF MLP width (paper: 1024)
    # Dropout after each hidden IEF layer: the official 0.5 ("paper" variant) slows these short CPU runs
    # down (a 150-step check on 256 people: 2D error 0.17 -> 0.10 without it, no visible progress with it).
    config.model.dropout = 0.0
    config.model.pose_representation = "axis_angle"  # or "6d"
    config.model.num_iterations = 3  # IEF iterations (paper: 3)
    config.model.discriminator_joint_width = 32
    config.model.discriminator_pose_hidden = 1024

    config.hmr = ml_collections.ConfigDict()
    config.hmr.use_3d = True  # 3D joint and SMPL parameter losses on the images that have paired 3D
    config.hmr.paired_3d_fraction = 1.0  # the first fraction of the training images has paired 3D
    config.hmr.keypoint_weight = 60.0
    config.hmr.joints_3d_weight = 60.0  # official do_train.sh: --e_3d_weight 60 (its flag default 1 is unused)
    config.hmr.smpl_weight = 60.0
    config.hmr.adversarial_weight = 1.0  # the encoder's adversarial loss; 0 = no prior, no discriminator
    config.hmr.discriminator_weight = 1.0
    config.hmr.discriminator_steps = 1  # discriminator updates per encoder update (each its own mocap batch)
    # Steps of the encoder alone (phase "encoder") before the prior. From scratch (no ImageNet encoder, unlike
    # the paper's), the prior from step 0 pulls the untrained encoder's bodies towards random mocap poses: a
    # 400-step probe with paired 3D reached PA-MPJPE 206 mm from step 0 and 174 mm from step 200 (mean body
    # 183 mm). Half the run by default; the "paper" variant starts at 0.
    config.hmr.discriminator_start = 300

    config.eval = ml_collections.ConfigDict()
    config.eval.pck_threshold = 0.1  # fraction of the larger side of the true 14 joints' 2D box
    config.eval.num_visualized = 8
    config.eval.visualize_scale = 2  # the overlays are rendered at this multiple of the image size

    config.optimizer = optimizer_config("adam", learning_rate=1e-3, warmup_steps=30, schedule="cosine")
    config.discriminator_optimizer = optimizer_config("adam", learning_rate=1e-3, schedule="constant")

    if variant in ("no3d_prior", "no3d_noprior"):
        config.hmr.use_3d = False
    if variant == "no3d_noprior":
        config.hmr.adversarial_weight = 0.0
    if variant == "ief1":
        config.model.num_iterations = 1
    if variant == "rot6d":
        config.model.pose_representation = "6d"
    if variant == "paper":
        config.data.image_size = 224
        config.batch_size = 64
        config.eval_batch_size = 64
        config.total_steps = 100_000
        config.checkpoint_every = 5000
        config.eval_every = 5000
        config.model.encoder = "resnet50"
        config.model.hidden = 1024
        config.model.dropout = 0.5
        config.hmr.discriminator_start = 0
        # The official code's rates and weight decay 1e-4 on both networks.
        config.optimizer = optimizer_config("adam", learning_rate=1e-5, schedule="constant", weight_decay=1e-4)
        config.discriminator_optimizer = optimizer_config(
            "adam", learning_rate=1e-4, schedule="constant", weight_decay=1e-4
        )
    return config
