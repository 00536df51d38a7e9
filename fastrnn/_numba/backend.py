"""The Numba backend: the cs231n layer functions over compiled kernels.

Each public function is a thin wrapper: it reshapes (free, the inputs are
C-contiguous) and makes exactly one call into a compiled kernel, so a small layer
pays a single Numba dispatch.  ``fastrnn.layers`` has already validated every
input and made it a C-contiguous float32/float64 array of one dtype (word
indices: C-contiguous ``np.intp``); inputs may be readonly and are never written.

Every forward pass returns its cache as a flat tuple of arrays (and ints), which
is all its backward pass needs, in either float dtype.

The kernels live in one module per concern: ``_rnn``, ``_lstm``, ``_dense``
(affine, sigmoid), ``_words`` (embedding, softmax loss), over ``_blas`` (GEMM
bound from SciPy) and ``_math`` (vectorizable exp/tanh/sigmoid); ``_jit`` says
how they are compiled and cached.
"""

import numpy as np

from . import _dense, _lstm, _rnn, _words
from ._blas import BLAS_INT, BLAS_NAME  # noqa: F401  (BLAS_NAME: which BLAS the kernels call)

_BI = BLAS_INT(0)  # the marker that selects that BLAS in the kernels' signatures

__all__ = [
    "affine_forward",
    "affine_backward",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "word_embedding_forward",
    "word_embedding_backward",
    "sigmoid",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "temporal_softmax_loss",
]

KERNELS = (
    _dense.affine_forward,
    _dense.affine_backward,
    _dense.sigmoid,
    _rnn.rnn_forward,
    _rnn.rnn_backward,
    _lstm.lstm_forward,
    _lstm.lstm_backward,
    _words.embedding_forward,
    _words.embedding_backward,
    _words.softmax_loss,
)


def compile_all():
    """Compiles (or loads from Numba's cache) every kernel for float32 and float64 now."""
    for k in KERNELS:
        k.compile_all()


# --------------------------------------------------------------------------- affine


def affine_forward(x, w, b):
    out = _dense.affine_forward[x.dtype](_BI, x.reshape(x.shape[0], -1), w, b)
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx, dw, db = _dense.affine_backward[dout.dtype](_BI, dout, x.reshape(x.shape[0], -1), w)
    return dx.reshape(x.shape), dw, db


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = _dense.affine_forward[x.dtype](_BI, x.reshape(N * T, D), w, b)
    return out.reshape(N, T, -1), (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    N, T, D = x.shape
    dx, dw, db = _dense.affine_backward[dout.dtype](_BI, dout.reshape(N * T, -1), x.reshape(N * T, D), w)
    return dx.reshape(N, T, D), dw, db


# --------------------------------------------------------------------------- vanilla RNN


def rnn_forward(x, h0, Wx, Wh, b):
    h, hprev = _rnn.rnn_forward[x.dtype](_BI, x, h0, Wx, Wh, b)
    return h, (x, Wx, Wh, h, hprev)


def rnn_backward(dh, cache):
    return _rnn.rnn_backward[dh.dtype](_BI, dh, *cache)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    N, D = x.shape
    h, hprev = _rnn.rnn_forward[x.dtype](_BI, x.reshape(N, 1, D), prev_h, Wx, Wh, b)
    next_h = h.reshape(N, -1)
    return next_h, (x, Wx, Wh, h, hprev)


def rnn_step_backward(dnext_h, cache):
    x, Wx, Wh, h, hprev = cache
    N, D = x.shape
    dx, dprev_h, dWx, dWh, db = _rnn.rnn_backward[dnext_h.dtype](
        _BI, dnext_h.reshape(N, 1, -1), x.reshape(N, 1, D), Wx, Wh, h, hprev
    )
    return dx.reshape(N, D), dprev_h, dWx, dWh, db


# --------------------------------------------------------------------------- LSTM


def sigmoid(x):
    return _dense.sigmoid[x.dtype](x.reshape(-1)).reshape(x.shape)


def lstm_forward(x, h0, Wx, Wh, b):
    c0 = np.zeros_like(h0)
    h, hprev, c, tanh_c, gates = _lstm.lstm_forward[x.dtype](_BI, x, h0, c0, Wx, Wh, b)
    return h, (x, Wx, Wh, hprev, c, tanh_c, gates)


def lstm_backward(dh, cache):
    dcT = np.zeros((dh.shape[0], dh.shape[2]), dh.dtype)
    dx, dh0, _, dWx, dWh, db = _lstm.lstm_backward[dh.dtype](_BI, dh, dcT, *cache)
    return dx, dh0, dWx, dWh, db


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    N, D = x.shape
    h, hprev, c, tanh_c, gates = _lstm.lstm_forward[x.dtype](_BI, x.reshape(N, 1, D), prev_h, prev_c, Wx, Wh, b)
    next_h, next_c = h.reshape(N, -1), c[:, 1].copy()
    return next_h, next_c, (x, Wx, Wh, hprev, c, tanh_c, gates)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, Wx, Wh, hprev, c, tanh_c, gates = cache
    N, D = x.shape
    dx, dprev_h, dprev_c, dWx, dWh, db = _lstm.lstm_backward[dnext_h.dtype](
        _BI, dnext_h.reshape(N, 1, -1), dnext_c, x.reshape(N, 1, D), Wx, Wh, hprev, c, tanh_c, gates
    )
    return dx.reshape(N, D), dprev_h, dprev_c, dWx, dWh, db


# --------------------------------------------------------------------------- words and scores


def word_embedding_forward(x, W):
    out = _words.embedding_forward[W.dtype](x.reshape(-1), W)
    return out.reshape(x.shape + (W.shape[1],)), (x, W.shape[0])


def word_embedding_backward(dout, cache):
    x, V = cache
    return _words.embedding_backward[dout.dtype](x.reshape(-1), dout.reshape(x.size, -1), V)


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    loss, dx = _words.softmax_loss[x.dtype](x.reshape(N * T, V), y.reshape(-1), mask.reshape(-1), N)
    if verbose:
        print("dx_flat: ", (N * T, V))
    return x.dtype.type(loss), dx.reshape(N, T, V)
