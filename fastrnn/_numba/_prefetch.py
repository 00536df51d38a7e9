"""Software prefetch for the pointwise passes: ``fetch`` and ``fetch_for_write`` a run of an array.

How it wins its speed: a pass over a slab of hidden units walks its arrays row by row, and in the
batch-major layout (N, T, .) the next row of a step lies a row of every step further (T*4H elements
of the LSTM's gates: 128 KiB at T = 16, H = 512 in float32), in another page, where the hardware
prefetchers do not follow.  What the step's product has just written (the gates) is in cache; what
the forward left for the backward (gates, cell states, states) and the rows about to be written (c,
h, dA: a store to a line not in cache first reads it) are not.  So a pass fetches those runs
``AHEAD`` rows before it reaches them, as the Cython backend's C passes do (pointwise.h):
``llvm.prefetch``, for reading (prefetcht0) or for writing (prefetchw, the line fetched for
ownership).  A prefetch never faults, so an index past an array's end would be harmless, but the
passes only ask for rows that exist.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import inline_helper

__all__ = ["AHEAD", "fetch", "fetch_for_write"]

AHEAD = 8  # rows ahead of the row a pass is at
_LINE = 64  # bytes


def _prefetch_intrinsic(write):
    @intrinsic
    def prefetch(typingctx, a, i):
        """Prefetches the line of element i (a flat index) of the C-contiguous array a."""
        if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            index = context.cast(builder, args[1], signature.args[1], types.intp)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            address = builder.bitcast(builder.gep(array.data, [index]), i8p)
            # rw, locality 3 (all cache levels), data cache: all three must be constants
            builder.call(fn, [address, ir.Constant(i32, int(write)), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(a, i), codegen

    return prefetch


_read = _prefetch_intrinsic(False)
_write = _prefetch_intrinsic(True)


@inline_helper
def _lines(a, start, count, write):
    """Prefetches every line of elements [start, start + count) (flat indices) of the C-contiguous
    array a: for writing when write is true (a constant at every call: LLVM drops the other branch)."""
    if count > 0:
        last = start + count - 1
        for k in range(start, last + _LINE // a.itemsize, _LINE // a.itemsize):
            i = min(k, last)  # the last step lands on the run's last element, whatever its alignment
            if write:
                _write(a, i)
            else:
                _read(a, i)


@inline_helper
def fetch(a, start, count):
    """Prefetches elements [start, start + count) (flat indices) of the C-contiguous array a, to read."""
    _lines(a, start, count, False)


@inline_helper
def fetch_for_write(a, start, count):
    """Prefetches elements [start, start + count) of a for writing (the lines fetched for ownership)."""
    _lines(a, start, count, True)
