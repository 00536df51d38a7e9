"""How the kernels are compiled: options, and one signature per float dtype.

Every kernel is compiled for exactly one signature per dtype, with its input
arrays typed *readonly* and C-contiguous.  Numba converts a writable array to a
readonly one cheaply, so a readonly input (NumPy's ``asarray`` passes readonly
arrays through) reuses the same machine code instead of compiling a variant per
combination of flags.  Compilation happens on the first call in that dtype, and
first calls from several threads at once are safe (see ``_PerDtype``).  The first
time a process really compiles one of these kernels (an empty or stale cache, not
a load from it), one line on stderr says so (``_CompileNotice``): a layer's kernels take
a few seconds, once (the LSTM's forward and backward in one dtype 8 s, every kernel in both
dtypes 45 s, on 2 cores); loading them from the cache ~0.4 s.

It is cached on disk (``cache=True``): in ``NUMBA_CACHE_DIR`` when that is set,
else in ``__pycache__`` next to the source, else (a read-only install) in the
user's cache directory.  Numba keys a cached kernel on its own source file only,
so an edit to a helper it inlines from another module (``_math``, ``_blas``, ...)
would leave stale machine code in use; ``_Cache`` adds a hash of every source
file of this package to the key.

Options: ``error_model="numpy"`` so that a float division is a plain division
(Python's model adds a zero check that stops LLVM from vectorizing loops);
``fastmath={"contract"}`` lets LLVM fuse ``a * b + c`` into an FMA, and nothing
else: no ``nnan``/``ninf``, so NaN and inf propagate as in NumPy; ``nogil`` so
other Python threads run meanwhile.  Every function is compiled by ``PIPELINE``, which lets
LLVM use the CPU's widest vectors in it (``_wide``).
"""

import hashlib
import os
import sys
import threading

import numpy as np
from numba import njit, types
from numba.core import event
from numba.core.caching import FunctionCache

from ._blas import BLAS_INT
from ._wide import WideVectorsCompiler

__all__ = ["OPTIONS", "PIPELINE", "kernel", "helper"]

OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
PIPELINE = WideVectorsCompiler

_FLOATS = {np.dtype(np.float32): types.float32, np.dtype(np.float64): types.float64}


def _sources_hash():
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


_SOURCES = _sources_hash()


class _Cache(FunctionCache):
    """Numba's on-disk cache, with the hash of this package's sources in every entry's key."""

    def _index_key(self, sig, codegen):
        return super()._index_key(sig, codegen) + (_SOURCES,)


class _CompileNotice(event.Listener):
    """Says once per process, on stderr, that Numba is compiling fastrnn's kernels: only when it
    really compiles (an empty or stale cache), not when it loads them from its cache."""

    def __init__(self):
        self.said = False

    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if self.said or not module.startswith(__package__ + "."):
            return
        self.said = True
        try:
            where = dispatcher.stats.cache_path
        except Exception:  # only for the message
            where = "Numba's cache"
        print(
            f"fastrnn: compiling the Numba kernels for this machine (once: a few seconds per layer and dtype; "
            f"later runs load them from {where})",
            file=sys.stderr,
            flush=True,
        )

    def on_end(self, ev):
        pass


event.register("numba:compile", _CompileNotice())
_COMPILING = threading.RLock()  # one first compilation at a time (Numba compiles one at a time anyway)


def _jit(func, **options):
    dispatcher = njit(**OPTIONS, **options, pipeline_class=PIPELINE)(func)
    dispatcher._cache = _Cache(func)
    return dispatcher


def helper(func):
    """A compiled function called only from kernels (specialized with its caller)."""
    return _jit(func)


def inline_helper(func):
    """A helper that Numba inlines into its callers (a short loop nest called per row: as a call, its
    array arguments cost more than its work at small sizes)."""
    return _jit(func, inline="always")


def _arg_type(kind, float_type):
    """'f<ndim>': readonly float array (an input); 'o<ndim>': writable float array (an output
    or scratch buffer); 'w<ndim>': writable uint8 array (scratch bytes); 'i<ndim>': readonly
    intp array; 'n': an int; 'b': the BLAS marker (see ``_blas``).  Every array is C-contiguous."""
    if kind == "n":
        return types.intp
    if kind == "b":
        return types.int64 if BLAS_INT == np.int64 else types.int32
    if kind[0] == "o":
        return types.Array(float_type, int(kind[1:]), "C")
    if kind[0] == "w":
        return types.Array(types.uint8, int(kind[1:]), "C")
    dtype = {"f": float_type, "i": types.intp}[kind[0]]
    return types.Array(dtype, int(kind[1:]), "C", readonly=True)


class _PerDtype(dict):
    """dtype -> a dispatcher compiled for that dtype only, made on first lookup.

    Thread-safe first calls: each dtype gets a dispatcher of its own, compiled (or loaded
    from the cache) for its one signature and then closed to compilation *before* any
    thread can see it, so no dispatcher a thread may be calling ever has its compilation
    switched on or off.  (A single dispatcher toggled around ``compile`` let one thread
    switch compilation off under another's first call: "RuntimeError: compilation
    disabled".)  Closed, it converts writable arrays to the readonly signature instead of
    compiling a variant.  A lock makes concurrent first lookups compile once; the others
    wait and then take its dispatcher.
    """

    def __init__(self, func, kinds):
        super().__init__()
        self.py_func = func
        self.kinds = kinds
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __missing__(self, dtype):
        dtype = np.dtype(dtype)
        float_type = _FLOATS[dtype]  # KeyError for anything but float32/float64
        with _COMPILING:
            dispatcher = self.get(dtype)
            if dispatcher is None:
                dispatcher = _jit(self.py_func)
                dispatcher.compile(tuple(_arg_type(k, float_type) for k in self.kinds))
                dispatcher.disable_compile()
                self[dtype] = dispatcher
        return dispatcher

    def compile_all(self):
        """Compiles (or loads from the cache) both dtypes now."""
        for dtype in _FLOATS:
            self[dtype]

    def __repr__(self):
        return f"<fastrnn numba kernel {self.__name__}{self.kinds}>"


def kernel(*kinds):
    """Decorator: ``f = kernel('f3', 'f2', ...)(func)``; call as ``f[x.dtype](x, ...)``."""

    def decorate(func):
        return _PerDtype(func, kinds)

    return decorate
