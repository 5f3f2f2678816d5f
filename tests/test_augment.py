"""Augmentation: images and landmarks move together, checked against OpenCV, Pillow and closed forms."""

import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from landmarkjax.data.augment import (
    CropFace,
    FaceAugmentConfig,
    FaceAugmentParams,
    RandomFaceAugment,
    RandomVideoCrop,
    augment_face,
    color_jitter,
    face_crop_matrix,
    sample_face_augmentation,
    transform_points,
    warp_image,
)
from landmarkjax.data.davis import DAVIS_PALETTE
from landmarkjax.data.synthetic.faces import FACE_ATTRIBUTE_NAMES, synthetic_face, synthetic_face_clip
from landmarkjax.face_layout import FLIP_PERMUTATION_68, flip_landmarks, flip_permutation


def _smooth_image(height, width):
    y, x = np.mgrid[:height, :width]
    channels = [
        128 + 100 * np.sin(x / 7.0 + y / 11.0),
        128 + 100 * np.cos(x / 5.0 - y / 9.0),
        128 + 90 * np.sin(y / 6.0),
    ]
    return np.stack(channels, -1).astype(np.uint8)


@pytest.mark.parametrize("trial", range(6))
def test_warp_matches_opencv_in_the_pixel_centre_convention(trial):
    rng = np.random.default_rng(trial)
    image = _smooth_image(60, 80)
    matrix = face_crop_matrix(
        np.array([10.0, 5.0, 70.0, 55.0]),
        48,
        scale=rng.uniform(0.8, 1.5),
        rotation=rng.uniform(-0.6, 0.6),
        shift=tuple(rng.uniform(-0.15, 0.15, 2)),
        flip=bool(trial % 2),
    )
    ours = warp_image(image, matrix, 48).astype(int)
    reference = cv2.warpAffine(
        image, matrix, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Where each output pixel samples the input (OpenCV's convention: integer pixel centres).
    inverse = cv2.invertAffineTransform(matrix)
    oy, ox = np.mgrid[:48, :48]
    sx = inverse[0, 0] * ox + inverse[0, 1] * oy + inverse[0, 2]
    sy = inverse[1, 0] * ox + inverse[1, 1] * oy + inverse[1, 2]
    eps = 1e-6
    inside = (sx > -0.5 + eps) & (sx < 79.5 - eps) & (sy > -0.5 + eps) & (sy < 59.5 - eps)
    outside = (sx < -0.5 - eps) | (sx > 79.5 + eps) | (sy < -0.5 - eps) | (sy > 59.5 + eps)
    assert inside.sum() > 1000
    # OpenCV quantises the interpolation weights to 1/32 and rounds differently: at most 1 level apart.
    # A half-pixel convention error would cost ~10 levels on this texture.
    assert np.abs(ours - reference.astype(int))[inside].max() <= 1
    assert (ours[outside] == 0).all()


def test_warp_of_a_large_image_crops_and_box_averages_without_moving_features():
    # A 900 x 700 photo with bright dots; a crop shrinking it ~7x still puts each dot where the matrix says.
    image = np.zeros((700, 900, 3), np.uint8)
    centres = np.array([[200.0, 150.0], [610.0, 402.0], [455.0, 555.0]])
    y, x = np.mgrid[:700, :900]
    for cx, cy in centres:
        image[(x - cx) ** 2 + (y - cy) ** 2 <= 12**2] = 255
    matrix = face_crop_matrix(np.array([100.0, 50.0, 800.0, 650.0]), 128, rotation=0.3)
    out = warp_image(image, matrix, 128)[..., 0].astype(np.float64)
    for centre, expected in zip(centres, transform_points(centres, matrix)):
        window = np.zeros_like(out)
        ex, ey = np.round(expected).astype(int)
        window[ey - 5 : ey + 6, ex - 5 : ex + 6] = out[ey - 5 : ey + 6, ex - 5 : ex + 6]
        yy, xx = np.mgrid[:128, :128]
        centroid = np.array([(window * xx).sum(), (window * yy).sum()]) / window.sum()
        np.testing.assert_allclose(centroid, expected, atol=0.15)


def test_warp_of_a_region_outside_the_image_is_black():
    image = np.full((10, 10, 3), 200, np.uint8)
    matrix = np.array([[1.0, 0.0, -100.0], [0.0, 1.0, 0.0]])
    assert (warp_image(image, matrix, 8) == 0).all()


def test_nearest_warp_keeps_ids():
    ids = np.random.default_rng(0).integers(0, 4, size=(30, 30)).astype(np.uint8)
    out = warp_image(
        ids, face_crop_matrix(np.array([0.0, 0.0, 29.0, 29.0]), 20, rotation=0.4), 20, nearest=True
    )
    assert out.shape == (20, 20) and set(np.unique(out)) <= {0, 1, 2, 3}


def test_crop_matrix_closed_form():
    box = np.array([20.0, 40.0, 60.0, 70.0])  # centre (40, 55), longer side 40
    matrix = face_crop_matrix(box, 100, margin=0.25, scale=2.0)
    # 40 * 1.25 / 2 = 25 input pixels span the 100 output pixels: zoom 4, centre -> (49.5, 49.5).
    np.testing.assert_allclose(transform_points(np.array([[40.0, 55.0]]), matrix), [[49.5, 49.5]], atol=1e-5)
    np.testing.assert_allclose(transform_points(np.array([[41.0, 55.0]]), matrix), [[53.5, 49.5]], atol=1e-5)
    # Positive rotation turns content clockwise on screen: a point right of the centre moves down.
    rotated = face_crop_matrix(box, 100, rotation=math.pi / 2)
    moved = transform_points(np.array([[41.0, 55.0]]), rotated)[0] - (49.5, 49.5)
    assert moved[1] > 0 and abs(moved[0]) < 1e-4
    flipped = face_crop_matrix(box, 100, flip=True, shift=(0.1, 0.0))
    np.testing.assert_allclose(transform_points(np.array([[40.0, 55.0]]), flipped), [[39.5, 49.5]], atol=1e-5)


def test_crop_matrix_rejects_degenerate_boxes():
    with pytest.raises(ValueError, match="face_box"):
        face_crop_matrix(np.array([5.0, 5.0, 5.0, 5.0]), 32)
    with pytest.raises(ValueError, match="face_box"):
        face_crop_matrix(np.array([0.0, 1.0, 2.0]), 32)


def test_landmarks_stay_on_their_painted_dots_through_random_augmentation():
    # Five landmarks painted as coloured dots; after crop/rotate/scale/shift/flip every visible landmark
    # still sits on the dot of its (permuted) point: the colour identifies the original index.
    rng = np.random.default_rng(0)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)
    for trial in range(8):
        image = np.full((160, 200, 3), 128, np.uint8)
        points = rng.uniform([50, 40], [150, 120], size=(5, 2)).astype(np.float32)
        while min(np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[:i]) < 15:
            points = rng.uniform([50, 40], [150, 120], size=(5, 2)).astype(np.float32)
        y, x = np.mgrid[:160, :200]
        for colour, (px, py) in zip(colours, points):
            image[(x - px) ** 2 + (y - py) ** 2 <= 4.5**2] = colour
        element = {
            "image": image,
            "landmarks": points,
            "visibility": np.ones(5, bool),
            "face_box": np.array([50.0, 40.0, 150.0, 120.0], np.float32),
        }
        # Zooming out (scale < 1) keeps every dot inside the crop, whatever the rotation.
        params = FaceAugmentParams(
            scale=rng.uniform(0.6, 0.9),
            rotation=rng.uniform(-0.5, 0.5),
            shift=(0.03, -0.02),
            flip=trial % 2 == 1,
        )
        out = augment_face(element, params, FaceAugmentConfig(output_size=96), as_float=False)
        order = flip_permutation(5) if params.flip else np.arange(5)
        for i, (px, py) in enumerate(out["landmarks"]):
            assert out["visibility"][i]
            pixel = out["image"][int(round(py)), int(round(px))].astype(int)
            assert np.abs(pixel - colours[order[i]]).max() <= 40, (trial, i, pixel)


def test_flip_of_a_synthetic_face_matches_the_mirrored_landmarks():
    face = synthetic_face(3, size=64)
    config = FaceAugmentConfig(output_size=64, margin=0.4, attribute_names=FACE_ATTRIBUTE_NAMES)
    plain = augment_face(face, FaceAugmentParams(), config)
    mirrored = augment_face(face, FaceAugmentParams(flip=True), config)
    np.testing.assert_allclose(mirrored["landmarks"], flip_landmarks(plain["landmarks"], 64), atol=1e-4)
    np.testing.assert_allclose(mirrored["image"], plain["image"][:, ::-1], atol=1e-6)
    np.testing.assert_array_equal(mirrored["visibility"], plain["visibility"][FLIP_PERMUTATION_68])
    names = list(FACE_ATTRIBUTE_NAMES)
    for name in ("yaw", "roll", "gaze_x"):
        assert mirrored["attributes"][names.index(name)] == pytest.approx(
            -face["attributes"][names.index(name)]
        )
    for name in ("pitch", "smile", "mouth_open"):
        assert mirrored["attributes"][names.index(name)] == pytest.approx(
            face["attributes"][names.index(name)]
        )


def test_rotation_turns_the_eye_line_and_the_roll_attribute_together():
    roll = list(FACE_ATTRIBUTE_NAMES).index("roll")
    face = synthetic_face(5, size=64)
    config = FaceAugmentConfig(output_size=64, attribute_names=FACE_ATTRIBUTE_NAMES)

    def eye_line_angle(landmarks):
        dx, dy = landmarks[45] - landmarks[36]
        return math.atan2(dy, dx)

    for angle in (-0.3, 0.2):
        out = augment_face(face, FaceAugmentParams(rotation=angle), config)
        turned = eye_line_angle(out["landmarks"]) - eye_line_angle(face["landmarks"])
        assert turned == pytest.approx(angle, abs=1e-4)
        assert out["attributes"][roll] - face["attributes"][roll] == pytest.approx(angle, abs=1e-6)


def test_synthetic_roll_has_the_same_sign_as_the_eye_line_angle():
    # Independent check of the roll convention the rotation relies on (clockwise in the image).
    roll = list(FACE_ATTRIBUTE_NAMES).index("roll")
    yaw = list(FACE_ATTRIBUTE_NAMES).index("yaw")
    agree = 0
    faces = [synthetic_face(seed, size=32) for seed in range(12)]
    for face in faces:
        dx, dy = face["landmarks"][45] - face["landmarks"][36]
        agree += np.sign(math.atan2(dy, dx)) == np.sign(face["attributes"][roll])
        assert abs(face["attributes"][yaw]) < 1.2
    assert agree >= 10


def test_points_leaving_the_crop_become_invisible():
    element = {
        "image": np.zeros((100, 100, 3), np.uint8),
        "landmarks": np.array(
            [[50.0, 50.0], [5.0, 50.0], [95.0, 95.0], [50.0, 52.0], [52.0, 50.0]], np.float32
        ),
        "visibility": np.array([True, True, True, False, True]),
        "face_box": np.array([40.0, 40.0, 60.0, 60.0], np.float32),
    }
    out = augment_face(element, FaceAugmentParams(), FaceAugmentConfig(output_size=32))
    np.testing.assert_array_equal(out["visibility"], [True, False, False, False, True])


@pytest.mark.parametrize("which", ["brightness", "contrast", "saturation"])
def test_color_jitter_matches_pillow_enhance(which):
    image = _smooth_image(40, 50)
    factor = 1.3 if which != "contrast" else 0.7
    factors = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, which: factor}
    ours = color_jitter(image / np.float32(255.0), **factors) * 255.0
    enhancer = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
                "saturation": ImageEnhance.Color}[which]  # fmt: skip
    reference = np.asarray(enhancer(Image.fromarray(image)).enhance(factor)).astype(np.float64)
    # Pillow works in 8-bit integers (its grey level and its mean are rounded); ours in float.
    assert np.abs(ours - reference).max() <= 2.5


