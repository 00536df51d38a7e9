"""Test doubles: a deliberately broken backend, registered for one test through pytest's monkeypatch.

The registry decides availability by importing a module named in ``_backend._CANDIDATES`` and
caches the result in ``_backend._modules``; putting an entry in both (monkeypatch undoes it)
makes a backend that fastrnn.layers, ``fastrnn check`` and ``fastrnn bench`` treat like any
other, without a test-only hook in the production code.
"""

import types

import numpy as np

from fastrnn import _backend, reference

BROKEN = "broken"


def _perturb(a, rel=1e-3):
    return a * (1 + rel) + rel  # beyond float32's and float64's tolerance


def _breakages():
    """mode -> (layer function name, replacement made from the oracle's function)."""
    def wrong_gradient(f):
        def lstm_backward(dh, cache):
            dx, dh0, dWx, dWh, db = f(dh, cache)
            return dx, dh0, dWx, _perturb(dWh), db
        return lstm_backward

    def wrong_value(f):
        def rnn_forward(*args):
            h, cache = f(*args)
            return _perturb(h), cache
        return rnn_forward

    def wrong_dtype(f):
        def temporal_affine_forward(*args):
            out, cache = f(*args)
            return out.astype(np.float64 if out.dtype == np.float32 else np.float32), cache
        return temporal_affine_forward

    def raises(f):
        def affine_backward(dout, cache):
            raise RuntimeError("deliberately broken")
        return affine_backward

    def mutates_input(f):
        def word_embedding_forward(x, W):
            out, cache = f(x, W)
            W[...] = 0  # writes into the caller's array
            return out, cache
        return word_embedding_forward

    def wrong_step_cell_gradient(f):
        def lstm_step_backward(dnext_h, dnext_c, cache):
            dx, dprev_h, dprev_c, dWx, dWh, db = f(dnext_h, dnext_c, cache)
            return dx, dprev_h, _perturb(dprev_c), dWx, dWh, db
        return lstm_step_backward

    return {
        "wrong_gradient": ("lstm_backward", wrong_gradient),
        "wrong_value": ("rnn_forward", wrong_value),
        "wrong_dtype": ("temporal_affine_forward", wrong_dtype),
        "raises": ("affine_backward", raises),
        "mutates_input": ("word_embedding_forward", mutates_input),
        "wrong_step_cell_gradient": ("lstm_step_backward", wrong_step_cell_gradient),
    }


BREAKAGES = tuple(_breakages())

# Which layer of `fastrnn check` each breakage shows up in.
BROKEN_LAYER = {
    "wrong_gradient": "lstm", "wrong_value": "rnn", "wrong_dtype": "temporal_affine", "raises": "affine",
    "mutates_input": "word_embedding", "wrong_step_cell_gradient": "lstm_step",
}


def register_broken_backend(monkeypatch, mode):
    """Registers backend "broken": the oracle's functions with one of them broken as ``mode`` says."""
    name, make = _breakages()[mode]
    module = types.ModuleType("fastrnn_test_broken_backend")
    for f in _backend.LAYER_FUNCTIONS:
        setattr(module, f, getattr(reference, f))
    setattr(module, name, make(getattr(reference, name)))
    monkeypatch.setitem(_backend._CANDIDATES, BROKEN, ("fastrnn_test_broken_backend", "it is a test double"))
    monkeypatch.setitem(_backend._modules, BROKEN, module)
    return BROKEN
