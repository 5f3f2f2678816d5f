"""Batched, differentiable pyramidal Lucas-Kanade point tracking (inverse compositional).

Each point is tracked by Gauss-Newton inverse-compositional alignment (Baker & Matthews, "Lucas-Kanade
20 Years On", 2004) of a square window around it, coarse to fine over a Gaussian pyramid (5-tap binomial
blur and 2x decimation, as OpenCV's `pyrDown`):

- the template T is the window of the template image centred on the point, sampled bilinearly with the
  image's edge pixels replicated outside it; its gradients come from a 3x3 Sobel filter (divided by 8, so
  they are intensity per pixel) applied to a window one pixel larger, so every window pixel has a
  full-support gradient;
- each window pixel is weighted by a Gaussian of sigma = (2 * window_radius + 1) / 2 (SBR's choice);
- steepest-descent images and the Gauss-Newton Hessian (plus `regularization` on its diagonal) are computed
  once per point and level, which is the point of the inverse compositional form; each iteration samples
  the target image under the current warp, solves for the warp increment and composes its inverse into
  the warp;
- the warp is a translation or an affine map of the window offsets; with the affine warp, coarse levels
  still estimate the translation only and the finest level fits all six parameters;
- iterations run under `lax.scan` with a fixed budget (hence reverse-differentiable). A point freezes once
  an update is shorter than `convergence_eps` (or would be non-finite or fold the window), a point whose
  window lacks texture on a level is not moved on it, and (`lax.cond`) the remaining iterations of a level
  are skipped once every point of the frame pair has frozen. That early exit is for evaluation only: a
  custom JVP differentiates the same iterations without the `lax.cond` and with every iteration under
  `jax.checkpoint` (same values; the gradient about twice as fast, see `_align_level`). With
  `differentiation="implicit"` the iterations are not differentiated at all: each level's converged warp is
  differentiated by the implicit function theorem (one small linear solve per point; 3-4x cheaper again).

Everything is a pure function of arrays: gradients flow to the input points (through the bilinear sampling
of the template and target windows) and to the images. `lk_track` takes batches of frame pairs directly
(leading dimensions of `points`). On CPU it processes the pairs one after another (`lax.map`), which keeps
each pair's pyramids in cache and lets each pair stop iterating early; on accelerators it vectorises over
pairs (`vmap`). It also runs under `jax.vmap`, `jax.shard_map` and `jax.pmap`; under `vmap` the early
stop is lost (a batched `lax.cond` runs both branches), so passing the batch to `lk_track` is faster.
Colour images are tracked on all their channels, or with `luma=True` on their grey (a third of the work,
at some cost in accuracy where edges differ only in hue: BENCHMARKS.md). The integer, string and boolean
keyword arguments fix array shapes and must be static under `jax.jit` (bind them with `functools.partial`).
"""

from __future__ import annotations

import inspect
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from landmarkjax.ops.pyramid import pyramid_downsample
from landmarkjax.ops.sampling import bilinear_sample

__all__ = ["lk_track", "forward_backward_check"]

_SymbolicZero = jax.custom_derivatives.SymbolicZero
_WARPS = ("translation", "affine")
# Affine windows whose area shrinks or grows by more than this factor (x1/8 .. x8) stop being updated,
# and tracks whose window's area changed by more than this one (x1/4 .. x4) are flagged invalid.
_MIN_AREA_CHANGE = 0.125
_MIN_VALID_AREA_CHANGE = 0.25
# Rec. 601 luma weights of (R, G, B), as OpenCV's RGB2GRAY.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class _Template(NamedTuple):
    """Per-point quantities of one pyramid level, fixed over the iterations (K points)."""

    values: jnp.ndarray  # [K, N*C] template window (N = (2r+1)^2 pixels, C channels)
    update_matrix: jnp.ndarray  # [K, P, N*C]: warp increment = update_matrix @ (warped target - template)
    weights: jnp.ndarray  # [N*C] normalised Gaussian weights (sum 1)
    min_eigenvalue: jnp.ndarray  # [K] smallest eigenvalue of the weighted gradient structure tensor


class _WarpState(NamedTuple):
    """Per-point warp of window offsets u: target position = linear @ u + center."""

    center: jnp.ndarray  # [K, 2] (x, y) position of the template point in the target level
    linear: jnp.ndarray  # [K, 2, 2] affine linear part (identity for the translation warp)


def _gaussian_window_weights(radius: int, dtype: jnp.dtype) -> jnp.ndarray:
    """[2r+1, 2r+1] Gaussian weights with sigma = (2r+1)/2, normalised to sum 1."""
    offsets = jnp.arange(-radius, radius + 1, dtype=dtype)
    sigma = (2 * radius + 1) / 2.0
    profile = jnp.exp(-0.5 * (offsets / sigma) ** 2)
    weights = profile[:, None] * profile[None, :]
    return weights / jnp.sum(weights)


