"""The recurrent cells as the models use them: parameters, sequence forward/backward, one step.

One place that knows each cell's parameter shapes and which public ``fastrnn.layers`` functions run
it, so the models (CharLM, SequenceClassifier) are written once for every cell:

    rnn   Wx (D,H),  Wh (H,H),  b (H,)
    lstm  Wx (D,4H), Wh (H,4H), b (4H,)            gates i, f, o, g; carries a cell state c
    gru   Wx (D,3H), Wh (H,3H), b (3H,), bhn (H,)  gates r, z, n (PyTorch's formulation)

Parameters are the model's dict entries named ``prefix + "Wx"`` etc., so a model may hold several
cells. The gate counts come from ``fastrnn._cells``, where the cells are defined once.
"""

import contextlib

import numpy as np

from .. import layers
from .._cells import CELLS, gates
from .._packing import packed_weights

__all__ = ["available_cells", "check_cell", "init_params", "param_names", "forward", "backward",
           "forward_state", "backward_state", "step", "carries_cell_state", "resident"]

def available_cells():
    """The cells the models can use: rnn, lstm, gru."""
    return CELLS


def check_cell(cell_type):
    if cell_type not in CELLS:
        raise ValueError(f'Invalid cell_type "{cell_type}"; expected one of {CELLS}')
    return cell_type


def carries_cell_state(cell_type):
    return cell_type == "lstm"


def param_names(cell_type, prefix=""):
    names = ["Wx", "Wh", "b"] + (["bhn"] if cell_type == "gru" else [])
    return [prefix + n for n in names]


def init_params(cell_type, input_dim, hidden_dim, rng, dtype, prefix=""):
    """cs231n's initialisation: Wx randn/sqrt(D), Wh randn/sqrt(H), biases zero (the LSTM's forget gate 1)."""
    D, H = input_dim, hidden_dim
    G = gates(check_cell(cell_type)) * H
    params = {
        prefix + "Wx": rng.standard_normal((D, G)) / np.sqrt(D),
        prefix + "Wh": rng.standard_normal((H, G)) / np.sqrt(H),
        prefix + "b": np.zeros(G),
    }
    if cell_type == "lstm":
        params[prefix + "b"][H:2 * H] = 1.0  # forget gate open at the start: gradients flow through c
    if cell_type == "gru":
        params[prefix + "bhn"] = np.zeros(H)
    return {k: v.astype(dtype) for k, v in params.items()}


def _weights(cell_type, params, prefix):
    return [params[n] for n in param_names(cell_type, prefix)]


def _grads(cell_type, values, prefix):
    return dict(zip(param_names(cell_type, prefix), values))


def forward(cell_type, x, h0, params, prefix=""):
    """h (N,T,H) from x (N,T,D) and h0 (N,H) (an LSTM starts from c0 = 0); returns ``(h, cache)``."""
    fn = {"rnn": layers.rnn_forward, "lstm": layers.lstm_forward}.get(cell_type) or layers.gru_forward
    return fn(x, h0, *_weights(cell_type, params, prefix))


def backward(cell_type, dh, cache, prefix=""):
    """``(dx, dh0, grads)`` from the upstream gradient of every h."""
    fn = {"rnn": layers.rnn_backward, "lstm": layers.lstm_backward}.get(cell_type) or layers.gru_backward
    dx, dh0, *rest = fn(dh, cache)
    return dx, dh0, _grads(cell_type, rest, prefix)


def forward_state(cell_type, x, h0, c0, params, prefix=""):
    """Like ``forward`` but from a given cell state too (LSTM; ``c0`` None = zeros), returning the final
    state: ``(h, hT, cT, cache)``; cT is None for cells without a cell state."""
    w = _weights(cell_type, params, prefix)
    if cell_type == "lstm":
        return layers.lstm_forward_state(x, h0, c0, *w)
    fn = layers.rnn_forward_state if cell_type == "rnn" else layers.gru_forward_state
    h, hT, cache = fn(x, h0, *w)
    return h, hT, None, cache


def backward_state(cell_type, dh, dhT, dcT, cache, prefix=""):
    """``(dx, dh0, dc0, grads)``; ``dhT``, ``dcT`` (None = zeros) are the gradients of the final state."""
    if cell_type == "lstm":
        dx, dh0, dc0, *rest = layers.lstm_backward_state(dh, dhT, dcT, cache)
    else:
        fn = layers.rnn_backward_state if cell_type == "rnn" else layers.gru_backward_state
        (dx, dh0, *rest), dc0 = fn(dh, dhT, cache), None
    return dx, dh0, dc0, _grads(cell_type, rest, prefix)


def step(cell_type, x, h, c, params, prefix=""):
    """One time step: ``(next_h, next_c)`` (next_c is None for cells without a cell state)."""
    w = _weights(cell_type, params, prefix)
    if cell_type == "lstm":
        next_h, next_c, _ = layers.lstm_step_forward(x, h, np.zeros_like(h) if c is None else c, *w)
        return next_h, next_c
    fn = layers.rnn_step_forward if cell_type == "rnn" else layers.gru_step_forward
    next_h, _ = fn(x, h, *w)
    return next_h, None


# With one row a step, sampling would pack the weights for nothing: a product of so few rows reads them in
# place about as fast (packed.h's FR_DIRECT_M).  Measured, CaptioningRNN.sample with an LSTM, packed once /
# as before (one thread; two): float32 1.02-1.05 at N = 1, 1.00 (0.95) at N = 2, 0.97 at N = 4, 0.67 at
# N = 8; float64 1.02 (1.05) at N = 1, 0.82 (0.18: OpenBLAS's spinning dgemm threads, see product.h) at N = 2.
RESIDENT_MIN_ROWS = 2


def resident(rows, *weights):
    """Context manager for a loop of steps and affine layers of ``rows`` rows by the same weights (sampling):
    ``fastrnn.packed_weights(*weights)`` when the rows make it pay, else nothing."""
    if rows >= RESIDENT_MIN_ROWS:
        return packed_weights(*weights)
    return contextlib.nullcontext()
