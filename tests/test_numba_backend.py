"""What is particular to the Numba backend: compilation and its cache, the BLAS binding,
allocation, bounds, and its vectorized math.

Parity with the oracle is tests/test_parity.py's job; these tests check the machinery.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from helpers import assert_all_close, sequence_inputs

pytestmark = pytest.mark.skipif("numba" not in fastrnn.available_backends(), reason="numba backend not available")

if "numba" in fastrnn.available_backends():
    from numba import njit, types
    from numba.core.runtime import _nrt_python, rtsys

    from fastrnn._numba import _gru, _lstm, _math, _rnn, _steps, backend
    from fastrnn._numba._jit import OPTIONS, PIPELINE
    from fastrnn._numba._views import run
    from fastrnn._numba._wide import PREFER_WIDE

    @njit
    def _rows_by_runs(a, width, out):
        """out[n] = sum of run n of a (width elements from n * width); each run's first element then -1."""
        for n in range(out.shape[0]):
            r = run(a, n * width, width)
            out[n] = r.sum()
            if width:
                r[0] = -1.0

    @njit
    def _rows_by_slices(a, width, out):
        flat = a.reshape(-1)
        for n in range(out.shape[0]):
            out[n] = flat[n * width : (n + 1) * width].sum()

    @njit(boundscheck=True)
    def _checked_run_sum(a, start, count):
        return run(a, start, count).sum()

    _STEPS = (_steps.rnn_step_forward, _steps.rnn_step_backward, _steps.lstm_step_forward, _steps.lstm_step_backward)

    @njit(error_model="numpy")
    def _apply_math(x, e, t, s):
        """e, t, s = vexp(x), vtanh(x), vsigmoid(x), elementwise."""
        for k in range(x.size):
            e[k] = _math.vexp(x[k])
            t[k] = _math.vtanh(x[k])
            s[k] = _math.vsigmoid(x[k])

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastrnn.__file__))
DTYPES = [np.float32, np.float64]


def _seq_args(rng, dtype, N, T, D, H, gates):
    return sequence_inputs(rng, dtype, (N, T, D, H), gates)


