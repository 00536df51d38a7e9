"""GRU over a sequence (PyTorch's formulation, gates r, z, n): forward, and BPTT.

How it wins its speed: as in ``_rnn`` and ``_lstm``, the time loop is one compiled
call with nothing allocated inside it.  Forward: one GEMM puts the input projection
of all T steps, bias included, into the gate buffer (N, T, 3H) -- a call of its own
(``_dense.affine_forward``) before this kernel's: in the same compiled function as
the loop it made LLVM vectorize the loop worse, and the tiny forward took twice as
long (52 against 25 us, measured) --; per step one GEMM computes
``h_{t-1} @ Wh`` into its own (N, 3H) buffer -- the n gate needs the recurrent part
of its block apart from the input part, ``n = tanh(x Wx_n + b_n + r (h Wh_n + bhn))``,
so it cannot be accumulated into the gate buffer -- and a fused pointwise pass adds
bhn, activates r, z and n in place, keeps ``hn = h Wh_n + bhn`` and writes h_t.
Backward: the gradient flowing back from step to step is carried in one contiguous
(N, H) buffer (which ends as dh0): per step a fused pointwise pass adds dh_t to it,
makes that step's pre-activation gradients and leaves the direct term ``z g`` of
h_{t-1}'s gradient in it, and one GEMM adds ``dA_t @ Wh.T`` (beta = 1; by Wh
transposed once when that pays, see ``_rnn``).  dh is only read -- the RNN/LSTM
kernels' copy of dh, added into row by row, made the medium float32 loop 3 ms slower
(19.5 against 16.3 ms, measured).  dx, dWx and dWh are whole-sequence GEMMs after the
loop, over all N*T rows (hprev for dWh is built in scratch); db and dbhn are
summed row by row in the loop, while each row of dA is in L1 (a pass over the whole
dA after the loop cost ~1.5 ms of a 37 ms medium float32 backward).

dA (N, T, 4H) holds per step [dr, dz, dhn, dn]: dr, dz (the gradients of r's and
z's pre-activations), dhn = dn r (that of h Wh_n + bhn) and dn (that of n's
pre-activation).  Columns [0, 3H) are the gradient of ``h_{t-1} @ Wh`` (one GEMM per
step); [dr, dz] and dn are that of ``x @ Wx + b`` (two GEMMs each after the loop).

Vectorizing: as in ``_lstm``, a fused pass is short loops over one row of one step,
none writing more than two arrays.  r and z use the stable sigmoid (``_math``).

These kernels are the BLAS path (single steps, fewer units than half a panel,
``FASTRNN_NATIVE=0``); sequences otherwise run as a team job (``_team``), whose
fused passes for one slab of units are ``forward_units`` and ``backward_units`` below.

Layout (batch-major like the user's arrays): gates (N, T, 3H) hold the activated
r, z, n; ``hn`` (N, T, H).  The cache is (x, h0, Wx, Wh, h, gates, hn).  Arrays that
grow with N*T are allocated by the caller with NumPy (see ``_rnn``).
"""

import numpy as np

from ._blas import NOTRANS, TRANS, gemm
from ._dense import transpose_into
from ._jit import helper, kernel
from ._math import vsigmoid, vtanh
from ._prefetch import AHEAD, fetch, fetch_for_write
from ._rnn import previous_states


@helper
def forward_units(gates, b, bhn, hn, h0, h, t, u0, u1, n0, n1):
    """The team's fused pointwise pass of step t for hidden units [u0, u1) of rows [n0, n1) (``_team``): gates
    hold x Wx + h_{t-1} Wh in their r and z blocks and x Wx in their n block, without the bias, and get
    the activated r, z, n; hn holds h_{t-1} Wh_n and gets h_{t-1} Wh_n + bhn; writes h_t."""
    N, T, G = gates.shape
    H = G // 3
    for n in range(n0, n1):
        if n + AHEAD < n1:  # the gates and hn were just written by the products; h is far
            m = n + AHEAD
            if t == 0:
                fetch(h0, m * H + u0, u1 - u0)
            else:
                fetch(h, (m * T + t - 1) * H + u0, u1 - u0)
            fetch_for_write(h, (m * T + t) * H + u0, u1 - u0)
        a = gates[n, t]
        ar, az, an = a[u0:u1], a[H + u0 : H + u1], a[2 * H + u0 : 2 * H + u1]
        br, bz, bn = b[u0:u1], b[H + u0 : H + u1], b[2 * H + u0 : 2 * H + u1]
        q, bq, ht = hn[n, t, u0:u1], bhn[u0:u1], h[n, t, u0:u1]
        hp = h0[n, u0:u1] if t == 0 else h[n, t - 1, u0:u1]
        for j in range(u1 - u0):
            ar[j] = vsigmoid(ar[j] + br[j])
        for j in range(u1 - u0):
            az[j] = vsigmoid(az[j] + bz[j])
        for j in range(u1 - u0):
            qj = q[j] + bq[j]
            q[j] = qj
            an[j] = vtanh(an[j] + bn[j] + ar[j] * qj)
        for j in range(u1 - u0):
            ht[j] = an[j] + az[j] * (hp[j] - an[j])  # (1 - z) n + z h_{t-1}


