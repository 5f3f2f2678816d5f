"""SumNet and RCN (Honari et al. 2016): shapes, nearest upsampling, and the branch-masking ablation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.models.rcn import RCN, SumNet, rcn_honari2016, sumnet_honari2016, upsample_nearest

# RBG keys compile much faster than threefry on CPU; the tests only need some random parameters.
KEY = jax.random.key(0, impl="rbg")
K = 3
WIDTHS = (4, 5, 6, 7)


def _images(size=16, batch=2):
    return jnp.asarray(np.random.default_rng(0).uniform(size=(batch, size, size, 1)), jnp.float32)


def _random_params(model, images):
    """Random parameters in the model's shapes, drawn with numpy (no initialiser has to compile)."""
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(model.init, KEY, images)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(scale=0.3, size=s.shape), jnp.float32), shapes)


def _perturb_branches(params, branches):
    """Adds 0.5 to every parameter of the modules named branch{b}_... for b in `branches`."""
    prefixes = tuple(f"branch{b}_" for b in branches)
    inner = {
        name: jax.tree.map(lambda p: p + 0.5, module) if name.startswith(prefixes) else module
        for name, module in params["params"].items()
    }
    assert any(name.startswith(prefixes) for name in inner), "no module of those branches"
    return {"params": inner}


@pytest.mark.parametrize("model_cls", [SumNet, RCN])
def test_logits_at_input_resolution(model_cls):
    model = model_cls(K, widths=WIDTHS)
    images = jnp.zeros([2, 24, 16, 1])
    logits, params = jax.eval_shape(model.init_with_output, KEY, images)
    assert logits.shape == (2, 24, 16, K)
    assert {name.split("_")[0] for name in params["params"]} >= {f"branch{b}" for b in range(4)}


@pytest.mark.parametrize("factory", [rcn_honari2016, sumnet_honari2016])
def test_published_layout_has_four_branches_on_80px(factory):
    model = factory(5)
    assert model.num_branches == 4
    logits, _ = jax.eval_shape(model.init_with_output, KEY, jnp.zeros([1, 80, 80, 1]))
    assert logits.shape == (1, 80, 80, 5)


def test_upsample_nearest_matches_kron():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype(np.float32)
    expected = np.kron(x, np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(upsample_nearest(jnp.asarray(x), 2), expected)


def test_bad_inputs_raise():
    model = RCN(K, widths=WIDTHS)
    with pytest.raises(ValueError, match="divisible"):
        model.init(KEY, jnp.zeros([1, 12, 16, 1]))
    params = jax.eval_shape(model.init, KEY, jnp.zeros([1, 16, 16, 1]))
    with pytest.raises(ValueError, match="one bool per branch"):
        model.apply(params, jnp.zeros([1, 16, 16, 1]), branch_mask=(True, False))
    with pytest.raises(ValueError, match="at least one"):
        model.apply(params, jnp.zeros([1, 16, 16, 1]), branch_mask=(False,) * 4)


@pytest.mark.parametrize("model_cls", [SumNet, RCN])
def test_masking_coarse_branches_removes_their_influence(model_cls):
    model = model_cls(K, widths=WIDTHS)
    images = _images()
    params = _random_params(model, images)
    perturbed = _perturb_branches(params, branches=(1, 2, 3))
    apply = model.apply  # eager: tiny convolutions run faster than they compile
    fine_only = (True, False, False, False)

    full = apply(params, images)
    masked = apply(params, images, branch_mask=fine_only)
    # Masking changes the output ...
    assert float(jnp.max(jnp.abs(full - masked))) > 1e-4
    # ... the masked output ignores the coarse branches' parameters ...
    np.testing.assert_array_equal(apply(perturbed, images, branch_mask=fine_only), masked)
    # ... while the full model depends on them.
    assert float(jnp.max(jnp.abs(apply(perturbed, images) - full))) > 1e-4


def test_sumnet_sums_its_branches():
    """With a shared trunk, the full SumNet's logits are the sum of each single-branch output."""
    model = SumNet(K, widths=WIDTHS)
    images = _images()
    params = _random_params(model, images)
    apply = model.apply  # eager: tiny convolutions run faster than they compile
    singles = [apply(params, images, branch_mask=tuple(b == c for c in range(4))) for b in range(4)]
    np.testing.assert_allclose(apply(params, images), sum(singles), rtol=1e-5, atol=1e-6)


def test_rcn_masking_the_fine_branch_keeps_the_coarse_path():
    """Masking branch 0 zeroes its own encoder features; the coarse branches still drive the output."""
    model = RCN(K, widths=WIDTHS)
    images = _images()
    params = _random_params(model, images)
    apply = model.apply  # eager: tiny convolutions run faster than they compile
    coarse_only = (False, True, True, True)
    masked = apply(params, images, branch_mask=coarse_only)
    perturbed = _perturb_branches(params, branches=(3,))
    assert float(jnp.max(jnp.abs(apply(perturbed, images, branch_mask=coarse_only) - masked))) > 1e-4