def test_color_jitter_identity_and_range():
    image = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(color_jitter(image, 1.0, 1.0, 1.0), image, atol=1e-6)
    strong = color_jitter(image, 1.8, 1.8, 1.8)
    assert strong.min() >= 0.0 and strong.max() <= 1.0


def test_random_augment_is_deterministic_per_rng_and_varies_across_draws():
    face = synthetic_face(1, size=48)
    transform = RandomFaceAugment(FaceAugmentConfig(output_size=40, attribute_names=FACE_ATTRIBUTE_NAMES))
    a = transform.random_map(face, np.random.default_rng(7))
    b = transform.random_map(face, np.random.default_rng(7))
    c = transform.random_map(face, np.random.default_rng(8))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["landmarks"], c["landmarks"])
    assert a["image"].shape == (40, 40, 3) and a["image"].dtype == np.float32
    assert 0.0 <= a["image"].min() and a["image"].max() <= 1.0


def test_sampled_parameters_respect_the_ranges():
    config = FaceAugmentConfig(
        scale_range=(0.8, 1.25), max_rotation=10.0, max_shift=0.1, flip_probability=0.5
    )
    rng = np.random.default_rng(0)
    draws = [sample_face_augmentation(rng, config) for _ in range(300)]
    assert all(0.8 <= d.scale <= 1.25 and abs(d.rotation) <= math.radians(10.0) for d in draws)
    assert all(max(abs(s) for s in d.shift) <= 0.1 for d in draws)
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65


