"""fastrnn._native's kernels and team, called from compiled Numba code.

How it wins its speed: a sequence layer's pass runs as one job of the team of fastrnn._native
(fastrnn/_native/team.h): each thread owns a slab of hidden units for all T steps and meets the others
at one barrier per step, and every product goes to the shared packed-panel micro-kernels (packed.h):
per step by the recurrent weights packed once per call, and once per call the input projection, dX,
dWx and dWh, so no BLAS thread is woken inside a pass.  The team's threads run a *task*: a ``@cfunc``
``void(arg, sync, tid, nth)`` compiled by Numba (see ``_team``), whose arrays travel in an int64 block
of sizes and addresses (``arg``) that the launching kernel builds.

Binding: as with BLAS (``_blas``), the compiled code calls the C functions by names of ours that are
given their addresses in this process (``llvmlite.binding.add_symbol``), so cached machine code
stays valid in every process.  A task's own address is a run-time argument of the kernel that
launches it (``Task.address``), never baked into cached code.

No exception may leave a task (it runs on threads without Python): the intrinsics here check nothing,
so the launching kernels check every size before they start the team.
"""

import ctypes
import os
import threading

import llvmlite.binding as llvm
from llvmlite import ir
from numba import carray, types  # noqa: F401  (carray: used by the tasks)
from numba.core import cgutils
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from ._jit import OPTIONS, PIPELINE, _Cache

__all__ = ["LAYOUT", "UNAVAILABLE", "pmm", "pmm_slab", "pmm_part", "pgemm", "pgemm_prev", "ppack", "sync_arrive",
           "sync_wait", "team_run", "words", "pointer", "Task", "task"]

_NAMES = {name: f"fastrnn_numba_{name}" for name in ("fr_mm_s", "fr_mm_d", "fr_gemm_s", "fr_gemm_d", "fr_pack_s",
                                                     "fr_pack_d", "fr_product_s", "fr_product_d", "fr_resident_product_s",
                                                     "fr_resident_product_d", "fr_team_run",
                                                     "fr_sync_arrive", "fr_sync_wait", "fr_mm_part_s",
                                                     "fr_mm_part_d", "fr_gemm_prev_s", "fr_gemm_prev_d")}
try:  # the C extension is built with the package; without it the kernels call BLAS at every step
    from .. import _native

    LAYOUT, UNAVAILABLE = _native.layout(), None
    _SYMBOLS = _native.symbols()
except ImportError as exc:
    LAYOUT, UNAVAILABLE, _SYMBOLS = None, f"fastrnn._native is not importable ({exc})", {}
# fr_product_s and fr_resident_product_s/d (_blas's gemm and the affine layer call them first) are linked into
# kernels that run without the team too (without the extension, or with FASTRNN_NATIVE=0: BLAS only); their
# names then get a stand-in that returns -1 ("not done": the caller goes on to BLAS or its job).  Cached
# code names them only, so it stays valid.
_NO_PRODUCT = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: -1)
if LAYOUT is None or os.environ.get("FASTRNN_NATIVE", "").strip() == "0":
    _SYMBOLS = {**_SYMBOLS, **{name: ctypes.cast(_NO_PRODUCT, ctypes.c_void_p).value
                               for name in ("fr_product_s", "fr_product_d", "fr_resident_product_s",
                                            "fr_resident_product_d")}}
for _name, _bound in _NAMES.items():
    if _name in _SYMBOLS:
        llvm.add_symbol(_bound, _SYMBOLS[_name])

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_VOIDP = ir.IntType(8).as_pointer()


def _declare(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), _NAMES[name])


def _data(context, builder, arrty, arr, offset):
    """Pointer to element ``offset`` (an intp) of array ``arr``."""
    return builder.gep(context.make_array(arrty)(context, builder, arr).data, [offset])


