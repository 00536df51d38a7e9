"""The C kernels both compiled backends share: packed-panel products, a thread team, an array pool.

A recurrent layer's sequence pass runs as one job of a team of threads (team.h): each thread owns a
slab of hidden units -- all gates of those units -- and computes their input projection, packs their
recurrent weights once (Wh forward, Wh^T backward) and, per step, their tiles of the recurrent product
and the fused pointwise pass, meeting the others at one barrier per step; after backpropagation each
computes its share of dX, dWx and dWh.  The products run on a register-tiled micro-kernel chosen for
the CPU at load time (AVX-512, AVX2+FMA or portable; ``FASTRNN_ISA`` forces one) over weights packed
into panels (packed.h).  No BLAS call happens inside a pass: OpenBLAS's idle threads spin for ~0.1 s
after a call and would take the team's second core.  The affine layers use the same products, and so do
the single steps' products (``fr_product_s/d``, product.h) while BLAS may use more than one thread,
so a loop of steps and affine layers (``CaptioningRNN.sample``) runs on one pool of threads.

A loop of single steps and affine layers by the same weights (``CaptioningRNN.sample``) can keep them
packed for the whole loop: inside ``with resident(Wx, Wh, W_vocab):`` the products by those matrices
stream panels packed on entry (resident.h) instead of packing them at every call; ``resident_stats()``
counts them.

Arrays the backends allocate come from a pool that keeps freed large blocks mapped for the next call
(pool.h): ``pooled()`` makes it NumPy's allocator for a block of code; ``pool_stats()``,
``pool_release()`` and ``pool_set_cap()`` manage it.  Its cap follows the workspace setting
(``fastrnn.set_workspace_limit``, ``FASTRNN_WORKSPACE_MB``): twice the per-thread scratch limit.

Python sees the kernels' addresses only: ``symbols()`` maps each exported C function to its address,
which the Cython kernels call through function pointers and the Numba kernels bind by name, as both do
with BLAS. ``layout()`` says which ISA was chosen and the panel width NR per dtype (the packed layout);
``team_stats()`` how the team has run. ``fma_run()`` times multiply-adds from registers on the team
(fma.h): the FMA limit that ``fastrnn bench`` reports beside the libraries' peak. ``round_trip(iters)``
times a cache line passed back and forth between two of the team's threads (roundtrip.h; None when the team
cannot give two): how far apart the cores are, which ``fastrnn bench`` records at every visit of its pool.

The team never uses more threads than the BLAS may (``threadpoolctl``'s limit, ``--threads``):
``blas_threads_address()`` is the address of the ``get_num_threads`` of NumPy's OpenBLAS, which the
kernels ask at every call.
"""

import functools
import threading

from .._workspace import pool_cap_bytes

from ._native import (fma_run, layout, pool_handler, pool_release, pool_set_cap, pool_stats, resident_add,
                      resident_remove, resident_stats, round_trip, set_blas_threads, set_handler, symbols,
                      team_stats)

__all__ = ["fma_run", "layout", "symbols", "blas_threads_address", "pool_handler", "pool_stats", "pool_release",
           "pool_set_cap", "set_handler", "pooled", "resident", "resident_stats", "round_trip", "team_stats"]

# get_num_threads in the OpenBLAS builds NumPy's wheels bundle (scipy-openblas, ILP64 or not)
_THREADS_SYMBOLS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                    "scipy_openblas_get_num_threads", "openblas_get_num_threads")


@functools.lru_cache(maxsize=None)
def blas_threads_address():
    """Address of NumPy's OpenBLAS ``get_num_threads``, or 0 when there is none to ask (looked up once:
    this module and both backends ask it at import)."""
    from .._numpy_blas import symbol_addresses

    found = symbol_addresses(*((name,) for name in _THREADS_SYMBOLS))
    return found[0] if found else 0


set_blas_threads(blas_threads_address())  # fr_product's thread limit, as the layers' kernels ask it
pool_set_cap(pool_cap_bytes())  # bounded by the workspace setting, which set_workspace_limit keeps in step


class pooled:
    """Context manager: NumPy allocates from the array pool inside the block (this context only)."""

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = set_handler(pool_handler)
        return self

    def __exit__(self, *exc):
        set_handler(self._previous)
        return False


class resident:
    """Context manager: ``weights`` packed once on entry and kept, for this thread, until exit.

    Inside the block, a product by one of them in a compiled layer (single steps, affine layers: a matrix
    of 2-D float32/float64, rows contiguous) streams the packed panels instead of packing it again
    (resident.h); other threads are not affected.  The weights must not change inside the block: their
    packed copy would not follow.  Other kinds of arrays are left alone.
    """

    __slots__ = ("_weights", "_held", "_thread")

    def __init__(self, *weights):
        self._weights = weights
        self._held = []
        self._thread = None

    def __enter__(self):
        self._thread = threading.get_ident()
        try:
            for w in self._weights:
                if resident_add(w):
                    self._held.append(w)  # keeps the array (and the memory its panels were packed from) alive
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._held and threading.get_ident() != self._thread:
            # the record is the entering thread's: dropping the arrays here would let a new array at the
            # same address match their panels there; they stay referenced instead
            raise RuntimeError("fastrnn: a packed_weights block must end in the thread that entered it")
        while self._held:
            resident_remove(self._held.pop())
        return False
