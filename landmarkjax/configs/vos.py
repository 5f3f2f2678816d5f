"""Self-supervised video object segmentation by colour propagation (MAST, Lai et al. 2020; Zhu et al. 2020).

Run (CPU scale: the small stride-4 ResNet on 64-px crops of the synthetic object videos; the defaults are a
first guess, not tuned; tests/test_vos.py trains a 2-step version of this config end to end):

    python train.py --config=landmarkjax/configs/vos.py --workdir=./workdir/vos
    python eval.py --config=landmarkjax/configs/vos.py --workdir=./workdir/vos

Variants (the rows of the README table):

    --config.vos.features=raw_lab                             raw-colour affinity (the encoder is unused)
    --config.total_steps=1 --config.optimizer.learning_rate=0 a randomly initialised encoder
    --config.vos.mode=pairwise                                MAST's released (pairwise) training
    --config.vos.mode=memory                                  multi-frame memory training
    --config.vos.mode=memory --config.vos.momentum=0.99       + Zhu et al.'s momentum (EMA) key encoder

DAVIS-2017 (built with `landmarkjax.data.builders.build_dataset`): `--config.data.source=davis2017
--config.data.tfds_data_dir=/path/to/tfds`, and MAST's encoder: `--config.model.architecture=resnet18`.
`python scripts/write_davis_predictions.py --workdir=... --output_dir=...` writes a run's predicted masks
(or `--baseline=raw_colour|random_init`) as DAVIS results for the official evaluation tool.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from landmarkjax.configs.common import optimizer_config, training_config


def get_config() -> ml_collections.ConfigDict:
    """The vos method's defaults."""
    config = training_config(
        "vos",
        total_steps=2000,
        batch_size=8,
        eval_batch_size=4,  # unused by the evaluation, which runs one whole video at a time
        log_every=50,
        eval_every=1000,
        checkpoint_every=500,
        best_metric="j_and_f_mean",
        best_mode="max",
    )

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # or "davis2017" (a built TFDS dataset, see tfds_data_dir)
    config.data.tfds_data_dir = config_dict.placeholder(str)
    config.data.train_split = "train"
    config.data.eval_split = "val"  # davis2017 only; the synthetic evaluation videos come from test_seed
    config.data.image_size = 64  # training crop side, pixels; a multiple of 4 (the encoder's stride)
    config.data.source_size = 96  # synthetic training videos' side, pixels
    config.data.source_frames = 12  # synthetic training videos' length (>= the clip length)
    config.data.eval_size = 64  # synthetic evaluation videos' side, pixels
    config.data.eval_frames = 12  # synthetic evaluation videos' length (>= 3: DAVIS skips the first and last)
    config.data.num_objects = 3  # objects per synthetic video (davis2017 records carry their own count)
    config.data.num_train = 256
    config.data.num_test = 16
    config.data.train_seed = 0
    config.data.test_seed = 1
    config.data.augment = ml_collections.ConfigDict()
    config.data.augment.scale_range = (0.6, 1.0)  # crop side as a fraction of the shorter video side
    config.data.augment.flip_probability = 0.5

    config.model = ml_collections.ConfigDict()
    config.model.architecture = "small"  # "small" (CPU-sized) or "resnet18" (MAST's encoder); both stride 4
    config.model.out_features = 32  # C, channels of the features (MAST: 64)

    config.vos = ml_collections.ConfigDict()
    config.vos.mode = "pairwise"  # "pairwise" (one reference frame, t - 1) or "memory"
    config.vos.clip_length = 6  # memory mode: frames per training clip; the last is the query
    config.vos.long_term = (0, 5)  # memory frames (ops.memory_frames): absolute indices
    config.vos.short_term = (1, 3, 5)  # memory frames: offsets back from the query frame
    config.vos.momentum = 0.0  # > 0: Zhu et al.'s momentum (EMA) key encoder with this momentum
    config.vos.train_radius = 6  # feature cells (MAST: 6)
    config.vos.eval_radius = 12  # feature cells (MAST: 12); a window holding the whole map is global
    config.vos.temperature = 1.0  # affinities are divided by temperature * sqrt(C) (the 1/sqrt(C) fix)
    config.vos.loss_scale = 20.0  # Huber(s * prediction, s * target), MAST's smooth_l1 on x20 values
    config.vos.features = "learned"  # or "raw_lab": Lab pixels averaged over 4 x 4 cells, no learning
    config.vos.raw_lab_temperature = 0.01  # raw_lab: weights exp(-|Lab_q - Lab_k|^2 / (2 t)), normalised Lab
    config.vos.eval_top_k = config_dict.placeholder(int)  # None: every candidate in the window
    config.vos.encode_chunk = 8  # frames encoded per call at evaluation

    config.eval = ml_collections.ConfigDict()
    config.eval.num_visualized = 4  # frames of the first evaluation video in `visualize`

    config.optimizer = optimizer_config("adam", learning_rate=1e-3, warmup_steps=50, schedule="cosine")
    return config
