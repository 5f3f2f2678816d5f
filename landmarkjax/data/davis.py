"""Reading and writing DAVIS-style palette PNG masks.

DAVIS annotations are 8-bit palette ('P' mode) PNGs: each pixel stores an object id (0 = background,
1..N = objects) and the palette only decides how the ids are shown. DAVIS uses the PASCAL VOC colour map,
`DAVIS_PALETTE`. Reading returns the ids unchanged; writing then reading gives back the same ids and the
same palette exactly.

`write_davis_sequence` writes one sequence's predicted masks in the folder layout that the official DAVIS
evaluation tool (davis2017-evaluation, `--results_path`) reads: `<results>/<sequence>/<frame>.png`, one
8-bit palette PNG of object ids per frame, at the frames' own resolution.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

__all__ = [
    "DAVIS_PALETTE",
    "read_palette_png",
    "decode_palette_png",
    "write_palette_png",
    "read_palette",
    "write_davis_sequence",
]


def _pascal_voc_palette() -> np.ndarray:
    """The PASCAL VOC colour map: the bits of the index spread over R, G, B from the most significant bit."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (red, green, blue)
    return palette


#: uint8 [256, 3] RGB colour of each object id in DAVIS annotations (id 1 is (128, 0, 0), id 2 (0, 128, 0)).
DAVIS_PALETTE: np.ndarray = _pascal_voc_palette()
DAVIS_PALETTE.flags.writeable = False


def _ids_from_image(image: Image.Image, source: str) -> np.ndarray:
    if image.mode not in ("P", "L"):
        raise ValueError(
            f"{source}: expected a palette ('P') or greyscale ('L') PNG of object ids, "
            f"got mode {image.mode!r}."
        )
    return np.asarray(image, dtype=np.uint8).copy()


def decode_palette_png(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decodes palette PNG bytes into object ids.

    Args:
      data: the encoded PNG.
      source: a name for the data, used in error messages.

    Returns:
      uint8 [H, W] object ids (the palette indices; 0 = background).

    Raises:
      ValueError: if the data is not a palette or greyscale image.
    """
    with Image.open(io.BytesIO(data)) as image:
        return _ids_from_image(image, source)


def read_palette_png(path: str | os.PathLike) -> np.ndarray:
    """Reads a palette PNG mask (a DAVIS annotation) into object ids.

    Args:
      path: the PNG file.

    Returns:
      uint8 [H, W] object ids (the palette indices; 0 = background).

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: naming `path`, if the file is not a palette or greyscale image.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected a palette PNG mask at {path}")
    with Image.open(path) as image:
        return _ids_from_image(image, path)


def read_palette(path: str | os.PathLike) -> np.ndarray:
    """Reads the colour palette of a palette PNG.

    Args:
      path: the PNG file.

    Returns:
      uint8 [P, 3] RGB colours, P <= 256 (the palette entries stored in the file).

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: naming `path`, if the image has no palette.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected a palette PNG mask at {path}")
    with Image.open(path) as image:
        if image.mode != "P":
            raise ValueError(f"{path}: expected a palette ('P') PNG, got mode {image.mode!r}.")
        return np.asarray(image.getpalette("RGB"), np.uint8).reshape(-1, 3)


def write_palette_png(path: str | os.PathLike, ids: np.ndarray, palette: np.ndarray = DAVIS_PALETTE) -> None:
    """Writes object ids as a palette PNG (the DAVIS annotation format).

    Args:
      path: the PNG file to write (replaced if it exists).
      ids: [H, W] integer object ids in 0..255 (0 = background).
      palette: uint8 [P, 3] RGB colours, 1 <= P <= 256; defaults to `DAVIS_PALETTE`.

    Raises:
      ValueError: if `ids` is not a 2D integer array with values in 0..255, or `palette` is not [P, 3].
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids: expected shape [H, W], got {ids.shape}.")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids: expected an integer array, got dtype {ids.dtype}.")
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ValueError(f"ids: expected values in 0..255, got range [{ids.min()}, {ids.max()}].")
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= palette.shape[0] <= 256:
        raise ValueError(f"palette: expected shape [P, 3] with 1 <= P <= 256, got {palette.shape}.")
    image = Image.fromarray(ids.astype(np.uint8))  # mode "L"; putpalette turns it into "P"
    image.putpalette(palette.astype(np.uint8).reshape(-1).tolist(), rawmode="RGB")
    image.save(os.fspath(path), format="PNG")


def write_davis_sequence(
    results_dir: str | os.PathLike,
    sequence: str,
    ids: np.ndarray,
    frame_names: list[str] | None = None,
    palette: np.ndarray = DAVIS_PALETTE,
) -> list[str]:
    """Writes a sequence's object ids as DAVIS results: `<results_dir>/<sequence>/<frame name>.png`.

    Args:
      results_dir: the results folder (created if missing); the official tool's `--results_path`.
      sequence: the sequence name (a folder name: no path separator, not '.' or '..').
      ids: [T, H, W] integer object ids in 0..255 (0 = background), T >= 1.
      frame_names: T file stems (DAVIS: '00000', '00001', ...); default f"{t:05d}".
      palette: uint8 [P, 3] colours; default `DAVIS_PALETTE`.

    Returns:
      The T written paths, in frame order (existing files are replaced).

    Raises:
      ValueError: for a bad sequence or frame name, ids not [T, H, W] integers in 0..255, or T frame names
        that do not match.
    """
    ids = np.asarray(ids)
    if ids.ndim != 3 or not len(ids):
        raise ValueError(f"ids: expected shape [T, H, W] with T >= 1, got {ids.shape}.")
    frame_names = [f"{t:05d}" for t in range(len(ids))] if frame_names is None else [str(n) for n in frame_names]
    if len(frame_names) != len(ids):
        raise ValueError(f"frame_names: expected {len(ids)} names (one per frame), got {len(frame_names)}.")
    for kind, name in [("sequence", str(sequence))] + [("frame name", n) for n in frame_names]:
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise ValueError(f"{kind} {name!r}: expected a plain file or folder name.")
    folder = os.path.join(os.fspath(results_dir), str(sequence))
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, frame_ids in zip(frame_names, ids):
        path = os.path.join(folder, name + ".png")
        write_palette_png(path, frame_ids, palette)
        paths.append(path)
    return paths