def test_clip_frames_share_one_warp():
    clip = synthetic_face_clip(2, num_frames=3, size=48)
    out = augment_face(clip, FaceAugmentParams(rotation=0.1, scale=1.1), FaceAugmentConfig(output_size=40))
    assert out["frames"].shape == (3, 40, 40, 3) and out["landmarks"].shape == (3, 68, 2)
    # The same matrix for every frame keeps the motion: frame-to-frame displacement scales uniformly.
    before = np.diff(clip["landmarks"], axis=0)
    after = np.diff(out["landmarks"], axis=0)
    ratio = np.linalg.norm(after, axis=-1).sum() / np.linalg.norm(before, axis=-1).sum()
    boxes = clip["face_box"]
    side = max(boxes[:, 2].max() - boxes[:, 0].min(), boxes[:, 3].max() - boxes[:, 1].min())
    assert ratio == pytest.approx(40 / (side * 1.25 / 1.1), rel=1e-4)


def test_crop_face_is_deterministic_and_keeps_uint8():
    face = synthetic_face(4, size=48)
    out = CropFace(output_size=32).map(face)
    assert out["image"].dtype == np.uint8 and out["image"].shape == (32, 32, 3)
    np.testing.assert_array_equal(out["image"], CropFace(output_size=32).map(face)["image"])


