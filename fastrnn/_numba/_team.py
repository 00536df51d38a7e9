"""Sequence and affine layers as jobs of fastrnn._native's team (see ``_packed``).

How it wins its speed: one team job per pass, whose threads each own a slab of hidden units -- all
gates of those units:

- forward: each thread computes the input projection of its columns (x Wx, all N*T rows, into the
  gate buffer), packs its slab of Wh once, then per step computes its tiles of h_{t-1} Wh and runs the
  fused pointwise pass (``forward_units`` of ``_rnn``/``_lstm``, the same code as the BLAS loops;
  ``_gru``'s own, see the GRU section), and meets the others at one barrier per step.  The RNN runs
  its pass on each unit block's tile right after it; the LSTM and the GRU run theirs once per step
  over the whole slab, after its tiles: a Numba pass pays a fixed cost per row and call (slices,
  LLVM's overlap checks, loop entries) that a block of NR units did not amortize -- the LSTM's
  forward pass alone (medium, float32, NR = 64, one thread, off the layer) took 1.6-1.9x the time of
  the C pass on the same arrays.  Measured (numba forward, two trees alternated in one process,
  medians of 12 rounds, float32 unless said): GRU 0.94-0.99x the time at the small, medium and large
  sizes with 1 and 2 threads (float64: small 0.97-1.00x, medium 0.91-0.94x), LSTM 0.98-1.00x (float64
  0.99-1.00x), the tiny layers 1.00x; the RNN's per-block pass (a single tanh per unit) measured 1.03x
  slower as a slab pass at the small size with 2 threads, and stays;
- backward: each thread packs its slab of Wh^T, then per step (last first) runs the pointwise pass of
  its units, meets the others, and adds its units of dA_t Wh^T into the gradient of h_{t-1}; after the
  loop it computes a share of the rows of dX and its own columns of dWx and dWh (Hprev, the state
  each step started from, read from h0 and h where they lie: ``pgemm_prev``).  Every cell
  reads dh where it lies and carries the gradient into h_{t-1} in one (N, H) array, which the step's
  product writes and the next step's pointwise pass reads, each thread only its own units; db is
  summed in the pointwise pass, while dA_t is in cache.  (The LSTM, and until later the RNN, copied dh
  before the team started, added each product into the copy and summed db in one more pass over dA:
  the LSTM's backward alone took 2-3 % longer with 2 threads, the same with one; the RNN's 0-2 %.)
  From BATCH_MIN_ROWS rows a thread on, each cell's backward splits its loop by rows of the batch
  instead (``_lstm_bptt_rows``): a thread runs its sequences' whole loop alone, all units, by all of
  the packed Wh^T, without a barrier between steps, writing only whole rows of its own (medium float32,
  2 threads, against the split by units: LSTM 0.988x the time, RNN 0.991x, GRU 0.984x, the CPUs near).

The barrier is split (``sync_arrive``/``sync_wait``): a thread arrives as soon as its units of the step
are written, starts the next product on those rows of h_t (dA_t), its own and in its cache, and waits
for the others only before their rows (``_pmm_split``); forward, only the first unit block's product is
split (splitting every block's cost the fused pass its data in cache).  As in the Cython backend
(_kernels.pyx, "the team"): 1-3 % less time with 2 threads.

Every product runs on the packed micro-kernels (fastrnn/_native/packed.h), never on BLAS: an OpenBLAS
call leaves its idle threads spinning for ~0.1 s and would take the team's second core.  The affine
layers use the same products for the same reason, split by rows or columns (whichever makes every
thread pack the smaller operand), and so does the softmax loss: a share of the rows per thread.

Layout: batch-major as the rest of the backend (x, h (N, T, .); gates, dA (N, T, G); c (N, T+1, H)
with c0 in step 0; the GRU's dA (N, T, 4H), see its section).  A task receives an int64 block of sizes and array addresses (the ``_W_*``
indices), built by its launching kernel (``*_team``), which checks every size before it starts the
team, because a task can raise nothing.  A product that cannot allocate a bigger work buffer sets the
block's failed word, and the launcher raises MemoryError.
"""

import numpy as np

from ._gru import backward_units as gru_backward_units
from ._gru import forward_units as gru_forward_units
from ._jit import helper, kernel
from ._lstm import backward_units_carried as lstm_backward_units
from ._lstm import forward_units as lstm_forward_units
from ._packed import (carray, pgemm, pgemm_prev, pmm, pmm_part, pmm_slab, pointer, ppack, resident_product,
                      sync_arrive, sync_wait, task, team_run, words)
from ._rnn import backward_units_carried as rnn_backward_units
from ._rnn import forward_units as rnn_forward_units
from ._words import softmax_rows

__all__ = ["TASKS", "rnn_forward_team", "rnn_backward_team", "lstm_forward_team", "lstm_backward_team",
           "own_items", "own_bytes", "gru_forward_team", "gru_backward_team", "affine_forward_team",
           "affine_backward_team", "softmax_loss_team"]

# The int64 block of a task: sizes, then the addresses of its arrays.
(_W_N, _W_T, _W_D, _W_H, _W_NR, _W_THREADS, _W_WORK, _W_FAILED, _W_PSIZE, _W_X, _W_H0, _W_WX, _W_WH, _W_B, _W_OUT,
 _W_C, _W_TC, _W_GATES, _W_DHT, _W_DC, _W_DA, _W_P, _W_WBUF, _W_DX, _W_DWX, _W_DWH, _W_DH0, _W_DB) = range(28)
# the GRU's bhn, hn, dbhn and size of dh's last axis (H, or 0: no dh)
_W_BHN, _W_HN, _W_DBHN, _W_DHSIZE = range(28, 32)
# the LSTM backward: pages of threads 1.. own for the gradients they carry (0: none; see _lstm_backward)
_W_CARRY, _W_CARRY_STRIDE = range(32, 34)
_WORDS = 34
CARRY_PAGE = 4096
# A backward pass splits its loop by rows of the batch from BATCH_MIN_ROWS rows a thread on, by units
# below (cython's BATCH_MIN_ROWS, where the measurements are; see _lstm_bptt_rows)
BATCH_MIN_ROWS = 16
# ... and the forwards from FORWARD_MIN_ROWS (cython's FORWARD_MIN_ROWS; _lstm_forward_rows), the RNN's
# not where its packed Wh would leave L2 (cython's ROWS_L2_BYTES; _rnn_forward_by_rows)
FORWARD_MIN_ROWS = 48
ROWS_L2_BYTES = 1048576.0
_U8 = np.uint8(0)


@helper
def _share(n, tid, nth):
    """Thread tid's part [a, b) of n items: contiguous, as even as possible."""
    return n * tid // nth, n * (tid + 1) // nth


@helper
def _slab(H, nr, tid, nth):
    """Thread tid's unit blocks [ub0, ub1) and hidden units [u0, u1)."""
    nb = (H + nr - 1) // nr
    ub0, ub1 = _share(nb, tid, nth)
    return ub0, ub1, min(H, ub0 * nr), min(H, ub1 * nr)


@helper
def _unit_block(i, ub0, ub1, t):
    """The i-th unit block a thread works on at step t: its slab's blocks in order at even steps, in
    reverse at odd ones.  A slab's packed weights about fill L2 (2 MiB a thread at H = 512, 2 threads):
    walked the same way every step, each panel is evicted just before it is needed again; walked back
    and forth, the panels read last at one step are read first at the next, while still in L2."""
    return ub0 + i if t % 2 == 0 else ub1 - 1 - i


@helper
def _next_unit_block(i, ub0, ub1, t):
    """The unit block after the i-th at step t, or -1 after the slab's last (pmm's next_ub)."""
    return _unit_block(i + 1, ub0, ub1, t) if i + 1 < ub1 - ub0 else -1


