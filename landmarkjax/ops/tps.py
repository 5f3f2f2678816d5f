"""Thin-plate splines (TPS): fitting, evaluation, inversion, image warps and Jakab et al.'s random TPS.

A 2D thin-plate spline is f(p) = a_0 + a_x * x + a_y * y + sum_i w_i U(|p - c_i|) with the radial basis
U(r) = r^2 log r^2 (U(0) = 0), control points c_i, kernel weights w_i and an affine part, each term a 2-vector
so that f maps R^2 -> R^2. `tps_fit`, `tps_warp_points` and `tps_invert_points` work in any unit.

Image warps use the normalised frame of Jakab et al.'s code: (x, y) in [-1, 1]^2 where -1 and +1 are the
centres of the first and last pixel, i.e. x_normalised = 2 x / (W - 1) - 1 (`pixels_to_normalized`).
Direction: the spline given to `tps_warp_image` is a BACKWARD map, from normalised OUTPUT coordinates to
normalised SOURCE coordinates: output pixel p takes the source value at f(p). Landmarks therefore move with
the INVERSE of f; `tps_carry_points` computes it (Newton's method), so that a landmark at source pixel q lands
at `tps_carry_points(f, q, ...)` in the warped image.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from landmarkjax.ops.sampling import bilinear_sample
from landmarkjax.ops.warps import pixel_grid, source_pixels_valid

__all__ = [
    "ThinPlateSpline",
    "tps_fit",
    "tps_warp_points",
    "tps_invert_points",
    "pixels_to_normalized",
    "normalized_to_pixels",
    "tps_warp_image",
    "tps_carry_points",
    "control_grid",
    "random_tps",
    "IMM_TARGET_TPS",
    "IMM_SOURCE_TPS",
    "tps_image_pair",
]


class ThinPlateSpline(NamedTuple):
    """Parameters of a 2D thin-plate spline (a pytree, so it passes through jit/vmap/grad).

    f(p) = [1, x, y] @ affine + sum_i kernel_weights[i] * U(|p - control_points[i]|), U(r) = r^2 log r^2.

    Attributes:
      control_points: [N, 2] (x, y) kernel centres c_i, in the unit of the input points.
      kernel_weights: [N, 2] weights w_i (output unit).
      affine: [3, 2] affine part; its rows multiply 1, x and y respectively.
    """

    control_points: jnp.ndarray
    kernel_weights: jnp.ndarray
    affine: jnp.ndarray


def _radial_basis(squared_distance: jnp.ndarray) -> jnp.ndarray:
    """U = r^2 log r^2 from r^2, with U(0) = 0 and a finite (zero) gradient at r = 0."""
    positive = squared_distance > 0
    safe = jnp.where(positive, squared_distance, 1.0)
    return jnp.where(positive, safe * jnp.log(safe), 0.0)


def _kernel(points: jnp.ndarray, control_points: jnp.ndarray) -> jnp.ndarray:
    """[..., 2] x [N, 2] -> [..., N] radial basis values."""
    squared_distance = jnp.sum((points[..., None, :] - control_points) ** 2, axis=-1)
    return _radial_basis(squared_distance)


def _check_points(points: jnp.ndarray, name: str) -> jnp.ndarray:
    points = jnp.asarray(points)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [..., 2] of (x, y), got {points.shape}")
    if not jnp.issubdtype(points.dtype, jnp.floating):
        points = points.astype(jnp.float32)
    return points


def _check_spline(tps: ThinPlateSpline) -> None:
    if not isinstance(tps, ThinPlateSpline):
        raise ValueError(f"tps must be a ThinPlateSpline, got {type(tps).__name__}")
    num_points = tps.control_points.shape[0]
    if (
        tps.control_points.shape != (num_points, 2)
        or tps.kernel_weights.shape != (num_points, 2)
        or tps.affine.shape != (3, 2)
    ):
        raise ValueError(
            "tps must hold control_points [N, 2], kernel_weights [N, 2] and affine [3, 2] (vmap for batches), "
            f"got {tps.control_points.shape}, {tps.kernel_weights.shape} and {tps.affine.shape}"
        )


def tps_fit(
    control_points: jnp.ndarray, target_points: jnp.ndarray, regularization: float = 0.0
) -> ThinPlateSpline:
    """Fits the thin-plate spline with f(control_points[i]) = target_points[i].

    Solves the standard (N + 3) x (N + 3) system [[K + lambda I, P], [P^T, 0]] [w; a] = [v; 0] with
    K_ij = U(|c_i - c_j|) and P = [1, x, y]. With `regularization` lambda > 0 the spline is smoothed and no
    longer interpolates exactly (lambda trades bending energy against fit; it equals 2x the `smoothing` of
    `scipy.interpolate.RBFInterpolator(kernel="thin_plate_spline")`, whose kernel is r^2 log r).

    Args:
      control_points: [N, 2] (x, y) with N >= 3, not all on one line (the system is singular otherwise).
      target_points: [N, 2] (x, y) images of the control points, any unit.
      regularization: lambda >= 0.

    Returns:
      The fitted ThinPlateSpline (vmap for batches of point sets).
    """
    control_points = _check_points(control_points, "control_points")
    target_points = _check_points(target_points, "target_points")
    if control_points.ndim != 2 or control_points.shape[0] < 3:
        raise ValueError(f"control_points must have shape [N, 2] with N >= 3, got {control_points.shape}")
    if target_points.shape != control_points.shape:
        raise ValueError(
            f"target_points must have the shape of control_points {control_points.shape}, got {target_points.shape}"
        )
    if isinstance(regularization, numbers.Real) and regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    dtype = jnp.result_type(control_points.dtype, target_points.dtype)
    control_points = control_points.astype(dtype)
    num_points = control_points.shape[0]

    kernel = _kernel(control_points, control_points) + regularization * jnp.eye(num_points, dtype=dtype)
    polynomial = jnp.concatenate([jnp.ones((num_points, 1), dtype), control_points], axis=1)
    system = jnp.block([[kernel, polynomial], [polynomial.T, jnp.zeros((3, 3), dtype)]])
    right_hand_side = jnp.concatenate([target_points.astype(dtype), jnp.zeros((3, 2), dtype)], axis=0)
    solution = jnp.linalg.solve(system, right_hand_side)
    return ThinPlateSpline(control_points, solution[:num_points], solution[num_points:])


def tps_warp_points(tps: ThinPlateSpline, points: jnp.ndarray) -> jnp.ndarray:
    """Evaluates a thin-plate spline at points.

    Args:
      tps: a ThinPlateSpline (single, not batched).
      points: [..., 2] (x, y) in the unit of tps.control_points.

    Returns:
      [..., 2] (x, y) f(points).
    """
    _check_spline(tps)
    points = _check_points(points, "points")
    affine_part = tps.affine[0] + points @ tps.affine[1:]
    return affine_part + _kernel(points, tps.control_points) @ tps.kernel_weights


def tps_invert_points(tps: ThinPlateSpline, points: jnp.ndarray, num_iterations: int = 10) -> jnp.ndarray:
    """Solves f(p) = points for p: the inverse map of a thin-plate spline, by Newton's method.

    Starts from the inverse of the affine part and takes `num_iterations` Newton steps (fixed, so it is
    jit-safe and differentiable). Converges quadratically for the smooth, fold-free warps used in practice;
    for a spline that folds over itself the inverse is not unique, and the residual
    `tps_warp_points(tps, p) - points` tells how far off the result is.

    Args:
      tps: a ThinPlateSpline whose affine part is invertible.
      points: [..., 2] (x, y) in f's output unit.
      num_iterations: number of Newton steps (Python int >= 0).

    Returns:
      [..., 2] (x, y) p with f(p) ~= points, in f's input unit.
    """
    _check_spline(tps)
    points = _check_points(points, "points")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, numbers.Integral) or num_iterations < 0:
        raise ValueError(f"num_iterations must be a non-negative Python int, got {num_iterations!r}")
    flat_targets = points.reshape(-1, 2)
    initial = (flat_targets - tps.affine[0]) @ jnp.linalg.inv(tps.affine[1:])

    evaluate = lambda p: tps_warp_points(tps, p)  # noqa: E731
    jacobian = jax.vmap(jax.jacfwd(evaluate))

    def newton_step(_, estimate: jnp.ndarray) -> jnp.ndarray:
        residual = jax.vmap(evaluate)(estimate) - flat_targets
        return estimate - jnp.linalg.solve(jacobian(estimate), residual[..., None])[..., 0]

    return jax.lax.fori_loop(0, num_iterations, newton_step, initial).reshape(points.shape)


def _check_image_shape(shape: Sequence[int], name: str) -> tuple[int, int]:
    if len(shape) != 2 or not all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 2 for size in shape
    ):
        raise ValueError(f"{name} must be (height, width) with ints >= 2, got {shape!r}")
    return int(shape[0]), int(shape[1])


def pixels_to_normalized(points: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """(x, y) pixels -> [-1, 1]^2 with -1/+1 at the first/last pixel centre: 2 x / (W - 1) - 1, likewise y."""
    height, width = _check_image_shape((height, width), "(height, width)")
    points = _check_points(points, "points")
    return points / jnp.asarray([(width - 1) / 2, (height - 1) / 2], points.dtype) - 1.0


def normalized_to_pixels(points: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Inverse of `pixels_to_normalized`: [-1, 1]^2 -> (x, y) pixels, (x + 1) (W - 1) / 2, likewise y."""
    height, width = _check_image_shape((height, width), "(height, width)")
    points = _check_points(points, "points")
    return (points + 1.0) * jnp.asarray([(width - 1) / 2, (height - 1) / 2], points.dtype)


