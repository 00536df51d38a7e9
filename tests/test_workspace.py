"""The kernels' kept scratch memory (fastrnn._workspace): one policy for both compiled backends.

Per thread, up to a cap; freed when the thread ends and by release_workspace(); shown by
workspace_info(); memory that is really unmapped, not left with malloc.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _workspace, layers, reference
from helpers import COMPILED_BACKENDS, assert_all_close, sequence_inputs

MiB = 2**20
SHAPE = (8, 16, 12, 64)  # an LSTM backward here needs ~0.3 MiB of scratch on both backends


@pytest.fixture(autouse=True)
def _clean_workspace():
    """Each test starts with nothing kept and the default cap, and leaves it so."""
    fastrnn.release_workspace()
    previous = fastrnn.set_workspace_limit(_workspace.DEFAULT_LIMIT_MB)
    yield
    fastrnn.set_workspace_limit(previous)
    fastrnn.release_workspace()


def _held(name=None):
    """Bytes held by the thread called ``name``, or by every thread."""
    threads = fastrnn.workspace_info()["threads"]
    return sum(t["bytes"] for t in threads if name is None or t["name"] == name)


def _lstm_fwd_bwd(seed=0, shape=SHAPE):
    args = sequence_inputs(np.random.default_rng(seed), np.float32, shape, 4)
    dh = np.random.default_rng(seed + 1).standard_normal(shape[:2] + shape[3:]).astype(np.float32)
    h, cache = layers.lstm_forward(*args)
    return h, layers.lstm_backward(dh, cache), args, dh


def _mapped(address):
    """Whether ``address`` lies in a mapping of this process (Linux: /proc/self/maps), else None."""
    try:
        with open("/proc/self/maps") as f:
            spans = [tuple(int(v, 16) for v in line.split()[0].split("-")) for line in f]
    except OSError:
        return None
    return any(lo <= address < hi for lo, hi in spans)


# --------------------------------------------------------------------------- the scratch API


def test_scratch_is_exact_aligned_and_reused():
    a = _workspace.scratch(1000)
    assert a.dtype == np.uint8 and a.shape == (1000,) and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % _workspace.ALIGN == 0
    address = a.ctypes.data
    del a
    b = _workspace.scratch(3000)  # fits in what is kept: the same memory again
    assert b.ctypes.data == address
    assert _held(threading.current_thread().name) >= 3000


def test_a_second_request_while_the_first_is_alive_gets_other_memory():
    first = _workspace.scratch(4096)
    first[:] = 1
    second = _workspace.scratch(4096)
    second[:] = 2
    lo1, lo2 = first.ctypes.data, second.ctypes.data
    assert lo1 + 4096 <= lo2 or lo2 + 4096 <= lo1  # never the same bytes twice
    assert (first == 1).all()


def test_scratch_arrays_are_aligned_pieces_of_one_request():
    a, b, c = _workspace.scratch_arrays(np.dtype(np.float32), (3, 5), (7,), (0, 4))
    assert (a.shape, b.shape, c.shape) == ((3, 5), (7,), (0, 4))
    assert all(x.dtype == np.float32 and x.flags.c_contiguous for x in (a, b, c))
    assert a.ctypes.data % 64 == 0 and b.ctypes.data % 64 == 0
    assert b.ctypes.data >= a.ctypes.data + a.nbytes  # no overlap


def test_a_request_above_the_cap_is_not_kept_and_is_unmapped_when_dropped():
    fastrnn.set_workspace_limit(1)
    big = _workspace.scratch(3 * MiB)
    big[::4096] = 1  # touch it
    address = big.ctypes.data
    assert _held() == 0
    assert _mapped(address) in (True, None)
    del big
    assert _mapped(address) in (False, None)


def test_zero_limit_keeps_nothing_and_kernels_still_work():
    fastrnn.set_workspace_limit(0)
    for backend in COMPILED_BACKENDS:
        with fastrnn.use_backend(backend):
            h, grads, args, dh = _lstm_fwd_bwd()
        eh, ecache = reference.lstm_forward(*args)
        assert_all_close(grads, reference.lstm_backward(dh, ecache))
    assert _held() == 0


# --------------------------------------------------------------------------- the policy


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_kept_scratch_is_freed_when_its_thread_ends(backend):
    """Threads that ran the kernels hold scratch while they live; once they have ended, none."""
    n, ready, finish, seen, errors = 4, threading.Barrier(5), threading.Event(), {}, []

    def worker(k):
        try:
            with fastrnn.use_backend(backend):
                _lstm_fwd_bwd(k)
            seen[k] = _held(threading.current_thread().name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            ready.wait(30)
            finish.wait(30)

    threads = [threading.Thread(target=worker, args=(k,), name=f"ws-{backend}-{k}") for k in range(n)]
    for t in threads:
        t.start()
    ready.wait(30)
    assert not errors, errors
    assert all(seen[k] > 0 for k in range(n)), seen
    total = fastrnn.workspace_info()["total_bytes"]
    assert total >= sum(seen.values())
    finish.set()
    for t in threads:
        t.join()
    names = {t["name"] for t in fastrnn.workspace_info()["threads"]}
    assert not any(name.startswith(f"ws-{backend}-") for name in names)
    assert fastrnn.workspace_info()["total_bytes"] == _held(threading.current_thread().name) == 0


def test_release_workspace_frees_this_thread_and_idle_threads_and_they_keep_working():
    n, ready, go_on, done = 3, threading.Barrier(4), threading.Event(), threading.Barrier(4)
    results, errors = {}, []

    def worker(k):
        try:
            backend = COMPILED_BACKENDS[k % len(COMPILED_BACKENDS)] if COMPILED_BACKENDS else "numpy"
            with fastrnn.use_backend(backend):
                _lstm_fwd_bwd(k)
                ready.wait(30)
                go_on.wait(30)  # main releases everybody's scratch meanwhile
                results[k] = _lstm_fwd_bwd(k)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.wait(30)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    with fastrnn.use_backend(COMPILED_BACKENDS[0] if COMPILED_BACKENDS else "numpy"):
        _lstm_fwd_bwd(9)
    ready.wait(30)
    info = fastrnn.workspace_info()
    before = info["total_bytes"]
    assert before > 0 or not COMPILED_BACKENDS
    assert fastrnn.release_workspace() == before + (info["pool"]["held_bytes"] if info["pool"] else 0)
    assert fastrnn.workspace_info()["total_bytes"] == 0
    go_on.set()
    done.wait(30)
    for t in threads:
        t.join()
    assert not errors, errors
    for k, (h, grads, args, dh) in results.items():  # and they computed right after the release
        eh, ecache = reference.lstm_forward(*args)
        assert_all_close(grads, reference.lstm_backward(dh, ecache))


def test_release_while_a_call_uses_the_memory_frees_it_only_when_the_call_is_done():
    """release_workspace() from another thread never unmaps memory under a running kernel."""
    holding, released = threading.Event(), threading.Event()
    state = {}

    def worker():
        memory = _workspace.scratch(2 * MiB)  # as a kernel call holds its scratch
        memory[:] = 7
        state["address"] = memory.ctypes.data
        holding.set()
        released.wait(30)
        state["intact"] = bool((memory == 7).all())  # still mapped and ours
        memory[:] = 1  # and writable
        state["in_use_seen"] = True

    thread = threading.Thread(target=worker, name="ws-busy")
    thread.start()
    holding.wait(30)
    (entry,) = [t for t in fastrnn.workspace_info()["threads"] if t["name"] == "ws-busy"]
    assert entry["in_use"] and entry["bytes"] >= 2 * MiB
    fastrnn.release_workspace()
    assert _held("ws-busy") == 0
    released.set()
    thread.join()
    assert state["intact"] and state["in_use_seen"]
    assert _mapped(state["address"]) in (False, None)  # unmapped once the "call" dropped it


def test_lowering_the_limit_frees_what_is_above_it():
    memory = _workspace.scratch(5 * MiB)
    del memory
    assert _held() >= 5 * MiB
    assert fastrnn.set_workspace_limit(4) == _workspace.DEFAULT_LIMIT_MB
    assert _held() == 0 and fastrnn.get_workspace_limit() == 4
    small = _workspace.scratch(MiB)
    del small
    assert 0 < _held() <= 4 * MiB
    info = fastrnn.workspace_info()
    assert info["limit_bytes"] == 4 * MiB and info["limit_source"] == "set_workspace_limit"


@pytest.mark.parametrize("bad,error", [(-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                       ("64", TypeError), (None, TypeError), (True, TypeError)])
def test_set_workspace_limit_rejects_bad_values(bad, error):
    with pytest.raises(error, match="MiB"):
        fastrnn.set_workspace_limit(bad)
    assert fastrnn.get_workspace_limit() == _workspace.DEFAULT_LIMIT_MB


@pytest.mark.parametrize("value,expected,warns", [("32", 32.0, False), ("0.5", 0.5, False), ("0", 0.0, False),
                                                  ("lots", 256.0, True), ("-3", 256.0, True)])
def test_environment_variable_sets_the_limit(value, expected, warns):
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastrnn; i = fastrnn.workspace_info(); print(fastrnn.get_workspace_limit(), i['limit_source'])")
    env = {**os.environ, _workspace.ENV_VAR: value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    limit, source = out.stdout.split()
    assert float(limit) == expected
    assert source == ("default" if warns else _workspace.ENV_VAR)
    assert (_workspace.ENV_VAR in out.stderr and "RuntimeWarning" in out.stderr) == warns


def test_kernels_results_never_alias_the_kept_scratch():
    """Two calls in a row on every compiled backend: the first call's results are intact."""
    for backend in COMPILED_BACKENDS:
        with fastrnn.use_backend(backend):
            first = _lstm_fwd_bwd(1)
            _lstm_fwd_bwd(2)
        h, grads, args, dh = first
        eh, ecache = reference.lstm_forward(*args)
        assert_all_close(h, eh)
        assert_all_close(grads, reference.lstm_backward(dh, ecache))


