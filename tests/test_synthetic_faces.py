"""Synthetic faces: layout, landmarks on drawn features, flip equivariance, attributes, clips, determinism."""

import dataclasses

import numpy as np
import pytest

from landmarkjax import face_layout
from landmarkjax.data.synthetic.faces import (
    FACE_ATTRIBUTE_NAMES,
    Occluder,
    face_geometry,
    mirror_face,
    render_face,
    sample_face,
    synthetic_face,
    synthetic_face_clip,
    synthetic_faces,
)
from landmarkjax.face_layout import FLIP_PERMUTATION_68, flip_landmarks

# The iBUG 300-W symmetric pairs as the 1-based point numbers of the annotation guidelines
# (jaw 1-17, brows 18-27, nose 28-36, eyes 37-48, mouth 49-68).
IBUG_MIRROR_PAIRS_1_BASED = [
    (1, 17), (2, 16), (3, 15), (4, 14), (5, 13), (6, 12), (7, 11), (8, 10),
    (18, 27), (19, 26), (20, 25), (21, 24), (22, 23),
    (32, 36), (33, 35),
    (37, 46), (38, 45), (39, 44), (40, 43), (41, 48), (42, 47),
    (49, 55), (50, 54), (51, 53), (60, 56), (59, 57),
    (61, 65), (62, 64), (68, 66),
]
IBUG_MIDLINE_1_BASED = [9, 28, 29, 30, 31, 34, 52, 58, 63, 67]


def clean_scene(scene):
    """Flat light, no occluder, no blur or noise: pixel colours are the drawn colours."""
    return dataclasses.replace(scene, ambient=1.0, specular=0.0, occluder=None, blur_sigma=0.0,
                               noise_sigma=0.0, tint=np.ones(3))


def face(seed, size=128, **state_changes):
    identity, state, scene = sample_face(np.random.default_rng(seed), size)
    return identity, dataclasses.replace(state, **state_changes), scene


# ---------------------------------------------------------------------------------------------- layout


def test_flip_permutation_matches_ibug_pairs():
    expected = np.arange(68)
    for a, b in IBUG_MIRROR_PAIRS_1_BASED:
        expected[a - 1], expected[b - 1] = b - 1, a - 1
    np.testing.assert_array_equal(FLIP_PERMUTATION_68, expected)
    np.testing.assert_array_equal(FLIP_PERMUTATION_68[FLIP_PERMUTATION_68], np.arange(68))
    fixed = np.flatnonzero(FLIP_PERMUTATION_68 == np.arange(68))
    np.testing.assert_array_equal(fixed, np.array(IBUG_MIDLINE_1_BASED) - 1)


def test_region_groups_partition_the_68_points():
    groups = np.concatenate(list(face_layout.FACE_REGIONS.values()))
    np.testing.assert_array_equal(np.sort(groups), np.arange(68))
    np.testing.assert_array_equal(face_layout.LEFT_EYE, np.arange(36, 42))
    assert face_layout.LEFT_OUTER_EYE_CORNER == 36 and face_layout.RIGHT_OUTER_EYE_CORNER == 45


def test_flip_landmarks_validates_shape():
    with pytest.raises(ValueError, match="landmarks"):
        flip_landmarks(np.zeros((5, 2)), 64)


def assert_frontal_layout(lm):
    """Left/right order of a roughly frontal, upright face in image coordinates."""
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # outer-left, inner-left, inner-right, outer-right
    assert lm[17, 0] < lm[21, 0] < lm[22, 0] < lm[26, 0]
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert lm[31, 0] < lm[33, 0] < lm[35, 0]
    assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[60, 0] < lm[64, 0]
    eye_y = lm[36:48, 1].mean()
    assert lm[17:27, 1].mean() < eye_y < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]


def test_rendered_faces_have_the_ibug_layout():
    for seed in range(6):
        _, state, _ = face(seed)
        if abs(state.yaw) < 0.5 and abs(state.roll) < 0.3:
            record = synthetic_face(seed, 128)
            assert_frontal_layout(record["landmarks"])