def tps_warp_image(
    image: jnp.ndarray,
    tps: ThinPlateSpline,
    output_shape: Sequence[int] | None = None,
    *,
    mode: str = "constant",
    cval: float = 0.0,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Warps an image with a thin-plate spline by bilinear backward sampling.

    `tps` maps normalised OUTPUT coordinates to normalised SOURCE coordinates (module docstring): output pixel
    p takes the source value at normalized_to_pixels(f(pixels_to_normalized(p, H', W')), H, W). Landmarks
    move with the inverse map: use `tps_carry_points`. Differentiable w.r.t. the image and the spline.

    Args:
      image: [H, W, C] float image, H, W >= 2 (vmap for batches).
      tps: backward ThinPlateSpline in normalised coordinates (e.g. from `random_tps`).
      output_shape: (H', W') of the result in pixels; defaults to (H, W).
      mode: out-of-bounds handling of `bilinear_sample`: "constant" (fill with `cval`) or "edge".
      cval: fill value in "constant" mode.

    Returns:
      warped: [H', W', C] image.
      valid: [H', W'] bool, True where the output pixel was interpolated from inside the source only (its
        sample position lies in [0, W-1] x [0, H-1]); False where fill or replicated-border values entered.
    """
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C] (vmap for batches), got {image.shape}")
    _check_spline(tps)
    height, width = _check_image_shape(image.shape[:2], "image [H, W] of shape [H, W, C]")
    out_height, out_width = _check_image_shape(
        (height, width) if output_shape is None else tuple(output_shape), "output_shape"
    )
    dtype = jnp.result_type(image.dtype, tps.affine.dtype, jnp.float32)
    output_grid = pixels_to_normalized(pixel_grid(out_height, out_width, dtype), out_height, out_width)
    source_points = normalized_to_pixels(tps_warp_points(tps, output_grid), height, width)
    warped = bilinear_sample(image, source_points, mode=mode, cval=cval)
    return warped, source_pixels_valid(source_points, height, width)


def tps_carry_points(
    tps: ThinPlateSpline,
    points: jnp.ndarray,
    image_shape: Sequence[int],
    output_shape: Sequence[int] | None = None,
    num_iterations: int = 10,
) -> jnp.ndarray:
    """Where source-image landmarks land in `tps_warp_image(image, tps, output_shape)`.

    Inverts the backward spline at the normalised landmarks (`tps_invert_points`) and converts to output pixels.

    Args:
      tps: the backward ThinPlateSpline given to `tps_warp_image`.
      points: [..., K, 2] (x, y) landmarks in source pixels (any [..., 2] works).
      image_shape: (H, W) of the source image in pixels.
      output_shape: (H', W') of the warped image; defaults to image_shape.
      num_iterations: Newton steps of the inversion.

    Returns:
      [..., K, 2] (x, y) landmarks in output pixels.
    """
    height, width = _check_image_shape(tuple(image_shape), "image_shape")
    out_height, out_width = _check_image_shape(
        (height, width) if output_shape is None else tuple(output_shape), "output_shape"
    )
    normalized = pixels_to_normalized(_check_points(points, "points"), height, width)
    carried = tps_invert_points(tps, normalized, num_iterations=num_iterations)
    return normalized_to_pixels(carried, out_height, out_width)


def control_grid(grid_size: int) -> jnp.ndarray:
    """[grid_size^2, 2] (x, y) regular grid over [-1, 1]^2, x varying fastest."""
    line = jnp.linspace(-1.0, 1.0, grid_size)
    grid_y, grid_x = jnp.meshgrid(line, line, indexing="ij")
    return jnp.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)


def random_tps(
    key: jax.Array,
    *,
    grid_size: int = 10,
    rotation_std: float = 0.0,
    scale_std: float = 0.0,
    translation_std: float = 0.1,
    warp_std: float | tuple[float, float] = (0.001, 0.005),
) -> ThinPlateSpline:
    """Samples a random backward TPS with Jakab et al.'s parameterisation (IMM, NeurIPS 2018).

    As in the authors' sampler: control points on a grid_size x grid_size grid over [-1, 1]^2; an affine part
    f_aff(p) = t + s R(theta) p with theta ~ N(0, rotation_std^2), s = 1 + N(0, scale_std^2) and each of
    t_x, t_y ~ N(0, translation_std^2); and a Gaussian perturbation of every control point's KERNEL WEIGHT (not
    of its position): w_i = std_all * N(0, I) + std_half * m_i * N(0, I) with m_i ~ Bernoulli(0.5) per
    coordinate, where warp_std = (std_all, std_half) (a single float means std_half = 0). All stds are zero:
    the identity. The defaults are the authors' target-image warp (translation 0.1, warp std 0.001-0.005);
    their source-image warp is rotation_std=jnp.deg2rad(5.), scale_std=0.1, translation_std=0.1,
    warp_std=(0.001, 0.01). Units: normalised coordinates ([-1, 1] spans the image), rotation in radians.
    Unlike the authors' sampler, the grid spans the image itself rather than a replicate-padded copy; pixels
    pulled in from outside are reported by the validity mask of `tps_warp_image` instead.

    Args:
      key: a `jax.random` key (vmap over split keys for a batch).
      grid_size: control points per side (Python int >= 2).
      rotation_std: std of the rotation angle, radians.
      scale_std: std of the scale around 1.
      translation_std: std of each translation component, normalised units.
      warp_std: std of the kernel weights: a float, or the pair (std_all, std_half) described above.

    Returns:
      A backward ThinPlateSpline in normalised coordinates, for `tps_warp_image` and `tps_carry_points`.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral) or grid_size < 2:
        raise ValueError(f"grid_size must be a Python int >= 2, got {grid_size!r}")
    warp_stds = tuple(warp_std) if isinstance(warp_std, Sequence) else (warp_std, 0.0)
    if len(warp_stds) != 2:
        raise ValueError(f"warp_std must be a float or a (std_all, std_half) pair, got {warp_std!r}")
    for name, value in (
        ("rotation_std", rotation_std),
        ("scale_std", scale_std),
        ("translation_std", translation_std),
        ("warp_std", warp_stds[0]),
        ("warp_std", warp_stds[1]),
    ):
        if isinstance(value, numbers.Real) and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")

    stds = (rotation_std, scale_std, translation_std, *warp_stds)
    return _sample_tps(key, grid_size, *(jnp.asarray(std, jnp.float32) for std in stds))