@helper
def _pmm_split(own, M, K, u0, u1, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse):
    """Part of the product C (+)= A[:, 0:K] @ panels (ub0..ub1-1, *), K a multiple of H (a step's h_t, or
    its dA_t of K / H gate blocks): the rows of each block of H that belong to units [u0, u1) (own: what
    this thread wrote, before the barrier's wait) or the others (not own: after it).  Returns the beta of
    the next part (1 once this part wrote anything)."""
    for g in range(K // H):
        k = g * H
        if own:
            if u1 > u0:
                pmm_part(M, K, k + u0, k + u1, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse)
                beta = 1
        else:
            if u0 > 0:
                pmm_part(M, K, k, k + u0, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse)
                beta = 1
            if u1 < H:
                pmm_part(M, K, k + u1, k + H, A, a0, lda, P, H, gates, ub0, ub1, C, c0, ldc, beta, reverse)
                beta = 1
    return beta


@helper
def _bptt_product(sy, nth, N, K, u0, u1, A, a0, lda, P, H, ub0, ub1, t, C, beta):
    """A backward step's product C[:, this slab] (+)= A[a0 + ...] (N, K) @ the packed Wh^T, once this
    thread's pointwise pass wrote its units of A = dA_t: it arrives at the barrier, multiplies the rows
    of A it wrote, waits for the others and multiplies theirs (one thread: one whole product).  The
    thread that arrives last, with nothing to wait for, still sums in that order, so that every run gives
    the same bits (as one whole product it summed in another order than when it arrived earlier)."""
    token = sync_arrive(sy)
    if nth > 1:
        beta = _pmm_split(True, N, K, u0, u1, A, a0, lda, P, H, 1, ub0, ub1, C, 0, H, beta, t % 2)
        sync_wait(sy, token)
        _pmm_split(False, N, K, u0, u1, A, a0, lda, P, H, 1, ub0, ub1, C, 0, H, beta, t % 2)
    else:
        pmm_slab(N, K, A, a0, lda, P, H, ub0, ub1, t, C, 0, H, beta)


@helper
def _block(arg):
    return carray(words(arg, _WORDS), (_WORDS,))


@helper
def _work(w):
    return carray(pointer(w[_W_WBUF], _U8), (w[_W_WORK] * w[_W_THREADS],))


@helper
def _by_rows(N, nth, min_rows):
    """Whether a pass on nth threads splits its loop by rows of the batch: min_rows or more a thread."""
    return nth > 1 and N >= min_rows * nth


@helper
def _rnn_forward_by_rows(N, H, nr, nth, item):
    """Whether the RNN forward splits by rows (FORWARD_MIN_ROWS), except where a thread's slab of the packed
    Wh fits in ROWS_L2_BYTES and all of Wh does not (cython's rnn_fwd_by_rows)."""
    whole = float((H + nr - 1) // nr * nr * H * item)
    return _by_rows(N, nth, FORWARD_MIN_ROWS) and not (whole > ROWS_L2_BYTES and whole / nth <= ROWS_L2_BYTES)


@helper
def _bptt_by_rows(w, N, nth):
    """Whether a backward pass splits its loop by rows of the batch (BATCH_MIN_ROWS; the bias gradients'
    parts go to the threads' own pages)."""
    return _by_rows(N, nth, BATCH_MIN_ROWS) and w[_W_CARRY] != 0


@helper
def _own(w, k, n, z):
    """Thread k's (k >= 1) own pages, as n items of z's type."""
    return carray(pointer(w[_W_CARRY] + (k - 1) * w[_W_CARRY_STRIDE], z), (n,))


@helper
def _own_part(w, tid, shared, n, z):
    """Where thread tid sums its part of a bias gradient of n items in a loop split by rows: thread 0
    into the gradient itself, threads 1.. into their own pages; zeroed here."""
    part = shared if tid == 0 else _own(w, tid, n, z)
    part[:] = 0
    return part


@helper
def _add_parts(w, nth, dst, offset, n, z):
    """dst[0:n] += the parts threads 1.. summed at offset (items) in their own pages, in thread order (the
    same bits every run): a bias gradient of a loop split by rows."""
    for k in range(1, nth):
        part = _own(w, k, offset + n, z)
        for j in range(n):
            dst[j] += part[offset + j]


@helper
def _gradients(w, tid, nth, x, h0, h, Wx, dA, dx, dWx, dWh, gates, u0, u1):
    """After BPTT: a share of the rows of dX = dA Wx^T, then this slab's columns of dWx = X^T dA and of
    dWh = Hprev^T dA (Hprev read from h0 and h where they lie).  Every dA_t is complete: the last step's
    barrier.  (db is the caller's: summed per step, in the pointwise passes.)"""
    N, T, D, H = w[_W_N], w[_W_T], w[_W_D], w[_W_H]
    G = gates * H
    W, wb = _work(w), w[_W_WORK]
    r0, r1 = _share(N * T, tid, nth)
    status = 0
    if r1 > r0:  # op(B) = Wx^T: Wx (D, G) is stored as op(B)'s columns
        status |= pgemm(r1 - r0, G, dA, r0 * G, G, 0, Wx, 0, G, 1, D, 1, 0, D, dx, r0 * D, D, 0, W, tid * wb, wb)
    status |= pgemm(D, N * T, x, 0, D, 1, dA, 0, G, 0, H, gates, u0, u1, dWx, 0, G, 0, W, tid * wb, wb)
    status |= pgemm_prev(H, N * T, h, h0, H, T, dA, 0, G, H, gates, u0, u1, dWh, 0, G, 0, W, tid * wb, wb)
    if status:
        w[_W_FAILED] = 1


# ------------------------------------------------------------------ vanilla RNN


@helper
def _project(w, tid, n0, n1, u0, u1, x, Wx, blocks, out):
    """A forward's input projection on thread tid: out = x Wx for the sequences [n0, n1) of x (N, T, D) and
    the units [u0, u1) of each of the blocks gate blocks of out (N, T, blocks * H: batch-major, so the
    sequences' rows are one run); a failed allocation of pgemm's work buffer sets _W_FAILED."""
    T, D, H, wb = w[_W_T], w[_W_D], w[_W_H], w[_W_WORK]
    G = blocks * H
    if pgemm((n1 - n0) * T, D, x, n0 * T * D, D, 0, Wx, 0, G, 0, H, blocks, u0, u1, out, n0 * T * G, G, 0, _work(w),
             tid * wb, wb):
        w[_W_FAILED] = 1


@helper
def _rnn_forward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR]
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, H))
    Wh = carray(pointer(w[_W_WH], z), (H, H))
    b = carray(pointer(w[_W_B], z), (H,))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    if _rnn_forward_by_rows(N, H, nr, nth, x.itemsize):
        _rnn_forward_rows(w, sy, tid, nth, x, h0, Wx, Wh, b, h, P, ub0, ub1)
        return
    _project(w, tid, 0, N, u0, u1, x, Wx, 1, h)
    ppack(H, H, 1, Wh, H, 0, P, ub0, ub1)  # only this thread reads its panels
    token = -1
    for t in range(T):
        if nth > 1 and t > 0 and ub1 > ub0:  # the rows of h_{t-1} this thread wrote, while the others finish
            # theirs (the last to arrive too, so that every run sums in the same order: see _bptt_product)
            ub = _unit_block(0, ub0, ub1, t)
            _pmm_split(True, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 1, ub, ub + 1, h, t * H, T * H, 1, 0)
        sync_wait(sy, token)
        for iu in range(ub1 - ub0):
            ub = _unit_block(iu, ub0, ub1, t)
            nxt = _next_unit_block(iu, ub0, ub1, t)  # pmm fetches its first block meanwhile
            if t == 0:
                pmm(N, H, h0, 0, H, P, H, 1, ub, h, 0, T * H, 1, nxt)
            elif nth > 1 and iu == 0:
                _pmm_split(False, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 1, ub, ub + 1, h, t * H, T * H, 1, 0)
            else:
                pmm(N, H, h, (t - 1) * H, T * H, P, H, 1, ub, h, t * H, T * H, 1, nxt)
            rnn_forward_units(h, b, t, ub * nr, min(H, ub * nr + nr), 0, N)
        token = sync_arrive(sy)
    sync_wait(sy, token)