@helper
def backward_units(gates, hn, h0, h, dh, carry, dA, db, dbhn, t, u0, u1, n0, n1):
    """The team's fused pointwise pass of BPTT step t for hidden units [u0, u1) of rows [n0, n1): dA_t =
    [dr, dz, dhn, dn] from the gradient into h_t (dh[:, t], when dh is not of size 0, plus carry, which
    then gets the direct part of h_{t-1}'s gradient, z g); adds the column sums to db and dbhn."""
    N, T, G = gates.shape
    H = G // 3
    one = gates.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    k = u1 - u0
    dbr, dbz, dbn, dbq = db[u0:u1], db[H + u0 : H + u1], db[2 * H + u0 : 2 * H + u1], dbhn[u0:u1]
    F = dA.shape[2]
    for n in range(n0, n1):
        if n + AHEAD < n1:  # what the forward left, and dA's rows: far; carry is the step's own
            m = n + AHEAD
            for q in range(3):
                fetch(gates, (m * T + t) * G + q * H + u0, k)
            for q in range(4):
                fetch_for_write(dA, (m * T + t) * F + q * H + u0, k)
            fetch(hn, (m * T + t) * H + u0, k)
            if t == 0:
                fetch(h0, m * H + u0, k)
            else:
                fetch(h, (m * T + t - 1) * H + u0, k)
            if dh.shape[2]:
                fetch(dh, (m * T + t) * H + u0, k)
        a, da = gates[n, t], dA[n, t]
        r, z, nn = a[u0:u1], a[H + u0 : H + u1], a[2 * H + u0 : 2 * H + u1]
        dr, dz = da[u0:u1], da[H + u0 : H + u1]
        dq, dn = da[2 * H + u0 : 2 * H + u1], da[3 * H + u0 : 3 * H + u1]
        q, g = hn[n, t, u0:u1], carry[n, u0:u1]
        hp = h0[n, u0:u1] if t == 0 else h[n, t - 1, u0:u1]
        if dh.shape[2]:
            d = dh[n, t, u0:u1]
            for j in range(k):
                g[j] += d[j]
        for j in range(k):
            nj = nn[j]
            dnj = g[j] * (one - z[j]) * (one - nj * nj)
            dn[j] = dnj
            dq[j] = dnj * r[j]
        for j in range(k):
            rj, zj = r[j], z[j]
            dr[j] = dn[j] * q[j] * (rj * (one - rj))
            dz[j] = g[j] * (hp[j] - nn[j]) * (zj * (one - zj))
        for j in range(k):
            dbr[j] += dr[j]
            dbz[j] += dz[j]
        for j in range(k):
            dbn[j] += dn[j]
            dbq[j] += dq[j]
        for j in range(k):
            g[j] *= z[j]


@kernel("b", "f2", "f2", "f1", "o3", "o3", "o3", "o2")
def gru_forward(bi, h0, Wh, bhn, h, gates, hn, R):
    """The recurrence: gates (N, T, 3H) hold x Wx + b on entry (the caller's one GEMM) and get the
    activated r, z, n; fills h (N, T, H) and hn; R (N, 3H) is scratch for h_{t-1} @ Wh."""
    N, T, H = h.shape
    G = 3 * H
    for t in range(T):
        if t == 0:
            gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, h0, 0, H, Wh, 0, G, 0.0, R, 0, G)
        else:
            gemm(bi, NOTRANS, NOTRANS, N, G, H, 1.0, h, (t - 1) * H, T * H, Wh, 0, G, 0.0, R, 0, G)
        for n in range(N):
            a, rec = gates[n, t], R[n]
            hp = h0[n] if t == 0 else h[n, t - 1]
            arz, an, rrz, rn = a[: 2 * H], a[2 * H :], rec[: 2 * H], rec[2 * H :]
            r, z = a[:H], a[H : 2 * H]
            q, ht = hn[n, t], h[n, t]
            for j in range(2 * H):  # r, z
                arz[j] = vsigmoid(arz[j] + rrz[j])
            for j in range(H):  # n
                qj = rn[j] + bhn[j]
                q[j] = qj
                an[j] = vtanh(an[j] + r[j] * qj)
            for j in range(H):
                ht[j] = an[j] + z[j] * (hp[j] - an[j])  # (1 - z) n + z h_{t-1}