def test_release_workspace_also_empties_the_native_array_pool_once_loaded():
    from fastrnn import _native as native  # not optional: built with the package

    with native.pooled():
        block = np.ones(3 * MiB, np.uint8)  # pooled: kept mapped when freed
    del block
    held = native.pool_stats()["held_bytes"]
    assert held >= 3 * MiB
    info = fastrnn.workspace_info()
    assert info["pool"]["held_bytes"] == held
    assert fastrnn.release_workspace() >= held
    assert native.pool_stats()["held_bytes"] == 0


def test_the_native_array_pool_is_capped_by_the_same_setting():
    from fastrnn import _native as native

    assert native.pool_stats()["cap_bytes"] == _workspace.POOL_FACTOR * _workspace.DEFAULT_LIMIT_MB * MiB
    with native.pooled():
        blocks = [np.ones(3 * MiB, np.uint8) for _ in range(3)]  # kept mapped when freed: 9 MiB and headers
    del blocks
    assert native.pool_stats()["held_bytes"] >= 9 * MiB
    fastrnn.set_workspace_limit(2)  # the pool may keep 4 MiB now: one of the blocks
    stats = native.pool_stats()
    assert stats["cap_bytes"] == 4 * MiB and 3 * MiB <= stats["held_bytes"] <= 4 * MiB
    fastrnn.set_workspace_limit(0)  # keeps nothing at all
    assert native.pool_stats()["cap_bytes"] == native.pool_stats()["held_bytes"] == 0
    fastrnn.set_workspace_limit(_workspace.DEFAULT_LIMIT_MB)
    assert native.pool_stats()["cap_bytes"] == 512 * MiB


def test_the_environment_variable_caps_the_native_array_pool_too():
    code = "import fastrnn.layers\nfrom fastrnn import _native\nprint(_native.pool_stats()['cap_bytes'])"
    env = {**os.environ, _workspace.ENV_VAR: "48"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 96 * MiB