@helper
def _rnn_forward_rows(w, sy, tid, nth, x, h0, Wx, Wh, b, h, P, ub0, ub1):
    """The RNN forward split by rows of the batch (FORWARD_MIN_ROWS), as _lstm_forward_rows: thread tid
    projects its sequences [n0, n1) (x Wx, all columns), packs its slab of Wh, meets the others once, then
    runs its rows alone through all steps and unit blocks, by all of the packed Wh."""
    N, T, H, nr = w[_W_N], w[_W_T], w[_W_H], w[_W_NR]
    n0, n1 = _share(N, tid, nth)
    _project(w, tid, n0, n1, 0, H, x, Wx, 1, h)
    ppack(H, H, 1, Wh, H, 0, P, ub0, ub1)
    sync_wait(sy, sync_arrive(sy))  # every slab of Wh packed
    nb = (H + nr - 1) // nr
    for t in range(T):
        for iu in range(nb):
            ub = _unit_block(iu, 0, nb, t)
            nxt = _next_unit_block(iu, 0, nb, t)
            if t == 0:
                pmm(n1 - n0, H, h0, n0 * H, H, P, H, 1, ub, h, n0 * T * H, T * H, 1, nxt)
            else:
                pmm(n1 - n0, H, h, n0 * T * H + (t - 1) * H, T * H, P, H, 1, ub, h, n0 * T * H + t * H, T * H, 1, nxt)
            rnn_forward_units(h, b, t, ub * nr, min(H, ub * nr + nr), n0, n1)


@helper
def _rnn_backward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR]
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, H))
    Wh = carray(pointer(w[_W_WH], z), (H, H))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    dh = carray(pointer(w[_W_DHT], z), (N, T, w[_W_DHSIZE]))
    carry = carray(pointer(w[_W_DH0], z), (N, H))
    dA = carray(pointer(w[_W_DA], z), (N, T, H))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    dx = carray(pointer(w[_W_DX], z), (N, T, D))
    dWx = carray(pointer(w[_W_DWX], z), (D, H))
    dWh = carray(pointer(w[_W_DWH], z), (H, H))
    db = carray(pointer(w[_W_DB], z), (H,))
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    ppack(H, H, 1, Wh, H, 1, P, ub0, ub1)  # Wh^T, this thread's slab of units
    if _bptt_by_rows(w, N, nth):  # by rows of the batch, as _lstm_bptt_rows
        part = _own_part(w, tid, db, H, z)
        n0, n1 = _share(N, tid, nth)
        nb = (H + nr - 1) // nr
        sync_wait(sy, sync_arrive(sy))  # every slab of Wh^T packed
        for t in range(T - 1, -1, -1):
            rnn_backward_units(h, dh, carry, dA, part, t, 0, H, n0, n1)
            pmm_slab(n1 - n0, H, dA, (n0 * T + t) * H, T * H, P, H, 0, nb, t, carry, n0 * H, H, 0)
        sync_wait(sy, sync_arrive(sy))  # every dA_t complete (_gradients), every part of db summed
        if tid == 0:
            _add_parts(w, nth, db, 0, H, z)
    else:
        db[u0:u1] = 0
        for t in range(T - 1, -1, -1):
            rnn_backward_units(h, dh, carry, dA, db, t, u0, u1, 0, N)  # the slab, then the barrier
            # the gradient into h_{t-1} (at t = 0: dh0) = dA_t Wh^T, into carry
            _bptt_product(sy, nth, N, H, u0, u1, dA, t * H, T * H, P, H, ub0, ub1, t, carry, 0)
    _gradients(w, tid, nth, x, h0, h, Wx, dA, dx, dWx, dWh, 1, u0, u1)


# ------------------------------------------------------------------ LSTM


@helper
def _lstm_forward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR]
    G = 4 * H
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, G))
    Wh = carray(pointer(w[_W_WH], z), (H, G))
    b = carray(pointer(w[_W_B], z), (G,))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    c = carray(pointer(w[_W_C], z), (N, T + 1, H))
    tanh_c = carray(pointer(w[_W_TC], z), (N, T, H))
    gates = carray(pointer(w[_W_GATES], z), (N, T, G))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    if _by_rows(N, nth, FORWARD_MIN_ROWS):
        _lstm_forward_rows(w, sy, tid, nth, x, h0, Wx, Wh, b, h, c, tanh_c, gates, P, ub0, ub1)
        return
    _project(w, tid, 0, N, u0, u1, x, Wx, 4, gates)
    ppack(H, H, 4, Wh, G, 0, P, ub0, ub1)
    token = -1
    for t in range(T):
        if nth > 1 and t > 0 and ub1 > ub0:  # the rows of h_{t-1} this thread wrote, while the others finish
            # theirs (the last to arrive too, so that every run sums in the same order: see _bptt_product)
            ub = _unit_block(0, ub0, ub1, t)
            _pmm_split(True, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 4, ub, ub + 1, gates, t * G, T * G, 1, 0)
        sync_wait(sy, token)
        for iu in range(ub1 - ub0):
            ub = _unit_block(iu, ub0, ub1, t)
            nxt = _next_unit_block(iu, ub0, ub1, t)  # pmm fetches its first block meanwhile
            if t == 0:
                pmm(N, H, h0, 0, H, P, H, 4, ub, gates, 0, T * G, 1, nxt)
            elif nth > 1 and iu == 0:
                _pmm_split(False, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 4, ub, ub + 1, gates, t * G, T * G, 1,
                           0)
            else:
                pmm(N, H, h, (t - 1) * H, T * H, P, H, 4, ub, gates, t * G, T * G, 1, nxt)
        if ub1 > ub0:  # the slab's pointwise pass, once its products are done (see the module docstring)
            lstm_forward_units(gates, b, c, tanh_c, h, t, u0, u1, 0, N)
        token = sync_arrive(sy)
    sync_wait(sy, token)


@helper
def _lstm_forward_rows(w, sy, tid, nth, x, h0, Wx, Wh, b, h, c, tanh_c, gates, P, ub0, ub1):
    """The LSTM forward split by rows of the batch (FORWARD_MIN_ROWS): thread tid projects its sequences
    [n0, n1) (x Wx, all columns: one run of rows of the batch-major gate buffer), packs its slab of Wh,
    meets the others once (every slab packed), then runs its rows alone through all steps, all unit
    blocks, by all of the packed Wh, without a barrier between steps, writing whole rows of its own."""
    N, T, H, nr = w[_W_N], w[_W_T], w[_W_H], w[_W_NR]
    G = 4 * H
    n0, n1 = _share(N, tid, nth)
    _project(w, tid, n0, n1, 0, H, x, Wx, 4, gates)
    ppack(H, H, 4, Wh, G, 0, P, ub0, ub1)
    sync_wait(sy, sync_arrive(sy))  # every slab of Wh packed
    nb = (H + nr - 1) // nr
    for t in range(T):
        for iu in range(nb):
            ub = _unit_block(iu, 0, nb, t)
            nxt = _next_unit_block(iu, 0, nb, t)
            if t == 0:
                pmm(n1 - n0, H, h0, n0 * H, H, P, H, 4, ub, gates, n0 * T * G, T * G, 1, nxt)
            else:
                pmm(n1 - n0, H, h, n0 * T * H + (t - 1) * H, T * H, P, H, 4, ub, gates, n0 * T * G + t * G, T * G, 1,
                    nxt)
        lstm_forward_units(gates, b, c, tanh_c, h, t, 0, H, n0, n1)


