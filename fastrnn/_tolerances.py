"""The tolerance table for comparing an implementation with the NumPy oracle, and the comparison.

``fastrnn check`` and ``fastrnn bench`` use it; it is the same table and rule as the test
suite's ``tests/helpers.py`` (which cannot be imported from an installed package):
``|actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|`` elementwise.

BLAS sums in a different order than the oracle, so results differ by rounding that grows
with the length of the sums (D, H, N*T) and with T through backpropagation through time.
"""

import numpy as np

__all__ = ["TOLERANCES", "tolerance", "excess"]

TOLERANCES = {
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


def tolerance(dtype):
    """The (rtol, atol) entry for ``dtype``; dtypes other than float32/float64 use float64's."""
    return TOLERANCES.get(np.dtype(dtype), TOLERANCES[np.dtype(np.float64)])


def excess(actual, expected, dtype=None):
    """How far ``actual`` is from ``expected``, in units of the tolerance: <= 1 passes.

    Returns ``inf`` when the shapes differ, or when NaN/inf appear in one array but not at the
    same place with the same value in the other.  ``dtype`` picks the table row (by default
    the dtype of ``expected``).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return float("inf")
    if expected.size == 0:
        return 0.0
    tol = tolerance(expected.dtype if dtype is None else dtype)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    finite = np.isfinite(e)
    # Non-finite values must match exactly (NaN where NaN, the same infinity).
    if not np.array_equal(np.isnan(a), np.isnan(e)) or not np.array_equal(a[np.isinf(e)], e[np.isinf(e)]):
        return float("inf")
    a, e = a[finite], e[finite]
    if e.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    scale = max(1.0, float(np.max(np.abs(e))))
    bound = tol["atol"] * scale + tol["rtol"] * np.abs(e)
    return float(np.max(np.abs(a - e) / bound))

# Other people's float64 code (``fastrnn check --module/--model``) against the oracle. Such code
# computes the same mathematics in another order, so the comparison is not the one above (same
# algorithm, BLAS's summation order) but: the largest |got - oracle| / max(1, max|oracle|) of an
# output (see ``fastrnn.check.functions``) must not exceed ``tolerance``. Measured at the
# checker's sizes (tests/test_check_tolerance.py runs the same modules):
# - correct code written six different ways (sigmoid four ways, tanh three ways, activations
#   cached or recomputed, the recurrent product per matrix or concatenated, sequences in a step
#   loop or batched, softmax with a max shift or log-sum-exp), and the 560 passing functions of
#   42 public student solutions (2016 to 2025): at most 1.1e-15 (five float64 epsilons);
# - ten known bugs (a dropped carry between steps in either backward, tanh's derivative or the
#   hidden state's path into the cell dropped, gates in the wrong order, repeated words counted
#   once, the loss divided by the mask's count or its gradient unmasked): at least 0.5.
# 1e-8 sits at the geometric middle of those (sqrt(1.1e-15 * 0.5) = 2e-8): ten million times the
# rounding of correct code, fifty million times below the smallest bug. Code that rounds to
# float32 somewhere (errors near 1e-7) is not float64-accurate and fails, as it fails the
# notebook's own checks.
FOREIGN = {"tolerance": 1e-8}
