"""Self-supervised colourisation with a VGG trunk (Zhang et al., ECCV 2016; Larsson et al., CVPR 2017).

The pretext task of the perceptual network the official IMM uses: a VGG sees only the lightness of an
image and predicts its colour. Training needs nothing but images, so the library can make its own
perceptual VGG where no pretrained weights can be downloaded (`landmarkjax.runs.export_vgg_weights`, then
`--config.imm.perceptual=vgg_file --config.imm.vgg_weights_path=... --config.imm.vgg_preprocess=colorization`).

Input. An RGB image in [0, 1] becomes CIE L*a*b* (`landmarkjax.ops.colour.rgb_to_lab`); the network sees
(L* - 50) / 50 replicated into the 3 input channels (`landmarkjax.models.vgg.lightness_input`, the VGG
preset "colorization"). Replicating the grey value, rather than a 1-channel first convolution, keeps the
trunk an ordinary VGG-16 whose weights are a standard torchvision-layout file (`features.0.weight`
`[64, 3, 3, 3]`) that every VGG loader reads; a 1-channel network is the same function (its kernel is the
sum of the three). At IMM time the preset computes the same L* from the RGB images, so the features of an
image and of its grey version are identical. (The official IMM's Caffe network, from Larsson et al., takes
the mean of R, G, B in [0, 1] minus 114.451 / 255 as one channel; the exported file is not that network.)

Network. The VGG trunk (`landmarkjax.models.vgg.VGG`, parameters under "vgg", He-initialised since a
plain 13-layer ReLU stack without normalisation barely passes a signal at the default 1/fan_in scale) and
a hypercolumn head, as Larsson et al.: the last convolutions of blocks 3, 4 and 5 (conv3_3, conv4_3,
conv5_3), resized bilinearly to stride `target_stride` (4) and concatenated, then two 1x1 convolutions
(`head_width`, ReLU; then Q logits). Every trunk layer the IMM loss compares (conv1_2 ... conv5_2) thus
lies on a path to the loss and is trained.

Loss: classification over quantised ab with class rebalancing (Zhang et al.), not regression. The ab
plane is cut into cells of `bin_size` (10) and the Q cells that contain an sRGB colour for some L* are
the classes (`ab_bins`: 262 with bin 10; Zhang et al.'s 313 are the cells their ImageNet
images filled, a slightly different gamut). The target at each stride-4 cell (the mean ab of
its pixels) is soft-encoded over its `soft_neighbours` (5) nearest bin centres with Gaussian weights
(sigma 5). The loss is the cross-entropy weighted per cell by w[nearest bin], where
w ~ 1 / ((1 - lambda) p_smooth + lambda / Q), lambda = 0.5, normalised so E_p[w] = 1, and p_smooth is the
bin frequency over `prior_images` training images smoothed by a Gaussian of sigma 5 in ab
(`class_rebalancing_weights`). Why: an L2 or Huber regression on ab is minimised by the conditional mean,
which for multi-modal colours (a shirt that may be red or blue) is a desaturated grey-brown, and the
rare saturated colours barely move the loss; the rebalanced classification keeps rare colours and their
modes in the gradient, which is what forces the trunk to recognise what it sees (Zhang et al. report
better transfer for it than for regression). The prior and the bins are FROZEN INPUTS
(`frozen_inputs()`), computed once when the method is built.

Evaluation on held-out images: the predicted ab is the annealed mean of the bin distribution
(temperature 0.38, Zhang's), upsampled bilinearly to full resolution and combined with the true L*;
reported are `ab_error` (mean Euclidean ab error per pixel, Lab units), `zero_ab_error` (the same for
predicting grey, a = b = 0: the trivial baseline), `bin_accuracy` (nearest bin of the target = argmax at
stride 4), and the colourfulness (Hasler & Suesstrunk, 2003, on 0-255 RGB) of the colourised images
against that of the originals (`colourfulness`, `true_colourfulness`, `colourfulness_ratio`).

Data (`data.source`): "synthetic" (procedural faces, cropped around the face box as IMM crops them; the
default), "images" (every file matching the glob `data.image_glob`, sorted; the last `data.num_test` are
held out; central square crops) or "tfds" (any built TFDS dataset with an `image` feature,
`data.tfds_name`, `data.tfds_data_dir`, splits `data.train_split` / `data.eval_split`; face-box crops when
its records have a face box).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterable, Iterator, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax.data.image_folder import ImageFolderSource, SquareCrop
from landmarkjax.data.pipeline import make_loader, one_pass_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticFaceSource
from landmarkjax.data.visualize import contact_sheet
from landmarkjax.methods.semisup import PrefixSource
from landmarkjax.models.vgg import VGG, VGG_BLOCK_DEPTHS, lightness_input, save_vgg_params
from landmarkjax.ops.colour import lab_to_rgb, rgb_to_lab
from landmarkjax.training.method import Method, TrainState, gradient_step
from landmarkjax.training.optimizers import make_optimizer

__all__ = [
    "ColorizationMethod",
    "ColorizationNet",
    "DATA_SOURCES",
    "ab_bins",
    "annealed_mean",
    "build",
    "class_rebalancing_weights",
    "colourfulness",
    "hypercolumn_layers",
    "pooled_ab",
    "soft_encode",
]

DATA_SOURCES = ("synthetic", "images", "tfds")


# ---- quantised ab, soft encoding, rebalancing, decoding (pure functions) --------------------------------
def ab_bins(bin_size: float = 10.0, extent: float = 110.0) -> np.ndarray:
    """The centres of the in-gamut cells of a square grid over the ab plane.

    Cells have side `bin_size` and centres at multiples of it within [-extent, extent]; a cell is kept
    when some colour in it (a 5 x 5 grid of points across the cell) is an sRGB colour (each channel in
    [0, 1]) for some L* in 0, 1, ..., 100. The defaults give 262 bins (Zhang et al. keep the 313 cells
    that ImageNet colours fall in).

    Returns:
      float32 `[Q, 2]` (a*, b*) bin centres, ordered by a* then b*.
    """
    if not bin_size > 0 or not extent >= 0:
        raise ValueError(f"bin_size must be > 0 and extent >= 0; got {bin_size!r}, {extent!r}.")
    return _ab_bins(float(bin_size), float(extent)).copy()


@functools.lru_cache(maxsize=8)
def _ab_bins(bin_size: float, extent: float) -> np.ndarray:
    """`ab_bins`' computation, cached (it converts about a million Lab colours)."""
    steps = np.arange(-np.floor(extent / bin_size), np.floor(extent / bin_size) + 1) * bin_size
    a, b = np.meshgrid(steps, steps, indexing="ij")
    centres = np.stack([a.ravel(), b.ravel()], axis=-1)
    offsets = np.linspace(-0.5, 0.5, 5) * bin_size * 0.999
    da, db = np.meshgrid(offsets, offsets, indexing="ij")
    samples = centres[:, None, :] + np.stack([da.ravel(), db.ravel()], -1)[None]  # [N, 25, 2]
    lightness = np.arange(0.0, 101.0)
    lab = np.concatenate(
        [
            np.broadcast_to(lightness[:, None, None, None], (len(lightness),) + samples.shape[:2] + (1,)),
            np.broadcast_to(samples[None], (len(lightness),) + samples.shape),
        ],
        axis=-1,
    )
    rgb = np.asarray(lab_to_rgb(lab.astype(np.float32)))
    in_gamut = np.all((rgb >= -1e-4) & (rgb <= 1 + 1e-4), axis=-1).any(axis=(0, 2))
    return centres[in_gamut].astype(np.float32)



