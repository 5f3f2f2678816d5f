"""Reading and writing `.pts` landmark files (the 300-W / iBUG format).

A `.pts` file looks like::

        version: 1
        n_points:  68
        {
        446.000 91.000
        ...
        }

The coordinates in these files are 1-based (they come from Matlab): the centre of the top-left pixel is
(1, 1). landmarkjax puts pixel centres at integer coordinates starting from 0 (OpenCV's convention), so
`read_pts` subtracts 1 from every coordinate and `write_pts` adds 1 back.
"""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["read_pts", "write_pts", "parse_pts"]

_N_POINTS = re.compile(r"^n_points\s*:\s*(\d+)\s*$")


def parse_pts(text: str, *, source: str = "<string>", expected_num_points: int | None = None) -> np.ndarray:
    """Parses the text of a `.pts` file into 0-based landmarks.

    Args:
        text: the whole file content.
        source: a name for the text (usually its path), used in error messages.
        expected_num_points: if given, the number of points the file must declare and contain.

    Returns:
        float32 [K, 2] points as (x, y) in pixels, 0-based (file coordinates minus 1).

    Raises:
        ValueError: naming `source`, when the header, the braces or the point lines are malformed, the file
            is truncated, or the point count differs from `n_points` or from `expected_num_points`.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    num_points = None
    cursor = 0
    while cursor < len(lines) and lines[cursor] != "{":
        match = _N_POINTS.match(lines[cursor])
        if match:
            num_points = int(match.group(1))
        cursor += 1
    if num_points is None:
        raise ValueError(f"{source}: expected an 'n_points: <count>' header line before '{{'.")
    if cursor == len(lines):
        raise ValueError(f"{source}: expected a '{{' line opening the point list after the header.")
    if expected_num_points is not None and num_points != expected_num_points:
        raise ValueError(
            f"{source}: expected {expected_num_points} points, but the header says n_points: {num_points}."
        )
    body = lines[cursor + 1 :]
    try:
        end = body.index("}")
    except ValueError:
        raise ValueError(
            f"{source}: expected {num_points} point lines and a closing '}}', but the file ends after "
            f"{len(body)} point lines (truncated file?)."
        ) from None
    point_lines = body[:end]
    if len(point_lines) != num_points:
        raise ValueError(
            f"{source}: the header says n_points: {num_points}, "
            f"but the braces hold {len(point_lines)} point lines."
        )
    points = np.empty((num_points, 2), np.float64)
    for i, line in enumerate(point_lines):
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            points[i] = [float(fields[0]), float(fields[1])]
        except ValueError:
            raise ValueError(
                f"{source}: point line {i + 1} should hold two numbers 'x y', got {line!r}."
            ) from None
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{source}: every coordinate must be a finite number.")
    return (points - 1.0).astype(np.float32)


def read_pts(path: str | os.PathLike, *, expected_num_points: int | None = None) -> np.ndarray:
    """Reads a `.pts` file (1-based, Matlab) into 0-based pixel-centre landmarks.

    Args:
        path: the `.pts` file.
        expected_num_points: if given (for example 68 for 300-W), the number of points the file must hold.

    Returns:
        float32 [K, 2] points as (x, y) in pixels, with the centre of the top-left pixel at (0, 0): every
        coordinate in the file minus 1.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: naming `path`, when the file is malformed, truncated or holds the wrong number of points.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected a .pts landmark file at {path}")
    with open(path, "r", encoding="utf-8", errors="strict") as f:
        text = f.read()
    return parse_pts(text, source=path, expected_num_points=expected_num_points)


def write_pts(path: str | os.PathLike, points: np.ndarray) -> None:
    """Writes 0-based pixel-centre landmarks to a `.pts` file (1-based, Matlab).

    Each coordinate is written as `point + 1` with the shortest decimal that reads back to the same float,
    so `read_pts(path)` returns exactly the float32 points written.

    Args:
        path: the file to write (replaced if it exists).
        points: [K, 2] (x, y) in pixels, 0-based, finite.

    Raises:
        ValueError: if `points` is not a finite [K, 2] array.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected shape [K, 2], got {points.shape}.")
    if not np.all(np.isfinite(points)):
        raise ValueError("points: expected finite coordinates.")
    # float32 -> float64 is exact and so is adding 1 in float64, so reading back (minus 1) is lossless.
    shifted = points.astype(np.float32).astype(np.float64) + 1.0
    lines = ["version: 1", f"n_points:  {len(shifted)}", "{"]
    lines += [f"{x!r} {y!r}" for x, y in shifted.tolist()]
    lines.append("}")
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