def _intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _mm_call(context, builder, dtype, args, tys, ub0, ub1, reverse, next_ub):
    """Emits the call of fr_mm_s/d for ``args`` = (M, K, A, a0, lda, P, H, gates, <slab>, C, c0, ldc, beta)
    of types ``tys`` (the slab's own values in ub0, ub1, reverse and next_ub, as i64, i64, i32, i64)."""
    M_, K_, A_, a0_, lda_, P_, H_, g_ = args[:8]
    C_, c0_, ldc_, beta_ = args[-4:]
    n = [_intp(context, builder, v, t) for v, t in
         ((M_, tys[0]), (K_, tys[1]), (lda_, tys[4]), (H_, tys[6]), (g_, tys[7]), (ldc_, tys[-2]))]
    fp = context.get_value_type(dtype).as_pointer()
    name = "fr_mm_s" if dtype == types.float32 else "fr_mm_d"
    fn = _declare(builder, name, ir.VoidType(),
                  [_I64, _I64, fp, _I64, fp, _I64, _I64, _I64, _I64, fp, _I64, _I32, _I32, _I64])
    builder.call(fn, [n[0], n[1], _data(context, builder, tys[2], A_, _intp(context, builder, a0_, tys[3])), n[2],
                      _data(context, builder, tys[5], P_, ir.Constant(_I64, 0)), n[3], n[4], ub0, ub1,
                      _data(context, builder, tys[-4], C_, _intp(context, builder, c0_, tys[-3])), n[5],
                      builder.trunc(_intp(context, builder, beta_, tys[-1]), _I32), reverse, next_ub])
    return context.get_dummy_value()


def _mm_types_ok(A, P, C):
    return (all(isinstance(a, types.Array) for a in (A, P, C)) and A.dtype == P.dtype == C.dtype
            and C.dtype in (types.float32, types.float64))


@intrinsic
def pmm(typingctx, M, K, A, a0, lda, P, H, gates, ub, C, c0, ldc, beta, next_ub):
    """C[c0 + (0:M) * ldc, columns of unit block ub of every gate] (+)= A[a0 + ...] (M, K) @ panels
    (ub, *) of the packed P; beta 0 overwrites, 1 accumulates.  next_ub: the unit block of the next pmm
    on P (its first block is fetched meanwhile, see mm in packed_template.h), or -1.  Unchecked: see
    the module docstring."""
    if not _mm_types_ok(A, P, C):
        return None
    sig = types.void(M, K, A, a0, lda, P, H, gates, ub, C, c0, ldc, beta, next_ub)

    def codegen(context, builder, signature, args):
        ub0 = _intp(context, builder, args[8], signature.args[8])
        return _mm_call(context, builder, C.dtype, args[:-1], signature.args[:-1], ub0,
                        builder.add(ub0, ir.Constant(_I64, 1)), ir.Constant(_I32, 0),
                        _intp(context, builder, args[-1], signature.args[-1]))

    return sig, codegen


@intrinsic
def pmm_slab(typingctx, M, K, A, a0, lda, P, H, ub0, ub1, t, C, c0, ldc, beta):
    """C[c0 + (0:M) * ldc, unit blocks ub0..ub1-1 of one gate block] (+)= A[a0 + ...] (M, K) @ panels
    (ub, 0) of the packed P, in one call: the backward's dA_t Wh^T, whose A is wider than the slab's
    columns, so that fr_mm can walk a large one by block rows (packed_template.h); in reverse at odd
    steps t, as ``_unit_block`` orders the forward's blocks.  Unchecked: see the module docstring."""
    if not _mm_types_ok(A, P, C):
        return None
    sig = types.void(M, K, A, a0, lda, P, H, ub0, ub1, t, C, c0, ldc, beta)

    def codegen(context, builder, signature, args):
        tys = signature.args
        one = context.get_constant(tys[9], 1)
        odd = builder.trunc(_intp(context, builder, builder.and_(args[9], one), tys[9]), _I32)
        # the arguments as pmm's, with gates = 1 in the place of ub0
        return _mm_call(context, builder, C.dtype, list(args[:7]) + [ir.Constant(_I64, 1)] + list(args[10:]),
                        list(tys[:7]) + [types.int64] + list(tys[10:]), _intp(context, builder, args[7], tys[7]),
                        _intp(context, builder, args[8], tys[8]), odd, ir.Constant(_I64, -1))

    return sig, codegen