def _window_offsets(radius: int, dtype: jnp.dtype) -> jnp.ndarray:
    """[2r+1, 2r+1, 2] (x, y) offsets of the window pixels, row-major (y, then x)."""
    offsets = jnp.arange(-radius, radius + 1, dtype=dtype)
    x, y = jnp.meshgrid(offsets, offsets, indexing="xy")
    return jnp.stack([x, y], axis=-1)


def _padding(radius: int) -> int:
    """Edge padding of every pyramid level: windows of radius r+1 are exact for centres up to r+2 px out."""
    return 2 * radius + 4


class _Level(NamedTuple):
    """One pyramid level of an image, edge-padded so that windows near the border need no clamping."""

    image: jnp.ndarray  # [H_l + 2 pad, W_l + 2 pad, C]
    pad: int


def _translated_windows(level: _Level, centers: jnp.ndarray, radius: int) -> jnp.ndarray:
    """Bilinear (2r+1)^2 windows at sub-pixel centres, with the image's edge pixels replicated outside it.

    Equals `extract_patches(image, centers, radius, mode="edge")` of landmarkjax.ops.sampling for centres
    up to pad - r - 1 pixels outside the image: every pixel of a translated window has the same sub-pixel
    fraction, so one integer crop of (2r+2)^2 pixels and one bilinear blend replace (2r+1)^2 four-pixel
    gathers (several times faster on CPU, where gathers dominate). Farther out the crop stops at the
    padding's edge, which keeps the values finite.

    Args:
      level: the padded image.
      centers: [K, 2] (x, y) window centres in pixels of the unpadded image.
      radius: window half-size r.

    Returns:
      [K, 2r+1, 2r+1, C] windows.
    """
    size = 2 * radius + 2
    padded_height, padded_width, channels = level.image.shape
    base = jnp.floor(centers)
    fraction = centers - base
    start_x = jnp.clip(base[:, 0] - radius + level.pad, 0, padded_width - size).astype(jnp.int32)
    start_y = jnp.clip(base[:, 1] - radius + level.pad, 0, padded_height - size).astype(jnp.int32)

    def crop(row: jnp.ndarray, column: jnp.ndarray) -> jnp.ndarray:
        return jax.lax.dynamic_slice(level.image, (row, column, jnp.int32(0)), (size, size, channels))

    crops = jax.vmap(crop)(start_y, start_x)  # [K, S+1, S+1, C]
    fx = fraction[:, 0, None, None, None]
    fy = fraction[:, 1, None, None, None]
    top = crops[:, :-1, :-1] * (1 - fx) + crops[:, :-1, 1:] * fx
    bottom = crops[:, 1:, :-1] * (1 - fx) + crops[:, 1:, 1:] * fx
    return top * (1 - fy) + bottom * fy


