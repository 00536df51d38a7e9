"""fastrnn._native: its products on every ISA version, the thread team, the array pool."""

import ctypes
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _native, layers
from fastrnn._backend import use_backend
from fastrnn._tolerances import excess
from helpers import COMPILED_BACKENDS, assert_all_close

HERE = os.path.dirname(os.path.abspath(__file__))
# NumPy's name of the memory handler of an array (NEP 49); numpy.core is numpy._core since NumPy 2
_handler_name = getattr(np, "_core", np.core).multiarray.get_handler_name


# ------------------------------------------------------------------ the products, every ISA version


@pytest.mark.parametrize("isa", ["avx512", "avx2", "generic"])
def test_products_match_numpy_on_every_isa_version(isa):
    """FASTRNN_ISA selects the version at import; one asked for that the CPU lacks falls back to a
    lower one, so every version this CPU can run is checked (the portable one always)."""
    # the script's own folder comes first on its sys.path: point it at the fastrnn this process imported
    # (a checkout's build, not another copy installed in the environment)
    tree = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    path = os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "FASTRNN_ISA": isa, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, os.path.join(HERE, "native_products.py")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    selected, checked = out.stdout.split()
    assert int(checked) > 250
    if isa == "generic":
        assert selected == "generic"


def test_layout_names_the_isa_and_panel_widths():
    layout = _native.layout()
    assert layout["isa"] in ("avx512", "avx2", "generic")
    assert layout["nr_float32"] == 2 * layout["nr_float64"] >= 4


@pytest.mark.parametrize("isa", ["avx512", "avx2", "generic"])
def test_fma_loops_count_their_work_on_every_isa_version(isa):
    """fma_run's FLOPs are threads x rounds x (2 x chains x lanes) of the selected ISA, every thread ran,
    and the time is the job's; the rate itself is never asserted."""
    code = ("import json, sys; from fastrnn._native import _native as n\n"
            "out = {'isa': n.layout()['isa'], 'runs': [n.fma_run(d, 1000, t) for d in (0, 1) for t in (1, 2)]}\n"
            "print(json.dumps(out))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FASTRNN_ISA": isa}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    chains, lanes32 = {"avx512": (16, 16), "avx2": (12, 8), "generic": (12, 4)}[got["isa"]]
    for run, (double, threads) in zip(got["runs"], [(0, 1), (0, 2), (1, 1), (1, 2)]):
        lanes = lanes32 // 2 if double else lanes32
        assert 1 <= run["threads"] <= threads
        assert run["flops"] == run["threads"] * 1000 * 2 * chains * lanes
        assert run["seconds"] > 0


def test_fma_run_refuses_empty_work():
    for iters, threads in ((0, 1), (1, 0), (-5, 2)):
        with pytest.raises(ValueError, match="iters >= 1 and threads >= 1"):
            _native.fma_run(False, iters, threads)


def test_products_in_this_process():
    sys.path.insert(0, HERE)
    try:
        import native_products
    finally:
        sys.path.remove(HERE)
    assert native_products.check_all(seed=1) > 250


# ------------------------------------------------------------------ the team

_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_RUN = ctypes.CFUNCTYPE(ctypes.c_int64, _TASK, ctypes.c_void_p, ctypes.c_int64)(_native.symbols()["fr_team_run"])
_SYNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_native.symbols()["fr_sync"])


def _run(fn, nth):
    """Runs the Python function fn(sync, tid, nth) as a team task (ctypes takes the GIL in each thread)."""
    task = _TASK(lambda arg, sync, tid, n: fn(sync, tid, n))
    return _RUN(task, None, nth), task


def test_team_runs_on_the_threads_asked_for_and_the_barrier_orders_rounds():
    events, lock = [], threading.Lock()

    def fn(sync, tid, nth):
        for r in range(5):
            with lock:
                events.append((r, tid, nth, threading.get_ident()))
            _SYNC(sync)

    ran, _ = _run(fn, 2)
    assert ran == 2
    assert {e[1] for e in events} == {0, 1} and {e[2] for e in events} == {2}
    assert len({e[3] for e in events}) == 2  # two OS threads
    rounds = [e[0] for e in events]
    assert rounds == sorted(rounds), "a thread left a barrier before the other arrived"
    assert _native.team_stats()["last_job_threads"] == 2


def test_team_of_one_runs_on_the_caller():
    seen = []
    ran, _ = _run(lambda sync, tid, nth: (seen.append((tid, nth, threading.get_ident())), _SYNC(sync)), 1)
    assert ran == 1 and seen == [(0, 1, threading.get_ident())]


