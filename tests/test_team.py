"""The compiled backends' team path (fastrnn._native): parity where it is taken, with 1 and 2 threads,
partial panels, every state input, on every ISA version; when it is taken; the BLAS fallback.

tests/test_parity.py covers every layer on every backend at small shapes; the team path starts at
half a panel of hidden units and more than one step, and a second thread at a few MFLOP per step,
so these shapes are chosen to reach it.
"""

import importlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastrnn
from fastrnn import _native, layers, reference
from helpers import COMPILED_BACKENDS, assert_all_close, layout, randn, state_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = [np.float32, np.float64]
NR = {np.dtype(np.float32): _native.layout()["nr_float32"], np.dtype(np.float64): _native.layout()["nr_float64"]}

# (N, T, D, H) on the team path: enough work per step for two threads (16, 4, 8, 512); a last unit block
# that is a partial panel (3, 2, 1, 70), (17, 3, 40, 130); a single sequence (1, 4, 5, 96); a batch of
# FR_KC_L2_M (48) rows or more, whose step products walk the weights in larger blocks, and whose
# backward passes split their loops by rows instead of units on 2 and 3 threads (BATCH_MIN_ROWS)
# (50, 2, 3, 300); as many rows again, whose forwards split by rows on 2 threads (FORWARD_MIN_ROWS)
# (100, 3, 6, 70).
TEAM_SHAPES = [(16, 4, 8, 512), (3, 2, 1, 70), (1, 4, 5, 96), (17, 3, 40, 130), (50, 2, 3, 300), (100, 3, 6, 70)]
CELLS = ["rnn", "lstm", "gru"]
GIVEN = [(0,), (1,), (0, 1, 2)]  # the upstream gradients given: of the steps, of hT, of all outputs


def _module(name):
    """The backend module of a compiled backend (its team_plan and set_team_flops)."""
    return importlib.import_module({"cython": "fastrnn._cython.backend", "numba": "fastrnn._numba.backend"}[name])


@pytest.fixture(params=COMPILED_BACKENDS)
def backend(request):
    """The backend, with the team taken from the smallest shapes on (TEAM_USE_FLOPS 0), so that the
    test shapes -- partial panels, single sequences -- reach it."""
    module = _module(request.param)
    previous = module.set_team_flops(0.0, 1.0)
    module.set_team_flops(0.0, previous[1])
    try:
        with fastrnn.use_backend(request.param):
            yield request.param
    finally:
        module.set_team_flops(*previous)


def _plan(backend, cell, shape, dtype):
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    return _module(backend).team_plan(*shape, gates, dtype)


def _state_run(module, cell, args, seed, dtype, given):
    *outs, cache = getattr(module, f"{cell}_forward_state")(*args)
    rng = np.random.default_rng(seed)
    douts = [randn(rng, o.shape, dtype) if k in given else None for k, o in enumerate(outs)]
    return outs, getattr(module, f"{cell}_backward_state")(*douts, cache)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TEAM_SHAPES)
@pytest.mark.parametrize("cell", CELLS)
def test_team_parity(backend, cell, shape, dtype, threads):
    """Outputs, final states and every gradient against the oracle, with every combination of upstream
    gradients, on 1, 2 and 3 threads (the middle one of 3 owns units with others' on both sides: its
    step products are split in three parts around the barrier); inputs F-ordered on the way (the team
    gets C-contiguous copies)."""
    args = state_inputs(np.random.default_rng(1), dtype, shape, cell)
    with threadpool_limits(threads):
        if _module(backend).native_in_use():  # (not under FASTRNN_NATIVE=0)
            assert _plan(backend, cell, shape, dtype) >= 1, "the test shape must reach the team path"
        for given in GIVEN:
            expected = _state_run(reference, cell, args, 2, dtype, given)
            outs, grads = _state_run(layers, cell, [layout(a, "F") for a in args], 2, dtype, given)
            msg = f"{cell} {shape} {np.dtype(dtype)} on {backend}, {threads} thread(s), given {given}"
            assert_all_close(tuple(outs), tuple(expected[0]), err_msg=msg + " forward")
            assert_all_close(tuple(grads), tuple(expected[1]), err_msg=msg + " backward")