def pooled_ab(images: jnp.ndarray, stride: int) -> jnp.ndarray:
    """`[B, H, W, 3]` RGB in [0, 1] -> `[B, H / stride, W / stride, 2]` mean (a*, b*) of each stride x
    stride cell (H and W divisible by `stride`)."""
    lab = rgb_to_lab(jnp.asarray(images, jnp.float32))
    batch, height, width, _ = lab.shape
    ab = lab[..., 1:].reshape(batch, height // stride, stride, width // stride, stride, 2)
    return ab.mean(axis=(2, 4))


def _squared_distances(ab: jnp.ndarray, centres: jnp.ndarray) -> jnp.ndarray:
    """`[..., 2]`, `[Q, 2]` -> `[..., Q]` squared Euclidean distances in the ab plane."""
    return jnp.sum(jnp.square(ab[..., None, :] - centres), axis=-1)


def soft_encode(ab: jnp.ndarray, centres: jnp.ndarray, neighbours: int = 5, sigma: float = 5.0) -> jnp.ndarray:
    """Zhang et al.'s soft encoding of ab values over the bins.

    Args:
      ab: `[..., 2]` (a*, b*).
      centres: `[Q, 2]` bin centres (`ab_bins`).
      neighbours: how many nearest centres share the mass.
      sigma: std of the Gaussian weights exp(-d^2 / (2 sigma^2)), ab units.

    Returns:
      `[..., Q]` float32 distributions (non-negative, summing to 1), non-zero at the `neighbours` nearest
      centres only.
    """
    centres = jnp.asarray(centres, jnp.float32)
    neighbours = min(int(neighbours), centres.shape[0])
    squared = _squared_distances(jnp.asarray(ab, jnp.float32), centres)
    negative, index = jax.lax.top_k(-squared, neighbours)
    weights = jnp.exp((negative - jnp.max(negative, axis=-1, keepdims=True)) / (2.0 * sigma**2))
    weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return jnp.sum(jax.nn.one_hot(index, centres.shape[0], dtype=jnp.float32) * weights[..., None], axis=-2)


def class_rebalancing_weights(
    counts: np.ndarray, centres: np.ndarray, sigma: float = 5.0, mix: float = 0.5
) -> np.ndarray:
    """Zhang et al.'s class-rebalancing weights from bin counts.

    p = counts / sum, smoothed by a Gaussian of std `sigma` over the ab plane (each bin's mass spread over
    the bins in proportion to exp(-d^2 / (2 sigma^2)), so the total stays 1); then
    w_q = 1 / ((1 - mix) p_q + mix / Q), scaled so that sum_q p_q w_q = 1.

    Args:
      counts: `[Q]` non-negative counts (pixels whose nearest bin is q), not all zero.
      centres: `[Q, 2]` bin centres.
      sigma: smoothing std, ab units (0: no smoothing).
      mix: lambda, the weight of the uniform distribution, in [0, 1].

    Returns:
      float32 `[Q]` positive weights.
    """
    counts = np.asarray(counts, np.float64)
    centres = np.asarray(centres, np.float64)
    if counts.ndim != 1 or counts.shape[0] != centres.shape[0] or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(
            f"counts must be [Q] non-negative, not all zero, with Q = {centres.shape[0]}; got {counts.shape}."
        )
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix (lambda) must be in [0, 1]; got {mix!r}.")
    prior = counts / counts.sum()
    if sigma > 0:
        squared = np.sum(np.square(centres[:, None, :] - centres[None, :, :]), axis=-1)
        kernel = np.exp(-squared / (2.0 * sigma**2))
        prior = (kernel / kernel.sum(axis=0, keepdims=True)) @ prior
    weights = 1.0 / ((1.0 - mix) * prior + mix / len(prior))
    return (weights / np.sum(prior * weights)).astype(np.float32)


def annealed_mean(logits: jnp.ndarray, centres: jnp.ndarray, temperature: float = 0.38) -> jnp.ndarray:
    """`[..., Q]` logits -> `[..., 2]` ab: the mean of the bin centres under softmax(log p / T) with
    p = softmax(logits) (Zhang et al.'s annealed mean; T = 1 is the mean, T -> 0 the mode)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}.")
    annealed = jax.nn.softmax(jax.nn.log_softmax(logits, axis=-1) / temperature, axis=-1)
    return annealed @ jnp.asarray(centres, annealed.dtype)


def colourfulness(images: jnp.ndarray) -> jnp.ndarray:
    """Hasler & Suesstrunk's (2003) colourfulness M of `[B, H, W, 3]` RGB images in [0, 1] -> `[B]`:
    with rg = R - G and yb = (R + G) / 2 - B on the 0-255 scale, M = sqrt(std(rg)^2 + std(yb)^2) +
    0.3 sqrt(mean(rg)^2 + mean(yb)^2) over each image's pixels (0 for grey images)."""
    rgb = 255.0 * jnp.asarray(images, jnp.float32)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    axes = (-2, -1)
    spread = jnp.sqrt(jnp.var(rg, axis=axes) + jnp.var(yb, axis=axes))
    centre = jnp.sqrt(jnp.square(jnp.mean(rg, axis=axes)) + jnp.square(jnp.mean(yb, axis=axes)))
    return spread + 0.3 * centre


def hypercolumn_layers(depth: int) -> tuple[str, str, str]:
    """The last convolution of blocks 3, 4 and 5 of VGG-`depth` (conv3_3, conv4_3, conv5_3 for 16)."""
    blocks = VGG_BLOCK_DEPTHS[depth]
    return tuple(f"conv{block}_{blocks[block - 1]}" for block in (3, 4, 5))


class ColorizationNet(nn.Module):
    """VGG trunk + hypercolumn head: `[B, H, W, 3]` lightness input -> `[B, H / s, W / s, Q]` logits.

    Attributes:
      num_bins: Q.
      depth: 16 or 19 (the trunk's parameters live under "vgg", named as `landmarkjax.models.vgg.VGG`).
      head_width: channels of the hidden 1x1 convolution.
      stride: s, the output stride (the hypercolumn is resized to H / s x W / s).
    """

    num_bins: int
    depth: int = 16
    head_width: int = 256
    stride: int = 4

    @nn.compact
    def __call__(self, inputs: jnp.ndarray) -> jnp.ndarray:
        features = VGG(self.depth, hypercolumn_layers(self.depth), name="vgg")(inputs)
        batch, height, width, _ = inputs.shape
        size = (height // self.stride, width // self.stride)
        columns = [
            value if value.shape[1:3] == size else jax.image.resize(value, (batch, *size, value.shape[-1]), "linear")
            for value in features.values()
        ]
        hidden = nn.relu(nn.Conv(self.head_width, (1, 1), name="head_hidden")(jnp.concatenate(columns, axis=-1)))
        return nn.Conv(self.num_bins, (1, 1), name="head_logits")(hidden)


class ColorizationMethod(Method):
    """Colourisation (see the module docstring). Built by `build(config)`."""

    name = "colorization"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        data, settings, model = config.data, config.colorization, config.model
        if data.source not in DATA_SOURCES:
            raise ValueError(f"data.source must be one of {DATA_SOURCES}; got {data.source!r}.")
        if model.vgg_depth not in VGG_BLOCK_DEPTHS:
            raise ValueError(f"model.vgg_depth must be 16 or 19; got {model.vgg_depth!r}.")
        self.stride = int(settings.target_stride)
        if self.stride not in (1, 2, 4, 8, 16):
            raise ValueError(f"colorization.target_stride must be 1, 2, 4, 8 or 16; got {settings.target_stride!r}.")
        if data.image_size % 16:
            raise ValueError(f"data.image_size must be a multiple of 16 (VGG's five blocks); got {data.image_size}.")
        self.centres = ab_bins(settings.bin_size)
        self.model = ColorizationNet(len(self.centres), model.vgg_depth, model.head_width, self.stride)
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)
        self._sources: dict[str, Any] = {}
        self._train_source()  # a missing folder or dataset fails here
        self._eval_source()
        self.weights = self._rebalancing_weights()

    # ---- data ------------------------------------------------------------------------------------------
    def _image_files(self, split: str) -> ImageFolderSource:
        data = self.config.data
        if not data.image_glob:
            raise ValueError("data.source='images' needs data.image_glob, a glob pattern such as '/data/photos/*.jpg'.")
        every = ImageFolderSource(data.image_glob)
        if len(every) <= data.num_test:
            raise ValueError(
                f"data.image_glob={data.image_glob!r} matches {len(every)} files; the last data.num_test="
                f"{data.num_test} are held out, so it needs more than that."
            )
        if split == "train":
            return ImageFolderSource(data.image_glob, stop=len(every) - data.num_test)
        return ImageFolderSource(data.image_glob, start=len(every) - data.num_test)

    def _source(self, split: str) -> Any:
        if split in self._sources:
            return self._sources[split]
        data = self.config.data
        if data.source == "synthetic":
            count, seed = (data.num_train, data.train_seed) if split == "train" else (data.num_test, data.test_seed)
            source = MemoizedSource(SyntheticFaceSource(count, size=data.source_size, seed=seed))
        elif data.source == "images":
            source = self._image_files(split)
        else:
            from landmarkjax.data.tfds_source import TfdsSource  # TFDS only when asked for

            if not data.tfds_name or not data.tfds_data_dir:
                raise ValueError("data.source='tfds' needs data.tfds_name and data.tfds_data_dir (a built dataset).")
            name = data.train_split if split == "train" else data.eval_split
            source = TfdsSource(data.tfds_name, split=name, data_dir=data.tfds_data_dir, config=data.tfds_config)
        self._sources[split] = source
        return source

    def _train_source(self) -> Any:
        return self._source("train")

    def _eval_source(self) -> Any:
        return self._source("eval")

    def _crop(self) -> SquareCrop:
        return SquareCrop(self.config.data.image_size, self.config.data.crop_margin)

    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """`image` float32 `[B, S, S, 3]` in [0, 1] (S = data.image_size), shuffled, forever."""
        return iter(
            make_loader(self._train_source(), batch_size=batch_size, seed=self.config.seed, augment=self._crop())
        )

    def _one_pass(self, source: Any, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        return one_pass_loader(source, batch_size=batch_size, seed=self.config.seed, augment=self._crop())

    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """One pass over the held-out images, `image` float32 `[B, S, S, 3]`."""
        return self._one_pass(self._eval_source(), batch_size)

    def _rebalancing_weights(self) -> np.ndarray:
        """`[Q]` weights from the bin counts of the first `colorization.prior_images` training images."""
        settings = self.config.colorization
        source = self._train_source()
        source = PrefixSource(source, min(int(settings.prior_images), len(source)))
        centres = jnp.asarray(self.centres)

        @jax.jit
        def nearest_counts(images):
            nearest = jnp.argmin(_squared_distances(pooled_ab(images, self.stride), centres), axis=-1)
            return jnp.bincount(nearest.ravel(), length=centres.shape[0])

        counts = np.zeros(len(self.centres), np.int64)
        for batch in self._one_pass(source, 32):
            counts += np.asarray(nearest_counts(batch["image"]))
        return class_rebalancing_weights(counts, self.centres, settings.prior_sigma, settings.rebalance_mix)

    # ---- state, step ------------------------------------------------------------------------------------
    def frozen_inputs(self) -> dict[str, np.ndarray]:
        """{"centres": `[Q, 2]` ab bin centres, "weights": `[Q]` class-rebalancing weights}."""
        return {"centres": self.centres, "weights": self.weights}

    def init_state(self, rng: jax.Array) -> TrainState:
        size = self.config.data.image_size
        model_rng, trunk_rng = jax.random.split(rng)
        params = self.model.init(model_rng, jnp.zeros([1, size, size, 3], jnp.float32))["params"]
        he_normal = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
        names = sorted(params["vgg"])
        keys = jax.random.split(trunk_rng, len(names))
        params["vgg"] = {
            name: {**params["vgg"][name], "kernel": he_normal(key, params["vgg"][name]["kernel"].shape)}
            for name, key in zip(names, keys)
        }
        return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def loss_fn(self, params: Any, images: jax.Array, frozen: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(loss, parts): the rebalanced soft cross-entropy of `[B, H, W, 3]` images (module docstring)."""
        settings = self.config.colorization
        logits = self.model.apply({"params": params}, lightness_input(images))
        ab = pooled_ab(images, self.stride)
        targets = soft_encode(ab, frozen["centres"], settings.soft_neighbours, settings.soft_sigma)
        weights = jnp.asarray(frozen["weights"])[jnp.argmax(targets, axis=-1)]
        cross_entropy = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1))
        return jnp.mean(weights * cross_entropy), {"cross_entropy": jnp.mean(cross_entropy), "bin_accuracy": accuracy}

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
        del rng, phase
        return gradient_step(state, self.loss_fn, self.optimizer, batch["image"], frozen, axis_name=axis_name)

    # ---- prediction and evaluation ----------------------------------------------------------------------
    def colorize(self, params: Any, images: jax.Array, frozen: Any) -> dict[str, jax.Array]:
        """Colourises the grey version of `[B, H, W, 3]` RGB images in [0, 1].

        Returns:
          "logits" `[B, H / s, W / s, Q]`, "ab" `[B, H, W, 2]` (annealed mean, upsampled bilinearly) and
          "rgb" `[B, H, W, 3]` in [0, 1] (true L* with the predicted ab, clipped to the sRGB cube).
        """
        logits = self.model.apply({"params": params}, lightness_input(images))
        coarse = annealed_mean(logits, frozen["centres"], self.config.colorization.temperature)
        batch, height, width, _ = images.shape
        ab = jax.image.resize(coarse, (batch, height, width, 2), "linear")
        lab = jnp.concatenate([rgb_to_lab(images)[..., :1], ab], axis=-1)
        return {"logits": logits, "ab": ab, "rgb": jnp.clip(lab_to_rgb(lab), 0.0, 1.0)}

    def eval_step(self, state: TrainState, batch: Mapping[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Per image `[B]`: ab_error, zero_ab_error (Lab units), bin_accuracy, colourfulness of the
        colourised and of the true image."""
        images = batch["image"]
        outputs = self.colorize(state.params, images, frozen)
        true_ab = rgb_to_lab(images)[..., 1:]
        nearest = jnp.argmin(_squared_distances(pooled_ab(images, self.stride), frozen["centres"]), axis=-1)
        return {
            "ab_error": jnp.mean(jnp.linalg.norm(outputs["ab"] - true_ab, axis=-1), axis=(1, 2)),
            "zero_ab_error": jnp.mean(jnp.linalg.norm(true_ab, axis=-1), axis=(1, 2)),
            "bin_accuracy": jnp.mean(jnp.argmax(outputs["logits"], axis=-1) == nearest, axis=(1, 2)),
            "colourfulness": colourfulness(outputs["rgb"]),
            "true_colourfulness": colourfulness(images),
        }

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Means over the images, `colourfulness_ratio` (colourised / true) and `num_examples`."""
        summary = {key: float(np.mean(value)) for key, value in outputs.items()}
        summary["colourfulness_ratio"] = summary["colourfulness"] / max(summary["true_colourfulness"], 1e-12)
        summary["num_examples"] = int(len(next(iter(outputs.values()))))
        return summary

    def export_trunk(self, state: TrainState, path: str | os.PathLike) -> str:
        """Saves the VGG trunk of `state` as a torchvision-layout `.npz` at `path` (atomically); returns it.

        `landmarkjax.models.vgg.load_vgg_params(path, depth)` reads it back to the trained arrays exactly.
        From a finished run's directory: `landmarkjax.runs.export_vgg_weights(workdir, path)`.
        """
        trunk = jax.tree.map(np.asarray, state.params["vgg"])
        return save_vgg_params({"params": trunk}, path, depth=self.config.model.vgg_depth)

    def visualize(self, state: TrainState, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        """Three rows over up to 8 images: the grey input, the colourisation, the original."""
        images = jnp.asarray(batch["image"][:8])
        rgb = jax.jit(self.colorize)(state.params, images, frozen)["rgb"]
        grey = jnp.broadcast_to(rgb_to_lab(images)[..., :1] / 100.0, images.shape)
        rows = np.concatenate([np.asarray(grey), np.asarray(rgb), np.asarray(images)])
        return contact_sheet(np.clip(rows, 0.0, 1.0), ncols=len(images))


def build(config: ml_collections.ConfigDict) -> ColorizationMethod:
    """The colourisation method for `config` (see `landmarkjax/configs/colorization.py`)."""
    return ColorizationMethod(config)
