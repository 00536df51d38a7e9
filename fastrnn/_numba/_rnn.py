"""Vanilla RNN over a sequence: forward, and backpropagation through time.

How it wins its speed: the whole time loop is one compiled call.  The forward
pass computes the input projection of all T steps with one GEMM straight into
the output h (N, T, H), then per step one GEMM adds ``h_{t-1} @ Wh`` into that
step's slice (beta = 1, a strided matrix with row stride T*H, so no copies) and
one vectorized pass applies ``tanh(. + b)`` in place.  Nothing is allocated
inside the loop.  The backward pass mirrors it: per step one vectorized pass
makes dA_t and one GEMM makes the gradient into step t-1; dx, dWx, dWh and db
are four whole-sequence operations after the loop.

Layout: everything is batch-major like the user's arrays, (N, T, .).  The cache
keeps ``hprev`` (N, T, H), the hidden state each step started from (h0, h_0, ..,
h_{T-2}), so that dWh = hprev^T dA is a single GEMM over all N*T rows.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, check_blas_int, gemm
from ._dense import affine_grads, copy_row, copy_rows
from ._jit import kernel
from ._math import vtanh


@kernel("b", "f3", "f2", "f2", "f2", "f1")
def rnn_forward(bi, x, h0, Wx, Wh, b):
    """x (N, T, D), h0 (N, H) -> (h, hprev), both (N, T, H)."""
    N, T, D = x.shape
    H = h0.shape[1]
    check_blas_int(bi, max(N * T, T * H, D))
    h = np.empty((N, T, H), x.dtype)
    hprev = np.empty((N, T, H), x.dtype)
    gemm(bi, NOTRANS, NOTRANS, N * T, H, D, 1.0, x, 0, D, Wx, 0, H, 0.0, h, 0, H)
    copy_rows(hprev[:, 0], h0)
    for t in range(T):
        gemm(bi, NOTRANS, NOTRANS, N, H, H, 1.0, hprev, t * H, T * H, Wh, 0, H, 1.0, h, t * H, T * H)
        for n in range(N):
            a = h[n, t]
            for j in range(H):
                a[j] = vtanh(a[j] + b[j])
            if t + 1 < T:
                copy_row(hprev[n, t + 1], a)
    return h, hprev


@kernel("b", "f3", "f3", "f2", "f2", "f3", "f3")
def rnn_backward(bi, dh, x, Wx, Wh, h, hprev):
    """Returns (dx, dh0, dWx, dWh, db); dh (N, T, H) is the upstream gradient of every h_t."""
    N, T, D = x.shape
    H = Wh.shape[0]
    check_blas_int(bi, max(N * T, T * H, D))
    dA = np.empty((N, T, H), dh.dtype)  # gradient of each step's pre-activation
    dnext = np.zeros((N, H), dh.dtype)  # gradient flowing from step t+1 into h_t
    one = dh.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    for t in range(T - 1, -1, -1):
        for n in range(N):
            g, ht, da = dh[n, t], h[n, t], dA[n, t]
            dn = dnext[n]
            for j in range(H):
                da[j] = (g[j] + dn[j]) * (one - ht[j] * ht[j])
        gemm(bi, NOTRANS, TRANS, N, H, H, 1.0, dA, t * H, T * H, Wh, 0, H, 0.0, dnext, 0, H)
    dx, dWx, db = affine_grads(bi, dA.reshape(N * T, H), x.reshape(N * T, D), Wx)
    dWh = np.empty((H, H), dh.dtype)
    gemm(bi, TRANS, NOTRANS, H, H, N * T, 1.0, hprev, 0, H, dA, 0, H, 0.0, dWh, 0, H)
    return dx.reshape(N, T, D), dnext, dWx, dWh, db