@pytest.mark.parametrize("shape", [(16, 8, 8, 512), (48, 6, 8, 256)])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_team_runs_give_the_same_bits_every_time(backend, cell, threads, shape):
    """The same inputs on the same number of threads give the same bits, whichever thread reaches each
    step's barrier last (the threads' order varies from run to run): every thread sums its split step
    products in the same order, the last to arrive included; the LSTM backward split by rows (48 rows:
    16 or more a thread) sums the threads' parts of db in thread order."""
    args = state_inputs(np.random.default_rng(8), np.float64, shape, cell)
    douts = None
    with threadpool_limits(threads):
        if _module(backend).native_in_use():
            plan = _plan(backend, cell, shape, np.float64)
            assert plan == threads, f"the test shape must run on a team of {threads} threads, not {plan}"
        runs = []
        for _ in range(12):
            *outs, cache = getattr(layers, f"{cell}_forward_state")(*args)
            if douts is None:
                douts = [randn(np.random.default_rng(9), o.shape, np.float64) for o in outs]
            runs.append(outs + list(getattr(layers, f"{cell}_backward_state")(*douts, cache)))
    for k, run in enumerate(runs[1:], 1):
        for i, (a, b) in enumerate(zip(runs[0], run)):
            assert np.array_equal(a, b), f"{cell} on {backend}, {threads} threads: run {k} differs in output {i}"


