"""Equivariant Landmark Transformation (ELT) loss of Honari et al. (CVPR 2018).

Predict landmarks L on an image I, warp I by a transform T, predict L' on T(I): an equivariant detector
has L' = T(L). On unlabelled images the loss penalises `||L' - T(L)||^2`. T is an affine matrix `[2, 3]`
mapping SOURCE pixels to OUTPUT pixels, the convention of `landmarkjax.ops.affine_warp_points` and
`affine_warp_image` (the warped image is `affine_warp_image(I, T)`).

A horizontal flip also swaps left and right landmark semantics: the point that the network calls "left
eye" on the flipped image is the mirror of the original "right eye". `random_elt_transform` therefore
returns, with the matrix, the permutation to apply to the predictions on the warped image
(`points_on_warped[..., permutation, :]`), which `equivariance_loss` takes as `permutation`.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax import face_layout
from landmarkjax.losses._checks import check_weights, weighted_mean
from landmarkjax.ops.warps import affine_matrix, affine_warp_points

__all__ = ["equivariance_loss", "elt_matrix", "random_elt_transform"]

_STOP_GRADIENT = ("none", "warped", "original")


def equivariance_loss(
    points_on_warped: jnp.ndarray,
    points: jnp.ndarray,
    matrix: jnp.ndarray,
    mask: jnp.ndarray | None = None,
    stop_gradient: str = "none",
    permutation: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Mean squared distance between predictions on a warped image and the warped predictions.

    loss = mean over the (masked) points and leading dims of `||q_i - (A p_i + b)||^2`, where
    q = `points_on_warped[..., permutation, :]` (or `points_on_warped` without a permutation), p = `points`
    and `[A | b]` = `matrix`.

    Args:
      points_on_warped: `[..., K, 2]` (x, y) pixels, predicted on the image warped by `matrix`.
      points: `[..., K, 2]` (x, y) pixels, predicted on the original image.
      matrix: `[..., 2, 3]` source -> output pixel matrices (leading dims broadcast against the points').
      mask: optional `[..., K]` non-negative weight per point (e.g. 0 for points warped out of the image);
        the loss is the weighted mean, 0 if every weight is 0.
      stop_gradient: "none" (gradients reach both sides), "warped" (no gradient through
        `points_on_warped`: they are the target) or "original" (no gradient through `points`).
      permutation: optional `[..., K]` int landmark permutation for flips (see `random_elt_transform`);
        None is the identity.

    Returns:
      Scalar, in squared pixels (of the warped image's grid).
    """
    if stop_gradient not in _STOP_GRADIENT:
        raise ValueError(f"stop_gradient must be one of {_STOP_GRADIENT}; got {stop_gradient!r}.")
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must be [..., K, 2]; got shape {points.shape}.")
    if points_on_warped.shape != points.shape:
        raise ValueError(
            f"points_on_warped and points must have the same shape; got {points_on_warped.shape} and "
            f"{points.shape}."
        )
    if stop_gradient == "warped":
        points_on_warped = jax.lax.stop_gradient(points_on_warped)
    elif stop_gradient == "original":
        points = jax.lax.stop_gradient(points)
    if permutation is not None:
        permutation = jnp.asarray(permutation)
        if permutation.shape[-1:] != points.shape[-2:-1]:
            raise ValueError(f"permutation must be [..., K] with K = {points.shape[-2]}; got {permutation.shape}.")
        permutation = jnp.broadcast_to(permutation, points.shape[:-1])
        points_on_warped = jnp.take_along_axis(points_on_warped, permutation[..., None], axis=-2)
    transformed = affine_warp_points(points, matrix)
    squared = jnp.sum(jnp.square(points_on_warped - transformed), axis=-1)
    if mask is not None:
        check_weights(mask, squared.shape)
    return weighted_mean(squared, mask)


def _flip_matrix(width: int) -> jnp.ndarray:
    """[3, 3] homogeneous mirror x -> W - 1 - x (pixel centres at integers)."""
    return jnp.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], jnp.float32)


