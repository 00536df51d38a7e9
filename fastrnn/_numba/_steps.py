"""Single steps (``rnn_step``, ``lstm_step``), forward and backward: one compiled call each.

How it wins its speed: a step is two GEMMs and one pointwise pass forward, one pointwise pass
and four GEMMs backward, so at the small sizes what costs is everything around them.  Each step
function is a single kernel call on the step's own 2-D arrays: no detour through the sequence
kernels with T = 1 (which reshaped every array, copied dh into scratch and built the previous
states in Python and in the kernel), and the backward pass's dA, the only scratch, is allocated
inside the kernel.  The GEMMs write straight into the results (the forward ones into the gate
buffer, beta = 1 for the second), and the pointwise passes are short loops over one row, indexed
by the loop variable, so that LLVM vectorizes them.  Arrays whose size grows with the problem
(results, gates) are allocated by the caller with NumPy, which asks for huge pages (see
``backend``).

Caches: rnn_step (x, prev_h, Wx, Wh, next_h); lstm_step (x, prev_h, prev_c, Wx, Wh, gates,
tanh_c), the gates activated (i, f, o, g) and tanh of the new cell state.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, gemm
from ._dense import affine_grads
from ._jit import helper, kernel
from ._math import vtanh
from ._views import run


@helper
def _step_grads(bi, dA, x, prev_h, Wx, Wh, dx, dprev_h, dWx, dWh):
    """The four GEMMs of a step's backward pass from dA (N, G); returns db."""
    N, G = dA.shape
    H = prev_h.shape[1]
    db = affine_grads(bi, dA, x, Wx, dx, dWx)  # dx = dA Wx^T, dWx = x^T dA, db = column sums of dA
    gemm(bi, NOTRANS, TRANS, N, H, G, 1.0, dA, 0, G, Wh, 0, G, 0.0, dprev_h, 0, H)
    gemm(bi, TRANS, NOTRANS, H, G, N, 1.0, prev_h, 0, H, dA, 0, G, 0.0, dWh, 0, G)
    return db


@helper
def _input_and_recurrent(bi, x, prev_h, Wx, Wh, out):
    """out (N, G) = x Wx + prev_h Wh."""
    N, D = x.shape
    H, G = Wh.shape
    gemm(bi, NOTRANS, NOTRANS, N, G, D, 1.0, x, 0, D, Wx, 0, G, 0.0, out, 0, G)
    gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, prev_h, 0, H, Wh, 0, G, 1.0, out, 0, G)


@kernel("b", "f2", "f2", "f2", "f2", "f1", "o2")
def rnn_step_forward(bi, x, prev_h, Wx, Wh, b, next_h):
    """Fills next_h (N, H) = tanh(x Wx + prev_h Wh + b)."""
    _input_and_recurrent(bi, x, prev_h, Wx, Wh, next_h)
    N, H = next_h.shape
    for n in range(N):
        a = next_h[n]
        for j in range(H):
            a[j] = vtanh(a[j] + b[j])


@kernel("b", "f2", "f2", "f2", "f2", "f2", "f2", "o2", "o2", "o2", "o2")
def rnn_step_backward(bi, dnext_h, x, prev_h, Wx, Wh, next_h, dx, dprev_h, dWx, dWh):
    """Fills dx, dprev_h, dWx and dWh for ``rnn_step_forward``; returns db."""
    N, H = next_h.shape
    one = next_h.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    dA = np.empty((N, H), next_h.dtype)
    for n in range(N):
        g, h, da = dnext_h[n], next_h[n], dA[n]
        for j in range(H):
            da[j] = g[j] * (one - h[j] * h[j])
    return _step_grads(bi, dA, x, prev_h, Wx, Wh, dx, dprev_h, dWx, dWh)


@kernel("b", "f2", "f2", "f2", "f2", "f2", "f1", "o2", "o2", "o2", "o2")
def lstm_step_forward(bi, x, prev_h, prev_c, Wx, Wh, b, next_h, next_c, gates, tanh_c):
    """Fills next_h, next_c (N, H), the activated gates (N, 4H: i, f, o, g) and tanh_c = tanh(next_c).

    sigmoid(a) = tanh(a / 2) / 2 + 1/2, as in ``_lstm``: one vectorized tanh for all four gates.  The g
    block is a slice walked from 0: as ``for j in range(3 * H, 4 * H)`` LLVM did not vectorize it, and the
    pointwise pass took 2.7x its time (N = 100, H = 512: 306 us against 113)."""
    _input_and_recurrent(bi, x, prev_h, Wx, Wh, gates)
    N, H = next_h.shape
    half = gates.dtype.type(0.5)
    for n in range(N):
        a = gates[n]
        for j in range(3 * H):  # i, f, o
            a[j] = vtanh((a[j] + b[j]) * half) * half + half
        g, bg = a[3 * H :], b[3 * H :]
        for j in range(H):
            g[j] = vtanh(g[j] + bg[j])
        i, f, o = a[:H], a[H : 2 * H], a[2 * H : 3 * H]
        c_prev, c, tc, h = prev_c[n], next_c[n], tanh_c[n], next_h[n]
        for j in range(H):
            c[j] = f[j] * c_prev[j] + i[j] * g[j]
        for j in range(H):
            t = vtanh(c[j])
            tc[j] = t
            h[j] = o[j] * t


@kernel("b", "f2", "f2", "f2", "f2", "f2", "f2", "f2", "f2", "f2", "o2", "o2", "o2", "o2", "o2")
def lstm_step_backward(bi, dnext_h, dnext_c, x, prev_h, prev_c, Wx, Wh, gates, tanh_c, dx, dprev_h, dprev_c, dWx,
                       dWh):
    """Fills dx, dprev_h, dprev_c, dWx and dWh for ``lstm_step_forward``; returns db."""
    N, H = dnext_h.shape
    one = gates.dtype.type(1)
    dA = np.empty((N, 4 * H), gates.dtype)
    for n in range(N):  # runs, not slices: a dozen counted references a row (see _views)
        r, s = n * 4 * H, n * H
        i, f, o, g = run(gates, r, H), run(gates, r + H, H), run(gates, r + 2 * H, H), run(gates, r + 3 * H, H)
        di, df, do, dg = run(dA, r, H), run(dA, r + H, H), run(dA, r + 2 * H, H), run(dA, r + 3 * H, H)
        dh, dcn, tc = run(dnext_h, s, H), run(dnext_c, s, H), run(tanh_c, s, H)
        c_prev, dc = run(prev_c, s, H), run(dprev_c, s, H)
        for j in range(H):  # dc: the gradient into next_c, kept in dprev_c until the last loop
            oj, tcj = o[j], tc[j]
            do[j] = dh[j] * tcj * (oj * (one - oj))
            dc[j] = dcn[j] + dh[j] * oj * (one - tcj * tcj)
        for j in range(H):
            ij, gj = i[j], g[j]
            di[j] = dc[j] * gj * (ij * (one - ij))
            dg[j] = dc[j] * ij * (one - gj * gj)
        for j in range(H):
            fj = f[j]
            df[j] = dc[j] * c_prev[j] * (fj * (one - fj))
            dc[j] *= fj
    return _step_grads(bi, dA, x, prev_h, Wx, Wh, dx, dprev_h, dWx, dWh)
