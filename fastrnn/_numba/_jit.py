"""How the kernels are compiled: options, and one signature per float dtype.

Every kernel is compiled for exactly one signature per dtype, with its input
arrays typed *readonly* and C-contiguous.  Numba converts a writable array to a
readonly one cheaply, so a readonly input (NumPy's ``asarray`` passes readonly
arrays through) reuses the same machine code instead of compiling a variant per
combination of flags.  Compilation happens on the first call in that dtype.

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
other Python threads run meanwhile.
"""

import hashlib
import os

import numpy as np
from numba import njit, types
from numba.core.caching import FunctionCache

from ._blas import BLAS_INT

__all__ = ["OPTIONS", "kernel", "helper"]

OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})

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


def _jit(func):
    dispatcher = njit(**OPTIONS)(func)
    dispatcher._cache = _Cache(func)
    return dispatcher


def helper(func):
    """A compiled function called only from kernels (specialized with its caller)."""
    return _jit(func)


def _arg_type(kind, float_type):
    """'f<ndim>': readonly float array (an input); 'o<ndim>': writable float array (an output
    or scratch buffer); 'i<ndim>': readonly intp array; 'n': an int; 'b': the BLAS marker
    (see ``_blas``).  Every array is C-contiguous."""
    if kind == "n":
        return types.intp
    if kind == "b":
        return types.int64 if BLAS_INT == np.int64 else types.int32
    if kind[0] == "o":
        return types.Array(float_type, int(kind[1:]), "C")
    dtype = {"f": float_type, "i": types.intp}[kind[0]]
    return types.Array(dtype, int(kind[1:]), "C", readonly=True)


class _PerDtype(dict):
    """dtype -> the dispatcher, compiled for that dtype on first lookup."""

    def __init__(self, func, kinds):
        super().__init__()
        self.dispatcher = _jit(func)
        self.kinds = kinds
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __missing__(self, dtype):
        dtype = np.dtype(dtype)
        float_type = _FLOATS[dtype]  # KeyError for anything but float32/float64
        # Compiling is disabled between these explicit compilations: otherwise a call with a
        # writable array would compile a writable variant instead of converting to readonly.
        self.dispatcher.disable_compile(False)
        try:
            self.dispatcher.compile(tuple(_arg_type(k, float_type) for k in self.kinds))
        finally:
            self.dispatcher.disable_compile(True)
        self[dtype] = self.dispatcher
        return self.dispatcher

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
