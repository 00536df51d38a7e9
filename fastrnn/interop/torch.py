"""Weights to and from PyTorch's ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (and their ``*Cell`` forms).

The two layouts hold the same function:

=============  ====================================  =======================================
               cs231n / fastrnn                      PyTorch
=============  ====================================  =======================================
input weights  ``Wx`` (D, G)                         ``weight_ih`` (G, D)
hidden         ``Wh`` (H, G)                         ``weight_hh`` (G, H)
bias (RNN,     one ``b`` (G,)                        ``bias_ih + bias_hh`` (G,) each
LSTM)
LSTM gates     i, f, **o, g**                        i, f, **g, o**
GRU biases     ``b`` (3H,) and ``bhn`` (H,)          ``b = bias_ih + [bias_hh_r, bias_hh_z, 0]``,
                                                     ``bhn = bias_hh_n``
GRU gates      r, z, n                               r, z, n
=============  ====================================  =======================================

with G = H for the tanh RNN, 4H for the LSTM and 3H for the GRU.  In the GRU, r multiplies
the recurrent part of n including its bias, ``n = tanh(x W_in + b_in + r (h W_hn + b_hn))``,
so ``b_hn`` stays apart (fastrnn's ``bhn``) while the other recurrent biases add into ``b``.
``to_torch`` puts all of ``b`` into ``bias_ih`` and zeros into ``bias_hh`` (GRU: ``bhn`` into
the n block of ``bias_hh``); ``from_torch`` adds them back.  A cell's weights are the tuple
its layer functions take after the states: ``(Wx, Wh, b)``, and ``(Wx, Wh, b, bhn)`` for the
GRU, so ``gru_forward(x, h0, *from_torch(gru))`` runs a ``torch.nn.GRU``.

Only a single-layer, unidirectional RNN (tanh), LSTM (no ``proj_size``) or GRU has a cs231n
equivalent; anything else is refused with a ValueError. PyTorch is imported on first use.
Initial states: PyTorch's ``h0``/``c0`` of a sequence module are (1, N, H), fastrnn's (N, H).
"""

import functools

import numpy as np

from .._cells import gates as _gates

__all__ = [
    "to_torch",
    "from_torch",
    "grads_from_torch",
    "cell_of",
    "torch_weights",
    "to_torch_layout",
    "from_torch_layout",
    "captioning_to_torch",
]

# The LSTM gate blocks swap places: cs231n block k is PyTorch block _ORDER[k], and back.
_ORDER = (0, 1, 3, 2)


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "fastrnn.interop.torch needs PyTorch: pip install 'fastrnn[torch]' (or pip install torch)"
        ) from exc
    return torch


def _reorder(a, cell, axis):
    """Swaps the o and g gate blocks of an LSTM array along ``axis`` (its own inverse); RNN, GRU: unchanged
    (a copy)."""
    a = np.asarray(a)
    if cell != "lstm":
        return np.array(a, copy=True)
    blocks = np.split(a, 4, axis=axis)
    return np.concatenate([blocks[k] for k in _ORDER], axis=axis)


def _float_dtype(*arrays):
    dtype = np.result_type(*arrays)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


# ------------------------------------------------------------------ NumPy-only layout conversion


def to_torch_layout(Wx, Wh, b, cell="lstm", *, bhn=None):
    """cs231n ``(Wx, Wh, b)`` (GRU: and ``bhn``, zeros when None) -> PyTorch
    ``(weight_ih, weight_hh, bias_ih, bias_hh)`` as NumPy arrays."""
    g = _gates(cell)
    Wx, Wh, b = np.asarray(Wx), np.asarray(Wh), np.asarray(b)
    if Wh.ndim != 2 or Wh.shape[1] != g * Wh.shape[0]:
        raise ValueError(f"Wh must have shape (H, {g}H) for cell {cell!r}, got {Wh.shape}")
    H = Wh.shape[0]
    if Wx.ndim != 2 or Wx.shape[1] != g * H:
        raise ValueError(f"Wx must have shape (D, {g * H}) for cell {cell!r} with H = {H}, got {Wx.shape}")
    if b.shape != (g * H,):
        raise ValueError(f"b must have shape ({g * H},), got {b.shape}")
    if cell != "gru" and bhn is not None:
        raise ValueError(f"bhn is the GRU's; cell {cell!r} has none")
    if cell == "gru" and bhn is not None:
        bhn = np.asarray(bhn)
        if bhn.shape != (H,):
            raise ValueError(f"bhn must have shape ({H},), got {bhn.shape}")
    dtype = _float_dtype(Wx, Wh, b, *(() if bhn is None else (bhn,)))
    weight_ih = np.ascontiguousarray(_reorder(Wx, cell, axis=1).T, dtype=dtype)
    weight_hh = np.ascontiguousarray(_reorder(Wh, cell, axis=1).T, dtype=dtype)
    bias_ih = np.ascontiguousarray(_reorder(b, cell, axis=0), dtype=dtype)
    bias_hh = np.zeros_like(bias_ih)
    if bhn is not None:
        bias_hh[2 * H:] = bhn
    return weight_ih, weight_hh, bias_ih, bias_hh


