"""The drop-in replacement for cs231n's ``rnn_layers``.

    import fastrnn.layers as rnn_layers      # or: from fastrnn.layers import *

Every function validates its inputs here, in Python, then hands the active
backend (see ``fastrnn.set_backend``) C-contiguous arrays of one float dtype:

* shapes that must agree are checked, and errors name the argument with the
  expected and the actual shape; word indices must lie in [0, V);
* the working dtype is NumPy's promotion of the inputs (``np.result_type``):
  float32 stays float32, float32 next to float64 becomes float64;
* float32 and float64 go to the active backend; other dtypes NumPy can compute
  with (float16, integers, ...), and problems with an empty dimension, go to the
  NumPy oracle, so nothing NumPy would accept is rejected;
* inputs are never modified: a backend only ever reads them.

A forward pass returns its cache wrapped in a ``LayerCache`` that remembers the
backend that made it, so a backward pass always runs on the backend of its
forward pass, whichever backend is active by then.

Beyond cs231n: the GRU (``gru_*``, PyTorch's formulation), and for every cell the
sequence layers that carry the recurrent state from one call to the next:

    h, hT, cache = rnn_forward_state(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = rnn_backward_state(dh, dhT, cache)

(``lstm_*_state`` with c0/cT/dcT/dc0 as well; ``gru_*_state`` with bhn/dbhn). A cell's
two forward forms make the same cache, so either of its backwards takes it.  The
final states are arrays of their own; c0 and the upstream gradients dh, dhT, dcT
may be None (zeros), and a backend receives them as None.
"""

import numpy as np

from . import _backend
from . import reference as _reference

__all__ = list(_backend.LAYER_FUNCTIONS)

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


class LayerCache:
    """What a forward pass hands its backward pass; opaque to callers."""

    __slots__ = ("layer", "backend", "data", "dtype", "out_shape")

    def __init__(self, layer, backend, data, dtype, out_shape):
        self.layer = layer  # e.g. "rnn", "lstm_step"
        self.backend = backend  # the backend module that made ``data``
        self.data = data  # a flat tuple of arrays, private to that backend
        self.dtype = dtype  # the working dtype of the forward pass
        self.out_shape = out_shape  # the shape the upstream gradient must have

    def __repr__(self):
        return f"<fastrnn cache of {self.layer}_forward, backend {self.backend.__name__}, {self.dtype}>"


# --------------------------------------------------------------------------- checks


def _array(name, a):
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def _indices(name, a, V):
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer word indices, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= V):
        bad = a[(a < 0) | (a >= V)].flat[0]
        raise IndexError(f"{name} holds word index {bad}, outside [0, V) = [0, {V})")
    return np.asarray(a, dtype=np.intp, order="C")


def _ndim(name, a, dims):
    if a.ndim != dims.count(",") + 1:
        raise ValueError(f"{name} must be a {dims.count(',') + 1}-D array ({dims}), got shape {a.shape}")


def _shape(name, a, dims, expected):
    if a.shape != expected:
        raise ValueError(f"{name} must have shape ({dims}) = {expected}, got {a.shape}")


def _bias(name, b, dims, size):
    """A bias of shape (size,); (1, size) is accepted too, as NumPy would broadcast it."""
    if b.shape == (1, size):
        return b.reshape(size)
    _shape(name, b, dims, (size,))
    return b


def _route(arrays, sizes, native=True):
    """Picks the working dtype and the backend, and makes the arrays contiguous in that dtype.

    The oracle takes what the compiled backends do not: dtypes other than float32/float64,
    problems with an empty dimension (``sizes`` holds a zero), and ``native=False`` cases.
    """
    dtype = np.result_type(*arrays)
    if native and dtype in _NATIVE and all(sizes):
        module = _backend.backend_module()
        return module, dtype, [np.asarray(a, dtype=dtype, order="C") for a in arrays]
    return _reference, dtype, list(arrays)


