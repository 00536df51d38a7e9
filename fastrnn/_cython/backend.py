"""The "cython" backend: the layer functions, compiled (fastrnn/_cython/_kernels.pyx).

fastrnn.layers validates and hands these functions C-contiguous float32/float64 arrays of one dtype;
each is a single compiled call that releases the GIL.  Importing this module raises ImportError when
the extension was not built, and the registry (fastrnn._backend) then leaves "cython" out of
``available_backends()``.

Import cost: the extension cimports ``scipy.linalg.cython_blas`` (its fallback BLAS, see below), and
importing that module the usual way first runs ``scipy/linalg/__init__.py``, which imports most of
scipy.linalg (about 0.2 s).  The kernels need only the function pointers the compiled cython_blas
module exports, so
``_load_cython_blas`` loads that one extension module from its file (about 0.03 s) before the kernels
are imported, then takes its name back out of ``sys.modules``: a later ``import scipy.linalg...`` finds
everything as usual (Cython modules are created once per process, so it even gets the same module).
If anything about that fails, the ordinary import runs instead: only slower.

Which BLAS: the GEMMs go to NumPy's own OpenBLAS when NumPy's wheel bundles one (the ILP64
``scipy-openblas64``; found among the libraries NumPy has already loaded, never loaded anew, and checked
with a small product), else to SciPy's ``scipy.linalg.cython_blas``.  NumPy's is preferred because it is
the BLAS that ``numpy.matmul`` -- the user's other code, the oracle and the "BLAS floor" -- runs on:
SciPy's bundled OpenBLAS can be another release (here 0.3.30 against NumPy's 0.3.31, up to 30% slower
on some per-step GEMM shapes), and two OpenBLAS libraries bring two pools of worker threads that spin
on the same cores.  The Numba backend makes the same choice.  ``FASTRNN_CYTHON_BLAS=scipy`` forces
SciPy's.
"""

import os
import sys

_BLAS = "scipy.linalg.cython_blas"


def _load_cython_blas():
    """Loads scipy's compiled cython_blas without importing the scipy.linalg package; True if it did."""
    if _BLAS in sys.modules or "scipy.linalg" in sys.modules:
        return False
    try:
        from importlib.machinery import EXTENSION_SUFFIXES
        from importlib.util import find_spec, module_from_spec, spec_from_file_location

        scipy_spec = find_spec("scipy")
        for folder in (scipy_spec.submodule_search_locations or ()) if scipy_spec else ():
            for suffix in EXTENSION_SUFFIXES:
                path = os.path.join(folder, "linalg", "cython_blas" + suffix)
                if os.path.isfile(path):
                    spec = spec_from_file_location(_BLAS, path)
                    module = module_from_spec(spec)
                    sys.modules[_BLAS] = module
                    spec.loader.exec_module(module)
                    return True
    except Exception:  # any surprise: fall back to the ordinary import
        sys.modules.pop(_BLAS, None)
    return False


def _numpy_ilp64_gemm():
    """Addresses of sgemm/dgemm in the ILP64 OpenBLAS that NumPy's wheel bundles and has loaded, or None."""
    try:
        from .._numpy_blas import symbol_addresses

        return symbol_addresses(("scipy_sgemm_64_", "scipy_dgemm_64_"), ("sgemm_64_", "dgemm_64_"))
    except Exception:
        return None


def _choose_blas(kernels):
    """NumPy's bundled BLAS if there is one and it multiplies right, else SciPy's cython_blas."""
    if os.environ.get("FASTRNN_CYTHON_BLAS", "").strip().lower() == "scipy":
        return
    addresses = _numpy_ilp64_gemm()
    if addresses:
        kernels.set_ilp64_blas(*addresses)
        if not kernels.blas_selftest():
            kernels.set_ilp64_blas(0, 0)


_preloaded = _load_cython_blas()
try:
    from . import _kernels
    from ._kernels import (  # noqa: F401  (re-exported: these are the backend's layer functions)
        affine_backward,
        affine_forward,
        gru_backward,
        gru_backward_state,
        gru_forward,
        gru_forward_state,
        gru_step_backward,
        gru_step_forward,
        lstm_backward,
        lstm_backward_state,
        lstm_forward,
        lstm_forward_state,
        lstm_step_backward,
        lstm_step_forward,
        rnn_backward,
        rnn_backward_state,
        rnn_forward,
        rnn_forward_state,
        rnn_step_backward,
        rnn_step_forward,
        sigmoid,
        temporal_affine_backward,
        temporal_affine_forward,
        temporal_softmax_loss,
        word_embedding_backward,
        word_embedding_forward,
    )
except ImportError as exc:
    raise ImportError(
        f"the compiled Cython kernels (fastrnn._cython._kernels) are not importable: {exc}; "
        "build them with `pip install -e .` (needs a C compiler; Cython, NumPy and SciPy are fetched)"
    ) from exc
finally:
    if _preloaded:
        sys.modules.pop(_BLAS, None)
    del _preloaded

_choose_blas(_kernels)


def _use_native(kernels):
    """The sequence and affine layers on fastrnn._native's team (unless FASTRNN_NATIVE=0: BLAS), and the
    large arrays from its pool."""
    if os.environ.get("FASTRNN_NATIVE", "").strip() == "0":
        return
    try:
        from .. import _native
    except ImportError:  # the C extension did not build: BLAS for everything
        return
    layout = _native.layout()
    kernels.set_blas_threads(_native.blas_threads_address())
    kernels.set_native(_native.symbols(), layout["nr_float32"], layout["nr_float64"])
    kernels.set_pool(_native.pool_handler)


_use_native(_kernels)


native_in_use = _kernels.native_in_use
team_plan = _kernels.team_plan
set_team_flops = _kernels.set_team_flops


def blas():
    """Which BLAS the kernels call: "ilp64" (NumPy's bundled OpenBLAS) or "scipy.linalg.cython_blas"."""
    return _kernels.blas_in_use()
