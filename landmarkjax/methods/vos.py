"""Self-supervised video object segmentation by colour propagation (MAST, Lai et al. CVPR 2020; Zhu et al. 2020).

Training (no labels). Each example is a clip of T frames, RGB in [0, 1], converted to Lab and normalised as
MAST does: ((L - 50) / 50, a / 127, b / 127), about [-1, 1] (`normalized_lab`). Channel dropout (MAST's
`dropout2d_lab`): one of a or b, drawn per example, is zeroed in the encoder input of every frame of the
clip, and the input is multiplied by 3 / 2 (`channel_dropout`). The encoder (`models.resnet`, stride 4,
C channels) encodes the query frame (the clip's last, index T - 1) and the reference frames; the query
frame's dropped channel is reconstructed from the references' (un-dropped) values of that channel through
`ops.propagate_labels` (window radius `vos.train_radius` cells, affinity dot(q, k) / (temperature sqrt(C)),
the 1/sqrt(C) scaling that makes MAST converge on newer frameworks). The reference colours enter at the
feature grid (averaged over each 4 x 4 cell: MAST's released code samples every 4th pixel instead); the
reconstruction is upsampled bilinearly to the frame size, and the loss is MAST's smooth-L1 on values
scaled by `vos.loss_scale` = 20: mean Huber(20 prediction, 20 target) with delta 1 (raw Lab regression,
not quantised colours, as MAST).

  * `vos.mode = "pairwise"`: clips of 2 frames, the reference is the previous frame (MAST's release).
  * `vos.mode = "memory"`: clips of `vos.clip_length` frames; the references of the query frame t = T - 1
    are `ops.memory_frames(t, long_term, short_term)` (with the defaults and T = 6: frames 0, 2 and 4),
    the same long/short-term schedule as at test time: the multi-frame training MAST's release lacks.
  * `vos.momentum` m > 0: Zhu et al.'s momentum key encoder. The references are encoded by a second copy
    of the encoder (`VosState.key_params`, in the train state and in checkpoints since it changes), which
    gets no gradient and follows the online encoder after every step: key <- m key + (1 - m) online
    (`ops.momentum_update`). Without it (m = 0) the references go through the online encoder, with
    gradients (MAST).

Evaluation (`evaluate`, which owns its loop) runs the semi-supervised DAVIS protocol on whole videos of
any length and size, one video at a time (`segment_video`: `propagate_video`, which takes any other feature
extractor as well, with this method's features): every frame is encoded (learned features: the online
encoder on the full Lab input; `vos.features = "raw_lab"`: the normalised Lab pixels averaged over 4 x 4
cells, compared with a Gaussian colour kernel, no learning); frames are edge-padded at the bottom and right
to a multiple of 4 first. The first frame's masks, one-hot over background + N objects and averaged to the
feature grid, are propagated frame by frame through `ops.memory_frames` (long-term frames 0 and 5,
short-term t - 1, t - 3, t - 5) with radius `vos.eval_radius` = 12 cells (on a feature map (h, w) so small
that the window holds all of it, radius >= max(h, w) - 1: globally, which has the same candidates, see
`propagation_window`); the soft masks are carried in the memory, and each is upsampled bilinearly to the
(padded) frame size, cropped and argmaxed at the end. Scores: J (`metrics.region_jaccard`) and F
(`metrics.boundary_f`) per object and frame, without the first and last frame (DAVIS), then
`metrics.davis_statistics` per object; J/F mean, recall and decay are averaged over every object of every
video, and j_and_f_mean = (J mean + F mean) / 2. Every process evaluates every video (the result is the
same on each). `predict_eval_video` gives the predicted ids of an evaluation video for writing DAVIS
results (`scripts/write_davis_predictions.py`).

Bad input: frames of different sizes within one video, masks of another size, object ids above the
video's declared object count (`num_objects` of a DAVIS record, else `data.num_objects`), a first frame
without any object and videos shorter than 3 frames raise a ValueError naming the video; a radius larger
than the feature map is handled as above. Objects 1..N
that are missing from the first frame are still scored (their prediction is empty), as the DAVIS tool does.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import flax
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from landmarkjax import metrics
from landmarkjax.data.augment import RandomVideoCrop
from landmarkjax.data.pipeline import make_loader, to_model_inputs
from landmarkjax.data.sources import MemoizedSource, SyntheticObjectVideoSource
from landmarkjax.data.visualize import contact_sheet
from landmarkjax.models.resnet import ResNetStride4, resnet18_stride4, small_resnet_stride4
from landmarkjax.ops.colour import rgb_to_lab
from landmarkjax.ops.correspondence import memory_frames, propagate_labels
from landmarkjax.ops.ema import momentum_update
from landmarkjax.training.method import EvalContext, Method, TrainState, apply_gradients, mean_over_axis
from landmarkjax.training.optimizers import make_optimizer

__all__ = [
    "STRIDE",
    "VosMethod",
    "VosState",
    "build",
    "channel_dropout",
    "davis_summary",
    "normalized_lab",
    "propagate_video",
    "propagation_window",
    "training_references",
]

#: Output stride of the encoders (and of the raw_lab features): feature cell (i, j) covers pixels
#: [4 i, 4 i + 4) x [4 j, 4 j + 4) of the (padded) frame.
STRIDE = 4
MODES = ("pairwise", "memory")
FEATURES = ("learned", "raw_lab")
ARCHITECTURES = ("small", "resnet18")
_LAB_MEAN = np.array([50.0, 0.0, 0.0], np.float32)
_LAB_SCALE = np.array([50.0, 127.0, 127.0], np.float32)
# DAVIS statistics reported by `davis_summary`, in order.
_STATISTICS = ("mean", "recall", "decay")


@flax.struct.dataclass
class VosState:
    """The train state with Zhu et al.'s momentum key encoder (used when `vos.momentum` > 0).

    Attributes:
      step: int32 scalar, optimisation steps taken.
      params: the online (query) encoder's parameters.
      opt_state: the optax state of `params`.
      key_params: the momentum (key) encoder's parameters, `params`' structure; an EMA of `params`.
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any
    key_params: Any


