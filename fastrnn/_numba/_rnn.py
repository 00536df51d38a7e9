"""Vanilla RNN over a sequence: forward, and backpropagation through time.

How it wins its speed: the whole time loop is one compiled call, with nothing
allocated inside it.  Forward: one GEMM computes the input projection of all T
steps straight into the output h (N, T, H); per step one GEMM adds
``h_{t-1} @ Wh`` into that step's slice (beta = 1; the slice is a strided matrix,
row stride T*H, which BLAS takes as is) and one vectorized pass applies
``tanh(. + b)`` in place.  Backward mirrors it: dh is copied once, then per step
one vectorized pass makes dA_t and one GEMM adds the gradient into h_{t-1}
straight into that copy (beta = 1); dx, dWx, dWh and db are whole-sequence
operations after the loop.  When T and N*T are large enough (``backend`` decides)
that per-step GEMM multiplies by a copy of Wh transposed once up front: OpenBLAS's
``dA_t @ Wh.T`` (a transposed operand) is up to 1.7x slower than the plain product
for these shapes, but the transpose costs as much as a few steps.

Layout: batch-major like the user's arrays, (N, T, .), so no transposes.  The
cache is (x, h0, Wx, Wh, h).  After its loop the backward pass builds ``hprev``
(N, T, H), the state each step started from (h0, h_0, .., h_{T-2}), with one copy
into the no longer needed copy of dh, so that dWh = hprev^T dA is a single GEMM
over all N*T rows.

Arrays that grow with N*T are allocated by the caller with NumPy, whose allocator
asks for huge pages (first-touching a 32 MB buffer from Numba's plain malloc costs
~3x as much in page faults), and filled here.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, gemm
from ._dense import affine_grads, copy_row, transpose_into
from ._jit import helper, kernel
from ._math import vtanh
from ._prefetch import AHEAD, fetch, fetch_for_write


@helper
def previous_states(h0, h, hprev):
    """Fills hprev (N, T, H): hprev[:, 0] = h0 and hprev[:, t] = h[:, t - 1]."""
    N, T, H = h.shape
    for n in range(N):  # one contiguous run per sequence
        copy_row(hprev[n, 0], h0[n])
        copy_row(hprev[n].reshape(T * H)[H:], h[n].reshape(T * H)[: (T - 1) * H])


@helper
def backprop_into_previous(bi, t, dA, Wh, WhT, dht, dh0):
    """Step t of BPTT: dht[:, t-1] += dA_t @ Wh.T, the gradient flowing back into h_{t-1} (at
    t = 0, dh0 = dA_0 @ Wh.T).  dA (N, T, G); by WhT when it is a transposed copy, else Wh.T."""
    N, T, G = dA.shape
    H = Wh.shape[0]
    out, c0, ldc, beta = (dht, (t - 1) * H, T * H, 1.0) if t > 0 else (dh0, 0, H, 0.0)
    if WhT.size:
        gemm(bi, NOTRANS, NOTRANS, N, H, G, 1.0, dA, t * G, T * G, WhT, 0, H, beta, out, c0, ldc)
    else:
        gemm(bi, NOTRANS, TRANS, N, H, G, 1.0, dA, t * G, T * G, Wh, 0, G, beta, out, c0, ldc)


@helper
def sequence_grads(bi, x, h0, h, Wx, dA, dht, dx, dWx, dWh):
    """After the BPTT loop: fills dx, dWx and dWh as GEMMs over all N*T rows; returns db.
    dht is spent by then and becomes hprev (see the module docstring)."""
    N, T, D = x.shape
    G = dA.shape[2]
    H = h.shape[2]
    db = affine_grads(bi, dA.reshape(N * T, G), x.reshape(N * T, D), Wx, dx.reshape(N * T, D), dWx)
    hprev = dht
    previous_states(h0, h, hprev)
    gemm(bi, TRANS, NOTRANS, H, G, N * T, 1.0, hprev, 0, H, dA, 0, G, 0.0, dWh, 0, G)
    return db


@helper
def forward_units(h, b, t, u0, u1, n0, n1):
    """Step t for hidden units [u0, u1) of rows [n0, n1): h_t = tanh(h_t + b) in place (h_t holds the
    input projection plus the recurrent product)."""
    for n in range(n0, n1):
        a, bu = h[n, t, u0:u1], b[u0:u1]
        for j in range(u1 - u0):
            a[j] = vtanh(a[j] + bu[j])


@helper
def backward_units(h, dht, dA, t, u0, u1):
    """BPTT step t for hidden units [u0, u1), every row: dA_t = dh_t (1 - h_t^2)."""
    N = h.shape[0]
    one = dht.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    for n in range(N):
        g, ht, da = dht[n, t, u0:u1], h[n, t, u0:u1], dA[n, t, u0:u1]
        for j in range(u1 - u0):
            da[j] = g[j] * (one - ht[j] * ht[j])


@helper
def backward_units_carried(h, dh, carry, dA, db, t, u0, u1, n0, n1):
    """The team's pass of BPTT step t for hidden units [u0, u1) of rows [n0, n1): as ``backward_units``, with
    the gradient into h_t = carry (step t+1's product, or dhT) plus dh[:, t] (when dh is not of size 0),
    summed in place into carry, which the step's product then overwrites; adds dA_t's column sums to db
    while its rows are in cache."""
    N, T, H = h.shape
    one = h.dtype.type(1)
    dbu = db[u0:u1]
    for n in range(n0, n1):
        if n + AHEAD < n1:  # what the forward left, and dA's rows: far (see _prefetch)
            row = ((n + AHEAD) * T + t) * H + u0
            fetch(h, row, u1 - u0)
            fetch_for_write(dA, row, u1 - u0)
            if dh.shape[2]:
                fetch(dh, row, u1 - u0)
        g, ht, da = carry[n, u0:u1], h[n, t, u0:u1], dA[n, t, u0:u1]
        if dh.shape[2]:
            d = dh[n, t, u0:u1]
            for j in range(u1 - u0):
                g[j] += d[j]
        for j in range(u1 - u0):
            a = g[j] * (one - ht[j] * ht[j])
            da[j] = a
            dbu[j] += a


@kernel("b", "f3", "f2", "f2", "f2", "f1", "o3")
def rnn_forward(bi, x, h0, Wx, Wh, b, h):
    """x (N, T, D), h0 (N, H): fills h (N, T, H)."""
    N, T, D = x.shape
    H = h0.shape[1]
    gemm(bi, NOTRANS, NOTRANS, N * T, H, D, 1.0, x, 0, D, Wx, 0, H, 0.0, h, 0, H)
    for t in range(T):
        if t == 0:
            gemm(bi, NOTRANS, NOTRANS, N, H, H, 1.0, h0, 0, H, Wh, 0, H, 1.0, h, 0, T * H)
        else:
            gemm(bi, NOTRANS, NOTRANS, N, H, H, 1.0, h, (t - 1) * H, T * H, Wh, 0, H, 1.0, h, t * H, T * H)
        forward_units(h, b, t, 0, H, 0, N)


@kernel("b", "f3", "f2", "f2", "f2", "f3", "o3", "o3", "o2", "o3", "o2", "o2")
def rnn_backward(bi, x, h0, Wx, Wh, h, dht, dA, WhT, dx, dWx, dWh):
    """BPTT.  dht (N, T, H) holds a copy of dh, the upstream gradient of every h_t, and is
    used as scratch; fills dA (scratch), dx, dWx, dWh; returns (dh0, db).  WhT is scratch
    of shape (H, H) to multiply by Wh transposed once, or of size 0 to use Wh.T."""
    N, T, _ = x.shape
    H = Wh.shape[0]
    dh0 = np.empty((N, 1, H), dht.dtype)
    if WhT.size:
        transpose_into(Wh, WhT)
    for t in range(T - 1, -1, -1):
        backward_units(h, dht, dA, t, 0, H)
        backprop_into_previous(bi, t, dA, Wh, WhT, dht, dh0)
    db = sequence_grads(bi, x, h0, h, Wx, dA, dht, dx, dWx, dWh)
    return dh0.reshape(N, H), db