def test_random_video_crop_keeps_frames_and_masks_aligned():
    rng = np.random.default_rng(0)
    masks = np.zeros((5, 60, 80), np.uint8)
    for t in range(5):
        masks[t, 10 + t : 40 + t, 15:45] = 1
        masks[t, 30:55, 50 - t : 75 - t] = 2
    frames = DAVIS_PALETTE[masks]  # colour encodes the id
    crop = RandomVideoCrop(num_frames=3, output_size=32, scale_range=(0.7, 1.0), flip_probability=0.5)
    for seed in range(4):
        names = np.array([f"{t:05d}" for t in range(5)])
        element = {"frames": frames, "masks": masks, "frame_names": names, "sequence": "bear"}
        out = crop.random_map(element, np.random.default_rng(seed))
        assert out["frames"].shape == (3, 32, 32, 3) and out["masks"].shape == (3, 32, 32)
        start = int(out["frame_names"][0])
        assert list(out["frame_names"]) == list(names[start : start + 3]) and out["sequence"] == "bear"
        colour = out["frames"].astype(int)
        expected = DAVIS_PALETTE[out["masks"]].astype(int)
        # Away from object edges (where bilinear blends colours) the colour matches the id exactly.
        interior = np.ones_like(out["masks"], bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                interior &= np.roll(out["masks"], (dy, dx), axis=(1, 2)) == out["masks"]
        assert interior.sum() > 1000
        assert np.abs(colour - expected)[interior].max() <= 1
    with pytest.raises(ValueError, match="num_frames"):
        RandomVideoCrop(num_frames=9, output_size=8).random_map({"frames": frames, "masks": masks}, rng)


def test_warp_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        warp_image(np.zeros((4, 4, 3), np.float32), np.eye(2, 3), 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale_range": (0.0, 1.0)}, "scale_range"),
        ({"scale_range": (1.2, 1.1)}, "scale_range"),
        ({"flip_probability": 1.5}, "flip_probability"),
        ({"output_size": 0}, "output_size"),
        ({"brightness": -0.1}, "brightness"),
    ],
)
def test_config_rejects_bad_ranges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FaceAugmentConfig(**kwargs)


def test_attribute_names_must_match_the_attributes():
    face = synthetic_face(0, size=32)
    with pytest.raises(ValueError, match="attribute_names"):
        augment_face(face, FaceAugmentParams(), FaceAugmentConfig(output_size=16, attribute_names=("yaw",)))