def from_torch_layout(weight_ih, weight_hh, bias_ih=None, bias_hh=None, cell="lstm"):
    """PyTorch ``(weight_ih, weight_hh, bias_ih, bias_hh)`` (NumPy arrays) -> cs231n ``(Wx, Wh, b)``,
    or ``(Wx, Wh, b, bhn)`` for the GRU.  A missing bias (``None``) counts as zero."""
    g = _gates(cell)
    weight_ih, weight_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    if weight_hh.ndim != 2 or weight_hh.shape[0] != g * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape ({g}H, H) for cell {cell!r}, got {weight_hh.shape}")
    G, H = weight_hh.shape
    if weight_ih.ndim != 2 or weight_ih.shape[0] != G:
        raise ValueError(f"weight_ih must have shape ({G}, D), got {weight_ih.shape}")
    dtype = _float_dtype(weight_ih, weight_hh)
    b = np.zeros(G, dtype=dtype)
    bhn = np.zeros(H, dtype=dtype)
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (G,):
                raise ValueError(f"{name} must have shape ({G},), got {bias.shape}")
            if cell == "gru" and name == "bias_hh":  # r gates h W_hn + b_hn: b_hn stays apart
                b = b + np.concatenate([bias[:2 * H], np.zeros(H, bias.dtype)])
                bhn = bhn + bias[2 * H:]
            else:
                b = b + bias
    Wx = np.ascontiguousarray(_reorder(weight_ih.T, cell, axis=1))
    Wh = np.ascontiguousarray(_reorder(weight_hh.T, cell, axis=1))
    b = _reorder(b, cell, axis=0)
    return (Wx, Wh, b, bhn.astype(b.dtype, copy=False)) if cell == "gru" else (Wx, Wh, b)


# ------------------------------------------------------------------ torch modules


def to_torch(Wx, Wh, b, cell="lstm", *, bhn=None, step=False, batch_first=True):
    """A PyTorch module computing what fastrnn computes with these weights.

    ``cell`` is "rnn" (tanh), "lstm" or "gru" (whose ``bhn`` is zeros when None). By default a
    ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` over sequences (``batch_first=True``, as cs231n's
    (N, T, D) arrays); with ``step=True`` a ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``
    for one step. The module's dtype is the weights' (float32 or float64), on the CPU; its
    parameters require grad.
    """
    torch = _torch()
    weight_ih, weight_hh, bias_ih, bias_hh = to_torch_layout(Wx, Wh, b, cell, bhn=bhn)
    D, H = weight_ih.shape[1], weight_hh.shape[1]
    dtype = getattr(torch, weight_ih.dtype.name)
    nn = torch.nn
    if step:
        module = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}.get(cell, nn.RNNCell)(D, H, dtype=dtype)
    elif cell == "lstm":
        module = nn.LSTM(D, H, batch_first=batch_first, dtype=dtype)
    elif cell == "gru":
        module = nn.GRU(D, H, batch_first=batch_first, dtype=dtype)
    else:
        module = nn.RNN(D, H, nonlinearity="tanh", batch_first=batch_first, dtype=dtype)
    with torch.no_grad():
        for param, value in zip(torch_weights(module), (weight_ih, weight_hh, bias_ih, bias_hh)):
            param.copy_(torch.from_numpy(value))
    return module


