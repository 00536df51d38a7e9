"""``fastrnn.packed_weights``: weights packed once for a loop of single steps and affine layers.

A loop that calls the step layers and the affine layer word after word (greedy sampling, beam search,
a user's own decoder) multiplies by the same Wx, Wh and W_vocab at every call, and every call packs them
again into the layout the compiled products stream.  Inside ``with packed_weights(Wx, Wh, W_vocab):`` the
compiled backends' products by those matrices use a copy packed once on entry (fastrnn._native.resident,
resident.h).  The NumPy oracle, and a backend running without fastrnn._native, are unaffected.
"""

import contextlib

import numpy as np

from ._backend import backend_module

__all__ = ["packed_weights"]


def packed_weights(*weights):
    """Context manager: ``weights`` packed once for the loop in the block, on the active backend.

    Each weight is a NumPy array used as the right-hand matrix of a layer's product: ``Wx``, ``Wh`` of a
    step layer, ``w`` of ``affine_forward``.  Arrays that cannot be kept packed (not 2-D float32/float64
    with contiguous rows) are used as before.  Only this thread's calls use the packed copies.  The block
    must not change the weights: the packed copies would not follow.  It pays when each step has at
    least 2 rows (a batch of sequences); with one row the products read the weights in place about as
    fast, and packing them costs a few percent of a short loop.
    """
    for i, w in enumerate(weights):
        if not isinstance(w, np.ndarray):
            raise TypeError(f"packed_weights: weight {i} is a {type(w).__name__}, not a NumPy array (the layers "
                            f"would multiply by a converted copy, never by a packed one)")
    if getattr(backend_module(), "native_in_use", lambda: False)():
        from ._native import resident

        return resident(*weights)
    return contextlib.nullcontext()