def _sobel_gradients(patches: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[..., S+2, S+2, C] -> (d/dx, d/dy), each [..., S, S, C], in intensity per pixel (Sobel / 8)."""
    smooth = (1.0, 2.0, 1.0)
    shifts = (slice(0, -2), slice(1, -1), slice(2, None))
    grad_x = sum(s * (patches[..., rows, 2:, :] - patches[..., rows, :-2, :]) for s, rows in zip(smooth, shifts))
    grad_y = sum(s * (patches[..., 2:, cols, :] - patches[..., :-2, cols, :]) for s, cols in zip(smooth, shifts))
    return grad_x / 8.0, grad_y / 8.0


def _min_eigenvalue_2x2(a: jnp.ndarray, b: jnp.ndarray, d: jnp.ndarray) -> jnp.ndarray:
    """Smallest eigenvalue of the symmetric matrices [[a, b], [b, d]] (no gradient: it only sets flags)."""
    a, b, d = (jax.lax.stop_gradient(v) for v in (a, b, d))
    return 0.5 * (a + d - jnp.sqrt((a - d) ** 2 + 4.0 * b**2))


def _solve_spd(hessian: jnp.ndarray, rhs: jnp.ndarray, min_eigenvalue: float) -> jnp.ndarray:
    """hessian^-1 @ rhs for [K, P, P] symmetric matrices with eigenvalues >= min_eigenvalue > 0, rhs [K, P, M].

    Closed form when P = 2, otherwise an unrolled Cholesky factorisation with forward and back substitution:
    plain elementwise operations, no LAPACK custom call (which, called inside XLA:CPU loops, made jax 0.10
    hang intermittently on a 2-core machine) and no per-matrix dispatch. The determinant (P = 2) and the
    Cholesky pivots are held at their exact-arithmetic lower bounds, min_eigenvalue^2 and min_eigenvalue,
    so that float32 round-off on rank-deficient windows cannot divide by zero.
    """
    size = hessian.shape[-1]
    if size == 2:
        a, b, d = hessian[:, 0, 0], hessian[:, 0, 1], hessian[:, 1, 1]
        det = jnp.maximum(a * d - b * b, min_eigenvalue**2)
        inverse = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-b, a], -1)], -2) / det[:, None, None]
        return inverse @ rhs
    lower = [[None] * size for _ in range(size)]  # lower[i][j]: [K] entries of L with H = L L^T
    for i in range(size):
        for j in range(i + 1):
            total = hessian[:, i, j] - sum(lower[i][k] * lower[j][k] for k in range(j))
            lower[i][j] = jnp.sqrt(jnp.maximum(total, min_eigenvalue)) if i == j else total / lower[j][j]
    forward = []  # L y = rhs
    for i in range(size):
        forward.append((rhs[:, i] - sum(lower[i][k][:, None] * forward[k] for k in range(i))) / lower[i][i][:, None])
    solution = [None] * size  # L^T x = y
    for i in reversed(range(size)):
        partial = sum(lower[k][i][:, None] * solution[k] for k in range(i + 1, size))
        solution[i] = (forward[i] - partial) / lower[i][i][:, None]
    return jnp.stack(solution, axis=1)


def _prepare_template(level: _Level, centers: jnp.ndarray, radius: int, warp: str, regularization: float) -> _Template:
    """Template windows, steepest-descent images and regularised inverse Hessians of one level."""
    num_points = centers.shape[0]
    channels = level.image.shape[-1]
    extended = _translated_windows(level, centers, radius + 1)  # [K, S+2, S+2, C]
    grad_x, grad_y = _sobel_gradients(extended)
    values = extended[:, 1:-1, 1:-1]  # [K, S, S, C]

    if warp == "translation":
        steepest = [grad_x, grad_y]
    else:
        # Offsets divided by the radius make all six parameters pixel displacements (at the window's edge
        # for the linear part), which keeps the Hessian well scaled for one regulariser.
        offsets = _window_offsets(radius, centers.dtype)[:, :, None, :] / radius  # [S, S, 1, 2]
        u, v = offsets[..., 0], offsets[..., 1]
        steepest = [grad_x * u, grad_y * u, grad_x * v, grad_y * v, grad_x, grad_y]
    num_params = len(steepest)
    # Parameters before pixels ([K, P, N*C]): XLA:CPU handles this layout much better than [K, N*C, P].
    steepest = jnp.stack(steepest, axis=1).reshape(num_points, num_params, -1)

    weights = jnp.broadcast_to(_gaussian_window_weights(radius, centers.dtype)[:, :, None] / channels, values.shape[1:])
    weights = weights.reshape(-1)  # [N*C], sums to 1
    weighted_steepest = steepest * weights
    hessian = jnp.einsum("kpn,kqn->kpq", weighted_steepest, steepest)
    # The translation block of the Hessian is the weighted gradient structure tensor in either warp.
    min_eigenvalue = _min_eigenvalue_2x2(hessian[:, -2, -2], hessian[:, -2, -1], hessian[:, -1, -1])
    hessian = hessian + regularization * jnp.eye(num_params, dtype=hessian.dtype)
    update_matrix = _solve_spd(hessian, weighted_steepest, regularization)  # [K, P, N*C]
    return _Template(values.reshape(num_points, -1), update_matrix, weights, min_eigenvalue)


def _sample_warped_window(level: _Level, state: _WarpState, radius: int, warp: str) -> jnp.ndarray:
    """[K, N*C] target image sampled on the warped window of every point (edge pixels replicated)."""
    num_points = state.center.shape[0]
    if warp == "translation":
        window = _translated_windows(level, state.center, radius)
    else:
        offsets = _window_offsets(radius, state.center.dtype)
        positions = jnp.einsum("kij,uvj->kuvi", state.linear, offsets) + state.center[:, None, None, :]
        # Edge mode on the padded image equals edge mode on the image itself.
        window = bilinear_sample(level.image, positions + level.pad, mode="edge")
    return window.reshape(num_points, -1)


def _area_change(linear: jnp.ndarray) -> jnp.ndarray:
    """[K] determinants of [K, 2, 2] linear parts: the factor by which the warp scales the window's area."""
    return linear[:, 0, 0] * linear[:, 1, 1] - linear[:, 0, 1] * linear[:, 1, 0]


def _compose_inverse_increment(state: _WarpState, increment: jnp.ndarray, radius: int, warp: str) -> _WarpState:
    """W(u; p) <- W(u; p) o W(u; dp)^-1 for translation or affine increments dp [K, P]."""
    shift = increment[:, -2:]
    if warp == "translation":
        return _WarpState(state.center - shift, state.linear)
    a1, a2, a3, a4 = (increment[:, i] / radius for i in range(4))
    # dM = I + [[a1, a3], [a2, a4]]; its inverse in closed form, the determinant kept off zero.
    det = (1.0 + a1) * (1.0 + a4) - a2 * a3
    det = jnp.where(jnp.abs(det) < 1e-6, 1e-6, det)
    inverse = jnp.stack([jnp.stack([1.0 + a4, -a3], -1), jnp.stack([-a2, 1.0 + a1], -1)], -2) / det[:, None, None]
    linear = state.linear @ inverse
    center = state.center - jnp.einsum("kij,kj->ki", linear, shift)
    return _WarpState(center, linear)


def _align_level(
    template: _Template,
    level: _Level,
    state: _WarpState,
    frozen: jnp.ndarray,
    *,
    radius: int,
    warp: str,
    num_iterations: int,
    convergence_eps: float,
    implicit: bool = False,
) -> tuple[_WarpState, jnp.ndarray]:
    """Inverse-compositional iterations on one level; returns the warp and the weighted RMS residual [K].

    Evaluated, the iterations skip the rest of the level (`lax.cond`) once every point has frozen.
    Differentiated (a custom JVP, so under `jax.grad`, `jax.jvp`, `jax.vjp`, `jax.linearize`), they run
    the same steps without the `lax.cond` - a step of an all-frozen frame pair changes nothing, so the values
    are the same - each under `jax.checkpoint` with nothing saved: the backward pass recomputes one step's
    windows from its small carry (the warps) instead of storing every iteration's windows, and does not
    differentiate through a `lax.cond`. That costs one more evaluation of each step, and makes the gradient
    of SBR's forward-backward check about twice as fast on CPU (BENCHMARKS.md). Inputs without a tangent
    (the images, in SBR) enter the JVP as constants.

    With `implicit`, the JVP does not differentiate the iterations at all: the converged warp s* solves
    f(s*, theta) = 0, f being the increment the next iteration would take and theta the template and image,
    so by the implicit function theorem ds* = -(df/ds)^-1 (df/dtheta) dtheta, both derivatives taken once
    at s* ([K, P, P] blocks, one per point). A point frozen from the start of the level keeps the tangent of
    its starting warp. Exact where the iterations have converged, and independent of the starting warp (so
    coarser levels pass no gradient to points that move on this one).
    """
    pad = level.pad

    def increment_at(template, image, state):
        """[K, P] the next Gauss-Newton increment from warp `state`, and the window error [K, N*C]."""
        target = _Level(image, pad)
        error = _sample_warped_window(target, state, radius, warp) - template.values  # [K, N*C]
        return jnp.einsum("kpn,kn->kp", template.update_matrix, error), error

    def step(template, image, carry):
        state, done, residual = carry
        increment, error = increment_at(template, image, state)
        new_state = _compose_inverse_increment(state, increment, radius, warp)
        # A point stops, keeping its last warp, where an update would be non-finite or fold the window.
        area = _area_change(new_state.linear)
        finite = jnp.all(jnp.isfinite(new_state.center), axis=-1)
        keep = done | ~(finite & (area > _MIN_AREA_CHANGE) & (area < 1 / _MIN_AREA_CHANGE))
        state = jax.tree.map(
            lambda old, new: jnp.where(keep.reshape((-1,) + (1,) * (old.ndim - 1)), old, new), state, new_state
        )
        # The residual only sets flags; without stop_gradient, sqrt at an exact match would give NaN gradients.
        new_residual = jnp.sqrt(jax.lax.stop_gradient(error) ** 2 @ template.weights)
        residual = jnp.where(done, residual, new_residual)
        done = keep | (jnp.sum(increment**2, axis=-1) < convergence_eps**2)
        return state, done, residual

    def iterate(differentiated: bool, template: _Template, image: jnp.ndarray, init):
        if differentiated:
            checkpointed = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)

            def iteration(carry, _):
                return checkpointed(template, image, carry), None

        else:

            def iteration(carry, _):
                return jax.lax.cond(jnp.all(carry[1]), lambda c: c, lambda c: step(template, image, c), carry), None

        state, _, residual = jax.lax.scan(iteration, init, None, length=num_iterations)[0]
        return state, residual  # (`done` is not returned: a bool output would need a float0 tangent)

    if _LEGACY_GRADIENT:  # the code before the custom JVP, kept for benchmarks and tests

        def run(template, image, init):
            return iterate(False, template, image, init)

    else:

        @jax.custom_jvp
        def run(template, image, init):
            return iterate(False, template, image, init)

        def implicit_jvp(primals, tangents):
            template, image, init = primals
            state, residual = final = iterate(False, template, image, init)

            def increment_of(*args):
                return increment_at(*args)[0]

            # df/ds at s*, one [P, P] block per point: P JVPs, each moving parameter j of every point at once.
            basis = _state_basis(state, warp)
            columns = jax.vmap(lambda t: jax.jvp(lambda s: increment_of(template, image, s), (state,), (t,))[1])(
                basis
            )  # [P(parameter), K, P(increment)]
            jacobian = jnp.moveaxis(columns, 0, -1)  # [K, P(increment), P(parameter)]
            # df/dtheta dtheta, from the live tangents of the template and the image only.
            leaves, treedef = jax.tree.flatten((template, image))
            tangent_leaves = jax.tree.leaves(tangents[:2], is_leaf=lambda t: isinstance(t, _SymbolicZero))
            live = [not isinstance(t, _SymbolicZero) for t in tangent_leaves]
            if any(live):

                def live_only(*values):
                    merged = iter(values)
                    inputs = [next(merged) if is_live else leaf for leaf, is_live in zip(leaves, live)]
                    return increment_of(*jax.tree.unflatten(treedef, inputs), state)

                live_primals = [leaf for leaf, is_live in zip(leaves, live) if is_live]
                live_tangents = [t for t, is_live in zip(tangent_leaves, live) if is_live]
                rhs = jax.jvp(live_only, live_primals, live_tangents)[1]
                # ds = -(df/ds)^-1 rhs through the normal equations, whose SPD solver needs no LAPACK call
                # inside XLA:CPU loops (see _solve_spd); pivots held >= 1e-6 keep degenerate blocks finite.
                normal = jnp.einsum("kip,kiq->kpq", jacobian, jacobian)
                projected = jnp.einsum("kip,ki->kp", jacobian, rhs)[..., None]
                d_params = -_solve_spd(normal, projected, 1e-6)[..., 0]
            else:
                d_params = jnp.zeros_like(jacobian[:, 0, :])
            d_state = _state_from_params(d_params, state, warp)
            # Points frozen from the start keep their starting warp, and its tangent (zero where it has none).
            frozen = init[1]
            d_state = jax.tree.map(
                lambda d, d0: jnp.where(
                    frozen.reshape((-1,) + (1,) * (d.ndim - 1)), 0.0 if isinstance(d0, _SymbolicZero) else d0, d
                ),
                d_state,
                _WarpState(*tangents[2][0]),
                is_leaf=lambda t: isinstance(t, _SymbolicZero),
            )
            return final, (d_state, jnp.zeros_like(residual))

        def run_jvp(primals, tangents):
            if implicit:
                return implicit_jvp(primals, tangents)
            # Inputs without a tangent (e.g. the images, in SBR) are constants of the JVP, not zero tangents
            # to carry through every iteration.
            leaves, treedef = jax.tree.flatten(primals)
            tangent_leaves = jax.tree.leaves(tangents, is_leaf=lambda t: isinstance(t, _SymbolicZero))
            live = [not isinstance(t, _SymbolicZero) for t in tangent_leaves]

            def live_only(*values):
                merged = iter(values)
                inputs = [next(merged) if is_live else leaf for leaf, is_live in zip(leaves, live)]
                return iterate(True, *jax.tree.unflatten(treedef, inputs))

            live_primals = [leaf for leaf, is_live in zip(leaves, live) if is_live]
            live_tangents = [t for t, is_live in zip(tangent_leaves, live) if is_live]
            return jax.jvp(live_only, live_primals, live_tangents)

        run.defjvp(run_jvp, symbolic_zeros=True)

    # Frozen (textureless) points never get a residual from an iteration: theirs stays unknown (inf).
    init = (state, frozen, jnp.full_like(state.center[:, 0], jnp.inf))
    return run(template, level.image, init)


