"""LSTM over a sequence: forward, and backpropagation through time.

How it wins its speed: as in ``_rnn``, the time loop is one compiled call with
nothing allocated inside it.  Forward: one GEMM puts the input projection of all
T steps into the gate buffer (N, T, 4H); per step one GEMM adds ``h_{t-1} @ Wh``
into that step's slice (beta = 1, row stride T*4H) and a fused pointwise pass adds
the bias, activates the gates in place, and writes c_t, tanh(c_t) and h_t.
Backward: dh is copied once; per step a fused pointwise pass makes dA_t (N, 4H)
and the carried dc, and one GEMM adds the gradient into h_{t-1} straight into
that copy (beta = 1; by Wh transposed once when that pays, see ``_rnn``); dx, dWx,
dWh and db are whole-sequence operations after the loop, over all N*T rows (hprev
for dWh is built in the spent copy of dh).  That is this module's BLAS loop; the
team's backward (``_team``) reads dh in place and carries the gradient into
h_{t-1} in an (N, H) array instead (``backward_units_carried``).

Vectorizing: LLVM vectorizes a loop only if a few run-time checks (at most 8
pointer pairs) prove that what it writes does not overlap what it reads.  So a
fused pass is three short loops over one row of one step (all in L1), none
writing more than two arrays.  The four gates are activated in one uniform loop
with sigmoid(a) = tanh(a/2)/2 + 1/2: per column, ``tanh(a * s) * s + k`` with
(s, k) = (1/2, 1/2) for i, f, o and (1, 0) for g.  (That sigmoid is exact to an
ulp of 1 -- absolute, not relative, error for tiny gates -- which is all the LSTM
needs; the public ``sigmoid`` keeps relative accuracy.)

Layout (batch-major like the user's arrays): gates (N, T, 4H) in the order
i, f, o, g; ``c`` (N, T+1, H) holds c0 in step 0 and c_t in step t+1;
``tanh_c`` (N, T, H).  The cache is (x, h0, Wx, Wh, h, c, tanh_c, gates).  As in
``_rnn``, arrays that grow with N*T are allocated by the caller with NumPy.

The kernels take an initial cell state c0 and a gradient dcT into the last cell
state (zeros for the public sequence functions); the single steps have kernels of
their own (``_steps``).
"""

import numpy as np

from ._blas import NOTRANS, gemm
from ._dense import copy_rows, transpose_into
from ._jit import helper, inline_helper, kernel
from ._math import vtanh
from ._prefetch import AHEAD, fetch, fetch_for_write
from ._rnn import backprop_into_previous, sequence_grads
from ._views import run


@helper
def forward_units(gates, b, c, tanh_c, h, t, u0, u1, n0, n1):
    """The fused pointwise pass of step t for hidden units [u0, u1) of rows [n0, n1): activates the gates
    (i, f, o = sigmoid, g = tanh, of a + b) in place and writes c_t, tanh(c_t) and h_t."""
    N, T, G = gates.shape
    H = G // 4
    one = gates.dtype.type(1)
    half = gates.dtype.type(0.5)
    zero = gates.dtype.type(0)
    for n in range(n0, n1):
        if n + AHEAD < n1:  # the gates were just written by the product; c, tanh(c), h are far
            m = n + AHEAD
            fetch(c, (m * (T + 1) + t) * H + u0, u1 - u0)
            fetch_for_write(c, (m * (T + 1) + t + 1) * H + u0, u1 - u0)
            fetch_for_write(tanh_c, (m * T + t) * H + u0, u1 - u0)
            fetch_for_write(h, (m * T + t) * H + u0, u1 - u0)
        a = gates[n, t]
        if u1 - u0 == H:  # every unit: the four gate blocks are one run of 4H
            for j in range(G):  # sigmoid(a) = tanh(a/2)/2 + 1/2; the g block is a plain tanh
                s = half if j < 3 * H else one
                k = half if j < 3 * H else zero
                a[j] = vtanh((a[j] + b[j]) * s) * s + k
        else:
            for q in range(4):
                s = half if q < 3 else one
                k = half if q < 3 else zero
                aq, bq = a[q * H + u0 : q * H + u1], b[q * H + u0 : q * H + u1]
                for j in range(u1 - u0):
                    aq[j] = vtanh((aq[j] + bq[j]) * s) * s + k
        i, f, o, g = a[u0:u1], a[H + u0 : H + u1], a[2 * H + u0 : 2 * H + u1], a[3 * H + u0 : 3 * H + u1]
        c_prev, c_next, tc, ht = c[n, t, u0:u1], c[n, t + 1, u0:u1], tanh_c[n, t, u0:u1], h[n, t, u0:u1]
        for j in range(u1 - u0):
            c_next[j] = f[j] * c_prev[j] + i[j] * g[j]
        for j in range(u1 - u0):
            tcj = vtanh(c_next[j])
            tc[j] = tcj
            ht[j] = o[j] * tcj


@inline_helper
def _row_gradients(dhn, dcn, c_prev, tc, i, f, o, g, di, df, do, dg):
    """One row of a BPTT step for a run of units: dA (di, df, do, dg) from the gradient into h_t (dhn)
    and into c_t (dcn, which then becomes the gradient into c_{t-1}); i, f, o, g are the activated gates."""
    one = dcn.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    for j in range(dcn.size):
        dhj, tcj, oj = dhn[j], tc[j], o[j]
        do[j] = dhj * tcj * (oj * (one - oj))
        dcn[j] += dhj * oj * (one - tcj * tcj)
    for j in range(dcn.size):
        ij, gj = i[j], g[j]
        di[j] = dcn[j] * gj * (ij * (one - ij))
        dg[j] = dcn[j] * ij * (one - gj * gj)
    for j in range(dcn.size):
        fj = f[j]
        df[j] = dcn[j] * c_prev[j] * (fj * (one - fj))
        dcn[j] *= fj


