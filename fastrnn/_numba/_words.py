"""Word embedding and the masked temporal softmax loss.

How it wins its speed: the embedding's backward pass is a compiled in-order row
scatter-add (NumPy's ``np.add.at`` is slow); its forward pass needs no kernel:
``W.take(x, axis=0)`` is NumPy's compiled row copy, measured faster than a Numba
gather at every size (the dispatch alone costs more than the copy when x is
small), so ``backend`` calls it directly.  The
softmax loss is fused: each row of scores is read once from memory and handled
while it sits in L1 -- its max, the exponentials (written straight into dx),
their sum and log, the loss term and the gradient -- instead of NumPy's dozen
full-size temporaries.  The exponentials are the vectorized ``vexp``.  With
enough scores (``backend``) the rows are shared between the team's threads
(``_team.softmax_loss_team``, over ``softmax_rows``).
"""

import math

from numba import njit

from ._jit import OPTIONS, PIPELINE, helper, kernel
from ._math import vexp, vmax


@kernel("i1", "f2", "o2")
def embedding_backward(x, dout, dW):
    """Adds row dout[k] into row x[k] of dW (V, D), which the caller zeroed; in order, so
    repeated indices sum as in ``np.add.at``."""
    V, D = dW.shape
    for k in range(x.size):
        idx = x[k]
        if idx < 0 or idx >= V:
            raise IndexError("word index out of range")
        row, d = dW[idx], dout[k]
        for j in range(D):
            row[j] += d[j]


@njit(**{**OPTIONS, "fastmath": {"contract", "reassoc"}}, pipeline_class=PIPELINE)
def _sum(a):
    """Sum of a 1-D array; ``reassoc`` (here only) lets LLVM vectorize it with several partial sums."""
    s = a.dtype.type(0)
    for j in range(a.size):
        s += a[j]
    return s


@helper
def _max(a):
    """Largest element of a non-empty 1-D array, NaN if any is (vectorized)."""
    m = a[0]
    for j in range(1, a.size):
        m = vmax(m, a[j])
    return m


@helper
def softmax_rows(x, y, mask, N, dx, r0, r1):
    """Rows [r0, r1) of softmax_loss: fills their rows of dx (divided by N); returns their loss, summed
    in float64, not yet divided by N.  The targets must be in [0, V) (checked by the callers)."""
    V = x.shape[1]
    one = x.dtype.type(1)
    inv_n = one / x.dtype.type(N)
    loss = 0.0  # accumulated in float64
    for r in range(r0, r1):
        row, d = x[r], dx[r]
        target = y[r]
        m = _max(row)
        for j in range(V):
            d[j] = vexp(row[j] - m)
        s = _sum(d)
        p_target = d[target] / s
        scale = mask[r] * inv_n  # the gradient of row r is (p - onehot) * mask / N
        c = scale / s
        for j in range(V):
            d[j] *= c
        d[target] = (p_target - one) * scale
        loss -= mask[r] * ((row[target] - m) - math.log(s))
    return loss


@kernel("f2", "i1", "f1", "n", "o2")
def softmax_loss(x, y, mask, N, dx):
    """Rows x (R, V), targets y (R,), weights mask (R,): fills dx (R, V); returns the loss.
    Both are divided by N."""
    R, V = x.shape
    for r in range(R):  # fastrnn.layers has checked; this only keeps the kernel safe
        if y[r] < 0 or y[r] >= V:
            raise IndexError("target index out of range")
    return softmax_rows(x, y, mask, N, dx, 0, R) / N