def _state_basis(state: _WarpState, warp: str) -> _WarpState:
    """Unit tangents of the warp parameters, stacked on a leading axis [P]: (x, y) of the centre, then (for
    the affine warp) the linear part's entries row by row; each moves that parameter of every point."""
    eye = jnp.eye(6 if warp == "affine" else 2, dtype=state.center.dtype)  # [P, P]
    # Built from `state` (not a constant) so that, inside shard_map, it is as device-varying as the warps.
    params = jnp.zeros_like(state.center[None, :, :1]) + eye[:, None, :]  # [P, K, P]
    return jax.vmap(lambda p: _state_from_params(p, state, warp))(params)


def _state_from_params(params: jnp.ndarray, state: _WarpState, warp: str) -> _WarpState:
    """[K, P] parameter vectors in `_state_basis`'s order -> a warp (tangent); translation: zero linear part."""
    center = params[:, :2]
    if warp == "affine":
        linear = params[:, 2:6].reshape(-1, 2, 2)
    else:
        linear = jnp.zeros_like(state.linear)
    return _WarpState(center, linear)


# True: `_align_level` differentiates the evaluated iterations directly (`lax.cond` early exit, every
# iteration's intermediates stored), as before the custom JVP. Read when a function is traced; only for the
# before/after figures of benchmarks/lk.py and the reference of the gradient test.
_LEGACY_GRADIENT = False


