"""The Numba backend: the cs231n layer functions over compiled kernels.

Each public function is a thin wrapper: it allocates the arrays whose size grows
with the problem (with NumPy: its allocator asks the OS for huge pages, which
makes first-touching a big buffer ~3x cheaper than Numba's plain malloc; scratch
comes from ``fastrnn._workspace``, kept between calls), reshapes (free: inputs are
C-contiguous) and makes exactly one call into a compiled kernel, so a small layer
pays a single Numba dispatch.  ``fastrnn.layers`` has already
validated every input and made it a C-contiguous float32/float64 array of one
dtype (word indices: C-contiguous ``np.intp``); inputs may be readonly and are
never written.

Every forward pass returns its cache as a flat tuple of arrays (and ints), which
is all its backward pass needs, in either float dtype.  A sequence layer's two
forms (cs231n's and ``*_state``) make the same cache; the optional inputs of the
state forms (c0, dh, dhT, dcT) may be None (zeros).

The kernels live in one module per concern: ``_rnn``, ``_lstm``, ``_gru``, ``_dense``
(affine, sigmoid), ``_words`` (embedding, softmax loss), over ``_blas`` (GEMM
called directly) and ``_math`` (vectorizable exp/tanh/sigmoid); ``_jit`` says how
they are compiled and cached.  When fastrnn._native is there, the sequence and
affine layers run as jobs of its thread team instead (``_team``, over ``_packed``):
no BLAS call inside a pass, see ``_team``; the BLAS kernels remain for single
steps, sequences of one step or fewer units than half a panel, and
``FASTRNN_NATIVE=0``.  Arrays of at least 256 KiB then come from its array pool,
which keeps freed blocks mapped for the next call.
"""

import ctypes
import math
import os

import numpy as np

from .._backend import LAYER_FUNCTIONS
from .._workspace import scratch_arrays
from . import _dense, _gru, _lstm, _rnn, _steps, _team, _words
from ._blas import BLAS_INT, BLAS_NAME  # noqa: F401  (BLAS_NAME: which BLAS the kernels call)
from ._packed import LAYOUT

__all__ = list(LAYER_FUNCTIONS)

KERNELS = (
    _dense.affine_forward,
    _dense.affine_backward,
    _dense.sigmoid,
    _rnn.rnn_forward,
    _rnn.rnn_backward,
    _lstm.lstm_forward,
    _lstm.lstm_backward,
    _steps.rnn_step_forward,
    _steps.rnn_step_backward,
    _steps.lstm_step_forward,
    _steps.lstm_step_backward,
    _gru.gru_forward,
    _gru.gru_backward,
    _words.embedding_backward,
    _words.softmax_loss,
)

_BI = BLAS_INT(0)  # the marker that selects that BLAS in the kernels' signatures (see _blas)

TEAM_KERNELS = (_team.rnn_forward_team, _team.rnn_backward_team, _team.lstm_forward_team, _team.lstm_backward_team,
                _team.gru_forward_team, _team.gru_backward_team, _team.affine_forward_team,
                _team.affine_backward_team, _team.softmax_loss_team)


def compile_all():
    """Compiles (or loads from Numba's cache) every kernel (and team task) for float32 and float64 now."""
    for k in KERNELS + (TEAM_KERNELS if _NATIVE else ()):
        k.compile_all()
    for tasks in _team.TASKS.values() if _NATIVE else ():
        for t in tasks.values():
            t.address


# --------------------------------------------------------------------------- the team and the pool

_NATIVE = LAYOUT is not None and os.environ.get("FASTRNN_NATIVE", "").strip() != "0"
if _NATIVE:
    from .. import _native

    _NR = {np.dtype(np.float32): LAYOUT["nr_float32"], np.dtype(np.float64): LAYOUT["nr_float64"]}
    _address = _native.blas_threads_address()
    _blas_threads = ctypes.CFUNCTYPE(ctypes.c_int)(_address) if _address else (lambda: 1)
    _symbols = _native.symbols()
    _size_t, _ssize_t = ctypes.c_size_t, ctypes.c_ssize_t
    _GEMM_WORK = {dt: ctypes.CFUNCTYPE(_size_t, _ssize_t, _ssize_t, _ssize_t, _ssize_t)(_symbols[f"fr_gemm_work_{c}"])
                  for dt, c in ((np.dtype(np.float32), "s"), (np.dtype(np.float64), "d"))}
    _POOL, _set_handler = _native.pool_handler, _native.set_handler