@helper
def _lstm_backward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR]
    G = 4 * H
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, G))
    Wh = carray(pointer(w[_W_WH], z), (H, G))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    dA = carray(pointer(w[_W_DA], z), (N, T, G))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    dx = carray(pointer(w[_W_DX], z), (N, T, D))
    dWx = carray(pointer(w[_W_DWX], z), (D, G))
    dWh = carray(pointer(w[_W_DWH], z), (H, G))
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    ppack(G, H, 1, Wh, G, 1, P, ub0, ub1)  # Wh^T, this thread's slab of units
    if _bptt_by_rows(w, N, nth):
        _lstm_bptt_rows(w, sy, tid, nth, z, dA, P)
    else:
        _lstm_bptt_units(w, sy, tid, nth, z, dA, P, ub0, ub1, u0, u1)
    _gradients(w, tid, nth, x, h0, h, Wx, dA, dx, dWx, dWh, 4, u0, u1)


@helper
def _lstm_bptt_units(w, sy, tid, nth, z, dA, P, ub0, ub1, u0, u1):
    """The loop of LSTM BPTT, thread tid's slab of units [u0, u1): its pointwise pass, a barrier, its
    units of dA_t Wh^T (_bptt_product) at every step."""
    N, T, H = w[_W_N], w[_W_T], w[_W_H]
    G = 4 * H
    c = carray(pointer(w[_W_C], z), (N, T + 1, H))
    tanh_c = carray(pointer(w[_W_TC], z), (N, T, H))
    gates = carray(pointer(w[_W_GATES], z), (N, T, G))
    dh = carray(pointer(w[_W_DHT], z), (N, T, w[_W_DHSIZE]))
    carry = carray(pointer(w[_W_DH0], z), (N, H))
    dc = carray(pointer(w[_W_DC], z), (N, H))
    db = carray(pointer(w[_W_DB], z), (G,))
    for g in range(4):
        db[g * H + u0 : g * H + u1] = 0
    # Threads 1.. carry their units of dh and dc in pages of their own: in the shared (N, H) arrays each
    # thread's units are 1 KiB runs, so every page would be written by every thread at every step, which
    # costs a lot when the host runs the two CPUs on different dies (cython's kernel does the same)
    own_carry, own_dc = carry, dc
    if tid > 0 and w[_W_CARRY] != 0:
        base = w[_W_CARRY] + (tid - 1) * w[_W_CARRY_STRIDE]
        own_carry = carray(pointer(base, z), (N, H))
        own_dc = carray(pointer(base + N * H * own_carry.itemsize, z), (N, H))
        own_carry[:, u0:u1] = carry[:, u0:u1]
        own_dc[:, u0:u1] = dc[:, u0:u1]
    for t in range(T - 1, -1, -1):
        lstm_backward_units(gates, c, tanh_c, dh, own_carry, own_dc, dA, db, t, u0, u1, 0, N)  # then the barrier
        # the gradient into h_{t-1} (at t = 0: dh0) = dA_t Wh^T, into carry
        _bptt_product(sy, nth, N, G, u0, u1, dA, t * G, T * G, P, H, ub0, ub1, t, own_carry, 0)
    if tid > 0 and w[_W_CARRY] != 0:  # dh0 and dc0, this thread's units
        carry[:, u0:u1] = own_carry[:, u0:u1]
        dc[:, u0:u1] = own_dc[:, u0:u1]


@helper
def _lstm_bptt_rows(w, sy, tid, nth, z, dA, P):
    """The loop of LSTM BPTT split by rows of the batch: thread tid takes sequences [n0, n1), all units,
    and runs their whole loop alone -- the pointwise pass of its rows, then its rows of dA_t Wh^T by all
    of the packed Wh^T -- without a barrier between steps; every array it writes (its rows of dA, of
    carry and of dc) is a run of whole rows (of all steps, dA being batch-major), in pages no other thread
    writes but at the ends of the run.  It reads all of Wh^T per step instead of its slab's, which pays
    from BATCH_MIN_ROWS rows on.  db: thread 0 sums into db, threads 1.. into their carry pages, added to
    db in thread order after the loop (the same bits every run)."""
    N, T, H, nr = w[_W_N], w[_W_T], w[_W_H], w[_W_NR]
    G = 4 * H
    c = carray(pointer(w[_W_C], z), (N, T + 1, H))
    tanh_c = carray(pointer(w[_W_TC], z), (N, T, H))
    gates = carray(pointer(w[_W_GATES], z), (N, T, G))
    dh = carray(pointer(w[_W_DHT], z), (N, T, w[_W_DHSIZE]))
    carry = carray(pointer(w[_W_DH0], z), (N, H))
    dc = carray(pointer(w[_W_DC], z), (N, H))
    db = carray(pointer(w[_W_DB], z), (G,))
    part = _own_part(w, tid, db, G, z)
    n0, n1 = _share(N, tid, nth)
    nb = (H + nr - 1) // nr
    sync_wait(sy, sync_arrive(sy))  # every slab of Wh^T packed
    for t in range(T - 1, -1, -1):
        lstm_backward_units(gates, c, tanh_c, dh, carry, dc, dA, part, t, 0, H, n0, n1)
        pmm_slab(n1 - n0, G, dA, (n0 * T + t) * G, T * G, P, H, 0, nb, t, carry, n0 * H, H, 0)
    sync_wait(sy, sync_arrive(sy))  # every dA_t complete (_gradients), every part of db summed
    if tid == 0:
        _add_parts(w, nth, db, 0, G, z)


# ------------------------------------------------------------------ GRU
# n = tanh(x Wx_n + b_n + r (h Wh_n + bhn)) needs the recurrent part of its n block apart from the input
# part: the forward packs Wh as its r and z blocks (whose products accumulate into the projected gates)
# and its n block (whose product goes to hn, kept for the backward).  The backward's dA (N, T, 4H) is
# [dr, dz, dhn, dn]: its first 3H columns, the gradient of h_{t-1} Wh, make one packed product by Wh^T per
# step; the input side [dr, dz], dn makes dX and dWx two products each after the loop.  The gradient
# flowing back between steps is carried in dh0 (see ``_gru``), so dh is only read.


