"""Tests for landmarkjax.metrics against numpy references written from the definitions, DAVIS's boundary
measure rebuilt with scikit-image and OpenCV, and closed forms."""

import functools
import math

import chex
import cv2
import jax
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.integrate import simpson
from scipy.spatial.transform import Rotation
from skimage.morphology import disk

from landmarkjax import metrics
from landmarkjax.metrics import (
    auc,
    boundary_f,
    cumulative_error_distribution,
    failure_rate,
    jitter,
    mpjpe,
    nme,
    pa_mpjpe,
    pck,
    region_jaccard,
)

# ----------------------------------------------------------------------------------------------------------
# Independent numpy references, written from the definitions.


def np_nme(pred, gt, normalizer, visibility=None):
    """Loop over samples; 68-point indices written out by hand."""
    pred = np.asarray(pred, np.float64).reshape((-1,) + pred.shape[-2:])
    gt_flat = np.asarray(gt, np.float64).reshape((-1,) + gt.shape[-2:])
    vis = np.ones(gt_flat.shape[:2], bool)
    if visibility is not None:
        vis = np.asarray(visibility).reshape(vis.shape) != 0
    out = []
    named = normalizer if isinstance(normalizer, str) else None
    for n, (p, g, v) in enumerate(zip(pred, gt_flat, vis)):
        if named == "inter_ocular":
            d = math.dist(g[36], g[45])
        elif named == "inter_pupil":
            d = math.dist(g[[36, 37, 38, 39, 40, 41]].mean(0), g[[42, 43, 44, 45, 46, 47]].mean(0))
        elif named == "bbox":
            visible = g[v]
            w = visible[:, 0].max() - visible[:, 0].min()
            h = visible[:, 1].max() - visible[:, 1].min()
            d = math.sqrt(w * h)
        else:
            d = np.broadcast_to(np.asarray(normalizer, np.float64), gt.shape[:-2]).reshape(-1)[n]
        errors = [math.dist(p[k], g[k]) for k in range(len(p)) if v[k]]
        out.append(sum(errors) / len(errors) / d if errors else np.nan)
    return np.array(out).reshape(gt.shape[:-2])


def np_ced(errors, threshold, step):
    xs = np.arange(0.0, threshold + step / 2, step)
    return xs, np.array([np.count_nonzero(errors <= x) / len(errors) for x in xs])


def np_auc_trapezoid(errors, threshold=0.08, step=1e-4):
    xs, ced = np_ced(errors, threshold, step)
    return np.trapezoid(ced, xs) / threshold


def np_pck(pred, gt, threshold, scale=None, visibility=None):
    dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    radius = threshold if scale is None else threshold * np.asarray(scale, np.float64)[..., None]
    correct = dist <= radius
    if visibility is None:
        return correct.mean(-1)
    vis = np.asarray(visibility) != 0
    return (correct & vis).sum(-1) / vis.sum(-1)


def np_umeyama_error(pred, gt):
    """Umeyama (1991) similarity alignment of pred onto gt for one skeleton, then mean joint error."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p, g = pred - mu_p, gt - mu_g
    sigma = g.T @ p / len(pred)
    u, d, vt = np.linalg.svd(sigma)
    s_fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s_fix[2, 2] = -1
    rotation = u @ s_fix @ vt
    scale = np.trace(np.diag(d) @ s_fix) / (p**2).sum(1).mean()
    translation = mu_g - scale * rotation @ mu_p
    aligned = scale * pred @ rotation.T + translation
    return np.linalg.norm(aligned - gt, axis=-1).mean()


def np_seg2bmap(seg):
    """DAVIS `_seg2bmap` for equal sizes (boundary offset half a pixel toward the origin)."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def np_davis_f(pred_mask, gt_mask, bound_th=0.008):
    """DAVIS-2017 `f_measure`: skimage disk, OpenCV dilation, the same special cases."""
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred_mask.shape))
    fg = np_seg2bmap(pred_mask)
    gt = np_seg2bmap(gt_mask)
    footprint = disk(bound_pix).astype(np.uint8)
    fg_dil = cv2.dilate(fg.astype(np.uint8), footprint)
    gt_dil = cv2.dilate(gt.astype(np.uint8), footprint)
    n_fg, n_gt = fg.sum(), gt.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = (fg * gt_dil).sum() / n_fg
        recall = (gt * fg_dil).sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def np_jitter(tracks):
    t = tracks.shape[-3]
    total = np.zeros(tracks.shape[:-3])
    for i in range(1, t - 1):
        acc = tracks[..., i + 1, :, :] - 2 * tracks[..., i, :, :] + tracks[..., i - 1, :, :]
        total += np.linalg.norm(acc, axis=-1).mean(-1)
    return total / (t - 2)