class _Options(NamedTuple):
    """The keyword arguments of `lk_track` other than num_levels (see its docstring)."""

    warp: str
    window_radius: int
    num_iterations: int
    convergence_eps: float
    regularization: float
    min_eigenvalue: float
    max_residual: float
    luma: bool
    differentiation: str = "unrolled"


_DIFFERENTIATIONS = ("unrolled", "implicit")


def _pad_edges(image: jnp.ndarray, pad: int) -> jnp.ndarray:
    """[H, W, C] -> [H + 2 pad, W + 2 pad, C], edge pixels replicated (as jnp.pad's 'edge' mode).

    Written as concatenations of broadcast edges, which XLA:CPU fuses into one pass; jnp.pad's edge mode
    compiles to about twice the work.
    """

    def pad_axis(x: jnp.ndarray, axis: int) -> jnp.ndarray:
        shape = list(x.shape)
        shape[axis] = pad
        first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
        last = jax.lax.slice_in_dim(x, x.shape[axis] - 1, x.shape[axis], axis=axis)
        return jnp.concatenate([jnp.broadcast_to(first, shape), x, jnp.broadcast_to(last, shape)], axis=axis)

    return pad_axis(pad_axis(image, 0), 1)


def _padded_pyramid(image: jnp.ndarray, num_levels: int, pad: int) -> list[_Level]:
    """[H, W, C] -> Gaussian pyramid (finest first), every level edge-padded by `pad` pixels."""
    levels = []
    level = image
    for index in range(num_levels):
        if index:
            level = pyramid_downsample(level)
        levels.append(_Level(_pad_edges(level, pad), pad))
    return levels