@helper
def _gru_forward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR]
    G = 3 * H
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, G))
    Wh = carray(pointer(w[_W_WH], z), (H, G))
    b = carray(pointer(w[_W_B], z), (G,))
    bhn = carray(pointer(w[_W_BHN], z), (H,))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    gates = carray(pointer(w[_W_GATES], z), (N, T, G))
    hn = carray(pointer(w[_W_HN], z), (N, T, H))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    Pn = P[(H + nr - 1) // nr * 2 * H * nr :]  # the packed n block, after the r and z blocks
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    if _by_rows(N, nth, FORWARD_MIN_ROWS):  # as _lstm_forward_rows
        n0, n1 = _share(N, tid, nth)
        _project(w, tid, n0, n1, 0, H, x, Wx, 3, gates)
        ppack(H, H, 2, Wh, G, 0, P, ub0, ub1)
        ppack(H, H, 1, Wh[:, 2 * H :], G, 0, Pn, ub0, ub1)
        sync_wait(sy, sync_arrive(sy))  # every slab of Wh packed
        nb = (H + nr - 1) // nr
        for t in range(T):
            for iu in range(nb):
                ub = _unit_block(iu, 0, nb, t)
                nxt = _next_unit_block(iu, 0, nb, t)
                if t == 0:
                    pmm(n1 - n0, H, h0, n0 * H, H, P, H, 2, ub, gates, n0 * T * G, T * G, 1, nxt)
                    pmm(n1 - n0, H, h0, n0 * H, H, Pn, H, 1, ub, hn, n0 * T * H, T * H, 0, nxt)
                else:
                    pmm(n1 - n0, H, h, n0 * T * H + (t - 1) * H, T * H, P, H, 2, ub, gates, n0 * T * G + t * G, T * G,
                        1, nxt)
                    pmm(n1 - n0, H, h, n0 * T * H + (t - 1) * H, T * H, Pn, H, 1, ub, hn, n0 * T * H + t * H, T * H,
                        0, nxt)
            gru_forward_units(gates, b, bhn, hn, h0, h, t, 0, H, n0, n1)
        return
    _project(w, tid, 0, N, u0, u1, x, Wx, 3, gates)
    ppack(H, H, 2, Wh, G, 0, P, ub0, ub1)
    ppack(H, H, 1, Wh[:, 2 * H :], G, 0, Pn, ub0, ub1)
    token = -1
    for t in range(T):
        if nth > 1 and t > 0 and ub1 > ub0:  # the rows of h_{t-1} this thread wrote, while the others finish
            # theirs (the last to arrive too, so that every run sums in the same order: see _bptt_product)
            ub = _unit_block(0, ub0, ub1, t)
            _pmm_split(True, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 2, ub, ub + 1, gates, t * G, T * G, 1, 0)
            _pmm_split(True, N, H, u0, u1, h, (t - 1) * H, T * H, Pn, H, 1, ub, ub + 1, hn, t * H, T * H, 0, 0)
        sync_wait(sy, token)
        for iu in range(ub1 - ub0):
            ub = _unit_block(iu, ub0, ub1, t)
            nxt = _next_unit_block(iu, ub0, ub1, t)  # pmm fetches its first block meanwhile
            if t == 0:
                pmm(N, H, h0, 0, H, P, H, 2, ub, gates, 0, T * G, 1, nxt)
                pmm(N, H, h0, 0, H, Pn, H, 1, ub, hn, 0, T * H, 0, nxt)
            elif nth > 1 and iu == 0:  # (a thread with unit blocks has units: hn's own part was written)
                _pmm_split(False, N, H, u0, u1, h, (t - 1) * H, T * H, P, H, 2, ub, ub + 1, gates, t * G, T * G, 1,
                           0)
                _pmm_split(False, N, H, u0, u1, h, (t - 1) * H, T * H, Pn, H, 1, ub, ub + 1, hn, t * H, T * H, 1, 0)
            else:
                pmm(N, H, h, (t - 1) * H, T * H, P, H, 2, ub, gates, t * G, T * G, 1, nxt)
                pmm(N, H, h, (t - 1) * H, T * H, Pn, H, 1, ub, hn, t * H, T * H, 0, nxt)
        if ub1 > ub0:  # as the LSTM's
            gru_forward_units(gates, b, bhn, hn, h0, h, t, u0, u1, 0, N)
        token = sync_arrive(sy)
    sync_wait(sy, token)


@helper
def _gru_backward(arg, sy, tid, nth, z):
    w = _block(arg)
    N, T, D, H, nr, wb = w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR], w[_W_WORK]
    G, F = 3 * H, 4 * H
    x = carray(pointer(w[_W_X], z), (N, T, D))
    h0 = carray(pointer(w[_W_H0], z), (N, H))
    Wx = carray(pointer(w[_W_WX], z), (D, G))
    Wh = carray(pointer(w[_W_WH], z), (H, G))
    h = carray(pointer(w[_W_OUT], z), (N, T, H))
    gates = carray(pointer(w[_W_GATES], z), (N, T, G))
    hn = carray(pointer(w[_W_HN], z), (N, T, H))
    dh = carray(pointer(w[_W_DHT], z), (N, T, w[_W_DHSIZE]))
    dA = carray(pointer(w[_W_DA], z), (N, T, F))
    P = carray(pointer(w[_W_P], z), (w[_W_PSIZE],))
    dx = carray(pointer(w[_W_DX], z), (N, T, D))
    dWx = carray(pointer(w[_W_DWX], z), (D, G))
    dWh = carray(pointer(w[_W_DWH], z), (H, G))
    carry = carray(pointer(w[_W_DH0], z), (N, H))
    db = carray(pointer(w[_W_DB], z), (G,))
    dbhn = carray(pointer(w[_W_DBHN], z), (H,))
    ub0, ub1, u0, u1 = _slab(H, nr, tid, nth)
    ppack(G, H, 1, Wh, G, 1, P, ub0, ub1)  # Wh^T, this thread's slab of units
    if _bptt_by_rows(w, N, nth):  # by rows of the batch, as _lstm_bptt_rows; db's and dbhn's parts in one run
        if tid == 0:
            part, part_hn = db, dbhn
            db[:] = 0
            dbhn[:] = 0
        else:
            own = _own_part(w, tid, db, G + H, z)
            part, part_hn = own[:G], own[G:]
        n0, n1 = _share(N, tid, nth)
        nb = (H + nr - 1) // nr
        sync_wait(sy, sync_arrive(sy))  # every slab of Wh^T packed
        for t in range(T - 1, -1, -1):
            gru_backward_units(gates, hn, h0, h, dh, carry, dA, part, part_hn, t, 0, H, n0, n1)
            # dh_{t-1} = its direct part (left in carry) + dA_t[:, :3H] Wh^T
            pmm_slab(n1 - n0, G, dA, (n0 * T + t) * F, T * F, P, H, 0, nb, t, carry, n0 * H, H, 1)
        sync_wait(sy, sync_arrive(sy))  # every dA_t complete, every part of db and dbhn summed
        if tid == 0:
            _add_parts(w, nth, db, 0, G, z)
            _add_parts(w, nth, dbhn, G, H, z)
    else:
        for g in range(3):
            db[g * H + u0 : g * H + u1] = 0
        dbhn[u0:u1] = 0
        for t in range(T - 1, -1, -1):
            gru_backward_units(gates, hn, h0, h, dh, carry, dA, db, dbhn, t, u0, u1, 0, N)  # then the barrier
            # dh_{t-1} = its direct part (left in carry) + dA_t[:, :3H] Wh^T
            _bptt_product(sy, nth, N, G, u0, u1, dA, t * F, T * F, P, H, ub0, ub1, t, carry, 1)
    # after the loop (every dA_t is complete: the last step's barrier): a share of the rows of
    # dX = [dr, dz] Wx_rz^T + dn Wx_n^T, this slab's columns of dWx, and of dWh = Hprev^T dA[:, :3H]
    W = _work(w)
    r0, r1 = _share(N * T, tid, nth)
    status = 0
    if r1 > r0:
        status |= pgemm(r1 - r0, 2 * H, dA, r0 * F, F, 0, Wx, 0, G, 1, D, 1, 0, D, dx, r0 * D, D, 0, W, tid * wb, wb)
        status |= pgemm(r1 - r0, H, dA, r0 * F + 3 * H, F, 0, Wx, 2 * H, G, 1, D, 1, 0, D, dx, r0 * D, D, 1, W,
                        tid * wb, wb)
    status |= pgemm(D, N * T, x, 0, D, 1, dA, 0, F, 0, H, 2, u0, u1, dWx, 0, G, 0, W, tid * wb, wb)
    status |= pgemm(D, N * T, x, 0, D, 1, dA, 3 * H, F, 0, H, 1, u0, u1, dWx, 2 * H, G, 0, W, tid * wb, wb)
    status |= pgemm_prev(H, N * T, h, h0, H, T, dA, 0, F, H, 3, u0, u1, dWh, 0, G, 0, W, tid * wb, wb)
    if status:
        w[_W_FAILED] = 1


# ------------------------------------------------------------------ affine layers (R rows, D inputs, M outputs)