@functools.partial(jax.jit, static_argnums=1)
def _sample_tps(
    key: jax.Array,
    grid_size: int,
    rotation_std: jnp.ndarray,
    scale_std: jnp.ndarray,
    translation_std: jnp.ndarray,
    std_all: jnp.ndarray,
    std_half: jnp.ndarray,
) -> ThinPlateSpline:
    # One compiled function, so that eager per-example calls (e.g. in a data pipeline) stay cheap.
    control_points = control_grid(grid_size)
    num_points = control_points.shape[0]
    keys = jax.random.split(key, 6)
    kernel_weights = std_all * jax.random.normal(keys[0], (num_points, 2)) + std_half * (
        jax.random.bernoulli(keys[1], 0.5, (num_points, 2)) * jax.random.normal(keys[2], (num_points, 2))
    )
    theta = rotation_std * jax.random.normal(keys[3], ())
    scale = 1.0 + scale_std * jax.random.normal(keys[4], ())
    translation = translation_std * jax.random.normal(keys[5], (2,))
    cos, sin = scale * jnp.cos(theta), scale * jnp.sin(theta)
    # Rows multiply 1, x, y: f_x = t_x + cos x + sin y, f_y = t_y - sin x + cos y (the authors' layout).
    affine = jnp.stack([translation, jnp.stack([cos, -sin]), jnp.stack([sin, cos])])
    return ThinPlateSpline(control_points, kernel_weights, affine)


