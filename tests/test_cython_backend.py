"""What is particular to the Cython backend (test_parity.py checks its numbers against the oracle).

Threads (results equal to serial runs; the GIL is released inside the kernels), the import (no
scipy.linalg package import; "cython" unavailable, with a how-to, when the extension is missing),
the BLAS choice, direct calls with bad arrays (errors, never a crash), the inline activations'
accuracy and their non-finite values, caches left untouched by backward passes.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, reference
from helpers import TOLERANCES, assert_all_close, randn, sequence_inputs

pytestmark = pytest.mark.skipif(
    "cython" not in fastrnn.available_backends(), reason="the Cython extension is not built"
)

DTYPES = [np.float32, np.float64]


@pytest.fixture
def cython():
    with fastrnn.use_backend("cython"):
        yield fastrnn._backend.backend_module("cython")


def _run_python(code, **env):
    """Runs code in a fresh interpreter (fresh imports) and returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# ------------------------------------------------------------------------------ the module


def test_defines_every_layer_function_compiled(cython):
    from fastrnn._cython import _kernels

    for name in fastrnn._backend.LAYER_FUNCTIONS:
        fn = getattr(cython, name)
        assert fn is getattr(_kernels, name), name  # the compiled function itself, no Python wrapper
        assert type(fn).__name__ in ("cython_function_or_method", "builtin_function_or_method"), name


def test_backend_import_does_not_import_the_scipy_linalg_package():
    out = _run_python("""
        import sys
        import fastrnn
        before = "scipy.linalg" in sys.modules
        fastrnn.set_backend("cython")
        print(before, "scipy.linalg" in sys.modules)
        # the trick that loads cython_blas alone leaves scipy importable as usual afterwards
        import scipy.linalg.cython_blas
        import scipy.linalg
        from scipy.linalg import cython_blas
        assert scipy.linalg.cython_blas is cython_blas and "dgemm" in cython_blas.__pyx_capi__
        from fastrnn import layers
        import numpy as np
        h, cache = layers.rnn_forward(np.ones((2, 3, 4)), np.ones((2, 5)), np.ones((4, 5)), np.ones((5, 5)), np.ones(5))
        print(np.isfinite(layers.rnn_backward(h, cache)[0]).all())
    """)
    before, after, finite = out.split()
    assert after == before and finite == "True"


def test_missing_extension_leaves_cython_out_with_a_how_to():
    out = _run_python("""
        import sys
        sys.modules["fastrnn._cython._kernels"] = None  # as if the extension had not been built
        import fastrnn
        print("cython" in fastrnn.available_backends())
        try:
            fastrnn.set_backend("cython")
        except ValueError as exc:
            print("ValueError:", exc)
    """)
    assert out.startswith("False\nValueError:")
    assert "pip install -e ." in out and "fastrnn._cython._kernels" in out


def test_blas_choice_and_both_blas_agree(cython):
    from fastrnn._cython import _kernels, backend

    bundled = backend._numpy_ilp64_gemm()
    assert backend.blas() == ("ilp64" if bundled else "scipy.linalg.cython_blas")
    assert _kernels.blas_selftest()
    args = sequence_inputs(np.random.default_rng(0), np.float64, (3, 4, 5, 6), 4)
    dh = np.random.default_rng(1).standard_normal((3, 4, 6))
    h, cache = layers.lstm_forward(*args)
    first = (h,) + layers.lstm_backward(dh, cache)
    try:
        _kernels.set_ilp64_blas(0, 0)  # SciPy's cython_blas
        assert backend.blas() == "scipy.linalg.cython_blas" and _kernels.blas_selftest()
        h, cache = layers.lstm_forward(*args)
        second = (h,) + layers.lstm_backward(dh, cache)
    finally:
        if bundled:
            _kernels.set_ilp64_blas(*bundled)
    assert_all_close(second, first)


