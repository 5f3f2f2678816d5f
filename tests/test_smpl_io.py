"""load_smpl / save_smpl: official-style .pkl files (chumpy objects, scipy sparse J_regressor) load
without chumpy to the same model as the .npz; bad files give errors naming the file and the problem."""

import copy
import pickle
import sys
import types
import warnings

import numpy as np
import pytest
import scipy.sparse

from landmarkjax.body.io import load_smpl, save_smpl, smpl_to_arrays
from landmarkjax.body.official_pickle import read_official_pickle
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES
from landmarkjax.body.synthetic_smpl import make_synthetic_smpl, synthetic_smpl_arrays

FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "faces")


@pytest.fixture(scope="module")
def arrays():
    return synthetic_smpl_arrays(seed=1)


@pytest.fixture()
def fake_chumpy(monkeypatch):
    """A stand-in `chumpy` package whose classes pickle the way chumpy's do: by `__dict__` minus caches.

    Returns the `chumpy.ch` and `chumpy.reordering` modules. Tests set `sys.modules["chumpy"] = None`
    (so `import chumpy` fails) before loading; monkeypatch restores sys.modules afterwards."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        dterms = ["x"]

        def __init__(self, x):
            self.x = np.asarray(x, np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._parents = {}
            self._cache = {"r": None}
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

        def __getstate__(self):  # as chumpy.ch.Ch.__getstate__
            state = copy.copy(self.__dict__)
            del state["_parents"]
            del state["_cache"]
            return state

        def __setstate__(self, state):
            self.__dict__.update(state)

    class Reshape(Ch):
        dterms = ["a"]

        def __init__(self, a, newshape):
            super().__init__(np.zeros(0))
            del self.x
            self.a, self.newshape = a, newshape

    class Select(Ch):
        def __init__(self, a, idxs, preferred_shape):
            super().__init__(np.zeros(0))
            del self.x
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape

    for cls, module in ((Ch, ch), (Reshape, reordering), (Select, reordering)):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    chumpy.ch, chumpy.reordering = ch, reordering
    for module in (chumpy, ch, reordering):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return ch, reordering


def official_layout(arrays, ch, reordering):
    """The dict as the official SMPL .pkl holds it: chumpy arrays, a sparse J_regressor, uint32 faces."""
    shapedirs = arrays["shapedirs"]
    return {
        "v_template": ch.Ch(arrays["v_template"]),
        # shapedirs as chumpy objects built from a flat Ch, as they come out of chumpy expressions.
        "shapedirs": reordering.Reshape(ch.Ch(shapedirs.reshape(-1)), shapedirs.shape),
        "posedirs": arrays["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
        "J_regressor_prior": scipy.sparse.csc_matrix(arrays["J_regressor"]),
        "weights": ch.Ch(arrays["weights"]),
        "weights_prior": arrays["weights"],
        "kintree_table": arrays["kintree_table"],
        "f": arrays["f"].astype(np.uint32),
        "J": ch.Ch(arrays["J_regressor"] @ arrays["v_template"]),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "pose_training_info": {"num_training_poses": 1786},
        "vert_sym_idxs": np.arange(len(arrays["v_template"])),
        "cocoplus_regressor": scipy.sparse.csc_matrix(arrays["cocoplus_regressor"]),
    }


def assert_models_equal(model, other, atol=1e-6):
    for field in FIELDS:
        np.testing.assert_allclose(getattr(model, field), getattr(other, field), atol=atol, err_msg=field)
    assert model.parents == other.parents
    assert model.joint_names == other.joint_names
    assert sorted(model.extra_regressors) == sorted(other.extra_regressors)
    for name in model.extra_regressors:
        np.testing.assert_allclose(model.extra_regressors[name], other.extra_regressors[name], atol=atol)


def assert_model_matches_arrays(model, arrays):
    np.testing.assert_allclose(model.v_template, arrays["v_template"], atol=1e-6)
    np.testing.assert_allclose(model.shapedirs, arrays["shapedirs"], atol=1e-6)
    np.testing.assert_allclose(model.posedirs, arrays["posedirs"], atol=1e-6)
    np.testing.assert_allclose(model.J_regressor, arrays["J_regressor"], atol=1e-6)
    np.testing.assert_allclose(model.lbs_weights, arrays["weights"], atol=1e-6)
    np.testing.assert_array_equal(model.faces, arrays["f"])
    np.testing.assert_allclose(
        model.extra_regressors["cocoplus_regressor"], arrays["cocoplus_regressor"], atol=1e-6
    )
    expected_parents = arrays["kintree_table"][0].astype(np.int64)
    assert model.parents == (-1,) + tuple(int(p) for p in expected_parents[1:])
    assert model.joint_names == SMPL_JOINT_NAMES


@pytest.mark.parametrize("protocol", [0, 2])
def test_official_style_pickle_loads_without_chumpy_like_the_npz(arrays, fake_chumpy, tmp_path, protocol):
    ch, reordering = fake_chumpy
    pkl_path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    with open(pkl_path, "wb") as file:
        pickle.dump(official_layout(arrays, ch, reordering), file, protocol=protocol)
    npz_path = tmp_path / "model.npz"
    np.savez(npz_path, **{k: v for k, v in arrays.items()})

    sys.modules["chumpy"] = None  # chumpy is not importable while loading
    from_pickle = load_smpl(pkl_path)
    from_npz = load_smpl(npz_path)
    assert_model_matches_arrays(from_pickle, arrays)
    assert_models_equal(from_pickle, from_npz)


def test_chumpy_select_and_python2_byte_strings_are_understood(arrays, fake_chumpy, tmp_path):
    ch, reordering = fake_chumpy
    values = np.arange(12.0)
    data = {
        "picked": reordering.Select(ch.Ch(values), np.array([1, 5, 7, 11]), (2, 2)),
        "plain": ch.Ch(values.reshape(3, 4)),
    }
    # Python 2 writes str as SHORT_BINSTRING; patch the protocol-2 stream to hold byte strings for keys.
    payload = pickle.dumps(data, protocol=2)
    for key in (b"picked", b"plain"):
        payload = payload.replace(
            pickle.BINUNICODE + len(key).to_bytes(4, "little") + key,
            pickle.SHORT_BINSTRING + len(key).to_bytes(1, "little") + key,
        )
    path = tmp_path / "py2.pkl"
    path.write_bytes(payload)
    sys.modules["chumpy"] = None
    loaded = read_official_pickle(path)
    np.testing.assert_array_equal(loaded["picked"], [[1.0, 5.0], [7.0, 11.0]])
    np.testing.assert_array_equal(loaded["plain"], values.reshape(3, 4))


def test_save_smpl_pickle_is_official_style_and_round_trips(fake_chumpy, tmp_path):
    ch, _ = fake_chumpy
    model = make_synthetic_smpl(seed=2)
    path = tmp_path / "synthetic.pkl"
    save_smpl(model, path)
    # A reader that has chumpy (here the stand-in) sees what it expects from the official files.
    with open(path, "rb") as file, warnings.catch_warnings():
        # Old-style module paths (scipy.sparse.csc, numpy.core) warn on current scipy / numpy, as they do
        # for the official files.
        warnings.simplefilter("ignore", DeprecationWarning)
        raw = pickle.load(file, encoding="latin1")
    assert isinstance(raw["shapedirs"], ch.Ch)
    np.testing.assert_allclose(raw["shapedirs"].x, model.shapedirs, atol=1e-6)
    assert scipy.sparse.issparse(raw["J_regressor"]) and raw["J_regressor"].format == "csc"
    assert raw["f"].dtype == np.uint32 and raw["kintree_table"][0, 0] == 4294967295
    assert b"chumpy.ch\nCh" in path.read_bytes() and b"scipy.sparse.csc\ncsc_matrix" in path.read_bytes()
    sys.modules["chumpy"] = None
    assert_models_equal(load_smpl(path), model)


def test_npz_round_trip(tmp_path):
    model = make_synthetic_smpl(seed=2)
    path = tmp_path / "synthetic.npz"
    save_smpl(model, path)
    assert_models_equal(load_smpl(path), model, atol=0)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_missing_file(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with pytest.raises(FileNotFoundError, match="SMPL_NEUTRAL.pkl"):
        load_smpl(path)


def _write_npz(path, arrays, **changes):
    data = {k: v for k, v in arrays.items()}
    data.update(changes)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(posedirs=None), r"missing SMPL keys \['posedirs'\]"),
        (dict(f=None, weights=None), r"missing SMPL keys \['weights', 'f'\]"),
        (dict(weights=np.ones((10, 24))), r"weights must have shape \[.*\], got \[10, 24\]"),
        (dict(shapedirs=np.ones((5, 3, 10))), r"shapedirs must have shape"),
        (dict(posedirs=np.ones((1, 3, 207))), r"posedirs must have shape"),
        (dict(J_regressor=np.ones((24, 7))), r"J_regressor must have shape \[J, V="),
        (dict(v_template=np.ones((5, 2))), r"v_template must have shape \[V, 3\]"),
        (dict(kintree_table=np.zeros((3, 24), np.int64)), r"kintree_table must have shape \[2, J\]"),
        (dict(cocoplus_regressor=np.ones((19, 9))), r"cocoplus_regressor must have shape \[K, V="),
    ],
)
def test_bad_npz_errors_name_the_file_and_problem(arrays, tmp_path, changes, message):
    path = _write_npz(tmp_path / "broken_model.npz", arrays, **changes)
    with pytest.raises(ValueError, match=message) as error:
        load_smpl(path)
    assert "broken_model.npz" in str(error.value)


def test_out_of_order_tree_faces_out_of_range_and_nan_are_rejected(arrays, tmp_path):
    kintree = arrays["kintree_table"].copy()
    kintree[0, 1] = 5
    with pytest.raises(ValueError, match=r"bad_tree.npz.*parents\[j\] < j"):
        load_smpl(_write_npz(tmp_path / "bad_tree.npz", arrays, kintree_table=kintree))
    faces = arrays["f"].copy()
    faces[0, 0] = len(arrays["v_template"])
    with pytest.raises(ValueError, match=r"bad_faces.npz.*f \(faces\) must index"):
        load_smpl(_write_npz(tmp_path / "bad_faces.npz", arrays, f=faces))
    template = arrays["v_template"].copy()
    template[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"nan.npz: v_template contains NaN"):
        load_smpl(_write_npz(tmp_path / "nan.npz", arrays, v_template=template))


def test_unreadable_and_unsafe_files(tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x02not a pickle at all")
    with pytest.raises(ValueError, match="garbage.pkl"):
        load_smpl(garbage)

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    unsafe = tmp_path / "unsafe.pkl"
    unsafe.write_bytes(pickle.dumps({"v_template": Exploit()}, protocol=2))
    with pytest.raises(ValueError, match=r"unsafe.pkl.*refusing to load (__builtin__|builtins).print"):
        load_smpl(unsafe)

    not_a_dict = tmp_path / "list.pkl"
    not_a_dict.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="list.pkl: expected a pickled dict"):
        load_smpl(not_a_dict)

    wrong_suffix = tmp_path / "model.obj"
    wrong_suffix.write_text("v 0 0 0\n")
    with pytest.raises(ValueError, match=r"model.obj: unknown SMPL model suffix"):
        load_smpl(wrong_suffix)
    with pytest.raises(ValueError, match="must end in .npz or .pkl"):
        save_smpl(make_synthetic_smpl(seed=0), tmp_path / "model.txt")


def test_smpl_to_arrays_uses_official_keys():
    arrays = smpl_to_arrays(make_synthetic_smpl(seed=0))
    assert {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"} <= set(
        arrays
    )
    assert arrays["kintree_table"][0, 0] == 4294967295


def test_numpy_functions_other_than_array_reconstruction_are_refused(tmp_path):
    class LoadsAFile:
        def __reduce__(self):
            return (np.load, ("/etc/passwd",))

    path = tmp_path / "numpy_call.pkl"
    path.write_bytes(pickle.dumps({"v_template": LoadsAFile()}, protocol=2))
    with pytest.raises(ValueError, match=r"numpy_call.pkl.*refusing to load numpy"):
        load_smpl(path)
    protocol5 = tmp_path / "protocol5.npz.pkl"
    protocol5.write_bytes(pickle.dumps({"x": np.arange(4.0)}, protocol=5))
    np.testing.assert_array_equal(read_official_pickle(protocol5)["x"], np.arange(4.0))
