"""Data parallelism on 4 virtual CPU devices (tests/conftest.py forces them before JAX starts).

The reference for every sharded computation is the same step on ONE device with the whole batch: data
parallelism must not change the maths, only where it runs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.configs.supervised import get_config
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.training import sharding
from landmarkjax.training.method import DEFAULT_PHASE

NUM_DEVICES = 4


def tiny_config():
    config = get_config()
    config.batch_size = 8
    config.data.image_size = 16
    config.model.backbone_widths = (4, 8)
    config.model.stage_width = 8
    config.model.num_stages = 2
    config.model.stage_depth = 1
    config.optimizer.name = "sgd"  # Adam's first step is sign(g): it would amplify rounding noise
    config.optimizer.learning_rate = 0.5
    config.optimizer.warmup_steps = 0
    return config


def fake_batch(size: int, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    visibility = (rng.random((batch, 68)) > 0.1).astype(np.float32)
    return {
        "image": rng.random((batch, size, size, 3), np.float32),
        "landmarks": rng.uniform(2, size - 3, (batch, 68, 2)).astype(np.float32),
        "visibility": visibility,
    }


@pytest.fixture(scope="module")
def method_and_state():
    assert jax.device_count() == NUM_DEVICES, "tests/conftest.py must force 4 CPU devices"
    method = SupervisedMethod(tiny_config())
    state = jax.jit(method.init_state)(jax.random.key(0, impl="rbg"))  # threefry compiles slowly on CPU
    return method, state


def _assert_trees_close(actual, expected, rtol=2e-5, atol=2e-6):
    # Gradients of biases sum many terms that nearly cancel; summing per device changes the rounding.
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def _step(method, **kwargs):
    return functools.partial(method.train_step, phase=DEFAULT_PHASE, **kwargs)


def test_sharded_step_equals_single_device_step(method_and_state):
    method, state = method_and_state
    batch = fake_batch(16, 8)
    rng = jax.random.key(1)
    single_device = jax.devices()[0]
    on_one = jax.device_put((state, batch), single_device)
    expected_state, expected_metrics = jax.jit(_step(method))(*on_one, rng, {})

    mesh = sharding.make_data_mesh()
    replicated = sharding.replicated_sharding(mesh)
    # A copy: device_put may alias the fixture's buffers, and the step donates (deletes) its input.
    sharded_state = jax.device_put(jax.tree.map(jnp.copy, state), replicated)
    global_batch = sharding.host_local_to_global(batch, mesh)
    assert global_batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(global_batch["image"].addressable_shards) == NUM_DEVICES
    assert global_batch["image"].addressable_shards[0].data.shape == (2, 16, 16, 3)

    step = sharding.jit_data_parallel(_step(method), mesh, replicated)
    new_state, metrics = step(sharded_state, global_batch, rng, {})
    assert sharded_state.params["stage1_head"]["kernel"].is_deleted()  # the state was donated
    assert new_state.params["stage1_head"]["kernel"].sharding.is_fully_replicated
    assert int(new_state.step) == 1
    _assert_trees_close(new_state, expected_state)
    _assert_trees_close(metrics, expected_metrics)
    # The step moved the parameters (the comparison above is not between two unchanged states).
    moved = jax.tree.map(
        lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), expected_state.params, state.params
    )
    assert max(jax.tree.leaves(moved)) > 1e-4


@pytest.mark.slow
def test_same_step_function_runs_under_pmap(method_and_state):
    method, state = method_and_state
    batch = fake_batch(16, 8, seed=3)
    rng = jax.random.key(2)
    expected_state, expected_metrics = jax.jit(_step(method))(state, batch, rng, {})

    replicated_state = jax.tree.map(lambda x: jnp.stack([x] * NUM_DEVICES), state)
    per_device_batch = {k: v.reshape(NUM_DEVICES, -1, *v.shape[1:]) for k, v in batch.items()}
    pmapped = jax.pmap(
        _step(method, axis_name="batch"), axis_name="batch", in_axes=(0, 0, None, None)
    )
    new_states, metrics = pmapped(replicated_state, per_device_batch, rng, {})
    for leaf in jax.tree.leaves(new_states):  # every replica holds the same new state
        for device in range(1, NUM_DEVICES):
            np.testing.assert_array_equal(np.asarray(leaf[device]), np.asarray(leaf[0]))
    _assert_trees_close(jax.tree.map(lambda x: x[0], new_states), expected_state)
    _assert_trees_close(jax.tree.map(lambda x: x[0], metrics)["loss"], expected_metrics["loss"])


def test_sharded_evaluation_with_padding_equals_single_device(method_and_state):
    method, state = method_and_state
    examples = fake_batch(16, 10, seed=5)
    expected = method.summarize(
        {k: np.asarray(v) for k, v in jax.jit(method.eval_step)(state, examples, {}).items()}
    )

    mesh = sharding.make_data_mesh()
    host_batches = [
        {k: v[:8] for k, v in examples.items()},
        {k: v[8:] for k, v in examples.items()},  # 2 real rows, padded to 8
    ]
    batches = list(sharding.global_batches(host_batches, mesh, 8))
    np.testing.assert_array_equal(np.asarray(batches[1][sharding.EXAMPLE_MASK_KEY]), [1, 1, 0, 0, 0, 0, 0, 0])
    result = method.evaluate_batches(jax.device_put(state, sharding.replicated_sharding(mesh)), {}, batches)
    assert result["num_examples"] == 10
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-5)


def test_pad_host_batch_repeats_the_last_row():
    batch = {"x": np.arange(6).reshape(3, 2)}
    padded = sharding.pad_host_batch(batch, 5)
    np.testing.assert_array_equal(padded["x"], [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])
    np.testing.assert_array_equal(padded[sharding.EXAMPLE_MASK_KEY], [1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="between 1 and size"):
        sharding.pad_host_batch(batch, 2)
    with pytest.raises(ValueError, match="same leading size"):
        sharding.pad_host_batch({"x": np.zeros(3), "y": np.zeros(2)}, 4)


def test_per_process_batch_size_checks_divisibility():
    mesh = sharding.make_data_mesh()
    assert sharding.per_process_batch_size(12, mesh) == 12  # one process holds all 4 devices
    with pytest.raises(ValueError, match="multiple of the number of devices \\(4\\)"):
        sharding.per_process_batch_size(6, mesh)


def test_text_fields_stay_on_the_host():
    mesh = sharding.make_data_mesh()
    batch = {"x": np.zeros((4, 2), np.float32), "file_name": np.array(["a", "b", "c", "d"])}
    assert set(sharding.host_local_to_global(batch, mesh)) == {"x"}


def test_to_host_returns_global_values():
    mesh = sharding.make_data_mesh()
    values = np.arange(8.0)
    array = sharding.host_local_to_global({"v": values}, mesh)["v"]
    np.testing.assert_array_equal(sharding.to_host({"v": array})["v"], values)