def _run_subprocess(code, env_extra, cwd):
    env = {**os.environ, **env_extra}
    env.pop("FASTRNN_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# ------------------------------------------------------------------ compilation


def test_every_kernel_has_one_signature_per_dtype_with_readonly_inputs():
    backend.compile_all()
    for kernel in backend.KERNELS:
        assert sorted(kernel, key=str) == [np.dtype(np.float32), np.dtype(np.float64)], kernel
        for dtype, dispatcher in kernel.items():
            sigs = dispatcher.signatures
            assert len(sigs) == 1, (kernel, sigs)
            floats = {a.dtype for a in sigs[0] if isinstance(a, types.Array) and a.dtype != types.intp}
            assert floats == {types.float32 if dtype == np.float32 else types.float64}, (kernel, sigs)
            for arg, k in zip(sigs[0], kernel.kinds):
                if k[0] in "fi":
                    assert isinstance(arg, types.Array) and not arg.mutable and arg.layout == "C", (kernel, arg)
            assert not dispatcher._can_compile, kernel  # closed: no variant compiled behind our back


def test_readonly_and_writable_inputs_share_the_compiled_code():
    rng = np.random.default_rng(0)
    args = _seq_args(rng, np.float64, 2, 3, 4, 5, 4)
    fastrnn.layers  # noqa: B018
    with fastrnn.use_backend("numba"):
        fastrnn.layers.lstm_forward(*args)
        before = len(_lstm.lstm_forward[np.float64].signatures)
        for a in args:
            a.setflags(write=False)
        h, cache = fastrnn.layers.lstm_forward(*args)
        fastrnn.layers.lstm_backward(np.ones_like(h), cache)
    assert len(_lstm.lstm_forward[np.float64].signatures) == before == 1


def test_float32_kernels_compute_in_float32():
    # No float64 arithmetic in the float32 sequence kernels: not one fpext of a float to double.
    # (Compiled afresh here: Numba cannot show the IR of code loaded from its cache.)
    backend.compile_all()
    for kernel in (_rnn.rnn_forward, _rnn.rnn_backward, _lstm.lstm_forward, _lstm.lstm_backward, *_STEPS,
                   _gru.gru_forward, _gru.gru_backward):
        (sig,) = kernel[np.float32].signatures
        fresh = njit(**{**OPTIONS, "cache": False}, pipeline_class=PIPELINE)(kernel.py_func)
        fresh.compile(sig)
        ir = "\n".join(fresh.inspect_llvm().values())
        assert "fpext float" not in ir and "fpext <" not in ir, kernel


def _has_avx512():
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx512f"))


def _function_attributes(dispatcher):
    """{mangled name after "fastrnn6_numba": its attribute group's text} of fastrnn's functions in the
    dispatcher's optimized module."""
    ir = "\n".join(dispatcher.inspect_llvm().values())
    groups = dict(re.findall(r"^attributes (#\d+) = \{(.*)\}$", ir, re.M))
    ours = re.findall(r"^define .*@_ZN7fastrnn6_numba(\w+)\(.*\)[^#]*(#\d+)", ir, re.M)
    return {name: groups[group] for name, group in ours}


def test_kernels_prefer_the_widest_vectors():
    """Every function compiled for fastrnn carries LLVM's "prefer-vector-width"="512" (``_wide``), so
    on an AVX-512 CPU the pointwise loops use 512-bit registers even where LLVM's tuning for the CPU
    prefers 256 bits; the same function compiled by a plain njit (a user's function) does not."""
    backend.compile_all()
    kernel = _lstm.lstm_forward
    (sig,) = kernel[np.float32].signatures
    fresh = njit(**{**OPTIONS, "cache": False}, pipeline_class=PIPELINE)(kernel.py_func)
    fresh.compile(sig)
    attributes = _function_attributes(fresh)
    assert any("lstm_forward" in n for n in attributes) and any("forward_units" in n for n in attributes)
    for name, group in attributes.items():  # the kernel and the helpers it calls
        assert PREFER_WIDE in group, (name, group)
    plain = njit(**{**OPTIONS, "cache": False})(kernel.py_func)
    plain.compile(sig)
    (own,) = [group for name, group in _function_attributes(plain).items() if "lstm_forward" in name]
    assert PREFER_WIDE not in own
    if _has_avx512():
        assert "zmm" in fresh.inspect_asm(sig)


def test_cache_is_used_with_a_readonly_package_dir(tmp_path):
    """A copy of the package, read-only, imported with NUMBA_CACHE_DIR set: the first process
    compiles and writes the cache there (not into the package), the second only loads it, and
    after an edit of a module the kernels only inline (``_math``), a third compiles again."""
    pkg_root = tmp_path / "site"
    shutil.copytree(PACKAGE_DIR, pkg_root / "fastrnn", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    for root, dirs, files in os.walk(pkg_root):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o555 if name in dirs else 0o444)
    os.chmod(pkg_root, 0o555)
    cache_dir = tmp_path / "numba_cache"
    code = """
        import numpy as np, fastrnn
        assert fastrnn.__file__.startswith({root!r}), fastrnn.__file__
        from fastrnn._numba import _rnn
        fastrnn.set_backend("numba")
        rng = np.random.default_rng(0)
        x, h0 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5))
        Wx, Wh, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 5)), rng.standard_normal(5)
        h, cache = fastrnn.layers.rnn_forward(x, h0, Wx, Wh, b)
        fastrnn.layers.rnn_backward(h, cache)
        stats = [d.stats for k in (_rnn.rnn_forward, _rnn.rnn_backward) for d in k.values()]
        print(sum(sum(s.cache_hits.values()) for s in stats), sum(sum(s.cache_misses.values()) for s in stats))
    """.format(root=str(pkg_root))
    env = {"NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(pkg_root)}
    try:
        hits, misses = map(int, _run_subprocess(code, env, cwd=tmp_path).split())
        assert (hits, misses) == (0, 2)
        assert any(name.endswith(".nbi") for _, _, files in os.walk(cache_dir) for name in files)
        assert not any("__pycache__" in root for root, _, _ in os.walk(pkg_root / "fastrnn" / "_numba"))
        hits, misses = map(int, _run_subprocess(code, env, cwd=tmp_path).split())
        assert (hits, misses) == (2, 0)
        math_py = pkg_root / "fastrnn" / "_numba" / "_math.py"
        os.chmod(math_py, 0o644)
        with open(math_py, "a") as f:
            f.write("# an edit\n")
        hits, misses = map(int, _run_subprocess(code, env, cwd=tmp_path).split())
        assert (hits, misses) == (0, 2)
    finally:
        for root, dirs, _ in os.walk(tmp_path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        os.chmod(pkg_root, 0o755)


# ------------------------------------------------------------------ BLAS


def test_blas_is_named_and_forcing_scipy_gives_the_same_results(tmp_path):
    assert backend.BLAS_NAME in ("NumPy's bundled OpenBLAS (ILP64)", "scipy.linalg.cython_blas (LP64)")
    code = """
        import numpy as np, fastrnn
        from fastrnn._numba import backend
        print(backend.BLAS_NAME)
        rng = np.random.default_rng(0)
        x, h0 = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 6))
        Wx, Wh, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)), rng.standard_normal(6)
        np.save({path!r}, backend.rnn_forward(x, h0, Wx, Wh, b)[0])
    """.format(path=str(tmp_path / "h.npy"))
    name = _run_subprocess(code, {"FASTRNN_NUMBA_BLAS": "scipy", "NUMBA_CACHE_DIR": str(tmp_path / "c")}, cwd=tmp_path)
    assert name.strip() == "scipy.linalg.cython_blas (LP64)"
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 6))
    Wx, Wh, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)), rng.standard_normal(6)
    assert_all_close(np.load(tmp_path / "h.npy"), reference.rnn_forward(x, h0, Wx, Wh, b)[0])