def _unwrap(cache, layer, grads, optional=()):
    """Checks a cache and the upstream gradients handed to a backward pass.

    ``grads`` maps each gradient's name to ``(array, dims, shape)``, or to just the array when
    it must have the forward output's shape; a gradient named in ``optional`` may be None (zeros),
    and is handed on as None.  Returns the backend module, the cache's data and the gradients,
    contiguous in the working dtype (NumPy's promotion of the forward's dtype and theirs).
    """
    if not isinstance(cache, LayerCache) or cache.layer != layer:
        made_by = f"{layer}_forward" + (f" or {layer}_forward_state" if layer in _SEQUENCE_CELLS else "")
        raise TypeError(
            f"cache must be the cache returned by fastrnn.layers.{made_by}, got {type(cache).__name__}"
            + (f" from {cache.layer}_forward" if isinstance(cache, LayerCache) else "")
        )
    out = []
    for name, spec in grads.items():
        g, dims, shape = spec if isinstance(spec, tuple) else (spec, "shape of the forward output", cache.out_shape)
        if g is None and name in optional:
            out.append(None)
            continue
        g = _array(name, g)
        _shape(name, g, dims, shape)
        out.append(g)
    data, dtype, module = cache.data, cache.dtype, cache.backend
    if module is _reference or cache.dtype not in _NATIVE:
        return module, data, out
    promoted = np.result_type(dtype, *(g for g in out if g is not None))
    if promoted != dtype and promoted in _NATIVE:  # float64 gradient into a float32 forward: promote
        data = tuple(np.asarray(a, promoted) if getattr(a, "dtype", None) == dtype else a for a in data)
        dtype = promoted
    return module, data, [None if g is None else np.asarray(g, dtype=dtype, order="C") for g in out]


def _final_state(cache, g):
    """The ``_unwrap`` entry of ``g``, the gradient of a sequence layer's final state: (N, H)."""
    shape = cache.out_shape if isinstance(cache, LayerCache) else ()
    return g, "N, H", (shape[0], shape[-1]) if len(shape) == 3 else None  # (not a sequence cache: _unwrap refuses it)


# --------------------------------------------------------------------------- affine


def affine_forward(x, w, b):
    """Fully connected layer: x (N, d_1, ..., d_k) is flattened to (N, D); w (D, M), b (M,) -> (N, M)."""
    x, w, b = _array("x", x), _array("w", w), _array("b", b)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (N, ...), got shape {x.shape}")
    N, D = x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))
    _ndim("w", w, "D, M")
    M = w.shape[1]
    _shape("w", w, "D, M", (D, M))
    b = _bias("b", b, "M,", M)
    module, dtype, (x, w, b) = _route((x, w, b), (N, D, M))
    out, data = module.affine_forward(x, w, b)
    return out, LayerCache("affine", module, data, dtype, (N, M))


def affine_backward(dout, cache):
    """Returns (dx, dw, db) for ``affine_forward``."""
    module, data, (dout,) = _unwrap(cache, "affine", {"dout": dout})
    return module.affine_backward(dout, data)


# --------------------------------------------------------------------------- vanilla RNN


# How the shapes of Wh, Wx and b read in error messages, by number of gates (rnn 1, gru 3, lstm 4).
_WEIGHT_DIMS = {1: ("H, H", "D, H", "H,"), 3: ("H, 3H", "D, 3H", "3H,"), 4: ("H, 4H", "D, 4H", "4H,")}

# The cells whose sequence layers come in two forms, cs231n's and the state-carrying one; both
# forms make the same cache, so either backward takes it.
_SEQUENCE_CELLS = ("rnn", "lstm", "gru")


