"""The oracle: the cs231n assignment-3 RNN layers in plain NumPy.

Every compiled backend is checked against this module, so it is written to be
obviously correct rather than fast: one function per layer, the textbook
equations, no compiled code and no cleverness.  It is also the ``"numpy"``
backend.

Conventions shared with the other backends:

* every ``*_forward`` returns ``(out, cache)`` and ``cache`` is a flat tuple of
  arrays, so ``fastrnn.layers`` can cast it when a backward pass promotes dtype;
* float32 inputs give float32 outputs (NumPy's own promotion rules apply);
* every gradient a backward pass returns has the dtype ``np.result_type`` of the
  forward's output and the upstream gradient(s), as in every backend;
* inputs are never modified.

The functions here do not validate their inputs beyond what NumPy itself does;
``fastrnn.layers`` is the validating front door.
"""

import numpy as np

from ._backend import LAYER_FUNCTIONS

__all__ = list(LAYER_FUNCTIONS)  # the names of the layer contract, defined once in the registry


def affine_forward(x, w, b):
    """Fully connected layer: ``x.reshape(N, -1) @ w + b``."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Returns ``(dx, dw, db)``; ``dx`` has the shape of the original ``x``."""
    x, w, b = cache
    dtype = np.result_type(x, w, b, dout)  # every gradient: the forward's dtype with dout's
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape).astype(dtype, copy=False)
    dw = (x2.T @ dout).astype(dtype, copy=False)
    db = dout.sum(axis=0, dtype=dtype)  # (summed in dout's own dtype, a float16 dout gave a float16 db)
    return dx, dw, db


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One vanilla RNN step: ``next_h = tanh(x @ Wx + prev_h @ Wh + b)``."""
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Returns ``(dx, dprev_h, dWx, dWh, db)``."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)  # tanh'(a) = 1 - tanh(a)^2
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward_state(x, h0, Wx, Wh, b):
    """Runs the RNN over a sequence from h0: x (N, T, D), h0 (N, H).

    Returns ``(h, hT, cache)``: every step's state h (N, T, H) and the final one hT (N, H),
    an array of its own (h0's value when T = 0).
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx, Wh, b, np.float16)  # what np.tanh returns: integers become floats
    h = np.empty((N, T, H), dtype=dtype)
    prev_h = h0
    for t in range(T):
        prev_h, _ = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
    hT = np.array(prev_h, dtype=dtype)  # a copy: never h0 itself, nor a view into h
    return h, hT, (x, h0, Wx, Wh, b, h)


def rnn_backward_state(dh, dhT, cache):
    """Backpropagation through time, with the final state's gradient.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state (not the gradient
    flowing between steps), ``dhT`` (N, H) that of the final state (it adds to the last
    step's); either may be None (zeros).  Returns ``(dx, dh0, dWx, dWh, db)``, dh0 being
    the gradient of the initial state.
    """
    x, h0, Wx, Wh, b, h = cache
    N, T, D = x.shape
    dtype = np.result_type(h, *(g for g in (dh, dhT) if g is not None))
    dx = np.empty((N, T, D), dtype=dtype)
    dWx = np.zeros(Wx.shape, dtype=dtype)
    dWh = np.zeros(Wh.shape, dtype=dtype)
    db = np.zeros(h.shape[2], dtype=dtype)  # (H,), as every other db, whatever shape b came in
    dprev_h = np.zeros(h0.shape, dtype=dtype) if dhT is None else np.array(dhT, dtype=dtype)
    for t in reversed(range(T)):
        prev_h = h0 if t == 0 else h[:, t - 1]
        step_cache = (x[:, t], prev_h, Wx, Wh, h[:, t])
        dnext_h = dprev_h if dh is None else dh[:, t] + dprev_h
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dnext_h, step_cache)
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """Runs the RNN over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H)."""
    h, _, cache = rnn_forward_state(x, h0, Wx, Wh, b)
    return h, cache


def rnn_backward(dh, cache):
    """Backpropagation through time.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state (not the gradient
    flowing between steps).  Returns ``(dx, dh0, dWx, dWh, db)``.
    """
    return rnn_backward_state(dh, None, cache)


def word_embedding_forward(x, W):
    """Looks up word vectors: integer x of any shape, W (V, D) -> x.shape + (D,)."""
    return W[x], (x, W)


def word_embedding_backward(dout, cache):
    """Returns dW (V, D); rows of repeated indices are summed."""
    x, W = cache
    dW = np.zeros(W.shape, dtype=np.result_type(dout, W))
    np.add.at(dW, x, dout)
    return dW


