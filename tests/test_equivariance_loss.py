"""The ELT loss, its transforms, and the RCN spatial-softmax NLL, against numpy / closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax import face_layout
from landmarkjax.losses import elt_matrix, equivariance_loss, random_elt_transform, spatial_softmax_nll

RNG = np.random.default_rng(0)


def _numpy_similarity(rotation, scale, translation, center):
    """[2, 3] numpy matrix of p -> s R (p - c) + c + t with R = [[cos, sin], [-sin, cos]] (cv2's convention)."""
    c, s = np.cos(rotation) * scale, np.sin(rotation) * scale
    linear = np.array([[c, s], [-s, c]])
    return np.concatenate([linear, (center + translation - linear @ center)[:, None]], axis=1)


def _apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def _points(batch=(2,), k=5, size=32.0):
    return RNG.uniform(0, size, size=batch + (k, 2))


def test_zero_for_an_equivariant_predictor_and_d_squared_for_a_shift():
    points = _points()
    matrix = _numpy_similarity(0.3, 1.2, np.array([2.0, -1.0]), np.array([15.5, 15.5]))
    on_warped = _apply(matrix, points)
    loss = equivariance_loss(jnp.float32(on_warped), jnp.float32(points), jnp.float32(matrix))
    assert abs(float(loss)) < 1e-8 * 32**2 + 1e-9
    shift = np.array([0.6, -0.8])  # |d| = 1
    shifted = equivariance_loss(jnp.float32(on_warped + shift), jnp.float32(points), jnp.float32(matrix))
    np.testing.assert_allclose(shifted, 1.0, rtol=1e-4)


def test_mask_drops_points_and_matrices_broadcast():
    points = _points(batch=(3,))
    matrices = np.stack([_numpy_similarity(r, 1.0, np.zeros(2), np.zeros(2)) for r in (0.1, 0.2, 0.3)])
    on_warped = np.einsum("bij,bkj->bki", matrices[:, :, :2], points) + matrices[:, None, :, 2]
    errors = RNG.normal(size=on_warped.shape)
    mask = RNG.uniform(size=points.shape[:-1]) > 0.4
    corrupted = on_warped + errors + 100.0 * (~mask)[..., None]  # masked points are far off
    expected = np.sum(errors**2, -1)[mask].mean()
    loss = equivariance_loss(*(jnp.float32(a) for a in (corrupted, points, matrices)), mask=jnp.asarray(mask))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    args = [jnp.float32(a) for a in (corrupted, points, matrices)]
    assert float(equivariance_loss(*args, mask=jnp.zeros(mask.shape))) == 0.0


@pytest.mark.parametrize("stop_gradient", ["none", "warped", "original"])
def test_stop_gradient_zeroes_the_right_side(stop_gradient):
    points = _points(batch=(1,), k=4)
    matrix = _numpy_similarity(0.2, 0.9, np.array([1.0, 2.0]), np.array([10.0, 10.0]))
    on_warped = _apply(matrix, points) + RNG.normal(size=points.shape)
    residual = on_warped - _apply(matrix, points)  # q - (A p + b)
    n = residual.shape[0] * residual.shape[1]
    grad_warped, grad_points = jax.grad(
        lambda q, p: equivariance_loss(q, p, jnp.float32(matrix), stop_gradient=stop_gradient), argnums=(0, 1)
    )(jnp.float32(on_warped), jnp.float32(points))
    expected_warped = 2.0 * residual / n  # closed form
    expected_points = -2.0 * residual @ matrix[:, :2] / n
    if stop_gradient == "warped":
        expected_warped = np.zeros_like(expected_warped)
    if stop_gradient == "original":
        expected_points = np.zeros_like(expected_points)
    np.testing.assert_allclose(grad_warped, expected_warped, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_points, expected_points, rtol=1e-4, atol=1e-6)


def test_flip_with_the_permutation_is_zero_for_a_mirror_symmetric_predictor():
    """The 'predictor' is the ground truth: on the mirrored image it returns the mirrored face's landmarks."""
    height, width = 40, 36
    landmarks = _points(batch=(2,), k=68, size=30.0)
    on_flipped = face_layout.flip_landmarks(landmarks, width)  # ground truth of the mirrored face
    matrix = elt_matrix((height, width), flip=True)
    np.testing.assert_allclose(matrix, [[-1, 0, width - 1], [0, 1, 0]], atol=1e-6)
    permutation = face_layout.flip_permutation(68)
    args = jnp.float32(on_flipped), jnp.float32(landmarks), matrix
    assert float(equivariance_loss(*args, permutation=permutation)) < 1e-8
    assert float(equivariance_loss(*args)) > 1.0  # without the permutation left and right are swapped

    # A flip followed by a similarity: the predictor sees the mirrored face, then the similarity moves it.
    center = np.array([(width - 1) / 2, (height - 1) / 2])
    similarity = _numpy_similarity(0.4, 1.1, np.array([1.5, -2.0]), center)
    matrix = elt_matrix((height, width), 0.4, 1.1, (1.5, -2.0), flip=True)
    on_warped = _apply(similarity, on_flipped)
    loss = equivariance_loss(jnp.float32(on_warped), jnp.float32(landmarks), matrix, permutation=permutation)
    assert float(loss) < 1e-6


def test_random_transform_draws_within_ranges_and_pairs_flips_with_the_permutation():
    keys = jax.random.split(jax.random.key(0, impl="rbg"), 64)
    draw = jax.jit(
        jax.vmap(lambda k: random_elt_transform(k, (32, 32), 5, 0.5, (0.8, 1.2), 3.0, flip_probability=0.5))
    )
    matrices, permutations = draw(keys)
    determinants = np.linalg.det(np.asarray(matrices[:, :, :2]))
    flipped = determinants < 0
    assert 0 < flipped.sum() < 64
    permutations = np.asarray(permutations)
    assert np.all(permutations[flipped] == face_layout.FLIP_PERMUTATION_5)
    assert np.all(permutations[~flipped] == np.arange(5))
    assert np.all((np.abs(determinants) >= 0.8**2 - 1e-5) & (np.abs(determinants) <= 1.2**2 + 1e-5))
    # Batched loss with a permutation per example: zero for the exact transform of the points.
    points = _points(batch=(64,), k=5)
    matrices_np = np.asarray(matrices)
    on_warped = np.einsum("bij,bkj->bki", matrices_np[:, :, :2], points) + matrices_np[:, None, :, 2]
    inverse = np.argsort(permutations, axis=-1)
    on_warped = np.take_along_axis(on_warped, inverse[..., None], axis=-2)  # what a flipped face predicts
    loss = equivariance_loss(jnp.float32(on_warped), jnp.float32(points), matrices, permutation=permutations)
    assert float(loss) < 1e-6


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="invertible"):
        elt_matrix((32, 32), scale=0.0)
    with pytest.raises(ValueError, match="scale_range"):
        random_elt_transform(jax.random.key(0), (32, 32), 5, scale_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="68 or 5"):
        random_elt_transform(jax.random.key(0), (32, 32), 19, flip_probability=0.5)
    with pytest.raises(ValueError, match="stop_gradient"):
        equivariance_loss(jnp.zeros([3, 2]), jnp.zeros([3, 2]), jnp.zeros([2, 3]), stop_gradient="both")


