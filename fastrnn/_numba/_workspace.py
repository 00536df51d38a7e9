"""Scratch arrays for the kernels, kept between calls.

Why: a backward pass needs a few scratch buffers that grow with the problem (dA,
a copy of dh, Wh transposed).  Freshly allocated on every call they are freshly
*mapped* on every call too -- glibc hands the freed memory back to the OS when a
call frees several buffers at once -- and first-touching the pages costs more
than one would think, at every size:

- small: ~1000 page faults, ~2.5 ms, in a 10 ms small-RNN backward;
- large (64, 64, 512, 1024) LSTM, float64: a fresh 128 MiB dA, written one step
  (a 2 MiB-strided column of rows) at a time, cost 80-600 ms on top of a 2.2 s
  backward, run to run (single-threaded; the kernel on kept scratch sits at the
  BLAS floor).

So scratch is carved from one byte buffer per thread, kept and reused.

Bounds: only scratch between ``MIN_BYTES`` (below it malloc reuses memory anyway)
and ``MAX_BYTES`` is kept, so at most ``MAX_BYTES`` per thread stays allocated --
the same bound as the Cython backend's.  Each thread has its own buffer (kernels
release the GIL), and a kernel never returns a scratch array.
"""

import math
import threading

import numpy as np

MIN_BYTES = 256 * 1024
MAX_BYTES = 256 * 1024 * 1024
_ALIGN = 64  # bytes: every piece starts on a cache line

_local = threading.local()


def scratch(dtype, *shapes):
    """Uninitialized C-contiguous arrays of ``dtype`` (a ``np.dtype``) with the given shapes,
    for scratch only."""
    sizes = [math.prod(s) * dtype.itemsize for s in shapes]  # bytes (np.prod costs microseconds on a tuple)
    starts, total = [], 0
    for n in sizes:
        starts.append(total)
        total += -(-n // _ALIGN) * _ALIGN  # rounded up to a cache line
    if not MIN_BYTES <= total <= MAX_BYTES:
        return [np.empty(s, dtype) for s in shapes]
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.size < total + _ALIGN:
        buffer = _local.buffer = np.empty(total + _ALIGN, np.uint8)
    offset = -buffer.ctypes.data % _ALIGN  # first byte on a cache line
    return [
        buffer[offset + a : offset + a + n].view(dtype).reshape(s) for a, n, s in zip(starts, sizes, shapes)
    ]