else:
    _POOL = None
_POOLED = 256 * 1024  # arrays from this many bytes on come from the pool

# The Cython backend's thresholds (see its _kernels.pyx): a team thread needs _TEAM_MIN_FLOPS of recurrent
# product per step, an affine layer's job _DENSE_MIN_FLOPS per thread; below _TEAM_USE_FLOPS per step (the
# tiny sizes) packing and partly empty panels cost more than BLAS per step.
_TEAM_MIN_FLOPS = 2.5e5
_TEAM_USE_FLOPS = 3.0e5
_DENSE_MIN_FLOPS = 4.0e6
_DENSE_MIN_BYTES = 524288.0  # as fastrnn/_native/product.h's FR_PRODUCT_MIN_BYTES
_SOFTMAX_MIN_SCORES = 131072.0  # the softmax loss takes a thread per this many scores


def native_in_use():
    """True when the sequence and affine layers run on fastrnn._native's team."""
    return _NATIVE


def team_plan(N, T, D, H, gates, dtype):
    """Threads of the team job a sequence layer of these sizes would run as (0: BLAS per step instead)."""
    plan = _team_plan(N, T, D, H, gates, np.dtype(dtype))
    return plan[1] if plan else 0


def set_team_flops(use_flops, min_flops):
    """Sets _TEAM_USE_FLOPS and _TEAM_MIN_FLOPS (the tests reach the team path at small shapes with it);
    returns the previous pair."""
    global _TEAM_USE_FLOPS, _TEAM_MIN_FLOPS
    previous = (_TEAM_USE_FLOPS, _TEAM_MIN_FLOPS)
    _TEAM_USE_FLOPS, _TEAM_MIN_FLOPS = use_flops, min_flops
    return previous


def _empty(shape, dtype, pooled=True):
    """np.empty, from the array pool for arrays of _POOLED bytes or more.  The single steps call np.empty
    (or pass pooled=False: the GRU's, which run its sequence code): their arrays are one step's, this check's
    ~0.25 us each was 8 % of a tiny lstm_step_forward, and between steps the caller's own NumPy work reuses
    the heap's memory while the pool's blocks go cold (see step_empty in fastrnn/_cython/_kernels.pyx)."""
    if not pooled or _POOL is None or math.prod(shape) * dtype.itemsize < _POOLED:
        return np.empty(shape, dtype)
    previous = _set_handler(_POOL)
    try:
        return np.empty(shape, dtype)
    finally:
        _set_handler(previous)


def _threads(flops, least, most):
    """Threads for a team job: BLAS's limit (threadpoolctl's), one per `least` flops, `most`, at least 1."""
    return max(1, min(_blas_threads(), int(flops / least), most))


