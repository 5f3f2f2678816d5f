"""Supervised heatmap landmark detection: the CPM baseline, and stage 1 of Supervision-by-Registration.

A multi-stage CPM (`landmarkjax.models.cpm.CPM`) regresses one Gaussian heatmap per landmark (plus a
background map) at stride s. Loss = `heatmap_weight` * heatmap MSE summed over the stages (SBR's
intermediate supervision; invisible landmarks' maps are left out) + `coord_weight` * the mean pixel
distance between the landmarks read off the last stage with `config.loss.coord_locator` and the true
landmarks. Landmarks are read off the last stage with `config.eval.locator` (the configs: SBR's peak finder,
argmax then a value-weighted centroid in a window, for both; or the global soft-argmax) and mapped to
image pixels. Evaluation
reports NME (inter-ocular), AUC and failure rate at `config.eval.threshold`.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax import losses, metrics
from landmarkjax.data import face_sources
from landmarkjax.data.augment import CropFace, face_augmentation
from landmarkjax.data.pipeline import make_loader, one_pass_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceClipSource, SyntheticFaceSource
from landmarkjax.data.visualize import draw_landmarks
from landmarkjax.face_layout import NUM_FACE_LANDMARKS
from landmarkjax.losses import heatmap_targets
from landmarkjax.models.cpm import CPM
from landmarkjax.ops.heatmaps import LOCATORS, locate_landmarks
from landmarkjax.training.method import EvalContext, Method, TrainState, gradient_step
from landmarkjax.training.optimizers import make_optimizer

__all__ = [
    "SupervisedMethod",
    "build",
    "build_detector",
]


def build_detector(config: ml_collections.ConfigDict, num_keypoints: int = NUM_FACE_LANDMARKS) -> CPM:
    """The CPM described by `config.model` (fields as in `landmarkjax/configs/supervised.py`)."""
    model = config.model
    return CPM(
        num_keypoints=num_keypoints,
        backbone_widths=tuple(model.backbone_widths),
        convs_per_block=(
            model.convs_per_block if isinstance(model.convs_per_block, int) else tuple(model.convs_per_block)
        ),
        feature_widths=tuple(model.feature_widths),
        stage_width=model.stage_width,
        num_stages=model.num_stages,
        stage1_depth=model.stage1_depth,
        stage1_head_width=model.stage1_head_width,
        stage_depth=model.stage_depth,
        stage_kernel_size=model.stage_kernel_size,
        stage_dilation=model.stage_dilation,
        stage_small_depth=model.get("stage_small_depth", 0),
        stage_head_width=model.stage_head_width,
        with_background=model.with_background,
    )


class SupervisedMethod(Method):
    """The supervised CPM landmark detector (see the module docstring). Built by `build(config)`."""

    name = "supervised"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        # The data first: an unknown or unbuilt dataset fails here, before anything is compiled.
        self._sources: dict[str, Any] = {}
        for split in dict.fromkeys([config.data.train_split, *self.eval_splits().values()]):
            self._source(split)
        self.model = build_detector(config, face_sources.num_face_landmarks(config.data))
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)
        size = config.data.image_size
        if size % self.model.stride:
            raise ValueError(
                f"data.image_size must be divisible by the detector's stride {self.model.stride}; got {size}."
            )
        self.heatmap_size = size // self.model.stride
        if config.eval.locator not in LOCATORS:
            raise ValueError(f"eval.locator must be one of {LOCATORS}; got {config.eval.locator!r}.")
        coord_locator = config.loss.get("coord_locator", "soft_argmax")
        if coord_locator not in LOCATORS:
            raise ValueError(f"loss.coord_locator must be one of {LOCATORS}; got {coord_locator!r}.")

    def init_state(self, rng: jax.Array) -> TrainState:
        size = self.config.data.image_size
        params = self.model.init(rng, jnp.zeros([1, size, size, 3], jnp.float32))["params"]
        return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def predict(
        self, params: Any, images: jnp.ndarray, locator: str | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """`(landmarks [B, K, 2] image pixels, stage heatmaps [S, B, h, w, K (+1)])` for images `[B, H, W, 3]`.

        Landmarks are read with `locator` (see `locate_landmarks`; default `config.eval.locator`).
        """
        stage_heatmaps = self.model.apply({"params": params}, images)
        landmarks = locate_landmarks(
            stage_heatmaps[-1],
            self.model.num_keypoints,
            self.model.stride,
            locator=locator or self.config.eval.locator,
            temperature=self.config.loss.coord_temperature,
            radius=self.config.eval.radius,
        )
        return landmarks, stage_heatmaps

    def loss_fn(
        self, params: Any, batch: Mapping[str, jnp.ndarray]
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Total loss and its parts for a batch with `image`, `landmarks` and `visibility`."""
        loss_config = self.config.loss
        stage_heatmaps = self.model.apply({"params": params}, batch["image"])
        targets, weights = heatmap_targets(
            batch["landmarks"],
            batch["visibility"],
            height=self.heatmap_size,
            width=self.heatmap_size,
            stride=self.model.stride,
            sigma=loss_config.heatmap_sigma,
            threshold=loss_config.target_threshold,
            with_background=self.model.with_background,
        )
        # Per-image losses, then the batch mean: every image weighs the same however many of its
        # landmarks are visible, so a per-device mean of equal shards is exactly the global mean.
        heatmap_loss = jnp.mean(
            jax.vmap(losses.multi_stage_heatmap_mse, in_axes=(1, 0, 0))(stage_heatmaps, targets, weights)
        )
        coords = locate_landmarks(
            stage_heatmaps[-1],
            self.model.num_keypoints,
            self.model.stride,
            locator=loss_config.get("coord_locator", "soft_argmax"),
            temperature=loss_config.coord_temperature,
            radius=self.config.eval.radius,
        )
        coord_loss = jnp.mean(
            jax.vmap(losses.point_distance_loss)(coords, batch["landmarks"], batch["visibility"])
        )
        total = loss_config.heatmap_weight * heatmap_loss + loss_config.coord_weight * coord_loss
        return total, {"heatmap_loss": heatmap_loss, "coord_loss": coord_loss}

    def objective(
        self, params: Any, batch: Mapping[str, jax.Array]
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The loss that `train_step` minimises; methods built on this one (SBR) add their terms here."""
        return self.loss_fn(params, batch)

    def train_step(
        self,
        state: TrainState,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        del rng, frozen, phase  # augmentation happens in the data pipeline; the step is deterministic
        return gradient_step(state, self.objective, self.optimizer, batch, axis_name=axis_name)

    def eval_step(
        self, state: TrainState, batch: Mapping[str, jax.Array], frozen: Any
    ) -> dict[str, jax.Array]:
        del frozen
        predicted, _ = self.predict(state.params, batch["image"])
        return {"nme": metrics.nme(predicted, batch["landmarks"], "inter_ocular", batch["visibility"])}

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        threshold = self.config.eval.threshold
        errors = np.asarray(outputs["nme"], np.float32)
        return {
            "nme": float(np.nanmean(errors)),
            f"auc@{threshold:g}": float(metrics.auc(errors, threshold)),
            f"failure_rate@{threshold:g}": float(metrics.failure_rate(errors, threshold)),
            "num_examples": int(errors.shape[0]),
        }

    def _memoized(self, source: Any) -> Any:
        """One instance per distinct source (its repr names every setting), shared by all loaders; the
        procedural ones behind a rendering cache (decoded photos of any size are not kept in memory)."""
        key = repr(source)
        if key not in self._sources:
            procedural = isinstance(source, (SyntheticFaceSource, SyntheticFaceClipSource))
            self._sources[key] = MemoizedSource(source) if procedural else source
        return self._sources[key]

    def _source(self, split: str) -> Any:
        """The face elements of `split` of `config.data.source` (see `landmarkjax.data.face_sources`)."""
        return self._memoized(face_sources.face_source(self.config.data, split))

    def eval_splits(self) -> dict[str, str]:
        """{metric prefix: split} evaluated by `evaluate`: "" (plain metric names) for `data.eval_split`,
        then each of `data.extra_eval_splits` under its own name (300-W: "common", "challenging")."""
        data = self.config.data
        splits = {"": face_sources.eval_split(data)}
        for split in face_sources.extra_eval_splits(data):
            splits[split] = split
        return splits

    def evaluate(self, state: TrainState, frozen: Any, context: EvalContext) -> dict[str, float]:
        """Metrics on the main evaluation split, plus "<split>/<metric>" for every extra split of
        `eval_splits()` (300-W: NME on `full`, then on `common` and `challenging`)."""
        summary = {}
        for prefix, split in self.eval_splits().items():
            batches = context.global_batches(self.eval_loader(context.host_batch_size, split))
            metrics_of_split = self.evaluate_batches(state, frozen, batches)
            summary.update({f"{prefix}/{k}" if prefix else k: v for k, v in metrics_of_split.items()})
        return summary

    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        data = self.config.data
        augment = face_augmentation(data)
        loader = make_loader(
            self._source(data.train_split),
            batch_size=batch_size,
            seed=self.config.seed,
            shuffle=True,
            num_epochs=None,
            augment=augment,
        )
        return iter(loader)

    def eval_loader(self, batch_size: int, split: str | None = None) -> Iterable[dict[str, np.ndarray]]:
        """One pass over `split` (default: the main evaluation split, `eval_splits()[""]`), faces cropped
        around their box as `inference.predict_landmarks` crops a user's images."""
        data = self.config.data
        return one_pass_loader(
            self._source(split or self.eval_splits()[""]),
            batch_size=batch_size,
            seed=self.config.seed,
            augment=CropFace(data.image_size, data.crop_margin),
        )

    def visualize(self, state: TrainState, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        del frozen
        count = min(self.config.eval.num_visualized, len(batch["image"]))
        images = jnp.asarray(batch["image"][:count])
        predicted, _ = jax.jit(self.predict)(state.params, images)
        return draw_landmarks(
            np.asarray(images), np.asarray(predicted), np.asarray(batch["landmarks"][:count])
        )


def build(config: ml_collections.ConfigDict) -> SupervisedMethod:
    """The supervised method for `config` (see `landmarkjax/configs/supervised.py`)."""
    return SupervisedMethod(config)
