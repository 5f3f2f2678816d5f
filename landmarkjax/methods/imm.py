"""IMM: unsupervised landmarks through conditional image generation (Jakab et al., NeurIPS 2018).

Training. Each step takes pairs (source x, target x') of one face:
  * "tps" pairs: the batch holds face crops `image` [B, H, W, 3]; the step draws the authors' two-stage
    random TPS per face from its key (`landmarkjax.ops.tps.tps_image_pair`: jnp ops inside the jitted step,
    so the warps are vectorised with the network, fresh every step, and the data pipeline stays the plain
    face crop). Pixels of x' that a warp left empty are masked out of the loss (`target_valid`).
  * "video" pairs: the batch holds `frames` [B, 2, H, W, 3], two frames of one synthetic clip chosen by
    the Grain transform `landmarkjax.data.pairs.FramePair` (no warp, every pixel valid).
The generator (`landmarkjax.models.imm.IMM`) renders x_hat' from Phi(x) (appearance) and the K-point
Gaussian bottleneck of x' (geometry); the loss is `landmarkjax.losses.perceptual_loss` between x_hat' and
x', masked, with its running averages carried in the train state (`IMMState.averages`: they change every
step and are checkpointed) while the perceptual network's weights are a FROZEN INPUT (`frozen_inputs()`:
passed to the jitted step as an argument, never checkpointed). `imm.perceptual` picks "vgg_random" (a
VGG with fixed random weights from `imm.vgg_seed`), "vgg_file" (`load_vgg_params`) or "pixel" (the
input-layer term only: plain pixel L2 divided by its running average).

Evaluation (two passes, `evaluate`): the K points (image pixels) are predicted on the first
`eval.num_regression_faces` training faces; a linear map without bias (least squares, as the official
`Ridge(alpha=0, fit_intercept=False)`) from the 2K point coordinates to the 2L landmark coordinates is
fitted there (`fit_landmark_regressor`); the test faces' regressed landmarks are scored by inter-ocular NME.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable, Iterator, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from landmarkjax import metrics
from landmarkjax.data import face_sources
from landmarkjax.data.augment import CropFace
from landmarkjax.data.pairs import FramePair
from landmarkjax.data.pipeline import make_loader, one_pass_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceClipSource, SyntheticFaceSource
from landmarkjax.data.visualize import contact_sheet
from landmarkjax.losses.perceptual import IMM_INITIAL_AVERAGES, IMM_PERCEPTUAL_LAYERS, perceptual_loss
from landmarkjax.methods.semisup import PrefixSource
from landmarkjax.models.imm import IMM, PoseEncoder, imm_points_to_pixels
from landmarkjax.models.vgg import PREPROCESSING, VGG, load_vgg_params, vgg_features
from landmarkjax.ops.tps import tps_image_pair
from landmarkjax.training import sharding
from landmarkjax.training.method import EvalContext, Method, TrainState, apply_gradients, mean_over_axis
from landmarkjax.training.optimizers import make_optimizer

__all__ = [
    "IMMMethod",
    "IMMState",
    "PERCEPTUAL_OPTIONS",
    "PAIR_OPTIONS",
    "apply_landmark_regressor",
    "build",
    "fit_landmark_regressor",
]

PERCEPTUAL_OPTIONS = ("vgg_random", "vgg_file", "pixel")
PAIR_OPTIONS = ("tps", "video")


@flax.struct.dataclass
class IMMState(TrainState):
    """`TrainState` plus the perceptual loss's running averages.

    Attributes:
      averages: float32 `[L + 1]` running averages of the per-layer errors, input layer first (L = the
        number of compared VGG layers; L = 0 for the "pixel" loss).
    """

    averages: jnp.ndarray = None


def fit_landmark_regressor(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Least-squares linear map WITHOUT bias from discovered points to annotated landmarks.

    The official evaluation's `Ridge(alpha=0, fit_intercept=False)` on flattened coordinates: minimises
    sum_n |points_n.flat @ W - landmarks_n.flat|^2 (minimum-norm solution when under-determined).

    Args:
      points: `[N, K, 2]` discovered points (x, y), pixels.
      landmarks: `[N, L, 2]` annotated landmarks (x, y), pixels.

    Returns:
      W: float64 `[2K, 2L]`, rows ordered (x_1, y_1, x_2, ...) as the flattened points, columns likewise.
    """
    points, landmarks = np.asarray(points, np.float64), np.asarray(landmarks, np.float64)
    if points.ndim != 3 or points.shape[-1] != 2 or landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"points and landmarks must be [N, K, 2] and [N, L, 2]; got {points.shape}, {landmarks.shape}.")
    if len(points) != len(landmarks) or not len(points):
        raise ValueError(f"points and landmarks need the same N >= 1; got {len(points)} and {len(landmarks)}.")
    design = points.reshape(len(points), -1)
    solution, *_ = np.linalg.lstsq(design, landmarks.reshape(len(landmarks), -1), rcond=None)
    return solution