def elt_matrix(
    image_size: Sequence[int],
    rotation: float | jnp.ndarray = 0.0,
    scale: float | jnp.ndarray = 1.0,
    translation: Sequence[float] | jnp.ndarray = (0.0, 0.0),
    flip: bool | jnp.ndarray = False,
) -> jnp.ndarray:
    """An ELT transform: optional horizontal mirror, then rotation and scale about the image centre, then shift.

    p_out = R(rotation) * scale @ (F(p) - c) + c + translation, with c = ((W - 1) / 2, (H - 1) / 2) and F
    the mirror x -> W - 1 - x when `flip` (else the identity). The rotation follows `ops.affine_matrix`
    (positive turns the content counter-clockwise as displayed).

    Args:
      image_size: (H, W) in pixels.
      rotation: scalar angle in radians.
      scale: scalar isotropic scale; must be non-zero (a zero scale is not invertible and raises a
        ValueError when the value is known before tracing).
      translation: (x, y) shift in output pixels.
      flip: whether to mirror horizontally first.

    Returns:
      `[2, 3]` float32 source -> output pixel matrix.
    """
    height, width = _check_image_size(image_size)
    if _is_concrete(scale) and np.any(np.asarray(scale) == 0):
        raise ValueError(f"scale must be non-zero: the ELT matrix must be invertible; got {scale}.")
    center = jnp.array([(width - 1) / 2.0, (height - 1) / 2.0], jnp.float32)
    similarity = affine_matrix(rotation, scale, jnp.asarray(translation, jnp.float32), center)
    mirror = jnp.where(jnp.asarray(flip), _flip_matrix(width), jnp.eye(3, dtype=jnp.float32))
    return (similarity @ mirror).astype(jnp.float32)


def random_elt_transform(
    key: jax.Array,
    image_size: Sequence[int],
    num_landmarks: int,
    max_rotation: float = 0.0,
    scale_range: Sequence[float] = (1.0, 1.0),
    max_translation: float = 0.0,
    flip_probability: float = 0.0,
    flip_permutation: np.ndarray | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Draws a random ELT transform and the landmark permutation that goes with it.

    rotation ~ U(-max_rotation, max_rotation) radians, scale ~ U(scale_range), translation ~
    U(-max_translation, max_translation)^2 pixels, flip ~ Bernoulli(flip_probability); the matrix is
    `elt_matrix(image_size, rotation, scale, translation, flip)`. For a batch, `jax.vmap` over split keys.

    Args:
      key: a `jax.random` key.
      image_size: (H, W) in pixels.
      num_landmarks: K.
      max_rotation: largest absolute rotation, radians (>= 0).
      scale_range: (low, high) scale factors with 0 < low <= high, so that every matrix is invertible.
      max_translation: largest absolute shift per axis, pixels (>= 0).
      flip_probability: probability of a horizontal mirror, in [0, 1].
      flip_permutation: `[K]` left/right permutation of the landmark layout ("point i of the mirrored
        face is point perm[i] of the original"); None uses `face_layout.flip_permutation(K)` (68 or 5
        points) when flips are possible.

    Returns:
      (matrix, permutation): the `[2, 3]` float32 source -> output matrix, and the `[K]` int32 permutation
      to apply to the predictions on the warped image (`flip_permutation` when flipped, else the identity),
      as `equivariance_loss(points_on_warped, points, matrix, permutation=permutation)`.
    """
    height, width = _check_image_size(image_size)
    low, high = (float(v) for v in scale_range)
    if not 0 < low <= high:
        raise ValueError(
            f"scale_range must be (low, high) with 0 < low <= high (a zero scale is not invertible); "
            f"got {tuple(scale_range)}."
        )
    if max_rotation < 0 or max_translation < 0:
        raise ValueError(
            f"max_rotation and max_translation must be >= 0; got {max_rotation} and {max_translation}."
        )
    if not 0 <= flip_probability <= 1:
        raise ValueError(f"flip_probability must be in [0, 1]; got {flip_probability}.")
    identity = np.arange(num_landmarks, dtype=np.int32)
    if flip_permutation is None:
        flip_permutation = face_layout.flip_permutation(num_landmarks) if flip_probability > 0 else identity
    flip_permutation = np.asarray(flip_permutation, np.int32)
    if sorted(flip_permutation.tolist()) != identity.tolist():
        raise ValueError(
            f"flip_permutation must be a permutation of range({num_landmarks}); got {flip_permutation}."
        )

    rotation_key, scale_key, translation_key, flip_key = jax.random.split(key, 4)
    rotation = jax.random.uniform(rotation_key, (), minval=-max_rotation, maxval=max_rotation)
    scale = jax.random.uniform(scale_key, (), minval=low, maxval=high)
    translation = jax.random.uniform(translation_key, (2,), minval=-max_translation, maxval=max_translation)
    flip = jax.random.bernoulli(flip_key, flip_probability)
    matrix = elt_matrix((height, width), rotation, scale, translation, flip)
    permutation = jnp.where(flip, jnp.asarray(flip_permutation), jnp.asarray(identity))
    return matrix, permutation


def _check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be (H, W) positive pixel counts; got {tuple(image_size)}.")
    return size


def _is_concrete(value) -> bool:
    """Whether `value` is known before tracing (a Python number, numpy array or concrete jax array)."""
    try:
        np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False
    return True