@helper
def _affine_forward(arg, sy, tid, nth, z):
    """out = x w + b: this thread's rows (when M <= R: every thread packs w) or columns (every thread
    packs x)."""
    w = _block(arg)
    R, D, M, wb = w[_W_N], w[_W_D], w[_W_H], w[_W_WORK]
    x = carray(pointer(w[_W_X], z), (R, D))
    W = carray(pointer(w[_W_WX], z), (D, M))
    b = carray(pointer(w[_W_B], z), (M,))
    out = carray(pointer(w[_W_OUT], z), (R, M))
    work = _work(w)
    status = 0
    if M <= R:
        a, e = _share(R, tid, nth)
        for r in range(a, e):
            out[r, :] = b
        if e > a:
            status = pgemm(e - a, D, x, a * D, D, 0, W, 0, M, 0, M, 1, 0, M, out, a * M, M, 1, work, tid * wb, wb)
    else:
        a, e = _share(M, tid, nth)
        for r in range(R):
            out[r, a:e] = b[a:e]
        if e > a:
            status = pgemm(R, D, x, 0, D, 0, W, 0, M, 0, M, 1, a, e, out, 0, M, 1, work, tid * wb, wb)
    if status:
        w[_W_FAILED] = 1


@helper
def _affine_backward(arg, sy, tid, nth, z):
    """dx = dout w^T, dw = x^T dout, db = column sums of dout: this thread's share of each."""
    w = _block(arg)
    R, D, M, wb = w[_W_N], w[_W_D], w[_W_H], w[_W_WORK]
    dout = carray(pointer(w[_W_DA], z), (R, M))
    x = carray(pointer(w[_W_X], z), (R, D))
    W = carray(pointer(w[_W_WX], z), (D, M))
    dx = carray(pointer(w[_W_DX], z), (R, D))
    dW = carray(pointer(w[_W_DWX], z), (D, M))
    db = carray(pointer(w[_W_DB], z), (M,))
    work = _work(w)
    status = 0
    if D <= R:  # dx by rows (every thread packs w^T) or by columns (every thread packs dout)
        a, e = _share(R, tid, nth)
        if e > a:
            status |= pgemm(e - a, M, dout, a * M, M, 0, W, 0, M, 1, D, 1, 0, D, dx, a * D, D, 0, work, tid * wb, wb)
    else:
        a, e = _share(D, tid, nth)
        if e > a:
            status |= pgemm(R, M, dout, 0, M, 0, W, 0, M, 1, D, 1, a, e, dx, 0, D, 0, work, tid * wb, wb)
    if D <= M:  # dw by columns (every thread packs x^T) or by rows (every thread packs dout)
        a, e = _share(M, tid, nth)
        if e > a:
            status |= pgemm(D, R, x, 0, D, 1, dout, 0, M, 0, M, 1, a, e, dW, 0, M, 0, work, tid * wb, wb)
    else:
        a, e = _share(D, tid, nth)
        if e > a:
            status |= pgemm(e - a, R, x, a, D, 1, dout, 0, M, 0, M, 1, 0, M, dW, a * M, M, 0, work, tid * wb, wb)
    a, e = _share(M, tid, nth)
    acc = db[a:e]  # indexed by the loop variable itself: db[a + j] kept LLVM from vectorizing (3x slower)
    for j in range(e - a):
        acc[j] = 0
    for r in range(R):
        row = dout[r, a:e]
        for j in range(e - a):
            acc[j] += row[j]
    if status:
        w[_W_FAILED] = 1


# ------------------------------------------------------------------ the tasks, one per dtype


@task
def _rnn_forward_f32(arg, sy, tid, nth):
    _rnn_forward(arg, sy, tid, nth, np.float32(0))


@task
def _rnn_forward_f64(arg, sy, tid, nth):
    _rnn_forward(arg, sy, tid, nth, np.float64(0))


@task
def _rnn_backward_f32(arg, sy, tid, nth):
    _rnn_backward(arg, sy, tid, nth, np.float32(0))


@task
def _rnn_backward_f64(arg, sy, tid, nth):
    _rnn_backward(arg, sy, tid, nth, np.float64(0))


@task
def _lstm_forward_f32(arg, sy, tid, nth):
    _lstm_forward(arg, sy, tid, nth, np.float32(0))


@task
def _lstm_forward_f64(arg, sy, tid, nth):
    _lstm_forward(arg, sy, tid, nth, np.float64(0))


@task
def _lstm_backward_f32(arg, sy, tid, nth):
    _lstm_backward(arg, sy, tid, nth, np.float32(0))


@task
def _lstm_backward_f64(arg, sy, tid, nth):
    _lstm_backward(arg, sy, tid, nth, np.float64(0))


@task
def _gru_forward_f32(arg, sy, tid, nth):
    _gru_forward(arg, sy, tid, nth, np.float32(0))


@task
def _gru_forward_f64(arg, sy, tid, nth):
    _gru_forward(arg, sy, tid, nth, np.float64(0))


@task
def _gru_backward_f32(arg, sy, tid, nth):
    _gru_backward(arg, sy, tid, nth, np.float32(0))


@task
def _gru_backward_f64(arg, sy, tid, nth):
    _gru_backward(arg, sy, tid, nth, np.float64(0))


@task
def _affine_forward_f32(arg, sy, tid, nth):
    _affine_forward(arg, sy, tid, nth, np.float32(0))


@task
def _affine_forward_f64(arg, sy, tid, nth):
    _affine_forward(arg, sy, tid, nth, np.float64(0))


@task
def _affine_backward_f32(arg, sy, tid, nth):
    _affine_backward(arg, sy, tid, nth, np.float32(0))


@task
def _affine_backward_f64(arg, sy, tid, nth):
    _affine_backward(arg, sy, tid, nth, np.float64(0))


# ------------------------------------------------------------------ the softmax loss
# Each thread takes a share of the rows (``_words.softmax_rows``) and writes its part of the loss into
# the scratch; the launcher sums the parts in thread order.  Words: R, V and N (the divisor) in _W_N,
# _W_D and _W_T; x, y, mask, dx and the scratch in _W_X, _W_OUT, _W_B, _W_DX and _W_WBUF.


@helper
def _softmax(arg, sy, tid, nth, z):
    w = _block(arg)
    R, V, N = w[_W_N], w[_W_D], w[_W_T]
    x = carray(pointer(w[_W_X], z), (R, V))
    y = carray(pointer(w[_W_OUT], np.int64(0)), (R,))
    mask = carray(pointer(w[_W_B], z), (R,))
    dx = carray(pointer(w[_W_DX], z), (R, V))
    parts = carray(pointer(w[_W_WBUF], np.float64(0)), (nth,))
    r0, r1 = _share(R, tid, nth)
    parts[tid] = softmax_rows(x, y, mask, N, dx, r0, r1)


@task
def _softmax_f32(arg, sy, tid, nth):
    _softmax(arg, sy, tid, nth, np.float32(0))


@task
def _softmax_f64(arg, sy, tid, nth):
    _softmax(arg, sy, tid, nth, np.float64(0))


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
TASKS = {
    "rnn_forward": {_F32: _rnn_forward_f32, _F64: _rnn_forward_f64},
    "rnn_backward": {_F32: _rnn_backward_f32, _F64: _rnn_backward_f64},
    "lstm_forward": {_F32: _lstm_forward_f32, _F64: _lstm_forward_f64},
    "lstm_backward": {_F32: _lstm_backward_f32, _F64: _lstm_backward_f64},
    "gru_forward": {_F32: _gru_forward_f32, _F64: _gru_forward_f64},
    "gru_backward": {_F32: _gru_backward_f32, _F64: _gru_backward_f64},
    "affine_forward": {_F32: _affine_forward_f32, _F64: _affine_forward_f64},
    "affine_backward": {_F32: _affine_backward_f32, _F64: _affine_backward_f64},
    "softmax_loss": {_F32: _softmax_f32, _F64: _softmax_f64},
}


# ------------------------------------------------------------------ the launchers


@helper
def _launch(w, task_address, threads):
    w[_W_THREADS] = threads
    team_run(task_address, w, threads)
    if w[_W_FAILED]:
        raise MemoryError("fastrnn: no memory for a product's work buffer")


