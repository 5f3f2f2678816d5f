"""The procedural SMPL-format model: layout, determinism, a closed mesh, sensible regressors, skinning
weights and shape directions, and files that load back."""

import collections

import numpy as np
import pytest

from landmarkjax.body.io import load_smpl
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES, SMPL_PARENTS
from landmarkjax.body.synthetic_smpl import (
    COCOPLUS_JOINT_NAMES,
    make_synthetic_smpl,
    synthetic_smpl_arrays,
    write_synthetic_smpl,
)

JOINT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def arrays():
    return synthetic_smpl_arrays(seed=0)


def test_layout_matches_the_official_files(arrays):
    num_vertices = len(arrays["v_template"])
    assert 2000 <= num_vertices <= 8000
    assert arrays["shapedirs"].shape == (num_vertices, 3, 10)
    assert arrays["posedirs"].shape == (num_vertices, 3, 207)
    assert arrays["J_regressor"].shape == (24, num_vertices)
    assert arrays["weights"].shape == (num_vertices, 24)
    assert arrays["f"].shape[1] == 3 and arrays["f"].min() == 0 and arrays["f"].max() == num_vertices - 1
    assert arrays["cocoplus_regressor"].shape == (19, num_vertices)
    assert tuple(arrays["kintree_table"][1]) == tuple(range(24))
    assert arrays["kintree_table"][0, 0] == 4294967295
    assert tuple(arrays["kintree_table"][0, 1:]) == SMPL_PARENTS[1:]


def test_deterministic_per_seed_and_seeds_differ(arrays):
    again = synthetic_smpl_arrays(seed=0)
    other = synthetic_smpl_arrays(seed=1)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key], err_msg=key)
    assert not np.allclose(arrays["v_template"], other["v_template"])
    assert not np.allclose(arrays["posedirs"], other["posedirs"])


def test_mesh_is_closed_and_consistently_oriented_outwards(arrays):
    faces, vertices = arrays["f"], arrays["v_template"]
    directed = collections.Counter()
    for triangle in faces:
        for i in range(3):
            directed[(triangle[i], triangle[(i + 1) % 3])] += 1
    # Every edge is used once in each direction: closed, manifold and consistently oriented.
    assert all(count == 1 for count in directed.values())
    assert all((b, a) in directed for a, b in directed)
    # Outward: positive enclosed volume (divergence theorem), of a plausible size for a body (litres).
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0
    assert 0.03 < volume < 0.2
    areas = np.linalg.norm(np.cross(b - a, c - a), axis=1) / 2
    assert areas.min() > 1e-7


def test_rest_joints_form_a_t_posed_body(arrays):
    joints = arrays["J_regressor"] @ arrays["v_template"]
    for name in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand"):
        left, right = joints[JOINT[f"left_{name}"]], joints[JOINT[f"right_{name}"]]
        assert left[0] > 0.02 and right[0] < -0.02, name  # SMPL: the body's left is +x
        np.testing.assert_allclose(left * [-1, 1, 1], right, atol=1e-9, err_msg=name)
    height = lambda name: joints[JOINT[name]][1]  # noqa: E731
    assert (
        height("head")
        > height("neck")
        > height("spine3")
        > height("spine2")
        > height("spine1")
        > height("pelvis")
    )
    assert height("pelvis") > height("left_knee") > height("left_ankle") > height("left_foot")
    assert abs(height("left_wrist") - height("left_shoulder")) < 0.05  # arms out in a T
    assert 1.4 < np.ptp(arrays["v_template"][:, 1]) < 2.0


