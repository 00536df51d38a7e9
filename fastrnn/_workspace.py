"""Scratch memory of the compiled kernels, kept per thread between calls: one policy for every backend.

Why kept: a backward pass needs scratch that grows with the problem (dA, a copy of dh, Wh
transposed, ...).  Fresh memory costs a page fault per 4 KiB page on first touch, and that costs
more than one would think, at every size: ~1000 faults, ~2.5 ms, in a 10 ms small-RNN backward; a
fresh 128 MiB dA at the large LSTM size (float64), written one 2 MiB-strided step at a time, cost
80-600 ms on top of a 2.2 s backward, run to run.  So each thread keeps one buffer, reused by its
later calls (a thread runs one kernel at a time, and the kernels release the GIL, so buffers are
per thread).

Why mapped with mmap, not taken from malloc: memory a thread freed stays with glibc's malloc.
glibc moves its mmap threshold up (to as much as 32 MiB) the first time a large block is freed, so
later blocks of that size come from a malloc *arena* -- one per thread -- and freed arena memory
goes back to the OS only from the top of an arena and above a trim threshold that moved up too.
Measured (8 threads, LSTM (64, 64, 256, 512) float32 forward + backward, then the threads end):
300-400 MiB stayed resident, on both compiled backends and on the pure-NumPy oracle alike -- not
the kept scratch (it went with its thread, and at that size malloc had mapped it), but the
threads' freed NumPy arrays in their arenas.  So:

* a kept buffer is an anonymous mapping of its own (``mmap``), unmapped -- really given back to the
  OS -- when it is dropped: when its thread ends, on ``release_workspace()``, or when the cap shrinks;
* when a thread that used scratch of a MiB or more ends, and on ``release_workspace()``, glibc is
  asked to return its arenas' free pages (``malloc_trim``): that is where the NumPy arrays the
  thread freed (outputs, caches, gradients) went.  (No-op where the C library has none.)  Same
  measurement: 26-108 MiB left: ~30 MiB of OpenBLAS's own per-thread GEMM buffers, and the top
  chunk of each ended thread's arena, which malloc_trim leaves (it trims only the main arena's
  top).  ``MALLOC_TRIM_THRESHOLD_=4194304`` in the environment returns that too (+30 MiB), at the
  price of glibc's dynamic thresholds: a process-wide choice, so the user's, not a library's.

Buffers of 4 MiB and more ask for transparent huge pages (``MADV_HUGEPAGE``), as NumPy does for
its own large arrays: a first touch then faults once per 2 MiB.

The cap: a thread keeps at most ``limit`` bytes (default 256 MiB, ``DEFAULT_LIMIT_MB``), set by the
environment variable ``FASTRNN_WORKSPACE_MB`` or ``fastrnn.set_workspace_limit(mb)``; 0 keeps
nothing.  A call that needs more than the cap gets a mapping of its own, unmapped when the call
ends.  The same setting caps the native array pool (``fastrnn._native``, pool.h), which keeps the
backends' freed outputs and caches mapped for their next call, process-wide: at twice the
per-thread limit (512 MiB by default).  A large float64 LSTM's forward and backward (64, 64, 512,
1024) free about 340 MiB of blocks a call; with the pool at 256 MiB, part of that was mapped afresh
at every call (800-1,400 page faults), and the pair took 0-6 % longer, as did the GRU's.

For kernels: ``scratch(nbytes)`` is n bytes of this thread's kept buffer, 64-byte aligned,
counted against the cap; ``scratch_arrays(dtype, *shapes)`` carves several arrays from one such
request.  Ask once per call for everything the call needs: while arrays from one request are alive,
a second request in the same thread gets fresh memory of its own (correct, never shared, but
without the page-fault win).  Never return scratch to the caller of a layer function.
"""

import functools
import math
import mmap
import os
import sys
import threading
import warnings
import weakref

import numpy as np

__all__ = [
    "DEFAULT_LIMIT_MB",
    "ENV_VAR",
    "scratch",
    "scratch_arrays",
    "set_workspace_limit",
    "get_workspace_limit",
    "release_workspace",
    "workspace_info",
]

DEFAULT_LIMIT_MB = 256
ENV_VAR = "FASTRNN_WORKSPACE_MB"
POOL_FACTOR = 2  # the native array pool keeps up to this many times the per-thread limit
ALIGN = 64  # bytes: every piece starts on a cache line
_MiB = 1 << 20
_GRAIN = 64 * 1024  # a kept buffer is a multiple of this, so that slowly growing requests rarely remap
_HUGE = 4 * _MiB  # from here on: transparent huge pages, and a multiple of 2 MiB
_HUGE_GRAIN = 2 * _MiB
# A thread that ends is followed by a malloc_trim when it asked for this much scratch at least: its
# arrays were then large enough (MiBs) for glibc to keep them; a trim costs 0.1 ms to several ms (a
# large fragmented heap), too much to pay after every short thread that ran tiny problems.
_TRIM_FROM = _MiB


