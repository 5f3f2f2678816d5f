"""Losses of attributes predicted from landmarks (Honari et al. 2018): cross-entropy and squared error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.losses._checks import check_same_shape, check_weights, weighted_mean

__all__ = ["attribute_cross_entropy", "attribute_squared_error"]


def attribute_cross_entropy(
    logits: jnp.ndarray, labels: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Softmax cross-entropy of a discrete attribute.

    Args:
      logits: `[..., C]` float logits over the C classes.
      labels: `[...]` int class indices in [0, C) (checked when known before tracing).
      weights: optional `[...]` non-negative weight per example (e.g. 0 where the attribute is unlabelled);
        the loss is the weighted mean, 0 if every weight is 0.

    Returns:
      Scalar: the (weighted) mean over examples of `-log softmax(logits)[label]`, in nats.
    """
    if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (logits {logits.shape}); got {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype}.")
    num_classes = logits.shape[-1]
    try:
        concrete = np.asarray(labels)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        concrete = None
    if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got values in [{concrete.min()}, {concrete.max()}]."
        )
    log_probabilities = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probabilities, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if weights is not None:
        check_weights(weights, labels.shape)
    return weighted_mean(-picked, weights)


def attribute_squared_error(
    predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Squared error of regressed attributes (e.g. head pose), summed over the values of an example.

    Args:
      predicted: `[..., R]` float regressed values.
      target: `[..., R]` float targets, in the same units (e.g. head pose in radians).
      weights: optional `[...]` non-negative weight per example; the loss is the weighted mean, 0 if every
        weight is 0.

    Returns:
      Scalar: the (weighted) mean over examples of `sum_r (predicted_r - target_r)^2`, in squared units.
    """
    check_same_shape(predicted, target)
    if predicted.ndim < 1:
        raise ValueError(f"predicted must be [..., R]; got shape {predicted.shape}.")
    squared = jnp.sum(jnp.square(predicted - target), axis=-1)
    if weights is not None:
        check_weights(weights, squared.shape)
    return weighted_mean(squared, weights)