def test_scipy_blas_forced_by_environment():
    out = _run_python("""
        import numpy as np, fastrnn
        from fastrnn import layers, reference
        fastrnn.set_backend("cython")
        from fastrnn._cython import backend
        rng = np.random.default_rng(0)
        x, h0, Wx, Wh, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5)), rng.standard_normal((4, 5)), rng.standard_normal((5, 5)), rng.standard_normal(5)
        h, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
        print(backend.blas(), np.allclose(h, reference.rnn_forward(x, h0, Wx, Wh, b)[0], rtol=1e-12, atol=1e-14))
    """, FASTRNN_CYTHON_BLAS="scipy")
    assert out.split() == ["scipy.linalg.cython_blas", "True"]


# ------------------------------------------------------------------------------ threads


def _workloads(dtype):
    """Forward+backward of every kind of kernel; each returns a tuple of arrays."""
    rng = np.random.default_rng(2)
    rnn_args, lstm_args = sequence_inputs(rng, dtype, (6, 7, 8, 9), 1), sequence_inputs(rng, dtype, (6, 7, 8, 9), 4)
    gru_args = sequence_inputs(rng, dtype, (6, 7, 8, 9), 3)
    dh = randn(rng, (6, 7, 9), dtype)
    dhT, dcT, c0 = randn(rng, (6, 9), dtype), randn(rng, (6, 9), dtype), randn(rng, (6, 9), dtype)
    x3, w, b = randn(rng, (6, 7, 8), dtype), randn(rng, (8, 11), dtype), randn(rng, (11,), dtype)
    scores, y, mask = randn(rng, (6, 7, 11), dtype, 3.0), rng.integers(0, 11, (6, 7)), rng.random((6, 7)) > 0.3
    words, W = rng.integers(0, 5, (6, 7)), randn(rng, (5, 8), dtype)
    step = sequence_inputs(rng, dtype, (6, 1, 8, 9), 4)
    step = [step[0][:, 0], step[1], randn(rng, (6, 9), dtype)] + step[2:]

    def seq(cell, args):
        h, cache = getattr(layers, f"{cell}_forward")(*args)
        return (h,) + getattr(layers, f"{cell}_backward")(dh, cache)

    def lstm_state():
        h, hT, cT, cache = layers.lstm_forward_state(lstm_args[0], lstm_args[1], c0, *lstm_args[2:])
        return (h, hT, cT) + layers.lstm_backward_state(dh, dhT, dcT, cache)

    def gru_state():
        h, hT, cache = layers.gru_forward_state(*gru_args)
        return (h, hT) + layers.gru_backward_state(None, dhT, cache)

    def affine():
        out, cache = layers.temporal_affine_forward(x3, w, b)
        return (out,) + layers.temporal_affine_backward(out, cache)

    def embed():
        out, cache = layers.word_embedding_forward(words, W)
        return out, layers.word_embedding_backward(out, cache)

    def lstm_step():
        h, c, cache = layers.lstm_step_forward(*step)
        return (h, c) + layers.lstm_step_backward(h, c, cache)

    return {
        "rnn": lambda: seq("rnn", rnn_args),
        "lstm": lambda: seq("lstm", lstm_args),
        "gru": lambda: seq("gru", gru_args),
        "lstm_state": lstm_state,
        "gru_state": gru_state,
        "temporal_affine": affine,
        "softmax": lambda: tuple(np.asarray(v) for v in layers.temporal_softmax_loss(scores, y, mask)),
        "embedding": embed,
        "lstm_step": lstm_step,
        "sigmoid": lambda: (layers.sigmoid(scores),),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_give_the_serial_results(cython, dtype):
    work = _workloads(dtype)
    serial = {name: fn() for name, fn in work.items()}
    n_threads, rounds = 4, 20
    start = threading.Barrier(n_threads)
    results, errors = [], []

    def worker():
        try:
            with fastrnn.use_backend("cython"):
                start.wait()
                for _ in range(rounds):
                    for name, fn in work.items():
                        results.append((name, fn()))
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == n_threads * rounds * len(work)
    for name, got in results:
        assert_all_close(got, serial[name], dtype=dtype, err_msg=f"{name} in a thread")


def test_kernels_release_the_gil(cython):
    """While one thread is inside a long kernel, another thread runs Python code.

    A kernel that held the GIL would let the other thread run only around its start and end
    (within one switch interval, 5 ms); so the main thread must get to run in the middle half of
    some call.  This asserts concurrency, not speed: the kernel is sized to last >= 40 ms here.
    """
    rng = np.random.default_rng(3)
    T = 4
    while True:
        args = sequence_inputs(rng, np.float64, (64, T, 256, 256), 4)
        t0 = time.perf_counter()
        cython.lstm_forward(*args)
        if time.perf_counter() - t0 >= 0.04 or T >= 1024:
            break
        T *= 2
    calls, stamps, done = [], [], threading.Event()

    def background():
        for _ in range(4):
            t0 = time.perf_counter()
            cython.lstm_forward(*args)
            calls.append((t0, time.perf_counter()))
        done.set()

    thread = threading.Thread(target=background)
    thread.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    thread.join()
    stamps = np.array(stamps)
    inside = [
        np.count_nonzero((stamps > a + 0.25 * (b - a)) & (stamps < b - 0.25 * (b - a))) for a, b in calls
    ]
    assert max(inside) > 0, f"the main thread never ran in the middle of a kernel call: {inside}"


# ------------------------------------------------------------------------------ direct calls


def test_direct_calls_with_bad_arrays_raise(cython):
    f32, f64 = np.ones((2, 3, 4), np.float32), np.ones((2, 3, 4))
    h0, Wx, Wh, b = np.ones((2, 5)), np.ones((4, 5)), np.ones((5, 5)), np.ones(5)
    with pytest.raises(TypeError):
        cython.rnn_forward(f64.astype(np.float16), h0, Wx, Wh, b)
    with pytest.raises(TypeError):
        cython.rnn_forward(f64.tolist(), h0, Wx, Wh, b)
    with pytest.raises(ValueError):
        cython.rnn_forward(f32, h0, Wx, Wh, b)  # float32 next to float64
    with pytest.raises(ValueError):
        cython.rnn_forward(np.asfortranarray(np.ones((2, 3, 4))), h0, Wx, Wh, b)  # not C-contiguous
    with pytest.raises(ValueError):
        cython.rnn_forward(f64, h0, np.ones((3, 5)), Wh, b)  # Wx rows != D
    with pytest.raises(ValueError):
        cython.lstm_forward(f64, h0, np.ones((4, 20)), np.ones((5, 20)), np.ones(19))
    with pytest.raises(ValueError):
        cython.rnn_forward(np.ones((2, 0, 4)), h0, Wx, Wh, b)  # empty dimension
    h, cache = cython.rnn_forward(f64, h0, Wx, Wh, b)
    with pytest.raises(ValueError):
        cython.rnn_backward(np.ones((2, 3, 6)), cache)  # wrong upstream shape
    with pytest.raises((TypeError, ValueError)):
        cython.rnn_backward(np.ones((2, 3, 5)), cache[:3])  # not this layer's cache
    _, lstm_cache = cython.lstm_forward(f64, h0, np.ones((4, 20)), np.ones((5, 20)), np.ones(20))
    with pytest.raises((TypeError, ValueError)):
        cython.rnn_backward(np.ones((2, 3, 5)), lstm_cache)
    with pytest.raises((TypeError, ValueError)):
        cython.gru_backward(np.ones((2, 3, 5)), lstm_cache)
    with pytest.raises(ValueError):
        cython.lstm_forward(f64, h0, np.ones((4, 20)), np.ones((5, 20)), np.ones(20), c0=np.ones((2, 4)))
    with pytest.raises(ValueError):
        cython.lstm_backward_state(None, None, np.ones((3, 5)), lstm_cache)  # dcT rows != N
    Wx3, Wh3, b3 = np.ones((4, 15)), np.ones((5, 15)), np.ones(15)
    with pytest.raises(ValueError):
        cython.gru_forward(f64, h0, Wx3, Wh3, b3, np.ones(6))  # bhn != (H,)
    with pytest.raises(ValueError):
        cython.gru_forward(f64, h0, Wx3, np.ones((5, 20)), b3, np.ones(5))
    _, gru_cache = cython.gru_forward(f64, h0, Wx3, Wh3, b3, np.ones(5))
    with pytest.raises(ValueError):
        cython.gru_backward_state(None, np.ones((2, 6)), gru_cache)  # dhT != (N, H)
    with pytest.raises((TypeError, ValueError)):
        cython.lstm_backward(np.ones((2, 3, 5)), gru_cache)
    W = np.ones((7, 3))
    with pytest.raises(IndexError):
        cython.word_embedding_forward(np.array([0, 7], dtype=np.intp), W)
    with pytest.raises(IndexError):
        cython.word_embedding_forward(np.array([-1], dtype=np.intp), W)
    with pytest.raises(ValueError):
        cython.word_embedding_forward(np.array([0, 1], dtype=np.int8), W)  # not np.intp
    with pytest.raises(IndexError):
        cython.word_embedding_backward(np.ones((1, 3)), (np.array([9], dtype=np.intp), 7))
    scores, mask = np.ones((2, 3, 4)), np.ones((2, 3))
    with pytest.raises(IndexError):
        cython.temporal_softmax_loss(scores, np.full((2, 3), 4, dtype=np.intp), mask)
    with pytest.raises(ValueError):
        cython.temporal_softmax_loss(scores, np.zeros((3, 2), dtype=np.intp), mask)
    with pytest.raises(ValueError):
        cython.affine_forward(np.ones((0, 3)), np.ones((3, 2)), np.ones(2))


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_leaves_the_cache_alone(cython, cell, gates, dtype):
    """A backward pass may run twice on one cache (gradient checks do) and gives the same answer."""
    args = sequence_inputs(np.random.default_rng(4), dtype, (3, 5, 4, 6), gates)
    h, cache = getattr(layers, f"{cell}_forward")(*args)
    kept = [np.array(a, copy=True) for a in cache.data if isinstance(a, np.ndarray)]
    dh = randn(np.random.default_rng(5), h.shape, dtype)
    first = getattr(layers, f"{cell}_backward")(dh, cache)
    second = getattr(layers, f"{cell}_backward")(dh, cache)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for a, b in zip([a for a in cache.data if isinstance(a, np.ndarray)], kept):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", [(4, 400, 300), (300, 400, 4), (7, 97, 1031), (1031, 97, 7), (60, 70, 80)])
def test_small_gemms_cut_into_pieces_match_the_oracle(cython, N, D, M, dtype):
    """GEMMs with 2**18 < m*n*k <= 2**20 run as single-threaded pieces (rows or columns of C, each
    operand transposed or not): affine forward (x w), backward (dout w^T, x^T dout) cover them all."""
    rng = np.random.default_rng(8)
    args = [randn(rng, (N, D), dtype), randn(rng, (D, M), dtype), randn(rng, (M,), dtype)]
    dout = randn(rng, (N, M), dtype)
    out, cache = layers.affine_forward(*args)
    got = (out,) + layers.affine_backward(dout, cache)
    out, cache = reference.affine_forward(*args)
    assert_all_close(got, (out,) + reference.affine_backward(dout, cache), dtype=dtype)


# ------------------------------------------------------------------------------ activations


def _grid(dtype):
    big = np.finfo(dtype).max
    return np.concatenate([
        np.linspace(-25, 25, 200001),
        np.geomspace(1e-30, 1e3, 20001),
        -np.geomspace(1e-30, 1e3, 20001),
        [0.0, 1e-45, 5e-324, 88.7, 89.5, 709.0, 710.0, -745.0, -746.0, 1e30, -1e30, big, -big],
    ]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inline_tanh_is_accurate_to_a_few_ulp(cython, dtype):
    # rnn_step_forward with D = H = 1, Wx = 1, Wh = 0, b = 0 computes tanh(x) for every row x.
    x = _grid(dtype)
    x = x[x != 0]  # 0 + 0 * h would turn -0.0 into +0.0
    one, zero = np.ones((1, 1), dtype), np.zeros((1, 1), dtype)
    got, _ = cython.rnn_step_forward(x[:, None], np.zeros((x.size, 1), dtype), one, zero, np.zeros(1, dtype))
    exact = np.tanh(x.astype(np.float64)) if dtype == np.float32 else np.tanh(x)
    np.testing.assert_allclose(got[:, 0], exact, rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_accurate_relative_to_its_value(cython, dtype):
    x = _grid(dtype)
    got = cython.sigmoid(x)
    x64 = x.astype(np.float64)
    exact = np.where(x64 >= 0, 1 / (1 + np.exp(-np.abs(x64))), np.exp(-np.abs(x64)) / (1 + np.exp(-np.abs(x64))))
    tiny = np.finfo(dtype).tiny  # a result that would be subnormal may flush to 0
    ok = exact >= 1.01 * tiny
    np.testing.assert_allclose(got[ok], exact[ok], rtol=6 * np.finfo(dtype).eps, atol=0)
    assert np.all(got[~ok] <= 1.01 * tiny)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values_propagate_like_numpy(cython, dtype):
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], dtype)
    assert_all_close(cython.sigmoid(specials), reference.sigmoid(specials), dtype=dtype)
    np.testing.assert_array_equal(np.signbit(cython.sigmoid(specials)), False)
    # sequence layers: inf and NaN in x, and saturating pre-activations
    rng = np.random.default_rng(6)
    for cell, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        args = sequence_inputs(rng, dtype, (3, 4, 5, 6), gates)
        args[0] *= dtype(1e4)
        args[0][0, 1, 2], args[0][1, 0, 0], args[0][2, 2, 4] = np.inf, -np.inf, np.nan
        with np.errstate(all="ignore"):
            expected = getattr(reference, f"{cell}_forward")(*args)[0]
        got = getattr(layers, f"{cell}_forward")(*args)[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        finite = np.isfinite(expected)
        assert_all_close(got[finite], expected[finite], dtype=dtype)
    # softmax: a non-finite score poisons its row's loss and gradient, masked or not, as in NumPy
    scores = randn(rng, (2, 3, 5), dtype)
    scores[0, 1, 2], scores[1, 2, 0] = np.nan, np.inf
    y, mask = np.zeros((2, 3), dtype=np.int64), np.array([[True, False, True], [True, True, False]])
    with np.errstate(all="ignore"):
        loss_e, dx_e = reference.temporal_softmax_loss(scores, y, mask)
    loss, dx = layers.temporal_softmax_loss(scores, y, mask)
    assert np.isnan(loss) and np.isnan(loss_e)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dx_e))
    assert_all_close(dx[~np.isnan(dx_e)], dx_e[~np.isnan(dx_e)], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_word_embedding_backward_sums_repeats_in_index_order(cython, dtype):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, size=(40, 9))
    W = randn(rng, (3, 4), dtype)
    out, cache = layers.word_embedding_forward(x, W)
    dout = randn(rng, out.shape, dtype)
    expected = np.zeros_like(W)
    np.add.at(expected, x, dout)  # index order, like the kernel: the same roundings
    np.testing.assert_array_equal(layers.word_embedding_backward(dout, cache), expected)


def test_tolerance_table_is_the_one_used():
    # guards against a silently loosened table: the Cython backend is held to these
    assert TOLERANCES[np.dtype(np.float32)] == dict(rtol=1e-4, atol=1e-5)
    assert TOLERANCES[np.dtype(np.float64)] == dict(rtol=1e-10, atol=1e-12)
