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

Above OpenBLAS's one-thread line (m*n*k > SERIAL_GEMM) a product goes to fastrnn._native's team first
(``fr_product``, as the Cython backend's ``mm``), so that the compiled layers never wake BLAS's threads,
which spin ~0.1 s after a call and would take the team's core from the next layer; BLAS runs it when the
team cannot or should not (no extension, ``FASTRNN_NATIVE=0``, alpha not 1 or beta not 0/1, and with BLAS
limited to one thread the float64 weight gradients of a large result: see product.h).  It streams B's
panels instead when B is resident (packed once for a loop: ``resident.h``).

Row-major: ``gemm(bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc)``
computes ``C = alpha op(A) @ op(B) + beta C`` on row-major matrices starting at
element offsets a0, b0, c0 of the arrays A, B, C (op = transpose where ``ta``/``tb``
is ``TRANS``), with leading dimensions (row strides, in elements) lda, ldb, ldc.
Fortran BLAS is column-major, so it is asked for ``C^T = op(B)^T op(A)^T``.  The
generated code checks that every matrix lies inside its array and that the sizes
fit the BLAS integers (2**31 - 1 for an LP64 BLAS) before calling.
"""

import ctypes
import os

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["gemm", "NOTRANS", "TRANS", "BLAS_INT", "BLAS_NAME"]

NOTRANS = ord("N")
TRANS = ord("T")
# OpenBLAS runs a product on one thread up to m*n*k = 65536 * 4 (its GEMM_MULTITHREAD_THRESHOLD), on all
# its threads above; above that line gemm runs the product on fastrnn._native's team when it can.
SERIAL_GEMM = 65536.0 * 4

# (BLAS integer type, float type) -> the symbol name the compiled code calls
_SYMBOLS = {
    (types.int64, types.float32): "fastrnn_numba_sgemm_ilp64",
    (types.int64, types.float64): "fastrnn_numba_dgemm_ilp64",
    (types.int32, types.float32): "fastrnn_numba_sgemm_lp64",
    (types.int32, types.float64): "fastrnn_numba_dgemm_lp64",
}


def _numpy_ilp64_gemm():
    """Addresses of sgemm/dgemm in the ILP64 OpenBLAS bundled with NumPy's wheels, checked with one
    product, or None."""
    from .._numpy_blas import symbol_addresses

    found = symbol_addresses(("scipy_sgemm_64_", "scipy_dgemm_64_"), ("sgemm_64_", "dgemm_64_"))
    if found is None:
        return None
    dgemm = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(found[1])
    return {"s": found[0], "d": found[1]} if _works_as_ilp64(dgemm) else None


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
    """Binds the symbols of the BLAS to use; returns its integer type and its name.

    Only the chosen one is bound: kernels compiled for the other carry the other marker
    type in their signature, so they are never looked up (and importing SciPy's, 0.15 s,
    is skipped when NumPy's is used).
    """
    if os.environ.get("FASTRNN_NUMBA_BLAS", "").strip().lower() != "scipy":
        found = _numpy_ilp64_gemm()
        if found is not None:
            for p, ftype in (("s", types.float32), ("d", types.float64)):
                llvm.add_symbol(_SYMBOLS[types.int64, ftype], found[p])
            return np.int64, "NumPy's bundled OpenBLAS (ILP64)"
    for p, ftype in (("s", types.float32), ("d", types.float64)):
        llvm.add_symbol(_SYMBOLS[types.int32, ftype], get_cython_function_address("scipy.linalg.cython_blas", p + "gemm"))
    return np.int32, "scipy.linalg.cython_blas (LP64)"


BLAS_INT, BLAS_NAME = _bind()


@intrinsic
def gemm(typingctx, bi, ta, tb, M, N, K, alpha, A, a0, lda, B, b0, ldb, beta, C, c0, ldc):
    """Row-major ``C = alpha op(A) @ op(B) + beta C`` on sub-matrices; see the module docstring.

    The generated code first checks that every matrix lies inside its array and that the
    sizes fit the BLAS integers, and raises ValueError otherwise: no caller can make BLAS
    touch memory outside the arrays.  (An intrinsic rather than a jitted wrapper: Numba
    would compile such a wrapper once per combination of argument types, which doubled
    the kernels' compile time.)
    """
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
        names = ("ta", "tb", "M", "N", "K", "a0", "lda", "b0", "ldb", "c0", "ldc")
        values = (ta_, tb_, M_, N_, K_, a0_, lda_, b0_, ldb_, c0_, ldc_)
        int_types = (ta, tb, M, N, K, a0, lda, b0, ldb, c0, ldc)
        n = {k: context.cast(builder, v, t, types.intp) for k, v, t in zip(names, values, int_types)}  # as intp
        arrays = {k: context.make_array(t)(context, builder, v) for k, t, v in (("A", A, A_), ("B", B, B_), ("C", C, C_))}
        intp = context.get_value_type(types.intp)

        def const(v):
            return ir.Constant(intp, v)

        def inside(array, offset, rows, cols, ld):  # rows x cols, row stride ld, from offset: in array?
            end = builder.add(builder.add(offset, builder.mul(builder.sub(rows, const(1)), ld)), cols)
            checks = (
                builder.icmp_signed(">=", rows, const(1)), builder.icmp_signed(">=", cols, const(1)),
                builder.icmp_signed(">=", ld, cols), builder.icmp_signed(">=", offset, const(0)),
                builder.icmp_signed("<=", end, array.nitems),
            )
            ok = checks[0]
            for c in checks[1:]:
                ok = builder.and_(ok, c)
            return ok

        a_plain = builder.icmp_signed("==", n["ta"], const(NOTRANS))
        b_plain = builder.icmp_signed("==", n["tb"], const(NOTRANS))
        ok = builder.and_(
            inside(arrays["A"], n["a0"], builder.select(a_plain, n["M"], n["K"]), builder.select(a_plain, n["K"], n["M"]), n["lda"]),
            inside(arrays["B"], n["b0"], builder.select(b_plain, n["K"], n["N"]), builder.select(b_plain, n["N"], n["K"]), n["ldb"]),
        )
        ok = builder.and_(ok, inside(arrays["C"], n["c0"], n["M"], n["N"], n["ldc"]))
        with builder.if_then(builder.not_(ok), likely=False):
            context.call_conv.return_user_exc(builder, ValueError, ("gemm: a matrix does not lie inside its array",))
        if bi.bitwidth < 64:
            limit = const(2 ** (bi.bitwidth - 1) - 1)
            fits = builder.icmp_signed("<=", n["M"], limit)
            for k in ("N", "K", "lda", "ldb", "ldc"):
                fits = builder.and_(fits, builder.icmp_signed("<=", n[k], limit))
            with builder.if_then(builder.not_(fits), likely=False):
                context.call_conv.return_user_exc(
                    builder, ValueError, ("array too large for a 32-bit BLAS (a size exceeds 2**31 - 1); use the numpy backend",)
                )

        # Above the serial line (as the Cython backend's mm): on the team (fastrnn._native's product.h)
        # first, so that a loop of steps and affine layers (CaptioningRNN.sample) uses one pool of threads;
        # it says "not done" (no extension, FASTRNN_NATIVE=0, one of the few it leaves to BLAS on one thread,
        # no work buffer) and BLAS runs it.
        from ._packed import _NAMES as native_names  # registers the product's symbols before any linking

        f64, i32 = ir.DoubleType(), ir.IntType(32)
        alpha_f = context.cast(builder, alpha_, sig.args[6], types.float64)
        beta_f = context.cast(builder, beta_, sig.args[13], types.float64)
        mnk = builder.fmul(builder.fmul(builder.sitofp(n["M"], f64), builder.sitofp(n["N"], f64)),
                           builder.sitofp(n["K"], f64))
        big = builder.and_(builder.fcmp_ordered(">", mnk, ir.Constant(f64, SERIAL_GEMM)),
                           builder.fcmp_ordered("==", alpha_f, ir.Constant(f64, 1.0)))
        beta_one = builder.fcmp_ordered("==", beta_f, ir.Constant(f64, 1.0))
        big = builder.and_(big, builder.or_(beta_one, builder.fcmp_ordered("==", beta_f, ir.Constant(f64, 0.0))))
        done = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(1), 0))
        pfp = context.get_value_type(dtype).as_pointer()
        with builder.if_then(big):
            args = [n["M"], n["N"], n["K"], builder.gep(arrays["A"].data, [n["a0"]]), n["lda"],
                    builder.zext(builder.icmp_signed("==", n["ta"], const(TRANS)), i32),
                    builder.gep(arrays["B"].data, [n["b0"]]), n["ldb"],
                    builder.zext(builder.icmp_signed("==", n["tb"], const(TRANS)), i32),
                    builder.gep(arrays["C"].data, [n["c0"]]), n["ldc"], builder.zext(beta_one, i32)]
            types_ = [intp, intp, intp, pfp, intp, i32, pfp, intp, i32, pfp, intp, i32]
            name = "fr_product_s" if dtype == types.float32 else "fr_product_d"
            pfn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, types_), native_names[name])
            status = builder.call(pfn, args)
            builder.store(builder.icmp_signed("==", status, ir.Constant(i32, 0)), done)
        with builder.if_then(builder.not_(builder.load(done))):
            _call_blas(context, builder, sig, bi, key, dtype, n, arrays, alpha_, beta_)
        return context.get_dummy_value()

    return signature, codegen


def _call_blas(context, builder, sig, bi, key, dtype, n, arrays, alpha_, beta_):
    """The Fortran call of gemm's codegen (its arguments checked)."""
    i8, iblas = ir.IntType(8), ir.IntType(bi.bitwidth)
    fp = context.get_value_type(dtype)
    p8, pint, pfp = i8.as_pointer(), iblas.as_pointer(), fp.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [p8, p8, pint, pint, pint, pfp, pfp, pint, pfp, pint, pfp, pfp, pint])
    fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[key])

    def slot(value, ty):  # Fortran takes every argument by pointer; value is an intp
        return cgutils.alloca_once_value(builder, builder.trunc(value, ty) if ty.width < 64 else value)

    def scalar(value, ty):
        return cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype))

    def start(name, offset):
        return builder.gep(arrays[name].data, [offset])

    builder.call(
        fn,
        [
            slot(n["tb"], i8), slot(n["ta"], i8), slot(n["N"], iblas), slot(n["M"], iblas), slot(n["K"], iblas),
            scalar(alpha_, sig.args[6]),
            start("B", n["b0"]), slot(n["ldb"], iblas),
            start("A", n["a0"]), slot(n["lda"], iblas),
            scalar(beta_, sig.args[13]),
            start("C", n["c0"]), slot(n["ldc"], iblas),
        ],
    )
