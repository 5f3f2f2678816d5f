"""Tests for landmarkjax.ops.ema against numpy, the BYOL formula and optax's cosine schedule."""

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landmarkjax.ops.ema import momentum_schedule, momentum_update


def _params(seed: int) -> dict:
    """A Flax-like nested parameter tree with leaves of several shapes."""
    rng = np.random.default_rng(seed)
    return {
        "encoder": {
            "conv": {
                "kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
                "bias": rng.normal(size=(4,)).astype(np.float32),
            },
            "blocks": [rng.normal(size=(5,)).astype(np.float32), rng.normal(size=()).astype(np.float32)],
        },
        "head": (rng.normal(size=(4, 2)).astype(np.float32),),
    }


class MomentumUpdateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_leafwise(self):
        target, online = _params(0), _params(1)
        got = self.variant(momentum_update)(target, online, 0.9)
        expected = jax.tree.map(lambda t, o: 0.9 * t.astype(np.float64) + 0.1 * o, target, online)
        chex.assert_trees_all_close(got, expected, atol=1e-6)
        chex.assert_trees_all_equal_structs(got, target)

    def test_momentum_one_keeps_target_and_zero_copies_online(self):
        target, online = _params(2), _params(3)
        chex.assert_trees_all_equal(momentum_update(target, online, 1.0), target)
        chex.assert_trees_all_equal(momentum_update(target, online, 0.0), online)

    def test_keeps_each_leaf_dtype(self):
        target = {"w": jnp.ones((3,), jnp.bfloat16), "b": jnp.ones((2,), jnp.float32)}
        online = {"w": jnp.zeros((3,), jnp.float32), "b": jnp.zeros((2,), jnp.float32)}
        got = jax.jit(momentum_update)(target, online, jnp.float32(0.75))
        assert got["w"].dtype == jnp.bfloat16 and got["b"].dtype == jnp.float32
        np.testing.assert_allclose(got["w"].astype(np.float32), 0.75)

    def test_repeated_updates_converge_geometrically(self):
        # After n updates toward a fixed online value: target_n = online + m^n (target_0 - online).
        target, online = {"w": jnp.full((2,), 4.0)}, {"w": jnp.full((2,), 1.0)}
        update = jax.jit(momentum_update)
        for _ in range(10):
            target = update(target, online, 0.8)
        np.testing.assert_allclose(target["w"], 1.0 + 0.8**10 * 3.0, rtol=1e-5)

    def test_mismatched_structures_name_both(self):
        with pytest.raises(ValueError, match=r"target.*online"):
            momentum_update({"a": jnp.ones(2)}, {"b": jnp.ones(2)}, 0.9)
        with pytest.raises(ValueError, match=r"\['a'\].*target \(2,\).*online \(3,\)"):
            momentum_update({"a": jnp.ones(2)}, {"a": jnp.ones(3)}, 0.9)

    def test_bad_momentum_and_integer_leaves_are_named(self):
        with pytest.raises(ValueError, match="momentum"):
            momentum_update({"a": jnp.ones(2)}, {"a": jnp.ones(2)}, 1.5)
        with pytest.raises(ValueError, match="momentum"):
            momentum_update({"a": jnp.ones(2)}, {"a": jnp.ones(2)}, jnp.ones(2))
        with pytest.raises(ValueError, match=r"target leaf at \['step'\]"):
            momentum_update({"step": jnp.ones(2, jnp.int32)}, {"step": jnp.ones(2, jnp.int32)}, 0.5)


class MomentumScheduleTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_byol_formula(self):
        schedule = self.variant(lambda k: momentum_schedule(k, 1000, base_momentum=0.996))
        for step in (0, 1, 250, 500, 999, 1000, 5000):
            expected = 1.0 - (1.0 - 0.996) * (np.cos(np.pi * min(step, 1000) / 1000) + 1) / 2
            np.testing.assert_allclose(schedule(step), expected, atol=1e-7)

    def test_matches_optax_cosine_decay_of_one_minus_momentum(self):
        base, final, total = 0.9, 0.995, 300
        decay = optax.cosine_decay_schedule(1.0 - base, total, alpha=(1.0 - final) / (1.0 - base))
        steps = jnp.arange(0, 400, 7)
        got = jax.jit(jax.vmap(lambda k: momentum_schedule(k, total, base, final)))(steps)
        np.testing.assert_allclose(got, 1.0 - jax.vmap(decay)(steps), atol=1e-6)

    def test_traced_step_inside_a_loop(self):
        def body(step, momenta):
            return momenta.at[step].set(momentum_schedule(step, 20))

        momenta = jax.jit(lambda: jax.lax.fori_loop(0, 25, body, jnp.zeros(25)))()
        assert momenta.dtype == jnp.float32
        np.testing.assert_allclose(momenta[0], 0.99, atol=1e-7)
        np.testing.assert_allclose(momenta[20:], 1.0, atol=1e-7)
        assert np.all(np.diff(np.asarray(momenta)) >= 0)

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="total_steps"):
            momentum_schedule(0, 0)
        with pytest.raises(ValueError, match="total_steps"):
            momentum_schedule(0, 10.5)
        with pytest.raises(ValueError, match="base_momentum"):
            momentum_schedule(0, 10, base_momentum=1.2)
        with pytest.raises(ValueError, match="final_momentum"):
            momentum_schedule(0, 10, final_momentum=-0.1)
        with pytest.raises(ValueError, match="step"):
            momentum_schedule(jnp.arange(3), 10)


def _update_loss(target, online, momentum):
    return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(momentum_update(target, online, momentum)))


_update_grad = jax.jit(jax.grad(_update_loss, argnums=(0, 1, 2)))
_schedule_grad = jax.jit(jax.grad(lambda k: momentum_schedule(k, 100)))


@settings(max_examples=15, deadline=None)
@given(
    hnp.arrays(np.float32, (2, 3), elements=st.floats(-5.0, 5.0, width=32)),
    hnp.arrays(np.float32, (2, 3), elements=st.floats(-5.0, 5.0, width=32)),
    st.floats(0.0, 1.0, width=32),
    st.floats(-10.0, 200.0, width=32),
)
def test_gradients_are_finite(target, online, momentum, step):
    grads = _update_grad({"w": target}, {"w": online}, jnp.float32(momentum))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.isfinite(_schedule_grad(jnp.float32(step)))