@intrinsic
def pmm_part(typingctx, M, K, k_lo, k_hi, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse):
    """The part of a pmm/pmm_slab product over rows k_lo:k_hi of the panels (K rows each) and columns
    k_lo:k_hi of A (fr_mm_part_s/d): C[c0 + ..., unit blocks ub0..ub1-1 of every gate] (+)= A[a0 + ...]
    (M, k_lo:k_hi) @ those rows.  Unchecked: see the module docstring."""
    if not _mm_types_ok(A, P, C):
        return None
    sig = types.void(M, K, k_lo, k_hi, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse)

    def codegen(context, builder, signature, args):
        tys = signature.args
        n = [_intp(context, builder, args[i], tys[i]) for i in (0, 1, 2, 3, 6, 8, 9, 10, 11, 14)]
        fp = context.get_value_type(C.dtype).as_pointer()
        name = "fr_mm_part_s" if C.dtype == types.float32 else "fr_mm_part_d"
        fn = _declare(builder, name, ir.VoidType(),
                      [_I64, _I64, _I64, _I64, fp, _I64, fp, _I64, _I64, _I64, _I64, fp, _I64, _I32, _I32])
        i32 = [builder.trunc(_intp(context, builder, args[i], tys[i]), _I32) for i in (15, 16)]
        builder.call(fn, n[:4] + [_data(context, builder, tys[4], args[4], _intp(context, builder, args[5], tys[5])),
                                  n[4], _data(context, builder, tys[7], args[7], ir.Constant(_I64, 0))] + n[5:9]
                     + [_data(context, builder, tys[12], args[12], _intp(context, builder, args[13], tys[13])), n[9]]
                     + i32)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def pgemm(typingctx, M, K, A, a0, lda, at, B, b0, ldb, bt, H, gates, u0, u1, C, c0, ldc, beta, work, w0, work_bytes):
    """C[c0 + ..., columns g*H + [u0, u1) of every gate g] (+)= op(A) op(B)[:, those columns], op(X) = X or
    X^T (at, bt); A, B, C from element offsets a0, b0, c0; ``work`` a uint8 array (from byte w0, work_bytes
    bytes).  Returns 0, or -1 when a bigger work buffer could not be allocated (see packed.h's gemm)."""
    if not all(isinstance(a, types.Array) for a in (A, B, C, work)) or not (A.dtype == B.dtype == C.dtype):
        return None
    if C.dtype not in (types.float32, types.float64):
        return None
    name = "fr_gemm_s" if C.dtype == types.float32 else "fr_gemm_d"
    sig = types.int32(M, K, A, a0, lda, at, B, b0, ldb, bt, H, gates, u0, u1, C, c0, ldc, beta, work, w0, work_bytes)

    def codegen(context, builder, signature, args):
        (M_, K_, A_, a0_, lda_, at_, B_, b0_, ldb_, bt_, H_, g_, u0_, u1_, C_, c0_, ldc_, beta_, W_, w0_, wb_) = args
        t = signature.args

        def n(i, v):
            return _intp(context, builder, v, t[i])

        fp = context.get_value_type(C.dtype).as_pointer()
        fn = _declare(builder, name, _I32, [_I64, _I64, fp, _I64, _I32, fp, _I64, _I32, _I64, _I64, _I64, _I64, fp,
                                            _I64, _I32, _VOIDP, _I64])
        wptr = builder.bitcast(_data(context, builder, work, W_, n(19, w0_)), _VOIDP)
        return builder.call(fn, [n(0, M_), n(1, K_), _data(context, builder, A, A_, n(3, a0_)), n(4, lda_),
                                 builder.trunc(n(5, at_), _I32), _data(context, builder, B, B_, n(7, b0_)), n(8, ldb_),
                                 builder.trunc(n(9, bt_), _I32), n(10, H_), n(11, g_), n(12, u0_), n(13, u1_),
                                 _data(context, builder, C, C_, n(15, c0_)), n(16, ldc_),
                                 builder.trunc(n(17, beta_), _I32), wptr, n(20, wb_)])

    return sig, codegen