def test_spatial_softmax_nll_matches_numpy():
    batch, height, width, k = 2, 5, 6, 3
    logits = RNG.normal(size=(batch, height, width, k)).astype(np.float32)
    points = RNG.uniform(-0.4, 4.4, size=(batch, k, 2))
    points[1, 2] = (7.0, 1.0)  # outside the 6-pixel-wide map: counts as not visible
    weights = RNG.uniform(size=(batch, k)).astype(np.float32)
    nll, kept = [], []
    for b in range(batch):
        for j in range(k):
            x, y = np.round(points[b, j]).astype(int)
            if not (0 <= x < width and 0 <= y < height):
                continue
            flat = logits[b, :, :, j].astype(np.float64).ravel()
            log_p = flat - np.log(np.sum(np.exp(flat - flat.max()))) - flat.max()
            nll.append(-log_p[y * width + x])
            kept.append(weights[b, j])
    nll, kept = np.array(nll), np.array(kept)
    np.testing.assert_allclose(
        spatial_softmax_nll(jnp.asarray(logits), jnp.float32(points), jnp.asarray(weights)),
        np.sum(nll * kept) / np.sum(kept), rtol=1e-5,
    )
    unweighted = spatial_softmax_nll(jnp.asarray(logits), jnp.float32(points))
    np.testing.assert_allclose(unweighted, nll.mean(), rtol=1e-5)
