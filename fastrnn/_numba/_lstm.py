"""LSTM over a sequence: forward, and backpropagation through time.

How it wins its speed: as in ``_rnn``, the time loop is one compiled call with
no allocation inside it.  Forward: one GEMM puts the input projection of all T
steps into the gate buffer (N, T, 4H); per step one GEMM adds ``h_{t-1} @ Wh``
into that step's slice (beta = 1, row stride T*4H) and one fused, vectorized
pass adds the bias, applies sigmoid/tanh (``_math``), updates the cell and
writes h_t, c_t, tanh(c_t) and the activated gates over the pre-activations.
Backward: per step one fused pass gives dA_t (N, 4H) and the carried dc, and one
GEMM gives the gradient into h_{t-1}; dx, dWx, dWh and db are computed once
after the loop over all N*T rows.

Layout (batch-major like the user's arrays): gates (N, T, 4H) in the order
i, f, o, g; ``hprev`` (N, T, H) holds the h each step started from; ``c``
(N, T+1, H) holds c0 in step 0 and c_t in step t+1; ``tanh_c`` (N, T, H).

The kernels take an initial cell state c0 and a gradient dcT into the last cell
state, so the single-step functions are these with T = 1.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, blas_int, gemm
from ._dense import affine_grads
from ._jit import kernel
from ._math import vsigmoid, vtanh


@kernel("f3", "f2", "f2", "f2", "f2", "f1")
def lstm_forward(x, h0, c0, Wx, Wh, b):
    """x (N, T, D), h0 and c0 (N, H) -> (h, hprev, c, tanh_c, gates); see the module docstring."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 4 * H
    blas_int(N * T * max(D, G))
    h = np.empty((N, T, H), x.dtype)
    hprev = np.empty((N, T, H), x.dtype)
    c = np.empty((N, T + 1, H), x.dtype)
    tanh_c = np.empty((N, T, H), x.dtype)
    gates = np.empty((N, T, G), x.dtype)
    gemm(NOTRANS, NOTRANS, N * T, G, D, 1.0, x, 0, D, Wx, 0, G, 0.0, gates, 0, G)
    hprev[:, 0] = h0
    c[:, 0] = c0
    bi, bf, bo, bg = b[:H], b[H : 2 * H], b[2 * H : 3 * H], b[3 * H :]
    for t in range(T):
        gemm(NOTRANS, NOTRANS, N, G, H, 1.0, hprev, t * H, T * H, Wh, 0, G, 1.0, gates, t * G, T * G)
        for n in range(N):
            a = gates[n, t]
            ai, af, ao, ag = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            c_prev, c_next, tc, ht = c[n, t], c[n, t + 1], tanh_c[n, t], h[n, t]
            for j in range(H):
                i = vsigmoid(ai[j] + bi[j])
                f = vsigmoid(af[j] + bf[j])
                o = vsigmoid(ao[j] + bo[j])
                g = vtanh(ag[j] + bg[j])
                cj = f * c_prev[j] + i * g
                tcj = vtanh(cj)
                ai[j], af[j], ao[j], ag[j] = i, f, o, g
                c_next[j] = cj
                tc[j] = tcj
                ht[j] = o * tcj
            if t + 1 < T:
                hprev[n, t + 1] = ht
    return h, hprev, c, tanh_c, gates


@kernel("f3", "f2", "f3", "f2", "f2", "f3", "f3", "f3", "f3")
def lstm_backward(dh, dcT, x, Wx, Wh, hprev, c, tanh_c, gates):
    """Returns (dx, dh0, dc0, dWx, dWh, db); dh (N, T, H) is the upstream gradient of every h_t
    and dcT (N, H) the gradient into the last cell state."""
    N, T, D = x.shape
    H = Wh.shape[0]
    G = 4 * H
    blas_int(N * T * max(D, G))
    one = dh.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    dA = np.empty((N, T, G), dh.dtype)  # gradient of each step's pre-activations
    dnext = np.zeros((N, H), dh.dtype)  # gradient flowing from step t+1 into h_t
    dc = dcT.copy()  # gradient flowing from step t+1 into c_t
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da = gates[n, t], dA[n, t]
            ai, af, ao, ag = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            di, df, do, dg = da[:H], da[H : 2 * H], da[2 * H : 3 * H], da[3 * H :]
            dht, dn, dcn, c_prev, tc = dh[n, t], dnext[n], dc[n], c[n, t], tanh_c[n, t]
            for j in range(H):
                i, f, o, g, tcj = ai[j], af[j], ao[j], ag[j], tc[j]
                dhj = dht[j] + dn[j]
                dcj = dcn[j] + dhj * o * (one - tcj * tcj)
                di[j] = dcj * g * i * (one - i)
                df[j] = dcj * c_prev[j] * f * (one - f)
                do[j] = dhj * tcj * o * (one - o)
                dg[j] = dcj * i * (one - g * g)
                dcn[j] = dcj * f
        gemm(NOTRANS, TRANS, N, H, G, 1.0, dA, t * G, T * G, Wh, 0, G, 0.0, dnext, 0, H)
    dx, dWx, db = affine_grads(dA.reshape(N * T, G), x.reshape(N * T, D), Wx)
    dWh = np.empty((H, G), dh.dtype)
    gemm(TRANS, NOTRANS, H, G, N * T, 1.0, hprev, 0, H, dA, 0, G, 0.0, dWh, 0, G)
    return dx.reshape(N, T, D), dnext, dc, dWx, dWh, db