def _parse_limit(mb, name):
    """MiB (an int or float >= 0) -> bytes."""
    if isinstance(mb, bool) or not isinstance(mb, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of MiB (>= 0), got {type(mb).__name__}")
    if not math.isfinite(mb) or mb < 0:
        raise ValueError(f"{name} must be a finite number of MiB >= 0, got {mb}")
    return int(mb * _MiB)


def _limit_from_environment():
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        try:
            return _parse_limit(float(text), ENV_VAR), ENV_VAR
        except ValueError:
            warnings.warn(
                f"{ENV_VAR}={text!r} is not a number of MiB >= 0; using the default, {DEFAULT_LIMIT_MB} MiB",
                RuntimeWarning,
                stacklevel=2,
            )
    return DEFAULT_LIMIT_MB * _MiB, "default"


_limit, _limit_source = _limit_from_environment()  # bytes per thread; where the value came from
_local = threading.local()  # .holder: this thread's _Holder
_lock = threading.Lock()  # guards _holders (threads register and end concurrently)
_holders = weakref.WeakSet()  # every live thread's _Holder


# --------------------------------------------------------------------------- the C library's malloc

_malloc_trim = None


def _load_malloc_trim():
    global _malloc_trim
    if _malloc_trim is None:
        trim = False  # False: looked for, not there
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                trim = ctypes.CDLL(None).malloc_trim  # glibc; musl has none
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):
                trim = False
        _malloc_trim = trim
    return _malloc_trim


def trim_malloc():
    """Asks the C library to give the free pages of its malloc arenas back to the OS (glibc's
    ``malloc_trim(0)``); returns False where there is no such call."""
    trim = _load_malloc_trim()
    if not trim:
        return False
    trim(0)
    return True


# --------------------------------------------------------------------------- buffers