def _team_plan(N, T, D, H, gates, dtype):
    """(nr, threads, work bytes per thread) when a sequence layer runs on the team, else None: packing the
    recurrent weights (once per call) pays from two steps, half a panel of units and _TEAM_USE_FLOPS per
    step on, and with more than one panel when BLAS would use more than one thread (a panel is a thread)."""
    if not _NATIVE or T < 2 or 2.0 * N * H * gates * H < _TEAM_USE_FLOPS or 2 * H < _NR[dtype]:
        return None  # (cheapest tests first: the tiny sizes, where a microsecond shows, leave here)
    if H <= _NR[dtype] and _blas_threads() > 1:
        return None
    nr, G = _NR[dtype], gates * H
    threads = _threads(2.0 * N * H * G, _TEAM_MIN_FLOPS, -(-H // nr))
    work = _GEMM_WORK[dtype](max(N * T, D, H), max(G, D), max(D, G, N * T), gates)
    return nr, threads, -(-work // 64) * 64


def _own_size(gates, N, H, dtype, plan):
    """Items of scratch for a backward team job's own pages of threads 1.. (see _team.own_items)."""
    return -(-_team.own_bytes(_team.own_items(gates, N, H), dtype.itemsize, plan[1]) // dtype.itemsize)


def _team_scratch(dtype, plan, packed_rows, packed_gates, H, *shapes):
    """Scratch arrays of `shapes`, then the packed weights and every thread's gemm work (bytes)."""
    nr, threads, work = plan
    packed = -(-H // nr) * packed_gates * packed_rows * nr
    *arrays, P, wbuf = scratch_arrays(dtype, *shapes, (packed,), (-(-threads * work // dtype.itemsize),))
    return arrays, P, wbuf.view(np.uint8)


# --------------------------------------------------------------------------- affine


def _dense_plan(R, D, M, dtype):
    """(threads, work bytes per thread) of an affine layer's team job."""
    # a thread per _DENSE_MIN_FLOPS, or per _DENSE_MIN_BYTES of w when that gives more: a product of few rows
    # (a sampled word's scores) is bound by reading w, which two cores read faster
    flops = max(2.0 * R * D * M, D * M * np.dtype(dtype).itemsize * (_DENSE_MIN_FLOPS / _DENSE_MIN_BYTES))
    threads = _threads(flops, _DENSE_MIN_FLOPS, 64)
    work = _GEMM_WORK[dtype](max(R, D), max(D, M), max(R, D, M), 1)
    return threads, -(-work // 64) * 64


def _affine(x2, w, b):
    out = _empty((x2.shape[0], w.shape[1]), x2.dtype)
    if _NATIVE:
        threads, work = _dense_plan(*x2.shape, w.shape[1], x2.dtype)
        (wbuf,) = scratch_arrays(np.dtype(np.uint8), (threads * work,))
        task = _team.TASKS["affine_forward"][x2.dtype].address
        _team.affine_forward_team[x2.dtype](x2, w, b, out, wbuf, work, task, threads)
    else:
        _dense.affine_forward[x2.dtype](_BI, x2, w, b, out)
    return out


def _affine_grads(dout2, x2, w):
    dx = _empty(x2.shape, dout2.dtype)
    dw = _empty(w.shape, dout2.dtype)
    if _NATIVE:
        threads, work = _dense_plan(*x2.shape, w.shape[1], x2.dtype)
        (wbuf,) = scratch_arrays(np.dtype(np.uint8), (threads * work,))
        db = _empty((w.shape[1],), dout2.dtype)
        task = _team.TASKS["affine_backward"][x2.dtype].address
        _team.affine_backward_team[x2.dtype](dout2, x2, w, dx, dw, db, wbuf, work, task, threads)
    else:
        db = _dense.affine_backward[dout2.dtype](_BI, dout2, x2, w, dx, dw)
    return dx, dw, db


def affine_forward(x, w, b):
    return _affine(x.reshape(x.shape[0], -1), w, b), (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx, dw, db = _affine_grads(dout, x.reshape(x.shape[0], -1), w)
    return dx.reshape(x.shape), dw, db


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    return _affine(x.reshape(N * T, D), w, b).reshape(N, T, -1), (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    N, T, D = x.shape
    dx, dw, db = _affine_grads(dout.reshape(N * T, -1), x.reshape(N * T, D), w)
    return dx.reshape(N, T, D), dw, db


# --------------------------------------------------------------------------- vanilla RNN


def _Wh_transposed_shape(Wh, dh):
    """Shape of the scratch for Wh.T when BPTT should multiply by a transposed copy (see _rnn),
    else (0, 0).

    The per-step product with a transposed Wh is up to 1.7x slower than with a copy
    transposed once, but the copy costs about as much as a few steps: measured, it pays
    from N*T >= 256 on, and never for a single step.
    """
    N, T, _ = dh.shape
    return Wh.shape[::-1] if T > 1 and N * T >= 256 else (0, 0)


def _upstream(dht, dh, dhT):
    """dht = the upstream gradient of every step's h: dh (zeros when None), plus dhT, the final state's
    gradient, in the last step."""
    if dh is None:
        dht.fill(0)
    else:
        np.copyto(dht, dh)
    if dhT is not None:
        dht[:, -1] += dhT


def _bptt_scratch(dh, dhT, h, dA_shape, Wh):
    """Scratch for BPTT on BLAS: dht (see _upstream), dA, and the Wh.T buffer."""
    dht, dA, WhT = scratch_arrays(h.dtype, h.shape, dA_shape, _Wh_transposed_shape(Wh, h))
    _upstream(dht, dh, dhT)
    return dht, dA, WhT


def rnn_forward(x, h0, Wx, Wh, b):
    (N, T, D), H = x.shape, h0.shape[1]
    h = _empty((N, T, H), x.dtype)
    plan = _team_plan(N, T, D, H, 1, x.dtype)
    if plan:
        _, P, wbuf = _team_scratch(x.dtype, plan, H, 1, H)
        task = _team.TASKS["rnn_forward"][x.dtype].address
        _team.rnn_forward_team[x.dtype](x, h0, Wx, Wh, b, h, P, wbuf, plan[0], plan[2], task, plan[1])
    else:
        _rnn.rnn_forward[x.dtype](_BI, x, h0, Wx, Wh, b, h)
    return h, (x, h0, Wx, Wh, h)


def rnn_forward_state(x, h0, Wx, Wh, b):
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    return h, h[:, -1].copy(), cache


def rnn_backward_state(dh, dhT, cache):
    x, h0, Wx, Wh, h = cache
    dtype = h.dtype
    dx, dWx, dWh = _empty(x.shape, dtype), _empty(Wx.shape, dtype), _empty(Wh.shape, dtype)
    (N, T, D), H = x.shape, h.shape[2]
    plan = _team_plan(N, T, D, H, 1, dtype)
    if plan:  # dh is read where it lies; the gradient carried between steps is one (N, H) array (see _team)
        (dA, cbuf), P, wbuf = _team_scratch(dtype, plan, H, 1, H, h.shape, (_own_size(1, N, H, dtype, plan),))
        dh0 = np.zeros((N, H), dtype) if dhT is None else dhT.copy()  # the carried gradient; dh0 on return
        db = _empty((H,), dtype)
        task = _team.TASKS["rnn_backward"][dtype].address
        _team.rnn_backward_team[dtype](x, h0, Wx, Wh, h, np.empty((N, T, 0), dtype) if dh is None else dh, dh0,
                                       dA, P, wbuf, cbuf.view(np.uint8), dx, dWx, dWh, db, plan[0], plan[2], task,
                                       plan[1])
        return dx, dh0, dWx, dWh, db
    dht, dA, WhT = _bptt_scratch(dh, dhT, h, h.shape, Wh)
    dh0, db = _rnn.rnn_backward[dtype](_BI, x, h0, Wx, Wh, h, dht, dA, WhT, dx, dWx, dWh)
    return dx, dh0, dWx, dWh, db


def rnn_backward(dh, cache):
    return rnn_backward_state(dh, None, cache)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.empty(prev_h.shape, x.dtype)
    _steps.rnn_step_forward[x.dtype](_BI, x, prev_h, Wx, Wh, b, next_h)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dt = dnext_h.dtype
    dx, dprev_h, dWx, dWh = np.empty(x.shape, dt), np.empty(prev_h.shape, dt), np.empty(Wx.shape, dt), np.empty(Wh.shape, dt)
    db = _steps.rnn_step_backward[dt](_BI, dnext_h, x, prev_h, Wx, Wh, next_h, dx, dprev_h, dWx, dWh)
    return dx, dprev_h, dWx, dWh, db


# --------------------------------------------------------------------------- LSTM


def sigmoid(x):
    out = _empty(x.shape, x.dtype)
    _dense.sigmoid[x.dtype](x.reshape(-1), out.reshape(-1))
    return out


def _lstm_forward(x, h0, c0, Wx, Wh, b):
    """c0 may be None (zeros).  Returns h, c (N, T+1, H) with c0 in step 0, and the cache."""
    (N, T, _), H = x.shape, h0.shape[1]
    h, c, tanh_c = _empty((N, T, H), x.dtype), _empty((N, T + 1, H), x.dtype), _empty((N, T, H), x.dtype)
    gates = _empty((N, T, 4 * H), x.dtype)
    c0 = np.zeros_like(h0) if c0 is None else c0
    plan = _team_plan(N, T, x.shape[2], H, 4, x.dtype)
    if plan:
        _, P, wbuf = _team_scratch(x.dtype, plan, H, 4, H)
        task = _team.TASKS["lstm_forward"][x.dtype].address
        _team.lstm_forward_team[x.dtype](x, h0, c0, Wx, Wh, b, h, c, tanh_c, gates, P, wbuf, plan[0], plan[2], task,
                                         plan[1])
    else:
        _lstm.lstm_forward[x.dtype](_BI, x, h0, c0, Wx, Wh, b, h, c, tanh_c, gates)
    return h, c, (x, h0, Wx, Wh, h, c, tanh_c, gates)


def _lstm_backward(dh, dhT, dcT, cache):
    """dh, dhT and dcT may be None (zeros).  Returns (dx, dh0, dc0, dWx, dWh, db)."""
    x, h0, Wx, Wh, h, c, tanh_c, gates = cache
    dtype = h.dtype
    dx, dWx, dWh = _empty(x.shape, dtype), _empty(Wx.shape, dtype), _empty(Wh.shape, dtype)
    (N, T, D), H = x.shape, h.shape[2]
    plan = _team_plan(N, T, D, H, 4, dtype)
    if plan:  # dh is read where it lies; the gradient carried between steps is one (N, H) array (see _team)
        (dA, cbuf), P, wbuf = _team_scratch(dtype, plan, 4 * H, 1, H, gates.shape, (_own_size(4, N, H, dtype, plan),))
        dh0 = np.zeros((N, H), dtype) if dhT is None else dhT.copy()  # the carried gradient; dh0 on return
        dc = np.zeros((N, H), dtype) if dcT is None else dcT.copy()  # the carried dc; dc0 on return
        db = _empty((4 * H,), dtype)
        task = _team.TASKS["lstm_backward"][dtype].address
        _team.lstm_backward_team[dtype](x, h0, Wx, Wh, h, c, tanh_c, gates, np.empty((N, T, 0), dtype) if dh is None
                                        else dh, dh0, dc, dA, P, wbuf, cbuf.view(np.uint8), dx, dWx, dWh, db,
                                        plan[0], plan[2], task, plan[1])
        return dx, dh0, dc, dWx, dWh, db
    dht, dA, WhT = _bptt_scratch(dh, dhT, h, gates.shape, Wh)
    dcT = np.zeros(h0.shape, dtype) if dcT is None else dcT
    dh0, dc0, db = _lstm.lstm_backward[dtype](
        _BI, dcT, x, h0, Wx, Wh, h, c, tanh_c, gates, dht, dA, WhT, dx, dWx, dWh
    )
    return dx, dh0, dc0, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b, *, c0=None):
    h, _, cache = _lstm_forward(x, h0, c0, Wx, Wh, b)
    return h, cache


def lstm_forward_state(x, h0, c0, Wx, Wh, b):
    h, c, cache = _lstm_forward(x, h0, c0, Wx, Wh, b)
    return h, h[:, -1].copy(), c[:, -1].copy(), cache


def lstm_backward(dh, cache):
    dx, dh0, _, dWx, dWh, db = _lstm_backward(dh, None, None, cache)
    return dx, dh0, dWx, dWh, db


def lstm_backward_state(dh, dhT, dcT, cache):
    return _lstm_backward(dh, dhT, dcT, cache)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    dt, (N, H) = x.dtype, prev_h.shape
    next_h, next_c, gates, tanh_c = np.empty((N, H), dt), np.empty((N, H), dt), np.empty((N, 4 * H), dt), np.empty((N, H), dt)
    _steps.lstm_step_forward[dt](_BI, x, prev_h, prev_c, Wx, Wh, b, next_h, next_c, gates, tanh_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    dt = dnext_h.dtype
    dx, dWx, dWh = np.empty(x.shape, dt), np.empty(Wx.shape, dt), np.empty(Wh.shape, dt)
    dprev_h, dprev_c = np.empty(prev_h.shape, dt), np.empty(prev_h.shape, dt)
    db = _steps.lstm_step_backward[dt](
        _BI, dnext_h, dnext_c, x, prev_h, prev_c, Wx, Wh, gates, tanh_c, dx, dprev_h, dprev_c, dWx, dWh
    )
    return dx, dprev_h, dprev_c, dWx, dWh, db


# --------------------------------------------------------------------------- GRU

def _gru_forward(x, h0, Wx, Wh, b, bhn, pooled=True):
    (N, T, D), H = x.shape, h0.shape[1]
    h, hn = _empty((N, T, H), x.dtype, pooled), _empty((N, T, H), x.dtype, pooled)
    gates = _empty((N, T, 3 * H), x.dtype, pooled)
    plan = _team_plan(N, T, D, H, 3, x.dtype)
    if plan:  # Wh packed as its r and z blocks and its n block: 3 gate blocks in all (see _team)
        _, P, wbuf = _team_scratch(x.dtype, plan, H, 3, H)
        task = _team.TASKS["gru_forward"][x.dtype].address
        _team.gru_forward_team[x.dtype](x, h0, Wx, Wh, b, bhn, h, gates, hn, P, wbuf, plan[0], plan[2], task, plan[1])
        return h, (x, h0, Wx, Wh, h, gates, hn)
    (R,) = scratch_arrays(x.dtype, (N, 3 * H))
    _dense.affine_forward[x.dtype](_BI, x.reshape(N * T, D), Wx, b, gates.reshape(N * T, 3 * H))  # see _gru
    _gru.gru_forward[x.dtype](_BI, h0, Wh, bhn, h, gates, hn, R)
    return h, (x, h0, Wx, Wh, h, gates, hn)


def gru_forward(x, h0, Wx, Wh, b, bhn):
    return _gru_forward(x, h0, Wx, Wh, b, bhn)


def gru_forward_state(x, h0, Wx, Wh, b, bhn):
    h, cache = _gru_forward(x, h0, Wx, Wh, b, bhn)
    return h, h[:, -1].copy(), cache


def gru_backward_state(dh, dhT, cache):
    return _gru_backward(dh, dhT, cache)


def _gru_backward(dh, dhT, cache, pooled=True):
    x, h0, Wx, Wh, h, gates, hn = cache
    dtype = h.dtype
    N, T, H = h.shape
    dx, dWx, dWh = _empty(x.shape, dtype, pooled), _empty(Wx.shape, dtype, pooled), _empty(Wh.shape, dtype, pooled)
    dh0 = np.zeros((N, H), dtype) if dhT is None else dhT.copy()  # the carried gradient, in place
    dh = np.empty((N, T, 0), dtype) if dh is None else dh
    plan = _team_plan(N, T, x.shape[2], H, 3, dtype)
    if plan:
        (dA, cbuf), P, wbuf = _team_scratch(dtype, plan, 3 * H, 1, H, (N, T, 4 * H), (_own_size(3, N, H, dtype, plan),))
        db, dbhn = _empty((3 * H,), dtype, pooled), _empty((H,), dtype, pooled)
        task = _team.TASKS["gru_backward"][dtype].address
        _team.gru_backward_team[dtype](x, h0, Wx, Wh, h, gates, hn, dh, dh0, dA, P, wbuf, cbuf.view(np.uint8), dx,
                                       dWx, dWh, db, dbhn, plan[0], plan[2], task, plan[1])
        return dx, dh0, dWx, dWh, db, dbhn
    # Wh transposed once: in float32 only, as in the Cython GRU (in float64 the small/medium backward was
    # 19.5/60.5 ms with the copy against 17.1/57.6 without, measured on a Xeon; see _Wh_transposed_shape)
    WhT_shape = _Wh_transposed_shape(Wh, h) if dtype == np.float32 else (0, 0)
    dA, hprev, WhT = scratch_arrays(dtype, (N, T, 4 * H), (N, T, H), WhT_shape)
    db, dbhn = _gru.gru_backward[dtype](_BI, x, h0, Wx, Wh, h, gates, hn, dh, dh0, dA, WhT, hprev, dx, dWx, dWh)
    return dx, dh0, dWx, dWh, db, dbhn


def gru_backward(dh, cache):
    return gru_backward_state(dh, None, cache)


def gru_step_forward(x, prev_h, Wx, Wh, b, bhn):
    h, cache = _gru_forward(x.reshape(x.shape[0], 1, -1), prev_h, Wx, Wh, b, bhn, pooled=False)
    return h.reshape(prev_h.shape), cache


def gru_step_backward(dnext_h, cache):
    dx, dprev_h, dWx, dWh, db, dbhn = _gru_backward(dnext_h.reshape(dnext_h.shape[0], 1, -1), None, cache, pooled=False)
    return dx.reshape(dx.shape[0], -1), dprev_h, dWx, dWh, db, dbhn


# --------------------------------------------------------------------------- words and scores


def word_embedding_forward(x, W):
    return W.take(x, axis=0), (x, W.shape[0])  # NumPy's compiled gather (see _words)


def word_embedding_backward(dout, cache):
    x, V = cache
    dW = np.zeros((V, dout.shape[-1]), dout.dtype)
    _words.embedding_backward[dout.dtype](x.reshape(-1), dout.reshape(x.size, -1), dW)
    return dW


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    R = N * T
    dx = _empty(x.shape, x.dtype)
    threads = _threads(R * V, _SOFTMAX_MIN_SCORES, R) if _NATIVE else 1
    if threads > 1:  # a team job, a share of the rows per thread
        (parts,) = scratch_arrays(np.dtype(np.uint8), (8 * threads,))
        task = _team.TASKS["softmax_loss"][x.dtype].address
        loss = _team.softmax_loss_team[x.dtype](x.reshape(R, V), y.reshape(-1), mask.reshape(-1), N, dx.reshape(R, V),
                                                parts, task, threads)
    else:
        loss = _words.softmax_loss[x.dtype](x.reshape(R, V), y.reshape(-1), mask.reshape(-1), N, dx.reshape(R, V))
    if verbose:
        print("dx_flat: ", (N * T, V))
    return x.dtype.type(loss), dx