def _cell_weights(Wx, Wh, b, gates, D):
    """Checks Wx (D, G), Wh (H, G) and b (G,) with G = gates * H; returns H and b."""
    Wh_dims, Wx_dims, b_dims = _WEIGHT_DIMS[gates]
    _ndim("Wh", Wh, Wh_dims)
    H = Wh.shape[0]
    _shape("Wh", Wh, Wh_dims, (H, gates * H))
    _shape("Wx", Wx, Wx_dims, (D, gates * H))
    return H, _bias("b", b, b_dims, gates * H)


def _sequence_shapes(x, h0, Wx, Wh, b, gates):
    """Checks a sequence layer's inputs; returns N, T, D, H and b."""
    _ndim("x", x, "N, T, D")
    N, T, D = x.shape
    H, b = _cell_weights(Wx, Wh, b, gates, D)
    _shape("h0", h0, "N, H", (N, H))
    return N, T, D, H, b


def _arrays(names, values, optional=()):
    """``_array`` of each value; None stays None for the names in ``optional`` only."""
    return [None if a is None and n in optional else _array(n, a) for n, a in zip(names, values)]


def _step_shapes(x, states, Wx, Wh, b, gates):
    """Checks a step's inputs; ``states`` maps names to prev_h (and prev_c).

    As in NumPy, x and the states may also be 1-D (one row, broadcast over the others' N
    rows), as cs231n sampling code produces with ``np.squeeze``. Returns N, D, H, b and
    whether every row-input is 2-D (only then is the step computed natively).
    """
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be a 2-D array (N, D), got shape {x.shape}")
    D = x.shape[-1]
    H, b = _cell_weights(Wx, Wh, b, gates, D)
    rows = [a.shape[0] for a in (x, *states.values()) if a.ndim == 2]
    N = rows[0] if rows else 1
    for name, state in states.items():
        if state.ndim == 1:
            _shape(name, state, "H,", (H,))
        else:
            _shape(name, state, "N, H", (N, H))
    return N, D, H, b, len(rows) == 1 + len(states)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One vanilla RNN step: next_h = tanh(x @ Wx + prev_h @ Wh + b). Returns (next_h, cache)."""
    x, prev_h, Wx, Wh, b = (_array(n, a) for n, a in zip(("x", "prev_h", "Wx", "Wh", "b"), (x, prev_h, Wx, Wh, b)))
    N, D, H, b, rows = _step_shapes(x, {"prev_h": prev_h}, Wx, Wh, b, 1)
    module, dtype, arrays = _route((x, prev_h, Wx, Wh, b), (N, D, H), native=rows)
    next_h, data = module.rnn_step_forward(*arrays)
    return next_h, LayerCache("rnn_step", module, data, dtype, (N, H))


def rnn_step_backward(dnext_h, cache):
    """Returns (dx, dprev_h, dWx, dWh, db) for ``rnn_step_forward``."""
    module, data, (dnext_h,) = _unwrap(cache, "rnn_step", {"dnext_h": dnext_h})
    return module.rnn_step_backward(dnext_h, data)


def _rnn_inputs(x, h0, Wx, Wh, b):
    x, h0, Wx, Wh, b = _arrays(("x", "h0", "Wx", "Wh", "b"), (x, h0, Wx, Wh, b))
    N, T, D, H, b = _sequence_shapes(x, h0, Wx, Wh, b, 1)
    module, dtype, arrays = _route((x, h0, Wx, Wh, b), (N, T, D, H))
    return module, dtype, arrays, (N, T, H)


def rnn_forward(x, h0, Wx, Wh, b):
    """Vanilla RNN over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H). Returns (h, cache)."""
    module, dtype, arrays, out_shape = _rnn_inputs(x, h0, Wx, Wh, b)
    h, data = module.rnn_forward(*arrays)
    return h, LayerCache("rnn", module, data, dtype, out_shape)


def rnn_backward(dh, cache):
    """BPTT; dh (N, T, H) is the upstream gradient of every hidden state. Returns (dx, dh0, dWx, dWh, db)."""
    module, data, (dh,) = _unwrap(cache, "rnn", {"dh": dh})
    return module.rnn_backward(dh, data)


def rnn_forward_state(x, h0, Wx, Wh, b):
    """Vanilla RNN over a sequence from the state h0: x (N, T, D), h0 (N, H).

    Returns (h, hT, cache): every step's state h (N, T, H) and the final state hT (N, H),
    an array of its own, to start the next chunk of a sequence from.
    """
    module, dtype, arrays, out_shape = _rnn_inputs(x, h0, Wx, Wh, b)
    h, hT, data = module.rnn_forward_state(*arrays)
    return h, hT, LayerCache("rnn", module, data, dtype, out_shape)


def rnn_backward_state(dh, dhT, cache):
    """BPTT with the final state's gradient: dh (N, T, H) of every step's state, dhT (N, H) of the final
    state (added to the last step's); either may be None (zeros). Returns (dx, dh0, dWx, dWh, db)."""
    grads = {"dh": dh, "dhT": _final_state(cache, dhT)}
    module, data, (dh, dhT) = _unwrap(cache, "rnn", grads, optional=("dh", "dhT"))
    return module.rnn_backward_state(dh, dhT, data)


# --------------------------------------------------------------------------- LSTM


def sigmoid(x):
    """Numerically stable logistic function, elementwise."""
    x = _array("x", x)
    module, _, (x,) = _route((x,), (x.size,))
    return module.sigmoid(x)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step (gates i, f, o, g). Returns (next_h, next_c, cache)."""
    names = ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    x, prev_h, prev_c, Wx, Wh, b = (_array(n, a) for n, a in zip(names, (x, prev_h, prev_c, Wx, Wh, b)))
    N, D, H, b, rows = _step_shapes(x, {"prev_h": prev_h, "prev_c": prev_c}, Wx, Wh, b, 4)
    module, dtype, arrays = _route((x, prev_h, prev_c, Wx, Wh, b), (N, D, H), native=rows)
    next_h, next_c, data = module.lstm_step_forward(*arrays)
    return next_h, next_c, LayerCache("lstm_step", module, data, dtype, (N, H))


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns (dx, dprev_h, dprev_c, dWx, dWh, db) for ``lstm_step_forward``."""
    module, data, (dnext_h, dnext_c) = _unwrap(cache, "lstm_step", {"dnext_h": dnext_h, "dnext_c": dnext_c})
    return module.lstm_step_backward(dnext_h, dnext_c, data)


def _lstm_inputs(x, h0, c0, Wx, Wh, b):
    """Validates and routes a sequence LSTM's inputs; c0 may be None (zeros) and then stays None."""
    x, h0, c0, Wx, Wh, b = _arrays(("x", "h0", "c0", "Wx", "Wh", "b"), (x, h0, c0, Wx, Wh, b), optional=("c0",))
    N, T, D, H, b = _sequence_shapes(x, h0, Wx, Wh, b, 4)
    if c0 is not None:
        _shape("c0", c0, "N, H", (N, H))
    module, dtype, arrays = _route(tuple(a for a in (x, h0, c0, Wx, Wh, b) if a is not None), (N, T, D, H))
    if c0 is None:
        arrays.insert(2, None)
    return module, dtype, arrays, (N, T, H)


def lstm_forward(x, h0, Wx, Wh, b, *, c0=None):
    """LSTM over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H). Returns (h, cache).

    The cell state starts from c0 (N, H), zeros by default as in cs231n.
    """
    module, dtype, (x, h0, c0, Wx, Wh, b), out_shape = _lstm_inputs(x, h0, c0, Wx, Wh, b)
    if c0 is None:
        h, data = module.lstm_forward(x, h0, Wx, Wh, b)
    else:
        h, data = module.lstm_forward(x, h0, Wx, Wh, b, c0=c0)
    return h, LayerCache("lstm", module, data, dtype, out_shape)


def lstm_backward(dh, cache):
    """BPTT; dh (N, T, H) is the upstream gradient of every hidden state. Returns (dx, dh0, dWx, dWh, db)."""
    module, data, (dh,) = _unwrap(cache, "lstm", {"dh": dh})
    return module.lstm_backward(dh, data)


def lstm_forward_state(x, h0, c0, Wx, Wh, b):
    """LSTM over a sequence from the state (h0, c0): x (N, T, D), h0 and c0 (N, H); c0 = None means zeros.

    Returns (h, hT, cT, cache): every step's hidden state h (N, T, H) and the final hidden
    and cell states hT and cT (N, H), arrays of their own.
    """
    module, dtype, arrays, out_shape = _lstm_inputs(x, h0, c0, Wx, Wh, b)
    h, hT, cT, data = module.lstm_forward_state(*arrays)
    return h, hT, cT, LayerCache("lstm", module, data, dtype, out_shape)


def lstm_backward_state(dh, dhT, dcT, cache):
    """BPTT with the final states' gradients: dh (N, T, H) of every step's hidden state, dhT and dcT
    (N, H) of the final hidden and cell states; each may be None (zeros).
    Returns (dx, dh0, dc0, dWx, dWh, db)."""
    grads = {"dh": dh, "dhT": _final_state(cache, dhT), "dcT": _final_state(cache, dcT)}
    module, data, (dh, dhT, dcT) = _unwrap(cache, "lstm", grads, optional=("dh", "dhT", "dcT"))
    return module.lstm_backward_state(dh, dhT, dcT, data)


# --------------------------------------------------------------------------- GRU


def gru_step_forward(x, prev_h, Wx, Wh, b, bhn):
    """One GRU step (PyTorch's formulation, gates r, z, n; Wx (D, 3H), Wh (H, 3H), b (3H,), bhn (H,)).

    n = tanh(x Wx_n + b_n + r * (prev_h Wh_n + bhn)), next_h = (1 - z) * n + z * prev_h.
    Returns (next_h, cache).
    """
    names = ("x", "prev_h", "Wx", "Wh", "b", "bhn")
    x, prev_h, Wx, Wh, b, bhn = _arrays(names, (x, prev_h, Wx, Wh, b, bhn))
    N, D, H, b, rows = _step_shapes(x, {"prev_h": prev_h}, Wx, Wh, b, 3)
    bhn = _bias("bhn", bhn, "H,", H)
    module, dtype, arrays = _route((x, prev_h, Wx, Wh, b, bhn), (N, D, H), native=rows)
    next_h, data = module.gru_step_forward(*arrays)
    return next_h, LayerCache("gru_step", module, data, dtype, (N, H))


def gru_step_backward(dnext_h, cache):
    """Returns (dx, dprev_h, dWx, dWh, db, dbhn) for ``gru_step_forward``."""
    module, data, (dnext_h,) = _unwrap(cache, "gru_step", {"dnext_h": dnext_h})
    return module.gru_step_backward(dnext_h, data)


def _gru_inputs(x, h0, Wx, Wh, b, bhn):
    x, h0, Wx, Wh, b, bhn = _arrays(("x", "h0", "Wx", "Wh", "b", "bhn"), (x, h0, Wx, Wh, b, bhn))
    N, T, D, H, b = _sequence_shapes(x, h0, Wx, Wh, b, 3)
    bhn = _bias("bhn", bhn, "H,", H)
    module, dtype, arrays = _route((x, h0, Wx, Wh, b, bhn), (N, T, D, H))
    return module, dtype, arrays, (N, T, H)


def gru_forward(x, h0, Wx, Wh, b, bhn):
    """GRU over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H). Returns (h, cache)."""
    module, dtype, arrays, out_shape = _gru_inputs(x, h0, Wx, Wh, b, bhn)
    h, data = module.gru_forward(*arrays)
    return h, LayerCache("gru", module, data, dtype, out_shape)


def gru_backward(dh, cache):
    """BPTT; dh (N, T, H) is the upstream gradient of every hidden state. Returns (dx, dh0, dWx, dWh, db, dbhn)."""
    module, data, (dh,) = _unwrap(cache, "gru", {"dh": dh})
    return module.gru_backward(dh, data)


def gru_forward_state(x, h0, Wx, Wh, b, bhn):
    """GRU over a sequence from the state h0: x (N, T, D), h0 (N, H).

    Returns (h, hT, cache): every step's state h (N, T, H) and the final state hT (N, H), an array of its own.
    """
    module, dtype, arrays, out_shape = _gru_inputs(x, h0, Wx, Wh, b, bhn)
    h, hT, data = module.gru_forward_state(*arrays)
    return h, hT, LayerCache("gru", module, data, dtype, out_shape)


def gru_backward_state(dh, dhT, cache):
    """BPTT with the final state's gradient: dh (N, T, H) of every step's state, dhT (N, H) of the final
    state; either may be None (zeros). Returns (dx, dh0, dWx, dWh, db, dbhn)."""
    grads = {"dh": dh, "dhT": _final_state(cache, dhT)}
    module, data, (dh, dhT) = _unwrap(cache, "gru", grads, optional=("dh", "dhT"))
    return module.gru_backward_state(dh, dhT, data)


# --------------------------------------------------------------------------- words and scores


def word_embedding_forward(x, W):
    """Looks up word vectors: integer x of any shape, W (V, D) -> x.shape + (D,). Returns (out, cache)."""
    W = _array("W", W)
    _ndim("W", W, "V, D")
    V, D = W.shape
    x = _indices("x", x, V)
    module, dtype, (W,) = _route((W,), (x.size, V, D))
    out, data = module.word_embedding_forward(x, W)
    return out, LayerCache("word_embedding", module, data, dtype, x.shape + (D,))


def word_embedding_backward(dout, cache):
    """Returns dW (V, D) for ``word_embedding_forward``; repeated indices are summed."""
    module, data, (dout,) = _unwrap(cache, "word_embedding", {"dout": dout})
    return module.word_embedding_backward(dout, data)


def temporal_affine_forward(x, w, b):
    """Affine layer at every time step: x (N, T, D), w (D, M), b (M,) -> (N, T, M). Returns (out, cache)."""
    x, w, b = _array("x", x), _array("w", w), _array("b", b)
    _ndim("x", x, "N, T, D")
    N, T, D = x.shape
    _ndim("w", w, "D, M")
    M = w.shape[1]
    _shape("w", w, "D, M", (D, M))
    b = _bias("b", b, "M,", M)
    module, dtype, (x, w, b) = _route((x, w, b), (N, T, D, M))
    out, data = module.temporal_affine_forward(x, w, b)
    return out, LayerCache("temporal_affine", module, data, dtype, (N, T, M))


def temporal_affine_backward(dout, cache):
    """Returns (dx, dw, db) for ``temporal_affine_forward``."""
    module, data, (dout,) = _unwrap(cache, "temporal_affine", {"dout": dout})
    return module.temporal_affine_backward(dout, data)


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Masked softmax cross-entropy over time, summed and divided by N.

    x (N, T, V) scores, y (N, T) integer targets in [0, V), mask (N, T) (boolean,
    or numeric weights). Returns (loss, dx).
    """
    x = _array("x", x)
    _ndim("x", x, "N, T, V")
    N, T, V = x.shape
    y = np.asarray(y)
    _shape("y", y, "N, T", (N, T))
    y = _indices("y", y, V)
    mask = _array("mask", mask)
    _shape("mask", mask, "N, T", (N, T))
    module, dtype, (x,) = _route((x,), (N, T, V))
    if module is not _reference:
        mask = np.asarray(mask, dtype=dtype, order="C")
    return module.temporal_softmax_loss(x, y, mask, verbose=verbose)
