"""Shared test helpers: the one tolerance table, input factories, comparisons."""

import os

import numpy as np

import fastrnn
from fastrnn import _tolerances
from fastrnn.gradcheck import rel_error

# The one tolerance table (shared with `fastrnn check` and `fastrnn bench`): a compiled
# backend is compared with the oracle run on the same inputs in the same dtype.
TOLERANCES = _tolerances.TOLERANCES

# Numerical gradient checks (float64, centred differences with h = 1e-5): cs231n's
# relative-error threshold. Finite differences carry an absolute round-off of about
# eps * |f| / h (~1e-10 for the |f| ~ 10 of the checks here), so an entry of 1e-4 cannot be
# checked to a relative 1e-8: rel_error applies to entries above GRAD_ABS_FLOOR, and
# smaller entries must agree to GRAD_ABS_TOL, a few times that round-off.
GRAD_THRESHOLD = 1e-8
GRAD_ABS_FLOOR = 1e-2
GRAD_ABS_TOL = 1e-9

COMPILED_BACKENDS = [b for b in fastrnn.available_backends() if b != "numpy"]

# CI sets this (e.g. "numba,cython") so a missing backend fails instead of silently skipping.
REQUIRED_BACKENDS = [b for b in os.environ.get("FASTRNN_REQUIRE_BACKENDS", "").split(",") if b]


def assert_close(actual, expected, dtype=None, err_msg=""):
    """Compares one array (or scalar) with the oracle's, at the tolerance of its dtype."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    if dtype is None:
        dtype = expected.dtype
    tol = TOLERANCES[np.dtype(dtype)]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=err_msg)


def assert_all_close(actual, expected, dtype=None, err_msg=""):
    """Compares tuples of results element by element, and their dtypes."""
    if not isinstance(expected, tuple):
        actual, expected = (actual,), (expected,)
    assert len(actual) == len(expected), err_msg
    for k, (a, e) in enumerate(zip(actual, expected)):
        if isinstance(e, np.ndarray):
            assert isinstance(a, np.ndarray), f"{err_msg} [{k}]: {type(a)} is not an ndarray"
            assert a.dtype == e.dtype, f"{err_msg} [{k}]: dtype {a.dtype} != oracle's {e.dtype}"
        assert_close(a, e, dtype, err_msg=f"{err_msg} [{k}]")


def assert_gradient_close(num, analytic, threshold=GRAD_THRESHOLD, what=""):
    """A numerical gradient against an analytic one, as described at GRAD_THRESHOLD."""
    num, analytic = np.asarray(num, dtype=np.float64), np.asarray(analytic, dtype=np.float64)
    assert num.shape == analytic.shape, f"{what}: shape {analytic.shape} != {num.shape}"
    big = np.abs(num) + np.abs(analytic) > GRAD_ABS_FLOOR
    err = rel_error(num[big], analytic[big]) if big.any() else 0.0
    assert err < threshold, f"{what}: rel error {err}"
    abs_err = float(np.max(np.abs(num - analytic)[~big], initial=0.0))
    assert abs_err < GRAD_ABS_TOL, f"{what}: abs error {abs_err} on entries below {GRAD_ABS_FLOOR}"


def randn(rng, shape, dtype, scale=1.0):
    """Standard normal values of ``shape`` times ``scale``, in ``dtype``."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


# cell -> its number of gate blocks (G = gates * H columns in Wx, Wh and b)
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}


def sequence_inputs(rng, dtype, shape, gates):
    """[x, h0, Wx, Wh, b] for an RNN (gates=1) or LSTM (gates=4) of shape (N, T, D, H), and
    [x, h0, Wx, Wh, b, bhn] for a GRU (gates=3), scaled so that the activations are neither
    linear nor saturated."""
    N, T, D, H = shape
    args = [
        randn(rng, (N, T, D), dtype),
        randn(rng, (N, H), dtype, 0.5),
        randn(rng, (D, gates * H), dtype, 1 / np.sqrt(D)),
        randn(rng, (H, gates * H), dtype, 1 / np.sqrt(H)),
        randn(rng, (gates * H,), dtype, 0.5),
    ]
    if gates == 3:
        args.append(randn(rng, (H,), dtype, 0.5))  # bhn
    return args


def state_inputs(rng, dtype, shape, cell):
    """The arguments of ``{cell}_forward_state``: sequence_inputs, plus c0 (after h0) for the LSTM."""
    args = sequence_inputs(rng, dtype, shape, CELLS[cell])
    if cell == "lstm":
        args.insert(2, randn(rng, (shape[0], shape[3]), dtype, 0.5))
    return args


def layout(a, kind, rng=None):
    """Returns ``a`` (values unchanged) as a C, Fortran-ordered, strided or readonly array."""
    a = np.array(a)
    if kind == "C":
        return a
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":  # a view with every axis strided by 2
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "readonly":
        a.setflags(write=False)
        return a
    raise ValueError(kind)


LAYOUTS = ("C", "F", "strided", "readonly")