def sigmoid(x):
    """Logistic function, stable for large |x| (never exponentiates a positive number)."""
    x = np.asarray(x)
    dtype = np.result_type(x, np.float16)  # integers become floats, as np.exp would make them
    z = np.exp(-np.abs(x).astype(dtype))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(dtype, copy=False)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step with gates in the order i, f, o, g.

    Returns ``(next_h, next_c, cache)``.
    """
    H = Wh.shape[0]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[..., 0 * H:1 * H])
    f = sigmoid(a[..., 1 * H:2 * H])
    o = sigmoid(a[..., 2 * H:3 * H])
    g = np.tanh(a[..., 3 * H:4 * H])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns ``(dx, dprev_h, dprev_c, dWx, dWh, db)``."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * tanh_c
    dg = dc * i
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1
    )
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward_state(x, h0, c0, Wx, Wh, b):
    """Runs the LSTM over a sequence from (h0, c0): x (N, T, D), h0 and c0 (N, H); c0 = None
    means zeros.

    Returns ``(h, hT, cT, cache)``: every step's hidden state h (N, T, H) and the final
    hidden and cell states hT and cT (N, H), arrays of their own.
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    states = (h0,) if c0 is None else (h0, c0)
    dtype = np.result_type(x, *states, Wx, Wh, b, np.float16)  # what np.tanh returns: integers become floats
    c0 = np.zeros((N, H), dtype=dtype) if c0 is None else c0
    h = np.empty((N, T, H), dtype=dtype)
    c = np.empty((N, T, H), dtype=dtype)
    gates = np.empty((N, T, 4 * H), dtype=dtype)  # activated i, f, o, g of every step
    prev_h, prev_c = h0, c0
    for t in range(T):
        prev_h, prev_c, step = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        c[:, t] = prev_c
        gates[:, t] = np.concatenate(step[5:9], axis=1)
    hT = np.array(prev_h, dtype=dtype)  # copies: never h0/c0 themselves, nor views into h
    cT = np.array(prev_c, dtype=dtype)
    return h, hT, cT, (x, h0, c0, Wx, Wh, h, c, gates)


def lstm_backward_state(dh, dhT, dcT, cache):
    """Backpropagation through time for the LSTM, with the final states' gradients.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state, ``dhT`` and ``dcT``
    (N, H) those of the final hidden and cell states; each may be None (zeros).
    Returns ``(dx, dh0, dc0, dWx, dWh, db)``.
    """
    x, h0, c0, Wx, Wh, h, c, gates = cache
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = np.result_type(h, *(g for g in (dh, dhT, dcT) if g is not None))
    dx = np.empty((N, T, D), dtype=dtype)
    dWx = np.zeros(Wx.shape, dtype=dtype)
    dWh = np.zeros(Wh.shape, dtype=dtype)
    db = np.zeros(4 * H, dtype=dtype)
    dprev_h = np.zeros((N, H), dtype=dtype) if dhT is None else np.array(dhT, dtype=dtype)
    dprev_c = np.zeros((N, H), dtype=dtype) if dcT is None else np.array(dcT, dtype=dtype)
    for t in reversed(range(T)):
        prev_h = h0 if t == 0 else h[:, t - 1]
        prev_c = c0 if t == 0 else c[:, t - 1]
        i, f, o, g = np.split(gates[:, t], 4, axis=1)
        step_cache = (x[:, t], prev_h, prev_c, Wx, Wh, i, f, o, g, np.tanh(c[:, t]))
        dnext_h = dprev_h if dh is None else dh[:, t] + dprev_h
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dnext_h, dprev_c, step_cache)
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b, *, c0=None):
    """Runs the LSTM over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H).

    The cell state starts from c0 (N, H), zeros by default as in cs231n.
    """
    h, _, _, cache = lstm_forward_state(x, h0, c0, Wx, Wh, b)
    return h, cache


def lstm_backward(dh, cache):
    """Backpropagation through time for the LSTM.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state.
    Returns ``(dx, dh0, dWx, dWh, db)``.
    """
    dx, dh0, _, dWx, dWh, db = lstm_backward_state(dh, None, None, cache)
    return dx, dh0, dWx, dWh, db


# --------------------------------------------------------------------------- GRU


def gru_step_forward(x, prev_h, Wx, Wh, b, bhn):
    """One GRU step, PyTorch's formulation, gates in the order r, z, n.

    Wx (D, 3H), Wh (H, 3H), b (3H,), bhn (H,):

        r = sigmoid(x Wx_r + prev_h Wh_r + b_r)
        z = sigmoid(x Wx_z + prev_h Wh_z + b_z)
        n = tanh(x Wx_n + b_n + r * (prev_h Wh_n + bhn))
        next_h = (1 - z) * n + z * prev_h

    Returns ``(next_h, cache)``.
    """
    H = Wh.shape[0]
    ax = x @ Wx + b  # the input's part of the pre-activations
    ah = prev_h @ Wh  # the recurrent part
    r = sigmoid(ax[..., 0 * H:1 * H] + ah[..., 0 * H:1 * H])
    z = sigmoid(ax[..., 1 * H:2 * H] + ah[..., 1 * H:2 * H])
    hn = ah[..., 2 * H:3 * H] + bhn  # what r gates in n
    n = np.tanh(ax[..., 2 * H:3 * H] + r * hn)
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h, cache):
    """Returns ``(dx, dprev_h, dWx, dWh, db, dbhn)``."""
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dn = dnext_h * (1 - z)
    dz = dnext_h * (prev_h - n)
    dan = dn * (1 - n * n)  # gradient of n's pre-activation
    dar = dan * hn * r * (1 - r)
    daz = dz * z * (1 - z)
    dhn = dan * r  # gradient of prev_h Wh_n + bhn
    dax = np.concatenate([dar, daz, dan], axis=1)  # gradient of x Wx + b
    dah = np.concatenate([dar, daz, dhn], axis=1)  # gradient of prev_h Wh
    dx = dax @ Wx.T
    dprev_h = dah @ Wh.T + dnext_h * z
    dWx = x.T @ dax
    dWh = prev_h.T @ dah
    db = dax.sum(axis=0)
    dbhn = dhn.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db, dbhn


