"""GEMM called straight from compiled loops: SciPy's BLAS, bound by symbol name.

How it wins its speed: ``gemm`` compiles to one direct call of ``sgemm``/``dgemm``
from ``scipy.linalg.cython_blas`` (the BLAS SciPy ships, with its own threads).
There is no Python, no temporaries and no allocation per call, so a time loop
can call it T times at BLAS speed.  Numba's ``np.dot`` would allocate its result
every call.

Caching: a Numba function that closes over a ctypes/cffi function pointer bakes
the pointer's address into its code and cannot be cached.  Instead, ``_gemm_call``
declares an *external* function by a name of ours, and at import we tell LLVM's
JIT linker that name's address in this process (``llvmlite.binding.add_symbol``).
Cached machine code refers to the name only, so it is valid in every process.

Row-major: ``gemm(ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)``
computes ``C = alpha op(A) @ op(B) + beta C`` on row-major matrices that start at
element offsets a0, b0, c0 of the arrays A, B, C (op = transpose when ``ta``/``tb``
is ``TRANS``), with leading dimensions (row strides, in elements) lda, ldb, ldc.
Fortran BLAS is column-major, so it is asked for ``C^T = op(B)^T op(A)^T``.
The caller keeps every matrix inside its array; BLAS takes 32-bit ints, which
``blas_int`` checks.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["gemm", "NOTRANS", "TRANS", "blas_int"]

NOTRANS = ord("N")
TRANS = ord("T")

_SYMBOLS = {types.float32: "fastrnn_numba_sgemm", types.float64: "fastrnn_numba_dgemm"}
for _dtype, _name in _SYMBOLS.items():
    llvm.add_symbol(_name, get_cython_function_address("scipy.linalg.cython_blas", _name[-5:]))

_INT32_MAX = 2**31 - 1


@njit(cache=True)
def blas_int(n):
    """``n``, after checking that it fits BLAS's 32-bit integers."""
    if n > _INT32_MAX:
        raise ValueError("array too large for 32-bit BLAS (a dimension exceeds 2**31 - 1); use the numpy backend")
    return n


@intrinsic
def gemm(typingctx, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc):
    """Row-major GEMM on sub-matrices of C-contiguous arrays; see the module docstring."""
    arrays = (A, B, C)
    if not all(isinstance(a, types.Array) for a in arrays):
        return None
    dtype = C.dtype
    if dtype not in _SYMBOLS or any(a.dtype != dtype for a in arrays) or not C.mutable:
        return None
    ints = (ta, tb, M, N, K, a0, lda, b0, ldb, c0, ldc)
    if not all(isinstance(i, types.Integer) for i in ints):
        return None
    signature = types.void(ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)

    def codegen(context, builder, sig, args):
        ta_, tb_, M_, N_, K_, alpha_, A_, a0_, lda_, B_, b0_, ldb_, beta_, C_, c0_, ldc_ = args
        i8, i32 = ir.IntType(8), ir.IntType(32)
        fp = context.get_value_type(dtype)
        p8, p32, pfp = i8.as_pointer(), i32.as_pointer(), fp.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [p8, p8, p32, p32, p32, pfp, pfp, p32, pfp, p32, pfp, pfp, p32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[dtype])

        def slot(value, ty):  # BLAS takes every argument by pointer
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
                slot(tb_, i8), slot(ta_, i8), slot(N_, i32), slot(M_, i32), slot(K_, i32),
                scalar(alpha_, sig.args[5]),
                start(B_, B, b0_), slot(ldb_, i32),
                start(A_, A, a0_), slot(lda_, i32),
                scalar(beta_, sig.args[12]),
                start(C_, C, c0_), slot(ldc_, i32),
            ],
        )
        return context.get_dummy_value()

    return signature, codegen
