"""MANO-format hand models: the real MANO pickle (safely), and our own npz.

    from s2hand.hand.mano_io import load_mano_pickle, write_mano_npz, read_hand_model
    model = load_mano_pickle("data/mano/MANO_RIGHT.pkl")   # plain numpy; chumpy not needed
    model["tip_vertex_ids"], model["source"] = MANO_TIP_IDS["code"], "MANO_RIGHT.pkl"
    write_mano_npz(model, "outputs/hand_model/MANO_RIGHT.npz")
    model = read_hand_model("outputs/hand_model/MANO_RIGHT.npz")

The real MANO_RIGHT.pkl (licence-restricted: the user downloads it) is a Python 2 pickle
(protocol 2, latin1) holding numpy arrays, a scipy.sparse J_regressor and chumpy objects.
`load_mano_pickle` reads it with an Unpickler that resolves only an explicit allow-list of
globals (numpy array/dtype/scalar reconstruction, copyreg's object reconstruction, builtins set,
latin1 bytes, scipy.sparse csc/csr matrices) and maps every `chumpy.*` class onto a stand-in that keeps the
pickled state (a Ch keeps its value under 'x'); anything else (os.system, eval, ...) raises
UnsafePickleError before it is called.

The npz holds MANO's keys with MANO's shapes, plus our `tip_vertex_ids` (thumb, index, middle,
ring, pinky) and `source` (a string). Its file name must contain RIGHT: smplx infers the
handedness from it.
"""
from __future__ import annotations

import codecs
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from s2hand.io import atomic_file, save_npz

# Fingertip vertex ids on real MANO (method.md s2), order thumb, index, middle, ring, pinky.
MANO_TIP_IDS = {"code": (744, 320, 443, 555, 672), "smplx": (744, 320, 443, 554, 671)}

MANO_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
             "hands_components", "hands_mean", "J")
EXTRA_KEYS = ("tip_vertex_ids", "source")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class MissingHandModelError(FileNotFoundError):
    """The user's MANO file is not where params say."""


# --------------------------------------------------------------------------------------------
# Reading the real MANO pickle


class ChumpyStandIn:
    """Takes the place of any chumpy class: keeps the pickled state, computes nothing."""

    chumpy_class = "chumpy.?"

    def __setstate__(self, state):
        self.state = state

    def value(self) -> np.ndarray:
        """The array a plain Ch holds (state['x']); other chumpy nodes are refused."""
        state = getattr(self, "state", None)
        x = state.get("x") if isinstance(state, dict) else None
        if isinstance(x, ChumpyStandIn):
            return x.value()
        if x is None:
            raise pickle.UnpicklingError(
                f"{self.chumpy_class} object has no stored value ('x'); only plain chumpy.ch.Ch values are supported"
            )
        return np.asarray(x)


class _SparseStandIn:
    """Takes the place of scipy.sparse csc/csr matrices: rebuilt from (data, indices, indptr, shape)
    so the result does not depend on the scipy version that wrote the pickle."""

    fmt = "csc"

    def __setstate__(self, state):
        self.state = state

    def to_sparse(self) -> sp.spmatrix:
        st = self.state
        shape = st.get("_shape", st.get("shape"))
        cls = sp.csc_matrix if self.fmt == "csc" else sp.csr_matrix
        return cls((np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])), shape=tuple(shape))


class _CscStandIn(_SparseStandIn):
    fmt = "csc"


class _CsrStandIn(_SparseStandIn):
    fmt = "csr"


_STANDINS: dict[str, type] = {}


def _chumpy_standin(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (ChumpyStandIn,), {"chumpy_class": key})
    return _STANDINS[key]


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to object-based classes from the allow-list."""
    if base is not object or state is not None:
        raise UnsafePickleError(f"copyreg._reconstructor with base {base!r} is not allowed")
    return object.__new__(cls)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """_codecs.encode as Python 3 pickles bytes at protocol 2, limited to latin1."""
    if encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray

    table: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        table[(mod, "csc_matrix")] = _CscStandIn
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        table[(mod, "csr_matrix")] = _CsrStandIn
    return table


class _MANOUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source
        self._table = _allowed_globals()

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return _chumpy_standin(module, name)
        try:
            return self._table[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}: a MANO pickle needs only numpy, "
                "scipy.sparse and chumpy objects (is this really MANO_RIGHT.pkl?)"
            ) from None


def _plain(value):
    """Stand-ins and sparse matrices -> numpy arrays; other values unchanged."""
    if isinstance(value, ChumpyStandIn):
        return value.value()
    if isinstance(value, _SparseStandIn):
        return np.asarray(value.to_sparse().todense())
    if sp.issparse(value):
        return np.asarray(value.todense())
    return value


def load_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read a real MANO_RIGHT.pkl without chumpy. Returns MANO's keys as plain numpy arrays
    (J_regressor densified, f as int64); J is recomputed as J_regressor @ v_template if absent."""
    path = Path(path)
    if not path.is_file():
        raise MissingHandModelError(f"{path}: no such MANO file")
    with path.open("rb") as f:
        raw = _MANOUnpickler(f, str(path)).load()
    if not isinstance(raw, dict):
        raise pickle.UnpicklingError(f"{path}: expected a dict at the top level, got {type(raw).__name__}")
    needed = [k for k in MANO_KEYS if k != "J"]
    missing = [k for k in needed if k not in raw]
    if missing:
        raise KeyError(f"{path}: not a MANO model, missing {missing}")
    model = {k: np.asarray(_plain(raw[k]), dtype=np.float64) for k in needed}
    model["f"] = model["f"].astype(np.int64)
    model["kintree_table"] = np.asarray(_plain(raw["kintree_table"])).astype(np.int64)
    model["J"] = np.asarray(_plain(raw["J"]), dtype=np.float64) if "J" in raw else model["J_regressor"] @ model["v_template"]
    check_hand_model(model, require_extras=False)
    return model


