"""Loading and saving SMPL-format model files (`.pkl` as distributed, and `.npz` with the same keys).

Both layouts hold the official SMPL keys: `v_template [V,3]`, `shapedirs [V,3,S]`, `posedirs [V,3,9(J-1)]`,
`J_regressor [J,V]` (a scipy sparse matrix in the official `.pkl`), `weights [V,J]`, `kintree_table [2,J]`
and `f [F,3]`. Other keys (`J`, `bs_style`, `J_regressor_prior`, ...) are ignored, except `joint_names`
and extra joint regressors: every 2-D `*_regressor` key other than `J_regressor` / `J_regressor_prior` with
V columns (e.g. HMR's `cocoplus_regressor`) becomes an entry of `SMPLModel.extra_regressors`.
"""

from __future__ import annotations

import io as _bytes_io
import os
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.sparse

from landmarkjax.body.official_pickle import dumps_official_pickle, read_official_pickle
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES, SMPLModel

__all__ = ["REQUIRED_KEYS", "load_smpl", "save_smpl", "smpl_from_arrays", "smpl_to_arrays"]

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
_NOT_EXTRA_REGRESSORS = frozenset({"J_regressor", "J_regressor_prior"})
# The official files store the root's parent as uint32(-1) in an int64 kintree_table.
_ROOT_PARENT_IN_FILES = 4294967295


def _dense(value: Any) -> np.ndarray:
    if scipy.sparse.issparse(value):
        return np.asarray(value.toarray())
    return np.asarray(value)


def _parents_from_kintree(kintree_table: np.ndarray, source: str) -> tuple[int, ...]:
    if kintree_table.ndim != 2 or kintree_table.shape[0] != 2:
        raise ValueError(f"{source}: kintree_table must have shape [2, J], got {list(kintree_table.shape)}")
    parent_ids = kintree_table[0].astype(np.int64)
    joint_ids = kintree_table[1].astype(np.int64)
    column_of = {int(joint_id): column for column, joint_id in enumerate(joint_ids)}
    if len(column_of) != len(joint_ids):
        raise ValueError(f"{source}: kintree_table's second row repeats joint ids: {joint_ids.tolist()}")
    parents = []
    for column, parent_id in enumerate(parent_ids):
        if column == 0:
            parents.append(-1)
        elif int(parent_id) in column_of:
            parents.append(column_of[int(parent_id)])
        else:
            raise ValueError(f"{source}: kintree_table names parent {int(parent_id)} that is not a joint id")
    return tuple(parents)