@intrinsic
def pgemm_prev(typingctx, M, K, h, h0, lda, period, B, b0, ldb, H, gates, u0, u1, C, c0, ldc, beta, work, w0,
               work_bytes):
    """pgemm with op(A) = Hprev^T, Hprev's rows read from h0 and h where they lie (row n*period is h0's row n,
    row n*period + t h's row n*period + t - 1; see packed.h's fr_gemm_prev_s), op(B) = B."""
    if not all(isinstance(a, types.Array) for a in (h, h0, B, C, work)) \
            or not (h.dtype == h0.dtype == B.dtype == C.dtype):
        return None
    if C.dtype not in (types.float32, types.float64):
        return None
    name = "fr_gemm_prev_s" if C.dtype == types.float32 else "fr_gemm_prev_d"
    sig = types.int32(M, K, h, h0, lda, period, B, b0, ldb, H, gates, u0, u1, C, c0, ldc, beta, work, w0, work_bytes)

    def codegen(context, builder, signature, args):
        (M_, K_, h_, h0_, lda_, per_, B_, b0_, ldb_, H_, g_, u0_, u1_, C_, c0_, ldc_, beta_, W_, w0_, wb_) = args
        t = signature.args

        def n(i, v):
            return _intp(context, builder, v, t[i])

        fp = context.get_value_type(C.dtype).as_pointer()
        fn = _declare(builder, name, _I32, [_I64, _I64, fp, fp, _I64, _I64, fp, _I64, _I64, _I64, _I64, _I64, fp,
                                            _I64, _I32, _VOIDP, _I64])
        zero = context.get_constant(types.intp, 0)
        wptr = builder.bitcast(_data(context, builder, work, W_, n(18, w0_)), _VOIDP)
        return builder.call(fn, [n(0, M_), n(1, K_), _data(context, builder, h, h_, zero),
                                 _data(context, builder, h0, h0_, zero), n(4, lda_), n(5, per_),
                                 _data(context, builder, B, B_, n(7, b0_)), n(8, ldb_), n(9, H_), n(10, g_),
                                 n(11, u0_), n(12, u1_), _data(context, builder, C, C_, n(14, c0_)), n(15, ldc_),
                                 builder.trunc(n(16, beta_), _I32), wptr, n(19, wb_)])

    return sig, codegen


@intrinsic
def resident_product(typingctx, M, N, K, A, B, C, bias):
    """C (M, N) = A (M, K) B (K, N) + bias, all C-contiguous, by B's resident panels (resident.h): returns 0,
    or -1 (C untouched) when B is not resident on this thread."""
    if not all(isinstance(a, types.Array) for a in (A, B, C, bias)) or not (A.dtype == B.dtype == C.dtype == bias.dtype):
        return None
    if C.dtype not in (types.float32, types.float64):
        return None
    name = "fr_resident_product_s" if C.dtype == types.float32 else "fr_resident_product_d"
    sig = types.int32(M, N, K, A, B, C, bias)

    def codegen(context, builder, signature, args):
        M_, N_, K_, A_, B_, C_, b_ = args
        t = signature.args
        m, n, k = (_intp(context, builder, v, t[i]) for i, v in enumerate((M_, N_, K_)))
        fp = context.get_value_type(C.dtype).as_pointer()
        zero, zero32 = ir.Constant(_I64, 0), ir.Constant(_I32, 0)
        fn = _declare(builder, name, _I32, [_I64, _I64, _I64, fp, _I64, _I32, fp, _I64, _I32, fp, _I64, _I32, fp])
        return builder.call(fn, [m, n, k, _data(context, builder, A, A_, zero), k, zero32,
                                 _data(context, builder, B, B_, zero), n, zero32, _data(context, builder, C, C_, zero),
                                 n, zero32, _data(context, builder, bias, b_, zero)])

    return sig, codegen


