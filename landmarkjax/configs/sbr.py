"""Supervision-by-Registration on synthetic 64x64 faces and face clips: the default of `python train.py`.

Run (about eight minutes on a 2-core CPU):

    python train.py                                  # this config, into ./workdir/sbr
    python eval.py

    python train.py --config=landmarkjax/configs/sbr.py --workdir=./workdir/sbr   # the same, spelled out

Ablations (the README's table): `--config.sbr.stage1_steps=600` (detector only: every step supervised,
the same evaluation) and `--config.sbr.through_lk=False` (tracked targets detached, as in
self-training). `--config.sbr.registration_weight=0` is a different control: it still feeds the clips in
stage 2 but gives them no weight. `--config=landmarkjax/configs/sbr.py:vgg16` is the paper's detector
and input size (an accelerator job).

Starts from the supervised CPM config (`landmarkjax/configs/supervised.py`: model, heatmap loss, labelled
data, optimiser) and adds the `sbr` section and the unlabelled / evaluation clips. As in SBR (Dong et al.,
CVPR 2018) the detector is first trained on labelled images alone (stage 1: the supervised default's 500
steps of 32), then fine-tuned on labelled images plus unlabelled video (stage 2: 100 steps, each with 32
labelled images and 16 unlabelled three-frame clips) at the low end of the learning-rate schedule, with
registration weight 0.1 (0.2 on video alone); tracked points are dropped whose forward-backward error
exceeds 1 px, that end more than 2 px from the detection, or whose heatmap peak is below 0.3 (pixels of the
64 px detector input: the paper's 2 px at 256 px is a quarter of ours relative to the face, but tighter
thresholds would reject most tracks of a CPU-sized detector).

SBR tracks on the raw video frames, 8x finer than its stride-8 heatmaps. Here the clips are rendered and
cropped at twice the detector's input (`sbr.tracking_scale = 2`: 128 px crops of 256 px renders, which the
detector sees averaged over 2x2 pixels) and tracked with a 17x17 window on a 2-level pyramid: LK is again 8x
finer than the 16x16 heatmaps. That cuts the error of the registration targets by about 40 %
(`benchmarks/lk_targets.py`: median 0.28 -> 0.17 px) and, in the README's table, cuts the NME cost of SBR
against the detector alone from 5 % to 2 % (LK on the 64 px frames: `--config.sbr.tracking_scale=1
--config.sbr.lk.window_radius=4`), at about the same 11 % lower jitter.
"""

from __future__ import annotations

import ml_collections

from landmarkjax.configs.supervised import get_config as supervised_config


VARIANTS = ("", "vgg16")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    """SBR's defaults; `variant="vgg16"` (`--config=landmarkjax/configs/sbr.py:vgg16`) is the paper's scale.

    The vgg16 variant swaps in SBR's published detector (`landmarkjax.models.cpm.sbr_vgg16_cpm`: VGG-16's
    first ten convolutions, stride 8, 18.7M parameters) at 256x256 with SBR's 17x17 LK window, its pixel
    thresholds and Gaussian sigma of 4 px: a job for an accelerator, not for the CPU-sized default.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}.")
    config = supervised_config()
    config.method = "sbr"
    config.total_steps = 600
    config.batch_size = 32  # labelled images per step
    config.eval_batch_size = 16  # clips of data.eval_clip_length frames
    config.eval_every = 500  # the end of stage 1, then the end of stage 2
    config.checkpoint_every = 100

    config.data.num_train_clips = 512
    config.data.clip_seed = 2  # unlabelled clips: faces that are neither training nor test faces
    config.data.num_eval_clips = 32
    config.data.eval_clip_length = 8

    config.sbr = ml_collections.ConfigDict()
    config.sbr.stage1_steps = 500  # batches of labelled images only, then labelled + clips
    config.sbr.clip_batch_size = 16  # unlabelled clips per stage-2 batch (global); 0 = batch_size
    config.sbr.registration_weight = 0.1  # SBR with labelled data mixed in (0.2 on video alone)
    # How the registration loss reads detections: SBR's peak finder as for evaluation (eval.locator and
    # eval.radius), not the global softmax at loss.coord_temperature ("soft_argmax", the old default) that
    # snaps to the heatmap grid (see the supervised config's docstring).
    config.sbr.locator = "local_soft_argmax"
    config.sbr.through_lk = True  # gradient through the tracker into the neighbour frames (SBR)
    config.sbr.fb_threshold = 1.0  # forward-backward round trip, pixels
    config.sbr.max_displacement = 2.0  # tracked point to detection, pixels
    config.sbr.min_confidence = 0.3  # heatmap peak
    config.sbr.tracking_scale = 2  # LK runs on clips rendered and cropped this many times larger
    config.sbr.lk = ml_collections.ConfigDict()
    config.sbr.lk.window_radius = 8  # 17x17 on the 128 px tracking frames
    config.sbr.lk.num_levels = 2
    config.sbr.lk.num_iterations = 10
    if variant == "vgg16":
        _use_paper_scale(config)
    return config


def _use_paper_scale(config: ml_collections.ConfigDict) -> None:
    """SBR's detector, input size, heatmap sigma and LK window (see `get_config`)."""
    config.data.image_size = 256
    config.data.source_size = 256
    config.data.crop_margin = 0.2  # the face box expanded by 0.2
    config.data.augment.max_rotation = 20.0
    model = config.model
    model.backbone_widths = (64, 128, 256, 512)  # conv1_1 .. conv4_3 of VGG-16: stride 8
    model.convs_per_block = (2, 2, 3, 3)
    model.feature_widths = (256, 128)
    model.stage_width = 128
    model.num_stages = 3
    model.stage1_depth = 4
    model.stage1_head_width = 512
    model.stage_depth = 5
    model.stage_kernel_size = 7
    model.stage_dilation = 1
    model.stage_head_width = 128
    model.with_background = True
    config.loss.heatmap_sigma = 0.5  # heatmap cells: 4 input pixels at stride 8
    config.eval.locator = "local_soft_argmax"  # argmax, then a value-weighted centroid
    config.eval.radius = 4
    config.sbr.tracking_scale = 1  # LK on the 256 px network input, as in the paper
    config.sbr.lk.window_radius = 8  # 17x17
    config.sbr.lk.num_levels = 3
    config.sbr.lk.num_iterations = 20