@helper
def _sizes(N, T, D, H, nr, threads, work, P, wbuf):
    w = np.zeros(_WORDS, np.int64)
    w[_W_N], w[_W_T], w[_W_D], w[_W_H], w[_W_NR], w[_W_WORK] = N, T, D, H, nr, work
    w[_W_PSIZE], w[_W_P] = P.size, P.ctypes.data
    if wbuf.size < threads * work:
        raise ValueError("team: the work buffer is too small")
    w[_W_WBUF] = wbuf.ctypes.data
    return w


@helper
def _packed_size(K, H, gates, nr):
    """Elements of the packed form of a K x (gates * H) matrix in panels of nr columns (packed.h)."""
    return (H + nr - 1) // nr * gates * K * nr


@kernel("f3", "f2", "f2", "f2", "f1", "o3", "o1", "w1", "n", "n", "n", "n")
def rnn_forward_team(x, h0, Wx, Wh, b, h, P, wbuf, nr, work, task_address, threads):
    """rnn_forward as a team job: fills h (N, T, H).  P: scratch for the packed Wh; wbuf: threads * work
    bytes of gemm work."""
    N, T, D = x.shape
    H = h0.shape[1]
    if Wx.shape != (D, H) or Wh.shape != (H, H) or b.size != H or h.shape != (N, T, H) or h0.shape != (N, H) \
            or P.size < _packed_size(H, H, 1, nr):
        raise ValueError("rnn_forward_team: sizes do not agree")
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_B], w[_W_OUT] = (x.ctypes.data, h0.ctypes.data, Wx.ctypes.data,
                                                              Wh.ctypes.data, b.ctypes.data, h.ctypes.data)
    _launch(w, task_address, threads)


@kernel("f3", "f2", "f2", "f2", "f3", "f3", "o2", "o3", "o1", "w1", "w1", "o3", "o2", "o2", "o1", "n", "n", "n", "n")
def rnn_backward_team(x, h0, Wx, Wh, h, dh, carry, dA, P, wbuf, cbuf, dx, dWx, dWh, db, nr, work, task_address,
                      threads):
    """BPTT as a team job.  dh (N, T, H), the upstream gradient of every step's h, or of size 0: zeros;
    carry (N, H) holds the final hidden state's gradient on entry and dh0 on return.  Fills dA (scratch),
    dx, dWx, dWh and db.  cbuf (bytes): scratch for threads 1..'s own pages (``own_bytes``), or empty."""
    N, T, D = x.shape
    H = h0.shape[1]
    if Wx.shape != (D, H) or Wh.shape != (H, H) or h.shape != (N, T, H) \
            or not (dh.shape == (N, T, H) or dh.size == 0) or carry.shape != (N, H) \
            or dA.shape != (N, T, H) or dx.shape != (N, T, D) or dWx.shape != (D, H) or dWh.shape != (H, H) \
            or db.size != H or h0.shape != (N, H) or P.size < _packed_size(H, H, 1, nr):
        raise ValueError("rnn_backward_team: sizes do not agree")
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_OUT] = x.ctypes.data, h0.ctypes.data, Wx.ctypes.data, Wh.ctypes.data, \
        h.ctypes.data
    w[_W_DHT], w[_W_DHSIZE] = (dh.ctypes.data, H) if dh.size else (x.ctypes.data, 0)
    w[_W_DA], w[_W_DX], w[_W_DWX], w[_W_DWH] = dA.ctypes.data, dx.ctypes.data, dWx.ctypes.data, dWh.ctypes.data
    w[_W_DH0], w[_W_DB] = carry.ctypes.data, db.ctypes.data
    _place_own(w, cbuf, own_items(1, N, H), x.itemsize, threads)
    _launch(w, task_address, threads)


@kernel("f3", "f2", "f2", "f2", "f2", "f1", "o3", "o3", "o3", "o3", "o1", "w1", "n", "n", "n", "n")
def lstm_forward_team(x, h0, c0, Wx, Wh, b, h, c, tanh_c, gates, P, wbuf, nr, work, task_address, threads):
    """lstm_forward as a team job: fills h, c (c0 in step 0), tanh_c and gates (see ``_lstm``)."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 4 * H
    if Wx.shape != (D, G) or Wh.shape != (H, G) or b.size != G or h.shape != (N, T, H) or c0.shape != (N, H) \
            or c.shape != (N, T + 1, H) or tanh_c.shape != (N, T, H) or gates.shape != (N, T, G) \
            or h0.shape != (N, H) or P.size < _packed_size(H, H, 4, nr):
        raise ValueError("lstm_forward_team: sizes do not agree")
    c[:, 0, :] = c0
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_B] = x.ctypes.data, h0.ctypes.data, Wx.ctypes.data, Wh.ctypes.data, \
        b.ctypes.data
    w[_W_OUT], w[_W_C], w[_W_TC], w[_W_GATES] = h.ctypes.data, c.ctypes.data, tanh_c.ctypes.data, gates.ctypes.data
    _launch(w, task_address, threads)


@kernel("f3", "f2", "f2", "f2", "f3", "f3", "f3", "f3", "f3", "o2", "o2", "o3", "o1", "w1", "w1", "o3", "o2", "o2",
        "o1", "n", "n", "n", "n")
def lstm_backward_team(x, h0, Wx, Wh, h, c, tanh_c, gates, dh, carry, dc, dA, P, wbuf, cbuf, dx, dWx, dWh, db, nr,
                       work, task_address, threads):
    """BPTT as a team job.  dh (N, T, H), the upstream gradient of every step's h, or of size 0: zeros;
    carry (N, H) holds the final hidden state's gradient on entry and dh0 on return; dc (N, H) holds the
    final cell state's gradient and gets dc0's.  Fills dA (scratch), dx, dWx, dWh and db.  cbuf (bytes):
    scratch for threads 1..'s own pages (``own_bytes``, ``own_items``), or empty."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 4 * H
    if Wx.shape != (D, G) or Wh.shape != (H, G) or h.shape != (N, T, H) or c.shape != (N, T + 1, H) \
            or tanh_c.shape != (N, T, H) or gates.shape != (N, T, G) or not (dh.shape == (N, T, H) or dh.size == 0) \
            or carry.shape != (N, H) or dc.shape != (N, H) or dA.shape != (N, T, G) \
            or dx.shape != (N, T, D) or dWx.shape != (D, G) or dWh.shape != (H, G) or db.size != G \
            or h0.shape != (N, H) or P.size < _packed_size(G, H, 1, nr):
        raise ValueError("lstm_backward_team: sizes do not agree")
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_OUT] = x.ctypes.data, h0.ctypes.data, Wx.ctypes.data, Wh.ctypes.data, \
        h.ctypes.data
    w[_W_C], w[_W_TC], w[_W_GATES], w[_W_DC] = c.ctypes.data, tanh_c.ctypes.data, gates.ctypes.data, dc.ctypes.data
    w[_W_DHT], w[_W_DHSIZE] = (dh.ctypes.data, H) if dh.size else (x.ctypes.data, 0)
    w[_W_DA], w[_W_DX], w[_W_DWX], w[_W_DWH], w[_W_DH0], w[_W_DB] = dA.ctypes.data, dx.ctypes.data, dWx.ctypes.data, \
        dWh.ctypes.data, carry.ctypes.data, db.ctypes.data
    _place_own(w, cbuf, own_items(4, N, H), x.itemsize, threads)
    _launch(w, task_address, threads)


@helper
def own_items(gates, N, H):
    """Items each thread but the first keeps in pages of its own in a backward team job of a cell of
    `gates` gate blocks: the LSTM's dh and dc (N, H) when it splits by units; by rows, the parts of the bias
    gradients, db (gates * H, the GRU's 3H) and the GRU's dbhn (H)."""
    if gates == 4:
        return max(2 * N * H, 4 * H)
    return 4 * H if gates == 3 else H


@helper
def own_stride(items, itemsize):
    """Bytes between two threads' own pages: `items` of `itemsize` bytes, whole pages."""
    return (items * itemsize + CARRY_PAGE - 1) // CARRY_PAGE * CARRY_PAGE


