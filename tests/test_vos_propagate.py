"""`methods.vos.propagate_video`, the VOS propagation protocol on a user-supplied feature extractor: a plain
numpy reference of the whole protocol, oracle features giving near-perfect J, the radius handling and bad
input."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax import metrics
from landmarkjax.data.sources import SyntheticObjectVideoSource
from landmarkjax.methods.vos import davis_summary, propagate_video, propagation_window


def _pool(x, stride):
    """numpy [..., H, W, C] (multiples of stride) -> [..., H / stride, W / stride, C] cell means."""
    *lead, height, width, channels = x.shape
    return x.reshape(*lead, height // stride, stride, width // stride, stride, channels).mean(axis=(-4, -2))


def _pad(x, stride, first_spatial_axis):
    pad = [(0, 0)] * x.ndim
    for axis in (first_spatial_axis, first_spatial_axis + 1):
        pad[axis] = (0, -x.shape[axis] % stride)
    return np.pad(x, pad, mode="edge")


def _projection_features(projection, stride):
    """A toy extractor: each stride x stride cell's mean colour times a fixed [3, C] matrix."""

    def features_fn(frames):
        *lead, height, width, _ = frames.shape
        cells = frames.reshape(*lead, height // stride, stride, width // stride, stride, 3).mean(axis=(-4, -2))
        return cells @ jnp.asarray(projection)

    return features_fn


def _reference_soft(frames, first_mask, num_objects, projection, *, stride, long_term, short_term, radius,
                    temperature, top_k, normalize):
    """The protocol as a float64 loop: features, pooled one-hot first mask, memory rule, window, top k, softmax."""
    frames = _pad(np.asarray(frames, np.float64), stride, 1)
    feats = _pool(frames, stride) @ projection  # [T, h, w, C]
    if normalize:
        feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    soft = [_pool(_pad(np.eye(num_objects + 1)[first_mask], stride, 0), stride)]
    _, h, w, _ = feats.shape
    for t in range(1, len(frames)):
        memory = sorted({f for f in long_term if f < t} | {t - o for o in short_term if t - o >= 0})
        out = np.zeros_like(soft[0])
        for i in range(h):
            for j in range(w):
                scores, values = [], []
                for m in memory:
                    for y in range(h):
                        for x in range(w):
                            if radius is not None and (abs(y - i) > radius or abs(x - j) > radius):
                                continue
                            scores.append(feats[t, i, j] @ feats[m, y, x] / temperature)
                            values.append(soft[m][y, x])
                scores, values = np.array(scores), np.array(values)
                if top_k is not None:
                    keep = np.argsort(-scores, kind="stable")[:top_k]
                    scores, values = scores[keep], values[keep]
                weights = np.exp(scores - scores.max())
                out[i, j] = weights @ values / weights.sum()
        soft.append(out)
    return np.stack(soft)


def _random_video(seed, num_frames, height, width, num_objects=2):
    rng = np.random.default_rng(seed)
    frames = rng.uniform(size=(num_frames, height, width, 3)).astype(np.float32)
    first = rng.integers(0, num_objects + 1, size=(height, width)).astype(np.int32)
    first[0, 0] = 1
    return frames, first


@pytest.mark.parametrize(
    "stride, size, settings",
    [
        # MAST's memory (0, 5 and t - 1, t - 3, t - 5) with a local window on a 4 x 6 grid, sides not
        # multiples of the stride (edge-padded).
        (4, (14, 22), dict(long_term=(0, 5), short_term=(1, 3, 5), radius=1, temperature=0.3, top_k=None)),
        # DINO's protocol: first frame + the last 3, top-k, cosine affinities, a ViT-like stride 8.
        (8, (24, 40), dict(long_term=(0,), short_term=(1, 2, 3), radius=2, temperature=0.1, top_k=5,
                           normalize=True)),
        # A radius at or above the shorter side (3 rows) but below the longer one (8 columns).
        (2, (6, 16), dict(long_term=(0,), short_term=(1,), radius=4, temperature=0.5, top_k=None)),
        # A radius larger than the whole map: global.
        (4, (12, 12), dict(long_term=(0,), short_term=(1, 2), radius=12, temperature=0.5, top_k=4)),
    ],
)
def test_matches_a_numpy_loop_of_the_whole_protocol(stride, size, settings):
    num_frames, num_objects = 7, 2
    frames, first = _random_video(0, num_frames, *size, num_objects)
    projection = np.random.default_rng(1).normal(size=(3, 5))
    settings = {"normalize": False, **settings}
    ids, soft = propagate_video(
        _projection_features(projection, stride), frames, first, num_objects, stride=stride, chunk=3, **settings
    )
    expected = _reference_soft(frames, first, num_objects, projection, stride=stride, **settings)
    grid = (-(-size[0] // stride), -(-size[1] // stride))
    assert soft.shape == (num_frames, *grid, num_objects + 1) and ids.shape == (num_frames, *size)
    np.testing.assert_allclose(soft, expected, atol=2e-5)
    np.testing.assert_array_equal(ids[0], first)
    # Every later frame is the argmax of its soft masks upsampled by the stride (bilinear, half-pixel
    # centres); compared where the two best classes are not within float noise of each other.
    for t in range(1, num_frames):
        up = np.asarray(_bilinear(expected[t], stride))[: size[0], : size[1]]
        top2 = np.sort(up, axis=-1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 1e-4
        np.testing.assert_array_equal(ids[t][clear], np.argmax(up, axis=-1)[clear])


def _bilinear(values, stride):
    """numpy bilinear upsampling by an integer factor with half-pixel centres and edge clamping."""
    h, w, _ = values.shape

    def weights(n):
        centres = (np.arange(n * stride) + 0.5) / stride - 0.5
        low = np.clip(np.floor(centres).astype(int), 0, n - 1)
        high = np.clip(low + 1, 0, n - 1)
        frac = np.clip(centres - np.floor(centres), 0, 1)
        frac = np.where(centres < 0, 0.0, np.where(centres > n - 1, 0.0, frac))
        return low, high, frac

    rl, rh, rf = weights(h)
    cl, ch, cf = weights(w)
    rows = values[rl] * (1 - rf)[:, None, None] + values[rh] * rf[:, None, None]
    return rows[:, cl] * (1 - cf)[None, :, None] + rows[:, ch] * cf[None, :, None]


@pytest.mark.slow
def test_one_hot_features_of_the_true_objects_segment_nearly_perfectly():
    # Oracle features: the one-hot of each pixel's true object id (stride 1), so a pixel's affinity picks out
    # exactly the memory pixels of its own object in the window, whose carried labels are then its object:
    # J and F must be (near) 1 for every object, frame and video, through MAST's long/short-term memory.
    source = SyntheticObjectVideoSource(3, num_frames=8, size=48, num_objects=3, seed=5)
    j_all, f_all = [], []
    for index in range(len(source)):
        video = source[index]
        masks = np.asarray(video["masks"], np.int32)
        frames = np.asarray(video["frames"], np.float32) / 255.0
        oracle = np.eye(4, dtype=np.float32)[masks]  # [T, 48, 48, 4]

        def features_fn(batch, oracle=oracle):
            assert batch.shape == frames.shape  # one call: chunk = T
            return jnp.asarray(oracle)

        ids, soft = propagate_video(
            features_fn, frames, masks[0], 3, stride=1, radius=8, temperature=0.05, chunk=len(frames)
        )
        np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)  # soft masks stay distributions
        objects = np.arange(1, 4)[:, None, None, None]
        predicted, true = ids[None] == objects, masks[None] == objects
        j_all += list(np.asarray(metrics.region_jaccard(predicted, true))[:, 1:-1])
        f_all += list(np.asarray(metrics.boundary_f(predicted, true))[:, 1:-1])
    summary = davis_summary(j_all, f_all)
    assert summary["j_mean"] > 0.99 and summary["f_mean"] > 0.99 and summary["j_recall"] == 1.0, summary


def test_a_radius_larger_than_the_feature_map_is_global_propagation():
    frames, first = _random_video(2, 4, 16, 24)  # a 4 x 6 grid
    features_fn = _projection_features(np.random.default_rng(3).normal(size=(3, 4)), 4)
    common = dict(stride=4, long_term=(0,), short_term=(1, 2), temperature=0.3)
    _, global_soft = propagate_video(features_fn, frames, first, radius=None, top_k=3, **common)
    for radius in (5, 12, 100):  # max(h, w) - 1 = 5 already holds every position
        _, soft = propagate_video(features_fn, frames, first, radius=radius, top_k=3, **common)
        np.testing.assert_allclose(soft, global_soft, atol=1e-6)
    assert propagation_window(12, 4, 6, 5, 2) == (None, 5)
    assert propagation_window(12, 2, 2, 50, 3) == (None, 12)  # top_k capped at the M h w candidates
    assert propagation_window(4, 4, 6, None, 2) == (4, None)  # spans the rows, limits the columns
    assert propagation_window(None, 4, 6, None, 2) == (None, None)


def test_bad_input_gets_clear_errors():
    frames, first = _random_video(4, 3, 16, 16)
    features_fn = _projection_features(np.ones((3, 2)), 4)
    with pytest.raises(ValueError, match="frame 2 has shape"):
        propagate_video(features_fn, [frames[0], frames[1], frames[2][:12]], first)
    with pytest.raises(ValueError, match=r"ids must be in \[0, num_objects = 1\]"):
        propagate_video(features_fn, frames, first, num_objects=1)
    with pytest.raises(ValueError, match="no object"):
        propagate_video(features_fn, frames, np.zeros_like(first))
    with pytest.raises(ValueError, match="first_mask must have the frames' size"):
        propagate_video(features_fn, frames, first[:8])
    with pytest.raises(ValueError, match="integer object ids"):
        propagate_video(features_fn, frames, first.astype(np.float32))
    with pytest.raises(ValueError, match=r"features \[3, 2, 2, C\] \(stride 8\)"):
        propagate_video(features_fn, frames, first, stride=8)  # the 4-px features at a declared stride 8
    with pytest.raises(ValueError, match="temperature"):
        propagate_video(features_fn, frames, first, temperature=0.0)
    with pytest.raises(ValueError, match="radius"):
        propagate_video(features_fn, frames, first, radius=-1)
    with pytest.raises(ValueError, match="stride"):
        propagate_video(features_fn, frames, first, stride=0)
