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

Vectorizing: LLVM vectorizes a loop only when it can rule out overlap between
the arrays it writes and reads with a handful of run-time checks (8 pointer
pairs), so each pointwise loop below writes one array: a fused step is a few
short loops over one row of a step, all in L1.  The four gates are activated in
one uniform loop with sigmoid(a) = tanh(a/2)/2 + 1/2: per column,
``tanh(a * s) * s + k`` with (s, k) = (1/2, 1/2) for i, f, o and (1, 0) for g.
(That sigmoid is exact to an ulp of 1 -- absolute, not relative, for tiny
gates -- which is all the LSTM needs; the public ``sigmoid`` stays relative.)
The derivative of either activation from its output y is then the uniform
``(y + s - k) * (s + k - y)``: y (1 - y) for a sigmoid, (1 + y)(1 - y) for tanh.

Layout (batch-major like the user's arrays): gates (N, T, 4H) in the order
i, f, o, g; ``hprev`` (N, T, H) holds the h each step started from; ``c``
(N, T+1, H) holds c0 in step 0 and c_t in step t+1; ``tanh_c`` (N, T, H).

The kernels take an initial cell state c0 and a gradient dcT into the last cell
state, so the single-step functions are these with T = 1.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, check_blas_int, gemm
from ._dense import affine_grads, copy_row, copy_rows
from ._jit import helper, kernel
from ._math import vtanh


@helper
def _gate_constants(H, dtype):
    """Per gate column (i, f, o: sigmoid; g: tanh): scale s, shift k, and s - k, s + k."""
    half, one, zero = dtype.type(0.5), dtype.type(1), dtype.type(0)
    s = np.full(4 * H, half, dtype)
    k = np.full(4 * H, half, dtype)
    s[3 * H :] = one
    k[3 * H :] = zero
    return s, k, s - k, s + k


@kernel("b", "f3", "f2", "f2", "f2", "f2", "f1")
def lstm_forward(bi, x, h0, c0, Wx, Wh, b):
    """x (N, T, D), h0 and c0 (N, H) -> (h, hprev, c, tanh_c, gates); see the module docstring."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 4 * H
    check_blas_int(bi, max(N * T, T * G, D))
    h = np.empty((N, T, H), x.dtype)
    hprev = np.empty((N, T, H), x.dtype)
    c = np.empty((N, T + 1, H), x.dtype)
    tanh_c = np.empty((N, T, H), x.dtype)
    gates = np.empty((N, T, G), x.dtype)
    s, k, _, _ = _gate_constants(H, x.dtype)
    gemm(bi, NOTRANS, NOTRANS, N * T, G, D, 1.0, x, 0, D, Wx, 0, G, 0.0, gates, 0, G)
    copy_rows(hprev[:, 0], h0)
    copy_rows(c[:, 0], c0)
    for t in range(T):
        gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, hprev, t * H, T * H, Wh, 0, G, 1.0, gates, t * G, T * G)
        for n in range(N):
            a = gates[n, t]
            for j in range(G):  # i, f, o = sigmoid, g = tanh, over a + b
                a[j] = vtanh((a[j] + b[j]) * s[j]) * s[j] + k[j]
            i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            c_prev, c_next, tc, ht = c[n, t], c[n, t + 1], tanh_c[n, t], h[n, t]
            for j in range(H):
                c_next[j] = f[j] * c_prev[j] + i[j] * g[j]
            for j in range(H):
                tc[j] = vtanh(c_next[j])
            for j in range(H):
                ht[j] = o[j] * tc[j]
            if t + 1 < T:
                copy_row(hprev[n, t + 1], ht)
    return h, hprev, c, tanh_c, gates


@kernel("b", "f3", "f2", "f3", "f2", "f2", "f3", "f3", "f3", "f3")
def lstm_backward(bi, dh, dcT, x, Wx, Wh, hprev, c, tanh_c, gates):
    """Returns (dx, dh0, dc0, dWx, dWh, db); dh (N, T, H) is the upstream gradient of every h_t
    and dcT (N, H) the gradient into the last cell state."""
    N, T, D = x.shape
    H = Wh.shape[0]
    G = 4 * H
    check_blas_int(bi, max(N * T, T * G, D))
    one = dh.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    _, _, lo, hi = _gate_constants(H, dh.dtype)
    dA = np.empty((N, T, G), dh.dtype)  # gradient of each step's pre-activations
    dnext = np.zeros((N, H), dh.dtype)  # gradient into h_t: from step t+1, then plus dh[:, t]
    dc = dcT.copy()  # gradient into c_t
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da = gates[n, t], dA[n, t]
            i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            di, df, do, dg = da[:H], da[H : 2 * H], da[2 * H : 3 * H], da[3 * H :]
            dht, dn, dcn, c_prev, tc = dh[n, t], dnext[n], dc[n], c[n, t], tanh_c[n, t]
            for j in range(H):
                dn[j] += dht[j]
            for j in range(H):
                dcn[j] += dn[j] * o[j] * (one - tc[j] * tc[j])
            for j in range(H):  # the gradients of the activated gates ...
                di[j] = dcn[j] * g[j]
            for j in range(H):
                df[j] = dcn[j] * c_prev[j]
            for j in range(H):
                do[j] = dn[j] * tc[j]
            for j in range(H):
                dg[j] = dcn[j] * i[j]
            for j in range(G):  # ... times the activations' derivatives
                da[j] *= (a[j] + lo[j]) * (hi[j] - a[j])
            for j in range(H):
                dcn[j] *= f[j]
        gemm(bi, NOTRANS, TRANS, N, H, G, 1.0, dA, t * G, T * G, Wh, 0, G, 0.0, dnext, 0, H)
    dx, dWx, db = affine_grads(bi, dA.reshape(N * T, G), x.reshape(N * T, D), Wx)
    dWh = np.empty((H, G), dh.dtype)
    gemm(bi, TRANS, NOTRANS, H, G, N * T, 1.0, hprev, 0, H, dA, 0, G, 0.0, dWh, 0, G)
    return dx.reshape(N, T, D), dnext, dc, dWx, dWh, db