def apply_landmark_regressor(weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`[N, K, 2]` points -> `[N, L, 2]` regressed landmarks (x, y) pixels with W `[2K, 2L]`."""
    points = np.asarray(points, np.float64)
    return (points.reshape(len(points), -1) @ weights).reshape(len(points), -1, 2)


def _initial_averages(layers: tuple[str, ...]) -> np.ndarray:
    """The official initial averages of the input and of `layers` (a subset of IMM_PERCEPTUAL_LAYERS)."""
    by_layer = dict(zip(IMM_PERCEPTUAL_LAYERS, IMM_INITIAL_AVERAGES[1:]))
    return np.array([IMM_INITIAL_AVERAGES[0], *(by_layer[name] for name in layers)], np.float32)


def _tps_kwargs(section: ml_collections.ConfigDict) -> dict[str, Any]:
    """A config TPS section (rotation in degrees) -> `random_tps` keyword arguments (radians)."""
    return dict(
        rotation_std=math.radians(section.rotation_deg),
        scale_std=section.scale_std,
        translation_std=section.translation_std,
        warp_std=tuple(section.warp_std),
    )


class IMMMethod(Method):
    """IMM (see the module docstring). Built by `build(config)`."""

    name = "imm"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        imm = config.imm
        if isinstance(imm.num_landmarks, bool) or int(imm.num_landmarks) != imm.num_landmarks or imm.num_landmarks < 1:
            raise ValueError(f"imm.num_landmarks (K) must be an integer >= 1; got {imm.num_landmarks!r}.")
        if imm.perceptual not in PERCEPTUAL_OPTIONS:
            raise ValueError(f"imm.perceptual must be one of {PERCEPTUAL_OPTIONS}; got {imm.perceptual!r}.")
        if imm.pairs not in PAIR_OPTIONS:
            raise ValueError(f"imm.pairs must be one of {PAIR_OPTIONS}; got {imm.pairs!r}.")
        if imm.pairs == "video" and face_sources.source_name(config.data) != face_sources.SYNTHETIC:
            raise ValueError(
                f"imm.pairs='video' needs the synthetic face clips (data.source='synthetic'); got "
                f"{config.data.source!r}."
            )
        if imm.vgg_preprocess not in PREPROCESSING:
            raise ValueError(f"imm.vgg_preprocess must be one of {PREPROCESSING}; got {imm.vgg_preprocess!r}.")
        self.layers = tuple(imm.perceptual_layers) if imm.perceptual != "pixel" else ()
        if imm.perceptual != "pixel":
            unknown = [name for name in self.layers if name not in IMM_PERCEPTUAL_LAYERS]
            if unknown or not self.layers:
                raise ValueError(
                    f"imm.perceptual_layers must be a non-empty subset of {IMM_PERCEPTUAL_LAYERS}; got "
                    f"{tuple(imm.perceptual_layers)}."
                )
        self.num_landmarks = int(imm.num_landmarks)
        self.model = IMM(
            self.num_landmarks,
            encoder_widths=tuple(config.model.encoder_widths),
            render_width=config.model.render_width,
            render_min_width=config.model.render_min_width,
            gaussian_std=imm.gaussian_std,
        )
        self.pose_encoder = PoseEncoder(self.num_landmarks, tuple(config.model.encoder_widths))
        self.stride = self.pose_encoder.stride
        size = config.data.image_size
        if size % self.stride:
            raise ValueError(
                f"data.image_size must be divisible by the encoders' stride {self.stride}; got {size}."
            )
        self.pose_size = size // self.stride
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)
        self._vgg_params = self._load_perceptual_network()  # a missing or mismatched file fails here
        self._sources: dict[str, Any] = {}
        self._train_source()
        self._face_source(face_sources.eval_split(config.data))

    # ---- the perceptual network (a frozen input) ------------------------------------------------------
    def _load_perceptual_network(self) -> Any:
        imm = self.config.imm
        if imm.perceptual == "pixel":
            return {}
        if imm.perceptual == "vgg_file":
            if not imm.vgg_weights_path:
                raise ValueError("imm.perceptual='vgg_file' needs imm.vgg_weights_path (a .npz, .pth or .h5 file).")
            params = load_vgg_params(imm.vgg_weights_path, depth=imm.vgg_depth)
        else:
            vgg = VGG(depth=imm.vgg_depth, layers=self.layers)
            params = vgg.init(jax.random.key(int(imm.vgg_seed)), jnp.zeros([1, 16, 16, 3], jnp.float32))
        return jax.tree.map(np.asarray, params)

    def frozen_inputs(self) -> Any:
        """{"vgg": the VGG parameters} ({} for the "pixel" loss)."""
        return {"vgg": self._vgg_params} if self._vgg_params else {}

    def _features_fn(self, frozen: Any):
        if not self.layers:
            return lambda images: []
        return functools.partial(
            vgg_features,
            frozen["vgg"],
            layers=self.layers,
            depth=self.config.imm.vgg_depth,
            preprocess=self.config.imm.vgg_preprocess,
        )

    # ---- state, pairs, step ---------------------------------------------------------------------------
    def init_state(self, rng: jax.Array) -> IMMState:
        size = self.config.data.image_size
        images = jnp.zeros([1, size, size, 3], jnp.float32)
        params = self.model.init(rng, images, images)["params"]
        return IMMState(
            step=jnp.zeros([], jnp.int32),
            params=params,
            opt_state=self.optimizer.init(params),
            averages=jnp.asarray(_initial_averages(self.layers)),
        )

    def make_pairs(self, batch: Mapping[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
        """`{"source": [B, H, W, 3], "target": [B, H, W, 3], "mask": [B, H, W]}` from a training batch:
        TPS pairs of `image` drawn from `rng`, or the two frames of `frames` (mask all ones)."""
        imm = self.config.imm
        if "frames" in batch:
            frames = batch["frames"]
            return {"source": frames[:, 0], "target": frames[:, 1], "mask": jnp.ones(frames.shape[:1] + frames.shape[2:4])}
        images = batch["image"]
        keys = jax.random.split(rng, images.shape[0])
        pairs = jax.vmap(
            lambda key, image: tps_image_pair(
                key,
                image,
                grid_size=imm.tps_grid_size,
                target_tps=_tps_kwargs(imm.target_tps),
                source_tps=_tps_kwargs(imm.source_tps),
            )
        )(keys, images)
        return {"source": pairs["source"], "target": pairs["target"], "mask": pairs["target_valid"]}

    def loss_fn(
        self, params: Any, averages: jax.Array, pairs: Mapping[str, jax.Array], frozen: Any
    ) -> tuple[jax.Array, tuple[jax.Array, dict[str, jax.Array]]]:
        """(loss, (new averages, parts)): the masked perceptual loss of reconstructing x' from x."""
        outputs = self.model.apply({"params": params}, pairs["source"], pairs["target"])
        loss, new_averages = perceptual_loss(
            self._features_fn(frozen),
            outputs["reconstruction"],
            pairs["target"],
            averages,
            pairs["mask"],
            decay=self.config.imm.average_decay,
            scale=self.config.imm.loss_scale,
        )
        pixel_error = jnp.mean(jnp.square(outputs["reconstruction"] - pairs["target"]))
        return loss, (new_averages, {"pixel_mse": pixel_error})

    def train_step(
        self,
        state: IMMState,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[IMMState, dict[str, jax.Array]]:
        del phase
        pairs = self.make_pairs(batch, rng)
        grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
        (loss, (averages, parts)), grads = grad_fn(state.params, state.averages, pairs, frozen)
        grads = mean_over_axis(grads, axis_name)
        averages = mean_over_axis(averages, axis_name)
        new_state = apply_gradients(state, grads, self.optimizer).replace(step=state.step + 1, averages=averages)
        step_metrics = mean_over_axis({"loss": loss, **parts}, axis_name)
        step_metrics["grad_norm"] = optax.tree.norm(grads)
        return new_state, step_metrics

    # ---- prediction and evaluation ----------------------------------------------------------------------
    def predict_points(self, params: Any, images: jax.Array) -> jax.Array:
        """`[B, K, 2]` discovered points (x, y) in image pixels for images `[B, H, W, 3]` in [0, 1]."""
        points, _ = self.pose_encoder.apply({"params": params["pose_encoder"]}, images)
        return imm_points_to_pixels(points, self.pose_size, self.pose_size, self.stride)

    def eval_step(self, state: IMMState, batch: Mapping[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Per face: "points" `[B, K, 2]` (pixels), "landmarks" `[B, L, 2]`, "visibility" `[B, L]`."""
        del frozen
        return {
            "points": self.predict_points(state.params, batch["image"]),
            "landmarks": batch["landmarks"],
            "visibility": batch["visibility"],
        }

    def _collect(self, state: IMMState, frozen: Any, batches: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        collected: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            mask = batch.get(sharding.EXAMPLE_MASK_KEY)
            inputs = {key: batch[key] for key in ("image", "landmarks", "visibility")}
            outputs = sharding.to_host(self._eval_step_jit(state, inputs, frozen))
            keep = slice(None) if mask is None else sharding.to_host(mask) > 0
            for key, value in outputs.items():
                collected.setdefault(key, []).append(np.asarray(value)[keep])
        if not collected:
            raise ValueError("the evaluation set is empty.")
        return {key: np.concatenate(parts) for key, parts in collected.items()}

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """NME of `outputs["regressed"]` against the landmarks (the second pass of `evaluate`)."""
        errors = np.asarray(
            metrics.nme(outputs["regressed"], outputs["landmarks"], "inter_ocular", outputs["visibility"])
        )
        return {"nme": float(np.nanmean(errors)), "num_examples": int(errors.shape[0])}

    def evaluate(self, state: IMMState, frozen: Any, context: EvalContext) -> dict[str, float]:
        """Fits the regressor on training faces' points, then scores the test faces (module docstring)."""
        fit = self._collect(state, frozen, context.global_batches(self.regression_loader(context.host_batch_size)))
        weights = fit_landmark_regressor(fit["points"], fit["landmarks"])
        test = self._collect(state, frozen, context.global_batches(self.eval_loader(context.host_batch_size)))
        test["regressed"] = apply_landmark_regressor(weights, test["points"]).astype(np.float32)
        summary = self.summarize(test)
        fit["regressed"] = apply_landmark_regressor(weights, fit["points"]).astype(np.float32)
        summary["train_nme"] = self.summarize(fit)["nme"]
        summary["num_regression_faces"] = int(len(fit["points"]))
        return summary

    # ---- data ------------------------------------------------------------------------------------------
    def _memoized(self, source: Any) -> Any:
        key = repr(source)
        if key not in self._sources:
            procedural = isinstance(source, (SyntheticFaceSource, SyntheticFaceClipSource))
            self._sources[key] = MemoizedSource(source) if procedural else source
        return self._sources[key]

    def _face_source(self, split: str) -> Any:
        return self._memoized(face_sources.face_source(self.config.data, split))

    def _train_source(self) -> Any:
        data = self.config.data
        if self.config.imm.pairs == "video":
            return self._memoized(
                SyntheticFaceClipSource(
                    data.num_train, num_frames=self.config.imm.clip_frames, size=data.source_size, seed=data.train_seed
                )
            )
        return self._face_source(data.train_split)

    def _crop(self) -> CropFace:
        return CropFace(self.config.data.image_size, self.config.data.crop_margin)

    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """TPS pairs: face crops `image` [B, H, W, 3]; video pairs: `frames` [B, 2, H, W, 3] (source, target)."""
        augment = [self._crop(), FramePair()] if self.config.imm.pairs == "video" else self._crop()
        return iter(
            make_loader(
                self._train_source(), batch_size=batch_size, seed=self.config.seed, shuffle=True, augment=augment
            )
        )

    def _one_pass(self, source: Any, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        return one_pass_loader(source, batch_size=batch_size, seed=self.config.seed, augment=self._crop())

    def regression_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """One pass over the first `eval.num_regression_faces` training faces (cropped, with landmarks)."""
        source = self._face_source(self.config.data.train_split)
        return self._one_pass(PrefixSource(source, min(self.config.eval.num_regression_faces, len(source))), batch_size)

    def eval_loader(self, batch_size: int, split: str | None = None) -> Iterable[dict[str, np.ndarray]]:
        """One pass over the faces of `split` (default: the evaluated split, `data.eval_split` or the test
        faces), cropped, with their landmarks."""
        return self._one_pass(self._face_source(split or face_sources.eval_split(self.config.data)), batch_size)

    def visualize(self, state: IMMState, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        """Top: the K discovered points coloured by index on up to `eval.num_visualized` faces. Below, for
        the first faces: a TPS source x, its target x' and the reconstruction x_hat' (left to right)."""
        del frozen
        count = min(self.config.eval.num_visualized, len(batch["image"]))
        images = jnp.asarray(batch["image"][:count])
        points = jax.jit(self.predict_points)(state.params, images)
        faces = contact_sheet(np.asarray(images), np.asarray(points), ncols=count)
        shown = min(count, 3)
        pairs = jax.jit(self.make_pairs)({"image": images[:shown]}, jax.random.key(0))
        reconstruction = jax.jit(self.model.apply)({"params": state.params}, pairs["source"], pairs["target"])[
            "reconstruction"
        ]
        triples = np.concatenate(
            [np.asarray(pairs["source"]), np.asarray(pairs["target"]), np.clip(np.asarray(reconstruction), 0.0, 1.0)]
        )
        # One row per face: source, target, reconstruction.
        order = np.arange(3 * shown).reshape(3, shown).T.ravel()
        rows = contact_sheet(triples[order], ncols=3)
        width = max(faces.shape[1], rows.shape[1])
        pad = lambda sheet: np.pad(sheet, ((0, 0), (0, width - sheet.shape[1]), (0, 0)))  # noqa: E731
        return np.concatenate([pad(faces), pad(rows)], axis=0)


def build(config: ml_collections.ConfigDict) -> IMMMethod:
    """The IMM method for `config` (see `landmarkjax/configs/imm.py`)."""
    return IMMMethod(config)
