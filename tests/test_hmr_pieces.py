"""HMR's library pieces composed as the method composes them: IEF regressor (6-D pose) -> SMPL -> cocoplus
keypoints -> weak-perspective projection -> 2D keypoint loss. Gradients reach the regressor and stay finite."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.body import cocoplus_keypoints, make_synthetic_smpl, smpl_forward
from landmarkjax.losses import keypoint_2d_l1_loss
from landmarkjax.models.hmr import IEFRegressor, pose_to_rotation_matrices, split_theta
from landmarkjax.ops import weak_perspective_project


@pytest.mark.slow  # ~8 s of CPU: compiles the gradient of the SMPL forward pass
def test_keypoint_loss_is_differentiable_from_the_regressor_through_smpl():
    body = make_synthetic_smpl(seed=0)
    regressor = IEFRegressor(hidden=8, pose_representation="6d", final_kernel_init=nn.initializers.normal(0.01))
    features = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6)), jnp.float32)
    target = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(2, 19, 2)), jnp.float32)
    with jax.default_prng_impl("rbg"):
        params = jax.jit(regressor.init)(jax.random.key(0), features)

    def loss(params, visibility):
        camera, pose, betas = split_theta(regressor.apply(params, features)[-1], "6d")
        rotations = pose_to_rotation_matrices(pose, "6d")
        keypoints, valid = cocoplus_keypoints(smpl_forward(body, betas, rotations[:, 1:], rotations[:, 0]))
        return keypoint_2d_l1_loss(weak_perspective_project(keypoints, camera), target, visibility * valid)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, gradient = value_and_grad(params, jnp.ones((2, 19)))
    norms = jax.tree.map(lambda g: float(np.linalg.norm(np.asarray(g))), gradient["params"])
    assert float(value) > 0 and all(np.isfinite(n) for n in jax.tree.leaves(norms))
    assert norms["fc3"]["kernel"] > 0 and norms["mean_theta"] > 0
    # Nothing visible: zero loss and zero gradient, never NaN (same compiled function).
    value, gradient = value_and_grad(params, jnp.zeros((2, 19)))
    assert float(value) == 0.0
    assert all(np.all(np.asarray(g) == 0.0) for g in jax.tree.leaves(gradient))