# ----------------------------------------------------------------------------------------------------------
# Data.


def random_faces(rng, batch=(4,), k=68, noise=3.0):
    gt = rng.uniform(20, 200, size=batch + (k, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, noise, size=gt.shape)).astype(np.float32)
    return pred, gt


def random_blob(rng, height, width):
    """A random ellipse union: a mask with a non-trivial boundary."""
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(3, height / 2), rng.uniform(3, width / 2)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def random_similarity(rng):
    rotation = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    return rng.uniform(0.5, 2.0), rotation, rng.normal(0, 100, size=3)


# ----------------------------------------------------------------------------------------------------------
# Chex variants: jit and no jit give the reference values.


class MetricsVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("inter_ocular", "inter_pupil", "bbox")
    def test_nme_named_normalizers(self, normalizer):
        rng = np.random.default_rng(0)
        pred, gt = random_faces(rng, batch=(2, 3))
        got = self.variant(functools.partial(nme, normalizer=normalizer))(pred, gt)
        chex.assert_shape(got, (2, 3))
        np.testing.assert_allclose(got, np_nme(pred, gt, normalizer), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nme_array_normalizer_and_visibility(self):
        rng = np.random.default_rng(1)
        pred, gt = random_faces(rng, batch=(5,), k=19)
        scale = rng.uniform(50, 100, size=5).astype(np.float32)
        visibility = rng.random((5, 19)) > 0.3
        gt_with_nan = np.where(visibility[..., None], gt, np.nan).astype(np.float32)
        got = self.variant(nme)(pred, gt_with_nan, scale, visibility)
        np.testing.assert_allclose(got, np_nme(pred, gt, scale, visibility), rtol=1e-5)
        bbox_nme = self.variant(functools.partial(nme, normalizer="bbox"))
        got_bbox = bbox_nme(pred, gt_with_nan, visibility=visibility)
        np.testing.assert_allclose(got_bbox, np_nme(pred, gt, "bbox", visibility), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_auc_and_failure_rate(self):
        rng = np.random.default_rng(2)
        errors = rng.gamma(4.0, 0.012, size=600).astype(np.float32)
        np.testing.assert_allclose(self.variant(auc)(errors), np_auc_trapezoid(errors), atol=1e-5)
        np.testing.assert_allclose(self.variant(failure_rate)(errors), np.mean(errors > 0.08), atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_pck(self):
        rng = np.random.default_rng(3)
        pred, gt = random_faces(rng, batch=(6,), k=14, noise=10.0)
        scale = rng.uniform(20, 40, size=6)
        visibility = rng.random((6, 14)) > 0.2
        got = self.variant(pck)(pred, gt, 0.5, scale, visibility)
        np.testing.assert_allclose(got, np_pck(pred, gt, 0.5, scale, visibility), atol=1e-6)
        got_mm = self.variant(functools.partial(pck, threshold=12.0))(pred, gt)
        np.testing.assert_allclose(got_mm, np_pck(pred, gt, 12.0), atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mpjpe_matches_numpy(self):
        rng = np.random.default_rng(4)
        gt = rng.normal(0, 300, size=(3, 17, 3)).astype(np.float32)
        pred = (gt + rng.normal(0, 40, size=gt.shape) + 500).astype(np.float32)
        for root in (0, (2, 3)):
            got = self.variant(functools.partial(mpjpe, root_joint=root))(pred, gt)
            root_idx = list(np.atleast_1d(root))
            p = pred - pred[:, root_idx].mean(1, keepdims=True)
            g = gt - gt[:, root_idx].mean(1, keepdims=True)
            np.testing.assert_allclose(got, np.linalg.norm(p - g, axis=-1).mean(-1), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_pa_mpjpe_matches_numpy_umeyama(self):
        rng = np.random.default_rng(5)
        gt = rng.normal(0, 300, size=(4, 14, 3))
        pred = np.stack([random_similarity(rng)[1] @ g.T for g in gt]).transpose(0, 2, 1)
        pred = pred + rng.normal(0, 50, size=gt.shape)
        got = self.variant(pa_mpjpe)(pred.astype(np.float32), gt.astype(np.float32))
        expected = [np_umeyama_error(p, g) for p, g in zip(pred, gt)]
        np.testing.assert_allclose(got, expected, rtol=1e-3)

    @chex.variants(with_jit=True, without_jit=True)
    def test_region_jaccard(self):
        rng = np.random.default_rng(6)
        pred = np.stack([random_blob(rng, 30, 40) for _ in range(4)] + [np.zeros((30, 40), bool)])
        gt = np.stack([random_blob(rng, 30, 40) for _ in range(4)] + [np.zeros((30, 40), bool)])
        got = self.variant(region_jaccard)(pred, gt.astype(np.uint8))
        expected = [(p & g).sum() / (p | g).sum() for p, g in zip(pred[:4], gt[:4])] + [1.0]
        np.testing.assert_allclose(got, expected, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_boundary_f_matches_davis(self):
        rng = np.random.default_rng(7)
        height, width = 72, 128  # radius ceil(0.008 * 146.8) = 2
        pred = np.stack([random_blob(rng, height, width) for _ in range(6)])
        gt = np.stack([random_blob(rng, height, width) for _ in range(6)])
        # Pairs with partial boundary agreement: a slightly shifted copy of the ground truth.
        pred[3:] = np.roll(gt[3:], shift=(rng.integers(2, 5), rng.integers(-4, 4)), axis=(1, 2))
        for bound_th in (0.008, 3):
            got = self.variant(functools.partial(boundary_f, bound_th=bound_th))(pred, gt)
            expected = [np_davis_f(p, g, bound_th) for p, g in zip(pred, gt)]
            np.testing.assert_allclose(got, expected, atol=1e-6)
            self.assertGreaterEqual(sum(0 < f < 1 for f in expected), 4)  # not only the trivial 0 and 1

    @chex.variants(with_jit=True, without_jit=True)
    def test_jitter_matches_numpy(self):
        rng = np.random.default_rng(8)
        tracks = rng.normal(0, 5, size=(2, 7, 5, 2)).astype(np.float32)
        np.testing.assert_allclose(self.variant(jitter)(tracks), np_jitter(tracks), rtol=1e-5)
        scale = np.array([2.0, 4.0], np.float32)
        np.testing.assert_allclose(self.variant(jitter)(tracks, scale), np_jitter(tracks) / scale, rtol=1e-5)


def test_vmap_equals_batched_call():
    rng = np.random.default_rng(9)
    pred, gt = random_faces(rng, batch=(3,))
    np.testing.assert_allclose(jax.vmap(nme)(pred, gt), nme(pred, gt), rtol=1e-6)
    masks = np.stack([random_blob(rng, 40, 40) for _ in range(6)]).reshape(3, 2, 40, 40)
    np.testing.assert_allclose(
        jax.vmap(boundary_f)(masks[:, 0], masks[:, 1]), boundary_f(masks[:, 0], masks[:, 1])
    )
    joints = rng.normal(size=(3, 2, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(
        jax.vmap(pa_mpjpe)(joints[:, 0], joints[:, 1]), pa_mpjpe(joints[:, 0], joints[:, 1]), rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------------------
# Closed forms.


def test_nme_closed_form():
    gt = np.zeros((68, 2), np.float32)
    gt[:, 0] = np.arange(68)
    gt[36], gt[45] = (10.0, 50.0), (60.0, 50.0)  # inter-ocular distance 50
    pred = gt + np.array([3.0, 4.0], np.float32)  # every point 5 px off
    np.testing.assert_allclose(nme(pred, gt, "inter_ocular"), 0.1, rtol=1e-6)
    np.testing.assert_allclose(nme(pred, gt, 2.5), 2.0, rtol=1e-6)
    np.testing.assert_allclose(nme(gt, gt, "bbox"), 0.0)


def test_auc_closed_forms():
    t = 0.08
    assert float(auc(np.zeros(10))) == pytest.approx(1.0, abs=1e-6)
    assert float(auc(np.full(10, 0.09))) == 0.0
    uniform = (np.arange(20000) + 0.5) / 20000 * t
    assert float(auc(uniform, t)) == pytest.approx(0.5, abs=1e-4)
    # One error strictly inside grid interval k: CED is 0 up to x_{k-1}, 1 from x_k on, and the trapezoid
    # rule credits half of the interval in between.
    step, k = t / 800, 300
    single = np.array([(k - 0.5) * step])
    assert float(auc(single, t)) == pytest.approx((t - k * step + step / 2) / t, abs=1e-5)
    assert float(failure_rate(np.array([0.0, 0.08, 0.0801, np.nan]))) == 0.5


def test_auc_close_to_simpson_rule_of_300w_code():
    rng = np.random.default_rng(10)
    errors = rng.gamma(4.0, 0.012, size=700)
    xs, ced = np_ced(errors, 0.08, 1e-4)
    assert abs(float(auc(errors)) - simpson(ced, x=xs) / 0.08) < 1e-3


def test_cumulative_error_distribution_grid_and_nan():
    grid, fraction = cumulative_error_distribution(np.array([0.01, 0.05, np.nan, 0.2]), 0.1, num_steps=10)
    np.testing.assert_allclose(grid, np.linspace(0, 0.1, 11), atol=1e-7)
    np.testing.assert_allclose(fraction, [0] + [0.25] * 4 + [0.5] * 6)


def test_pck_closed_form():
    gt = np.zeros((4, 3), np.float32)
    pred = np.array([[0, 0, 100], [0, 0, 150], [0, 0, 151], [0, 0, 300]], np.float32)
    assert float(pck(pred, gt, 150.0)) == 0.5
    assert float(pck(pred, gt, 0.5, normalizer=300.0)) == 0.5
    assert np.isnan(float(pck(pred, gt, 150.0, visibility=np.zeros(4))))


def test_mpjpe_closed_forms():
    rng = np.random.default_rng(11)
    gt = rng.normal(0, 100, size=(14, 3)).astype(np.float32)
    np.testing.assert_allclose(mpjpe(gt + 37.0, gt), 0.0, atol=1e-4)
    pred = gt.copy()
    pred[5] += np.array([0, 30, 40], np.float32)
    np.testing.assert_allclose(mpjpe(pred, gt), 50 / 14, rtol=1e-5)
    # LSP-style root = mean of the hips (joints 2 and 3): moving one hip by 2a moves the root by a.
    pred = gt.copy()
    pred[2] += np.array([20.0, 0, 0], np.float32)
    expected = (10 * 13 + 10) / 14
    np.testing.assert_allclose(mpjpe(pred, gt, root_joint=(2, 3)), expected, rtol=1e-5)


def test_pa_mpjpe_closed_forms():
    rng = np.random.default_rng(12)
    gt = rng.normal(0, 300, size=(17, 3))
    scale, rotation, translation = random_similarity(rng)
    pred = (gt - translation) @ rotation / scale  # gt = scale * pred @ R.T + t exactly
    np.testing.assert_allclose(pa_mpjpe(pred.astype(np.float32), gt.astype(np.float32)), 0.0, atol=2e-2)
    # A mirror image cannot be undone by a proper rotation: the error stays, and matches Umeyama's fix.
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    got = float(pa_mpjpe(mirrored.astype(np.float32), gt.astype(np.float32)))
    assert got > 10.0
    assert got == pytest.approx(np_umeyama_error(mirrored, gt), rel=1e-4)


def test_boundary_f_closed_forms():
    height, width = 100, 100  # radius ceil(0.008 * 141.4) = 2
    square = np.zeros((height, width), bool)
    square[30:70, 30:70] = True
    far = np.zeros_like(square)
    far[85:95, 5:15] = True
    empty = np.zeros_like(square)
    assert float(boundary_f(square, square)) == 1.0
    assert float(boundary_f(square, far)) == 0.0
    assert float(boundary_f(empty, empty)) == 1.0
    assert float(boundary_f(square, empty)) == 0.0
    assert float(boundary_f(empty, square)) == 0.0
    # Shifting by the tolerance radius keeps every boundary pixel matched; three pixels does not.
    assert float(boundary_f(np.roll(square, 2, axis=1), square)) == 1.0
    assert float(boundary_f(np.roll(square, 3, axis=1), square)) < 1.0
    assert float(region_jaccard(empty, empty)) == 1.0
    assert float(region_jaccard(square, far)) == 0.0


def test_boundary_f_at_davis_resolution():
    # 480p DAVIS frames: tolerance radius ceil(0.008 * 978.6) = 8 pixels.
    rng = np.random.default_rng(14)
    gt = random_blob(rng, 480, 854)
    pred = np.roll(gt, shift=(6, -9), axis=(0, 1)) ^ (rng.random(gt.shape) < 0.001)
    assert float(boundary_f(pred, gt)) == pytest.approx(np_davis_f(pred, gt), abs=1e-6)


def test_jitter_closed_forms():
    t = np.arange(10, dtype=np.float32)[:, None, None]
    constant_velocity = np.array([[3.0, -2.0], [0.5, 7.0]], np.float32) * t + 40.0
    np.testing.assert_allclose(jitter(constant_velocity), 0.0, atol=1e-5)
    # p = a t^2 has second difference 2a every frame.
    accelerating = np.array([[3.0, 4.0]], np.float32) * t**2
    np.testing.assert_allclose(jitter(accelerating), 10.0, rtol=1e-5)
    # White noise of std sigma: each acceleration coordinate has std sqrt(6) sigma; the mean norm of such a
    # 2D Gaussian is sqrt(6) sigma * sqrt(pi / 2) = sqrt(3 pi) sigma.
    noise = np.random.default_rng(13).normal(0, 2.0, size=(200, 50, 2)).astype(np.float32)
    assert float(jitter(noise)) == pytest.approx(math.sqrt(3 * math.pi) * 2.0, rel=0.02)


# ----------------------------------------------------------------------------------------------------------
# Finite gradients, including at zero error where a plain norm has a NaN gradient.

_finite = dict(allow_nan=False, allow_infinity=False, width=32)
points68 = hnp.arrays(np.float32, (68, 2), elements=st.floats(-100, 100, **_finite))
joints = hnp.arrays(np.float32, (8, 3), elements=st.floats(-100, 100, **_finite))
tracks = hnp.arrays(np.float32, (5, 3, 2), elements=st.floats(-100, 100, **_finite))


def _nme_loss(pred, gt, normalizer):
    return nme(pred, gt, normalizer)


_nme_grad = jax.jit(jax.grad(_nme_loss), static_argnums=2)
_mpjpe_grad = jax.jit(jax.grad(lambda p, g: mpjpe(p, g, root_joint=(0, 1))))
_pa_mpjpe_grad = jax.jit(jax.grad(pa_mpjpe))
_jitter_grad = jax.jit(jax.grad(jitter))


def _spread_face(points):
    # Keep the eye corners and the bounding box apart so that the normaliser itself is non-zero.
    points = points.copy()
    points[36], points[45] = (-150.0, 0.0), (150.0, 10.0)
    points[0], points[1] = (-150.0, -150.0), (150.0, 150.0)
    return points


@settings(max_examples=15, deadline=None)
@given(pred=points68, gt=points68)
def test_nme_gradients_finite(pred, gt):
    gt = _spread_face(gt)
    for normalizer in ("inter_ocular", "inter_pupil", "bbox"):
        assert np.all(np.isfinite(_nme_grad(pred, gt, normalizer)))
        assert np.all(np.isfinite(_nme_grad(gt, gt, normalizer)))


@settings(max_examples=15, deadline=None)
@given(pred=joints, gt=joints)
def test_joint_error_gradients_finite(pred, gt):
    assert np.all(np.isfinite(_mpjpe_grad(pred, gt)))
    assert np.all(np.isfinite(_mpjpe_grad(gt, gt)))
    # Procrustes gradients exist for generic skeletons (distinct singular values): not for collapsed ones.
    skeleton = np.random.default_rng(0).normal(0, 300, size=(8, 3)).astype(np.float32)
    assert np.all(np.isfinite(_pa_mpjpe_grad(skeleton + pred, skeleton * 1.3 + gt)))


@settings(max_examples=15, deadline=None)
@given(landmarks=tracks)
def test_jitter_gradients_finite(landmarks):
    assert np.all(np.isfinite(_jitter_grad(landmarks)))
    steady = np.broadcast_to(landmarks[:1], landmarks.shape)
    assert np.all(np.isfinite(_jitter_grad(steady)))


# ----------------------------------------------------------------------------------------------------------
# Bad input.

_face = np.zeros((2, 68, 2), np.float32)
_five = np.zeros((2, 5, 2), np.float32)
_seven = np.zeros((2, 7, 2), np.float32)
_mask = np.zeros((8, 8), bool)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: nme(_face, _face, "inter_eye"),
            r"normalizer must be one of .*inter_ocular.*inter_pupil.*bbox",
        ),
        (lambda: nme(_seven, _seven, "inter_ocular"), r"normalizer='inter_ocular'.*K = 68.*K = 5.*K = 7"),
        (lambda: nme(_seven, _seven, "inter_pupil"), r"normalizer='inter_pupil'.*K = 7"),
        (lambda: nme(_face, _face[:, :67]), r"gt must have the same shape"),
        (lambda: nme(_face[..., 0], _face[..., 0]), r"pred must have shape \[\.\.\., K, 2\]"),
        (lambda: nme(np.zeros((68, 3)), np.zeros((68, 3))), r"pred must have shape \[\.\.\., K, 2\]"),
        (lambda: nme(_face, _face, np.ones(3)), r"normalizer must be a scalar or have the batch shape"),
        (lambda: nme(_face, _face, visibility=np.ones((2, 67))), r"visibility must have shape"),
        (lambda: auc(np.zeros((3, 2))), r"errors must be a non-empty vector"),
        (lambda: auc(np.zeros(0)), r"errors must be a non-empty vector"),
        (lambda: auc(np.zeros(3), threshold=0.0), r"threshold must be > 0"),
        (lambda: auc(np.zeros(3), num_steps=0), r"num_steps must be a positive int"),
        (lambda: failure_rate(np.zeros((2, 2))), r"errors must be"),
        (lambda: pck(_five, _five, -1.0), r"threshold must be > 0"),
        (lambda: pck(_five, _five, 0.1, normalizer=np.ones(5)), r"normalizer must be a scalar or"),
        (lambda: mpjpe(np.zeros((4, 2)), np.zeros((4, 2))), r"pred must have shape \[\.\.\., J, 3\]"),
        (lambda: mpjpe(np.zeros((4, 3)), np.zeros((5, 3))), r"gt must have the same shape"),
        (
            lambda: mpjpe(np.zeros((4, 3)), np.zeros((4, 3)), root_joint=4),
            r"root_joint must be a joint index in \[0, 4\)",
        ),
        (lambda: mpjpe(np.zeros((4, 3)), np.zeros((4, 3)), root_joint=()), r"root_joint"),
        (lambda: pa_mpjpe(np.zeros(3), np.zeros(3)), r"pred must have shape"),
        (lambda: region_jaccard(_mask, _mask[:7]), r"gt_mask must have the same shape"),
        (
            lambda: region_jaccard(np.zeros(8, bool), np.zeros(8, bool)),
            r"pred_mask must have shape \[\.\.\., H, W\]",
        ),
        (lambda: boundary_f(_mask.astype(np.float32), _mask), r"pred_mask must be a boolean or integer mask"),
        (lambda: boundary_f(_mask, _mask, bound_th=0.0), r"bound_th must be a positive number"),
        (lambda: boundary_f(_mask, _mask, bound_th=1.5), r"bound_th >= 1 is a radius in pixels"),
        (lambda: jitter(np.zeros((2, 5, 2))), r"landmarks needs at least T = 3 frames"),
        (lambda: jitter(np.zeros((5, 2))), r"landmarks must have shape \[\.\.\., T, K, D\]"),
        (lambda: jitter(np.zeros((4, 5, 2)), normalizer=np.ones(2)), r"normalizer must be a scalar or"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_input_raises_under_jit():
    with pytest.raises(ValueError, match=r"K = 7"):
        jax.jit(nme)(_seven, _seven)


def test_public_surface():
    assert set(metrics.__all__) == {
        "NME_NORMALIZERS", "nme", "cumulative_error_distribution", "auc", "failure_rate", "pck", "mpjpe",
        "pa_mpjpe", "region_jaccard", "boundary_f", "jitter", "davis_statistics",
    }
    for name in set(metrics.__all__) - {"NME_NORMALIZERS"}:
        assert "Args:" in getattr(metrics, name).__doc__


def test_nme_of_five_celeba_points_divides_by_the_eye_centre_distance():
    """CelebA / MAFL order: left eye, right eye, nose, left and right mouth corners."""
    gt = np.array(
        [[[30.0, 40.0], [70.0, 43.0], [50.0, 60.0], [35.0, 80.0], [65.0, 82.0]],
         [[10.0, 10.0], [16.0, 18.0], [13.0, 20.0], [11.0, 25.0], [15.0, 26.0]]],
        np.float32,
    )  # fmt: skip
    offsets = np.array(
        [[[1.0, 0.0], [0.0, -2.0], [3.0, 4.0], [0.0, 0.0], [-1.0, 1.0]],
         [[0.5, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.5], [0.0, 0.0]]],
        np.float32,
    )  # fmt: skip
    pred = gt + offsets
    # By hand: mean point error / |left eye - right eye|.
    sample0 = (1.0 + 2.0 + 5.0 + 0.0 + np.sqrt(2.0)) / 5.0 / np.hypot(40.0, 3.0)
    sample1 = (0.5 + 1.5) / 5.0 / 10.0  # eyes 6 px apart in x, 8 in y
    for normalizer in ("inter_ocular", "inter_pupil"):
        np.testing.assert_allclose(nme(pred, gt, normalizer), [sample0, sample1], rtol=1e-6)
    visibility = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_allclose(
        nme(pred, gt, "inter_ocular", visibility)[0], (1.0 + 2.0 + np.sqrt(2.0)) / 4.0 / np.hypot(40.0, 3.0),
        rtol=1e-6,
    )