@intrinsic
def ppack(typingctx, K, H, gates, B, ldb, trans, P, ub0, ub1):
    """Packs panels (ub, *) for ub in [ub0, ub1) of B (trans: of B^T) into P (packed.h's layout)."""
    if not (isinstance(B, types.Array) and isinstance(P, types.Array) and B.dtype == P.dtype):
        return None
    if P.dtype not in (types.float32, types.float64):
        return None
    name = "fr_pack_s" if P.dtype == types.float32 else "fr_pack_d"
    sig = types.void(K, H, gates, B, ldb, trans, P, ub0, ub1)

    def codegen(context, builder, signature, args):
        K_, H_, g_, B_, ldb_, tr_, P_, u0_, u1_ = args
        tys = signature.args
        fp = context.get_value_type(P.dtype).as_pointer()
        fn = _declare(builder, name, ir.VoidType(), [_I64, _I64, _I64, fp, _I64, _I32, fp, _I64, _I64])
        zero = ir.Constant(_I64, 0)
        builder.call(fn, [_intp(context, builder, K_, tys[0]), _intp(context, builder, H_, tys[1]),
                          _intp(context, builder, g_, tys[2]), _data(context, builder, B, B_, zero),
                          _intp(context, builder, ldb_, tys[4]),
                          builder.trunc(_intp(context, builder, tr_, tys[5]), _I32), _data(context, builder, P, P_, zero),
                          _intp(context, builder, u0_, tys[7]), _intp(context, builder, u1_, tys[8])])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sync_arrive(typingctx, s):
    """The first half of the team's barrier (fr_sync_arrive, team.h): this thread's writes are published;
    returns the token for sync_wait, which must come before the thread arrives at any barrier again."""
    if s != types.voidptr:
        return None

    def codegen(context, builder, signature, args):
        return builder.call(_declare(builder, "fr_sync_arrive", _I64, [_VOIDP]), [args[0]])

    return types.int64(s), codegen


@intrinsic
def sync_wait(typingctx, s, token):
    """The second half of the team's barrier: waits for the other threads (token: sync_arrive's)."""
    if s != types.voidptr or not isinstance(token, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        builder.call(_declare(builder, "fr_sync_wait", ir.VoidType(), [_VOIDP, _I64]),
                     [args[0], _intp(context, builder, args[1], signature.args[1])])
        return context.get_dummy_value()

    return types.void(s, token), codegen


@intrinsic
def team_run(typingctx, task_address, words, nth):
    """Runs the task at ``task_address`` with ``words`` (an int64 array: its arg block) on up to nth
    threads; returns how many it ran on."""
    if not (isinstance(task_address, types.Integer) and isinstance(words, types.Array)
            and words.dtype == types.int64 and isinstance(nth, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        addr, arr, n = args
        fn_t = ir.FunctionType(ir.VoidType(), [_VOIDP, _VOIDP, _I64, _I64]).as_pointer()
        fn = _declare(builder, "fr_team_run", _I64, [fn_t, _VOIDP, _I64])
        task = builder.inttoptr(_intp(context, builder, addr, signature.args[0]), fn_t)
        block = builder.bitcast(_data(context, builder, words, arr, ir.Constant(_I64, 0)), _VOIDP)
        return builder.call(fn, [task, block, _intp(context, builder, n, signature.args[2])])

    return types.int64(task_address, words, nth), codegen


@intrinsic
def words(typingctx, arg, n):
    """The task's arg block as an int64 array of n words."""
    if arg != types.voidptr or not isinstance(n, types.Integer):
        return None
    sig = types.CPointer(types.int64)(arg, n)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64).as_pointer())

    return sig, codegen


@intrinsic
def pointer(typingctx, address, like):
    """The int64 ``address`` as a pointer to the type of ``like`` (a float32, float64, uint8 or int64 scalar)."""
    if not isinstance(address, types.Integer) or like not in (types.float32, types.float64, types.uint8, types.int64):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(like).as_pointer())

    return types.CPointer(like)(address, like), codegen


class Task:
    """A task, compiled for the team on first use (and cached on disk like the kernels).

    ``func(arg, sync, tid, nth)`` must be compilable by Numba with ``arg`` and ``sync`` raw pointers.
    """

    _lock = threading.Lock()

    def __init__(self, func):
        self.func = func
        self.__name__ = func.__name__
        self._cfunc = None

    @property
    def address(self):
        if self._cfunc is None:
            with Task._lock:  # threads making their first call at once compile it once
                if self._cfunc is None:
                    options = {k: v for k, v in OPTIONS.items() if k not in ("cache", "nogil")}
                    signature = ((types.voidptr, types.voidptr, types.int64, types.int64), types.void)
                    cf = CFunc(self.func, signature, {}, {**options, "nopython": True}, pipeline_class=PIPELINE)
                    cf._cache = _Cache(self.func)
                    cf.compile()
                    self._cfunc = cf
        return self._cfunc.address


def task(func):
    """Decorator: a Task."""
    return Task(func)