@helper
def backward_units(gates, c, tanh_c, dht, dc, dA, t, u0, u1):
    """The fused pointwise pass of BPTT step t for hidden units [u0, u1), every row: dA_t from the
    gradient into h_t (dht[:, t]) and into c_t (dc, which then becomes the gradient into c_{t-1})."""
    N, T, G = gates.shape
    H = G // 4
    w = u1 - u0
    for n in range(N):  # runs, not slices: twelve counted references a row (see _views)
        # unit u0 of the row's gates and dA, of its dh and tanh(c), of c_{t-1} (c holds c0 in step 0)
        ga, ha, ca = (n * T + t) * G + u0, (n * T + t) * H + u0, (n * (T + 1) + t) * H + u0
        _row_gradients(run(dht, ha, w), run(dc, n * H + u0, w), run(c, ca, w), run(tanh_c, ha, w),
                       run(gates, ga, w), run(gates, ga + H, w), run(gates, ga + 2 * H, w), run(gates, ga + 3 * H, w),
                       run(dA, ga, w), run(dA, ga + H, w), run(dA, ga + 2 * H, w), run(dA, ga + 3 * H, w))


@helper
def backward_units_carried(gates, c, tanh_c, dh, carry, dc, dA, db, t, u0, u1, n0, n1):
    """The team's pointwise pass of BPTT step t for hidden units [u0, u1) of rows [n0, n1): as
    ``backward_units``, with the gradient into h_t = carry (step t+1's product, or dhT) plus dh[:, t]
    (when dh is not of size 0), summed in place into carry, which the step's product then overwrites;
    adds dA_t's column sums to db while its rows are in cache."""
    N, T, G = gates.shape
    H = G // 4
    k = u1 - u0
    dbi, dbf, dbo, dbg = db[u0:u1], db[H + u0 : H + u1], db[2 * H + u0 : 2 * H + u1], db[3 * H + u0 : 3 * H + u1]
    for n in range(n0, n1):
        if n + AHEAD < n1:  # what the forward left, and dA's rows: far; carry and dc are the step's own
            m = n + AHEAD
            for q in range(4):
                fetch(gates, (m * T + t) * G + q * H + u0, k)
                fetch_for_write(dA, (m * T + t) * G + q * H + u0, k)
            fetch(c, (m * (T + 1) + t) * H + u0, k)
            fetch(tanh_c, (m * T + t) * H + u0, k)
            if dh.shape[2]:
                fetch(dh, (m * T + t) * H + u0, k)
        a, da = gates[n, t], dA[n, t]
        di, df = da[u0:u1], da[H + u0 : H + u1]
        do, dg = da[2 * H + u0 : 2 * H + u1], da[3 * H + u0 : 3 * H + u1]
        dhn = carry[n, u0:u1]
        if dh.shape[2]:
            d = dh[n, t, u0:u1]
            for j in range(k):
                dhn[j] += d[j]
        _row_gradients(dhn, dc[n, u0:u1], c[n, t, u0:u1], tanh_c[n, t, u0:u1],
                       a[u0:u1], a[H + u0 : H + u1], a[2 * H + u0 : 2 * H + u1], a[3 * H + u0 : 3 * H + u1],
                       di, df, do, dg)
        for j in range(k):
            dbi[j] += di[j]
            dbf[j] += df[j]
        for j in range(k):
            dbo[j] += do[j]
            dbg[j] += dg[j]


@kernel("b", "f3", "f2", "f2", "f2", "f2", "f1", "o3", "o3", "o3", "o3")
def lstm_forward(bi, x, h0, c0, Wx, Wh, b, h, c, tanh_c, gates):
    """x (N, T, D), h0 and c0 (N, H): fills h, c, tanh_c and gates; see the module docstring."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 4 * H
    copy_rows(c[:, 0], c0)
    gemm(bi, NOTRANS, NOTRANS, N * T, G, D, 1.0, x, 0, D, Wx, 0, G, 0.0, gates, 0, G)
    for t in range(T):
        if t == 0:
            gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, h0, 0, H, Wh, 0, G, 1.0, gates, 0, T * G)
        else:
            gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, h, (t - 1) * H, T * H, Wh, 0, G, 1.0, gates, t * G, T * G)
        forward_units(gates, b, c, tanh_c, h, t, 0, H, 0, N)


@kernel("b", "f2", "f3", "f2", "f2", "f2", "f3", "f3", "f3", "f3", "o3", "o3", "o2", "o3", "o2", "o2")
def lstm_backward(bi, dcT, x, h0, Wx, Wh, h, c, tanh_c, gates, dht, dA, WhT, dx, dWx, dWh):
    """BPTT.  dcT (N, H) is the gradient into the last cell state; dht (N, T, H) holds a copy
    of dh, the upstream gradient of every h_t, and is used as scratch.  Fills dA (scratch),
    dx, dWx and dWh; returns (dh0, dc0, db).  WhT: as in ``_rnn.rnn_backward``."""
    N, T, _ = x.shape
    H = Wh.shape[0]
    G = 4 * H
    dc = dcT.copy()  # gradient into c_t
    dh0 = np.empty((N, 1, H), dht.dtype)
    if WhT.size:  # multiply by Wh transposed once (see _rnn)
        transpose_into(Wh, WhT)
    for t in range(T - 1, -1, -1):
        backward_units(gates, c, tanh_c, dht, dc, dA, t, 0, H)
        backprop_into_previous(bi, t, dA, Wh, WhT, dht, dh0)
    db = sequence_grads(bi, x, h0, h, Wx, dA, dht, dx, dWx, dWh)
    return dh0.reshape(N, H), dc, db