@kernel("b", "f3", "f2", "f2", "f2", "f3", "f3", "f3", "f3", "o2", "o3", "o2", "o3", "o3", "o2", "o2")
def gru_backward(bi, x, h0, Wx, Wh, h, gates, hn, dh, carry, dA, WhT, hprev, dx, dWx, dWh):
    """BPTT.  dh (N, T, H) is the upstream gradient of every h_t (of size 0: zeros); carry (N, H)
    holds the final state's gradient on entry and dh0 on return.  Fills dA (N, T, 4H) and hprev
    (N, T, H) (scratch), dx, dWx and dWh; returns (db, dbhn).  WhT: as in ``_rnn.rnn_backward``."""
    N, T, D = x.shape
    H = Wh.shape[0]
    G = 3 * H
    one = dA.dtype.type(1)  # a typed constant: a bare 1 would promote float32 to float64
    sums = np.zeros(4 * H, dA.dtype)  # column sums of dA, added row by row while the row is in L1
    if WhT.size:
        transpose_into(Wh, WhT)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da, q = gates[n, t], dA[n, t], hn[n, t]
            r, z, nn = a[:H], a[H : 2 * H], a[2 * H :]
            dr, dz, dq, dn = da[:H], da[H : 2 * H], da[2 * H : 3 * H], da[3 * H :]
            g = carry[n]  # becomes the gradient of h_t, then the direct part of h_{t-1}'s
            hp = h0[n] if t == 0 else h[n, t - 1]
            d = dh[n, t]
            for j in range(d.size):
                g[j] += d[j]
            for j in range(H):
                nj = nn[j]
                dnj = g[j] * (one - z[j]) * (one - nj * nj)
                dn[j] = dnj
                dq[j] = dnj * r[j]
            for j in range(H):
                rj, zj = r[j], z[j]
                dr[j] = dn[j] * q[j] * (rj * (one - rj))
                dz[j] = g[j] * (hp[j] - nn[j]) * (zj * (one - zj))
            for j in range(4 * H):
                sums[j] += da[j]
            for j in range(H):
                g[j] *= z[j]
        # the gradient of h_{t-1}: carry += dA_t[:, :3H] @ Wh.T
        if WhT.size:
            gemm(bi, NOTRANS, NOTRANS, N, H, G, 1.0, dA, t * 4 * H, T * 4 * H, WhT, 0, H, 1.0, carry, 0, H)
        else:
            gemm(bi, NOTRANS, TRANS, N, H, G, 1.0, dA, t * 4 * H, T * 4 * H, Wh, 0, G, 1.0, carry, 0, H)
    # After the loop, over all N*T rows: the x part of dA is [dr, dz] (columns 0..2H) and dn (3H..4H).
    R, F = N * T, 4 * H
    gemm(bi, NOTRANS, TRANS, R, D, 2 * H, 1.0, dA, 0, F, Wx, 0, G, 0.0, dx, 0, D)
    gemm(bi, NOTRANS, TRANS, R, D, H, 1.0, dA, 3 * H, F, Wx, 2 * H, G, 1.0, dx, 0, D)
    gemm(bi, TRANS, NOTRANS, D, 2 * H, R, 1.0, x, 0, D, dA, 0, F, 0.0, dWx, 0, G)
    gemm(bi, TRANS, NOTRANS, D, H, R, 1.0, x, 0, D, dA, 3 * H, F, 0.0, dWx, 2 * H, G)
    previous_states(h0, h, hprev)
    gemm(bi, TRANS, NOTRANS, H, G, R, 1.0, hprev, 0, H, dA, 0, F, 0.0, dWh, 0, G)
    db = np.empty(G, dA.dtype)
    for j in range(2 * H):
        db[j] = sums[j]
    for j in range(H):
        db[2 * H + j] = sums[3 * H + j]
    return db, sums[2 * H : 3 * H].copy()
