"""The OpenBLAS that NumPy's wheel bundles, as the compiled backends and the team find it.

Both backends call NumPy's own OpenBLAS (the BLAS of ``numpy.matmul``, the oracle and the floor) and
the team asks it how many threads it may use; all three look its symbols up here. Only a library
NumPy has loaded already is opened (``RTLD_NOLOAD``), never a second copy with its own threads.
"""

import ctypes
import glob
import os

__all__ = ["symbol_addresses"]


def _loaded_libraries():
    import numpy

    root = os.path.dirname(numpy.__file__)
    paths = glob.glob(os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*"))
    paths += glob.glob(os.path.join(root, ".dylibs", "*openblas*"))
    for path in sorted(paths):
        try:
            yield ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
        except OSError:
            continue


def symbol_addresses(*alternatives):
    """The addresses of the first tuple of names in ``alternatives`` that one of NumPy's loaded OpenBLAS
    libraries exports in full (a tuple of ints), or None."""
    for lib in _loaded_libraries():
        for names in alternatives:
            found = [getattr(lib, name, None) for name in names]
            if all(f is not None for f in found):
                return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in found)
    return None
