"""Supervision-by-Registration (Dong et al., CVPR 2018): a CPM detector refined on unlabelled clips.

Stage 1 (the first `sbr.stage1_steps` batches) trains the supervised CPM of
`landmarkjax.methods.supervised` on labelled faces. Stage 2 adds unlabelled three-frame face clips: the
detector runs on every frame, the detections of frames t-1 and t+1 are tracked into frame t with pyramidal
Lucas-Kanade, and `landmarkjax.losses.registration_loss` pulls the detections of frame t toward those
tracks (points failing the forward-backward check, too far from the detection, or with a weak heatmap peak
are dropped). The total loss is supervised + `sbr.registration_weight` * registration; with
`sbr.through_lk` the gradient also flows through the tracker into the neighbour frames' detections (SBR),
otherwise the tracks are fixed targets.

A training batch holds the labelled images (`image`, `landmarks`, `visibility`) and, in stage 2,
`sbr.clip_batch_size` unlabelled clips (`clip_frames` `[B_clips, 3, s H, s W, 3]`, s =
`sbr.tracking_scale`; 0 clips = as many as images). Evaluation runs on labelled synthetic clips of
`data.eval_clip_length` frames and reports NME (inter-ocular) over every frame, AUC and failure rate at
`eval.threshold`, and the jitter (`landmarkjax.metrics.jitter`, pixels / frame^2) of the detections and,
for reference, of the true landmarks.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax import losses, metrics
from landmarkjax.data.augment import CropFace, FaceAugmentConfig, RandomFaceAugment
from landmarkjax.data.pipeline import make_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceClipSource
from landmarkjax.data.visualize import draw_landmarks
from landmarkjax.methods.base import TrainState
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.ops.heatmaps import LOCATORS

__all__ = ["CLIP_KEY", "MixedIterator", "SBRMethod", "build", "clip_augmentation"]

# The batch key of the unlabelled clips, float32 [B, 3, H, W, 3] in [0, 1].
CLIP_KEY = "clip_frames"


def clip_augmentation(data: ml_collections.ConfigDict, scale: int = 1) -> RandomFaceAugment:
    """The random crop, rotation, scale, mirroring and colour jitter of `data.augment` for clips: one draw
    per clip, applied to all of its frames, so the motion between frames is kept. The crops are
    `scale * data.image_size` pixels wide."""
    augment = data.augment
    return RandomFaceAugment(
        FaceAugmentConfig(
            output_size=data.image_size * scale,
            margin=data.crop_margin,
            scale_range=tuple(augment.scale_range),
            max_rotation=augment.max_rotation,
            max_shift=augment.max_shift,
            flip_probability=augment.flip_probability,
            brightness=augment.colour_jitter,
            contrast=augment.colour_jitter,
            saturation=augment.colour_jitter,
        )
    )


class MixedIterator:
    """Labelled batches; from batch `stage1_batches` on, with a batch of unlabelled clips under `CLIP_KEY`.

    The iterator decides the stage, so the train step switches at trace time (a batch with clips has
    another structure, and `jax.jit` compiles the second stage once when it starts): a `lax.cond` on the
    step would do the same in one program, but XLA:CPU runs convolutions inside a conditional over 10x
    slower. Checkpointable: the state holds both iterators' states and the number of batches drawn.

    Args:
      labelled: iterator of labelled batch dicts (with `get_state` / `set_state`).
      clips: iterator of clip batch dicts with `frames` (with `get_state` / `set_state`).
      stage1_batches: batches drawn before clips are added.
    """

    def __init__(
        self,
        labelled: Iterator[dict[str, np.ndarray]],
        clips: Iterator[dict[str, np.ndarray]],
        stage1_batches: int,
    ):
        self.labelled = labelled
        self.clips = clips
        self.stage1_batches = stage1_batches
        self.position = 0

    def __iter__(self) -> MixedIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = dict(next(self.labelled))
        if self.position >= self.stage1_batches:
            batch[CLIP_KEY] = next(self.clips)["frames"]
        self.position += 1
        return batch

    def get_state(self) -> bytes:
        state = {
            "labelled": self.labelled.get_state().decode("utf-8"),
            "clips": self.clips.get_state().decode("utf-8"),
            "position": self.position,
        }
        return json.dumps(state).encode("utf-8")

    def set_state(self, state: bytes) -> None:
        state = json.loads(state.decode("utf-8"))
        self.labelled.set_state(state["labelled"].encode("utf-8"))
        self.clips.set_state(state["clips"].encode("utf-8"))
        self.position = int(state["position"])


class SBRMethod(SupervisedMethod):
    """Supervision-by-Registration on top of the supervised CPM (see the module docstring)."""

    name = "sbr"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        sbr = config.sbr
        if sbr.stage1_steps < 0:
            raise ValueError(f"sbr.stage1_steps must be >= 0; got {sbr.stage1_steps}.")
        if sbr.registration_weight < 0:
            raise ValueError(f"sbr.registration_weight must be >= 0; got {sbr.registration_weight}.")
        scale = sbr.tracking_scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"sbr.tracking_scale must be an integer >= 1; got {sbr.tracking_scale!r}.")
        if sbr.locator not in LOCATORS:
            raise ValueError(f"sbr.locator must be one of {LOCATORS}; got {sbr.locator!r}.")
        if config.data.eval_clip_length < 3:
            raise ValueError(
                f"data.eval_clip_length must be >= 3 (jitter); got {config.data.eval_clip_length}."
            )

    def detect(
        self, params: Any, frames: jnp.ndarray, locator: str | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Detections and heatmap peaks of frames `[B, T, H, W, 3]`, read with `locator` (default
        `config.eval.locator`).

        Returns:
          landmarks `[B, T, K, 2]` (x, y) image pixels and confidences `[B, T, K]` (the last stage's
          heatmap maximum per landmark).
        """
        batch, length = frames.shape[:2]
        landmarks, stage_heatmaps = self.predict(params, frames.reshape((-1,) + frames.shape[2:]), locator)
        num_keypoints = self.model.num_keypoints
        confidences = jnp.max(stage_heatmaps[-1][..., :num_keypoints], axis=(1, 2))
        return (
            landmarks.reshape(batch, length, num_keypoints, 2),
            confidences.reshape(batch, length, num_keypoints),
        )

    def registration_loss_fn(self, params: Any, frames: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(registration loss in detector-input pixels, number of landmarks it used) on clips.

        Args:
          frames: `[B, 3, s H, s W, 3]` with s = `sbr.tracking_scale`: the detector sees them averaged
            over s x s pixels (H x W, its input size) and LK tracks on them at full resolution, as SBR
            tracks on the raw video frames. Pixel thresholds stay in detector-input pixels.
        """
        sbr = self.config.sbr
        scale = sbr.tracking_scale
        batch, length, height, width, channels = frames.shape
        small = frames.reshape(batch, length, height // scale, scale, width // scale, scale, channels)
        detections, confidences = self.detect(params, jnp.mean(small, axis=(3, 5)), sbr.locator)
        # Pixel centres at integers on both grids: small pixel i covers large pixels s i .. s i + s - 1.
        offset = (scale - 1) / 2.0
        loss, info = losses.registration_loss(
            frames,
            detections * scale + offset,
            confidences,
            through_lk=sbr.through_lk,
            fb_threshold=sbr.fb_threshold * scale,
            max_displacement=sbr.max_displacement * scale,
            min_confidence=sbr.min_confidence,
            **sbr.lk.to_dict(),
        )
        return loss / scale, info["num_points"]

    def objective(
        self, params: Any, batch: Mapping[str, jnp.ndarray]
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Supervised loss, plus the weighted registration loss when the batch has clips (stage 2)."""
        supervised, parts = self.loss_fn(params, batch)
        if CLIP_KEY in batch:
            registration, num_points = self.registration_loss_fn(params, batch[CLIP_KEY])
        else:
            registration = num_points = jnp.zeros([], jnp.float32)
        total = supervised + self.config.sbr.registration_weight * registration
        return total, {
            **parts,
            "supervised_loss": supervised,
            "registration_loss": registration,
            "registered_points": num_points,
        }

    def eval_step(self, state: TrainState, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        predicted, _ = self.detect(state.params, batch["frames"])
        return {
            "nme": metrics.nme(predicted, batch["landmarks"], "inter_ocular", batch["visibility"]),
            "jitter": metrics.jitter(predicted),
            "gt_jitter": metrics.jitter(batch["landmarks"]),
        }

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        summary = super().summarize({"nme": np.asarray(outputs["nme"]).reshape(-1)})
        summary["jitter"] = float(np.mean(outputs["jitter"]))
        summary["gt_jitter"] = float(np.mean(outputs["gt_jitter"]))
        return summary

    def _clip_source(self, num_clips: int, num_frames: int, seed: int, scale: int = 1) -> MemoizedSource:
        return self._memoized(
            SyntheticFaceClipSource(
                num_clips, num_frames=num_frames, size=self.config.data.source_size * scale, seed=seed
            )
        )

    def clip_batch_size(self, batch_size: int) -> int:
        """This process's number of clips per stage-2 batch, given its number of labelled images.

        `sbr.clip_batch_size` is global like `batch_size` (0: as many clips as labelled images).
        """
        global_clips = self.config.sbr.clip_batch_size
        if not global_clips:
            return batch_size
        if global_clips < 0 or global_clips % jax.device_count():
            raise ValueError(
                f"sbr.clip_batch_size must be 0 or a positive multiple of the device count "
                f"{jax.device_count()}; got {global_clips}."
            )
        return global_clips // jax.process_count()

    def train_loader(self, batch_size: int) -> MixedIterator:
        data = self.config.data
        scale = self.config.sbr.tracking_scale
        clips = make_loader(
            self._clip_source(data.num_train_clips, 3, data.clip_seed, scale),
            batch_size=self.clip_batch_size(batch_size),
            seed=self.config.seed,
            shuffle=True,
            num_epochs=None,
            augment=clip_augmentation(data, scale),
        )
        return MixedIterator(super().train_loader(batch_size), iter(clips), self.config.sbr.stage1_steps)

    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        data = self.config.data
        return make_loader(
            self._clip_source(data.num_eval_clips, data.eval_clip_length, data.test_seed),
            batch_size=batch_size,
            seed=self.config.seed,
            shuffle=False,
            num_epochs=1,
            augment=CropFace(data.image_size, data.crop_margin),
            drop_remainder=False,
        )

    def visualize(self, state: TrainState, batch: Mapping[str, Any]) -> np.ndarray:
        count = min(self.config.eval.num_visualized, len(batch["frames"]))
        frames = jnp.asarray(batch["frames"][:count, :1])
        predicted, _ = jax.jit(self.detect)(state.params, frames)
        return draw_landmarks(
            np.asarray(frames[:, 0]), np.asarray(predicted[:, 0]), np.asarray(batch["landmarks"][:count, 0])
        )


def build(config: ml_collections.ConfigDict) -> SBRMethod:
    """The SBR method for `config` (see `landmarkjax/configs/sbr.py`)."""
    return SBRMethod(config)
