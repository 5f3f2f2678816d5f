"""Label propagation through a feature affinity (MAST / Zhu et al. colour and mask propagation).

Each query position takes a softmax-weighted average of the labels (Lab colours during self-supervised
training, one-hot or soft object masks at test time) of the memory positions whose keys match its own
feature best. The candidates of query position (i, j) are either every position of every memory frame
(`radius=None`, global) or the positions (i + di, j + dj), |di|, |dj| <= radius, of every memory frame
(local, MAST's "each pixel's own location is the ROI centre"); positions of that window that fall outside
the frame are excluded from the softmax, never zero-padded into it.

Memory: no [H W, H W] matrix is built. The query rows are processed in chunks (`lax.map`). Local: within
a chunk the 2 radius + 1 row offsets di are visited one at a time (`lax.scan` over shifted slices of a
padded copy of the memory); for each, the query columns go in blocks of S = 2 radius + 1, and each block
is multiplied (one batched matmul) with the S + 2 radius key columns that its windows cover, of which the
band |dj| <= radius is kept: about twice the minimal multiply-adds, at matrix-multiply speed. The largest
arrays are one chunk's affinities, [S, rows, W, M, S] (local) or [rows, W, M H W] (global), bounded by
`chunk_rows`. Chunks and row offsets are rematerialised in the backward pass (`jax.checkpoint`), so
gradients keep no per-offset residuals either.

Pure `jnp`, no Flax; safe under `jax.jit`, `jax.vmap` (batch by vmapping over leading axes) and
`jax.grad`.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["propagate_labels", "memory_frames"]

# Default budget: a chunk's affinity tensor holds at most this many float32 entries (64 MiB).
_CHUNK_ELEMENTS = 1 << 24
# Selections by 0/1 matrices must not be rounded (TPU and recent GPUs multiply float32 in bf16 / tf32 by default).
_EXACT = jax.lax.Precision.HIGHEST


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_inputs(query, memory_keys, memory_labels, radius, temperature, top_k, chunk_rows):
    query = jnp.asarray(query)
    memory_keys = jnp.asarray(memory_keys)
    memory_labels = jnp.asarray(memory_labels)
    if query.ndim != 3:
        raise ValueError(f"query must have shape [H, W, C], got {query.shape}")
    if memory_keys.ndim != 4:
        raise ValueError(f"memory_keys must have shape [M, H, W, C], got {memory_keys.shape}")
    if memory_labels.ndim != 4:
        raise ValueError(f"memory_labels must have shape [M, H, W, L], got {memory_labels.shape}")
    height, width, channels = query.shape
    if memory_keys.shape[1:3] != (height, width):
        raise ValueError(
            f"memory_keys must have the query's spatial size (H, W) = {(height, width)}, got "
            f"memory_keys of shape {memory_keys.shape}"
        )
    if memory_keys.shape[3] != channels:
        raise ValueError(
            f"memory_keys must have the query's {channels} channels, got memory_keys of shape {memory_keys.shape}"
        )
    if memory_labels.shape[:3] != memory_keys.shape[:3]:
        raise ValueError(
            f"memory_labels must have memory_keys' [M, H, W] = {memory_keys.shape[:3]}, got "
            f"memory_labels of shape {memory_labels.shape}"
        )
    if memory_keys.shape[0] < 1:
        raise ValueError("memory_keys must hold at least one memory frame (M >= 1)")
    if radius is not None:
        radius = _check_int(radius, "radius", 0)
        if radius >= max(height, width):
            raise ValueError(
                f"radius must be smaller than the feature map's larger side max(H, W) = {max(height, width)} "
                f"(H, W = {(height, width)}: a window of radius max(H, W) - 1 already holds every position and a "
                f"larger one only adds positions outside the frame; use radius=None for every position), got {radius}"
            )
    if isinstance(temperature, numbers.Real) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if jnp.ndim(temperature) != 0:
        raise ValueError(f"temperature must be a scalar, got shape {jnp.shape(temperature)}")
    memory = memory_keys.shape[0]
    candidates = memory * height * width if radius is None else memory * (2 * radius + 1) ** 2
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", 1)
        if top_k > candidates:
            raise ValueError(
                f"top_k must be at most the number of candidates per query position ({candidates} = M x "
                + ("H x W" if radius is None else "(2 radius + 1)^2")
                + f"), got {top_k}"
            )
    if chunk_rows is None:
        chunk_rows = max(1, min(height, _CHUNK_ELEMENTS // (width * candidates)))
    else:
        chunk_rows = min(_check_int(chunk_rows, "chunk_rows", 1), height)
    dtype = jnp.result_type(query.dtype, memory_keys.dtype, memory_labels.dtype, jnp.float32)
    return (
        query.astype(dtype),
        memory_keys.astype(dtype),
        memory_labels.astype(dtype),
        radius,
        top_k,
        chunk_rows,
    )


def _chunking(height: int, chunk_rows: int) -> tuple[int, int]:
    """(rows per chunk, number of chunks) covering `height` rows with as little padding as possible."""
    chunks = math.ceil(height / chunk_rows)
    return math.ceil(height / chunks), chunks


def _local(query, keys, labels, radius, temperature, top_k, chunk_rows):
    height, width, channels = query.shape
    memory, _, _, num_labels = labels.shape
    side = 2 * radius + 1
    rows, chunks = _chunking(height, chunk_rows)
    padded_height = rows * chunks
    # Columns in blocks of `side`: each query block meets a key block of side + 2 radius columns.
    blocks = math.ceil(width / side)
    padded_width = blocks * side
    query = jnp.pad(query, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
    # Memory padded by `radius` on every side (and to whole chunks and blocks at the bottom and right): every
    # slice below is in bounds; the padded positions are masked out of the softmax and never reach the output.
    spatial_pad = ((0, 0), (radius, radius + padded_height - height), (radius, radius + padded_width - width), (0, 0))
    keys = jnp.pad(keys, spatial_pad)
    labels = jnp.pad(labels, spatial_pad)
    # Key columns of block n: n side + [0, side + 2 radius) in padded coordinates.
    block_columns = jnp.arange(blocks)[:, None] * side + jnp.arange(side + 2 * radius)[None, :]
    # band[j, e, k] = 1 where key column k of a block is query column j's column offset e (k = j + e).
    band = np.zeros((side, side, side + 2 * radius), np.float32)
    for j in range(side):
        band[j, np.arange(side), j + np.arange(side)] = 1.0
    band = jnp.asarray(band, query.dtype)
    local_rows = jnp.arange(rows)[:, None, None, None]
    columns = jnp.arange(width)[None, :, None, None]
    column_offsets = jnp.arange(side)[None, None, None, :] - radius

    @jax.checkpoint
    def chunk(start):
        chunk_query = jax.lax.dynamic_slice(query, (start, 0, 0), (rows, padded_width, channels))
        chunk_query = chunk_query.reshape(rows, blocks, side, channels)
        window = (rows + 2 * radius, padded_width + 2 * radius)
        chunk_keys = jax.lax.dynamic_slice(keys, (0, start, 0, 0), (memory, *window, channels))
        chunk_labels = jax.lax.dynamic_slice(labels, (0, start, 0, 0), (memory, *window, num_labels))
        key_blocks = chunk_keys[:, :, block_columns]  # [M, rows + 2r, blocks, side + 2r, C]

        @jax.checkpoint
        def affinity_at(_, row_offset):
            shifted = jax.lax.dynamic_slice_in_dim(key_blocks, row_offset, rows, axis=1)
            # Every query column of a block against every key column of its block (a matmul), then the band.
            full = jnp.einsum("hnjc,mhnkc->hnjmk", chunk_query, shifted)
            # The band is a 0/1 selection: at full precision it copies values exactly on every backend.
            affinity = jnp.einsum("hnjmk,jek->hnjme", full, band, precision=_EXACT)
            affinity = affinity.reshape(rows, padded_width, memory, side)
            affinity = affinity[:, :width] / temperature
            key_rows = start + local_rows + row_offset - radius
            key_columns = columns + column_offsets
            inside = (key_rows >= 0) & (key_rows < height) & (key_columns >= 0) & (key_columns < width)
            return None, jnp.where(inside, affinity, -jnp.inf)

        # [side (row offset), rows, W, M, side (column offset)]
        _, affinities = jax.lax.scan(affinity_at, None, jnp.arange(side))

        if top_k is None:
            weights = jax.nn.softmax(affinities, axis=(0, 3, 4))
            label_blocks = chunk_labels[:, :, block_columns]  # [M, rows + 2r, blocks, side + 2r, L]
            padding = ((0, 0), (0, padded_width - width), (0, 0), (0, 0))

            @jax.checkpoint
            def accumulate(total, inputs):
                row_offset, weight = inputs
                weight = jnp.pad(weight, padding).reshape(rows, blocks, side, memory, side)
                shifted = jax.lax.dynamic_slice_in_dim(label_blocks, row_offset, rows, axis=1)
                full = jnp.einsum("hnjme,jek->hnjmk", weight, band, precision=_EXACT)
                return total + jnp.einsum("hnjmk,mhnkl->hnjl", full, shifted), None

            initial = jnp.zeros((rows, blocks, side, num_labels), labels.dtype)
            total, _ = jax.lax.scan(accumulate, initial, (jnp.arange(side), weights))
            return total.reshape(rows, padded_width, num_labels)

        # Candidate c = (di side + m) side + dj over (row offset, memory frame, column offset).
        flat = jnp.moveaxis(affinities, 0, 2).reshape(rows, width, side * memory * side)
        kept, candidate = jax.lax.top_k(flat, top_k)  # [rows, W, k]
        weights = jax.nn.softmax(kept, axis=-1)
        row_offset, frame, column_offset = candidate // (memory * side), (candidate // side) % memory, candidate % side
        gathered = chunk_labels[frame, local_rows[..., 0] + row_offset, columns[..., 0] + column_offset]
        out = jnp.einsum("hwk,hwkl->hwl", weights, gathered)
        return jnp.pad(out, ((0, 0), (0, padded_width - width), (0, 0)))

    out = jax.lax.map(chunk, jnp.arange(chunks) * rows)  # [chunks, rows, padded W, L]
    return out.reshape(padded_height, padded_width, num_labels)[:height, :width]


def _global(query, keys, labels, temperature, top_k, chunk_rows):
    height, width, channels = query.shape
    num_labels = labels.shape[-1]
    rows, chunks = _chunking(height, chunk_rows)
    padded_height = rows * chunks
    query = jnp.pad(query, ((0, padded_height - height), (0, 0), (0, 0)))
    keys = keys.reshape(-1, channels)  # [N, C], N = M H W
    labels = labels.reshape(-1, num_labels)  # [N, L]

    @jax.checkpoint
    def chunk(start):
        chunk_query = jax.lax.dynamic_slice(query, (start, 0, 0), (rows, width, channels))
        affinities = jnp.einsum("hwc,nc->hwn", chunk_query, keys) / temperature
        if top_k is None:
            return jax.nn.softmax(affinities, axis=-1) @ labels
        kept, candidate = jax.lax.top_k(affinities, top_k)
        return jnp.einsum("hwk,hwkl->hwl", jax.nn.softmax(kept, axis=-1), labels[candidate])

    out = jax.lax.map(chunk, jnp.arange(chunks) * rows)
    return out.reshape(padded_height, width, num_labels)[:height]


def propagate_labels(
    query: jnp.ndarray,
    memory_keys: jnp.ndarray,
    memory_labels: jnp.ndarray,
    *,
    radius: int | None,
    temperature: float | jnp.ndarray,
    top_k: int | None = None,
    chunk_rows: int | None = None,
) -> jnp.ndarray:
    """Propagates memory labels to the query frame through a softmax over feature affinities.

    For query position (i, j) (row i, column j of the feature map) the candidates are the memory positions
    (m, i', j') with m in [0, M) and, for a local window, |i' - i| <= radius and |j' - j| <= radius and
    (i', j') inside the H x W frame (out-of-frame window positions are excluded, not zero-padded), or, for
    `radius=None`, every (i', j') of the frame. The affinity of a candidate is
    dot(query[i, j], memory_keys[m, i', j']) / temperature. With `top_k`, only the `top_k` largest affinities
    per query position are kept (over all M frames together). The weights are the softmax over the kept
    candidates, and the output is the weighted sum of their labels:

      out[i, j] = sum_c softmax(affinity)[c] * memory_labels[m_c, i'_c, j'_c].

    Near a border a local window has fewer than M (2 radius + 1)^2 positions inside the frame; if `top_k`
    exceeds that number there, the excluded positions still get weight exactly 0. Features are used as
    given: normalise them beforehand for cosine affinities (e.g. DINO's protocol), or scale by
    1 / sqrt(C) through `temperature` (the fix for MAST's non-convergence). Gradients flow to `query` and
    `memory_keys` (through the affinities of kept, in-frame candidates only) and, linearly, to
    `memory_labels`; wrap the labels in `jax.lax.stop_gradient` if they are data.

    Batch with `jax.vmap(functools.partial(propagate_labels, radius=..., temperature=...))`.

    Args:
      query: [H, W, C] query features.
      memory_keys: [M, H, W, C] key features of M memory (reference) frames, same H, W, C as `query`.
      memory_labels: [M, H, W, L] labels of the memory frames: Lab colours, one-hot or soft masks, ...
      radius: window radius in feature-map cells (an int with 0 <= radius < max(H, W): the window side is
        2 radius + 1; a radius >= min(H, W) spans the whole shorter side and still limits the longer one),
        or None for global propagation over every position of every memory frame. MAST uses 6 at training
        and 12 at test time on stride-4 features.
      temperature: positive scalar dividing the dot products (a Python float is checked; a traced scalar is
        used as it is).
      top_k: None to keep every candidate, or k in [1, number of candidates per position], where that
        number is M (2 radius + 1)^2 (local) or M H W (global).
      chunk_rows: query rows processed per chunk, at most H (a larger value is clamped to H). The peak
        memory is about chunk_rows x W x candidates x 4 bytes for the affinities, times the batch size under
        `jax.vmap`; None picks the largest count whose affinities fit in 2^24 entries (64 MiB in float32),
        and at least one row.

    Returns:
      [H, W, L] propagated labels, in the promoted floating dtype of the inputs (at least float32). With
      one-hot (or probability) labels every output position is a probability distribution over L.

    Raises:
      ValueError: for inputs of the wrong rank, mismatched H, W or C between query and memory or M, H, W
        between keys and labels, an empty memory, a radius that is not an int in [0, max(H, W)), a
        non-positive temperature, or a top_k outside [1, number of candidates].
    """
    query, memory_keys, memory_labels, radius, top_k, chunk_rows = _check_inputs(
        query, memory_keys, memory_labels, radius, temperature, top_k, chunk_rows
    )
    temperature = jnp.asarray(temperature, query.dtype)
    if radius is None:
        return _global(query, memory_keys, memory_labels, temperature, top_k, chunk_rows)
    return _local(query, memory_keys, memory_labels, radius, temperature, top_k, chunk_rows)


def memory_frames(
    t: int,
    *,
    long_term: tuple[int, ...] = (0, 5),
    short_term: tuple[int, ...] = (1, 3, 5),
) -> tuple[int, ...]:
    """The reference frames that query frame `t` reads from: MAST's long- and short-term memory.

    The memory of frame t is the union of the long-term frames that precede it ({l in long_term : l < t};
    MAST: frame 0, whose mask is given, and frame 5) and the short-term frames t - o for o in `short_term`
    that exist (t - o >= 0; MAST: t - 1, t - 3, t - 5), sorted, each once. With the defaults:

      t = 1: (0,)   t = 2: (0, 1)   t = 4: (0, 1, 3)   t = 6: (0, 1, 3, 5)   t = 10: (0, 5, 7, 9)

    which is what MAST's released evaluation (benchmark.py, `ref == 0`, `mem_gap = 2`) uses to predict
    frame t; REFERENCE.md's "first and fifth" long-term frames are the frames at indices 0 and 5 there.
    Frame 0 has no memory: its labels are the given first-frame annotation.

    Args:
      t: index of the query frame (0-based), t >= 1.
      long_term: absolute frame indices (>= 0) kept for every later frame.
      short_term: offsets (>= 1) back from t.

    Returns:
      Sorted tuple of distinct frame indices in [0, t), never empty (t - 1 is included when
      `short_term` contains 1; otherwise at least one long-term frame must precede t).

    Raises:
      ValueError: if t < 1, an index or offset is out of range, or no frame qualifies.
    """
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1:
        raise ValueError(f"t must be an int >= 1 (frame 0 has no memory), got {t!r}")
    for frame in long_term:
        _check_int(frame, "every long_term frame", 0)
    for offset in short_term:
        _check_int(offset, "every short_term offset", 1)
    frames = {int(frame) for frame in long_term if frame < t} | {t - int(o) for o in short_term if t - o >= 0}
    if not frames:
        raise ValueError(f"no memory frame precedes t={t} with long_term={long_term} and short_term={short_term}")
    return tuple(sorted(frames))
