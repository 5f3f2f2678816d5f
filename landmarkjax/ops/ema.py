"""Momentum (exponential moving average) updates of parameter pytrees, and BYOL's momentum schedule.

Used for momentum ("key") encoders as in MoCo / BYOL / Zhu et al.'s VOS: the target network's parameters
follow the online network's as target <- m * target + (1 - m) * online. Pure `jnp`, safe under `jax.jit`
(the momentum and the step may be traced).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["momentum_update", "momentum_schedule"]


def _check_unit_interval(value, name: str) -> None:
    """Checks a concrete number lies in [0, 1]; traced values are accepted as they are."""
    if isinstance(value, numbers.Real) and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def momentum_update(target: Any, online: Any, momentum: float | jnp.ndarray) -> Any:
    """Moves every leaf of `target` toward `online`: target <- momentum * target + (1 - momentum) * online.

    Args:
      target: pytree of floating arrays (e.g. the momentum encoder's parameters).
      online: pytree with exactly the same structure and leaf shapes (the online encoder's parameters).
      momentum: m in [0, 1], a Python float or a scalar array (may be traced); 1 keeps `target`,
        0 copies `online`.

    Returns:
      A pytree with `target`'s structure, each leaf in `target`'s dtype.
    """
    target_structure = jax.tree.structure(target)
    online_structure = jax.tree.structure(online)
    if target_structure != online_structure:
        raise ValueError(
            "target and online must have the same tree structure, got "
            f"target: {target_structure} and online: {online_structure}"
        )
    _check_unit_interval(momentum, "momentum")
    if jnp.ndim(momentum) != 0:
        raise ValueError(f"momentum must be a scalar, got shape {jnp.shape(momentum)}")
    paths_and_targets, _ = jax.tree_util.tree_flatten_with_path(target)
    for (path, target_leaf), online_leaf in zip(paths_and_targets, jax.tree.leaves(online), strict=True):
        where = jax.tree_util.keystr(path) or "<root>"
        if jnp.shape(target_leaf) != jnp.shape(online_leaf):
            raise ValueError(
                f"target and online leaves at {where} must have the same shape, got target "
                f"{jnp.shape(target_leaf)} and online {jnp.shape(online_leaf)}"
            )
        if not jnp.issubdtype(jnp.result_type(target_leaf), jnp.floating):
            raise ValueError(
                f"target leaf at {where} must be floating point, got dtype {jnp.result_type(target_leaf)}"
            )

    def update(target_leaf, online_leaf):
        dtype = jnp.result_type(target_leaf)
        return (momentum * target_leaf + (1.0 - momentum) * online_leaf).astype(dtype)

    return jax.tree.map(update, target, online)


def momentum_schedule(
    step: int | jnp.ndarray,
    total_steps: int,
    base_momentum: float = 0.99,
    final_momentum: float = 1.0,
) -> jnp.ndarray:
    """BYOL's cosine momentum schedule, rising from `base_momentum` at step 0 to `final_momentum`.

    m(k) = final - (final - base) * (cos(pi * k / K) + 1) / 2 with K = total_steps (BYOL, Grill et al.
    2020, uses base 0.996 and final 1). The step is clipped to [0, K], so the momentum holds at `final`
    after the last step, as optax's cosine schedules do.

    Args:
      step: current step k (Python int or a traced integer / float scalar).
      total_steps: K >= 1, number of steps of the schedule (Python int).
      base_momentum: momentum at step 0, in [0, 1].
      final_momentum: momentum at step K and after, in [0, 1].

    Returns:
      float32 scalar momentum.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive Python int, got {total_steps!r}")
    _check_unit_interval(base_momentum, "base_momentum")
    _check_unit_interval(final_momentum, "final_momentum")
    if jnp.ndim(step) != 0:
        raise ValueError(f"step must be a scalar, got shape {jnp.shape(step)}")
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return final_momentum - (final_momentum - base_momentum) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