@pytest.mark.parametrize("first", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_follows_its_forward_when_the_thread_limit_changes(backend, cell, first):
    """A layer with H at most one panel takes the team with one BLAS thread and BLAS with two: a backward
    pass under the other limit than its forward's (the other path) still computes the right gradients."""
    dtype = np.float32
    shape = (16, 4, 8, NR[np.dtype(dtype)])
    args = state_inputs(np.random.default_rng(6), dtype, shape, cell)
    with threadpool_limits(first):
        plans = {1: None, 2: None}
        if _module(backend).native_in_use():
            plans[first] = _plan(backend, cell, shape, dtype)
        *outs, cache = getattr(layers, f"{cell}_forward_state")(*args)
    with threadpool_limits(3 - first):
        if _module(backend).native_in_use():
            plans[3 - first] = _plan(backend, cell, shape, dtype)
            assert (plans[1] >= 1) and plans[2] == 0, f"the shape must switch paths with the thread limit: {plans}"
        douts = [randn(np.random.default_rng(7), o.shape, dtype) for o in outs]
        grads = getattr(layers, f"{cell}_backward_state")(*douts, cache)
    *eouts, ecache = getattr(reference, f"{cell}_forward_state")(*args)
    expected = getattr(reference, f"{cell}_backward_state")(*douts, ecache)
    msg = f"{cell} on {backend}, forward on {first} thread(s)"
    assert_all_close(tuple(outs), tuple(eouts), err_msg=msg + " forward")
    assert_all_close(tuple(grads), tuple(expected), err_msg=msg + " backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_cs231n_functions_on_the_team_path(backend, cell, dtype):
    args = state_inputs(np.random.default_rng(3), dtype, (16, 5, 8, 256), cell)
    if cell == "lstm":
        del args[2]  # lstm_forward starts from c0 = 0
    h, cache = getattr(layers, f"{cell}_forward")(*args)
    eh, ecache = getattr(reference, f"{cell}_forward")(*args)
    dh = randn(np.random.default_rng(4), h.shape, dtype)
    assert_all_close(h, eh)
    assert_all_close(getattr(layers, f"{cell}_backward")(dh, cache), getattr(reference, f"{cell}_backward")(dh, ecache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_layers_on_the_team(backend, dtype):
    """Shapes that split by rows and by columns, forward and backward."""
    rng = np.random.default_rng(5)
    for R, D, M in [(400, 64, 300), (3, 500, 700), (700, 3, 9), (64, 256, 64)]:
        x, w, b = randn(rng, (R, D), dtype), randn(rng, (D, M), dtype), randn(rng, (M,), dtype)
        out, cache = layers.affine_forward(x, w, b)
        eout, ecache = reference.affine_forward(x, w, b)
        dout = randn(rng, out.shape, dtype)
        assert_all_close(out, eout)
        assert_all_close(layers.affine_backward(dout, cache), reference.affine_backward(dout, ecache))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_on_the_team(backend, dtype, threads):
    """Enough scores for two threads (the model's at N=20): a share of the rows per thread, the loss summed
    from their parts; weights as the mask; against the oracle, and a team job exactly when 2 threads."""
    rng = np.random.default_rng(8)
    x, y = randn(rng, (20, 16, 1004), dtype), rng.integers(0, 1004, (20, 16))
    mask = rng.random((20, 16)).astype(dtype)
    with threadpool_limits(threads):
        jobs = _native.team_stats()["jobs"]
        loss, dx = layers.temporal_softmax_loss(x, y, mask)
        ran = _native.team_stats()["jobs"] - jobs
    if _module(backend).native_in_use():
        assert ran == (1 if threads == 2 else 0)
    eloss, edx = reference.temporal_softmax_loss(x, y, mask)
    assert np.asarray(loss).dtype == dtype
    assert_all_close((loss, dx), (eloss, edx))


def _step_inputs(rng, dtype, N, D, H, cell):
    """A step's arguments (x, prev_h[, prev_c], Wx, Wh, b[, bhn]), scaled as the sequences' (helpers)."""
    args = state_inputs(rng, dtype, (N, 1, D, H), cell)
    args[0] = np.ascontiguousarray(args[0][:, 0])
    return args


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_single_steps_above_the_serial_line_run_on_the_team(backend, cell, dtype):
    """A step's products above OpenBLAS's one-thread line run as team jobs (product.h), not on BLAS's
    threads, so a sampling loop of steps and affine layers uses one pool; with one, a few and many rows
    (op(B) read in place or packed), forward and backward, both dtypes, against the oracle."""
    rng = np.random.default_rng(7)
    for N, D, H in [(1, 300, 520), (25, 256, 512), (100, 64, 260)]:  # each has a product for two threads
        args = _step_inputs(rng, dtype, N, D, H, cell)
        jobs = _native.team_stats()["jobs"]
        with threadpool_limits(2):
            *outs, cache = getattr(layers, f"{cell}_step_forward")(*args)
        *eouts, ecache = getattr(reference, f"{cell}_step_forward")(*args)
        assert_all_close(outs, eouts)
        douts = [randn(rng, o.shape, dtype) for o in outs]
        assert_all_close(getattr(layers, f"{cell}_step_backward")(*douts, cache),
                         getattr(reference, f"{cell}_step_backward")(*douts, ecache))
        if _module(backend).native_in_use():  # (not under FASTRNN_NATIVE=0)
            assert _native.team_stats()["jobs"] > jobs, f"no team job for the step products at N={N}"


def test_sampling_runs_on_one_pool(backend):
    """CaptioningRNN.sample on a compiled backend: its steps and vocabulary projections are team jobs
    (BLAS's threads, which spin after a call, would take the team's core between them), same captions."""
    from fastrnn.models.captioning import CaptioningRNN

    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, 1000)}}
    model = CaptioningRNN(words, input_dim=64, wordvec_dim=96, hidden_dim=512, cell_type="lstm", dtype=np.float32)
    features = randn(np.random.default_rng(8), (40, 64), np.float32)
    jobs = _native.team_stats()["jobs"]
    with threadpool_limits(2):
        captions = model.sample(features, max_length=6)
    if _module(backend).native_in_use():
        assert _native.team_stats()["jobs"] >= jobs + 2 * 6
    with fastrnn.use_backend("numpy"):
        assert np.array_equal(captions, model.sample(features, max_length=6))


@pytest.mark.parametrize("cell", CELLS)
def test_the_team_runs_the_large_sequences_with_the_threads_blas_may_use(backend, cell):
    args = state_inputs(np.random.default_rng(6), np.float32, (16, 4, 8, 512), cell)
    for threads in (1, 2):
        with threadpool_limits(threads):
            jobs = _native.team_stats()["jobs"]
            *outs, cache = getattr(layers, f"{cell}_forward_state")(*args)
            stats = _native.team_stats()
            if threads == 1:
                assert stats["jobs"] == jobs, "a team job with one thread allowed"
            else:
                assert stats["jobs"] == jobs + 1 and stats["last_job_threads"] == 2
                getattr(layers, f"{cell}_backward_state")(*[np.ones_like(o) for o in outs], cache)
                stats = _native.team_stats()
                assert stats["jobs"] == jobs + 2 and stats["last_job_threads"] == 2, "backward not on the team"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPUs to move a worker between")
def test_a_sleeping_worker_is_moved_off_the_callers_cpu_before_its_job(backend):
    """After a pause the worker sleeps; a wake-up would place it on its waker's CPU, where the caller runs
    its own share (team.h, Waiting): fr_team_run moves it off that CPU first, and the job's results are
    the same as without the pause."""
    args = state_inputs(np.random.default_rng(7), np.float32, (16, 4, 8, 512), "lstm")
    with threadpool_limits(2):
        h, _ = layers.lstm_forward(args[0], args[1], args[3], args[4], args[5])
        for _ in range(3):
            time.sleep(0.05)  # 50 times the worker's spin: it sleeps now
            moved = _native.team_stats()["moved_off_callers_cpu"]
            again, _ = layers.lstm_forward(args[0], args[1], args[3], args[4], args[5])
            stats = _native.team_stats()
            assert stats["last_job_threads"] == 2
            assert stats["moved_off_callers_cpu"] > moved, "the sleeping worker was not moved before its job"
            np.testing.assert_array_equal(again, h)


@pytest.mark.parametrize("name", COMPILED_BACKENDS)
def test_when_the_team_pays(name):
    """The rule, with the default thresholds: tiny sizes stay on BLAS per step (packing and mostly empty
    panels cost more there), one panel of units only when BLAS may use one thread (a panel is a team
    thread), the canonical sizes on the team with every thread BLAS may use."""
    module = _module(name)
    f32, f64 = np.float32, np.float64
    for threads in (1, 2):
        with threadpool_limits(threads):
            assert module.team_plan(10, 13, 30, 40, 4, f32) == 0  # tiny
            assert module.team_plan(10, 13, 30, 40, 1, f64) == 0
            assert module.team_plan(25, 1, 256, 512, 4, f32) == 0  # a single step
            assert module.team_plan(100, 16, 64, 64, 4, f32) == (1 if threads == 1 else 0)
            for gates in (1, 3, 4):
                for dtype in (f32, f64):
                    assert module.team_plan(25, 16, 256, 512, gates, dtype) == threads  # small
                    assert module.team_plan(64, 64, 512, 1024, gates, dtype) == threads  # large


@pytest.mark.parametrize("cell", CELLS)
def test_large_outputs_come_from_the_pool(backend, cell):
    handler = getattr(np, "_core", np.core).multiarray.get_handler_name
    args = state_inputs(np.random.default_rng(7), np.float64, (16, 40, 8, 256), cell)
    h, hT, *_ = getattr(layers, f"{cell}_forward_state")(*args)
    assert handler(h) == "fastrnn_pool"  # 16*40*256*8 bytes: pooled
    assert handler(hT) != "fastrnn_pool"  # 16*256*8 bytes: plain


@pytest.mark.parametrize("cell", CELLS)
def test_single_steps_arrays_never_come_from_the_pool(backend, cell):
    """A step's arrays, weight gradients of pooled size included, come from NumPy's allocator (the heap the
    caller's own NumPy work recycles, still in cache; see step_empty in fastrnn/_cython/_kernels.pyx)."""
    handler = getattr(np, "_core", np.core).multiarray.get_handler_name
    args = _step_inputs(np.random.default_rng(7), np.float64, 4, 256, 256, cell)  # Wx, Wh: 0.5-2 MiB
    *outs, cache = getattr(layers, f"{cell}_step_forward")(*args)
    grads = getattr(layers, f"{cell}_step_backward")(*outs, cache)
    assert max(g.nbytes for g in grads) >= 256 * 1024  # the pool's threshold for sequence layers
    for i, a in enumerate(list(outs) + list(grads)):
        while handler(a) is None and isinstance(a.base, np.ndarray):  # a view: its memory's owner
            a = a.base
        assert handler(a) != "fastrnn_pool", f"array {i} of the step's outputs and gradients"


@pytest.mark.parametrize("isa", ["avx2", "generic"])
def test_team_parity_on_the_other_isa_versions(isa):
    """The same parity tests in a process whose packed kernels are the AVX2 or the portable version
    (other panel widths, so other slabs and partial panels)."""
    env = {**os.environ, "FASTRNN_ISA": isa}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", os.path.abspath(__file__),
                          "-k", "(test_team_parity and not other_isa) or test_affine_layers_on_the_team"],
                         cwd=HERE, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout


