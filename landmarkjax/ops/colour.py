"""sRGB <-> CIE L*a*b* (D65 white, 2-degree observer), matching scikit-image's rgb2lab / lab2rgb.

The constants are scikit-image's (its sRGB -> XYZ matrix and D65 white (0.95047, 1, 1.08883)), so results
agree with `skimage.color.rgb2lab` / `lab2rgb` to float32 precision. The piecewise functions (sRGB gamma
and the Lab cube root) use the double-`where` pattern: the power branch only ever sees inputs inside its
own segment, so values and gradients are finite everywhere, including at exactly 0. Pure `jnp`, batched
over leading dimensions, safe under `jax.jit`, `jax.vmap` and `jax.grad`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["rgb_to_lab", "lab_to_rgb"]

_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])

# sRGB transfer function (IEC 61966-2-1).
_SRGB_ENCODED_KNEE = 0.04045
_SRGB_LINEAR_KNEE = 0.0031308
# CIE Lab: f(t) = t^(1/3) above (6/29)^3, else t / (3 (6/29)^2) + 4/29 (continuous, with a continuous slope).
_LAB_DELTA = 6.0 / 29.0


def _check_colours(colours: jnp.ndarray, name: str) -> jnp.ndarray:
    colours = jnp.asarray(colours)
    if colours.ndim < 1 or colours.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [..., 3], got {colours.shape}")
    if not jnp.issubdtype(colours.dtype, jnp.floating):
        colours = colours.astype(jnp.float32)
    return colours


def _srgb_to_linear(encoded: jnp.ndarray) -> jnp.ndarray:
    power_segment = encoded > _SRGB_ENCODED_KNEE
    safe = jnp.where(power_segment, encoded, 1.0)
    return jnp.where(power_segment, ((safe + 0.055) / 1.055) ** 2.4, encoded / 12.92)


def _linear_to_srgb(linear: jnp.ndarray) -> jnp.ndarray:
    power_segment = linear > _SRGB_LINEAR_KNEE
    safe = jnp.where(power_segment, linear, 1.0)
    return jnp.where(power_segment, 1.055 * safe ** (1.0 / 2.4) - 0.055, 12.92 * linear)


def _lab_f(t: jnp.ndarray) -> jnp.ndarray:
    cube_root_segment = t > _LAB_DELTA**3
    safe = jnp.where(cube_root_segment, t, 1.0)
    return jnp.where(cube_root_segment, jnp.cbrt(safe), t / (3 * _LAB_DELTA**2) + 4.0 / 29.0)


def _lab_f_inverse(f: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))


def _matmul(colours: jnp.ndarray, matrix: np.ndarray) -> jnp.ndarray:
    return colours @ jnp.asarray(matrix.T, colours.dtype)


def rgb_to_lab(rgb: jnp.ndarray) -> jnp.ndarray:
    """Converts sRGB to CIE L*a*b* under the D65 white point (as `skimage.color.rgb2lab`).

    Args:
      rgb: [..., 3] sRGB (gamma-encoded) colours in [0, 1]; values outside are converted by the same
        formulas, not clipped.

    Returns:
      [..., 3] (L*, a*, b*): L* in [0, 100] for inputs in [0, 1], a* and b* roughly in [-128, 127].
    """
    rgb = _check_colours(rgb, "rgb")
    xyz = _matmul(_srgb_to_linear(rgb), _XYZ_FROM_RGB)
    f = _lab_f(xyz / jnp.asarray(_D65_WHITE, rgb.dtype))
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jnp.ndarray) -> jnp.ndarray:
    """Converts CIE L*a*b* (D65 white) to sRGB, the inverse of `rgb_to_lab` (as `skimage.color.lab2rgb`).

    Unlike scikit-image, nothing is clipped: colours outside the sRGB gamut come back outside [0, 1]
    (scikit-image clips negative Z to 0 and the result to [0, 1]); clip them yourself if you need to.

    Args:
      lab: [..., 3] (L*, a*, b*), L* in [0, 100].

    Returns:
      [..., 3] sRGB (gamma-encoded) colours, in [0, 1] for in-gamut inputs.
    """
    lab = _check_colours(lab, "lab")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = jnp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = _lab_f_inverse(f) * jnp.asarray(_D65_WHITE, lab.dtype)
    return _linear_to_srgb(_matmul(xyz, _RGB_FROM_XYZ))
