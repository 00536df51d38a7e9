"""Borrowed views: ``run(a, start, count)`` is elements [start, start + count) of the C-contiguous array
``a`` (flat indices) as a 1-D array, like ``a.reshape(-1)[start:start + count]`` without what a slice costs.

Why: every array Numba makes, a slice included, holds a counted reference to the memory of the array it
views: an atomic increment when it is made and an atomic decrement when it dies (``NRT_incref`` /
``NRT_decref``, which LLVM's reference-count pruning cannot remove across the branches a slice's bounds
make).  The pointwise passes take a dozen runs per row per step (the four gate blocks of a row of the
gates and of dA, a row of each state): in a loop of the tiny LSTM's backward (N = 10, T = 13, H = 40)
NRT_incref / NRT_decref took a quarter of perf's samples (an atomic also collects those of the stalls
around it; what removing them saved is below).

How it wins its speed: a run made here carries no reference (a null meminfo, for which Numba's incref and
decref do nothing), and no bounds arithmetic: a pointer and a length.  It is valid as long as the array it
was taken from, which the kernels guarantee: they take runs of their own arguments or of arrays they hold,
and a run never outlives the call (it is never returned or stored).  The caller gives flat indices that
lie inside the array; nothing checks them at run time, except under ``NUMBA_BOUNDSCHECK=1`` (the test suite's
bounds-checked run of every layer), where a run outside its array raises IndexError.  A run of a readonly
array is readonly.

Where it is used, and why only there: the passes that take runs of the caller's arrays row by row, the
BLAS loop's LSTM backward (``_lstm.backward_units``) and ``lstm_step_backward``.  Measured (alternating
processes, against slices): the tiny LSTM (10, 13, 30, 40) forward + backward 0.93x the time (float32,
2 threads) and 0.95x (float64, one); lstm_step at N = 10 0.96-0.99x, at N = 100 unchanged.  The team's
passes (``_team``) work on arrays it made with ``carray``, which hold no reference either, so there runs
gained nothing (LSTM at (25, 16, 256, 512) and (100, 16, 256, 512): 0.99-1.02x) and cost once: the GRU's
forward pass in runs took 1.18x the time at (25, 16, 256, 512) float32, 2 threads; they keep slices.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["run"]


@intrinsic
def run(typingctx, a, start, count):
    """Elements [start, start + count) of the C-contiguous array a (flat indices), as a 1-D array."""
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(start, types.Integer)
            and isinstance(count, types.Integer)):
        return None
    view = types.Array(a.dtype, 1, "C", readonly=not a.mutable, aligned=a.aligned)

    def codegen(context, builder, signature, args):
        source = context.make_array(signature.args[0])(context, builder, args[0])
        first = context.cast(builder, args[1], signature.args[1], types.intp)
        length = context.cast(builder, args[2], signature.args[2], types.intp)
        if context.enable_boundscheck:  # NUMBA_BOUNDSCHECK=1 (the tests' bounds run): the run lies inside a
            size = context.get_constant(types.intp, 1)
            for extent in cgutils.unpack_tuple(builder, source.shape):
                size = builder.mul(size, extent)
            end = builder.add(first, length)
            outside = builder.or_(builder.or_(builder.icmp_signed("<", first, first.type(0)),
                                              builder.icmp_signed("<", length, length.type(0))),
                                  builder.icmp_signed(">", end, size))
            with builder.if_then(outside, likely=False):
                context.call_conv.return_user_exc(builder, IndexError, ("run outside its array",))
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(a.dtype)))
        out = context.make_array(view)(context, builder)
        context.populate_array(out, data=builder.gep(source.data, [first]), shape=[length], strides=[itemsize],
                               itemsize=itemsize, meminfo=None)  # no meminfo: not counted (see above)
        return out._getvalue()

    return view(a, start, count), codegen
