"""Supervision-by-Registration (Dong et al., CVPR 2018): a CPM detector refined on unlabelled clips.

Two training phases (`landmarkjax.training.method.Phase`): "supervised" (`sbr.stage1_steps` steps)
trains the supervised CPM of `landmarkjax.methods.supervised` on labelled faces; "registration"
(`sbr.stage2_steps` steps; `total_steps` must be their sum) adds unlabelled three-frame face clips: the
detector runs on every frame, the detections of frames t-1 and t+1 are tracked into frame t with pyramidal
Lucas-Kanade, and `landmarkjax.losses.registration_loss` pulls the detections of frame t toward those
tracks (points failing the forward-backward check, too far from the detection, or with a weak heatmap peak
are dropped). The total loss is supervised + w * registration, with w chosen, when
`sbr.registration_gradient_fraction` = f > 0 (the default, 0.5), as the w that makes ||w grad(registration)||
= f ||grad(supervised)|| on the first stage-2 batch (kept in the train state,
`SBRTrainState.registration_weight`, for the rest of the run), or else w = `sbr.registration_weight`. With
`sbr.registration_targets = "paper"` the gradient also flows through the tracker into the neighbour frames'
detections (the paper); with "official" the tracks are detached targets (the official code's released
configs, `stable: 1`); with "oracle" (an experiment's ceiling, `losses.oracle_registration_loss`) the
neighbours' detections are moved by the clips' true motion instead of the tracker.
`sbr.registration_weight = 0` (whatever the fraction) skips the registration term's computation: stage 2 is
then continued supervised training on the same batches, SBR's fair control. Each stage has its own
learning-rate schedule: `optimizer` over stage 1, `sbr.stage2_optimizer` over stage 2 (one optimiser state
throughout).

A training batch holds the labelled images (`image`, `landmarks`, `visibility`) and, in the registration
phase, `sbr.clip_batch_size` unlabelled clips (`clip_frames` `[B_clips, 3, s H, s W, 3]`, s =
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

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from landmarkjax import losses, metrics
from landmarkjax.data import face_sources
from landmarkjax.data.augment import CropFace, RandomFaceAugment, face_augmentation
from landmarkjax.data.pipeline import make_loader, one_pass_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceClipSource
from landmarkjax.data.visualize import draw_landmarks
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.ops.heatmaps import LOCATORS
from landmarkjax.training.method import Phase, TrainState, apply_gradients, mean_over_axis
from landmarkjax.training.optimizers import learning_rate_schedule, make_optimizer
from landmarkjax.training.streams import Streams

__all__ = [
    "CLIP_KEY",
    "CLIP_LANDMARKS_KEY",
    "CLIP_VISIBILITY_KEY",
    "REGISTRATION_PHASE",
    "REGISTRATION_TARGETS",
    "SBRMethod",
    "SBRTrainState",
    "SUPERVISED_PHASE",
    "build",
    "clip_augmentation",
    "registration_weight_for_fraction",
]

# The batch key of the unlabelled clips, float32 [B, 3, H, W, 3] in [0, 1].
CLIP_KEY = "clip_frames"
# With `sbr.registration_targets = "oracle"` only: the clips' true landmarks, float32 [B, 3, K, 2] (x, y)
# pixels of the clip frames, and their visibility, bool [B, 3, K].
CLIP_LANDMARKS_KEY = "clip_landmarks"
CLIP_VISIBILITY_KEY = "clip_visibility"
SUPERVISED_PHASE = "supervised"
REGISTRATION_PHASE = "registration"
# `sbr.registration_targets`: "paper" = gradient through the tracker (the paper's Eq. 7), "official" =
# detached tracked points (the official code's released configs, `stable: 1`), "oracle" = the true motion
# instead of the tracker (detached; an experiment's ceiling on labelled clips).
REGISTRATION_TARGETS = ("paper", "official", "oracle")
# `SBRTrainState.registration_weight` before the weight has been chosen from the gradients.
_WEIGHT_NOT_CHOSEN = -1.0


@flax.struct.dataclass
class SBRTrainState(TrainState):
    """`TrainState` plus the registration weight in force.

    Attributes:
      registration_weight: float32 scalar, the weight of the registration loss: `sbr.registration_weight`,
        or, with `sbr.registration_gradient_fraction`, the one chosen on the first stage-2 batch (-1 until
        then). Checkpointed with the state, so a resumed run keeps it.
    """

    registration_weight: jnp.ndarray


def registration_weight_for_fraction(
    supervised_grads: Any, registration_grads: Any, fraction: float | jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The weight w with ||w g_r|| = fraction ||g_s|| (global L2 norms over every leaf).

    Args:
      supervised_grads: g_s, a pytree of arrays (the supervised loss's gradient).
      registration_grads: g_r, a pytree of the same structure (the registration loss's gradient).
      fraction: f >= 0, the registration gradient's norm as a fraction of the supervised one's.

    Returns:
      (w, ||g_s||, ||g_r||) as float32 scalars; w is NaN-free: -1 (`not chosen`) when ||g_r|| = 0 (no
      landmark passed the registration checks), since no weight gives a zero gradient that fraction.
    """
    supervised_norm = optax.tree.norm(supervised_grads).astype(jnp.float32)
    registration_norm = optax.tree.norm(registration_grads).astype(jnp.float32)
    positive = registration_norm > 0
    weight = jnp.where(
        positive, fraction * supervised_norm / jnp.where(positive, registration_norm, 1.0), _WEIGHT_NOT_CHOSEN
    )
    return weight, supervised_norm, registration_norm


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
        if sbr.stage1_steps < 0 or sbr.stage2_steps < 0 or sbr.stage1_steps + sbr.stage2_steps < 1:
            raise ValueError(
                f"sbr.stage1_steps and sbr.stage2_steps must be >= 0, one of them > 0; got "
                f"{sbr.stage1_steps} and {sbr.stage2_steps}."
            )
        if config.total_steps != sbr.stage1_steps + sbr.stage2_steps:
            raise ValueError(
                f"total_steps must be sbr.stage1_steps + sbr.stage2_steps = {sbr.stage1_steps + sbr.stage2_steps}; "
                f"got {config.total_steps}. Set the stage lengths (total_steps follows them in "
                f"landmarkjax/configs/sbr.py) instead of total_steps."
            )
        if sbr.registration_weight < 0:
            raise ValueError(f"sbr.registration_weight must be >= 0; got {sbr.registration_weight}.")
        fraction = sbr.registration_gradient_fraction
        if fraction is not None and not fraction >= 0:
            raise ValueError(
                f"sbr.registration_gradient_fraction must be None or >= 0 (0: use sbr.registration_weight); "
                f"got {fraction}."
            )
        if sbr.registration_targets not in REGISTRATION_TARGETS:
            raise ValueError(
                f"sbr.registration_targets must be one of {REGISTRATION_TARGETS}; got {sbr.registration_targets!r}."
            )
        scale = sbr.tracking_scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"sbr.tracking_scale must be an integer >= 1; got {sbr.tracking_scale!r}.")
        if sbr.locator not in LOCATORS:
            raise ValueError(f"sbr.locator must be one of {LOCATORS}; got {sbr.locator!r}.")
        if config.data.eval_clip_length < 3:
            raise ValueError(
                f"data.eval_clip_length must be >= 3 (jitter); got {config.data.eval_clip_length}."
            )
        self.optimizer = make_optimizer(config.optimizer, config.total_steps, schedule=self.learning_rate_schedule())

    def learning_rate_schedule(self) -> optax.Schedule:
        """The learning rate per optimiser step: `optimizer` (warm-up + decay) over the `sbr.stage1_steps`
        steps of stage 1, then `sbr.stage2_optimizer`'s schedule restarted over the `sbr.stage2_steps` of
        stage 2. Either stage's schedule is thus independent of the other stage's length."""
        sbr = self.config.sbr
        stage1 = learning_rate_schedule(self.config.optimizer, sbr.stage1_steps)
        stage2 = learning_rate_schedule(sbr.stage2_optimizer, sbr.stage2_steps)
        if not sbr.stage1_steps:
            return stage2
        if not sbr.stage2_steps:
            return stage1
        return optax.join_schedules([stage1, stage2], [sbr.stage1_steps])

    def init_state(self, rng: jax.Array) -> SBRTrainState:
        state = super().init_state(rng)
        fraction = self.gradient_fraction()
        weight = self.config.sbr.registration_weight if fraction is None else _WEIGHT_NOT_CHOSEN
        return SBRTrainState(
            step=state.step,
            params=state.params,
            opt_state=state.opt_state,
            registration_weight=jnp.asarray(weight, jnp.float32),
        )

    def phases(self) -> tuple[Phase, ...]:
        """"supervised" for `sbr.stage1_steps` steps, then "registration" for `sbr.stage2_steps` (a stage
        of 0 steps is left out).

        The registration phase's batches have another structure (clips), so `jax.jit` compiles its
        step once when it starts: a `lax.cond` on the step would do the same in one program, but
        XLA:CPU runs convolutions inside a conditional over 10x slower.
        """
        sbr = self.config.sbr
        phases = [Phase(SUPERVISED_PHASE, sbr.stage1_steps), Phase(REGISTRATION_PHASE, sbr.stage2_steps)]
        return tuple(phase for phase in phases if phase.num_steps)

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

    def registration_loss_fn(
        self, params: Any, frames: jnp.ndarray, truth: tuple[jnp.ndarray, jnp.ndarray] | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(registration loss in detector-input pixels, number of landmarks it used) on clips.

        Args:
          frames: `[B, 3, s H, s W, 3]` with s = `sbr.tracking_scale`: the detector sees them averaged
            over s x s pixels (H x W, its input size) and LK tracks on them at full resolution, as SBR
            tracks on the raw video frames. Pixel thresholds stay in detector-input pixels.
          truth: for `sbr.registration_targets = "oracle"`, the clips' true landmarks `[B, 3, K, 2]` (x, y
            pixels of `frames`) and visibility `[B, 3, K]`.
        """
        sbr = self.config.sbr
        scale = sbr.tracking_scale
        batch, length, height, width, channels = frames.shape
        small = frames.reshape(batch, length, height // scale, scale, width // scale, scale, channels)
        detections, confidences = self.detect(params, jnp.mean(small, axis=(3, 5)), sbr.locator)
        # Pixel centres at integers on both grids: small pixel i covers large pixels s i .. s i + s - 1.
        offset = (scale - 1) / 2.0
        if sbr.registration_targets == "oracle":
            if truth is None:
                raise ValueError('sbr.registration_targets="oracle" needs the clips\' true landmarks.')
            loss, info = losses.oracle_registration_loss(
                detections * scale + offset,
                confidences,
                truth[0],
                truth[1],
                max_displacement=sbr.max_displacement * scale,
                min_confidence=sbr.min_confidence,
            )
            return loss / scale, info["num_points"]
        loss, info = losses.registration_loss(
            frames,
            detections * scale + offset,
            confidences,
            through_lk=sbr.registration_targets == "paper",
            fb_threshold=sbr.fb_threshold * scale,
            max_displacement=sbr.max_displacement * scale,
            min_confidence=sbr.min_confidence,
            **sbr.lk.to_dict(),
        )
        return loss / scale, info["num_points"]

    def train_step(
        self,
        state: SBRTrainState,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[SBRTrainState, dict[str, jax.Array]]:
        """One step on supervised + w * registration (w = `state.registration_weight`, see the module
        docstring).

        The two losses' gradients are taken separately (the labelled images and the clips are separate
        inputs, so this costs what one gradient of the sum costs) and summed with the weight; their norms
        are logged as `supervised_grad_norm` and `registration_grad_norm`. Every loss term is logged under
        its own `*_loss` name (so the loop's NaN guard watches each): `heatmap_loss`, `coord_loss`,
        `supervised_loss` (their weighted sum), `registration_loss` (pixels, unweighted) and
        `weighted_registration_loss`; also `registered_points` and `registration_weight`.
        """
        del rng, frozen
        if CLIP_KEY not in batch or self.skips_registration():  # stage 1, or stage 2 without registration
            labelled = {key: value for key, value in batch.items() if not key.startswith("clip_")}
            new_state, metrics = super().train_step(state, labelled, None, None, phase=phase, axis_name=axis_name)
            zero = jnp.zeros([], jnp.float32)
            return new_state, {
                **metrics,
                "supervised_loss": metrics["loss"],
                "registration_loss": zero,
                "weighted_registration_loss": zero,
                "registered_points": zero,
                "registration_weight": state.registration_weight,
            }
        (supervised, parts), supervised_grads = jax.value_and_grad(self.loss_fn, has_aux=True)(
            state.params, batch
        )
        truth = (batch[CLIP_LANDMARKS_KEY], batch[CLIP_VISIBILITY_KEY]) if CLIP_LANDMARKS_KEY in batch else None
        (registration, num_points), registration_grads = jax.value_and_grad(
            self.registration_loss_fn, has_aux=True
        )(state.params, batch[CLIP_KEY], truth)
        supervised_grads = mean_over_axis(supervised_grads, axis_name)
        registration_grads = mean_over_axis(registration_grads, axis_name)
        fraction = self.gradient_fraction()
        chosen, supervised_norm, registration_norm = registration_weight_for_fraction(
            supervised_grads, registration_grads, 0.0 if fraction is None else fraction
        )
        # On the first stage-2 batch (or until one has been chosen) the weight is set from this run's config:
        # the configured one, or the one chosen now; then it is kept. A state restored from another run
        # (`config.init_from`, e.g. a stage-1 run) thus never carries that run's weight into stage 2.
        configured = jnp.asarray(self.config.sbr.registration_weight, jnp.float32) if fraction is None else chosen
        keep = (state.registration_weight >= 0) & (state.step != self.config.sbr.stage1_steps)
        weight = jnp.where(keep, state.registration_weight, configured)
        applied = jnp.maximum(weight, 0.0)  # not chosen yet: no registration gradient to weigh anyway
        grads = jax.tree.map(lambda s, r: s + applied * r, supervised_grads, registration_grads)
        new_state = apply_gradients(state, grads, self.optimizer).replace(
            step=state.step + 1, registration_weight=weight
        )
        metrics = mean_over_axis(
            {
                "loss": supervised + applied * registration,
                **parts,
                "supervised_loss": supervised,
                "registration_loss": registration,
                "weighted_registration_loss": applied * registration,
                "registered_points": num_points,
            },
            axis_name,
        )
        metrics.update(
            grad_norm=optax.tree.norm(grads),
            supervised_grad_norm=supervised_norm,
            registration_grad_norm=registration_norm,
            registration_weight=weight,
        )
        return new_state, metrics

    def gradient_fraction(self) -> float | None:
        """`sbr.registration_gradient_fraction`, or None when the fixed `sbr.registration_weight` applies
        (the fraction is None or 0, or the weight is 0)."""
        sbr = self.config.sbr
        fraction = sbr.registration_gradient_fraction
        return None if not fraction or sbr.registration_weight == 0 else float(fraction)

    def skips_registration(self) -> bool:
        """True when `sbr.registration_weight` is 0 (whatever the gradient fraction): the registration term
        is not computed (the clips are still drawn, so the batches stay those of the other arms)."""
        return self.config.sbr.registration_weight == 0

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
            clips = data.next("clips")
            batch[CLIP_KEY] = clips["frames"]
            if self.config.sbr.registration_targets == "oracle":
                batch[CLIP_LANDMARKS_KEY] = clips["landmarks"]
                batch[CLIP_VISIBILITY_KEY] = clips["visibility"]
        return batch

    def eval_loader(self, batch_size: int, split: str | None = None) -> Iterable[dict[str, np.ndarray]]:
        """Labelled synthetic clips of the faces of `split` ('test' by default, or 'validation': clips drawn
        from `data.test_seed` / `data.validation_seed`); with a real `data.source`, that dataset's images (no
        clips: NME only)."""
        data = self.config.data
        if face_sources.source_name(data) != face_sources.SYNTHETIC:
            return super().eval_loader(batch_size, split)
        split = face_sources.eval_split(data) if split is None else split
        seeds = {"test": data.test_seed, "validation": data.get("validation_seed")}
        if seeds.get(split) is None:
            raise ValueError(
                f"SBR's synthetic evaluation clips come from the 'test' or 'validation' faces; got split {split!r}."
            )
        return one_pass_loader(
            self._clip_source(data.num_eval_clips, data.eval_clip_length, seeds[split]),
            batch_size=batch_size,
            seed=self.config.seed,
            augment=CropFace(data.image_size, data.crop_margin),
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