# --------------------------------------------------------------------------------------------
# Our npz


def check_hand_model(model: dict, require_extras: bool = True) -> None:
    """Raise ValueError unless every MANO key has MANO's shape for V vertices and F faces."""
    keys = MANO_KEYS + (EXTRA_KEYS if require_extras else ())
    missing = [k for k in keys if k not in model]
    if missing:
        raise ValueError(f"hand model lacks {missing}")
    v = np.shape(model["v_template"])[0]
    expected = {
        "v_template": (v, 3), "shapedirs": (v, 3, 10), "posedirs": (v, 3, 135), "J_regressor": (16, v),
        "weights": (v, 16), "kintree_table": (2, 16), "hands_components": (45, 45), "hands_mean": (45,),
        "J": (16, 3),
    }
    if require_extras:
        expected["tip_vertex_ids"] = (5,)
    for k, shape in expected.items():
        if tuple(np.shape(model[k])) != shape:
            raise ValueError(f"hand model: {k} has shape {tuple(np.shape(model[k]))}, expected {shape}")
    f = np.asarray(model["f"])
    if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= v:
        raise ValueError(f"hand model: f must be (F, 3) vertex ids below {v}")
    if require_extras and not (0 <= np.min(model["tip_vertex_ids"]) and np.max(model["tip_vertex_ids"]) < v):
        raise ValueError(f"hand model: tip_vertex_ids must be vertex ids below {v}")


def _check_name(path: Path) -> None:
    if "RIGHT" not in path.name:
        raise ValueError(f"{path}: the file name must contain RIGHT (smplx infers the handedness from it)")


def write_mano_npz(model: dict, path: str | Path) -> None:
    """Write MANO's keys + tip_vertex_ids + source (atomically). Other keys (e.g. 'info') are not written."""
    path = Path(path)
    _check_name(path)
    check_hand_model(model)
    arrays = {k: np.asarray(model[k]) for k in MANO_KEYS}
    arrays["f"] = arrays["f"].astype(np.int64)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    arrays["tip_vertex_ids"] = np.asarray(model["tip_vertex_ids"], dtype=np.int64)
    arrays["source"] = np.array(str(model["source"]))
    with atomic_file(path, "wb") as f:
        save_npz(f, **arrays)


def read_hand_model(path: str | Path) -> dict:
    """Read our MANO-format npz -> dict of numpy arrays (source as str)."""
    path = Path(path)
    _check_name(path)
    if not path.is_file():
        raise MissingHandModelError(f"{path}: no such hand model (run `dvc repro hand_model`)")
    with np.load(path, allow_pickle=False) as data:
        model = {k: data[k] for k in data.files}
    model["source"] = str(model["source"])
    check_hand_model(model)
    return model


# --------------------------------------------------------------------------------------------
# Test fixtures: pickles shaped like the real MANO file, and one that must be refused


def write_fake_mano_pickle(model: dict, path: str | Path) -> None:
    """Write `model`'s MANO keys the way the real MANO_RIGHT.pkl stores them: protocol 2; v_template,
    shapedirs, weights and J wrapped in chumpy-like Ch objects whose class the pickle names
    `chumpy.ch.Ch` (a fake module, registered in sys.modules only while pickling); J_regressor a
    scipy.sparse csc_matrix; plus MANO's string entries. Used by the tests; needs no chumpy."""
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch_cls = type("Ch", (), {"__module__": "chumpy.ch"})
    mod.Ch, pkg.ch = ch_cls, mod
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod

    def ch(x):
        obj = object.__new__(ch_cls)
        obj.__dict__.update({"x": np.asarray(x, dtype=np.float64), "_dirty_vars": set(), "_itr": None,
                             "_depends_on_deps": {}, "_make_dense": False, "_make_sparse": False})
        return obj

    try:
        raw = {k: np.asarray(model[k]) for k in MANO_KEYS}
        for k in ("v_template", "shapedirs", "weights", "J"):
            raw[k] = ch(raw[k])
        raw["J_regressor"] = sp.csc_matrix(raw["J_regressor"])
        raw["f"] = raw["f"].astype(np.uint32)
        raw["bs_style"], raw["bs_type"] = "lbs", "lrotmin"
        with Path(path).open("wb") as f:
            pickle.dump(raw, f, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_malicious_pickle(path: str | Path, command: str = "echo pwned") -> None:
    """A pickle that would run `os.system(command)` if loaded with plain pickle.load."""

    class _Payload:
        def __reduce__(self):
            import os

            return (os.system, (command,))

    with Path(path).open("wb") as f:
        pickle.dump({"v_template": _Payload()}, f, protocol=2)

