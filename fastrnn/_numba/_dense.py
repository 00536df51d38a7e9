"""Affine layers (plain and temporal) and the elementwise sigmoid.

How it wins its speed: the forward pass is one GEMM that adds into rows already
holding the bias (beta = 1), so ``x @ w + b`` makes no temporary; the backward
pass is two GEMMs writing straight into the results plus one vectorized pass for
the column sums.  All of it is a single compiled call, so small layers pay one
dispatch instead of NumPy's several temporaries.  ``sigmoid`` is one vectorized
pass (see ``_math``).

Arrays of a size that grows with the problem are allocated by the caller with NumPy
(see ``backend``) and filled here; small ones (biases, db) are allocated here.
"""

import numpy as np

from ._blas import NOTRANS, TRANS, gemm
from ._jit import helper, kernel
from ._math import vsigmoid


@helper
def copy_row(dst, src):
    """dst[:] = src for 1-D arrays of the same size.

    A plain loop: Numba's slice assignment is slower on short rows.  (Index with the loop
    variable itself, as here: an index like ``H + j`` keeps LLVM from vectorizing.)
    """
    if dst.size != src.size:
        raise ValueError("copy_row: sizes differ")  # a bug in a caller; never write out of bounds
    for j in range(src.size):
        dst[j] = src[j]


@helper
def copy_rows(dst, src):
    """dst[:, :] = src for 2-D arrays, row by row."""
    for r in range(src.shape[0]):
        copy_row(dst[r], src[r])


@helper
def transpose_into(src, dst):
    """dst (C, R) = src (R, C).T, by 8 x 8 blocks so that both sides stay in cache (with the
    power-of-two row strides of typical weights, larger blocks measured slower: the rows of
    a block then compete for the same cache sets)."""
    R, C = src.shape
    for r0 in range(0, R, 8):
        for c0 in range(0, C, 8):
            for r in range(r0, min(r0 + 8, R)):
                row = src[r]
                for c in range(c0, min(c0 + 8, C)):
                    dst[c, r] = row[c]


@helper
def column_sums(a):
    """Sums of the columns of a 2-D array (rows added in order, vectorized across columns)."""
    R, M = a.shape
    out = np.zeros(M, a.dtype)
    for r in range(R):
        row = a[r]
        for j in range(M):
            out[j] += row[j]
    return out


@helper
def affine_grads(bi, dout, x, w, dx, dw):
    """For out = x @ w + b (x (R, D), w (D, M)): fills dx = dout @ w.T and dw = x.T @ dout; returns db."""
    R, M = dout.shape
    D = x.shape[1]
    gemm(bi, NOTRANS, TRANS, R, D, M, 1.0, dout, 0, M, w, 0, M, 0.0, dx, 0, D)
    gemm(bi, TRANS, NOTRANS, D, M, R, 1.0, x, 0, D, dout, 0, M, 0.0, dw, 0, M)
    return column_sums(dout)


@kernel("b", "f2", "f2", "f1", "o2")
def affine_forward(bi, x, w, b, out):
    """x (R, D), w (D, M), b (M,): fills out (R, M) = x @ w + b."""
    R, D = x.shape
    M = w.shape[1]
    for r in range(R):
        copy_row(out[r], b)
    gemm(bi, NOTRANS, NOTRANS, R, M, D, 1.0, x, 0, D, w, 0, M, 1.0, out, 0, M)


@kernel("b", "f2", "f2", "f2", "o2", "o2")
def affine_backward(bi, dout, x, w, dx, dw):
    """Fills dx (R, D) and dw (D, M) for ``affine_forward``; returns db."""
    return affine_grads(bi, dout, x, w, dx, dw)


@kernel("f1", "o1")
def sigmoid(x, out):
    """Fills out with the elementwise logistic function of x (both 1-D)."""
    for i in range(x.size):
        out[i] = vsigmoid(x[i])