def test_a_busy_team_runs_the_other_callers_job_alone():
    # While one Python thread's job holds the team, a second caller must not wait for it (or share
    # its cores): its job runs on the caller alone, with nth = 1.
    inside, release = threading.Event(), threading.Event()
    second = {}

    def long_job(sync, tid, nth):
        if tid == 0:
            inside.set()
            release.wait(30)
        _SYNC(sync)

    def first():
        _run(long_job, 2)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(30)
    before = _native.team_stats()["alone_because_busy"]
    ran, _ = _run(lambda sync, tid, nth: second.setdefault("nth", nth), 2)
    release.set()
    t.join(30)
    assert ran == 1 and second["nth"] == 1
    assert _native.team_stats()["alone_because_busy"] == before + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_product_planned_for_two_threads_runs_right_alone_when_the_team_is_busy(dtype):
    """fr_product sizes its work buffers for the threads it plans; when the team is busy the caller runs
    every share alone. A product by B^T with few rows (computed transposed, its result staged in the work
    buffer) with a small K, where a whole share's staging would not fit: still right, C's extra columns
    untouched."""
    sys.path.insert(0, HERE)
    try:
        from native_products import PRODUCT, _ptr
    finally:
        sys.path.remove(HERE)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(9)
    M, N, K = 32, 16384, 16  # two threads' worth (16.8 MFLOP); a share's staging (1 MiB) >> its gemm work
    A, B = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
    C = rng.standard_normal((M, N + 3)).astype(dtype)
    before = C.copy()
    inside, release = threading.Event(), threading.Event()

    def long_job(sync, tid, nth):
        if tid == 0:
            inside.set()
            release.wait(30)
        _SYNC(sync)

    t = threading.Thread(target=lambda: _run(long_job, 2))
    t.start()
    try:
        assert inside.wait(30)
        busy = _native.team_stats()["alone_because_busy"]
        with threadpool_limits(2):
            status = PRODUCT[np.dtype(dtype)](M, N, K, _ptr(A), K, 0, _ptr(B), K, 1, _ptr(C), N + 3, 1)
        assert _native.team_stats()["alone_because_busy"] == busy + 1, "the product did not meet a busy team"
    finally:
        release.set()
        t.join(30)
    assert status == 0
    expected = (A.astype(np.float64) @ B.astype(np.float64).T + before[:, :N]).astype(dtype)
    assert excess(C[:, :N], expected, dtype) <= 1
    assert np.array_equal(C[:, N:], before[:, N:])


