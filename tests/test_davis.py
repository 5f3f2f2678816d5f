"""Tests for DAVIS palette PNG masks: the VOC palette, exact round trips, clear errors."""

import os

import numpy as np
import pytest
from PIL import Image

from landmarkjax.data.davis import (
    DAVIS_PALETTE,
    decode_palette_png,
    read_palette,
    read_palette_png,
    write_davis_sequence,
    write_palette_png,
)


def _voc_colour(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC colour map as published in the VOC devkit (bitget formulation)."""
    r = g = b = 0
    c = index
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def test_palette_is_the_pascal_voc_colour_map():
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    # Hand-checked entries of the published map.
    assert DAVIS_PALETTE[:9].tolist() == [
        [0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
        [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0],
    ]  # fmt: skip
    assert [tuple(c) for c in DAVIS_PALETTE.tolist()] == [_voc_colour(i) for i in range(256)]


def test_round_trip_ids_and_palette_exactly(tmp_path):
    ids = np.random.default_rng(0).integers(0, 6, size=(37, 53)).astype(np.uint8)
    path = tmp_path / "00000.png"
    write_palette_png(path, ids)
    with Image.open(path) as image:
        assert image.mode == "P"
        # Pillow's own palette lookup shows the colours DAVIS tools display.
        rgb = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(rgb, DAVIS_PALETTE[ids])
    np.testing.assert_array_equal(read_palette_png(path), ids)
    np.testing.assert_array_equal(read_palette(path), DAVIS_PALETTE)
    np.testing.assert_array_equal(decode_palette_png(path.read_bytes()), ids)


def test_custom_short_palette_round_trips(tmp_path):
    palette = np.array([[0, 0, 0], [255, 10, 20], [1, 2, 3]], np.uint8)
    ids = np.array([[0, 1], [2, 1]], np.int64)
    path = tmp_path / "m.png"
    write_palette_png(path, ids, palette)
    np.testing.assert_array_equal(read_palette(path), palette)
    np.testing.assert_array_equal(read_palette_png(path), ids)


def test_reading_an_rgb_png_names_the_file(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match="rgb.png.*mode 'RGB'"):
        read_palette_png(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        read_palette_png(tmp_path / "nothing.png")


@pytest.mark.parametrize(
    "ids, match",
    [
        (np.zeros((2, 2, 1), np.uint8), "shape"),
        (np.zeros((2, 2), np.float32), "integer"),
        (np.full((2, 2), 256), "0..255"),
        (np.full((2, 2), -1), "0..255"),
    ],
)
def test_write_rejects_bad_ids(tmp_path, ids, match):
    with pytest.raises(ValueError, match=match):
        write_palette_png(tmp_path / "x.png", ids)


def test_write_davis_sequence_uses_the_results_layout(tmp_path):
    ids = np.random.default_rng(3).integers(0, 4, size=(3, 5, 7)).astype(np.int32)
    paths = write_davis_sequence(tmp_path / "results", "car-shadow", ids, ["00010", "00011", "00012"])
    assert paths == [str(tmp_path / "results" / "car-shadow" / f"{n}.png") for n in ("00010", "00011", "00012")]
    for path, frame_ids in zip(paths, ids):
        np.testing.assert_array_equal(read_palette_png(path), frame_ids)
        np.testing.assert_array_equal(read_palette(path), DAVIS_PALETTE)
    # Default frame names 00000, 00001, ...; an existing sequence folder is written into.
    write_davis_sequence(tmp_path / "results", "car-shadow", ids[:1])
    assert sorted(os.listdir(tmp_path / "results" / "car-shadow"))[0] == "00000.png"


@pytest.mark.parametrize(
    "sequence, ids, names, match",
    [
        ("../up", np.zeros((1, 2, 2), np.uint8), None, "plain file or folder name"),
        ("bear", np.zeros((1, 2, 2), np.uint8), ["a/b"], "plain file or folder name"),
        ("bear", np.zeros((2, 2), np.uint8), None, r"\[T, H, W\]"),
        ("bear", np.zeros((2, 2, 2), np.uint8), ["00000"], "2 names"),
        ("bear", np.full((1, 2, 2), 256), None, "0..255"),
    ],
)
def test_write_davis_sequence_rejects_bad_input(tmp_path, sequence, ids, names, match):
    with pytest.raises(ValueError, match=match):
        write_davis_sequence(tmp_path, sequence, ids, names)
