"""Bad input, fuzzed: every public layer function on every backend, 1,200 random cases each.

Each case starts from valid inputs at random small sizes (ones and zeros included) and breaks
one thing: a shape, the number of dimensions, a dtype, an argument that is not an array, a word
index, NaN or inf in the values, values that overflow, an empty dimension, the cache or the
upstream gradient handed to the backward pass (and some cases only change the memory layout, or
nothing).  The outcome must be one of:

* a clear exception (ValueError, TypeError or IndexError, with a message), or
* NumPy's result: what the oracle (``fastrnn.reference``) computes from the same inputs (made
  arrays with ``np.asarray``): same shapes and dtypes, the same values within the tolerance
  (NaN and inf at the same places), the inputs unmodified;

never a crash, another exception, a result where NumPy has none, or a different result.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, reference
from fastrnn._tolerances import excess
import layer_cases

CASES = 1200
CLEAR = (ValueError, TypeError, IndexError)
INDEX_ARGS = {"word_embedding": 0, "temporal_softmax_loss": 1}  # layer -> position of its word indices
MUTATIONS = ("shape", "ndim", "dtype", "not_an_array", "indices", "nonfinite", "huge", "empty", "layout", "cache",
             "upstream", "none")
ODD_DTYPES = (np.complex128, np.bool_, np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64, "U3", object,
              "datetime64[s]")
NOT_ARRAYS = (None, "abc", 3, 2.5, {"a": 1}, [[1.0, 2.0], [3.0, 4.0]], b"xy")


def _sizes(rng):
    def draw():
        u = rng.random()
        return 1 if u < 0.3 else int(rng.integers(2, 7))

    return {k: draw() for k in layer_cases.SIZES}


def _break_shape(rng, a):
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1)
    axis = int(rng.integers(a.ndim))
    new = a.shape[axis] + int(rng.choice([-1, 1, 2, 3]))
    return np.resize(a, a.shape[:axis] + (max(new, 0),) + a.shape[axis + 1:])


def _break_ndim(rng, a):
    a = np.asarray(a)
    if a.ndim and rng.random() < 0.5:
        axis = int(rng.integers(a.ndim))
        return np.take(a, 0, axis=axis) if a.shape[axis] else a.sum(axis=axis)  # one axis fewer
    return np.expand_dims(a, int(rng.integers(a.ndim + 1))).repeat(int(rng.integers(1, 3)), axis=0)


def _break_dtype(rng, a):
    dtype = ODD_DTYPES[int(rng.integers(len(ODD_DTYPES)))]
    a = np.asarray(a)
    if dtype == "datetime64[s]":
        return np.zeros(a.shape, dtype)
    with np.errstate(all="ignore"):
        return a.astype(dtype)


def _nonfinite(rng, a):
    a = np.array(a, dtype=np.result_type(np.asarray(a), np.float16))  # a float copy
    if a.size:
        flat = a.reshape(-1)
        where = rng.choice(flat.size, size=min(flat.size, int(rng.integers(1, 3))), replace=False)
        flat[where] = rng.choice([np.nan, np.inf, -np.inf], size=where.size)
    return a


def _bad_indices(rng, a, V):
    a = np.asarray(a)
    choice = int(rng.integers(4))
    if choice == 3 or not a.size:
        return a.astype(np.float64)
    a = a.copy()
    a.reshape(-1)[int(rng.integers(a.size))] = [V, -1, 2**40][choice]
    return a


def _empty(rng, a):
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(0)
    axis = int(rng.integers(a.ndim))
    return np.take(a, np.arange(0), axis=axis)


def _case(rng):
    """(layer, forward, backward, args, mutation, upstream dtype, how to break the backward)."""
    sizes = _sizes(rng)
    if rng.random() < 0.1:
        sizes[rng.choice(list(sizes))] = 0
    dtype = [np.float32, np.float64][int(rng.integers(2))]
    cases = layer_cases.cases(rng, dtype, sizes)
    layer = list(cases)[int(rng.integers(len(cases)))]
    forward, backward, args = cases[layer]
    args = list(args)
    mutation = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    if mutation in ("cache", "upstream") and backward is None:
        mutation = "shape"
    if mutation == "indices" and layer not in INDEX_ARGS:
        mutation = "nonfinite"
    i = int(rng.integers(len(args)))
    if mutation == "shape":
        args[i] = _break_shape(rng, args[i])
    elif mutation == "ndim":
        args[i] = _break_ndim(rng, args[i])
    elif mutation == "dtype":
        args[i] = _break_dtype(rng, args[i])
    elif mutation == "not_an_array":
        args[i] = NOT_ARRAYS[int(rng.integers(len(NOT_ARRAYS)))]
    elif mutation == "indices":
        k = INDEX_ARGS[layer]
        V = args[k + 1].shape[0] if layer == "word_embedding" else args[0].shape[2]
        args[k] = _bad_indices(rng, args[k], V)
    elif mutation == "nonfinite":
        i = next((j for j in range(len(args)) if np.asarray(args[j]).dtype.kind == "f"), i)
        args[i] = _nonfinite(rng, args[i])
    elif mutation == "huge":  # saturating activations, exp of large differences; but no sum so close to
        # the float's limit that whether it overflows depends on the order of summation (BLAS's or NumPy's)
        i = next((j for j in range(len(args)) if np.asarray(args[j]).dtype.kind == "f"), i)
        args[i] = args[i] * np.asarray(args[i]).dtype.type(np.finfo(args[i].dtype).max ** 0.75)
    elif mutation == "empty":
        args[i] = _empty(rng, args[i])
    elif mutation == "layout":  # valid values in a reversed, strided or readonly view
        a = np.asarray(args[i])
        a = a[(slice(None, None, -1),) * a.ndim] if rng.random() < 0.5 else np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a
        a.flags.writeable = a.flags.writeable and rng.random() < 0.5
        args[i] = a
    return layer, forward, backward, args, mutation, dtype


def _as_numpy(a):
    if a is None:  # None stays None: some arguments are optional (c0, dh, dhT, ...)
        return a
    try:
        return np.asarray(a)
    except Exception:  # what NumPy cannot even make an array of stays as it is
        return a


def _attempt(f, *args):
    """(result, None) or (None, the exception)."""
    try:
        with np.errstate(all="ignore"):
            return f(*args), None
    except Exception as exc:  # judged by the caller
        return None, exc


def _judge(what, got, got_exc, expected, exp_exc):
    """None when fine, else what is wrong."""
    if got_exc is not None:
        if isinstance(got_exc, CLEAR) and str(got_exc):
            return None
        return f"{what}: raised {type(got_exc).__name__}: {got_exc}"
    if exp_exc is not None:
        return f"{what}: returned a result where NumPy raises {type(exp_exc).__name__}: {exp_exc}"
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    if len(got) != len(expected):
        return f"{what}: {len(got)} results, NumPy's {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected)):
        if isinstance(e, layers.LayerCache) or isinstance(g, layers.LayerCache) or isinstance(e, tuple):
            continue  # a cache: backend-private
        g, e = np.asarray(g), np.asarray(e)
        loss = e.ndim == 0  # the loss may come back as a Python float or in x's dtype
        if g.shape != e.shape or (g.dtype != e.dtype and not loss):
            return f"{what}: result {k} has shape {g.shape} dtype {g.dtype}, NumPy's {e.shape} {e.dtype}"
        if e.dtype.kind not in "fc" and not loss:
            if not np.array_equal(g, e):
                return f"{what}: result {k} differs from NumPy's"
        elif excess(g, e, _precision) > 1:
            return f"{what}: result {k} differs from NumPy's beyond the tolerance"
    return None


_precision = np.float64  # set per case: the least precise float among the inputs


def _least_precise(arrays):
    floats = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return np.float64 if floats and min(f.itemsize for f in floats) >= 8 else np.float32


def _check_case(backend, seed):
    global _precision
    rng = np.random.default_rng([seed, 13])
    layer, forward, backward, args, mutation, dtype = _case(rng)
    what = f"case {seed} ({mutation}) {layer} on {backend}"
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    np_args = [_as_numpy(a) for a in args]
    _precision = _least_precise(np_args)
    expected, exp_exc = _attempt(getattr(reference, forward), *np_args)
    with fastrnn.use_backend(backend):
        got, got_exc = _attempt(getattr(layers, forward), *args)
    problem = _judge(f"{what} forward", got, got_exc, expected, exp_exc)
    unmodified = all(not isinstance(b, np.ndarray) or np.array_equal(a, b, equal_nan=b.dtype.kind in "fc")
                     for a, b in zip(args, before))
    if problem or not unmodified:
        return problem or f"{what}: an input was modified"
    if backward is None or got_exc is not None:
        return None
    outs, cache = got[:-1], got[-1]
    douts = layer_cases.upstream(rng, outs, dtype)
    ref_cache = expected[-1]
    if mutation == "upstream":
        j = int(rng.integers(len(douts)))
        douts[j] = [_break_shape, _break_dtype, _nonfinite, _break_ndim][int(rng.integers(4))](rng, douts[j])
    elif mutation == "cache":
        cache = [None, (1, 2), "cache", layers.sigmoid(np.ones(2))][int(rng.integers(4))]
        ref_cache = None
    with fastrnn.use_backend(backend):
        got, got_exc = _attempt(getattr(layers, backward), *douts, cache)
    np_douts = [_as_numpy(d) for d in douts]
    expected, exp_exc = (None, TypeError("no cache")) if ref_cache is None else \
        _attempt(getattr(reference, backward), *np_douts, ref_cache)
    _precision = _least_precise(np_args + np_douts)
    return _judge(f"{what} backward", got, got_exc, expected, exp_exc)


@pytest.mark.parametrize("backend", fastrnn.available_backends())
def test_bad_input_gets_a_clear_error_or_numpys_result(backend):
    failures = [p for p in (_check_case(backend, seed) for seed in range(CASES)) if p]
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:25])
