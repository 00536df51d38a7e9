"""GEMM called straight from compiled loops, bound by symbol name.

How it wins its speed: ``gemm`` compiles to one direct call of a Fortran
``sgemm``/``dgemm``: no Python, no temporaries and no allocation per call, so a
time loop can call it T times at BLAS speed.  (Numba's ``np.dot`` would allocate
its result on every call.)

Which BLAS: NumPy's own when NumPy bundles one (the ``scipy-openblas64`` of the
NumPy wheels, ILP64), else SciPy's ``scipy.linalg.cython_blas`` (LP64).  NumPy's
is preferred because (a) it is the BLAS that ``numpy.matmul`` -- the user's other
code and the "BLAS floor" -- runs on, and the one SciPy bundles can be a different
OpenBLAS release (measured here: SciPy's 0.3.30 is ~20% slower than NumPy's 0.3.31
on the per-step float32 GEMMs), and (b) two OpenBLAS libraries mean two pools of
busy-waiting worker threads competing for the same cores.
``FASTRNN_NUMBA_BLAS=scipy`` forces SciPy's.

The kernels receive a marker ``bi = BLAS_INT(0)`` and pass it to ``gemm``: its
*type* (int64 for ILP64 NumPy, int32 for LP64 SciPy) selects the symbol and the
integer width at compile time, and, being part of every kernel's signature, keeps
Numba's on-disk cache from mixing code compiled for the two.

Caching: a Numba function that closes over a ctypes/cffi function pointer bakes the
address into its code and cannot be cached.  Instead ``gemm`` declares an *external*
function by a name of ours, and at import we tell LLVM's JIT linker that name's
address in this process (``llvmlite.binding.add_symbol``).  Cached machine code
refers to the name only, so it is valid in every process.

Row-major: ``gemm(bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)``
computes ``C = alpha op(A) @ op(B) + beta C`` on row-major matrices starting at
element offsets a0, b0, c0 of the arrays A, B, C (op = transpose where ``ta``/``tb``
is ``TRANS``), with leading dimensions (row strides, in elements) lda, ldb, ldc.
Fortran BLAS is column-major, so it is asked for ``C^T = op(B)^T op(A)^T``.  The
wrapper checks that every matrix lies inside its array and that the sizes fit the
BLAS integers (2**31 - 1 for an LP64 BLAS) before calling.
"""

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

__all__ = ["gemm", "NOTRANS", "TRANS", "BLAS_INT", "BLAS_NAME"]

NOTRANS = ord("N")
TRANS = ord("T")

# (BLAS integer type, float type) -> the symbol name the compiled code calls
_SYMBOLS = {
    (types.int64, types.float32): "fastrnn_numba_sgemm_ilp64",
    (types.int64, types.float64): "fastrnn_numba_dgemm_ilp64",
    (types.int32, types.float32): "fastrnn_numba_sgemm_lp64",
    (types.int32, types.float64): "fastrnn_numba_dgemm_lp64",
}


