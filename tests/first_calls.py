"""Run as a script in a fresh process (tests/test_threads.py does): several threads, released at
once by a barrier, make the process's first calls of every layer function, forward and backward,
in float32 and float64, on the backend that FASTRNN_BACKEND names, and compare every result with
the oracle.  Prints one line per failure, then "ok N" (N calls checked) or "FAILED".

    FASTRNN_BACKEND=numba python tests/first_calls.py [--threads 6] [--only rnn,sigmoid]

Nothing of the backend is imported or compiled before the barrier opens: the backend module is
imported by the first call (the registry loads it lazily), and Numba compiles or loads each
kernel on its first call in a dtype.
"""

import argparse
import random
import sys
import threading

import numpy as np

import fastrnn
from fastrnn import _backend, layers, reference
from fastrnn._tolerances import excess  # (tests/helpers.py would import every backend now)
import layer_cases


def _run(module, forward, backward, args, seed, dtype):
    """Every output and gradient, with upstream gradients drawn from ``seed``."""
    outs, grads = layer_cases.run(module, forward, backward, args, dtype, seed)
    return outs + grads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated layers (default: all)")
    opts = parser.parse_args()
    loaded = [m for m in ("fastrnn._numba.backend", "fastrnn._cython.backend") if m in sys.modules]
    assert not loaded, f"{loaded} imported before the first call"
    names = layer_cases.cases(np.random.default_rng(0), np.float64)
    only = [n for n in opts.only.split(",") if n] or list(names)
    covered = {f for n in names.values() for f in n[:2] if f}
    missing = set(_backend.LAYER_FUNCTIONS) - covered
    assert not missing, f"first_calls.py does not call {sorted(missing)}: add them to _cases"

    barrier = threading.Barrier(opts.threads)
    failures, checked = [], []

    def work(k):
        order = [(layer, dtype) for layer in only for dtype in (np.float32, np.float64)]
        random.Random(k).shuffle(order)  # threads reach different kernels and dtypes at the same moment
        rng = np.random.default_rng(k)
        inputs = {dtype: layer_cases.cases(rng, dtype) for dtype in (np.float32, np.float64)}
        barrier.wait()
        for layer, dtype in order:
            forward, backward, args = inputs[dtype][layer]
            try:
                got = _run(layers, forward, backward, args, k, dtype)
                expected = _run(reference, forward, backward, args, k, dtype)
                assert len(got) == len(expected), f"{len(got)} results, the oracle's {len(expected)}"
                for i, (a, e) in enumerate(zip(got, expected)):
                    a, e = np.asarray(a), np.asarray(e)
                    assert a.dtype == e.dtype or i == 0 and backward is None, f"[{i}] dtype {a.dtype} != {e.dtype}"
                    assert excess(a, e, dtype) <= 1, f"[{i}] differs from the oracle beyond the tolerance"
                checked.append(layer)
            except BaseException as exc:  # every failure is reported, none stops the others
                failures.append(f"thread {k}: {layer} {np.dtype(dtype).name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(opts.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for line in failures:
        print(line)
    print(f"backend {fastrnn.get_backend()}:", "FAILED" if failures else f"ok {len(checked)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