@helper
def own_bytes(items, itemsize, threads):
    """Bytes of cbuf for a backward team job on `threads` threads (own_items: what threads 1.. keep)."""
    return CARRY_PAGE + (threads - 1) * own_stride(items, itemsize) if threads > 1 else 0


@helper
def _place_own(w, cbuf, items, itemsize, threads):
    """Threads 1..'s own pages in cbuf (page-aligned), when it has room for them (else none: the job
    splits by units and the LSTM's threads carry in the shared arrays)."""
    if threads > 1 and cbuf.size >= own_bytes(items, itemsize, threads):
        w[_W_CARRY] = (cbuf.ctypes.data + CARRY_PAGE - 1) // CARRY_PAGE * CARRY_PAGE
        w[_W_CARRY_STRIDE] = own_stride(items, itemsize)


@kernel("f3", "f2", "f2", "f2", "f1", "f1", "o3", "o3", "o3", "o1", "w1", "n", "n", "n", "n")
def gru_forward_team(x, h0, Wx, Wh, b, bhn, h, gates, hn, P, wbuf, nr, work, task_address, threads):
    """gru_forward as a team job: fills h, gates (the activated r, z, n) and hn (see ``_gru``).  P: scratch
    for the packed Wh (its r and z blocks, then its n block)."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 3 * H
    if Wx.shape != (D, G) or Wh.shape != (H, G) or b.size != G or bhn.size != H or h.shape != (N, T, H) \
            or gates.shape != (N, T, G) or hn.shape != (N, T, H) or h0.shape != (N, H) \
            or P.size < _packed_size(H, H, 3, nr):
        raise ValueError("gru_forward_team: sizes do not agree")
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_B], w[_W_BHN] = x.ctypes.data, h0.ctypes.data, Wx.ctypes.data, \
        Wh.ctypes.data, b.ctypes.data, bhn.ctypes.data
    w[_W_OUT], w[_W_GATES], w[_W_HN] = h.ctypes.data, gates.ctypes.data, hn.ctypes.data
    _launch(w, task_address, threads)


@kernel("f3", "f2", "f2", "f2", "f3", "f3", "f3", "f3", "o2", "o3", "o1", "w1", "w1", "o3", "o2", "o2", "o1", "o1",
        "n", "n", "n", "n")
def gru_backward_team(x, h0, Wx, Wh, h, gates, hn, dh, carry, dA, P, wbuf, cbuf, dx, dWx, dWh, db, dbhn, nr, work,
                      task_address, threads):
    """BPTT as a team job.  dh (N, T, H), the upstream gradient of every step's h, or of size 0: zeros;
    carry (N, H) holds the final state's gradient on entry and dh0 on return.  Fills dA (scratch), dx, dWx,
    dWh, db and dbhn.  cbuf (bytes): scratch for threads 1..'s own pages (``own_bytes``), or empty."""
    N, T, D = x.shape
    H = h0.shape[1]
    G = 3 * H
    if Wx.shape != (D, G) or Wh.shape != (H, G) or h.shape != (N, T, H) or gates.shape != (N, T, G) \
            or hn.shape != (N, T, H) or not (dh.shape == (N, T, H) or dh.size == 0) or carry.shape != (N, H) \
            or dA.shape != (N, T, 4 * H) or dx.shape != (N, T, D) \
            or dWx.shape != (D, G) or dWh.shape != (H, G) or db.size != G or dbhn.size != H or h0.shape != (N, H) \
            or P.size < _packed_size(G, H, 1, nr):
        raise ValueError("gru_backward_team: sizes do not agree")
    w = _sizes(N, T, D, H, nr, threads, work, P, wbuf)
    w[_W_X], w[_W_H0], w[_W_WX], w[_W_WH], w[_W_OUT] = x.ctypes.data, h0.ctypes.data, Wx.ctypes.data, Wh.ctypes.data, \
        h.ctypes.data
    w[_W_GATES], w[_W_HN], w[_W_DA] = gates.ctypes.data, hn.ctypes.data, dA.ctypes.data
    w[_W_DHT], w[_W_DHSIZE] = (dh.ctypes.data, H) if dh.size else (x.ctypes.data, 0)
    w[_W_DH0], w[_W_DX], w[_W_DWX], w[_W_DWH], w[_W_DB], w[_W_DBHN] = carry.ctypes.data, dx.ctypes.data, \
        dWx.ctypes.data, dWh.ctypes.data, db.ctypes.data, dbhn.ctypes.data
    _place_own(w, cbuf, own_items(3, N, H), x.itemsize, threads)
    _launch(w, task_address, threads)


@kernel("f2", "f2", "f1", "o2", "w1", "n", "n", "n")
def affine_forward_team(x, W, b, out, wbuf, work, task_address, threads):
    """out (R, M) = x (R, D) W (D, M) + b as a team job."""
    R, D = x.shape
    M = W.shape[1]
    if W.shape[0] != D or b.size != M or out.shape != (R, M) or wbuf.size < threads * work:
        raise ValueError("affine_forward_team: sizes do not agree")
    if resident_product(R, M, D, x, W, out, b) == 0:  # W packed once for this loop (fastrnn._native.resident)
        return
    w = np.zeros(_WORDS, np.int64)
    w[_W_N], w[_W_D], w[_W_H], w[_W_WORK], w[_W_WBUF] = R, D, M, work, wbuf.ctypes.data
    w[_W_X], w[_W_WX], w[_W_B], w[_W_OUT] = x.ctypes.data, W.ctypes.data, b.ctypes.data, out.ctypes.data
    _launch(w, task_address, threads)


@kernel("f2", "f2", "f2", "o2", "o2", "o1", "w1", "n", "n", "n")
def affine_backward_team(dout, x, W, dx, dW, db, wbuf, work, task_address, threads):
    """dx = dout W^T, dW = x^T dout, db = column sums of dout, as a team job."""
    R, D = x.shape
    M = W.shape[1]
    if W.shape[0] != D or dout.shape != (R, M) or dx.shape != (R, D) or dW.shape != (D, M) or db.size != M \
            or wbuf.size < threads * work:
        raise ValueError("affine_backward_team: sizes do not agree")
    w = np.zeros(_WORDS, np.int64)
    w[_W_N], w[_W_D], w[_W_H], w[_W_WORK], w[_W_WBUF] = R, D, M, work, wbuf.ctypes.data
    w[_W_DA], w[_W_X], w[_W_WX], w[_W_DX], w[_W_DWX], w[_W_DB] = dout.ctypes.data, x.ctypes.data, W.ctypes.data, \
        dx.ctypes.data, dW.ctypes.data, db.ctypes.data
    _launch(w, task_address, threads)


@kernel("f2", "i1", "f1", "n", "o2", "w1", "n", "n")
def softmax_loss_team(x, y, mask, N, dx, scratch, task_address, threads):
    """_words.softmax_loss as a team job (a share of the rows per thread); scratch: 8 bytes per thread."""
    R, V = x.shape
    if y.size != R or mask.size != R or dx.shape != (R, V) or scratch.size < 8 * threads:
        raise ValueError("softmax_loss_team: sizes do not agree")
    for r in range(R):  # fastrnn.layers has checked; a task can raise nothing
        if y[r] < 0 or y[r] >= V:
            raise IndexError("target index out of range")
    w = np.zeros(_WORDS, np.int64)
    w[_W_N], w[_W_D], w[_W_T], w[_W_THREADS] = R, V, N, threads
    w[_W_X], w[_W_OUT], w[_W_B], w[_W_DX], w[_W_WBUF] = x.ctypes.data, y.ctypes.data, mask.ctypes.data, \
        dx.ctypes.data, scratch.ctypes.data
    ran = team_run(task_address, w, threads)  # 1 when the team was busy: the caller ran every row
    parts = scratch[: 8 * ran].view(np.float64)
    loss = 0.0
    for k in range(ran):
        loss += parts[k]
    return loss / N