def test_flipped_image_landmarks_form_a_valid_face():
    checked = 0
    for seed in range(8):
        record = synthetic_face(seed, 96)
        identity, state, _ = face(seed, 96)
        if abs(state.yaw) > 0.5 or abs(state.roll) > 0.3:
            continue
        checked += 1
        image, lm = record["image"], record["landmarks"]
        flipped_image = image[:, ::-1]
        flipped = flip_landmarks(lm, 96)
        assert_frontal_layout(flipped)
        # Without the permutation the mirrored points are not a valid face (left/right swapped).
        mirrored_only = lm.copy()
        mirrored_only[:, 0] = 95 - mirrored_only[:, 0]
        assert mirrored_only[36, 0] > mirrored_only[45, 0]
        # x' = W - 1 - x: the flipped image shows at each flipped landmark what the original shows at the
        # corresponding original landmark.
        inside = record["visibility"][FLIP_PERMUTATION_68]
        xy = np.round(flipped[inside]).astype(int)
        xy_orig = np.round(lm[FLIP_PERMUTATION_68][inside]).astype(int)
        np.testing.assert_array_equal(flipped_image[xy[:, 1], xy[:, 0]], image[xy_orig[:, 1], xy_orig[:, 0]])
    assert checked >= 3


def test_mirrored_parameters_render_the_flipped_landmarks():
    size = 112
    for seed in range(6):
        identity, state, scene = face(seed, size)
        scene = dataclasses.replace(scene, occluder=None)
        original = render_face(identity, state, scene, size)
        mirrored = render_face(*mirror_face(identity, state, scene, size), size)
        np.testing.assert_allclose(mirrored["landmarks"], flip_landmarks(original["landmarks"], size), atol=1e-3)
        np.testing.assert_array_equal(mirrored["visibility"], original["visibility"][FLIP_PERMUTATION_68])
        names = list(FACE_ATTRIBUTE_NAMES)
        sign = np.array([-1.0 if n in ("yaw", "roll", "gaze_x") else 1.0 for n in names])
        np.testing.assert_allclose(mirrored["attributes"], original["attributes"] * sign, atol=1e-6)


# ------------------------------------------------------------------------------------------- features


def _patch(image, point):
    x, y = np.round(point).astype(int)
    return image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)


@pytest.mark.parametrize("size", [64, 128])
def test_landmarks_land_on_drawn_eye_and_mouth_features(size):
    for seed in range(10):
        identity, state, scene = face(seed, size)
        state = dataclasses.replace(state, eyes_open=max(state.eyes_open, 0.6))
        record = render_face(identity, state, clean_scene(scene), size)
        image = record["image"].astype(np.float64) / 255.0
        lm, visible = record["landmarks"], record["visibility"]
        cheeks = [(0.5 * (lm[1] + lm[31]), visible[1] & visible[31]),
                  (0.5 * (lm[15] + lm[35]), visible[15] & visible[35])]
        skin = np.median(np.concatenate([_patch(image, p) for p, v in cheeks if v]), axis=0)
        features = [i for i in range(36, 68) if visible[i]]
        assert len(features) >= 20
        # Every eye/mouth landmark has a feature-coloured pixel within one pixel ...
        nearest_feature = [np.linalg.norm(_patch(image, lm[i]) - skin, axis=-1).max() for i in features]
        assert min(nearest_feature) > 0.1, (seed, min(nearest_feature))
        # ... and typically sits right on one.
        at_landmark = [np.linalg.norm(_patch(image, lm[i])[4] - skin) for i in features]
        assert np.median(at_landmark) > 0.12
        # Control: the same measure on the cheeks (plain skin) stays small.
        for p, v in cheeks:
            if v:
                assert np.linalg.norm(_patch(image, p) - skin, axis=-1).max() < 0.1