def normalized_lab(rgb: jnp.ndarray) -> jnp.ndarray:
    """sRGB in [0, 1] -> MAST's normalised Lab ((L - 50) / 50, a / 127, b / 127), about [-1, 1].

    Args:
      rgb: [..., 3] float sRGB in [0, 1].

    Returns:
      [..., 3] float32 normalised (L, a, b).
    """
    lab = rgb_to_lab(jnp.asarray(rgb, jnp.float32))
    return (lab - _LAB_MEAN) / _LAB_SCALE


def channel_dropout(lab: jnp.ndarray, channel: jnp.ndarray) -> jnp.ndarray:
    """MAST's Lab channel dropout: zero channel `channel` (1 = a or 2 = b) and scale the rest by 3 / 2.

    Args:
      lab: [B, ..., 3] normalised Lab (e.g. a clip [B, T, H, W, 3]).
      channel: [B] int, the channel dropped in example b (1 or 2; the same for all its frames).

    Returns:
      [B, ..., 3]: L and the kept chroma channel times 1.5, the dropped channel 0.
    """
    keep = 1.0 - jax.nn.one_hot(channel, 3, dtype=lab.dtype)  # [B, 3]
    keep = keep.reshape(keep.shape[:1] + (1,) * (lab.ndim - 2) + (3,))
    return lab * keep * 1.5


def training_references(mode: str, clip_length: int, long_term: Sequence[int], short_term: Sequence[int]):
    """(clip length T, reference frame indices) of a training clip whose query is its last frame T - 1.

    "pairwise": T = 2, references (0,). "memory": T = `clip_length`, references
    `ops.memory_frames(T - 1, long_term=..., short_term=...)`.
    """
    if mode == "pairwise":
        return 2, (0,)
    if mode != "memory":
        raise ValueError(f"vos.mode must be one of {MODES}; got {mode!r}.")
    if clip_length < 2:
        raise ValueError(f"vos.clip_length must be >= 2 in memory mode; got {clip_length}.")
    return clip_length, memory_frames(clip_length - 1, long_term=tuple(long_term), short_term=tuple(short_term))