def smpl_from_arrays(arrays: Mapping[str, Any], source: str = "SMPL arrays") -> SMPLModel:
    """Builds an `SMPLModel` from a dict in the official file layout (see the module docstring).

    Args:
      arrays: key -> numpy array or scipy sparse matrix, with at least `REQUIRED_KEYS`.
      source: a name for error messages (the file path when loading a file).

    Returns:
      The model, with float32 arrays and int32 faces.

    Raises:
      ValueError: naming `source`, for missing keys, inconsistent shapes, faces that index past the
        vertices, or non-finite values.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ValueError(
            f"{source}: missing SMPL keys {missing} (needs {list(REQUIRED_KEYS)}, found {sorted(arrays)})"
        )
    dense = {key: _dense(arrays[key]) for key in REQUIRED_KEYS}
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.issubdtype(dense[key].dtype, np.number):
            raise ValueError(f"{source}: {key} must be numeric, got dtype {dense[key].dtype}")
        if not np.all(np.isfinite(dense[key])):
            raise ValueError(f"{source}: {key} contains NaN or infinite values")
    parents = _parents_from_kintree(dense["kintree_table"], source)
    num_vertices = dense["v_template"].shape[0] if dense["v_template"].ndim == 2 else -1
    extra = {}
    for key, value in arrays.items():
        if key.endswith("_regressor") and key not in _NOT_EXTRA_REGRESSORS:
            matrix = _dense(value)
            if matrix.ndim == 2:
                extra[key] = matrix.astype(np.float32)
    joint_names = _joint_names(arrays.get("joint_names"), len(parents))
    faces = dense["f"]
    model = SMPLModel(
        v_template=jnp.asarray(dense["v_template"], jnp.float32),
        shapedirs=jnp.asarray(dense["shapedirs"], jnp.float32),
        posedirs=jnp.asarray(dense["posedirs"], jnp.float32),
        J_regressor=jnp.asarray(dense["J_regressor"], jnp.float32),
        lbs_weights=jnp.asarray(dense["weights"], jnp.float32),
        faces=jnp.asarray(faces.astype(np.int64), jnp.int32),
        extra_regressors={key: jnp.asarray(value) for key, value in sorted(extra.items())},
        parents=parents,
        joint_names=joint_names,
    )
    model.check(source)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(
            f"{source}: f (faces) must index vertices 0..{num_vertices - 1}, got range "
            f"[{faces.min()}, {faces.max()}]"
        )
    return model


def _joint_names(names: Any, num_joints: int) -> tuple[str, ...]:
    if names is not None:
        return tuple(str(name) for name in np.asarray(names).reshape(-1))
    if num_joints == len(SMPL_JOINT_NAMES):
        return SMPL_JOINT_NAMES
    return tuple(f"joint_{index}" for index in range(num_joints))


def smpl_to_arrays(model: SMPLModel) -> dict[str, np.ndarray]:
    """The model as numpy arrays under the official keys (dense `J_regressor`), plus `joint_names` and
    the extra regressors under their own names. `kintree_table` writes the root's parent as 4294967295 as
    the official files do."""
    parents = np.asarray(model.parents, dtype=np.int64)
    parents[0] = _ROOT_PARENT_IN_FILES
    arrays = {
        "v_template": np.asarray(model.v_template, np.float32),
        "shapedirs": np.asarray(model.shapedirs, np.float32),
        "posedirs": np.asarray(model.posedirs, np.float32),
        "J_regressor": np.asarray(model.J_regressor, np.float32),
        "weights": np.asarray(model.lbs_weights, np.float32),
        "kintree_table": np.stack([parents, np.arange(len(parents), dtype=np.int64)]),
        "f": np.asarray(model.faces, np.int32),
        "joint_names": np.asarray(model.joint_names),
    }
    arrays.update({key: np.asarray(value, np.float32) for key, value in model.extra_regressors.items()})
    return arrays


def load_smpl(path: str | os.PathLike) -> SMPLModel:
    """Loads an SMPL-format model from the official `.pkl` (no chumpy needed) or from an `.npz`.

    Args:
      path: a `.pkl` as distributed by the SMPL authors (Python-2 pickle with chumpy arrays and a scipy
        sparse `J_regressor`; HMR's `neutral_smpl_with_cocoplus_reg.pkl` works too), or an `.npz` with the
        same keys (as written by `save_smpl`).

    Returns:
      The `SMPLModel` (float32 arrays).

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: naming the file, for an unknown suffix, an unreadable file, missing keys or
        inconsistent shapes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SMPL model file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".pkl":
        arrays = read_official_pickle(path)
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable .npz archive ({error})") from None
    else:
        raise ValueError(f"{path}: unknown SMPL model suffix {suffix!r}; expected .pkl or .npz")
    return smpl_from_arrays(arrays, source=path)


def save_smpl(model: SMPLModel, path: str | os.PathLike) -> None:
    """Writes a model to `.npz` (official keys, dense `J_regressor`) or to an official-style `.pkl`.

    The `.pkl` is written the way the official files are (Python-2 protocol-2 pickle, `shapedirs` as a
    chumpy `Ch` object, `J_regressor` and extra regressors as scipy sparse csc matrices, `f` as uint32,
    plus the `J`, `bs_style` and `bs_type` entries), without needing chumpy; both formats load back with
    `load_smpl`. The file appears complete or not at all (written under a temporary name, then renamed).

    Args:
      model: the model to write.
      path: destination ending in `.npz` or `.pkl`.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    model.check("model")
    arrays = smpl_to_arrays(model)
    if suffix == ".npz":
        buffer = _bytes_io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
    elif suffix == ".pkl":
        payload = dumps_official_pickle(_official_layout(model, arrays), chumpy_keys=("shapedirs",))
    else:
        raise ValueError(f"path must end in .npz or .pkl, got {path!r}")
    _write_atomically(path, payload)


def _official_layout(model: SMPLModel, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    layout = {key: value.astype(np.float64) for key, value in arrays.items() if key in REQUIRED_KEYS}
    layout["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"].astype(np.float64))
    layout["f"] = arrays["f"].astype(np.uint32)
    layout["kintree_table"] = arrays["kintree_table"]
    layout["J"] = arrays["J_regressor"].astype(np.float64) @ arrays["v_template"].astype(np.float64)
    layout["bs_style"] = "lbs"
    layout["bs_type"] = "lrotmin"
    for key in model.extra_regressors:
        layout[key] = scipy.sparse.csc_matrix(arrays[key].astype(np.float64))
    if model.joint_names != SMPL_JOINT_NAMES:
        layout["joint_names"] = list(model.joint_names)
    return layout


def _write_atomically(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory for {path} does not exist: {directory}")
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as file:
            file.write(payload)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
