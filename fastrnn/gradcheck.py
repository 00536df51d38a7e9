"""Numerical gradients by centred finite differences, as in cs231n's ``gradient_check.py``.

``x`` is perturbed in place during the evaluation (that is how ``f`` sees the change)
and restored exactly afterwards.
"""

import numpy as np

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "rel_error"]


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Gradient of the scalar function ``f(x)`` at ``x`` (an array), one entry at a time."""
    grad = np.zeros_like(x, dtype=np.result_type(x, np.float64))
    with np.nditer(x, flags=["multi_index"], op_flags=["readwrite"]) as it:
        for _ in it:
            ix = it.multi_index
            old = x[ix]
            x[ix] = old + h
            fxph = f(x)
            x[ix] = old - h
            fxmh = f(x)
            x[ix] = old
            grad[ix] = (fxph - fxmh) / (2 * h)
            if verbose:
                print(ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of ``sum(f(x) * df)`` at ``x``: the backward pass of an array function ``f``."""
    grad = np.zeros_like(x, dtype=np.result_type(x, np.float64))
    with np.nditer(x, flags=["multi_index"], op_flags=["readwrite"]) as it:
        for _ in it:
            ix = it.multi_index
            old = x[ix]
            x[ix] = old + h
            pos = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of its input
            x[ix] = old - h
            neg = np.array(f(x), dtype=np.float64)
            x[ix] = old
            grad[ix] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    """Maximum relative error, max |x - y| / max(1e-8, |x| + |y|)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