def test_team_works_in_a_forked_child():
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    code = """
import ctypes, os, sys
from fastrnn import _native
T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
run = ctypes.CFUNCTYPE(ctypes.c_int64, T, ctypes.c_void_p, ctypes.c_int64)(_native.symbols()["fr_team_run"])
sync = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_native.symbols()["fr_sync"])
seen = []
task = T(lambda a, s, tid, n: (seen.append(tid), sync(s)))
assert run(task, None, 2) == 2           # the parent starts a worker thread
pid = os.fork()
if pid == 0:                              # the child has no worker: it must start its own
    seen.clear()
    ok = run(task, None, 2) == 2 and sorted(seen) == [0, 1]
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


# ------------------------------------------------------------------ the array pool


@pytest.fixture
def pool():
    _native.pool_release()
    yield
    _native.pool_release()


def test_pool_hands_back_freed_blocks_and_releases_them(pool):
    with _native.pooled():
        a = np.empty((1000, 1000))
        small = np.empty(10)
    assert _handler_name(a) == "fastrnn_pool"
    assert _handler_name(small) == "fastrnn_pool"
    assert _handler_name() != "fastrnn_pool"  # only inside the block
    a[:] = 1.5
    del a
    stats = _native.pool_stats()
    assert stats["held_bytes"] >= 8_000_000 and stats["blocks"] == 1
    with _native.pooled():
        b = np.empty((999, 1000))  # slightly smaller: the kept block fits
    after = _native.pool_stats()
    assert after["reused"] == stats["reused"] + 1 and after["held_bytes"] == 0
    del b
    assert _native.pool_release() >= 8_000_000
    assert _native.pool_stats()["held_bytes"] == 0


def test_pool_keeps_no_more_than_its_cap(pool):
    previous = _native.pool_set_cap(5 << 20)
    try:
        with _native.pooled():
            arrays = [np.ones((1 << 20) // 8 * 2) for _ in range(4)]  # 2 MiB each
        del arrays
        assert _native.pool_stats()["held_bytes"] <= 5 << 20
        _native.pool_set_cap(0)
        assert _native.pool_stats()["held_bytes"] == 0
    finally:
        _native.pool_set_cap(previous)
    with pytest.raises(ValueError):
        _native.pool_set_cap(-1)


def test_pool_makes_room_for_the_latest_blocks(pool):
    """A full pool pushes out its oldest blocks for a newly freed one: the blocks a loop cycles through
    stay kept, whatever ran before it (kept first-come, a pool filled by earlier work served none)."""
    mib = 1 << 20
    previous = _native.pool_set_cap(8 * mib)
    try:
        with _native.pooled():
            old = [np.empty(3 * mib // 8) for _ in range(2)]  # earlier work: 2 x 3 MiB
        del old
        held = _native.pool_stats()
        assert held["blocks"] == 2 and held["held_bytes"] <= 8 * mib
        for i in range(3):  # a loop of 4 MiB blocks: none of the kept 3 MiB ones fits
            with _native.pooled():
                a = np.empty(4 * mib // 8)
            a[:] = i
            del a
        stats = _native.pool_stats()
        assert stats["mapped"] == held["mapped"] + 1  # mapped once, then reused
        assert stats["reused"] == held["reused"] + 2
        assert stats["held_bytes"] <= 8 * mib and stats["blocks"] == 2  # one old block made room
        _native.pool_set_cap(4 * mib + 65536)  # a lower cap drops the oldest first: the loop's block stays
        with _native.pooled():
            b = np.empty(4 * mib // 8)
        assert _native.pool_stats()["reused"] == stats["reused"] + 1
        del b
    finally:
        _native.pool_set_cap(previous)


def test_pool_hands_back_the_last_freed_of_equal_blocks(pool):
    """Of kept blocks of one size, a request takes the one freed last (its lines the likeliest in cache),
    not the oldest: a caller keeping a few results alive otherwise cycles through all of them."""
    with _native.pooled():
        first, second, third = (np.empty(1 << 18) for _ in range(3))  # 2 MiB each
    addresses = {name: a.ctypes.data for name, a in (("first", first), ("second", second), ("third", third))}
    del first, third, second  # freed in this order: second is the newest
    with _native.pooled():
        a = np.empty(1 << 18)
        assert a.ctypes.data == addresses["second"]
        b = np.empty(1 << 18)
        assert b.ctypes.data == addresses["third"]
    del a, b


def test_pool_zeroes_calloc_and_keeps_data_through_realloc(pool):
    with _native.pooled():
        a = np.full(400_000, 7.0)
    del a  # a dirty block goes back to the pool
    with _native.pooled():
        z = np.zeros(400_000)  # NumPy asks calloc: the reused block must come back zeroed
        assert not z.any()
        r = np.arange(100_000, dtype=np.float64)
        r.resize(300_000, refcheck=False)  # realloc from the pool
        s = np.arange(1000, dtype=np.float64)
        s.resize(100_000, refcheck=False)  # realloc from malloc to a pooled block
    np.testing.assert_array_equal(r[:100_000], np.arange(100_000))
    np.testing.assert_array_equal(s[:1000], np.arange(1000))
    assert not r[100_000:].any() and not s[1000:].any()


def test_pool_from_many_threads(pool):
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                with _native.pooled():
                    a = np.empty(int(rng.integers(30_000, 300_000)))
                a[:] = seed
                assert (a == seed).all()
                del a
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _native.pool_stats()["held_bytes"] <= _native.pool_stats()["cap_bytes"]


# ------------------------------------------------------------------ resident weights


def _held():
    return _native.resident_stats()["held_here"]


def test_resident_weights_are_held_in_the_block_only_and_for_this_thread_only():
    W = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    seen = []
    with _native.resident(W, W):  # the same matrix twice: held once, released once the block ends
        assert _held() == 1
        thread = threading.Thread(target=lambda: seen.append(_held()))
        thread.start()
        thread.join()
    assert seen == [0] and _held() == 0


def test_resident_weights_must_be_released_by_the_thread_that_holds_them():
    W = np.ones((8, 8))
    block = _native.resident(W)
    block.__enter__()
    errors = []

    def leave():
        try:
            block.__exit__(None, None, None)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=leave)
    thread.start()
    thread.join()
    assert errors and "thread that entered it" in str(errors[0])
    assert _held() == 1  # still held here, its array still referenced
    block.__exit__(None, None, None)
    assert _held() == 0


def test_resident_weights_are_released_when_the_block_raises():
    W = np.ones((8, 8))
    with pytest.raises(KeyError):
        with _native.resident(W):
            assert _held() == 1
            raise KeyError("x")
    assert _held() == 0


def test_resident_leaves_alone_the_arrays_it_cannot_keep():
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((6, 10))
    others = [wide[:, ::2], wide.T, np.ones(5), np.ones((3, 4), np.float16), np.ones((3, 4), np.int64),
              np.ones((0, 4)), np.ones((2, 3, 4))]
    with _native.resident(*others):
        assert _held() == 0
    with pytest.raises(TypeError, match="NumPy arrays"):
        with _native.resident([[1.0, 2.0]]):
            pass
    assert _held() == 0


def test_resident_keeps_at_most_eight_matrices_and_releases_every_one():
    weights = [np.full((4, 4), i, np.float32) for i in range(10)]
    with _native.resident(*weights) as held:
        assert _held() == 8
        assert len(held._held) == 8
    assert _held() == 0


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_resident_products_come_out_of_the_block_unchanged_and_inputs_untouched(backend):
    """A product by a resident matrix, through a public layer, equals the one outside the block, and neither
    the weights nor the layer's inputs change."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 64)).astype(np.float32)
    w = rng.standard_normal((64, 700)).astype(np.float32)
    b = rng.standard_normal(700).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    with use_backend(backend):
        expected, _ = layers.affine_forward(x, w, b)
        before = _native.resident_stats()["products"]
        with _native.resident(w):
            got, _ = layers.affine_forward(x, w, b)
        assert _native.resident_stats()["products"] == before + 1
    assert_all_close(got, expected)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
