"""Synthetic people for HMR: determinism, keypoints on the drawn body, joint limits, the separate mocap
stream, the rasteriser against a brute-force reference, and visibility under self-occlusion."""

import numpy as np
import pytest

from landmarkjax.body import COCOPLUS_JOINT_NAMES, SMPL_JOINT_NAMES
from landmarkjax.data.sources import derive_seed
from landmarkjax.data.synthetic import people
from landmarkjax.ops import normalized_to_pixels, weak_perspective_project

SIZE = 64


@pytest.fixture(scope="module")
def records():
    return [people.synthetic_person(seed, SIZE, return_layers=True) for seed in range(6)]


def test_record_contract_and_determinism(records):
    record = records[0]
    expected = {"image": ((SIZE, SIZE, 3), np.uint8), "keypoints_2d": ((19, 2), np.float32),
                "visibility": ((19,), np.bool_), "joints_3d": ((19, 3), np.float32),
                "mask": ((SIZE, SIZE), np.bool_), "pose": ((72,), np.float32), "betas": ((10,), np.float32),
                "camera": ((3,), np.float32), "background": ((SIZE, SIZE, 3), np.uint8)}
    assert {key: (value.shape, value.dtype) for key, value in record.items()} == expected
    again = people.synthetic_person(0, SIZE, return_layers=True)
    for key in expected:
        np.testing.assert_array_equal(again[key], record[key], err_msg=key)
    assert not np.array_equal(records[1]["image"], record["image"])
    assert not np.array_equal(records[1]["pose"], record["pose"])


def test_keypoints_are_the_camera_projection_of_the_3d_joints(records):
    for record in records:
        normalised = weak_perspective_project(record["joints_3d"], record["camera"])
        expected = normalized_to_pixels(normalised, SIZE, SIZE)
        np.testing.assert_allclose(record["keypoints_2d"], expected, atol=1e-3)


def test_visible_keypoints_land_on_the_drawn_body(records):
    on_body, total = 0, 0
    for record in records:
        changed = np.abs(record["image"].astype(int) - record["background"].astype(int)).max(axis=-1) > 15
        pixels = np.rint(record["keypoints_2d"][record["visibility"]]).astype(int)
        on_body += int(changed[pixels[:, 1], pixels[:, 0]].sum())
        total += len(pixels)
        # The mask marks what was drawn over the background, too.
        assert changed[record["mask"]].mean() > 0.8
    assert total >= 30
    assert on_body / total > 0.85


def test_invisible_keypoints_are_outside_or_hidden(records):
    for record in records:
        inside = np.all((record["keypoints_2d"] >= -0.5) & (record["keypoints_2d"] < SIZE - 0.5), axis=-1)
        assert not np.any(record["visibility"] & ~inside)


def test_sampled_poses_stay_within_the_joint_limits(records):
    limits = people.BODY_POSE_LIMITS
    assert limits.shape == (23, 3, 2) and np.all(limits[..., 0] <= limits[..., 1])
    # Loosely anatomical: knees only bend backward, elbows only fold forward (opposite signs by side).
    knee, elbow = SMPL_JOINT_NAMES.index("left_knee") - 1, SMPL_JOINT_NAMES.index("left_elbow") - 1
    assert limits[knee, 0, 0] >= 0 and limits[knee + 1, 0, 0] >= 0
    assert limits[elbow, 1, 1] <= 0 and limits[elbow + 1, 1, 0] >= 0
    rng = np.random.default_rng(0)
    poses = np.stack([people.sample_body_pose(rng) for _ in range(300)] + [r["pose"][3:] for r in records])
    poses = poses.reshape(-1, 23, 3)
    assert np.all(poses >= limits[..., 0]) and np.all(poses <= limits[..., 1])
    # The sampler covers the ranges, not only the rest pose.
    assert np.all(poses.max(axis=0) - poses.min(axis=0) > 0.6 * (limits[..., 1] - limits[..., 0]))


def test_the_mocap_set_never_holds_the_images_poses():
    for seed in (0, 3):
        for index in range(4):
            image_pose = people.synthetic_person(derive_seed(seed, index), 16, max_occluders=0)["pose"]
            mocap = people.synthetic_mocap(seed, index)
            assert mocap["pose"].shape == (72,) and mocap["betas"].shape == (10,)
            assert not np.allclose(mocap["pose"], image_pose, atol=1e-3)
            np.testing.assert_array_equal(people.synthetic_mocap(seed, index)["pose"], mocap["pose"])
    limits = people.BODY_POSE_LIMITS
    body = np.stack([people.synthetic_mocap(0, i)["pose"][3:] for i in range(20)]).reshape(-1, 23, 3)
    assert np.all(body >= limits[..., 0]) and np.all(body <= limits[..., 1])


def _brute_force_raster(points, depth, faces, height, width):
    """Per pixel: the nearest triangle containing the pixel centre (solving for barycentrics by lstsq)."""
    index = np.full((height, width), -1)
    zbuf = np.full((height, width), np.inf)
    for y in range(height):
        for x in range(width):
            for f, (i, j, k) in enumerate(faces):
                matrix = np.array([[points[i, 0], points[j, 0], points[k, 0]],
                                   [points[i, 1], points[j, 1], points[k, 1]], [1.0, 1.0, 1.0]])
                weights = np.linalg.solve(matrix, [x, y, 1.0])
                if np.all(weights >= -1e-9):
                    z = weights @ depth[[i, j, k]]
                    if z < zbuf[y, x]:
                        index[y, x], zbuf[y, x] = f, z
    return index, zbuf


def test_rasterizer_matches_a_brute_force_reference():
    rng = np.random.default_rng(1)
    points = rng.uniform(-2.0, 14.0, (9, 2))
    depth = rng.uniform(0.0, 1.0, 9)
    faces = np.array([[0, 1, 2], [3, 5, 4], [6, 7, 8], [0, 4, 8]])  # both windings, overlapping
    index, zbuf = people.rasterize_triangles(points, depth, faces, 12, 13)
    expected_index, expected_z = _brute_force_raster(points, depth, faces, 12, 13)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(zbuf, expected_z)
    assert (index >= 0).sum() > 20


def test_a_body_seen_from_behind_hides_its_face():
    model = people._default_model(0)
    body_pose, betas = np.zeros(69, np.float32), np.zeros(10, np.float32)
    face = [COCOPLUS_JOINT_NAMES.index(name) for name in ("nose", "left_eye", "right_eye")]
    visibility = {}
    for yaw in (0.0, np.pi):
        pose = np.concatenate([people.global_orient_from_angles(yaw), body_pose])
        record = people.render_person(model, pose, betas, np.array([0.9, 0.0, 0.1], np.float32),
                                      np.random.default_rng(0), SIZE, max_occluders=0)
        visibility[yaw] = record["visibility"]
    assert visibility[0.0].all()
    assert not visibility[np.pi][face].any()
    assert visibility[np.pi][:14].all()  # a T-pose seen from behind still shows every limb joint


def test_bad_inputs_fail_clearly():
    model = people._default_model(0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="pose must have shape"):
        people.render_person(model, np.zeros(69), np.zeros(10), np.array([1.0, 0, 0]), rng)
    with pytest.raises(ValueError, match="camera"):
        people.render_person(model, np.zeros(72), np.zeros(10), np.array([0.0, 0, 0]), rng)
    with pytest.raises(ValueError, match="seed"):
        people.synthetic_person(-1)
