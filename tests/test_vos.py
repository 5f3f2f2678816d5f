"""The vos method (MAST / Zhu et al. colour propagation): config checks, channel dropout, the momentum
encoder's EMA, the memory schedule, exact propagation with raw colour, bad videos, and a short run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax import metrics
from landmarkjax.configs.vos import get_config
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods import vos as vos_module
from landmarkjax.methods.vos import VosMethod, VosState, channel_dropout, normalized_lab, training_references
from landmarkjax.ops.colour import rgb_to_lab
from landmarkjax.runs import train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """RBG keys compile much faster than threefry on CPU; these tests only need some random keys."""
    with jax.default_prng_impl("rbg"):
        yield


def tiny_config(**vos):
    config = get_config()
    config.total_steps = 2
    config.batch_size = 4
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.image_size = 16  # training crops: 4 x 4 feature maps, radius 3
    config.data.source_size = 32
    config.data.source_frames = 3
    config.data.eval_size = 32
    config.data.eval_frames = 3
    config.data.num_train = 4
    config.data.num_test = 1
    config.data.num_objects = 2
    config.model.out_features = 8
    config.optimizer.warmup_steps = 0
    # One memory frame (t - 1) at test time: one propagation program to compile.
    config.vos.long_term = ()
    config.vos.short_term = (1,)
    config.vos.clip_length = 3
    config.vos.train_radius = 3
    config.vos.update(vos)
    return config


def bands_video(num_frames=3, size=32):
    """A static video of three full-width horizontal bands of distinct colours, 8 rows each on the 4-px grid:
    frames float32 [T, size, size, 3], masks int32 [T, size, size] (objects 1 and 2, background 0)."""
    frame = np.empty((size, size, 3), np.float32)
    frame[:] = (0.2, 0.3, 0.8)
    masks = np.zeros((num_frames, size, size), np.int32)
    frame[8:16], masks[:, 8:16] = (0.9, 0.1, 0.1), 1
    frame[20:28], masks[:, 20:28] = (0.1, 0.9, 0.2), 2
    return np.stack([frame] * num_frames), masks


def test_registered_and_validates_its_config():
    assert "vos" in available_methods()
    assert isinstance(build_method(tiny_config()), VosMethod)
    for field, value, message in [
        ("mode", "triplets", "vos.mode"),
        ("features", "rgb", "vos.features"),
        ("momentum", 1.0, "vos.momentum"),
        ("train_radius", 8, "vos.train_radius"),
    ]:
        with pytest.raises(ValueError, match=message):
            VosMethod(tiny_config(**{field: value}))
    config = tiny_config()
    config.data.image_size = 18
    with pytest.raises(ValueError, match="multiple of 4"):
        VosMethod(config)
    config = tiny_config(mode="memory", clip_length=6)  # longer than the 3-frame training videos
    with pytest.raises(ValueError, match="source_frames"):
        VosMethod(config)


def test_training_references_follow_the_memory_schedule():
    assert training_references("pairwise", 6, (0, 5), (1, 3, 5)) == (2, (0,))
    # The query is the clip's last frame t = 5: long-term frame 0, short-term 4, 2, 0.
    assert training_references("memory", 6, (0, 5), (1, 3, 5)) == (6, (0, 2, 4))
    assert training_references("memory", 8, (0, 5), (1, 3, 5)) == (8, (0, 2, 4, 5, 6))


def test_channel_dropout_drops_exactly_one_of_a_and_b_and_rescales_the_rest():
    rng = np.random.default_rng(0)
    lab = rng.normal(size=(2, 3, 4, 4, 3)).astype(np.float32)  # [B, T, H, W, 3]
    out = np.asarray(channel_dropout(jnp.asarray(lab), jnp.array([1, 2])))
    # Example 0 drops a (in every frame), example 1 drops b; L and the other chroma channel times 3 / 2.
    np.testing.assert_array_equal(out[0, ..., 1], 0.0)
    np.testing.assert_allclose(out[0, ..., [0, 2]], 1.5 * lab[0, ..., [0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(out[1, ..., 2], 0.0)
    np.testing.assert_allclose(out[1, ..., [0, 1]], 1.5 * lab[1, ..., [0, 1]], rtol=1e-6)
    # The normalisation is MAST's ((L - 50) / 50, a / 127, b / 127) of the CIE Lab colour.
    rgb = rng.uniform(size=(5, 3)).astype(np.float32)
    expected = (np.asarray(rgb_to_lab(rgb)) - [50.0, 0.0, 0.0]) / [50.0, 127.0, 127.0]
    np.testing.assert_allclose(normalized_lab(rgb), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~25 s on 2 cores (compiles two train steps)
def test_momentum_encoder_is_the_ema_of_the_online_encoder():
    momentum = 0.75
    method = VosMethod(tiny_config(momentum=momentum))
    state = method.init_state(jax.random.key(0))
    assert isinstance(state, VosState)
    clips = np.random.default_rng(0).uniform(size=(2, 2, 2, 16, 16, 3)).astype(np.float32)  # [steps, B, T, ...]
    step = jax.jit(lambda s, b, r: method.train_step(s, b, r, {}, phase="train"))
    online = [state.params]
    for i in range(2):
        state, step_metrics = step(state, {"frames": clips[i]}, jax.random.key(i + 1))
        assert np.isfinite(float(step_metrics["loss"]))
        online.append(state.params)
    p0, p1, p2 = online
    m = momentum
    expected = jax.tree.map(lambda a, b, c: m * (m * a + (1 - m) * b) + (1 - m) * c, p0, p1, p2)
    for got, want in zip(jax.tree.leaves(state.key_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # The key encoder got no gradient of its own: it differs from the online encoder after training.
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(state.key_params), jax.tree.leaves(p2)))


def test_raw_colour_propagation_is_exact_on_a_static_video_of_distinct_colours():
    method = VosMethod(tiny_config(features="raw_lab"))
    frames, masks = bands_video(num_frames=4)
    j, f, prediction = method.video_scores(None, frames, masks, num_objects=2)
    np.testing.assert_array_equal(prediction, masks)
    np.testing.assert_array_equal(j, np.ones((2, 2)))  # objects 1 and 2 in frames 1 and 2 (not 0, 3)
    np.testing.assert_array_equal(f, np.ones((2, 2)))
    # An object declared but absent from the video is scored as DAVIS does: J = F = 1 on empty frames.
    j3, _, _ = method.video_scores(None, frames, masks, num_objects=3)
    np.testing.assert_array_equal(j3, np.ones((3, 2)))


def test_evaluation_reads_the_documented_memory_frames(monkeypatch):
    config = tiny_config(features="raw_lab", long_term=(0, 5), short_term=(1, 3, 5))
    method = VosMethod(config)
    num_frames = 9
    # Every frame one uniform colour of its own, so the keys that reach the propagation name their frame.
    colours = np.random.default_rng(0).uniform(0.1, 0.9, size=(num_frames, 1, 1, 3)).astype(np.float32)
    frames = np.broadcast_to(colours, (num_frames, 16, 16, 3))
    _, frame_keys = method._encode(None, jnp.asarray(frames))
    seen = []

    def record(query, keys, labels, temperature, *, radius, top_k):
        del query, temperature, radius, top_k
        seen.append(
            tuple(int(np.argmin([np.abs(np.asarray(k) - frame_keys[i]).max() for i in range(num_frames)])) for k in keys)
        )
        return labels[0]

    monkeypatch.setattr(vos_module, "_propagate", record)
    first = np.zeros((16, 16), np.int32)
    first[4:8] = 1
    method.segment_video(None, frames, first, num_objects=1)
    assert seen == [
        (0,), (0, 1), (0, 2), (0, 1, 3), (0, 2, 4), (0, 1, 3, 5), (0, 2, 4, 5, 6), (0, 3, 5, 7),
    ]  # t = 1 .. 8: long-term 0 and 5, short-term t - 1, t - 3, t - 5


def test_bad_videos_get_clear_errors():
    method = VosMethod(tiny_config(features="raw_lab"))
    frames, masks = bands_video()
    with pytest.raises(ValueError, match="frame 2 has shape"):
        method.segment_video(None, [frames[0], frames[1], frames[2][:28]], masks[0], 2)
    with pytest.raises(ValueError, match=r"ids must be in \[0, num_objects = 1\]"):
        method.video_scores(None, frames, masks, num_objects=1)
    with pytest.raises(ValueError, match="no object"):
        method.video_scores(None, frames, np.zeros_like(masks), num_objects=2)
    with pytest.raises(ValueError, match="at least 3 frames"):
        method.video_scores(None, frames[:2], masks[:2], num_objects=2)
    with pytest.raises(ValueError, match="masks must have shape"):
        method.video_scores(None, frames, masks[:, :16], num_objects=2)


def test_davis_statistics_match_a_hand_computed_example():
    # n = 5: bins x[0:2], x[1:3], x[2:4], x[3:5]; decay = mean(1, .2) - mean(.6, .4) = 0.1.
    mean, recall, decay = metrics.davis_statistics([1.0, 0.2, 0.8, 0.6, 0.4])
    assert mean == pytest.approx(0.6) and recall == pytest.approx(0.6) and decay == pytest.approx(0.1)
    assert metrics.davis_statistics([0.3]) == pytest.approx((0.3, 0.0, 0.0))


@pytest.mark.slow
def test_training_run_end_to_end(tmp_path):
    result = train_and_evaluate(tiny_config(), tmp_path)
    assert result["step"] == 2 and result["num_videos"] == 1 and result["num_objects"] == 2
    for name in ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay", "j_and_f_mean"):
        assert np.isfinite(result[name]), name
    assert result["j_and_f_mean"] == pytest.approx((result["j_mean"] + result["f_mean"]) / 2)
    train = read_metrics(tmp_path, "train")
    assert [r["step"] for r in train] == [1, 2]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["reconstruction_l1"]) for r in train)
