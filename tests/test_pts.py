"""Tests for the .pts reader/writer: 1-based files, 0-based pixel-centre points, clear errors."""

import re

import numpy as np
import pytest

from landmarkjax.data.pts import parse_pts, read_pts, write_pts

_FILE = """version: 1
n_points:  3
{
446.000 91.500
1.0 1.0
12.25 300
}
"""


def test_read_subtracts_one_from_the_matlab_coordinates(tmp_path):
    path = tmp_path / "face.pts"
    path.write_text(_FILE)
    points = read_pts(path)
    expected = np.array([[445.0, 90.5], [0.0, 0.0], [11.25, 299.0]], np.float32)
    assert points.dtype == np.float32
    np.testing.assert_array_equal(points, expected)


def test_read_accepts_windows_line_endings_and_blank_lines(tmp_path):
    path = tmp_path / "face.pts"
    path.write_bytes(("\r\n".join(_FILE.splitlines()) + "\r\n\r\n").encode())
    np.testing.assert_array_equal(read_pts(path, expected_num_points=3)[0], [445.0, 90.5])


def test_write_adds_one_and_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    points = (rng.uniform(-5, 500, size=(68, 2))).astype(np.float32)
    path = tmp_path / "out.pts"
    write_pts(path, points)
    text = path.read_text()
    assert text.startswith("version: 1\nn_points:  68\n{\n") and text.rstrip().endswith("}")
    # The numbers in the file are the 1-based coordinates.
    body = text.split("{")[1].split("}")[0]
    written = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()])
    np.testing.assert_allclose(written, points.astype(np.float64) + 1.0, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(read_pts(path, expected_num_points=68), points)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n", "truncated"),
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "hold 2 point lines"),
        ("version: 1\n{\n1 2\n}\n", "n_points"),
        ("version: 1\nn_points: 1\n", "'{'"),
        ("version: 1\nn_points: 1\n{\n1 two\n}\n", "two numbers"),
        ("version: 1\nn_points: 1\n{\n1 2 3\n}\n", "two numbers"),
        ("version: 1\nn_points: 1\n{\nnan 2\n}\n", "finite"),
    ],
)
def test_malformed_files_raise_value_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        read_pts(path)
    assert message in str(info.value)


def test_wrong_point_count_names_the_expected_count(tmp_path):
    path = tmp_path / "five.pts"
    path.write_text("version: 1\nn_points: 5\n{\n" + "1 1\n" * 5 + "}\n")
    with pytest.raises(ValueError, match=r"expected 68 points.*n_points: 5"):
        read_pts(path, expected_num_points=68)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pts"):
        read_pts(tmp_path / "missing.pts")


def test_parse_pts_names_its_source():
    with pytest.raises(ValueError, match="memory.pts"):
        parse_pts("n_points: 2\n{\n1 1\n}\n", source="memory.pts")


@pytest.mark.parametrize("points", [np.zeros((3,)), np.zeros((3, 3)), np.array([[np.inf, 0.0]])])
def test_write_rejects_bad_points(tmp_path, points):
    with pytest.raises(ValueError, match="points"):
        write_pts(tmp_path / "x.pts", points)