def test_occluded_and_self_occluded_landmarks_are_invisible():
    size = 128
    identity, state, scene = face(3, size, yaw=0.0, pitch=0.0, roll=0.0)
    scene = clean_scene(scene)
    lm, _ = face_geometry(identity, state, size)
    mouth_centre = lm[48:68].mean(axis=0)
    width = lm[54, 0] - lm[48, 0]
    block = Occluder(kind="rectangle", center=tuple(mouth_centre), radii=(0.8 * width, 0.6 * width), angle=0.0,
                     colours=np.array([[0.1, 0.3, 0.9], [0.2, 0.2, 0.8]]), texture_seed=0)
    covered = render_face(identity, state, dataclasses.replace(scene, occluder=block), size)
    assert not covered["visibility"][48:68].any()
    assert covered["visibility"][36:48].all()
    # The occluder is drawn: mouth pixels now show its blue colours.
    x, y = np.round(mouth_centre).astype(int)
    r, g, b = covered["image"][y, x].astype(int)
    assert b > r + 60

    turned = render_face(identity, dataclasses.replace(state, yaw=0.7), scene, size)
    # yaw > 0 turns the nose to the image right: the image-right jaw goes behind the face.
    assert not turned["visibility"][14:17].any()
    assert turned["visibility"][0:3].all()
    assert turned["landmarks"][30, 0] > turned["landmarks"][[36, 45], 0].mean()


# ----------------------------------------------------------------------------------------- attributes


def test_smile_moves_mouth_corners_up_relative_to_mouth_centre():
    for seed in range(5):
        identity, state, scene = face(seed, 128, roll=0.0, pitch=0.0)
        heights = {}
        for smile in (0.0, 1.0):
            record = render_face(identity, dataclasses.replace(state, smile=smile), scene, 128)
            lm = record["landmarks"]
            centre_y = 0.5 * (lm[62, 1] + lm[66, 1])
            heights[smile] = centre_y - 0.5 * (lm[48, 1] + lm[54, 1])  # > 0: corners above the centre
            assert record["attributes"][FACE_ATTRIBUTE_NAMES.index("smile")] == smile
        face_height = record["landmarks"][8, 1] - record["landmarks"][27, 1]
        assert heights[1.0] - heights[0.0] > 0.03 * face_height


def test_mouth_open_shows_the_mouth_interior_and_eyes_open_shows_the_eye():
    size = 128
    for seed in range(4):
        identity, state, scene = face(seed, size, roll=0.0, pitch=0.0, yaw=0.0, smile=0.0)
        scene = clean_scene(scene)
        closed = render_face(identity, dataclasses.replace(state, mouth_open=0.0, eyes_open=0.0), scene, size)
        opened = render_face(identity, dataclasses.replace(state, mouth_open=1.0, eyes_open=1.0), scene, size)
        gap = lambda lm: lm[66, 1] - lm[62, 1]  # noqa: E731
        assert gap(opened["landmarks"]) > gap(closed["landmarks"]) + 3.0
        lm = opened["landmarks"]
        x, y = np.round(0.5 * (lm[62] + lm[66])).astype(int)
        assert opened["image"][y, x].astype(int).sum() < 0.6 * closed["image"][y, x].astype(int).sum()
        lid_gap = lambda lm: lm[[40, 41, 46, 47], 1].mean() - lm[[37, 38, 43, 44], 1].mean()  # noqa: E731
        assert abs(lid_gap(closed["landmarks"])) < 0.2
        assert lid_gap(opened["landmarks"]) > 1.5


def test_attributes_are_in_documented_ranges():
    batch = synthetic_faces(11, 24, 64)
    attributes = batch["attributes"]
    assert attributes.shape == (24, len(FACE_ATTRIBUTE_NAMES))
    named = dict(zip(FACE_ATTRIBUTE_NAMES, attributes.T))
    for name in ("smile", "mouth_open", "eyes_open"):
        assert np.all((named[name] >= 0.0) & (named[name] <= 1.0)), name
    for name in ("brow_raise", "gaze_x", "gaze_y"):
        assert np.all(np.abs(named[name]) <= 1.0), name
    assert np.all(np.abs(named["yaw"]) <= 0.75) and np.all(np.abs(named["roll"]) <= 0.5)
    assert np.std(named["yaw"]) > 0.05 and np.std(named["smile"]) > 0.1


