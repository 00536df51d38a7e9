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
is all its backward pass needs, in either float dtype.

The kernels live in one module per concern: ``_rnn``, ``_lstm``, ``_dense``
(affine, sigmoid), ``_words`` (embedding, softmax loss), over ``_blas`` (GEMM
called directly) and ``_math`` (vectorizable exp/tanh/sigmoid); ``_jit`` says how
they are compiled and cached.
"""

import numpy as np

from .._backend import LAYER_FUNCTIONS
from . import _dense, _lstm, _rnn, _steps, _words
from ._blas import BLAS_INT, BLAS_NAME  # noqa: F401  (BLAS_NAME: which BLAS the kernels call)
from .._workspace import scratch_arrays

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
    _words.embedding_backward,
    _words.softmax_loss,
)

_BI = BLAS_INT(0)  # the marker that selects that BLAS in the kernels' signatures (see _blas)
_empty = np.empty


def compile_all():
    """Compiles (or loads from Numba's cache) every kernel for float32 and float64 now."""
    for k in KERNELS:
        k.compile_all()


# --------------------------------------------------------------------------- affine


def _affine(x2, w, b):
    out = _empty((x2.shape[0], w.shape[1]), x2.dtype)
    _dense.affine_forward[x2.dtype](_BI, x2, w, b, out)
    return out


def _affine_grads(dout2, x2, w):
    dx = _empty(x2.shape, dout2.dtype)
    dw = _empty(w.shape, dout2.dtype)
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


def _bptt_scratch(dh, dhT, h, dA_shape, Wh):
    """Scratch for BPTT: dht, the upstream gradient of every step's h (dh, or zeros when dh is None, plus
    dhT, the final state's gradient, in the last step), dA, and the Wh.T buffer."""
    dht, dA, WhT = scratch_arrays(h.dtype, h.shape, dA_shape, _Wh_transposed_shape(Wh, h))
    if dh is None:
        dht.fill(0)
    else:
        np.copyto(dht, dh)
    if dhT is not None:
        dht[:, -1] += dhT
    return dht, dA, WhT


def rnn_forward(x, h0, Wx, Wh, b):
    h = _empty(x.shape[:2] + h0.shape[1:], x.dtype)
    _rnn.rnn_forward[x.dtype](_BI, x, h0, Wx, Wh, b, h)
    return h, (x, h0, Wx, Wh, h)


def rnn_forward_state(x, h0, Wx, Wh, b):
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    return h, h[:, -1].copy(), cache


def rnn_backward_state(dh, dhT, cache):
    x, h0, Wx, Wh, h = cache
    dtype = h.dtype
    dx, dWx, dWh = _empty(x.shape, dtype), _empty(Wx.shape, dtype), _empty(Wh.shape, dtype)
    dht, dA, WhT = _bptt_scratch(dh, dhT, h, h.shape, Wh)
    dh0, db = _rnn.rnn_backward[dtype](_BI, x, h0, Wx, Wh, h, dht, dA, WhT, dx, dWx, dWh)
    return dx, dh0, dWx, dWh, db


def rnn_backward(dh, cache):
    return rnn_backward_state(dh, None, cache)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = _empty(prev_h.shape, x.dtype)
    _steps.rnn_step_forward[x.dtype](_BI, x, prev_h, Wx, Wh, b, next_h)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dt = dnext_h.dtype
    dx, dprev_h, dWx, dWh = _empty(x.shape, dt), _empty(prev_h.shape, dt), _empty(Wx.shape, dt), _empty(Wh.shape, dt)
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
    _lstm.lstm_forward[x.dtype](_BI, x, h0, c0, Wx, Wh, b, h, c, tanh_c, gates)
    return h, c, (x, h0, Wx, Wh, h, c, tanh_c, gates)


def _lstm_backward(dh, dhT, dcT, cache):
    """dh, dhT and dcT may be None (zeros).  Returns (dx, dh0, dc0, dWx, dWh, db)."""
    x, h0, Wx, Wh, h, c, tanh_c, gates = cache
    dtype = h.dtype
    dx, dWx, dWh = _empty(x.shape, dtype), _empty(Wx.shape, dtype), _empty(Wh.shape, dtype)
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
    next_h, next_c, gates, tanh_c = _empty((N, H), dt), _empty((N, H), dt), _empty((N, 4 * H), dt), _empty((N, H), dt)
    _steps.lstm_step_forward[dt](_BI, x, prev_h, prev_c, Wx, Wh, b, next_h, next_c, gates, tanh_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    dt = dnext_h.dtype
    dx, dWx, dWh = _empty(x.shape, dt), _empty(Wx.shape, dt), _empty(Wh.shape, dt)
    dprev_h, dprev_c = _empty(prev_h.shape, dt), _empty(prev_h.shape, dt)
    db = _steps.lstm_step_backward[dt](
        _BI, dnext_h, dnext_c, x, prev_h, prev_c, Wx, Wh, gates, tanh_c, dx, dprev_h, dprev_c, dWx, dWh
    )
    return dx, dprev_h, dprev_c, dWx, dWh, db


# --------------------------------------------------------------------------- GRU

# Stage 1 of issue 11: the GRU runs on the oracle until its compiled kernels land.
from ..reference import (  # noqa: E402,F401
    gru_backward,
    gru_backward_state,
    gru_forward,
    gru_forward_state,
    gru_step_backward,
    gru_step_forward,
)


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
    dx = _empty(x.shape, x.dtype)
    loss = _words.softmax_loss[x.dtype](x.reshape(N * T, V), y.reshape(-1), mask.reshape(-1), N, dx.reshape(N * T, V))
    if verbose:
        print("dx_flat: ", (N * T, V))
    return x.dtype.type(loss), dx
