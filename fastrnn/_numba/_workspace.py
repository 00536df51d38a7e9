"""Scratch arrays for the kernels, kept between calls.

Why: a backward pass needs a few scratch buffers that grow with the problem (dA,
a copy of dh, Wh transposed).  Freshly allocated on every call they are freshly
*mapped* on every call too -- glibc hands the freed memory back to the OS when a
call frees several buffers at once -- and first-touching a page costs more than
the arithmetic on it at small sizes (measured here: ~1000 page faults, ~2.5 ms, in
a 10 ms small-RNN backward).  So scratch is carved from one buffer per thread and
dtype that is kept and reused.

Bounds: only scratch between ``MIN_BYTES`` (below it malloc reuses memory anyway)
and ``MAX_BYTES`` (above it the GEMMs dwarf the page faults) is kept, so at most
``MAX_BYTES`` per thread and dtype stays allocated.  Each thread has its own
buffer (kernels release the GIL), and a kernel never returns a scratch array.
"""

import math
import threading

import numpy as np

MIN_BYTES = 256 * 1024
MAX_BYTES = 64 * 1024 * 1024
_ALIGN = 64  # bytes: every piece starts on a cache line

_local = threading.local()


def scratch(dtype, *shapes):
    """Uninitialized C-contiguous arrays of ``dtype`` (a ``np.dtype``) with the given shapes,
    for scratch only."""
    sizes = [math.prod(s) for s in shapes]  # (np.prod costs microseconds on a tuple)
    if not MIN_BYTES <= sum(sizes) * dtype.itemsize <= MAX_BYTES:
        return [np.empty(s, dtype) for s in shapes]
    step = _ALIGN // dtype.itemsize
    starts, total = [], 0
    for n in sizes:
        starts.append(total)
        total += -(-n // step) * step  # rounded up to a cache line
    buffers = _local.__dict__.setdefault("buffers", {})
    buffer = buffers.get(dtype)
    if buffer is None or buffer.size < total:
        buffer = buffers[dtype] = np.empty(total + step, dtype)
    offset = (-buffer.ctypes.data // dtype.itemsize) % step  # first element on a cache line
    return [buffer[offset + a : offset + a + n].reshape(s) for a, n, s in zip(starts, sizes, shapes)]
