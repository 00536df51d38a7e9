"""Inputs for every layer function of the registry, for tests that sweep all of them.

Imports nothing but NumPy (no backend): tests/first_calls.py uses it in a process where no
backend may be loaded before its threads start.
"""

import numpy as np


def randn(rng, dtype, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def cell(rng, dtype, N, D, H, gates, x_shape, extra_state=False, bhn=False):
    G = gates * H
    args = [randn(rng, dtype, *x_shape), randn(rng, dtype, N, H, scale=0.5)]
    if extra_state:
        args.append(randn(rng, dtype, N, H))
    args += [randn(rng, dtype, D, G, scale=max(D, 1)**-0.5), randn(rng, dtype, H, G, scale=max(H, 1)**-0.5),
             randn(rng, dtype, G, scale=0.5)]
    if bhn:
        args.append(randn(rng, dtype, H, scale=0.5))
    return args


SIZES = dict(N=3, T=4, D=5, H=6, V=7, M=8)


def cases(rng, dtype, sizes=None):
    """layer -> (forward name, backward name or None, forward args), at ``sizes`` (a dict like
    ``SIZES``, the default)."""
    N, T, D, H, V, M = (({**SIZES, **(sizes or {})})[k] for k in ("N", "T", "D", "H", "V", "M"))
    cases = {
        "affine": ("affine_forward", "affine_backward", [randn(rng, dtype, N, 2, D), randn(rng, dtype, 2 * D, M),
                                                         randn(rng, dtype, M)]),
        "rnn_step": ("rnn_step_forward", "rnn_step_backward", cell(rng, dtype, N, D, H, 1, (N, D))),
        "rnn": ("rnn_forward", "rnn_backward", cell(rng, dtype, N, D, H, 1, (N, T, D))),
        "lstm_step": ("lstm_step_forward", "lstm_step_backward", cell(rng, dtype, N, D, H, 4, (N, D), True)),
        "lstm": ("lstm_forward", "lstm_backward", cell(rng, dtype, N, D, H, 4, (N, T, D))),
        "word_embedding": ("word_embedding_forward", "word_embedding_backward",
                           [rng.integers(0, max(V, 1), (N, T)), randn(rng, dtype, V, D)]),
        "temporal_affine": ("temporal_affine_forward", "temporal_affine_backward",
                            [randn(rng, dtype, N, T, D), randn(rng, dtype, D, M), randn(rng, dtype, M)]),
        "sigmoid": ("sigmoid", None, [randn(rng, dtype, N, T, scale=10.0)]),
        "temporal_softmax_loss": ("temporal_softmax_loss", None,
                                  [randn(rng, dtype, N, T, V), rng.integers(0, max(V, 1), (N, T)),
                                   rng.random((N, T)) > 0.3]),
        "gru_step": ("gru_step_forward", "gru_step_backward", cell(rng, dtype, N, D, H, 3, (N, D), bhn=True)),
        "gru": ("gru_forward", "gru_backward", cell(rng, dtype, N, D, H, 3, (N, T, D), bhn=True)),
        # the state-carrying sequence layers: the final state(s) out, their gradients in
        "rnn_state": ("rnn_forward_state", "rnn_backward_state", cell(rng, dtype, N, D, H, 1, (N, T, D))),
        "lstm_state": ("lstm_forward_state", "lstm_backward_state", cell(rng, dtype, N, D, H, 4, (N, T, D), True)),
        "gru_state": ("gru_forward_state", "gru_backward_state", cell(rng, dtype, N, D, H, 3, (N, T, D), bhn=True)),
    }
    return cases


def upstream(rng, outputs, dtype):
    """Random upstream gradients for ``outputs`` in ``dtype`` (small integers for integer dtypes)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return [rng.integers(-3, 4, np.shape(o)).astype(dtype) for o in outputs]
    return [randn(rng, dtype, *np.shape(o)) for o in outputs]


def run(module, forward, backward, args, dout_dtype, seed=0):
    """Forward, then (for a layer that has one) backward with random upstream gradients of
    ``dout_dtype`` drawn from ``seed``, in ``module``: (outputs, gradients)."""
    result = getattr(module, forward)(*args)
    if backward is None:
        return (result if isinstance(result, tuple) else (result,)), ()
    outs, cache = tuple(result[:-1]), result[-1]
    grads = getattr(module, backward)(*upstream(np.random.default_rng(seed), outs, dout_dtype), cache)
    return outs, (grads if isinstance(grads, tuple) else (grads,))