def _mapping_size(nbytes):
    grain = _HUGE_GRAIN if nbytes >= _HUGE else _GRAIN
    return -(-nbytes // grain) * grain


def _map(size):
    """A fresh anonymous mapping of ``size`` bytes as a writable uint8 array; unmapped when the
    array and every view of it are gone."""
    if os.name == "nt":
        mapping = mmap.mmap(-1, size)
    else:
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # private anonymous memory, like malloc's
        if size >= _HUGE and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                mapping.madvise(mmap.MADV_HUGEPAGE)
            except OSError:  # a kernel without transparent huge pages
                pass
    return np.frombuffer(mapping, np.uint8)  # page-aligned, so 64-byte aligned


class _Holder:
    """One thread's kept buffer; it goes when the thread ends (with the thread's ``threading.local``)."""

    __slots__ = ("buffer", "largest", "thread_name", "thread_id", "__weakref__")

    def __init__(self):
        thread = threading.current_thread()
        self.buffer = None
        self.largest = 0  # the largest request: how big this thread's problems were
        self.thread_name = thread.name
        self.thread_id = thread.ident

    def __del__(self):  # the thread has ended: unmap now, then have its malloc arena trimmed
        self.buffer = None
        try:
            if self.largest >= _TRIM_FROM:
                trim_malloc()
        except Exception:  # at interpreter shutdown the module may be half gone
            pass


def _references(buffer):
    return sys.getrefcount(buffer)


def _idle_references():
    """What ``_references`` counts, called as below, for a buffer that only its holder and the
    caller's local variable reference; more means views of it are alive: a call is using it."""
    class Probe:  # a holder without _Holder's end-of-thread work
        __slots__ = ("buffer",)

    holder = Probe()
    holder.buffer = np.empty(1, np.uint8)
    buffer = holder.buffer
    return _references(buffer)


_IDLE = _idle_references()


def _holder():
    holder = getattr(_local, "holder", None)
    if holder is None:
        holder = _local.holder = _Holder()
        with _lock:
            _holders.add(holder)
    return holder


def scratch(nbytes):
    """``nbytes`` bytes of scratch memory for this thread, as a uint8 array whose first byte is
    64-byte aligned; uninitialized.

    It comes from this thread's kept buffer, which grows to the largest request up to the cap
    (``set_workspace_limit``); a larger request, or one made while arrays from an earlier request
    are still alive, gets memory of its own that is unmapped when the caller drops it.
    """
    holder = getattr(_local, "holder", None)
    if holder is not None:
        buffer = holder.buffer  # read once: release_workspace() may clear it from another thread
        if buffer is not None and buffer.size >= nbytes and _references(buffer) <= _IDLE:
            return buffer[:nbytes]
    return _scratch_slow(int(nbytes))


def _scratch_slow(nbytes):
    if nbytes < 0:
        raise ValueError(f"scratch of {nbytes} bytes")
    if nbytes == 0:
        return np.empty(0, np.uint8)
    holder = _holder()
    holder.largest = max(holder.largest, nbytes)
    if nbytes > _limit:
        return _map(nbytes)  # above the cap: never kept
    # none yet, too small, or in use (its views keep the old mapping alive until they go)
    buffer = _map(min(_mapping_size(nbytes), _limit))
    holder.buffer = buffer
    return buffer[:nbytes]


def scratch_arrays(dtype, *shapes):
    """Uninitialized C-contiguous arrays of ``dtype`` (a ``np.dtype``) with the given shapes, each
    starting on a 64-byte boundary, carved from one ``scratch`` request."""
    total, pieces = _carving(dtype, shapes)
    memory = scratch(total)
    return [_ndarray(shape, dtype, memory, offset) for shape, offset in pieces]


_ndarray = np.ndarray


@functools.lru_cache(maxsize=256)
def _carving(dtype, shapes):
    """(bytes in all, ((shape, byte offset), ...)) for ``scratch_arrays``: computed once per
    layout, since at the tiny sizes microseconds of Python count."""
    pieces, total = [], 0
    for shape in shapes:
        pieces.append((shape, total))
        total += -(-math.prod(shape) * dtype.itemsize // ALIGN) * ALIGN  # rounded up to a cache line
    return total, tuple(pieces)


# --------------------------------------------------------------------------- the policy, public


def set_workspace_limit(mb):
    """Sets how much scratch memory each thread may keep between kernel calls, in MiB (default
    256, or ``FASTRNN_WORKSPACE_MB``); 0 keeps none.  Returns the previous limit in MiB.

    Buffers already kept that exceed the new limit are freed now, in every thread (a thread inside
    a kernel call frees its buffer when that call returns).  The native array pool's cap follows:
    ``POOL_FACTOR`` (2) times the limit, its oldest blocks unmapped now if it holds more.
    """
    global _limit, _limit_source
    limit = _parse_limit(mb, "the workspace limit")
    previous = _limit / _MiB
    _limit, _limit_source = limit, "set_workspace_limit"
    pool = _native_pool()
    if pool is not None:
        pool.pool_set_cap(pool_cap_bytes())
    for holder in _live_holders():
        buffer = holder.buffer
        if buffer is not None and buffer.size > limit:
            holder.buffer = None
        buffer = None
    return previous


def pool_cap_bytes():
    """The native array pool's cap, in bytes: ``POOL_FACTOR`` times the per-thread limit, so the one
    setting bounds all the memory kept between calls (0 keeps nothing at all)."""
    return POOL_FACTOR * _limit


def get_workspace_limit():
    """How much scratch memory each thread may keep between kernel calls, in MiB."""
    return _limit / _MiB


def release_workspace():
    """Frees the scratch memory the kernels keep, now: this thread's and every other thread's.

    A thread that is inside a kernel call at this moment keeps using its memory until the call
    returns, and frees it then: nothing is freed under a running kernel.  Threads keep working as
    before; their next call maps fresh scratch.  Also unmaps the blocks the native array pool keeps
    for the backends' next outputs (``fastrnn._native``, once a backend has loaded it), and asks the
    C library to give the free pages of its malloc arenas back to the OS (glibc's ``malloc_trim``):
    that is where other freed NumPy arrays stay.  Returns the number of bytes released (kept
    scratch and pooled blocks).
    """
    released = 0
    for holder in _live_holders():
        buffer, holder.buffer = holder.buffer, None
        released += 0 if buffer is None else buffer.size
        buffer = None  # unmapped here, unless a running call still uses it
    pool = _native_pool()
    if pool is not None:
        released += pool.pool_release()
    trim_malloc()
    return released


def _native_pool():
    """``fastrnn._native`` (whose array pool keeps freed outputs mapped) when something has loaded
    it; never imported here just to ask."""
    return sys.modules.get(__package__ + "._native")


def _live_holders():
    with _lock:
        return list(_holders)


def workspace_info():
    """What the kernels' scratch holds now, as a dict: ``limit_bytes`` (per thread) and where the
    limit comes from (``limit_source``: "default", ``FASTRNN_WORKSPACE_MB`` or
    "set_workspace_limit"), ``total_bytes`` kept by all threads, and ``threads``: one entry per
    live thread that has used scratch (``name``, ``ident``, ``bytes`` kept, ``in_use``: a kernel
    call of that thread is using it right now); ``pool``: the native array pool's ``pool_stats()``
    (bytes it keeps for all threads, its cap, ...) once loaded, else None."""
    threads = []
    for holder in _live_holders():
        buffer = holder.buffer
        threads.append({
            "name": holder.thread_name,
            "ident": holder.thread_id,
            "bytes": 0 if buffer is None else buffer.size,
            "in_use": buffer is not None and _references(buffer) > _IDLE,
        })
        buffer = None
    threads.sort(key=lambda t: (-t["bytes"], t["name"]))
    return {
        "limit_bytes": _limit,
        "limit_source": _limit_source,
        "total_bytes": sum(t["bytes"] for t in threads),
        "threads": threads,
        "pool": None if _native_pool() is None else _native_pool().pool_stats(),
        "malloc_trim": bool(_load_malloc_trim()),
    }