# --------------------------------------------------------------------------------- contract and seeds


@pytest.mark.parametrize("size", [48, 100])
def test_output_contract_at_any_resolution(size):
    record = synthetic_face(5, size)
    assert record["image"].shape == (size, size, 3) and record["image"].dtype == np.uint8
    assert record["landmarks"].shape == (68, 2) and record["landmarks"].dtype == np.float32
    assert record["visibility"].shape == (68,) and record["visibility"].dtype == bool
    assert record["attributes"].dtype == np.float32
    lm = record["landmarks"]
    np.testing.assert_allclose(record["face_box"], [*lm.min(0), *lm.max(0)])
    inside = np.all((lm >= 0) & (lm <= size - 1), axis=-1)
    assert not np.any(record["visibility"] & ~inside)
    assert inside.mean() > 0.9


def test_faces_are_deterministic_per_seed():
    first, again, other = synthetic_face(7, 64), synthetic_face(7, 64), synthetic_face(8, 64)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["image"], other["image"])
    assert not np.allclose(first["landmarks"], other["landmarks"])
    batch = synthetic_faces(3, 3, 64)
    assert batch["image"].shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(batch["landmarks"], synthetic_faces(3, 3, 64)["landmarks"])
    assert not np.allclose(batch["landmarks"][0], batch["landmarks"][1])
    assert not np.allclose(batch["landmarks"], synthetic_faces(4, 3, 64)["landmarks"])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="seed"):
        synthetic_face(-1)
    with pytest.raises(ValueError, match="size"):
        synthetic_face(0, size=8)
    with pytest.raises(ValueError, match="num"):
        synthetic_faces(0, 0)
    with pytest.raises(ValueError, match="num_frames"):
        synthetic_face_clip(0, num_frames=0)


# ------------------------------------------------------------------------------------------------ clips


def test_clip_motion_is_smooth_and_nontrivial():
    size = 64
    for seed in range(3):
        clip = synthetic_face_clip(seed, num_frames=12, size=size)
        assert clip["frames"].shape == (12, size, size, 3) and clip["frames"].dtype == np.uint8
        assert clip["landmarks"].shape == (12, 68, 2) and clip["visibility"].shape == (12, 68)
        assert clip["attributes"].shape == (12, len(FACE_ATTRIBUTE_NAMES)) and clip["face_box"].shape == (12, 4)
        lm = clip["landmarks"].astype(np.float64)
        velocity = np.diff(lm, axis=0)
        acceleration = np.diff(lm, n=2, axis=0)
        assert np.abs(velocity).max() < 0.06 * size
        assert np.abs(acceleration).max() < 0.02 * size
        assert np.abs(lm[-1] - lm[0]).max() > 0.5  # it does move
        attributes = clip["attributes"]
        assert np.abs(np.diff(attributes, n=2, axis=0)).max() < 0.1


def test_clip_keeps_identity_and_background():
    clip = synthetic_face_clip(4, num_frames=6, size=64)
    frames = clip["frames"].astype(np.float64)
    # The same scene: consecutive frames differ far less than two unrelated clips do.
    within = np.abs(frames[1:] - frames[:-1]).mean()
    other = synthetic_face_clip(5, num_frames=6, size=64)["frames"].astype(np.float64)
    across = np.abs(frames - other).mean()
    assert within < 0.25 * across


def test_clips_are_deterministic_per_seed():
    first, again, other = (synthetic_face_clip(s, num_frames=4, size=48) for s in (21, 21, 22))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["frames"], other["frames"])
    assert not np.allclose(first["landmarks"], other["landmarks"])


def test_still_clip_with_zero_motion():
    clip = synthetic_face_clip(2, num_frames=3, size=48, motion=0.0)
    np.testing.assert_allclose(clip["landmarks"][0], clip["landmarks"][2], atol=1e-4)
