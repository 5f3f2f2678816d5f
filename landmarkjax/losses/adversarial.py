"""Least-squares GAN losses (Mao et al. 2017), as HMR trains its factorised body prior.

A discriminator gives unbounded scores (no sigmoid), one per head (HMR: 23 joints + whole pose + shape
= 25). Targets: real -> 1, fake -> 0 for the discriminator; fake -> 1 for the generator (the encoder). As
in HMR's official code, each loss sums the squared errors over the heads and averages over the batch.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["lsgan_discriminator_loss", "lsgan_generator_loss"]


def _check_scores(name: str, scores: jnp.ndarray) -> jnp.ndarray:
    scores = jnp.asarray(scores)
    if scores.ndim < 2:
        raise ValueError(f"{name} must be [..., H] discriminator scores with a batch axis; got {scores.shape}.")
    return scores


def _sum_heads_mean_batch(squared: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(jnp.sum(squared, axis=-1))


def lsgan_discriminator_loss(real_scores: jnp.ndarray, fake_scores: jnp.ndarray) -> jnp.ndarray:
    """The discriminator's least-squares loss: mean_b sum_h (D(real) - 1)^2 + mean_b sum_h D(fake)^2.

    Args:
      real_scores: [..., H] scores of real samples (HMR: mocap poses and shapes), H heads.
      fake_scores: [..., H] scores of generated samples (HMR: the encoder's, with its gradient stopped);
        the batch size may differ from `real_scores`'.

    Returns:
      Scalar, unitless; 0 when every real score is 1 and every fake score is 0.
    """
    real_scores = _check_scores("real_scores", real_scores)
    fake_scores = _check_scores("fake_scores", fake_scores)
    if real_scores.shape[-1] != fake_scores.shape[-1]:
        raise ValueError(
            f"real_scores and fake_scores must have the same number of heads; got {real_scores.shape} and "
            f"{fake_scores.shape}."
        )
    return _sum_heads_mean_batch(jnp.square(real_scores - 1.0)) + _sum_heads_mean_batch(jnp.square(fake_scores))


def lsgan_generator_loss(fake_scores: jnp.ndarray) -> jnp.ndarray:
    """The generator's (HMR: the encoder's) least-squares loss: mean_b sum_h (D(fake) - 1)^2.

    Args:
      fake_scores: [..., H] discriminator scores of generated samples.

    Returns:
      Scalar, unitless; 0 when every fake score is 1.
    """
    fake_scores = _check_scores("fake_scores", fake_scores)
    return _sum_heads_mean_batch(jnp.square(fake_scores - 1.0))