#: Jakab et al.'s TPS for the TARGET image x' of an IMM pair (keyword arguments of `random_tps`).
IMM_TARGET_TPS = dict(rotation_std=0.0, scale_std=0.0, translation_std=0.1, warp_std=(0.001, 0.005))
#: Jakab et al.'s TPS for the SOURCE image x, applied on top of the target (rotation 5 degrees in radians).
IMM_SOURCE_TPS = dict(rotation_std=math.radians(5.0), scale_std=0.1, translation_std=0.1, warp_std=(0.001, 0.01))


def tps_image_pair(
    key: jax.Array,
    image: jnp.ndarray,
    *,
    grid_size: int = 10,
    target_tps: dict | None = None,
    source_tps: dict | None = None,
) -> dict[str, jnp.ndarray]:
    """An IMM training pair from one image by the authors' two-stage random TPS, with validity masks.

    Stage 1 warps `image` by a random TPS drawn with `target_tps` (default `IMM_TARGET_TPS`) into the target
    x'; stage 2 warps x' by a second random TPS drawn with `source_tps` (default `IMM_SOURCE_TPS`: rotation,
    scale, translation, a stronger warp) into the source x. Both warps are bilinear backward samplings
    (`tps_warp_image`, zero fill outside). A pixel is valid when every sample it was interpolated from lies
    inside the image it was read from: `target_valid` is stage 1's mask; `source_valid` is stage 2's mask
    AND the bilinear interpolation of `target_valid` at the same positions being 1 (so a source pixel that
    mixes in any empty target pixel is invalid). IMM masks its reconstruction loss of x' with
    `target_valid`. All stds zero (`random_tps` with zeros) give x = x' = image and all-valid masks.

    Pure jnp with an explicit key, so it runs inside the jitted train step on the whole batch (`jax.vmap`
    over split keys): the TPS solve and the bilinear sampling are vectorised there, fresh warps are drawn
    every step from the step's key, and the data pipeline stays the plain face crop.

    Args:
      key: a `jax.random` key.
      image: `[H, W, C]` float image (H, W >= 2).
      grid_size: control points per side of both splines (authors: 10).
      target_tps, source_tps: keyword arguments of `random_tps` (rotation_std radians, scale_std,
        translation_std and warp_std in normalised [-1, 1] units).

    Returns:
      {"source": `[H, W, C]` x, "target": `[H, W, C]` x', "source_valid": `[H, W]` float32 in {0, 1},
       "target_valid": `[H, W]` float32 in {0, 1}}.
    """
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C] (vmap for batches), got {image.shape}")
    target_key, source_key = jax.random.split(key)
    target_spline = random_tps(target_key, grid_size=grid_size, **(target_tps or IMM_TARGET_TPS))
    source_spline = random_tps(source_key, grid_size=grid_size, **(source_tps or IMM_SOURCE_TPS))
    target, target_valid = tps_warp_image(image, target_spline)
    target_valid = target_valid.astype(jnp.float32)
    stacked = jnp.concatenate([target, target_valid[..., None]], axis=-1)
    warped, inside = tps_warp_image(stacked, source_spline)
    source, carried_valid = warped[..., :-1], warped[..., -1]
    source_valid = (inside & (carried_valid >= 1.0 - 1e-5)).astype(jnp.float32)
    return {"source": source, "target": target, "source_valid": source_valid, "target_valid": target_valid}