def _numpy_ilp64_gemm():
    """Addresses of sgemm/dgemm in the ILP64 OpenBLAS bundled with NumPy's wheels, or None."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    candidates = glob.glob(os.path.join(site, "numpy.libs", "*openblas64*")) + glob.glob(
        os.path.join(os.path.dirname(np.__file__), ".dylibs", "*openblas64*")
    )
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library, the same threads
        except OSError:
            continue
        for pattern in ("scipy_{}gemm_64_", "{}gemm_64_"):
            try:
                found = {p: getattr(lib, pattern.format(p)) for p in "sd"}
            except AttributeError:
                continue
            if _works_as_ilp64(found["d"]):
                return {p: ctypes.cast(f, ctypes.c_void_p).value for p, f in found.items()}
    return None


def _works_as_ilp64(dgemm):
    """Calls dgemm once through ctypes with 64-bit integers and checks the product."""
    i64, f64 = ctypes.c_int64, ctypes.c_double
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[5.0, 6.0], [7.0, 8.0]])
    c = np.zeros((2, 2))
    n, one, zero, trans = i64(2), f64(1.0), f64(0.0), ctypes.c_char(b"N")
    ptr = ctypes.POINTER(f64)
    dgemm.restype = None
    try:  # column-major c^T = b^T a^T, that is row-major c = a @ b
        dgemm(ctypes.byref(trans), ctypes.byref(trans), ctypes.byref(n), ctypes.byref(n), ctypes.byref(n),
              ctypes.byref(one), b.ctypes.data_as(ptr), ctypes.byref(n), a.ctypes.data_as(ptr), ctypes.byref(n),
              ctypes.byref(zero), c.ctypes.data_as(ptr), ctypes.byref(n))
    except Exception:  # pragma: no cover - a foreign library misbehaving
        return False
    return np.array_equal(c, a @ b)


def _bind():
    for p, ftype in (("s", types.float32), ("d", types.float64)):
        llvm.add_symbol(_SYMBOLS[types.int32, ftype], get_cython_function_address("scipy.linalg.cython_blas", p + "gemm"))
    if os.environ.get("FASTRNN_NUMBA_BLAS", "").strip().lower() != "scipy":
        found = _numpy_ilp64_gemm()
        if found is not None:
            for p, ftype in (("s", types.float32), ("d", types.float64)):
                llvm.add_symbol(_SYMBOLS[types.int64, ftype], found[p])
            return np.int64, "NumPy's bundled OpenBLAS (ILP64)"
    return np.int32, "scipy.linalg.cython_blas (LP64)"


BLAS_INT, BLAS_NAME = _bind()


def _int_max(bi):
    """The largest integer the BLAS selected by marker ``bi`` takes."""
    raise NotImplementedError  # only callable from compiled code


@overload(_int_max)
def _int_max_impl(bi):
    limit = 2**63 - 1 if bi == types.int64 else 2**31 - 1
    return lambda bi: limit


@njit(cache=True, nogil=True)
def _inside(array, offset, rows, cols, ld):
    """Whether a row-major rows x cols matrix at ``offset`` with row stride ``ld`` lies in ``array``."""
    return rows >= 1 and cols >= 1 and ld >= cols and offset >= 0 and offset + (rows - 1) * ld + cols <= array.size


@njit(cache=True, nogil=True)
def gemm(bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc):
    """Row-major ``C = alpha op(A) @ op(B) + beta C`` on sub-matrices; see the module docstring.

    Checks first that every matrix lies inside its array and that the sizes fit the BLAS
    integers, so no caller can make BLAS touch memory outside the arrays.
    """
    a_rows, a_cols = (M, K) if ta == NOTRANS else (K, M)
    b_rows, b_cols = (K, N) if tb == NOTRANS else (N, K)
    if not (_inside(A, a0, a_rows, a_cols, lda) and _inside(B, b0, b_rows, b_cols, ldb) and _inside(C, c0, M, N, ldc)):
        raise ValueError("gemm: a matrix does not lie inside its array")
    if max(M, N, K, lda, ldb, ldc) > _int_max(bi):
        raise ValueError("array too large for a 32-bit BLAS (a size exceeds 2**31 - 1); use the numpy backend")
    _fortran_gemm(bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)


@intrinsic
def _fortran_gemm(typingctx, bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc):
    """The call itself: swaps A and B for column-major BLAS and passes every argument by pointer."""
    if not all(isinstance(a, types.Array) for a in (A, B, C)):
        return None
    key = (bi, C.dtype)
    if key not in _SYMBOLS or A.dtype != C.dtype or B.dtype != C.dtype or not C.mutable:
        return None
    if not all(isinstance(i, types.Integer) for i in (ta, tb, M, N, K, a0, lda, b0, ldb, c0, ldc)):
        return None
    dtype = C.dtype
    signature = types.void(bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)

    def codegen(context, builder, sig, args):
        _, ta_, tb_, M_, N_, K_, alpha_, A_, a0_, lda_, B_, b0_, ldb_, beta_, C_, c0_, ldc_ = args
        i8, iblas = ir.IntType(8), ir.IntType(bi.bitwidth)
        fp = context.get_value_type(dtype)
        p8, pint, pfp = i8.as_pointer(), iblas.as_pointer(), fp.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [p8, p8, pint, pint, pint, pfp, pfp, pint, pfp, pint, pfp, pfp, pint])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[key])

        def slot(value, ty):  # Fortran takes every argument by pointer
            if value.type.width > ty.width:
                value = builder.trunc(value, ty)
            elif value.type.width < ty.width:
                value = builder.sext(value, ty)
            return cgutils.alloca_once_value(builder, value)

        def scalar(value, ty):
            return cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype))

        def start(array, aty, offset):
            data = context.make_array(aty)(context, builder, array).data
            return builder.gep(data, [offset])

        builder.call(
            fn,
            [
                slot(tb_, i8), slot(ta_, i8), slot(N_, iblas), slot(M_, iblas), slot(K_, iblas),
                scalar(alpha_, sig.args[6]),
                start(B_, B, b0_), slot(ldb_, iblas),
                start(A_, A, a0_), slot(lda_, iblas),
                scalar(beta_, sig.args[13]),
                start(C_, C, c0_), slot(ldc_, iblas),
            ],
        )
        return context.get_dummy_value()

    return signature, codegen
