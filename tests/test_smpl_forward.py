"""smpl_forward against a numpy SMPL written from the paper; invariances, input forms and gradients."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from landmarkjax.body.forward_pass import pose_to_rotations, smpl_forward
from landmarkjax.body.synthetic_smpl import make_synthetic_smpl, synthetic_smpl_arrays

ATOL = 2e-5  # metres; float32 forward pass against a float64 reference
forward = jax.jit(smpl_forward)


@pytest.fixture(scope="module")
def arrays():
    return synthetic_smpl_arrays(seed=3)


@pytest.fixture(scope="module")
def model():
    return make_synthetic_smpl(seed=3)


def reference_smpl(arrays, betas, pose, transl=(0.0, 0.0, 0.0)):
    """SMPL (Loper et al. 2015, eqs. 1-10) for one body, in float64 with explicit loops over joints.

    betas [S], pose [24, 3] axis-angle (joint 0 = global orientation) -> vertices [V, 3], joints [24, 3].
    """
    v_template = arrays["v_template"]
    shapedirs, posedirs = arrays["shapedirs"], arrays["posedirs"]
    weights, regressor = arrays["weights"], arrays["J_regressor"]
    parents = arrays["kintree_table"][0].astype(np.int64)
    num_joints = len(parents)

    v_shaped = v_template.copy()
    for s, beta in enumerate(betas):
        v_shaped += beta * shapedirs[:, :, s]
    rest_joints = regressor @ v_shaped

    rotations = [Rotation.from_rotvec(pose[j]).as_matrix() for j in range(num_joints)]
    features = []
    for j in range(1, num_joints):
        features.extend((rotations[j] - np.eye(3)).reshape(-1))
    v_posed = v_shaped.copy()
    for p, feature in enumerate(features):
        v_posed += feature * posedirs[:, :, p]

    world = [None] * num_joints
    for j in range(num_joints):
        local = np.eye(4)
        local[:3, :3] = rotations[j]
        if j == 0:
            local[:3, 3] = rest_joints[0]
            world[j] = local
        else:
            local[:3, 3] = rest_joints[j] - rest_joints[parents[j]]
            world[j] = world[parents[j]] @ local
    vertices = np.zeros_like(v_posed)
    homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], axis=1)
    for j in range(num_joints):
        unpose = np.eye(4)
        unpose[:3, 3] = -rest_joints[j]
        skinning = world[j] @ unpose
        vertices += weights[:, j : j + 1] * (homogeneous @ skinning.T)[:, :3]
    joints = np.stack([world[j][:3, 3] for j in range(num_joints)])
    return vertices + np.asarray(transl), joints + np.asarray(transl)


def random_inputs(seed, batch=2, pose_scale=0.6):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, 10)).astype(np.float32),
        (rng.normal(size=(batch, 23, 3)) * pose_scale).astype(np.float32),
        (rng.normal(size=(batch, 3)) * pose_scale).astype(np.float32),
        (rng.normal(size=(batch, 3)) * 0.2).astype(np.float32),
    )


class SMPLForwardTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference(self):
        arrays, model = synthetic_smpl_arrays(seed=3), make_synthetic_smpl(seed=3)
        betas, body_pose, global_orient, transl = random_inputs(0)
        output = self.variant(smpl_forward)(model, betas, body_pose, global_orient, transl)
        chex.assert_shape(output.vertices, (2, model.num_vertices, 3))
        chex.assert_shape(output.joints, (2, 24, 3))
        for b in range(2):
            pose = np.concatenate([global_orient[b][None], body_pose[b]])
            vertices, joints = reference_smpl(
                arrays, betas[b].astype(np.float64), pose.astype(np.float64), transl[b]
            )
            np.testing.assert_allclose(output.vertices[b], vertices, atol=ATOL)
            np.testing.assert_allclose(output.joints[b], joints, atol=ATOL)
            np.testing.assert_allclose(output.rotations[b], Rotation.from_rotvec(pose).as_matrix(), atol=1e-6)
            np.testing.assert_allclose(
                output.extra_joints["cocoplus_regressor"][b],
                arrays["cocoplus_regressor"] @ vertices,
                atol=ATOL,
            )


def test_zero_shape_rest_pose_gives_template_and_regressed_joints(arrays, model):
    zeros = [np.zeros_like(x) for x in random_inputs(0)]
    output = forward(model, *zeros)
    for b in range(2):
        np.testing.assert_allclose(output.vertices[b], arrays["v_template"], atol=1e-6)
        np.testing.assert_allclose(output.joints[b], arrays["J_regressor"] @ arrays["v_template"], atol=1e-6)


def test_root_rotation_rotates_every_vertex_rigidly_about_the_root(model):
    betas, body_pose, _, transl = random_inputs(1)
    transl[:] = 0.0
    unrotated = forward(model, betas, body_pose, np.zeros_like(transl), transl)
    axis_angle = np.array([[0.3, -1.1, 0.7], [0.0, 0.0, 0.0]], np.float32)
    rotated = forward(model, betas, body_pose, axis_angle, transl)
    rotation = Rotation.from_rotvec(axis_angle[0].astype(np.float64)).as_matrix()
    root = np.asarray(unrotated.joints[0, 0], np.float64)
    expected = (np.asarray(unrotated.vertices[0], np.float64) - root) @ rotation.T + root
    np.testing.assert_allclose(rotated.vertices[0], expected, atol=ATOL)
    # Rigid: every pairwise distance is kept.
    first = np.asarray(rotated.vertices[0, ::50])
    before = np.asarray(unrotated.vertices[0, ::50])
    np.testing.assert_allclose(
        np.linalg.norm(first[:, None] - first[None], axis=-1),
        np.linalg.norm(before[:, None] - before[None], axis=-1),
        atol=ATOL,
    )


def test_translation_moves_everything(model):
    betas, body_pose, global_orient, _ = random_inputs(2)
    transl = np.array([[0.5, -1.0, 2.0], [0.0, 0.1, -0.3]], np.float32)
    base = forward(model, betas, body_pose, global_orient, np.zeros_like(transl))
    moved = forward(model, betas, body_pose, global_orient, transl)
    np.testing.assert_allclose(moved.vertices, base.vertices + transl[:, None], atol=1e-5)
    np.testing.assert_allclose(moved.joints, base.joints + transl[:, None], atol=1e-5)


def test_pose_forms_agree(model):
    betas, body_pose, global_orient, transl = random_inputs(3)
    axis_angle = forward(model, betas, body_pose, global_orient, transl)
    flat = forward(model, betas, body_pose.reshape(2, 69), global_orient, transl)
    body_matrices = (
        Rotation.from_rotvec(body_pose.reshape(-1, 3).astype(np.float64)).as_matrix().reshape(2, 23, 3, 3)
    )
    root_matrices = Rotation.from_rotvec(global_orient.astype(np.float64)).as_matrix()
    matrices = forward(
        model, betas, body_matrices.astype(np.float32), root_matrices.astype(np.float32), transl
    )
    np.testing.assert_allclose(flat.vertices, axis_angle.vertices, atol=1e-6)
    np.testing.assert_allclose(matrices.vertices, axis_angle.vertices, atol=1e-5)
    np.testing.assert_allclose(matrices.joints, axis_angle.joints, atol=1e-5)


def test_batch_shapes_broadcast_and_unbatched_inputs(model):
    betas, body_pose, global_orient, transl = random_inputs(4)
    batched = forward(model, betas, body_pose, global_orient, transl)
    single = forward(model, betas[1], body_pose[1], global_orient[1], transl[1])
    chex.assert_shape(single.vertices, (model.num_vertices, 3))
    np.testing.assert_allclose(single.vertices, batched.vertices[1], atol=1e-6)
    grid = forward(model, betas[:, None], body_pose[None], global_orient[None], transl[None])
    chex.assert_shape(grid.joints, (2, 2, 24, 3))
    np.testing.assert_allclose(grid.vertices[1, 1], batched.vertices[1], atol=1e-6)
    # betas of body 0 with the pose of body 1.
    np.testing.assert_allclose(
        grid.vertices[0, 1],
        forward(model, betas[[0, 0]], body_pose, global_orient, transl).vertices[1],
        atol=1e-6,
    )


def test_fewer_betas_mean_zero_for_the_rest(model):
    betas, body_pose, global_orient, transl = random_inputs(5)
    short = forward(model, betas[:, :4], body_pose, global_orient, transl)
    padded = forward(
        model,
        np.concatenate([betas[:, :4], np.zeros((2, 6), np.float32)], axis=1),
        body_pose,
        global_orient,
        transl,
    )
    np.testing.assert_allclose(short.vertices, padded.vertices, atol=1e-6)


def test_vmap_matches_batched_call(model):
    betas, body_pose, global_orient, transl = random_inputs(6)
    batched = forward(model, betas, body_pose, global_orient, transl)
    mapped = jax.jit(jax.vmap(smpl_forward, in_axes=(None, 0, 0, 0, 0)))(
        model, betas, body_pose, global_orient, transl
    )
    np.testing.assert_allclose(mapped.vertices, batched.vertices, atol=1e-5)
    np.testing.assert_allclose(
        mapped.extra_joints["cocoplus_regressor"], batched.extra_joints["cocoplus_regressor"], atol=1e-5
    )


def _loss(model, betas, body_pose, global_orient, transl):
    # Fixed pseudo-random weights, so that no rotation or translation leaves the loss unchanged.
    output = smpl_forward(model, betas, body_pose, global_orient, transl)
    vertex_weights = 0.5 + jnp.sin(jnp.arange(output.vertices.size, dtype=jnp.float32)).reshape(
        output.vertices.shape
    )
    joint_weights = 0.5 + jnp.cos(jnp.arange(output.joints.size, dtype=jnp.float32)).reshape(
        output.joints.shape
    )
    return jnp.sum(vertex_weights * output.vertices) + jnp.sum(joint_weights * output.joints**2)


def test_gradients_are_finite_and_nonzero_at_the_zero_pose(model):
    zeros = [np.zeros_like(x) for x in random_inputs(0)]
    gradients = _cached_gradient()(model, *zeros)
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))
        assert np.any(np.abs(gradient) > 1e-4)


def test_gradient_matches_finite_differences(model):
    betas, body_pose, global_orient, transl = random_inputs(7)
    loss = jax.jit(_loss)
    gradient = _cached_gradient()(model, betas, body_pose, global_orient, transl)[1]
    direction = jnp.asarray(np.random.default_rng(0).normal(size=body_pose.shape), jnp.float32)
    epsilon = 1e-3
    numeric = (
        loss(model, betas, body_pose + epsilon * direction, global_orient, transl)
        - loss(model, betas, body_pose - epsilon * direction, global_orient, transl)
    ) / (2 * epsilon)
    np.testing.assert_allclose(jnp.sum(gradient * direction), numeric, rtol=2e-2)


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(seed=st.integers(0, 10_000), scale=st.sampled_from([0.0, 1e-7, 1e-3, 1.0, 3.0]))
def test_gradients_are_finite_for_random_poses(seed, scale):
    model = _cached_model()
    betas, body_pose, global_orient, transl = random_inputs(seed, pose_scale=scale)
    gradients = _cached_gradient()(model, betas, body_pose, global_orient, transl)
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))


_CACHE = {}


def _cached_model():
    if "model" not in _CACHE:
        _CACHE["model"] = make_synthetic_smpl(seed=3)
    return _CACHE["model"]


def _cached_gradient():
    if "gradient" not in _CACHE:
        _CACHE["gradient"] = jax.jit(jax.grad(_loss, argnums=(1, 2, 3, 4)))
    return _CACHE["gradient"]


def test_pose_to_rotations_forms(model):
    pose = np.random.default_rng(8).normal(size=(5, 3)).astype(np.float32)
    expected = Rotation.from_rotvec(pose.astype(np.float64)).as_matrix()
    np.testing.assert_allclose(pose_to_rotations(pose, 5), expected, atol=1e-6)
    np.testing.assert_allclose(pose_to_rotations(pose.reshape(15), 5), expected, atol=1e-6)
    np.testing.assert_allclose(pose_to_rotations(expected, 5), expected)
    with pytest.raises(ValueError, match="pose must have shape"):
        pose_to_rotations(pose[:4], 5)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(body_pose=np.zeros((2, 22, 3), np.float32)), "body_pose must have shape"),
        (dict(body_pose=np.zeros((2, 70), np.float32)), "body_pose must have shape"),
        (dict(betas=np.zeros((2, 11), np.float32)), "betas must have shape"),
        (dict(betas=np.zeros((2, 10), np.int32)), "betas must be a floating-point"),
        (dict(global_orient=np.zeros((2, 4), np.float32)), "global_orient must have shape"),
        (dict(global_orient=np.zeros((2, 3, 3), np.float32)), "do not broadcast"),
        (dict(transl=np.zeros((2, 2), np.float32)), "transl must have shape"),
        (dict(betas=np.zeros((3, 10), np.float32)), "do not broadcast"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, change, message):
    inputs = dict(
        betas=np.zeros((2, 10), np.float32),
        body_pose=np.zeros((2, 23, 3), np.float32),
        global_orient=np.zeros((2, 3), np.float32),
        transl=np.zeros((2, 3), np.float32),
    )
    inputs.update(change)
    with pytest.raises(ValueError, match=message):
        smpl_forward(model, **inputs)


def test_matrix_pose_needs_matrix_global_orient(model):
    with pytest.raises(ValueError, match="global_orient must be rotation matrices"):
        smpl_forward(
            model,
            np.zeros((1, 10), np.float32),
            np.tile(np.eye(3, dtype=np.float32), (1, 23, 1, 1)),
            np.zeros((1, 3), np.float32),
        )


def test_larger_batches_regress_joints_from_the_shape_directions_and_agree(arrays, model):
    # Past 11 bodies, rest joints come from J_regressor applied to the template and shape directions once.
    betas, body_pose, global_orient, transl = random_inputs(9, batch=16)
    output = forward(model, betas, body_pose, global_orient, transl)
    for b in (0, 15):
        pose = np.concatenate([global_orient[b][None], body_pose[b]]).astype(np.float64)
        vertices, joints = reference_smpl(arrays, betas[b].astype(np.float64), pose, transl[b])
        np.testing.assert_allclose(output.vertices[b], vertices, atol=ATOL)
        np.testing.assert_allclose(output.joints[b], joints, atol=ATOL)


@pytest.mark.slow
def test_matches_the_pytorch_smplx_package_when_installed(model):
    """An independent implementation, where available (smplx and torch are not project dependencies)."""
    smplx = pytest.importorskip("smplx")
    torch = pytest.importorskip("torch")
    from smplx.utils import Struct

    from landmarkjax.body.io import smpl_to_arrays

    betas, body_pose, global_orient, transl = random_inputs(10, batch=3)
    layer = smplx.SMPL(
        model_path="",
        data_struct=Struct(**smpl_to_arrays(model)),
        batch_size=3,
        vertex_ids={name: 0 for name in ("nose", "reye", "leye", "rear", "lear")},
        use_hands=False,
        use_feet_keypoints=False,
    )
    with torch.no_grad():
        theirs = layer(
            betas=torch.from_numpy(betas),
            body_pose=torch.from_numpy(body_pose.reshape(3, 69)),
            global_orient=torch.from_numpy(global_orient),
            transl=torch.from_numpy(transl),
        )
    ours = forward(model, betas, body_pose, global_orient, transl)
    np.testing.assert_allclose(ours.vertices, theirs.vertices.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.joints, theirs.joints[:, :24].numpy(), atol=1e-5)


def _plain_jnp_smpl(model, betas, body_pose, global_orient, transl):
    """SMPL as the paper writes it, in plain jnp with autodiff (no chunking, no custom gradient): the
    independent reference for the chunked forward pass and its hand-written VJP."""
    batch = betas.shape[0]
    pose = jnp.concatenate([global_orient[:, None], body_pose.reshape(batch, -1, 3)], axis=1)
    rotations = pose_to_rotations(pose, model.num_joints)
    v_shaped = model.v_template + jnp.einsum("vcs,bs->bvc", model.shapedirs[..., : betas.shape[1]], betas)
    rest_joints = jnp.einsum("jv,bvc->bjc", model.J_regressor, v_shaped)
    features = (rotations[:, 1:] - jnp.eye(3)).reshape(batch, -1)
    v_posed = v_shaped + jnp.einsum("vcp,bp->bvc", model.posedirs, features)
    world = [None] * model.num_joints
    for j, parent in enumerate(model.parents):
        local = jnp.concatenate(
            [
                jnp.concatenate(
                    [rotations[:, j], (rest_joints[:, j] - (rest_joints[:, parent] if j else 0.0))[..., None]], -1
                ),
                jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0]), (batch, 1, 4)),
            ],
            axis=-2,
        )
        world[j] = local if j == 0 else world[parent] @ local
    world = jnp.stack(world, axis=1)  # [B, J, 4, 4]
    offsets = jnp.einsum("bjik,bjk->bji", world[..., :3, :3], rest_joints)
    skinning = world[..., :3, :].at[..., 3].add(-offsets)  # [B, J, 3, 4]
    homogeneous = jnp.concatenate([v_posed, jnp.ones(v_posed.shape[:-1] + (1,))], -1)
    vertices = jnp.einsum("vj,bjik,bvk->bvi", model.lbs_weights, skinning, homogeneous)
    return vertices + transl[:, None]


@pytest.mark.parametrize(
    "batch", [pytest.param(b, marks=pytest.mark.slow) for b in (3, 64, 70, 130)]  # 70, 130: padded
)
def test_chunked_forward_and_its_gradient_match_plain_autodiff(model, batch):
    # 64 is one chunk; 70 and 130 are padded to whole chunks; the gradient is the hand-written VJP of the
    # chunked blend shapes and skinning, with respect to the inputs and to every model array.
    betas, body_pose, global_orient, transl = random_inputs(11, batch=batch)
    ours = forward(model, betas, body_pose, global_orient, transl).vertices
    reference = jax.jit(_plain_jnp_smpl)(model, betas, body_pose, global_orient, transl)
    np.testing.assert_allclose(ours, reference, atol=ATOL)

    weights = jnp.asarray(np.random.default_rng(batch).normal(size=reference.shape).astype(np.float32))

    def loss(function):
        return lambda *args: jnp.sum(weights * function(*args))

    argnums = (0, 1, 2, 3, 4)
    ours = jax.jit(jax.grad(loss(lambda *a: smpl_forward(*a).vertices), argnums, allow_int=True))(
        model, betas, body_pose, global_orient, transl
    )
    theirs = jax.jit(jax.grad(loss(_plain_jnp_smpl), argnums, allow_int=True))(
        model, betas, body_pose, global_orient, transl
    )
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ours), jax.tree_util.tree_leaves(theirs)):
        if a.dtype == jax.dtypes.float0:
            continue
        scale = float(np.max(np.abs(b))) or 1.0
        np.testing.assert_allclose(a / scale, b / scale, atol=2e-5, err_msg=jax.tree_util.keystr(path))
