"""Reading and writing SMPL's official `.pkl` files without chumpy.

The official SMPL model files are Python-2 pickles of a dict whose arrays are numpy arrays, chumpy `Ch`
objects (chumpy is unmaintained and no longer imports on current numpy) and scipy sparse matrices (pickled
under scipy's old module names). `read_official_pickle` unpickles such a file with an `Unpickler` whose
`find_class` admits only numpy, scipy sparse matrices, chumpy classes and a few builtins; chumpy and scipy
classes are replaced by small stand-ins that keep the pickled state, which is then turned back into arrays:
a chumpy `Ch` pickles its `__dict__` (without caches), so a plain `Ch` is its `x`, and the reordering
classes (`Reshape`, `Select`, `transpose`, `Concatenate`) are re-evaluated from their terms.

`dumps_official_pickle` serialises a dict the same way the official files are written (pickle protocol 2 with
Python-2 byte strings, `chumpy.ch.Ch` objects for the keys asked for, `scipy.sparse.csc.csc_matrix` for
sparse matrices, `numpy.core.multiarray` for arrays), without importing chumpy.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.sparse

__all__ = ["read_official_pickle", "dumps_official_pickle"]

_BUILTINS = frozenset(
    {"set", "frozenset", "object", "list", "dict", "tuple", "complex", "slice", "bytearray"}
)
_SPARSE_FORMATS = ("csc", "csr", "coo")
# What numpy arrays, dtypes and scalars pickle as, under numpy 1 and numpy 2 module names.
_NUMPY_GLOBALS = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype")]
    + [
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    ]
)


class _PickledObject:
    """Stand-in for a class that must not (or cannot) be imported: keeps the pickled state."""

    qualified_name = "?"
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        # Python 2 pickles may give (dict_state, slot_state); chumpy and scipy only use the first.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        self.state = state


def _stand_in(module: str, name: str) -> type:
    return type(name, (_PickledObject,), {"qualified_name": f"{module}.{name}"})


class _OfficialUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _stand_in(module, name)
        if module.startswith("scipy.sparse"):
            if name.endswith("_matrix") and name[:3] in _SPARSE_FORMATS:
                return _stand_in(module, name)
            raise pickle.UnpicklingError(f"unsupported scipy class {module}.{name}")
        if (module, name) in _NUMPY_GLOBALS:
            # numpy 2 renamed numpy.core to numpy._core; importing the old name only warns.
            if module == "numpy.core" or module.startswith("numpy.core."):
                module = "numpy._core" + module[len("numpy.core") :]
            return super().find_class(module, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":
            return super().find_class(module, name)
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of an SMPL model file")


def _sparse_from_state(obj: _PickledObject) -> scipy.sparse.spmatrix:
    state = obj.state
    shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
    kind = type(obj).__name__[:3]
    if kind == "coo":
        return scipy.sparse.coo_matrix(
            (np.asarray(state["data"]), (np.asarray(state["row"]), np.asarray(state["col"]))), shape=shape
        )
    matrix_class = scipy.sparse.csc_matrix if kind == "csc" else scipy.sparse.csr_matrix
    arrays = (np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"]))
    return matrix_class(arrays, shape=shape)


def _chumpy_value(obj: _PickledObject) -> np.ndarray:
    """Evaluates a pickled chumpy object made of plain arrays and reorderings."""
    state = obj.state
    kind = type(obj).__name__

    def term(name: str) -> np.ndarray:
        return np.asarray(_restore(state[name]))

    if kind == "Ch":
        return np.asarray(_restore(state["x"]))
    if kind == "Reshape":
        return term("a").reshape(state["newshape"])
    if kind == "transpose":
        return np.ascontiguousarray(np.transpose(term("a"), axes=state.get("axes")))
    if kind == "Select":
        selected = term("a").ravel()[np.asarray(state["idxs"])]
        return selected.reshape(state["preferred_shape"]) if "preferred_shape" in state else selected
    if kind == "Concatenate":
        return np.concatenate([term(name) for name in state["dterms"]], axis=state["axis"])
    raise ValueError(
        f"chumpy object of class {obj.qualified_name} is not supported (only Ch, Reshape, Select, transpose "
        "and Concatenate are); convert the file's arrays to numpy with chumpy first"
    )


def _restore(value: Any) -> Any:
    """Replaces stand-ins (recursively, in dicts, lists and tuples) by numpy arrays / scipy matrices."""
    if isinstance(value, _PickledObject):
        if value.qualified_name.startswith("scipy."):
            return _sparse_from_state(value)
        return _chumpy_value(value)
    if isinstance(value, dict):
        return {key: _restore(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_restore(item) for item in value)
    return value


def read_official_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Reads an SMPL-style `.pkl` (Python 2 or 3, with or without chumpy objects) without chumpy.

    Args:
      path: the pickle file.

    Returns:
      The pickled dict with chumpy objects evaluated to numpy arrays and scipy sparse matrices rebuilt
      (as `scipy.sparse` csc/csr/coo matrices). Python-2 byte strings are decoded as latin-1.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: naming the file, if it is not a pickle of a dict, or holds objects other than numpy
        arrays, scipy sparse matrices, the supported chumpy classes and plain Python values.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SMPL model file not found: {path}")
    try:
        with open(path, "rb") as file:
            loaded = _OfficialUnpickler(file, encoding="latin1").load()
        restored = _restore(loaded)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(
            f"{path}: not a readable SMPL model pickle ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(restored, dict):
        raise ValueError(f"{path}: expected a pickled dict of model arrays, got {type(restored).__name__}")
    return restored


class _LegacyObject:
    """An object to be pickled as an instance of `module.name` with the given `__dict__` state."""

    def __init__(self, module: str, name: str, state: dict[str, Any]) -> None:
        self.module, self.name, self.state = module, name, state


class _Python2StylePickler(pickle._Pickler):  # the pure-Python pickler lets us write raw opcodes
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        if module.startswith("numpy._core"):
            module_name = "numpy.core" + module[len("numpy._core") :]
            qualified = name or obj.__qualname__
            self.write(pickle.GLOBAL + f"{module_name}\n{qualified}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def _write_binstring(self, data: bytes) -> None:
        # Python 2's str: a (SHORT_)BINSTRING, which Python 3 reads back with encoding='latin1'.
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(data)) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def save_bytes(self, obj: bytes) -> None:
        self._write_binstring(obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        try:
            data = obj.encode("ascii")
        except UnicodeEncodeError:
            super().save_str(obj)
            return
        self._write_binstring(data)
        self.memoize(obj)

    def save_legacy_object(self, obj: _LegacyObject) -> None:
        # What protocol 2 writes for a new-style instance: copy_reg.__newobj__(cls) then BUILD with __dict__.
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str
    dispatch[_LegacyObject] = save_legacy_object


def _chumpy_ch(array: np.ndarray) -> _LegacyObject:
    state = {
        "x": np.asarray(array, dtype=np.float64),
        "_dirty_vars": set(),
        "_itr": None,
        "_depends_on_deps": {},
        "_make_dense": False,
        "_make_sparse": False,
    }
    return _LegacyObject("chumpy.ch", "Ch", state)


def _legacy_sparse(matrix: scipy.sparse.spmatrix) -> _LegacyObject:
    matrix = scipy.sparse.csc_matrix(matrix)
    state = {
        "data": matrix.data,
        "indices": matrix.indices.astype(np.int32),
        "indptr": matrix.indptr.astype(np.int32),
        "_shape": tuple(int(n) for n in matrix.shape),
        "maxprint": 50,
    }
    return _LegacyObject("scipy.sparse.csc", "csc_matrix", state)


def dumps_official_pickle(data: Mapping[str, Any], chumpy_keys: Iterable[str] = ()) -> bytes:
    """Serialises `data` as the official SMPL files are written, without chumpy.

    The result is a protocol-2 pickle with Python-2 byte strings; entries named in `chumpy_keys` become
    `chumpy.ch.Ch` objects, scipy sparse matrices become `scipy.sparse.csc.csc_matrix` objects and numpy
    arrays reference `numpy.core.multiarray`, as in pickles made with Python 2.

    Args:
      data: name -> numpy array, scipy sparse matrix, or plain Python value (str, int, dict, ...).
      chumpy_keys: names of the arrays to store as chumpy `Ch` objects (e.g. ("shapedirs",)).

    Returns:
      The pickle's bytes.
    """
    chumpy_keys = set(chumpy_keys)
    missing = chumpy_keys - set(data)
    if missing:
        raise ValueError(f"chumpy_keys names entries that data lacks: {sorted(missing)}")
    converted = {}
    for key, value in data.items():
        if key in chumpy_keys:
            value = _chumpy_ch(np.asarray(value))
        elif scipy.sparse.issparse(value):
            value = _legacy_sparse(value)
        converted[key] = value
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(converted)
    return buffer.getvalue()
