"""Semi-supervised landmarks (Honari et al., CVPR 2018) with a Recombinator Network (Honari et al., 2016).

The detector (`landmarkjax.models.rcn.RCN`, or `SumNet`) outputs one logit map per landmark at the image
resolution; landmarks are read with `ops.soft_argmax`, so they are a differentiable function of the
detector. Each step draws three streams (`landmarkjax.training.streams.Streams`) of `batch_size` faces:

  * "labelled": the first `semisup.labelled_fraction` S of the training faces, with landmarks. Loss:
    `losses.spatial_softmax_nll` (per-landmark softmax over pixels, NLL of the true pixel; visibility
    weighted), the RCN 2016 loss.
  * "attributes": the first `semisup.attribute_fraction` M of the training faces, with attributes. The
    soft-argmax landmarks feed `models.attributes.AttributeNet`, which regresses
    `semisup.regression_attributes` (head pose, squared error) and classifies each of
    `semisup.binary_attributes` as value > threshold (cross-entropy). Its gradient reaches the detector
    through the coordinates (sequential multitasking).
  * "unlabelled": every training face. Each image is warped by a random ELT transform
    (`losses.random_elt_transform`: rotation, scale, translation, mirror), the detector runs on both, and
    `losses.equivariance_loss` pulls the landmarks on the warped image toward the warped landmarks
    (landmark order permuted for mirrors; points warped out of the image are left out). With
    `semisup.elt_weight` 0 this stream is neither read nor passed through the detector (the same result,
    half the compute of a step).

Total = landmark_weight * NLL + attribute_weight * (squared error + mean cross-entropy) + elt_weight * ELT.
The training faces are augmented as in the supervised method (attributes adjusted for mirrors and
rotations); evaluation is the supervised method's (NME inter-ocular, AUC, failure rate).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax import losses
from landmarkjax.data import face_sources
from landmarkjax.data.augment import RandomFaceAugment, face_augmentation
from landmarkjax.data.pipeline import make_loader
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.models.attributes import AttributeNet
from landmarkjax.models.rcn import RCN, SumNet
from landmarkjax.ops.heatmaps import soft_argmax
from landmarkjax.ops.warps import affine_warp_image, affine_warp_points
from landmarkjax.training.method import Method, TrainState, gradient_step
from landmarkjax.training.optimizers import make_optimizer
from landmarkjax.training.streams import Streams

__all__ = ["ATTRIBUTE_IMAGE_KEY", "SemiSupMethod", "UNLABELLED_IMAGE_KEY", "build", "PrefixSource"]

# Batch keys of the attribute stream (images float32 [B, H, W, 3], attributes float32 [B, A]) and of the
# unlabelled stream (images float32 [B, H, W, 3]); the labelled stream keeps the supervised keys.
ATTRIBUTE_IMAGE_KEY = "attribute_image"
ATTRIBUTES_KEY = "attributes"
UNLABELLED_IMAGE_KEY = "unlabelled_image"
LOCATORS = ("soft_argmax", "argmax")
_STREAM_SEED_OFFSETS = {"labelled": 0, "attributes": 1, "unlabelled": 2}


class PrefixSource:
    """The first `count` records of a random-access source (the labelled or attribute-labelled share)."""

    def __init__(self, source: Any, count: int):
        if not 1 <= count <= len(source):
            raise ValueError(f"count must be in [1, {len(source)}]; got {count}.")
        self.source, self.count = source, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} records.")
        return self.source[index]

    def __repr__(self) -> str:
        return f"PrefixSource({self.source!r}, count={self.count})"


def _check_fraction(name: str, value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"semisup.{name} must be in (0, 1]; got {value}.")
    return float(value)


class SemiSupMethod(SupervisedMethod):
    """RCN + ELT + attributes from landmarks (see the module docstring). Built by `build(config)`."""

    name = "semisup"

    def __init__(self, config: ml_collections.ConfigDict):
        Method.__init__(self, config)  # the supervised constructor builds a CPM; this method builds an RCN
        semisup = config.semisup
        self.labelled_fraction = _check_fraction("labelled_fraction", semisup.labelled_fraction)
        self.attribute_fraction = _check_fraction("attribute_fraction", semisup.attribute_fraction)
        # The dataset's attributes (the synthetic faces' FACE_ATTRIBUTE_NAMES, CelebA's 40, none for 300-W).
        self.attribute_names = face_sources.face_attribute_names(config.data)
        names = tuple(semisup.regression_attributes) + tuple(semisup.binary_attributes)
        if not self.attribute_names and (semisup.attribute_weight or names):
            raise ValueError(
                f"data.source {face_sources.source_name(config.data)!r} has no attributes: set "
                "semisup.attribute_weight=0 and semisup.regression_attributes = semisup.binary_attributes = ()"
                f" (got attribute_weight={semisup.attribute_weight}, attributes {names})."
            )
        if semisup.attribute_weight and not names:
            raise ValueError("semisup.attribute_weight > 0 needs regression or binary attributes to predict.")
        unknown = [name for name in names if name not in self.attribute_names]
        if unknown:
            raise ValueError(
                f"semisup attributes must be among the attributes of data.source "
                f"{face_sources.source_name(config.data)!r}, {self.attribute_names}; got {unknown}."
            )
        # Without attributes to predict there is no attribute stream (and no attribute net).
        self.use_attributes = bool(names)
        # elt_weight 0: no unlabelled stream and no detector passes for it (the loss would only be multiplied by 0).
        self.use_elt = bool(semisup.elt_weight)
        if len(semisup.binary_thresholds) != len(semisup.binary_attributes):
            raise ValueError(
                "semisup.binary_thresholds must give one threshold per binary attribute; got "
                f"{tuple(semisup.binary_thresholds)} for {tuple(semisup.binary_attributes)}."
            )
        if config.eval.locator not in LOCATORS:
            raise ValueError(f"eval.locator must be one of {LOCATORS}; got {config.eval.locator!r}.")
        self._sources: dict[str, Any] = {}
        for split in dict.fromkeys([config.data.train_split, *self.eval_splits().values()]):
            self._source(split)
        self.num_keypoints = face_sources.num_face_landmarks(config.data)
        if self.use_elt:  # a transform that is not invertible (zero scale), etc. fails here, not in a step
            size = int(config.data.image_size)
            try:
                jax.eval_shape(functools.partial(self._draw_elt_transform, image_size=(size, size)), jax.random.key(0))
            except ValueError as error:
                raise ValueError(f"semisup.elt_* settings: {error}") from error
        model = config.model
        if model.architecture == "rcn":
            self.model = RCN(self.num_keypoints, tuple(model.widths), model.encoder_depth, model.decoder_depth)
        elif model.architecture == "sumnet":
            self.model = SumNet(
                self.num_keypoints, tuple(model.widths), model.encoder_depth, branch_depth=model.decoder_depth
            )
        else:
            raise ValueError(f"model.architecture must be 'rcn' or 'sumnet'; got {model.architecture!r}.")
        size = config.data.image_size
        stride = 2 ** (len(model.widths) - 1)
        if size % stride:
            raise ValueError(
                f"data.image_size must be divisible by 2 ** (branches - 1) = {stride}; got {size}."
            )
        mask = model.get("branch_mask")
        self.branch_mask = None if mask is None else tuple(bool(keep) for keep in mask)
        widths = tuple(model.widths)
        if self.branch_mask is not None and (len(self.branch_mask) != len(widths) or not any(self.branch_mask)):
            raise ValueError(
                f"model.branch_mask must hold one bool per branch ({len(widths)}), at least one True; "
                f"got {mask}."
            )
        self.attribute_net = AttributeNet(
            (size, size),
            num_classes=(2,) * len(semisup.binary_attributes),
            num_regression=len(semisup.regression_attributes),
            hidden_widths=tuple(model.attribute_hidden_widths),
        )
        self.regression_index = np.array(
            [self.attribute_names.index(n) for n in semisup.regression_attributes], np.int32
        )
        self.binary_index = np.array(
            [self.attribute_names.index(n) for n in semisup.binary_attributes], np.int32
        )
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)

    def init_state(self, rng: jax.Array) -> TrainState:
        size = self.config.data.image_size
        model_key, attribute_key = jax.random.split(rng)
        images = jnp.zeros([1, size, size, 3], jnp.float32)
        points = jnp.zeros([1, self.num_keypoints, 2], jnp.float32)
        params = {"landmarks": self.model.init(model_key, images)["params"]}
        if self.use_attributes:
            params["attributes"] = self.attribute_net.init(attribute_key, points)["params"]
        return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def _logits(self, params: Any, images: jnp.ndarray) -> jnp.ndarray:
        """`[B, H, W, K]` logits of images `[B, H, W, 3]`, without the branches `model.branch_mask` drops."""
        return self.model.apply({"params": params["landmarks"]}, images, branch_mask=self.branch_mask)

    def predict(
        self, params: Any, images: jnp.ndarray, locator: str | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """`(landmarks [B, K, 2] (x, y) image pixels, logits [B, H, W, K])` for images `[B, H, W, 3]`.

        Landmarks are read with `locator` ("soft_argmax" or "argmax"; default `config.eval.locator`), from
        the branches that `model.branch_mask` keeps (the masking ablation trains and tests without the others).
        """
        logits = self._logits(params, images)
        if (locator or self.config.eval.locator) == "argmax":
            height, width = logits.shape[1:3]
            cell = jnp.argmax(logits.reshape(logits.shape[0], height * width, -1), axis=1)  # [B, K]
            landmarks = jnp.stack([cell % width, cell // width], axis=-1).astype(jnp.float32)
        else:
            landmarks = soft_argmax(logits, self.config.semisup.soft_argmax_temperature)
        return landmarks, logits

    def loss_fn(
        self, params: Any, batch: Mapping[str, jnp.ndarray], rng: jax.Array
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Total loss and its parts for a batch of the three streams (see the module docstring)."""
        semisup = self.config.semisup
        temperature = semisup.soft_argmax_temperature

        attribute_images = [batch[ATTRIBUTE_IMAGE_KEY]] if self.use_attributes else []
        if not self.use_elt:
            all_logits = self._logits(params, jnp.concatenate([batch["image"], *attribute_images]))
            logits, *attribute_logits = jnp.split(all_logits, [len(batch["image"])] if attribute_images else [])
            return self._total_loss(batch, params, logits, attribute_logits, jnp.zeros([], jnp.float32))

        images = batch[UNLABELLED_IMAGE_KEY]
        batch_size, height, width = images.shape[:3]
        draw = functools.partial(self._draw_elt_transform, image_size=(height, width))
        matrices, permutations = jax.vmap(draw)(jax.random.split(rng, batch_size))
        warped, _ = jax.vmap(affine_warp_image)(images, matrices)
        # One detector pass over every group of images (one compiled forward and backward, not four).
        groups = [batch["image"], *attribute_images, images, warped]
        all_logits = self._logits(params, jnp.concatenate(groups))
        splits = np.cumsum([len(group) for group in groups])[:-1]
        logits, *attribute_logits, original_logits, warped_logits = jnp.split(all_logits, splits)

        original = soft_argmax(original_logits, temperature)
        on_warped = soft_argmax(warped_logits, temperature)
        moved = jax.lax.stop_gradient(affine_warp_points(original, matrices))
        inside = jnp.all((moved >= 0) & (moved <= jnp.array([width - 1, height - 1], moved.dtype)), axis=-1)
        elt_loss = losses.equivariance_loss(
            on_warped,
            original,
            matrices,
            mask=inside.astype(jnp.float32),
            stop_gradient=semisup.elt_stop_gradient,
            permutation=permutations,
        )
        return self._total_loss(batch, params, logits, attribute_logits, elt_loss)

    def _draw_elt_transform(self, key: jax.Array, image_size: tuple[int, int]) -> tuple[jnp.ndarray, jnp.ndarray]:
        """One random ELT transform of the config: (`[2, 3]` matrix, `[K]` landmark permutation)."""
        semisup = self.config.semisup
        return losses.random_elt_transform(
            key,
            image_size,
            self.num_keypoints,
            max_rotation=semisup.elt_max_rotation,
            scale_range=tuple(semisup.elt_scale_range),
            max_translation=semisup.elt_max_translation * min(image_size),
            flip_probability=semisup.elt_flip_probability,
        )

    def _total_loss(
        self,
        batch: Mapping[str, jax.Array],
        params: Any,
        logits: jnp.ndarray,
        attribute_logits: list[jnp.ndarray],
        elt_loss: jnp.ndarray,
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """The weighted sum of the landmark NLL (on `logits` of the labelled images), the attribute loss (on
        `attribute_logits[0]` when attributes are predicted) and `elt_loss`, with the three parts."""
        semisup = self.config.semisup
        landmark_loss = losses.spatial_softmax_nll(logits, batch["landmarks"], batch["visibility"])
        attribute_loss = jnp.zeros([], jnp.float32)
        if self.use_attributes:
            attribute_loss = self._attribute_loss(params, attribute_logits[0], batch[ATTRIBUTES_KEY])
        total = (
            semisup.landmark_weight * landmark_loss
            + semisup.attribute_weight * attribute_loss
            + semisup.elt_weight * elt_loss
        )
        return total, {"landmark_loss": landmark_loss, "attribute_loss": attribute_loss, "elt_loss": elt_loss}

    def _attribute_loss(self, params: Any, logits: jnp.ndarray, attributes: jnp.ndarray) -> jnp.ndarray:
        """Attribute losses of the soft-argmax landmarks of `logits` [B, H, W, K] (attributes [B, A])."""
        semisup = self.config.semisup
        points = soft_argmax(logits, semisup.soft_argmax_temperature)
        predictions = self.attribute_net.apply({"params": params["attributes"]}, points)
        loss = jnp.zeros([], jnp.float32)
        if len(self.regression_index):
            loss = losses.attribute_squared_error(predictions.regression, attributes[:, self.regression_index])
        for head, (index, threshold) in enumerate(zip(self.binary_index, semisup.binary_thresholds)):
            labels = (attributes[:, index] > threshold).astype(jnp.int32)
            class_loss = losses.attribute_cross_entropy(predictions.class_logits[head], labels)
            loss = loss + class_loss / len(self.binary_index)
        return loss

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
        del frozen, phase
        return gradient_step(state, self.loss_fn, self.optimizer, batch, rng, axis_name=axis_name)

    def _augment(self) -> RandomFaceAugment:
        return face_augmentation(self.config.data, attribute_names=self.attribute_names)

    def stream_sizes(self) -> dict[str, int]:
        """Training faces per stream: {"labelled": ceil(S N), "attributes": ceil(M N), "unlabelled": N}.

        No "attributes" stream when no attribute is predicted (e.g. on 300-W, which has none), no
        "unlabelled" stream when `semisup.elt_weight` is 0.
        """
        total = len(self._source(self.config.data.train_split))
        sizes = {"labelled": max(1, math.ceil(self.labelled_fraction * total))}
        if self.use_attributes:
            sizes["attributes"] = max(1, math.ceil(self.attribute_fraction * total))
        if self.use_elt:
            sizes["unlabelled"] = total
        return sizes

    def train_loader(self, batch_size: int) -> Streams:
        source = self._source(self.config.data.train_split)
        streams = {}
        for name, count in self.stream_sizes().items():
            streams[name] = iter(
                make_loader(
                    PrefixSource(source, count),
                    batch_size=batch_size,
                    # Independent orders and augmentations per stream, the same whichever streams exist.
                    seed=self.config.seed + _STREAM_SEED_OFFSETS[name],
                    shuffle=True,
                    num_epochs=None,
                    augment=self._augment(),
                )
            )
        return Streams(**streams)

    def next_batch(self, data: Streams, phase: str) -> dict[str, np.ndarray]:
        """Labelled images and landmarks, attribute-labelled images and attributes, and unlabelled images."""
        del phase
        labelled = data.next("labelled")
        if labelled["landmarks"].shape[-2] != self.num_keypoints:
            raise ValueError(
                f"the labelled faces have {labelled['landmarks'].shape[-2]} landmarks but the detector was built "
                f"for {self.num_keypoints} (data.source {face_sources.source_name(self.config.data)!r})."
            )
        batch = {
            "image": labelled["image"],
            "landmarks": labelled["landmarks"],
            "visibility": labelled["visibility"],
        }
        if self.use_attributes:
            with_attributes = data.next("attributes")
            batch[ATTRIBUTE_IMAGE_KEY] = with_attributes["image"]
            batch[ATTRIBUTES_KEY] = with_attributes["attributes"]
        if self.use_elt:
            batch[UNLABELLED_IMAGE_KEY] = data.next("unlabelled")["image"]
        return batch


def build(config: ml_collections.ConfigDict) -> SemiSupMethod:
    """The semi-supervised method for `config` (see `landmarkjax/configs/semisup.py`)."""
    return SemiSupMethod(config)