def _track_points(
    template_levels: list[_Level],
    target_levels: list[_Level],
    image_size: tuple[int, int],
    points: jnp.ndarray,
    options: _Options,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Coarse-to-fine tracking of points [K, 2] between two images given as padded pyramids."""
    radius, warp = options.window_radius, options.warp
    num_levels = len(template_levels)
    # Built from `points` (not a constant) so that, inside shard_map, it is as device-varying as they are.
    identity = jnp.zeros_like(points)[:, :, None] + jnp.eye(2, dtype=points.dtype)  # [K, 2, 2]
    state = _WarpState(points / 2.0 ** (num_levels - 1), identity)
    for level in reversed(range(num_levels)):
        if level < num_levels - 1:
            state = _WarpState(2.0 * state.center, state.linear)
        # Coarse levels only carry the translation: a coarse window spans few, blurred pixels, too little
        # for six parameters, and the finest level fits the affine part from a good start.
        level_warp = warp if level == 0 else "translation"
        template = _prepare_template(
            template_levels[level], points / 2.0**level, radius, level_warp, options.regularization
        )
        state, residual = _align_level(
            template,
            target_levels[level],
            state,
            template.min_eigenvalue < options.min_eigenvalue,
            radius=radius,
            warp=level_warp,
            num_iterations=options.num_iterations,
            convergence_eps=options.convergence_eps,
            implicit=options.differentiation == "implicit",
        )

    height, width = image_size
    tracked = state.center
    eigenvalue, residual, tracked_flag, points_flag, linear = jax.lax.stop_gradient(
        (template.min_eigenvalue, residual, tracked, points, state.linear)
    )

    def inside(p: jnp.ndarray) -> jnp.ndarray:
        return (p[:, 0] >= 0) & (p[:, 0] <= width - 1) & (p[:, 1] >= 0) & (p[:, 1] <= height - 1)

    area_change = _area_change(linear)
    valid = (
        inside(points_flag)
        & inside(tracked_flag)
        & (eigenvalue >= options.min_eigenvalue)
        & (residual <= options.max_residual)
        & (area_change >= _MIN_VALID_AREA_CHANGE)
        & (area_change <= 1 / _MIN_VALID_AREA_CHANGE)
    )
    return tracked, valid


def _map_pairs(function, pairs):
    """Applies `function` to every frame pair (leading axis of each array of `pairs`).

    On CPU one pair at a time (`lax.map`): a pair's pyramids stay in cache while they are used, and its
    `lax.cond` can skip converged iterations. On accelerators all pairs at once (`vmap`), which keeps the
    device busy.
    """
    if jax.default_backend() == "cpu":
        return jax.lax.map(function, pairs)
    return jax.vmap(function)(pairs)


def _check_options(options: _Options, num_levels: int) -> None:
    """Raises ValueError for an unknown warp or out-of-range numbers (checked where they are Python numbers)."""
    if options.warp not in _WARPS:
        raise ValueError(f"warp must be one of {_WARPS}, got {options.warp!r}")
    if options.differentiation not in _DIFFERENTIATIONS:
        raise ValueError(f"differentiation must be one of {_DIFFERENTIATIONS}, got {options.differentiation!r}")
    counts = (
        ("window_radius", options.window_radius),
        ("num_levels", num_levels),
        ("num_iterations", options.num_iterations),
    )
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    bounds = (
        ("convergence_eps", options.convergence_eps, 0.0, True),
        ("regularization", options.regularization, 0.0, False),
        ("min_eigenvalue", options.min_eigenvalue, 0.0, True),
        ("max_residual", options.max_residual, 0.0, True),
    )
    for name, value, low, inclusive in bounds:
        if isinstance(value, numbers.Real) and not (value >= low if inclusive else value > low):
            raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {low}, got {value!r}")


def _prepare_inputs(
    template_image: jnp.ndarray, target_image: jnp.ndarray, points: jnp.ndarray, luma: bool = False
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Checks the arrays and flattens batch dimensions: images [B, H, W, C], points [B, K, 2] (float).

    With `luma`, RGB images (C = 3) become their luma [B, H, W, 1].
    """
    template_image = jnp.asarray(template_image)
    target_image = jnp.asarray(target_image)
    points = jnp.asarray(points)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., K, 2] (x, y pixels), got {points.shape}")
    batch_shape = points.shape[:-2]
    nb = len(batch_shape)
    if template_image.ndim - nb not in (2, 3) or template_image.shape[:nb] != batch_shape:
        raise ValueError(
            f"template_image must have shape [..., H, W] or [..., H, W, C] with the leading dimensions "
            f"{batch_shape} of points [..., K, 2], got {template_image.shape}"
        )
    if target_image.shape != template_image.shape:
        raise ValueError(
            f"target_image must have the template's shape {template_image.shape}, got {target_image.shape}"
        )
    for name, image in (("template_image", template_image), ("target_image", target_image)):
        if not jnp.issubdtype(image.dtype, jnp.floating):
            raise ValueError(f"{name} must be a float image (intensities in [0, 1]), got dtype {image.dtype}")
    image_shape = template_image.shape[nb:] + (() if template_image.ndim - nb == 3 else (1,))
    if luma and image_shape[-1] != 3:
        raise ValueError(f"luma=True needs RGB images ([..., H, W, 3]), got {template_image.shape}")
    dtype = jnp.result_type(template_image.dtype, target_image.dtype, points.dtype, jnp.float32)

    def flat_images(image: jnp.ndarray) -> jnp.ndarray:
        image = image.reshape((-1,) + image_shape).astype(dtype)
        if luma:
            image = sum(weight * image[..., c : c + 1] for c, weight in enumerate(_LUMA_WEIGHTS))
        return image

    flat_points = points.reshape((-1,) + points.shape[-2:]).astype(dtype)
    return flat_images(template_image), flat_images(target_image), flat_points


