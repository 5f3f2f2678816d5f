"""Contact sheets: layout, landmark dots, mask overlays, PNG output."""

import os

import numpy as np
import pytest
from PIL import Image

from landmarkjax.data.synthetic.faces import synthetic_faces
from landmarkjax.data.synthetic.objects import synthetic_object_video
from landmarkjax.data.visualize import MASK_PALETTE, REGION_COLOURS, contact_sheet, save_contact_sheet
from landmarkjax.face_layout import FACE_REGION_NAMES


def random_images(num, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num, height, width, 3), dtype=np.uint8)


def tile_at(sheet, index, ncols, tile_h, tile_w, padding):
    row, col = divmod(index, ncols)
    y0, x0 = padding + row * (tile_h + padding), padding + col * (tile_w + padding)
    return sheet[y0:y0 + tile_h, x0:x0 + tile_w]


def test_grid_layout_and_tiles():
    images = random_images(5, 10, 12)
    sheet = contact_sheet(images, ncols=3, scale=2, padding=3)
    assert sheet.shape == (2 * (20 + 3) + 3, 3 * (24 + 3) + 3, 3) and sheet.dtype == np.uint8
    for index in range(5):
        expected = np.repeat(np.repeat(images[index], 2, axis=0), 2, axis=1)  # nearest upscaling
        np.testing.assert_array_equal(tile_at(sheet, index, 3, 20, 24, 3), expected)
    # The empty sixth slot and the gutters are background.
    assert np.all(tile_at(sheet, 5, 3, 20, 24, 3) == sheet[0, 0])
    assert np.all(sheet[:3] == sheet[0, 0])


def test_float_and_grey_images():
    grey = np.linspace(0.0, 1.0, 2 * 4 * 4).reshape(2, 4, 4)
    sheet = contact_sheet(grey, ncols=2, scale=1, padding=0)
    np.testing.assert_array_equal(sheet[:, :4, 0], np.round(grey[0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(sheet[..., 0], sheet[..., 2])
    with pytest.raises(ValueError, match="images"):
        contact_sheet(grey * 2.0)


def test_landmark_dots_use_region_colours():
    images = np.zeros((1, 40, 40, 3), np.uint8)
    landmarks = np.full((1, 68, 2), -100.0)  # off the tile
    landmarks[0, 36] = (10.0, 20.0)  # left eye
    landmarks[0, 48] = (30.0, 5.0)  # outer lips
    sheet = contact_sheet(images, landmarks, ncols=1, scale=3, padding=0)
    left_eye = REGION_COLOURS[FACE_REGION_NAMES.index("left_eye")]
    outer_lips = REGION_COLOURS[FACE_REGION_NAMES.index("outer_lips")]
    np.testing.assert_array_equal(sheet[20 * 3 + 1, 10 * 3 + 1], left_eye)
    np.testing.assert_array_equal(sheet[5 * 3 + 1, 30 * 3 + 1], outer_lips)
    assert np.count_nonzero(sheet.any(axis=-1)) < 60  # just two small dots


def test_invisible_landmarks_are_rings():
    images = np.zeros((1, 40, 40, 3), np.uint8)
    landmarks = np.array([[[20.0, 20.0]]])
    filled = contact_sheet(images, landmarks, scale=4, padding=0)
    ring = contact_sheet(images, landmarks, visibility=np.array([[False]]), scale=4, padding=0)
    centre = 20 * 4 + 1
    assert filled[centre, centre].any() and not ring[centre, centre].any()
    assert ring.any()


def test_mask_overlay_blends_palette_colour():
    image = np.full((1, 6, 6, 3), 100, np.uint8)
    mask = np.zeros((1, 6, 6), np.int32)
    mask[0, :3] = 1
    mask[0, 3:, :2] = 14
    sheet = contact_sheet(image, masks=mask, scale=1, padding=0, mask_alpha=0.5)
    expected_1 = 0.5 * 100 + 0.5 * MASK_PALETTE[0].astype(float)
    expected_14 = 0.5 * 100 + 0.5 * MASK_PALETTE[(14 - 1) % len(MASK_PALETTE)].astype(float)
    np.testing.assert_allclose(sheet[0, 0], expected_1, atol=0.5)
    np.testing.assert_allclose(sheet[5, 0], expected_14, atol=0.5)
    np.testing.assert_array_equal(sheet[5, 5], [100, 100, 100])
    with pytest.raises(ValueError, match="masks"):
        contact_sheet(image, masks=np.zeros((1, 5, 6), np.int32))


def test_save_face_contact_sheet_png(tmp_path):
    faces = synthetic_faces(0, 6, 64)
    path = tmp_path / "faces.png"
    sheet = save_contact_sheet(path, faces["image"], faces["landmarks"], ncols=3,
                               visibility=faces["visibility"])
    assert sorted(os.listdir(tmp_path)) == ["faces.png"]  # no temporary file left behind
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (3 * (128 + 2) + 2, 2 * (128 + 2) + 2)
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), sheet)
    # The dots are there: the eye colours appear in the sheet, not in the raw images.
    for region in ("left_eye", "right_eye", "outer_lips"):
        colour = REGION_COLOURS[FACE_REGION_NAMES.index(region)]
        assert np.any(np.all(sheet == colour, axis=-1)), region


def test_save_video_contact_sheet_with_masks(tmp_path):
    video = synthetic_object_video(1, num_frames=4, size=32, num_objects=2)
    sheet = save_contact_sheet(tmp_path / "video.png", video["frames"], masks=video["masks"], ncols=4, scale=2)
    assert sheet.shape == (64 + 4, 4 * (64 + 2) + 2, 3)
    with pytest.raises(FileNotFoundError, match="folder"):
        save_contact_sheet(tmp_path / "missing" / "video.png", video["frames"])
