"""Supervision-by-Registration (Dong et al., CVPR 2018): a CPM detector refined on unlabelled clips.

Two training phases (`landmarkjax.training.method.Phase`): "supervised" (the first `sbr.stage1_steps`
steps) trains the supervised CPM of `landmarkjax.methods.supervised` on labelled faces; "registration"
(the rest of the run) adds unlabelled three-frame face clips: the
detector runs on every frame, the detections of frames t-1 and t+1 are tracked into frame t with pyramidal
Lucas-Kanade, and `landmarkjax.losses.registration_loss` pulls the detections of frame t toward those
tracks (points failing the forward-backward check, too far from the detection, or with a weak heatmap peak
are dropped). The total loss is supervised + `sbr.registration_weight` * registration; with
`sbr.through_lk` the gradient also flows through the tracker into the neighbour frames' detections (SBR),
otherwise the tracks are fixed targets.

A training batch holds the labelled images (`image`, `landmarks`, `visibility`) and, in the
registration phase,
`sbr.clip_batch_size` unlabelled clips (`clip_frames` `[B_clips, 3, s H, s W, 3]`, s =
`sbr.tracking_scale`; 0 clips = as many as images). Evaluation runs on labelled synthetic clips of
`data.eval_clip_length` frames and reports NME (inter-ocular) over every frame, AUC and failure rate at
`eval.threshold`, and the jitter (`landmarkjax.metrics.jitter`, pixels / frame^2) of the detections and,
for reference, of the true landmarks.

With a real `data.source` (`face300w`, `celeba_mafl`: `landmarkjax/data/face_sources.py`) the labelled
images come from that dataset and evaluation is the supervised method's on its images (NME, AUC and failure
rate per split, no jitter); the unlabelled clips stay synthetic, the only video that ships.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax import losses, metrics
from landmarkjax.data import face_sources
from landmarkjax.data.augment import CropFace, RandomFaceAugment, face_augmentation
from landmarkjax.data.pipeline import make_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceClipSource
from landmarkjax.data.visualize import draw_landmarks
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.ops.heatmaps import LOCATORS
from landmarkjax.training.method import Phase, TrainState
from landmarkjax.training.streams import Streams

__all__ = ["CLIP_KEY", "REGISTRATION_PHASE", "SBRMethod", "SUPERVISED_PHASE", "build", "clip_augmentation"]

# The batch key of the unlabelled clips, float32 [B, 3, H, W, 3] in [0, 1].
CLIP_KEY = "clip_frames"
SUPERVISED_PHASE = "supervised"
REGISTRATION_PHASE = "registration"


def clip_augmentation(data: ml_collections.ConfigDict, scale: int = 1) -> RandomFaceAugment:
    """The random crop, rotation, scale, mirroring and colour jitter of `data.augment` for clips: one draw
    per clip, applied to all of its frames, so the motion between frames is kept. The crops are
    `scale * data.image_size` pixels wide."""
    return face_augmentation(data, scale=scale)


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

    def phases(self) -> tuple[Phase, ...]:
        """"supervised" for `sbr.stage1_steps` steps (none if 0), then "registration" to the end.

        The registration phase's batches have another structure (clips), so `jax.jit` compiles its
        step once when it starts: a `lax.cond` on the step would do the same in one program, but
        XLA:CPU runs convolutions inside a conditional over 10x slower.
        """
        stage1 = self.config.sbr.stage1_steps
        registration = Phase(REGISTRATION_PHASE)
        return (Phase(SUPERVISED_PHASE, stage1), registration) if stage1 else (registration,)

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
        """Supervised loss, plus the weighted registration loss when the batch has clips (registration)."""
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

    def eval_step(
        self, state: TrainState, batch: Mapping[str, jax.Array], frozen: Any
    ) -> dict[str, jax.Array]:
        if "frames" not in batch:  # images of a real dataset (see eval_loader)
            return super().eval_step(state, batch, frozen)
        predicted, _ = self.detect(state.params, batch["frames"])
        return {
            "nme": metrics.nme(predicted, batch["landmarks"], "inter_ocular", batch["visibility"]),
            "jitter": metrics.jitter(predicted),
            "gt_jitter": metrics.jitter(batch["landmarks"]),
        }

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        if "jitter" not in outputs:  # images of a real dataset (see eval_loader)
            return super().summarize(outputs)
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

    def train_loader(self, batch_size: int) -> Streams:
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
        return Streams(labelled=super().train_loader(batch_size), clips=iter(clips))

    def next_batch(self, data: Streams, phase: str) -> dict[str, np.ndarray]:
        """Labelled images; in the registration phase also a batch of clips under `CLIP_KEY`."""
        batch = dict(data.next("labelled"))
        if phase == REGISTRATION_PHASE:
            batch[CLIP_KEY] = data.next("clips")["frames"]
        return batch

    def eval_loader(self, batch_size: int, split: str | None = None) -> Iterable[dict[str, np.ndarray]]:
        """Labelled synthetic clips; with a real `data.source`, that dataset's images (no clips: NME only)."""
        data = self.config.data
        if face_sources.source_name(data) != face_sources.SYNTHETIC:
            return super().eval_loader(batch_size, split)
        return make_loader(
            self._clip_source(data.num_eval_clips, data.eval_clip_length, data.test_seed),
            batch_size=batch_size,
            seed=self.config.seed,
            shuffle=False,
            num_epochs=1,
            augment=CropFace(data.image_size, data.crop_margin),
            drop_remainder=False,
        )

    def visualize(self, state: TrainState, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        if "frames" not in batch:  # images of a real dataset (see eval_loader)
            return super().visualize(state, batch, frozen)
        count = min(self.config.eval.num_visualized, len(batch["frames"]))
        frames = jnp.asarray(batch["frames"][:count, :1])
        predicted, _ = jax.jit(self.detect)(state.params, frames)
        return draw_landmarks(
            np.asarray(frames[:, 0]), np.asarray(predicted[:, 0]), np.asarray(batch["landmarks"][:count, 0])
        )


def build(config: ml_collections.ConfigDict) -> SBRMethod:
    """The SBR method for `config` (see `landmarkjax/configs/sbr.py`)."""
    return SBRMethod(config)