def test_gemm_refuses_a_matrix_outside_its_array():
    # Kernels trust fastrnn.layers' validation; the GEMM wrapper still checks its extents,
    # so a wrongly sized buffer is an error, not a write past the end.
    rng = np.random.default_rng(1)
    x, h0, Wx, Wh, b = _seq_args(rng, np.float64, 3, 4, 5, 6, 1)
    too_short = np.empty((3, 3, 6))
    with pytest.raises(ValueError, match="inside its array"):
        _rnn.rnn_forward[np.dtype(np.float64)](backend._BI, x, h0, Wx, Wh, b, too_short)


# ------------------------------------------------------------------ allocation


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_no_allocation_per_time_step(cell):
    """Compiled-code allocations of a forward + backward pass do not grow with T."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    forward, backward = getattr(backend, f"{cell}_forward"), getattr(backend, f"{cell}_backward")

    def allocations(T):
        args = _seq_args(np.random.default_rng(2), np.float32, 3, T, 4, 5, gates)
        h, cache = forward(*args)
        backward(h, cache)  # compiled and warm
        was_enabled = _nrt_python.memsys_stats_enabled()
        _nrt_python.memsys_enable_stats()
        try:
            before = rtsys.get_allocation_stats().alloc
            h, cache = forward(*args)
            backward(h, cache)
            return rtsys.get_allocation_stats().alloc - before
        finally:
            if not was_enabled:
                _nrt_python.memsys_disable_stats()

    assert allocations(2) == allocations(60)


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_scratch_kept_between_calls_never_leaks_into_results(cell, gates):
    """BPTT scratch comes from a per-thread buffer kept between calls (fastrnn._workspace):
    results must not alias it, so a later call leaves earlier results intact."""
    from fastrnn import _workspace

    forward, backward = getattr(backend, f"{cell}_forward"), getattr(backend, f"{cell}_backward")
    shape = (8, 40, 16, 128)  # dA alone is 8*40*128*gates*8 bytes: within the kept range
    assert 8 * 40 * 128 * gates * 8 <= _workspace.get_workspace_limit() * 2**20
    results = []
    for seed in (20, 21):
        args = _seq_args(np.random.default_rng(seed), np.float64, *shape, gates)
        dh = np.random.default_rng(seed + 10).standard_normal((8, 40, 128))
        h, cache = forward(*args)
        results.append((backward(dh, cache), args, dh))
    for grads, args, dh in results:
        eh, ecache = getattr(reference, f"{cell}_forward")(*args)
        assert_all_close(grads, getattr(reference, f"{cell}_backward")(dh, ecache))


def test_threads_run_kernels_concurrently():
    import threading

    shape, errors = (8, 40, 16, 64), []

    def work(seed):
        try:
            args = _seq_args(np.random.default_rng(seed), np.float64, *shape, 4)
            dh = np.random.default_rng(seed + 10).standard_normal((8, 40, 64))
            for _ in range(5):
                h, cache = backend.lstm_forward(*args)
                grads = backend.lstm_backward(dh, cache)
            eh, ecache = reference.lstm_forward(*args)
            assert_all_close(h, eh)
            assert_all_close(grads, reference.lstm_backward(dh, ecache))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (30, 31, 32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ------------------------------------------------------------------ long sequences, bounds


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_long_sequence(cell, gates, dtype):
    args = _seq_args(np.random.default_rng(3), dtype, 3, 300, 7, 8, gates)
    args[3] *= 0.5  # a contracting recurrence: gradients neither vanish to nothing nor blow up
    forward, backward = getattr(backend, f"{cell}_forward"), getattr(backend, f"{cell}_backward")
    ref_forward, ref_backward = getattr(reference, f"{cell}_forward"), getattr(reference, f"{cell}_backward")
    dh = np.random.default_rng(4).standard_normal((3, 300, 8)).astype(dtype)
    h, cache = forward(*args)
    eh, ecache = ref_forward(*args)
    assert_all_close(h, eh)
    assert_all_close(backward(dh, cache), ref_backward(dh, ecache))


def test_every_layer_with_numba_bounds_checking(tmp_path):
    """Every layer, on shapes with sizes of 1, compiled with NUMBA_BOUNDSCHECK=1 (into a fresh
    cache): an out-of-bounds index anywhere in the kernels raises IndexError instead of
    silently reading or writing memory."""
    code = """
        import numpy as np, fastrnn
        from fastrnn import layers, reference
        fastrnn.set_backend("numba")
        rng = np.random.default_rng(5)
        def close(a, b):
            for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9)
        for N, T, D, H in [(1, 1, 1, 1), (2, 3, 4, 5), (3, 1, 2, 1), (1, 4, 1, 3), (2, 130, 3, 2)]:  # N*T >= 256: Wh.T path
            for cell, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
                shapes = [(N, T, D), (N, H), (D, gates * H), (H, gates * H), (gates * H,)] + ([(H,)] if gates == 3 else [])
                args = [rng.standard_normal(s) for s in shapes]
                dh = rng.standard_normal((N, T, H))
                h, c = getattr(layers, cell + "_forward")(*args)
                eh, ec = getattr(reference, cell + "_forward")(*args)
                close(h, eh)
                close(getattr(layers, cell + "_backward")(dh, c), getattr(reference, cell + "_backward")(dh, ec))
                step = [args[0][:, 0], args[1]] + ([rng.standard_normal((N, H))] if gates == 4 else []) + args[2:]
                out = getattr(layers, cell + "_step_forward")(*step)
                ref = getattr(reference, cell + "_step_forward")(*step)
                close(out[:-1], ref[:-1])
                douts = [rng.standard_normal((N, H)) for _ in out[:-1]]
                close(getattr(layers, cell + "_step_backward")(*douts, out[-1]), getattr(reference, cell + "_step_backward")(*douts, ref[-1]))
                state = args[:2] + ([rng.standard_normal((N, H))] if gates == 4 else []) + args[2:]
                out = getattr(layers, cell + "_forward_state")(*state)
                ref = getattr(reference, cell + "_forward_state")(*state)
                close(out[:-1], ref[:-1])
                douts = [rng.standard_normal(o.shape) for o in out[:-1]]
                close(getattr(layers, cell + "_backward_state")(*douts, out[-1]), getattr(reference, cell + "_backward_state")(*douts, ref[-1]))
            x, b = rng.standard_normal((N, T, D)), rng.standard_normal(H)
            for name, w in (("affine", rng.standard_normal((T * D, H))), ("temporal_affine", rng.standard_normal((D, H)))):
                out, c = getattr(layers, name + "_forward")(x, w, b)
                eo, ec = getattr(reference, name + "_forward")(x, w, b)
                close(out, eo)
                d = rng.standard_normal(out.shape)
                close(getattr(layers, name + "_backward")(d, c), getattr(reference, name + "_backward")(d, ec))
            idx, W = rng.integers(0, 3, (N, T)), rng.standard_normal((3, D))
            out, c = layers.word_embedding_forward(idx, W)
            close(out, reference.word_embedding_forward(idx, W)[0])
            d = rng.standard_normal(out.shape)
            close(layers.word_embedding_backward(d, c), reference.word_embedding_backward(d, reference.word_embedding_forward(idx, W)[1]))
            s, y, m = rng.standard_normal((N, T, D)), rng.integers(0, D, (N, T)), rng.random((N, T)) > 0.5
            close(layers.temporal_softmax_loss(s, y, m), reference.temporal_softmax_loss(s, y, m))
            close(layers.sigmoid(x), reference.sigmoid(x))
        print("ok")
    """
    env = {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "FASTRNN_NUMBA_BLAS": ""}
    assert _run_subprocess(code, env, cwd=tmp_path).strip() == "ok"


# ------------------------------------------------------------------ borrowed views (_views.run)


@pytest.mark.parametrize("shape,width", [((2, 3, 4), 4), ((2, 3, 4), 6), ((5,), 1), ((1, 1), 1), ((3, 2), 0)])
def test_run_is_the_flat_range_it_names_and_writes_go_through(shape, width):
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    rows = a.size // width if width else 3
    out = np.empty(rows)
    expected = np.array([a.reshape(-1)[n * width : (n + 1) * width].sum() for n in range(rows)])
    _rows_by_runs(a, width, out)
    np.testing.assert_array_equal(out, expected)
    if width:
        assert (a.reshape(-1)[: rows * width : width] == -1.0).all()


def test_run_of_a_readonly_array_is_readonly():
    from numba.core.errors import TypingError

    a = np.zeros(6)
    a.flags.writeable = False
    with pytest.raises(TypingError):
        _rows_by_runs(a, 3, np.empty(2))


def test_runs_take_no_counted_references():
    """What runs are for (see _views): a loop of runs has no NRT_incref, a loop of slices has."""
    a, out = np.zeros((4, 3)), np.empty(4)
    _rows_by_runs(a, 3, out)
    _rows_by_slices(a, 3, out)
    increfs = re.compile(r"call .*@NRT_incref\(")
    assert not increfs.search(_rows_by_runs.inspect_llvm(_rows_by_runs.signatures[0]))
    assert increfs.search(_rows_by_slices.inspect_llvm(_rows_by_slices.signatures[0]))


def test_run_outside_its_array_raises_when_bounds_are_checked():
    a = np.arange(12.0).reshape(2, 6)
    assert _checked_run_sum(a, 10, 2) == 21.0
    for start, count in ((11, 2), (-1, 2), (0, 13), (3, -1)):
        with pytest.raises(IndexError, match="run outside its array"):
            _checked_run_sum(a, start, count)


# ------------------------------------------------------------------ vectorized math


def _ulps(actual, expected, dtype):
    expected = np.asarray(expected, np.float64)
    spacing = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    spacing[spacing == 0] = np.spacing(np.zeros(1, dtype))[0]
    return np.abs(actual.astype(np.float64) - expected) / spacing


@pytest.mark.parametrize("dtype", DTYPES)
def test_math_is_accurate_to_a_few_ulps(dtype):
    rng = np.random.default_rng(6)
    lim = 88.0 if dtype == np.float32 else 709.0
    # and around ln(smallest normal), where sigmoid's exp(-|x|) starts to flush to 0
    edge = np.log(np.finfo(dtype).tiny) + np.linspace(-0.02, 0.02, 401)
    x = np.concatenate([rng.standard_normal(20000) * 4, rng.uniform(-lim, lim, 20000), rng.standard_normal(2000) * 1e-5,
                        edge, [0.0, -0.0]])
    x = x.astype(dtype)
    e, t, s = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _apply_math(x, e, t, s)
    x64 = x.astype(np.float64)  # float64 references (for float64 inputs, x itself)
    for got, want in ((e, np.exp(x64)), (t, np.tanh(x64)), (s, reference.sigmoid(x64))):
        finite = np.isfinite(want) & (np.abs(want) > np.finfo(dtype).tiny)  # normal results
        assert _ulps(got[finite], want[finite], dtype).max() <= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_math_edges(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0], dtype=dtype)
    e, t, s = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _apply_math(x, e, t, s)
    np.testing.assert_array_equal(e, [np.nan, np.inf, 0, np.inf, 0, 1, 1])
    np.testing.assert_array_equal(t, [np.nan, 1, -1, 1, -1, 0, 0])
    np.testing.assert_array_equal(s, [np.nan, 1, 0, 1, 0, 0.5, 0.5])
    assert np.signbit(t[-1])  # tanh(-0.0) = -0.0


def test_public_sigmoid_is_relatively_accurate_in_the_tails():
    x = np.linspace(-740, 740, 20001)
    got = backend.sigmoid(x)
    want = reference.sigmoid(x)
    normal = want > np.finfo(np.float64).tiny
    assert _ulps(got[normal], want[normal], np.float64).max() <= 4