def lk_track(
    template_image: jnp.ndarray,
    target_image: jnp.ndarray,
    points: jnp.ndarray,
    *,
    warp: str = "translation",
    window_radius: int = 8,
    num_levels: int = 4,
    num_iterations: int = 20,
    convergence_eps: float = 1e-2,
    regularization: float = 1e-7,
    min_eigenvalue: float = 1e-6,
    max_residual: float = 0.1,
    luma: bool = False,
    differentiation: str = "unrolled",
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Tracks points from a template image into a target image with pyramidal inverse-compositional LK.

    Args:
      template_image: [..., H, W] or [..., H, W, C] float image(s), intensities in [0, 1], where the points
        lie. The leading dimensions `...` are those of `points` (none for a single pair).
      target_image: the image(s) to track into, same shape as `template_image`.
      points: [..., K, 2] (x, y) positions in `template_image`, pixels, pixel centres at integers.
      warp: 'translation' (2 parameters per point) or 'affine' (6: the window may also rotate, scale and
        shear).
      window_radius: half-size r of the (2r+1) x (2r+1) window, in pixels of every pyramid level.
      num_levels: pyramid levels (1 = no pyramid). Each level halves the resolution; motions up to about
        window_radius * 2^(num_levels - 2) pixels are tracked (with the defaults 32 px, about twice the
        window's size).
      num_iterations: Gauss-Newton iterations per level (a fixed budget).
      convergence_eps: a point stops moving on a level once an update is shorter than this (pixels of that
        level; for the affine warp the six-parameter update, whose linear part is measured at the window's
        edge).
      regularization: > 0, added to the Hessian's diagonal (units of the structure tensor below), so that
        weakly textured windows take small, finite steps.
      min_eigenvalue: smallest accepted eigenvalue of a window's gradient structure tensor (the
        Gaussian-weighted mean of [gx, gy]^T [gx, gy] over window pixels and channels, gradients in
        intensity per pixel). Below it a point is not moved on that level, and is invalid if that level is 0.
        The default is about OpenCV's minEigThreshold of 1e-4 (whose units differ).
      max_residual: a point is valid only if the Gaussian-weighted RMS intensity difference between its
        template window and the final warped target window (level 0) is at most this.
      luma: track on the luma (0.299 R + 0.587 G + 0.114 B) of RGB images instead of on all three channels:
        about a third of the work per window, but blind to edges of hue alone (e.g. lips against skin);
        benchmarks/lk_targets.py measures what it costs in accuracy (BENCHMARKS.md).
      differentiation: how gradients pass through the tracking (values are the same either way).
        'unrolled': through every Gauss-Newton iteration of every level (SBR's paper differentiates its
        tracker this way); exact for the fixed iteration budget. 'implicit': through the converged warp of
        each level by the implicit function theorem, without differentiating the iterations (one
        linearisation per level): exact where the iterations converged, 3-4x cheaper, and blind to the
        budget; large where a window's texture is one-dimensional, and in SBR's training it kept only half
        of the unrolled gradient's gain (BENCHMARKS.md).

    Returns:
      tracked_points: [..., K, 2] (x, y) positions in `target_image`, pixels; always finite.
      valid: [..., K] bool; False where the point or its track lies outside the image, the window is
        textureless, the final residual is too large, or (affine) the window's area changed by over 4x.
    """
    options = _Options(
        warp,
        window_radius,
        num_iterations,
        convergence_eps,
        regularization,
        min_eigenvalue,
        max_residual,
        luma,
        differentiation,
    )
    _check_options(options, num_levels)
    template, target, flat_points = _prepare_inputs(template_image, target_image, points, luma)
    pad = _padding(window_radius)

    def track_pair(pair):
        template_one, target_one, points_one = pair
        template_levels = _padded_pyramid(template_one, num_levels, pad)
        target_levels = _padded_pyramid(target_one, num_levels, pad)
        return _track_points(template_levels, target_levels, template_one.shape[:2], points_one, options)

    tracked, valid = _map_pairs(track_pair, (template, target, flat_points))
    return tracked.reshape(jnp.shape(points)), valid.reshape(jnp.shape(points)[:-1])


def forward_backward_check(
    image_a: jnp.ndarray,
    image_b: jnp.ndarray,
    points: jnp.ndarray,
    threshold: float = 1.0,
    **lk_kwargs,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Tracks points a -> b, tracks the result back b -> a, and flags tracks whose round trip misses.

    Both images' pyramids are built once and used in both directions.

    Args:
      image_a: [..., H, W] or [..., H, W, C] float image(s), intensities in [0, 1], where the points lie.
      image_b: the image(s) to track into, same shape.
      points: [..., K, 2] (x, y) positions in `image_a`, pixels.
      threshold: largest accepted distance (pixels) between a point and its a -> b -> a round trip.
      **lk_kwargs: keyword arguments of `lk_track` (warp, window_radius, num_levels, ...).

    Returns:
      tracked_points: [..., K, 2] (x, y) positions in `image_b` (the forward track), pixels.
      valid: [..., K] bool: both tracks valid and the round trip within `threshold`.
    """
    keywords = {name: parameter.default for name, parameter in _LK_KEYWORDS.items()}
    unknown = set(lk_kwargs) - set(keywords)
    if unknown:
        raise ValueError(f"lk_kwargs must be keyword arguments of lk_track {sorted(keywords)}, got {sorted(unknown)}")
    keywords.update(lk_kwargs)
    num_levels = keywords.pop("num_levels")
    options = _Options(**keywords)
    _check_options(options, num_levels)
    if isinstance(threshold, numbers.Real) and not threshold >= 0:
        raise ValueError(f"threshold must be >= 0 pixels, got {threshold!r}")
    image_a, image_b, flat_points = _prepare_inputs(image_a, image_b, points, options.luma)
    pad = _padding(options.window_radius)

    def check_pair(pair):
        image_a_one, image_b_one, points_one = pair
        levels_a = _padded_pyramid(image_a_one, num_levels, pad)
        levels_b = _padded_pyramid(image_b_one, num_levels, pad)
        image_size = image_a_one.shape[:2]
        tracked, valid_forward = _track_points(levels_a, levels_b, image_size, points_one, options)
        returned, valid_backward = _track_points(levels_b, levels_a, image_size, tracked, options)
        round_trip = jax.lax.stop_gradient(jnp.sum((returned - points_one) ** 2, axis=-1))
        return tracked, valid_forward & valid_backward & (round_trip <= threshold**2)

    tracked, valid = _map_pairs(check_pair, (image_a, image_b, flat_points))
    return tracked.reshape(jnp.shape(points)), valid.reshape(jnp.shape(points)[:-1])


_LK_KEYWORDS = {
    name: parameter
    for name, parameter in inspect.signature(lk_track).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY
}