def _average_pool(x: jnp.ndarray, stride: int = STRIDE) -> jnp.ndarray:
    """[..., H, W, C] with H, W multiples of `stride` -> [..., H / stride, W / stride, C], the mean of each
    stride x stride cell."""
    *lead, height, width, channels = x.shape
    cells = x.reshape(*lead, height // stride, stride, width // stride, stride, channels)
    return cells.mean(axis=(-4, -2))


def _pad_to_stride(x: jnp.ndarray, spatial_axis: int, stride: int = STRIDE) -> jnp.ndarray:
    """Edge-pads the two spatial axes starting at `spatial_axis` at the end to multiples of `stride`."""
    pad = [(0, 0)] * x.ndim
    for axis in (spatial_axis, spatial_axis + 1):
        pad[axis] = (0, -x.shape[axis] % stride)
    return jnp.pad(x, pad, mode="edge")


def _upsample(labels: jnp.ndarray, height: int, width: int, stride: int = STRIDE) -> jnp.ndarray:
    """[..., h, w, L] feature-grid values -> [..., height, width, L], bilinear (half-pixel centres) to
    (stride h, stride w), then cropped to the frame (the padding added by `_pad_to_stride` is cut off)."""
    *lead, h, w, channels = labels.shape
    resized = jax.image.resize(labels, (*lead, stride * h, stride * w, channels), method="bilinear")
    return resized[..., :height, :width, :]


def propagation_window(
    radius: int | None, feature_height: int, feature_width: int, top_k: int | None, memory: int
) -> tuple[int | None, int | None]:
    """(radius, top_k) for `ops.propagate_labels` on an (h, w) feature map with `memory` frames.

    A window that holds every position of the map (radius >= max(h, w) - 1, the case of a test radius larger
    than a small video's feature map) is replaced by global propagation (radius None), which has exactly the
    same candidates; top_k is then capped at the M h w candidates, all of which a window's top_k would also
    have kept. Any other radius (including one >= min(h, w), which spans the shorter side) is kept.

    Args:
      radius: the requested window radius in feature cells (>= 0), or None for global.
      feature_height, feature_width: h, w of the feature map.
      top_k: the requested top k (>= 1) or None.
      memory: M, the number of memory frames.

    Returns:
      (radius or None, top_k or None) to pass on.
    """
    if radius is None or radius >= max(feature_height, feature_width) - 1:
        return None, None if top_k is None else min(top_k, memory * feature_height * feature_width)
    return radius, top_k


def _propagate_step(query, keys, labels, temperature, *, radius, top_k):
    return propagate_labels(query, keys, labels, radius=radius, temperature=temperature, top_k=top_k)


# Module-level jitted steps of `propagate_video` (shared by every call; compiled once per shape and window).
_propagate = jax.jit(_propagate_step, static_argnames=("radius", "top_k"))


@functools.partial(jax.jit, static_argnames=("height", "width", "stride"))
def _readout(soft: jnp.ndarray, *, height: int, width: int, stride: int) -> jnp.ndarray:
    """Soft masks [h, w, N + 1] -> object ids int32 [height, width] (bilinear upsampling, argmax)."""
    return jnp.argmax(_upsample(soft, height, width, stride), axis=-1).astype(jnp.int32)


def _check_video(frames: Sequence[np.ndarray] | np.ndarray, first_mask: np.ndarray, num_objects: int | None):
    """Validated (frames list of float32 [H, W, 3], first_mask int [H, W], N) of `propagate_video`."""
    frames = [np.asarray(frame, np.float32) for frame in frames]
    if not frames or frames[0].ndim != 3 or frames[0].shape[-1] != 3:
        raise ValueError(f"frames must be T >= 1 frames [H, W, 3]; got {[f.shape for f in frames[:1]]}.")
    height, width = frames[0].shape[:2]
    for t, frame in enumerate(frames):
        if frame.shape != (height, width, 3):
            raise ValueError(
                f"every frame of a video must have frame 0's size {(height, width, 3)}; frame {t} has "
                f"shape {frame.shape}."
            )
    first_mask = np.asarray(first_mask)
    if first_mask.shape != (height, width):
        raise ValueError(f"first_mask must have the frames' size {(height, width)}; got {first_mask.shape}.")
    if not np.issubdtype(first_mask.dtype, np.integer):
        raise ValueError(f"first_mask must hold integer object ids; got dtype {first_mask.dtype}.")
    if not first_mask.any():
        raise ValueError("the first frame's mask holds no object (every id is 0): nothing to propagate.")
    if num_objects is None:
        num_objects = int(first_mask.max())
    if isinstance(num_objects, bool) or int(num_objects) != num_objects or num_objects < 1:
        raise ValueError(f"num_objects must be an int >= 1; got {num_objects!r}.")
    num_objects = int(num_objects)
    if first_mask.min() < 0 or first_mask.max() > num_objects:
        raise ValueError(
            f"first_mask ids must be in [0, num_objects = {num_objects}]; got ids in "
            f"[{first_mask.min()}, {first_mask.max()}]."
        )
    return frames, first_mask, num_objects


def propagate_video(
    features_fn: Callable[[jnp.ndarray], jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]],
    frames: Sequence[np.ndarray] | np.ndarray,
    first_mask: np.ndarray,
    num_objects: int | None = None,
    *,
    stride: int = STRIDE,
    long_term: Sequence[int] = (0, 5),
    short_term: Sequence[int] = (1, 3, 5),
    radius: int | None = 12,
    temperature: float = 1.0,
    top_k: int | None = None,
    normalize: bool = False,
    chunk: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Propagates the first frame's object masks through a whole video with any feature extractor.

    The semi-supervised VOS protocol shared by MAST, CRW and DINO's evaluation, for features from any JAX
    model: every frame is encoded by `features_fn` (on the frames edge-padded at the bottom and right to
    multiples of `stride`); the first frame's masks, one-hot over background + N objects and averaged over
    each stride x stride cell, are propagated frame by frame: frame t reads the soft masks of its memory
    frames `ops.memory_frames(t, long_term=..., short_term=...)` through `ops.propagate_labels` (window
    `radius` in feature cells, affinity dot(q, k) / `temperature`, optional `top_k`); the soft masks are
    carried, and each frame's is upsampled bilinearly by `stride`, cropped to the frame and argmaxed.

    MAST: the defaults (long-term 0 and 5, short-term t - 1, t - 3, t - 5, radius 12). DINO's protocol:
    `long_term=(0,), short_term=(1, ..., 7), radius=12, top_k=5, temperature=0.1, normalize=True`, stride =
    the patch size.

    Handling of sizes: a frame size that is not a multiple of `stride` is edge-padded (the padding is cut
    off again at the end); a `radius` whose window holds the whole feature map (radius >= max(h, w) - 1,
    e.g. 12 on a small video) is propagated globally, which has the same candidates
    (`propagation_window`). Every frame of one video must have the same size; videos may differ in size
    and length between calls (each new feature-map shape and memory size compiles once).

    Args:
      features_fn: frames float32 [B, Hp, Wp, 3] RGB in [0, 1] (B <= `chunk`; Hp, Wp = H, W rounded up to
        multiples of `stride`) -> features [B, Hp / stride, Wp / stride, C], used as both query and key,
        or a pair (query features, key features) of that shape. Any JAX function; jit it (e.g.
        `jax.jit(functools.partial(model.apply, variables))`) for speed: it is called as it is.
      frames: T >= 1 frames, each float [H, W, 3] RGB in [0, 1] (a list, or an array [T, H, W, 3]).
      first_mask: int [H, W] object ids of frame 0 (0 = background, 1..N objects); at least one object.
      num_objects: N >= 1, the declared object count (ids above it are an error); default first_mask.max().
      stride: the features' output stride in pixels (>= 1): 4 for MAST's ResNet, the patch size for a ViT.
      long_term: absolute memory frame indices (see `ops.memory_frames`).
      short_term: memory offsets back from the query frame (>= 1).
      radius: window radius in feature cells (>= 0), or None for every position of every memory frame.
      temperature: > 0, divides the dot products (learned vos features: vos.temperature sqrt(C)).
      top_k: keep only the k largest affinities per position (over all memory frames), or None.
      normalize: L2-normalise the features over C first (cosine affinities, as DINO).
      chunk: frames per `features_fn` call (>= 1).

    Returns:
      (ids int32 [T, H, W], the predicted object of every pixel, frame 0 = `first_mask`; soft float32
      [T, h, w, N + 1], the propagated soft masks on the feature grid, h = ceil(H / stride), w = ceil(W /
      stride), frame 0 the pooled one-hot first mask).

    Raises:
      ValueError: for frames of different sizes, a first mask of another size or not of integers, ids
        outside [0, N], a first frame without any object, features of the wrong shape, or a stride, chunk,
        radius, temperature or top_k out of range.
    """
    frames, first_mask, num_objects = _check_video(frames, first_mask, num_objects)
    for name, value, minimum in (("stride", stride, 1), ("chunk", chunk, 1)):
        if isinstance(value, bool) or int(value) != value or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    if radius is not None and (isinstance(radius, bool) or int(radius) != radius or radius < 0):
        raise ValueError(f"radius must be an int >= 0 or None; got {radius!r}.")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None; got {top_k!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}.")
    stride, chunk = int(stride), int(chunk)
    height, width = first_mask.shape
    video = _pad_to_stride(jnp.asarray(np.stack(frames)), 1, stride)
    grid = (video.shape[1] // stride, video.shape[2] // stride)
    queries, keys = [], []
    for start in range(0, len(frames), chunk):
        out = features_fn(video[start : start + chunk])
        query, key = out if isinstance(out, tuple) else (out, out)
        count = min(chunk, len(frames) - start)
        for name, value in (("query", query), ("key", key)):
            if jnp.ndim(value) != 4 or tuple(jnp.shape(value)[:3]) != (count, *grid):
                raise ValueError(
                    f"features_fn must map frames {tuple(video[start : start + chunk].shape)} to {name} features "
                    f"[{count}, {grid[0]}, {grid[1]}, C] (stride {stride}); got shape {jnp.shape(value)}."
                )
        if jnp.shape(query)[-1] != jnp.shape(key)[-1]:
            raise ValueError(f"query and key features must have the same C; got {query.shape} and {key.shape}.")
        queries.append(jnp.asarray(query, jnp.float32))
        keys.append(jnp.asarray(key, jnp.float32))
    queries, keys = jnp.concatenate(queries), jnp.concatenate(keys)
    if normalize:
        queries = queries / jnp.maximum(jnp.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
        keys = keys / jnp.maximum(jnp.linalg.norm(keys, axis=-1, keepdims=True), 1e-12)
    one_hot = jax.nn.one_hot(jnp.asarray(first_mask), num_objects + 1, dtype=jnp.float32)
    soft = [_average_pool(_pad_to_stride(one_hot, 0, stride), stride)]
    temperature = jnp.float32(temperature)
    for t in range(1, len(frames)):
        memory = np.array(memory_frames(t, long_term=tuple(long_term), short_term=tuple(short_term)))
        window, kept = propagation_window(radius, *grid, top_k, len(memory))
        labels = jnp.stack([soft[m] for m in memory])
        soft.append(_propagate(queries[t], keys[memory], labels, temperature, radius=window, top_k=kept))
    ids = [jnp.asarray(first_mask, jnp.int32)] + [
        _readout(s, height=height, width=width, stride=stride) for s in soft[1:]
    ]
    return np.asarray(jnp.stack(ids)), np.asarray(jnp.stack(soft))


def davis_summary(j_sequences: Sequence[np.ndarray], f_sequences: Sequence[np.ndarray]) -> dict[str, float]:
    """DAVIS metrics over objects: per-object `metrics.davis_statistics`, averaged over the objects.

    Args:
      j_sequences: one [n_o] sequence of J per object o (the evaluated frames, in order).
      f_sequences: the matching [n_o] sequences of F.

    Returns:
      {"j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay", "j_and_f_mean", "num_objects"}.

    Raises:
      ValueError: with no object, or when a score is NaN (a video whose masks the batched `eval_step`
        found invalid).
    """
    if len(j_sequences) != len(f_sequences) or not j_sequences:
        raise ValueError(
            f"expected as many J as F sequences, at least one; got {len(j_sequences)} and {len(f_sequences)}."
        )
    summary: dict[str, float] = {}
    for name, sequences in (("j", j_sequences), ("f", f_sequences)):
        if any(np.isnan(np.asarray(s)).any() for s in sequences):
            raise ValueError(f"{name.upper()} holds NaN: a video had mask ids above its declared object count.")
        stats = np.array([metrics.davis_statistics(s) for s in sequences])  # [objects, 3]
        summary.update({f"{name}_{stat}": float(v) for stat, v in zip(_STATISTICS, stats.mean(axis=0))})
    summary["j_and_f_mean"] = (summary["j_mean"] + summary["f_mean"]) / 2.0
    summary["num_objects"] = len(j_sequences)
    return summary


class _KeepFrames(grain.transforms.Map):
    """Grain transform keeping only `frames` (the self-supervised training needs no masks or names)."""

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        return {"frames": element["frames"]}

    def __repr__(self) -> str:
        return "_KeepFrames()"


class VosMethod(Method):
    """MAST / Zhu et al. colour-propagation training and DAVIS-protocol evaluation (see the module docstring)."""

    name = "vos"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        vos, data = config.vos, config.data
        if vos.features not in FEATURES:
            raise ValueError(f"vos.features must be one of {FEATURES}; got {vos.features!r}.")
        self.clip_length, self.references = training_references(
            vos.mode, vos.clip_length, vos.long_term, vos.short_term
        )
        if not 0.0 <= vos.momentum < 1.0:
            raise ValueError(f"vos.momentum must be in [0, 1) (0 = no momentum encoder); got {vos.momentum}.")
        if data.image_size % STRIDE:
            raise ValueError(f"data.image_size must be a multiple of {STRIDE}; got {data.image_size}.")
        if not 0 <= vos.train_radius < data.image_size // STRIDE:
            raise ValueError(
                f"vos.train_radius must be in [0, data.image_size / {STRIDE} = {data.image_size // STRIDE}); "
                f"got {vos.train_radius}."
            )
        if vos.eval_radius < 0 or vos.temperature <= 0 or vos.raw_lab_temperature <= 0:
            raise ValueError(
                "vos.eval_radius must be >= 0 and vos.temperature, vos.raw_lab_temperature > 0; got "
                f"{vos.eval_radius}, {vos.temperature}, {vos.raw_lab_temperature}."
            )
        if config.model.architecture == "small":
            self.encoder: ResNetStride4 = small_resnet_stride4(config.model.out_features)
        elif config.model.architecture == "resnet18":
            self.encoder = resnet18_stride4(config.model.out_features)
        else:
            raise ValueError(f"model.architecture must be one of {ARCHITECTURES}; got {config.model.architecture!r}.")
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)
        self._sources: dict[str, Any] = {}
        self._train_source()  # an unknown or unbuilt dataset fails here, before anything is compiled
        self._eval_source()
        self._encode_jit = jax.jit(self._encode)
        self._scores_jit = jax.jit(self._scores, static_argnames=("num_objects",))

    # ----------------------------------------------------------------------------------------------
    # Training.

    @property
    def uses_momentum(self) -> bool:
        """Whether the references are encoded by a momentum key encoder (`vos.momentum` > 0)."""
        return self.config.vos.momentum > 0

    def init_state(self, rng: jax.Array) -> TrainState | VosState:
        size = self.config.data.image_size
        params = self.encoder.init(rng, jnp.zeros([1, size, size, 3], jnp.float32))["params"]
        state = TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.optimizer.init(params))
        if not self.uses_momentum:
            return state
        return VosState(step=state.step, params=params, opt_state=state.opt_state,
                        key_params=jax.tree.map(jnp.copy, params))

    def features(self, params: Any, lab: jnp.ndarray) -> jnp.ndarray:
        """Encoder features of normalised-Lab images [B, H, W, 3] (H, W multiples of 4): [B, H/4, W/4, C]."""
        return self.encoder.apply({"params": params}, lab)

    @property
    def train_temperature(self) -> float:
        """The softmax temperature of learned features: vos.temperature * sqrt(C)."""
        return self.config.vos.temperature * math.sqrt(self.config.model.out_features)

    def loss_fn(
        self, params: Any, key_params: Any, frames: jnp.ndarray, rng: jax.Array
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Colour-reconstruction loss of clips `frames` [B, T, H, W, 3] (RGB in [0, 1]; query = frame T - 1).

        `key_params` encodes the reference frames (None: `params`, with gradients). Returns the loss and
        {"reconstruction_l1": mean |prediction - target| of the dropped channel, normalised Lab units}.
        """
        batch, length, height, width, _ = frames.shape
        lab = normalized_lab(frames)
        channel = jax.random.randint(rng, (batch,), 1, 3)  # 1 = a, 2 = b
        inputs = channel_dropout(lab, channel)
        chosen = jax.nn.one_hot(channel, 3, dtype=lab.dtype)[:, None, None, None, :]  # [B, 1, 1, 1, 3]
        dropped = jnp.sum(lab * chosen, axis=-1, keepdims=True)  # [B, T, H, W, 1], the un-dropped values
        refs = np.array(self.references)
        query = self.features(params, inputs[:, length - 1])  # [B, h, w, C]
        ref_inputs = inputs[:, refs].reshape(batch * len(refs), height, width, 3)
        if key_params is None:
            keys = self.features(params, ref_inputs)
        else:
            keys = jax.lax.stop_gradient(self.features(key_params, ref_inputs))
        keys = keys.reshape(batch, len(refs), *keys.shape[1:])
        labels = jax.lax.stop_gradient(_average_pool(dropped[:, refs]))  # [B, M, h, w, 1]
        propagate = functools.partial(
            propagate_labels, radius=self.config.vos.train_radius, temperature=self.train_temperature
        )
        reconstruction = jax.vmap(propagate)(query, keys, labels)  # [B, h, w, 1]
        prediction = _upsample(reconstruction, height, width)
        target = dropped[:, length - 1]
        scale = self.config.vos.loss_scale
        loss = jnp.mean(optax.huber_loss(scale * prediction, scale * target, delta=1.0))
        return loss, {"reconstruction_l1": jnp.mean(jnp.abs(prediction - target))}

    def train_step(
        self,
        state: TrainState | VosState,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[TrainState | VosState, dict[str, jax.Array]]:
        del frozen, phase
        key_params = state.key_params if self.uses_momentum else None
        (loss, parts), grads = jax.value_and_grad(self.loss_fn, has_aux=True)(
            state.params, key_params, batch["frames"], rng
        )
        grads = mean_over_axis(grads, axis_name)
        new_state = apply_gradients(state, grads, self.optimizer).replace(step=state.step + 1)
        if self.uses_momentum:
            new_state = new_state.replace(
                key_params=momentum_update(state.key_params, new_state.params, self.config.vos.momentum)
            )
        step_metrics = mean_over_axis({"loss": loss, **parts}, axis_name)
        step_metrics["grad_norm"] = optax.tree.norm(grads)
        return new_state, step_metrics

    # ----------------------------------------------------------------------------------------------
    # Propagation of the first frame's masks through a whole video.

    def _encode(self, params: Any, frames: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(query features, key features), each [T, h, w, D], of frames [T, H, W, 3] padded to multiples of 4.

        learned: both are the encoder's features (D = C). raw_lab: the 4 x 4-cell mean Lab colour c with
        query [c, 1] and key [c, -|c|^2 / 2], so dot(query, key) = -|c_q - c_k|^2 / 2 + |c_q|^2 / 2 and the
        softmax over keys is a Gaussian kernel of the colour distance (D = 4).
        """
        lab = normalized_lab(frames)
        if self.config.vos.features == "learned":
            feats = self.features(params, lab)
            return feats, feats
        colour = _average_pool(lab)
        ones = jnp.ones_like(colour[..., :1])
        return (
            jnp.concatenate([colour, ones], axis=-1),
            jnp.concatenate([colour, -0.5 * jnp.sum(colour**2, axis=-1, keepdims=True)], axis=-1),
        )

    @property
    def eval_temperature(self) -> float:
        """The test-time temperature: vos.temperature sqrt(C) (learned) or vos.raw_lab_temperature."""
        if self.config.vos.features == "raw_lab":
            return self.config.vos.raw_lab_temperature
        return self.train_temperature

    def _propagate(self, query: jnp.ndarray, keys: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        """One frame of the batched `eval_step` path (traced): `propagate_video`'s step with this config."""
        radius, top_k = propagation_window(
            self.config.vos.eval_radius, *query.shape[:2], self.config.vos.eval_top_k, keys.shape[0]
        )
        return propagate_labels(query, keys, labels, radius=radius, temperature=self.eval_temperature, top_k=top_k)

    @staticmethod
    def _scores(prediction: jnp.ndarray, masks: jnp.ndarray, *, num_objects: int) -> tuple[jnp.ndarray, jnp.ndarray]:
        """J and F, each [N, T], of predicted and true ids [T, H, W] for objects 1..N."""
        ids = jnp.arange(1, num_objects + 1)[:, None, None, None]
        predicted, true = prediction[None] == ids, masks[None] == ids
        return metrics.region_jaccard(predicted, true), metrics.boundary_f(predicted, true)

    def segment_video(
        self, params: Any, frames: Sequence[np.ndarray] | np.ndarray, first_mask: np.ndarray, num_objects: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Propagates the first frame's object masks through a whole video with this method's features.

        `propagate_video` with the encoder of `params` (or raw_lab features), stride 4, `vos.long_term`,
        `vos.short_term`, `vos.eval_radius`, `vos.eval_top_k`, `eval_temperature` and `vos.encode_chunk`.

        Args:
          params: the encoder's parameters (unused by raw_lab features).
          frames: T frames, each float [H, W, 3] RGB in [0, 1] (a list, or an array [T, H, W, 3]); any T >= 1,
            H, W >= 1; every frame of the video the same size.
          first_mask: int [H, W] object ids of frame 0 (0 = background, 1..N objects).
          num_objects: N >= 1, the video's declared object count.

        Returns:
          (ids int32 [T, H, W], the predicted object of every pixel (frame 0: `first_mask`); soft float32
          [T, h, w, N + 1], the propagated soft masks on the feature grid, h = ceil(H / 4), w = ceil(W / 4)).

        Raises:
          ValueError: for frames of different sizes, a first mask of another size, ids outside [0, N], or a
            first frame without any object.
        """
        vos = self.config.vos
        return propagate_video(
            functools.partial(self._encode_jit, params), frames, first_mask, num_objects,
            stride=STRIDE, long_term=tuple(vos.long_term), short_term=tuple(vos.short_term),
            radius=vos.eval_radius, temperature=self.eval_temperature, top_k=vos.eval_top_k,
            chunk=max(1, int(vos.encode_chunk)),
        )

    def video_scores(
        self, params: Any, frames: np.ndarray, masks: np.ndarray, num_objects: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """J and F of one video under the semi-supervised DAVIS protocol.

        Args:
          params: the encoder's parameters.
          frames: float [T, H, W, 3] RGB in [0, 1] (or a list of T frames [H, W, 3]), T >= 3.
          masks: int [T, H, W] true object ids (0 = background); masks[0] is the given annotation.
          num_objects: N, the declared object count (ids above it are an error).

        Returns:
          (J float32 [N, T - 2], F float32 [N, T - 2] for frames 1..T-2 (DAVIS leaves out the first and the
          last frame), predicted ids int32 [T, H, W]).

        Raises:
          ValueError: for fewer than 3 frames, masks not of the frames' size, ids outside [0, N], or (see
            `segment_video`) frames of different sizes or an empty first frame.
        """
        masks = np.asarray(masks)
        if len(frames) < 3:
            raise ValueError(f"a video needs at least 3 frames (DAVIS scores frames 1..T-2); got {len(frames)}.")
        if masks.ndim != 3 or len(masks) != len(frames) or masks.shape[1:] != np.shape(frames[0])[:2]:
            raise ValueError(
                f"masks must have shape [T, H, W] = {(len(frames), *np.shape(frames[0])[:2])}; got {masks.shape}."
            )
        if masks.min() < 0 or masks.max() > num_objects:
            frame = int(np.argmax(masks.reshape(len(masks), -1).max(axis=1) > num_objects))
            raise ValueError(
                f"mask ids must be in [0, num_objects = {num_objects}]; frame {frame} holds id {masks.max()}."
            )
        prediction, _ = self.segment_video(params, frames, masks[0], num_objects)
        j, f = self._scores_jit(jnp.asarray(prediction), jnp.asarray(masks, jnp.int32), num_objects=num_objects)
        return np.asarray(j)[:, 1:-1], np.asarray(f)[:, 1:-1], prediction

    def evaluate(self, state: Any, frozen: Any, context: EvalContext) -> dict[str, float]:
        """DAVIS J/F mean, recall and decay and J&F mean over every object of every evaluation video."""
        del frozen, context  # one whole video at a time, on the default device of every process
        source = self._eval_source()
        j_sequences, f_sequences = [], []
        for index in range(len(source)):
            video = to_model_inputs(source[index])
            try:
                j, f, _ = self.video_scores(
                    state.params, video["frames"], video["masks"], self._num_objects(video)
                )
            except ValueError as error:
                raise ValueError(f"evaluation video {index} of {source!r}: {error}") from error
            j_sequences.extend(list(j))
            f_sequences.extend(list(f))
        return {**davis_summary(j_sequences, f_sequences), "num_videos": len(source)}

    @property
    def num_eval_videos(self) -> int:
        """The number of evaluation videos (`data.num_test` synthetic ones, or the davis2017 `data.eval_split`)."""
        return len(self._eval_source())

    def predict_eval_video(self, params: Any, index: int) -> dict[str, Any]:
        """The predicted masks of evaluation video `index`, as DAVIS results are written.

        Only the first frame's annotation is read (the semi-supervised protocol); the masks of the other
        frames are never used.

        Args:
          params: the encoder's parameters (unused by raw_lab features).
          index: in [0, `num_eval_videos`).

        Returns:
          {"sequence": the DAVIS sequence name (synthetic videos: f"video_{index:05d}"), "frame_names": T
          frame stems (DAVIS's, e.g. "00000"; synthetic: f"{t:05d}"), "ids": uint8 [T, H, W] predicted object
          ids at the video's own resolution (`segment_video`; frame 0 is the given annotation),
          "num_objects": the declared object count N}.

        Raises:
          ValueError: naming the video, for the bad input `segment_video` rejects.
        """
        source = self._eval_source()
        video = to_model_inputs(source[index])
        num_objects = self._num_objects(video)
        if num_objects > 255:
            raise ValueError(f"evaluation video {index}: {num_objects} objects do not fit 8-bit palette PNGs.")
        try:
            ids, _ = self.segment_video(params, video["frames"], video["masks"][0], num_objects)
        except ValueError as error:
            raise ValueError(f"evaluation video {index} of {source!r}: {error}") from error
        length = len(video["frames"])
        names = video.get("frame_names")
        return {
            "sequence": str(video["sequence"]) if "sequence" in video else f"video_{index:05d}",
            "frame_names": [str(n) for n in names] if names is not None else [f"{t:05d}" for t in range(length)],
            "ids": ids.astype(np.uint8),
            "num_objects": num_objects,
        }

    def eval_step(self, state: Any, batch: Mapping[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Per-video J and F of a batch of same-size videos (the batched path; `evaluate` runs one video
        at a time instead, for videos of any size). Batch: frames float [B, T, H, W, 3], masks int
        [B, T, H, W] with ids in [0, data.num_objects] and an object in every first frame. Returns j, f
        float32 [B, N, T - 2] (frames 1..T-2); a video with an id above N gets NaN, which `summarize` rejects.
        """
        del frozen
        num_objects = self.config.data.num_objects
        height, width = batch["frames"].shape[2:4]

        def one_video(frames, masks):
            video = _pad_to_stride(frames, 1)
            queries, keys = self._encode(state.params, video)
            soft = [_average_pool(_pad_to_stride(jax.nn.one_hot(masks[0], num_objects + 1), 0))]
            vos = self.config.vos
            for t in range(1, frames.shape[0]):
                memory = np.array(memory_frames(t, long_term=tuple(vos.long_term), short_term=tuple(vos.short_term)))
                soft.append(self._propagate(queries[t], keys[memory], jnp.stack([soft[m] for m in memory])))
            ids = jnp.stack(
                [masks[0]] + [_readout(s, height=height, width=width, stride=STRIDE) for s in soft[1:]]
            )
            j, f = self._scores(ids, masks, num_objects=num_objects)
            invalid = jnp.any(masks > num_objects)
            return jnp.where(invalid, jnp.nan, j[:, 1:-1]), jnp.where(invalid, jnp.nan, f[:, 1:-1])

        j, f = jax.vmap(one_video)(batch["frames"], batch["masks"])
        return {"j": j, "f": f}

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """`davis_summary` of `eval_step` outputs j, f [V, N, T - 2]: every (video, object) row is an object."""
        j, f = np.asarray(outputs["j"]), np.asarray(outputs["f"])
        return davis_summary(list(j.reshape(-1, j.shape[-1])), list(f.reshape(-1, f.shape[-1])))

    # ----------------------------------------------------------------------------------------------
    # Data.

    def _memoized(self, source: Any) -> Any:
        key = repr(source)
        if key not in self._sources:
            self._sources[key] = MemoizedSource(source) if isinstance(source, SyntheticObjectVideoSource) else source
        return self._sources[key]

    def _dataset(self, split: str) -> Any:
        data = self.config.data
        if data.source != "davis2017":
            raise ValueError(f"data.source must be 'synthetic' or 'davis2017'; got {data.source!r}.")
        if not data.tfds_data_dir:
            raise ValueError("data.tfds_data_dir must name the TFDS folder davis2017 was built into.")
        from landmarkjax.data.tfds_source import TfdsSource  # imports TFDS: only for real data

        return self._memoized(TfdsSource("davis2017", split=split, data_dir=data.tfds_data_dir))

    def _train_source(self) -> Any:
        data = self.config.data
        if data.source == "synthetic":
            if data.source_frames < self.clip_length:
                raise ValueError(
                    f"data.source_frames must be >= the training clip length {self.clip_length}; got "
                    f"{data.source_frames}."
                )
            return self._memoized(SyntheticObjectVideoSource(
                data.num_train, num_frames=data.source_frames, size=data.source_size,
                num_objects=data.num_objects, seed=data.train_seed,
            ))
        return self._dataset(data.train_split)

    def _eval_source(self) -> Any:
        data = self.config.data
        if data.source == "synthetic":
            return self._memoized(SyntheticObjectVideoSource(
                data.num_test, num_frames=data.eval_frames, size=data.eval_size,
                num_objects=data.num_objects, seed=data.test_seed,
            ))
        return self._dataset(data.eval_split)

    def _num_objects(self, video: Mapping[str, Any]) -> int:
        """The video's declared object count: its record's `num_objects` (DAVIS), else `data.num_objects`."""
        return int(video["num_objects"]) if "num_objects" in video else int(self.config.data.num_objects)

    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Clips: frames float32 [batch_size, T, S, S, 3] in [0, 1] (T the clip length, S = data.image_size),
        random crops (`data.augment.scale_range`) of random clips, mirrored with `flip_probability`."""
        data = self.config.data
        crop = RandomVideoCrop(
            self.clip_length, data.image_size, tuple(data.augment.scale_range), data.augment.flip_probability
        )
        loader = make_loader(
            self._train_source(), batch_size=batch_size, seed=self.config.seed, shuffle=True,
            num_epochs=None, augment=[crop, _KeepFrames()],
        )
        return iter(loader)

    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """The evaluation videos one per batch (they may differ in size and length; `batch_size` is not
        used): frames float32 [1, T, H, W, 3] in [0, 1], masks int32 [1, T, H, W], num_objects int32 [1]."""
        del batch_size
        source = self._eval_source()
        for index in range(len(source)):
            video = to_model_inputs(source[index])
            yield {
                "frames": video["frames"][None],
                "masks": video["masks"][None],
                "num_objects": np.array([self._num_objects(video)], np.int32),
            }

    def visualize(self, state: Any, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        """The first video of `batch`: its first `eval.num_visualized` frames with the true masks (top row)
        and the propagated ones (bottom row) tinted; uint8 [2 rows of frames, 3]."""
        del frozen
        frames, masks = np.asarray(batch["frames"][0]), np.asarray(batch["masks"][0])
        num_objects = int(np.asarray(batch["num_objects"])[0]) if "num_objects" in batch else self.config.data.num_objects
        prediction, _ = self.segment_video(state.params, frames, masks[0], num_objects)
        count = min(self.config.eval.num_visualized, len(frames))
        return contact_sheet(
            np.concatenate([frames[:count], frames[:count]]),
            masks=np.concatenate([masks[:count], prediction[:count]]),
            ncols=count,
        )


def build(config: ml_collections.ConfigDict) -> VosMethod:
    """The vos method for `config` (see `landmarkjax/configs/vos.py`)."""
    return VosMethod(config)
