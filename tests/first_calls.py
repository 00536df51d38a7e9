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


def _randn(rng, dtype, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _cell(rng, dtype, N, D, H, gates, x_shape, extra_state=False, bhn=False):
    G = gates * H
    args = [_randn(rng, dtype, *x_shape), _randn(rng, dtype, N, H, scale=0.5)]
    if extra_state:
        args.append(_randn(rng, dtype, N, H))
    args += [_randn(rng, dtype, D, G, scale=D**-0.5), _randn(rng, dtype, H, G, scale=H**-0.5),
             _randn(rng, dtype, G, scale=0.5)]
    if bhn:
        args.append(_randn(rng, dtype, H, scale=0.5))
    return args


def _cases(rng, dtype):
    """layer -> (forward name, backward name or None, forward args); small shapes."""
    N, T, D, H, V, M = 3, 4, 5, 6, 7, 8
    cases = {
        "affine": ("affine_forward", "affine_backward", [_randn(rng, dtype, N, 2, 3), _randn(rng, dtype, 6, M),
                                                         _randn(rng, dtype, M)]),
        "rnn_step": ("rnn_step_forward", "rnn_step_backward", _cell(rng, dtype, N, D, H, 1, (N, D))),
        "rnn": ("rnn_forward", "rnn_backward", _cell(rng, dtype, N, D, H, 1, (N, T, D))),
        "lstm_step": ("lstm_step_forward", "lstm_step_backward", _cell(rng, dtype, N, D, H, 4, (N, D), True)),
        "lstm": ("lstm_forward", "lstm_backward", _cell(rng, dtype, N, D, H, 4, (N, T, D))),
        "word_embedding": ("word_embedding_forward", "word_embedding_backward",
                           [rng.integers(0, V, (N, T)), _randn(rng, dtype, V, D)]),
        "temporal_affine": ("temporal_affine_forward", "temporal_affine_backward",
                            [_randn(rng, dtype, N, T, D), _randn(rng, dtype, D, M), _randn(rng, dtype, M)]),
        "sigmoid": ("sigmoid", None, [_randn(rng, dtype, N, T, scale=10.0)]),
        "temporal_softmax_loss": ("temporal_softmax_loss", None,
                                  [_randn(rng, dtype, N, T, V), rng.integers(0, V, (N, T)), rng.random((N, T)) > 0.3]),
    }
    if "gru_forward" in _backend.LAYER_FUNCTIONS:  # the GRU, once the registry lists it
        cases["gru_step"] = ("gru_step_forward", "gru_step_backward", _cell(rng, dtype, N, D, H, 3, (N, D), bhn=True))
        cases["gru"] = ("gru_forward", "gru_backward", _cell(rng, dtype, N, D, H, 3, (N, T, D), bhn=True))
    return cases


def _run(module, forward, backward, args, seed, dtype):
    result = getattr(module, forward)(*args)
    if backward is None:
        return result if isinstance(result, tuple) else (result,)
    outs, cache = result[:-1], result[-1]
    rng = np.random.default_rng(seed)
    douts = [_randn(rng, dtype, *o.shape) for o in outs]
    grads = getattr(module, backward)(*douts, cache)
    return tuple(outs) + (grads if isinstance(grads, tuple) else (grads,))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated layers (default: all)")
    opts = parser.parse_args()
    loaded = [m for m in ("fastrnn._numba.backend", "fastrnn._cython.backend") if m in sys.modules]
    assert not loaded, f"{loaded} imported before the first call"
    names = _cases(np.random.default_rng(0), np.float64)
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
        inputs = {dtype: _cases(rng, dtype) for dtype in (np.float32, np.float64)}
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