def gru_forward_state(x, h0, Wx, Wh, b, bhn):
    """Runs the GRU over a sequence from h0: x (N, T, D), h0 (N, H).

    Returns ``(h, hT, cache)``: every step's state h (N, T, H) and the final one hT (N, H),
    an array of its own.
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx, Wh, b, bhn, np.float16)  # what np.tanh returns: integers become floats
    h = np.empty((N, T, H), dtype=dtype)
    gates = np.empty((N, T, 3 * H), dtype=dtype)  # r, z, n of every step
    hn = np.empty((N, T, H), dtype=dtype)  # h_{t-1} Wh_n + bhn of every step
    prev_h = h0
    for t in range(T):
        prev_h, step = gru_step_forward(x[:, t], prev_h, Wx, Wh, b, bhn)
        h[:, t] = prev_h
        gates[:, t] = np.concatenate(step[4:7], axis=1)
        hn[:, t] = step[7]
    hT = np.array(prev_h, dtype=dtype)  # a copy: never h0 itself, nor a view into h
    return h, hT, (x, h0, Wx, Wh, b, bhn, h, gates, hn)


def gru_backward_state(dh, dhT, cache):
    """Backpropagation through time for the GRU, with the final state's gradient.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state, ``dhT`` (N, H) that of
    the final state; either may be None (zeros).  Returns ``(dx, dh0, dWx, dWh, db, dbhn)``.
    """
    x, h0, Wx, Wh, b, bhn, h, gates, hn = cache
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = np.result_type(h, *(g for g in (dh, dhT) if g is not None))
    dx = np.empty((N, T, D), dtype=dtype)
    dWx = np.zeros(Wx.shape, dtype=dtype)
    dWh = np.zeros(Wh.shape, dtype=dtype)
    db = np.zeros(3 * H, dtype=dtype)
    dbhn = np.zeros(H, dtype=dtype)
    dprev_h = np.zeros((N, H), dtype=dtype) if dhT is None else np.array(dhT, dtype=dtype)
    for t in reversed(range(T)):
        prev_h = h0 if t == 0 else h[:, t - 1]
        r, z, n = np.split(gates[:, t], 3, axis=1)
        step_cache = (x[:, t], prev_h, Wx, Wh, r, z, n, hn[:, t])
        dnext_h = dprev_h if dh is None else dh[:, t] + dprev_h
        dx_t, dprev_h, dWx_t, dWh_t, db_t, dbhn_t = gru_step_backward(dnext_h, step_cache)
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
        dbhn += dbhn_t
    return dx, dprev_h, dWx, dWh, db, dbhn


def gru_forward(x, h0, Wx, Wh, b, bhn):
    """Runs the GRU over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H)."""
    h, _, cache = gru_forward_state(x, h0, Wx, Wh, b, bhn)
    return h, cache


def gru_backward(dh, cache):
    """Backpropagation through time for the GRU.

    ``dh`` (N, T, H) is the upstream gradient of every hidden state.
    Returns ``(dx, dh0, dWx, dWh, db, dbhn)``.
    """
    return gru_backward_state(dh, None, cache)


def temporal_affine_forward(x, w, b):
    """Affine layer applied at every time step: x (N, T, D), w (D, M) -> (N, T, M)."""
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w).reshape(N, T, w.shape[1]) + b
    return out, (x, w, b)


def temporal_affine_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    x, w, b = cache
    N, T, D = x.shape
    M = w.shape[1]
    dtype = np.result_type(x, w, b, dout)  # every gradient: the forward's dtype with dout's
    dout2 = dout.reshape(N * T, M)
    dx = (dout2 @ w.T).reshape(N, T, D).astype(dtype, copy=False)
    dw = (x.reshape(N * T, D).T @ dout2).astype(dtype, copy=False)
    db = dout2.sum(axis=0, dtype=dtype)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Masked softmax cross-entropy summed over time steps, divided by N.

    x (N, T, V) scores, y (N, T) integer targets in [0, V), mask (N, T) saying
    which entries count.  Returns ``(loss, dx)``.  Uses log-softmax so a very
    unlikely target gives a large finite loss instead of ``log(0)``.
    """
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    rows = np.arange(N * T)

    shifted = x_flat - x_flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N

    dx_flat = np.exp(log_probs)
    dx_flat[rows, y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        print("dx_flat: ", dx_flat.shape)
    return loss, dx_flat.reshape(N, T, V)
