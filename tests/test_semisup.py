"""The semi-supervised method (RCN + ELT + attributes from landmarks): config checks, streams, a short run."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from landmarkjax.configs.semisup import get_config
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.semisup import ATTRIBUTE_IMAGE_KEY, UNLABELLED_IMAGE_KEY, PrefixSource, SemiSupMethod
from landmarkjax.runs import train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """RBG keys compile much faster than threefry on CPU; these tests only need some random keys."""
    with jax.default_prng_impl("rbg"):
        yield


def tiny_config():
    config = get_config()
    config.total_steps = 2
    config.batch_size = 4
    config.eval_batch_size = 4
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.image_size = 32
    config.data.source_size = 48
    config.data.num_train = 8
    config.data.num_test = 4
    config.model.widths = (4, 4)  # 2 branches: 32 and 16 px
    config.model.attribute_hidden_widths = (8,)
    config.semisup.labelled_fraction = 0.25
    config.semisup.attribute_fraction = 0.5
    config.eval.num_visualized = 2
    config.optimizer.warmup_steps = 0
    return config


def test_registered_and_validates_its_config():
    assert "semisup" in available_methods()
    assert isinstance(build_method(tiny_config()), SemiSupMethod)
    for field, value in [("labelled_fraction", 0.0), ("attribute_fraction", 1.5)]:
        config = tiny_config()
        config.semisup[field] = value
        with pytest.raises(ValueError, match=rf"semisup.{field} must be in \(0, 1\]"):
            SemiSupMethod(config)
    config = tiny_config()
    config.semisup.binary_attributes = ("freckles",)
    with pytest.raises(ValueError, match="FACE_ATTRIBUTE_NAMES|among"):
        SemiSupMethod(config)
    for field, value, message in [
        ("elt_scale_range", (0.0, 1.1), "not invertible"),
        ("elt_flip_probability", 1.5, "flip_probability"),
        ("elt_max_rotation", -0.1, "max_rotation"),
    ]:
        config = tiny_config()
        config.semisup[field] = value
        with pytest.raises(ValueError, match=f"semisup.elt_.*{message}"):
            SemiSupMethod(config)
    config = tiny_config()
    config.model.branch_mask = (True,)
    with pytest.raises(ValueError, match="one bool per branch"):
        SemiSupMethod(config)
    config = tiny_config()
    config.model.widths = (4, 4, 4)  # stride 4
    config.data.image_size = 30
    with pytest.raises(ValueError, match=r"divisible by 2 \*\* \(branches - 1\) = 4"):
        SemiSupMethod(config)


def test_prefix_source_keeps_the_first_records():
    source = [{"x": np.full(2, i)} for i in range(5)]
    prefix = PrefixSource(source, 3)
    assert len(prefix) == 3 and [int(prefix[i]["x"][0]) for i in range(3)] == [0, 1, 2]
    with pytest.raises(IndexError):
        prefix[3]
    with pytest.raises(ValueError, match="count"):
        PrefixSource(source, 0)


def test_three_streams_of_the_right_sizes_and_layout():
    method = SemiSupMethod(tiny_config())
    assert method.stream_sizes() == {"labelled": 2, "attributes": 4, "unlabelled": 8}
    batch = method.next_batch(method.train_loader(4), "train")
    assert batch["image"].shape == (4, 32, 32, 3) and batch["landmarks"].shape == (4, 68, 2)
    assert batch[ATTRIBUTE_IMAGE_KEY].shape == (4, 32, 32, 3) and batch["attributes"].shape == (4, 9)
    assert batch[UNLABELLED_IMAGE_KEY].shape == (4, 32, 32, 3)
    # Faces whose landmark count is not the detector's fail before any training step.
    method.num_keypoints = 5
    with pytest.raises(ValueError, match="have 68 landmarks but the detector was built for 5"):
        method.next_batch(method.train_loader(4), "train")


# ~30 s of compilation (two full train steps); the default run keeps the semisup notebook's end-to-end training.
@pytest.mark.slow
def test_without_elt_no_unlabelled_stream_and_the_same_loss_and_gradient():
    config = tiny_config()
    config.semisup.elt_weight = 0.0
    skipping = SemiSupMethod(config)
    assert skipping.stream_sizes() == {"labelled": 2, "attributes": 4}
    batch = skipping.next_batch(skipping.train_loader(4), "train")
    assert UNLABELLED_IMAGE_KEY not in batch
    computing = SemiSupMethod(config)
    computing.use_elt = True  # the full three-group pass, its ELT term multiplied by 0
    batch[UNLABELLED_IMAGE_KEY] = batch["image"][::-1]
    params = skipping.init_state(jax.random.key(0)).params
    (loss, parts), grads = jax.jit(jax.value_and_grad(skipping.loss_fn, has_aux=True))(params, batch, jax.random.key(1))
    (full_loss, full_parts), full_grads = jax.jit(jax.value_and_grad(computing.loss_fn, has_aux=True))(
        params, batch, jax.random.key(1)
    )
    assert float(parts["elt_loss"]) == 0.0 and float(full_parts["elt_loss"]) > 0.0
    np.testing.assert_allclose(loss, full_loss, rtol=1e-5)
    np.testing.assert_allclose(parts["attribute_loss"], full_parts["attribute_loss"], rtol=1e-5)
    for leaf, full_leaf in zip(jax.tree.leaves(grads), jax.tree.leaves(full_grads)):
        np.testing.assert_allclose(leaf, full_leaf, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_training_run_end_to_end(tmp_path):
    result = train_and_evaluate(tiny_config(), tmp_path)
    assert result["step"] == 2 and result["num_examples"] == 4
    assert np.isfinite(result["nme"])
    train = read_metrics(tmp_path, "train")
    assert [r["step"] for r in train] == [1, 2]
    for name in ("loss", "landmark_loss", "attribute_loss", "elt_loss"):
        assert all(np.isfinite(r[name]) for r in train), name


def test_argmax_locator_reads_the_top_pixel_of_each_map_of_the_kept_branches():
    config = tiny_config()
    config.eval.locator = "argmax"
    config.model.branch_mask = (True, False)  # the ablation: evaluated without the coarse branch too
    method = SemiSupMethod(config)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    shapes = jax.eval_shape(method.model.init, jax.random.key(0), images)["params"]
    rng = np.random.default_rng(1)
    params = {"landmarks": jax.tree.map(lambda s: rng.normal(scale=0.3, size=s.shape).astype(np.float32), shapes)}
    landmarks, logits = method.predict(params, images)
    logits = np.asarray(logits)
    expected = method.model.apply({"params": params["landmarks"]}, images, branch_mask=(True, False))
    np.testing.assert_allclose(logits, expected, rtol=1e-6)
    for b in range(2):
        for k in (0, 30, 67):
            row, column = np.unravel_index(np.argmax(logits[b, :, :, k]), logits.shape[1:3])
            np.testing.assert_array_equal(landmarks[b, k], [column, row])