def test_regressors_are_sparse_convex_combinations(arrays):
    for key in ("J_regressor", "cocoplus_regressor"):
        regressor = arrays[key]
        np.testing.assert_allclose(regressor.sum(axis=1), 1.0, atol=1e-12, err_msg=key)
        assert regressor.min() >= 0.0
        assert np.count_nonzero(regressor) < 0.02 * regressor.size
    lsp = arrays["cocoplus_regressor"][:13]
    expected = np.stack([arrays["J_regressor"][JOINT[name]] for name in COCOPLUS_JOINT_NAMES[:13]])
    np.testing.assert_array_equal(lsp, expected)
    points = arrays["cocoplus_regressor"] @ arrays["v_template"]
    head = arrays["J_regressor"][JOINT["head"]] @ arrays["v_template"]
    face = {name: points[COCOPLUS_JOINT_NAMES.index(name)] for name in COCOPLUS_JOINT_NAMES[13:]}
    assert face["head_top"][1] > face["left_eye"][1] > head[1]
    assert face["nose"][2] > head[2] and face["left_ear"][0] > 0 > face["right_ear"][0]


def test_skinning_weights_are_sparse_normalised_and_mostly_smooth(arrays):
    weights = arrays["weights"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert weights.min() >= 0.0
    assert np.count_nonzero(weights, axis=1).max() <= 4
    faces = arrays["f"]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    jumps = np.abs(weights[edges[:, 0]] - weights[edges[:, 1]]).sum(axis=1)
    assert np.median(jumps) < 0.1
    # Each vertex's dominant joint moves it: a thigh vertex follows the hip, a forearm vertex the elbow.
    vertices = arrays["v_template"]
    thigh = np.argmin(np.linalg.norm(vertices - [0.18, -0.27, 0.0], axis=1))
    forearm = np.argmin(np.linalg.norm(vertices - [0.55, 0.45, 0.04], axis=1))
    assert np.argmax(weights[thigh]) == JOINT["left_hip"]
    assert np.argmax(weights[forearm]) == JOINT["left_elbow"]


def test_shape_directions_change_height_girth_and_limb_lengths(arrays):
    vertices, shapedirs, regressor = arrays["v_template"], arrays["shapedirs"], arrays["J_regressor"]

    def measure(betas):
        shaped = vertices + shapedirs @ betas
        joints = regressor @ shaped
        waist = np.abs(vertices[:, 1] - joints[JOINT["spine2"], 1]) < 0.02
        return dict(
            height=np.ptp(shaped[:, 1]),
            girth=np.ptp(shaped[waist, 0]),
            leg=np.linalg.norm(joints[JOINT["left_hip"]] - joints[JOINT["left_ankle"]]),
            arm=np.linalg.norm(joints[JOINT["left_shoulder"]] - joints[JOINT["left_wrist"]]),
        )

    rest = measure(np.zeros(10))
    unit = np.eye(10)
    assert measure(unit[0])["height"] > rest["height"] + 0.05  # stature
    assert measure(unit[1])["girth"] > rest["girth"] + 0.02  # weight
    assert measure(unit[2])["leg"] > rest["leg"] + 0.03  # leg length
    assert measure(unit[3])["arm"] > rest["arm"] + 0.03  # arm length
    assert measure(-unit[2])["leg"] < rest["leg"] - 0.03
    # Every direction does something, and none is wild: |offset| < 15 cm per unit beta.
    magnitudes = np.abs(shapedirs).max(axis=(0, 1))
    assert np.all(magnitudes > 0.005) and np.all(magnitudes < 0.15)
    assert np.abs(arrays["posedirs"]).max() < 0.03


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_written_files_load_back(tmp_path, suffix):
    path = tmp_path / f"synthetic_smpl{suffix}"
    written = write_synthetic_smpl(path, seed=4)
    loaded = load_smpl(path)
    reference = make_synthetic_smpl(seed=4)
    for field in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "faces"):
        np.testing.assert_allclose(getattr(loaded, field), getattr(reference, field), atol=1e-6)
        np.testing.assert_array_equal(getattr(written, field), getattr(reference, field))
    assert loaded.parents == SMPL_PARENTS and loaded.joint_names == SMPL_JOINT_NAMES
    assert list(loaded.extra_regressors) == ["cocoplus_regressor"]
