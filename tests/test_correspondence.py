"""Tests for landmarkjax.ops.correspondence.propagate_labels against a per-position numpy loop."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.ops.correspondence import memory_frames, propagate_labels


def _reference(query, keys, labels, radius, temperature, top_k=None):
    """Plain float64 loop: for each query position list its in-frame candidates, keep the top k, softmax."""
    query, keys, labels = (np.asarray(a, np.float64) for a in (query, keys, labels))
    memory, height, width, _ = keys.shape
    out = np.zeros((height, width, labels.shape[-1]))
    for i in range(height):
        for j in range(width):
            scores, values = [], []
            for m in range(memory):
                for y in range(height):
                    for x in range(width):
                        if radius is not None and (abs(y - i) > radius or abs(x - j) > radius):
                            continue
                        scores.append(float(query[i, j] @ keys[m, y, x]) / temperature)
                        values.append(labels[m, y, x])
            scores, values = np.array(scores), np.array(values)
            if top_k is not None:
                keep = np.argsort(-scores)[:top_k]
                scores, values = scores[keep], values[keep]
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            out[i, j] = weights @ values
    return out


def _inputs(seed=0, memory=2, height=6, width=7, channels=4, num_labels=3):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(height, width, channels)).astype(np.float32)
    keys = rng.normal(size=(memory, height, width, channels)).astype(np.float32)
    labels = rng.normal(size=(memory, height, width, num_labels)).astype(np.float32)
    return query, keys, labels


class PropagateLabelsVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_local_top_k_with_and_without_jit(self):
        query, keys, labels = _inputs()
        fn = self.variant(functools.partial(propagate_labels, radius=1, temperature=0.7, top_k=5))
        np.testing.assert_allclose(fn(query, keys, labels), _reference(query, keys, labels, 1, 0.7, 5), atol=1e-5)


@pytest.mark.parametrize(
    "radius, top_k, chunk_rows",
    [
        (1, None, None),  # local, one chunk
        (2, None, 4),  # local, two chunks of 4 rows over 6 (padded to 8)
        (2, 7, None),  # local + top-k
        (1, 18, 1),  # top_k = every candidate of a full window: corners have fewer (excluded, weight 0)
        (None, None, None),  # global
        (None, 5, 4),  # global + top-k, chunked
    ],
)
def test_matches_numpy_loop(radius, top_k, chunk_rows):
    query, keys, labels = _inputs(seed=1)
    got = propagate_labels(query, keys, labels, radius=radius, temperature=0.5, top_k=top_k, chunk_rows=chunk_rows)
    assert got.shape == (6, 7, 3) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _reference(query, keys, labels, radius, 0.5, top_k), atol=2e-5)


@pytest.mark.parametrize(
    "height, width, radius, top_k",
    [
        (4, 3, 2, None), (3, 4, 2, 9), (5, 9, 0, None), (2, 11, 1, 3), (9, 2, 1, None),
        # A radius at or above the shorter side: every row (or column), a window along the other axis.
        (3, 9, 4, None), (9, 3, 4, 7), (2, 6, 5, 20), (6, 2, 3, None),
    ],
)
def test_matches_numpy_loop_on_narrow_maps(height, width, radius, top_k):
    # Widths below, at and above one column block (2 radius + 1), radius 0 (the same position only).
    query, keys, labels = _inputs(seed=7, memory=3, height=height, width=width, channels=2)
    got = propagate_labels(query, keys, labels, radius=radius, temperature=0.4, top_k=top_k)
    np.testing.assert_allclose(got, _reference(query, keys, labels, radius, 0.4, top_k), atol=2e-5)


def test_borders_and_corners_exclude_outside_positions():
    # Keys of in-frame positions are equal, so each in-frame candidate gets the same weight; zero padding
    # into the softmax would add weight on (absent) zero-key positions and change the averages.
    height, width, radius = 5, 6, 2
    query = np.ones((height, width, 2), np.float32)
    keys = np.ones((1, height, width, 2), np.float32)
    labels = np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1)
    got = np.asarray(propagate_labels(query, keys, labels, radius=radius, temperature=1.0))
    for i, j in [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1), (0, 3), (2, 0), (2, 3)]:
        window = labels[0, max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1, 0]
        np.testing.assert_allclose(got[i, j, 0], window.mean(), rtol=1e-6)
    np.testing.assert_allclose(got[..., 0], _reference(query, keys, labels, radius, 1.0)[..., 0], rtol=1e-6)


@pytest.mark.parametrize("radius, top_k", [(1, None), (2, 4), (None, None), (None, 3)])
def test_one_hot_labels_give_distributions(radius, top_k):
    query, keys, _ = _inputs(seed=2)
    classes = np.random.default_rng(3).integers(0, 4, size=keys.shape[:3])
    labels = np.eye(4, dtype=np.float32)[classes]
    got = np.asarray(propagate_labels(query, keys, labels, radius=radius, temperature=0.1, top_k=top_k))
    assert got.shape == (6, 7, 4)
    assert np.all(got >= 0)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "top_k, position",
    [(None, (3, 2)), (4, (3, 2)), (18, (0, 0))],  # at the corner only 2 x 4 of the 18 candidates are in frame
)
def test_gradients_reach_query_and_keys_only_inside_the_window(top_k, position):
    query, keys, labels = _inputs(seed=4, height=7, width=7)
    radius, (i, j) = 1, position

    def one_position(q, k, lab):
        return jnp.sum(propagate_labels(q, k, lab, radius=radius, temperature=0.5, top_k=top_k)[i, j] ** 2)

    grad_q, grad_k = jax.grad(one_position, argnums=(0, 1))(query, keys, labels)
    grad_q, grad_k = np.asarray(grad_q), np.asarray(grad_k)
    assert np.all(np.isfinite(grad_q)) and np.all(np.isfinite(grad_k))
    assert np.any(grad_q[i, j] != 0) and np.any(grad_k != 0)
    # Only the query position itself and the keys of its window get a gradient.
    others = np.ones((7, 7), bool)
    others[i, j] = False
    assert np.all(grad_q[others] == 0)
    outside = np.ones((7, 7), bool)
    outside[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1] = False
    assert np.all(grad_k[:, outside] == 0)
    in_frame = 2 * np.count_nonzero(~outside)
    # Exactly the kept in-frame candidates have a key gradient.
    assert np.count_nonzero(np.any(grad_k != 0, axis=-1)) == min(top_k or in_frame, in_frame)

    # The key gradient agrees with central finite differences in float64 of the reference.
    direction = np.random.default_rng(5).normal(size=keys.shape)
    eps = 1e-4

    def reference_loss(k):
        return np.sum(_reference(query, k, labels, radius, 0.5, top_k)[i, j] ** 2)

    numeric = (reference_loss(keys + eps * direction) - reference_loss(keys - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad_k * direction), numeric, rtol=2e-3, atol=1e-4)


def test_vmap_over_a_batch_under_jit():
    batch = [_inputs(seed=10 + b, height=5, width=6) for b in range(3)]
    query, keys, labels = (np.stack(parts) for parts in zip(*batch))
    fn = jax.jit(jax.vmap(functools.partial(propagate_labels, radius=1, temperature=0.3, top_k=6)))
    got = np.asarray(fn(query, keys, labels))
    assert got.shape == (3, 5, 6, 3)
    for b in range(3):
        np.testing.assert_allclose(got[b], _reference(query[b], keys[b], labels[b], 1, 0.3, 6), atol=2e-5)


def test_traced_temperature_under_jit():
    query, keys, labels = _inputs(seed=6)
    fn = jax.jit(lambda t: propagate_labels(query, keys, labels, radius=2, temperature=t))
    np.testing.assert_allclose(fn(0.25), _reference(query, keys, labels, 2, 0.25), atol=2e-5)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(keys_shape=(2, 5, 7, 4)), "spatial size"),
        (dict(keys_shape=(2, 6, 7, 5)), "channels"),
        (dict(labels_shape=(2, 6, 6, 3)), "memory_labels"),
        (dict(query_shape=(6, 7)), r"\[H, W, C\]"),
        (dict(radius=7), "radius must be smaller than the feature map's larger side max"),
        (dict(radius=-1), "radius"),
        (dict(radius=1.5), "radius"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=19), "top_k"),  # 2 frames x 3 x 3 = 18 candidates
        (dict(radius=None, top_k=2 * 6 * 7 + 1), "top_k"),
        (dict(chunk_rows=0), "chunk_rows"),
    ],
)
def test_rejects_bad_arguments(change, match):
    settings = dict(query_shape=(6, 7, 4), keys_shape=(2, 6, 7, 4), labels_shape=(2, 6, 7, 3), radius=1,
                    temperature=1.0, top_k=None, chunk_rows=None)
    settings.update(change)
    with pytest.raises(ValueError, match=match):
        propagate_labels(
            np.zeros(settings["query_shape"], np.float32),
            np.zeros(settings["keys_shape"], np.float32),
            np.zeros(settings["labels_shape"], np.float32),
            radius=settings["radius"],
            temperature=settings["temperature"],
            top_k=settings["top_k"],
            chunk_rows=settings["chunk_rows"],
        )


@pytest.mark.parametrize(
    "t, expected",
    [
        # Written out from the rule "long-term 0 and 5, short-term t-1, t-3, t-5" (MAST's benchmark.py).
        (1, (0,)),
        (2, (0, 1)),
        (3, (0, 2)),
        (4, (0, 1, 3)),
        (5, (0, 2, 4)),
        (6, (0, 1, 3, 5)),
        (7, (0, 2, 4, 5, 6)),
        (8, (0, 3, 5, 7)),
        (10, (0, 5, 7, 9)),
        (11, (0, 5, 6, 8, 10)),
        (100, (0, 5, 95, 97, 99)),
    ],
)
def test_memory_frames_are_mast_long_and_short_term(t, expected):
    assert memory_frames(t) == expected


def test_memory_frames_custom_schedule_and_errors():
    # DINO-like: first frame plus the last 3.
    assert memory_frames(2, long_term=(0,), short_term=(1, 2, 3)) == (0, 1)
    assert memory_frames(9, long_term=(0,), short_term=(1, 2, 3)) == (0, 6, 7, 8)
    assert memory_frames(3, long_term=(0,), short_term=()) == (0,)
    for bad in (0, -1, 1.0):
        with pytest.raises(ValueError, match="t must be"):
            memory_frames(bad)
    with pytest.raises(ValueError, match="short_term"):
        memory_frames(4, short_term=(0,))
    with pytest.raises(ValueError, match="long_term"):
        memory_frames(4, long_term=(-1,))
    with pytest.raises(ValueError, match="no memory frame"):
        memory_frames(2, long_term=(5,), short_term=(3,))


@pytest.mark.parametrize("radius, top_k", [(3, None), (3, 10), (None, None), (None, 10)])
def test_compiled_memory_is_a_few_chunks_not_the_full_affinity(radius, top_k):
    # XLA's own count of the temporary buffers of the compiled forward and backward passes (nothing runs).
    height, width, channels, memory, num_labels, rows = 32, 48, 16, 3, 4, 2
    shapes = [(height, width, channels), (memory, height, width, channels), (memory, height, width, num_labels)]
    arguments = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in shapes]
    propagate = functools.partial(propagate_labels, radius=radius, temperature=0.1, top_k=top_k, chunk_rows=rows)
    gradient = jax.grad(lambda q, k, lab: jnp.sum(propagate(q, k, lab) ** 2), argnums=(0, 1))
    candidates = memory * height * width if radius is None else memory * (2 * radius + 1) ** 2
    chunk_bytes = 4 * rows * width * candidates
    input_bytes = 4 * sum(int(np.prod(shape)) for shape in shapes)
    full_bytes = 4 * memory * (height * width) ** 2
    for function in (propagate, gradient):
        temp = jax.jit(function).lower(*arguments).compile().memory_analysis().temp_size_in_bytes
        assert temp <= 4 * chunk_bytes + 4 * input_bytes, (temp, chunk_bytes, input_bytes)
        assert temp < full_bytes / 3, (temp, full_bytes)