_ALTERNATING_TEAMS = """
import sys
import numpy as np
from threadpoolctl import threadpool_limits
import fastrnn
import fastrnn.layers as layers
from fastrnn._cython import backend

backend.set_team_flops(0.0, backend.set_team_flops(0.0, 1.0)[1])  # the team from the smallest shapes on
rng = np.random.default_rng(1)
x, h0 = rng.standard_normal((100, 3, 6)), rng.standard_normal((100, 70))
Wx, Wh, b = rng.standard_normal((6, 70)), 0.1 * rng.standard_normal((70, 70)), np.zeros(70)
expected = {}  # per thread count: the products' parts, so the sums' order, differ between them
with fastrnn.use_backend("cython"):
    for _ in range(int(sys.argv[1])):
        for threads in (2, 3):
            with threadpool_limits(threads):
                h = layers.rnn_forward(x, h0, Wx, Wh, b)[0]
            assert np.array_equal(h, expected.setdefault(threads, h))
print("done")
"""


@pytest.mark.skipif("cython" not in COMPILED_BACKENDS, reason="needs the Cython backend")
def test_teams_of_2_and_3_threads_alternating():
    """Jobs on 2 and 3 threads in turn: the worker left out of a 2-thread job must not take the 3-thread job
    published meanwhile for its own and then run it a second time after the caller returned (team.h, the
    job word; before the fix this loop segfaulted or hung in 2 of 3 runs on the project's 2-CPU machine)."""
    env = {**os.environ, "FASTRNN_ISA": "generic"}
    out = subprocess.run([sys.executable, "-c", _ALTERNATING_TEAMS, "10000"], cwd=HERE, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "done" in out.stdout, (out.returncode, out.stderr[-2000:])


def test_blas_fallback_when_native_is_turned_off():
    """FASTRNN_NATIVE=0: every layer on BLAS, same results."""
    env = {**os.environ, "FASTRNN_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", os.path.abspath(__file__),
                          "-k", "(test_team_parity and not other_isa and shape0 and float32) or single_steps or "
                                "sampling_runs_on_one_pool"],
                         cwd=HERE, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    code = ("import fastrnn; from fastrnn._cython import backend, _kernels; print(_kernels.native_in_use())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