def cell_of(module):
    """'rnn', 'lstm' or 'gru' for a module with a cs231n equivalent; ValueError (or TypeError) otherwise."""
    torch = _torch()
    nn = torch.nn
    what = type(module).__name__
    if isinstance(module, nn.RNNBase):
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError(f"only a single-layer, unidirectional {what} has a cs231n equivalent "
                             f"(got num_layers={module.num_layers}, bidirectional={module.bidirectional})")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"an LSTM with proj_size={module.proj_size} has no cs231n equivalent")
        modes = {"RNN_TANH": "rnn", "LSTM": "lstm", "GRU": "gru"}
        if module.mode not in modes:
            raise ValueError(f"{what} with mode {module.mode} has no cs231n equivalent (tanh RNN, LSTM or GRU only)")
        return modes[module.mode]
    if isinstance(module, nn.LSTMCell):
        return "lstm"
    if isinstance(module, nn.GRUCell):
        return "gru"
    if isinstance(module, nn.RNNCell):
        if module.nonlinearity != "tanh":
            raise ValueError(f"RNNCell with nonlinearity={module.nonlinearity!r} has no cs231n equivalent")
        return "rnn"
    raise TypeError(f"expected torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell, got {what}")


def torch_weights(module):
    """The module's ``(weight_ih, weight_hh, bias_ih, bias_hh)`` parameters (biases None without bias)."""
    cell_of(module)
    suffix = "_l0" if isinstance(module, _torch().nn.RNNBase) else ""
    return tuple(getattr(module, f"{name}{suffix}", None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _numpy(t):
    return None if t is None else t.detach().cpu().numpy()


def from_torch(module):
    """The cs231n-layout weights (NumPy, the module's dtype) of a torch RNN/LSTM/GRU(Cell):
    ``(Wx, Wh, b)``, or ``(Wx, Wh, b, bhn)`` for the GRU -- what its layer functions take after
    the states."""
    cell = cell_of(module)
    return from_torch_layout(*(_numpy(p) for p in torch_weights(module)), cell=cell)


def grads_from_torch(module, grads=None):
    """``(dWx, dWh, db)`` (GRU: ``(dWx, dWh, db, dbhn)``) in the cs231n layout from the gradients
    of the module's parameters.

    ``grads`` is the gradients of ``torch_weights(module)`` in that order (for instance from
    ``torch.autograd.grad``); by default the parameters' ``.grad``. Since b = bias_ih + bias_hh
    (GRU: the r and z blocks of bias_hh), db is the gradient of bias_ih; the GRU's dbhn is that
    of the n block of bias_hh.
    """
    cell = cell_of(module)
    params = torch_weights(module)
    if grads is None:
        grads = tuple(None if p is None else p.grad for p in params)
    grads = tuple(grads) + (None,) * (4 - len(grads))
    d_ih, d_hh, d_bih, d_bhh = grads
    if d_ih is None or d_hh is None:
        raise ValueError("the module has no gradients: run backward first, or pass grads")
    if cell == "gru":
        dWx, dWh, db, dbhn = from_torch_layout(_numpy(d_ih), _numpy(d_hh), _numpy(d_bih), None, cell=cell)
        if d_bhh is not None:
            dbhn = np.ascontiguousarray(_numpy(d_bhh)[2 * dWh.shape[0]:], dtype=db.dtype)
        return dWx, dWh, db, dbhn
    d_bias = d_bih if d_bih is not None else d_bhh
    dWx, dWh, db = from_torch_layout(_numpy(d_ih), _numpy(d_hh), _numpy(d_bias), None, cell=cell)
    return dWx, dWh, db


# ------------------------------------------------------------------ the captioning model


@functools.lru_cache(maxsize=None)
def _captioning_class():
    torch = _torch()
    nn = torch.nn

    class TorchCaptioningRNN(nn.Module):
        """cs231n's CaptioningRNN in PyTorch: Embedding, Linear projection, RNN/LSTM/GRU, Linear to the vocabulary,
        cross-entropy over the non-``<NULL>`` targets summed and divided by N."""

        def __init__(self, params, cell_type, null, start=None, end=None):
            super().__init__()
            p = {k: np.asarray(v) for k, v in params.items()}
            V, W = p["W_embed"].shape
            D, H = p["W_proj"].shape
            dtype = getattr(torch, p["Wx"].dtype.name)
            self.cell_type, self.null = cell_type, int(null)
            self.start, self.end = start, end
            self.embed = nn.Embedding(V, W, dtype=dtype)
            self.proj = nn.Linear(D, H, dtype=dtype)
            self.rnn = to_torch(p["Wx"], p["Wh"], p["b"], cell_type, bhn=p.get("bhn"))
            self.vocab = nn.Linear(H, V, dtype=dtype)
            with torch.no_grad():
                for param, value in ((self.embed.weight, p["W_embed"]), (self.proj.weight, p["W_proj"].T),
                                     (self.proj.bias, p["b_proj"]), (self.vocab.weight, p["W_vocab"].T),
                                     (self.vocab.bias, p["b_vocab"])):
                    param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

        def loss(self, features, captions):
            """The training loss (a 0-d tensor) for features (N, D) and int64 captions (N, T + 1)."""
            captions_in, captions_out = captions[:, :-1], captions[:, 1:]
            N = features.shape[0]
            h0 = self.proj(features).unsqueeze(0)
            words = self.embed(captions_in)
            state = (h0, torch.zeros_like(h0)) if self.cell_type == "lstm" else h0
            h, _ = self.rnn(words, state)
            scores = self.vocab(h)
            total = nn.functional.cross_entropy(
                scores.reshape(-1, scores.shape[-1]), captions_out.reshape(-1),
                ignore_index=self.null, reduction="sum",
            )
            return total / N

        @torch.no_grad()
        def sample(self, features, max_length=30):
            """Greedy captions (N, max_length) as CaptioningRNN.sample makes them: from ``<START>``, the
            highest-scoring word fed back each step, ``<NULL>`` after a caption's ``<END>``."""
            if self.start is None:
                raise ValueError("sample needs '<START>' in word_to_idx")
            N = features.shape[0]
            h = self.proj(features).unsqueeze(0)
            state = (h, torch.zeros_like(h)) if self.cell_type == "lstm" else h
            captions = torch.full((N, max_length), self.null, dtype=torch.int64)
            words = torch.full((N,), self.start, dtype=torch.int64)
            finished = torch.zeros(N, dtype=torch.bool)
            for t in range(max_length):
                out, state = self.rnn(self.embed(words).unsqueeze(1), state)
                words = self.vocab(out[:, 0]).argmax(dim=1)
                captions[~finished, t] = words[~finished]
                finished |= words == self.end
                if bool(finished.all()):
                    break
            return captions

        def grad_params(self):
            """The parameters whose gradients ``grads_to_cs231n`` takes, in its order."""
            return [self.embed.weight, self.proj.weight, self.proj.bias, *torch_weights(self.rnn),
                    self.vocab.weight, self.vocab.bias]

        def grads_to_cs231n(self, grads=None):
            """Gradients of ``grad_params()`` (default: their ``.grad``) keyed like CaptioningRNN.params."""
            params = self.grad_params()
            grads = [p.grad for p in params] if grads is None else list(grads)
            d_embed, d_proj_w, d_proj_b, d_ih, d_hh, d_bih, d_bhh, d_vocab_w, d_vocab_b = grads
            cell_grads = grads_from_torch(self.rnn, (d_ih, d_hh, d_bih, d_bhh))
            out = {
                "W_embed": _numpy(d_embed), "W_proj": _numpy(d_proj_w).T.copy(), "b_proj": _numpy(d_proj_b),
                **dict(zip(("Wx", "Wh", "b", "bhn"), cell_grads)),
                "W_vocab": _numpy(d_vocab_w).T.copy(), "b_vocab": _numpy(d_vocab_b),
            }
            return out

    return TorchCaptioningRNN


def captioning_to_torch(model):
    """A PyTorch copy of a ``fastrnn.CaptioningRNN`` (same weights, same loss and sampling); see its ``loss``
    and ``sample``."""
    w = model.word_to_idx
    return _captioning_class()(model.params, model.cell_type, w["<NULL>"], w.get("<START>"), w.get("<END>"))
