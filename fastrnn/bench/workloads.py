"""The benchmark workloads: one case (what to compute) run by several implementations.

A ``Case`` is a cell ("rnn", "lstm" or "gru") at a size, in a dtype, for a pass ("fwd", or
"fwd+bwd": forward then backward). Its kind is "sequence" (``rnn_forward``, ...), "step"
(``rnn_step_forward``, ...), "model" (``CaptioningRNN.loss``, always loss + gradients) or "sample"
(``CaptioningRNN.sample``: greedy captions of T words, forward only).

``build(case, name)`` prepares one implementation of a case on fixed random inputs and returns
a ``Workload``: ``run()`` is the call that is timed (nothing else happens inside it), and
``results(run())`` turns what it returned into named NumPy arrays in the cs231n layout, to be
compared with the oracle's. The implementations:

* a fastrnn backend name ("numpy" is the oracle, "numba", "cython"): ``fastrnn.layers`` (or
  ``CaptioningRNN``) with that backend active;
* "torch": ``torch.nn.RNN``/``LSTM``/``GRU`` (their ``*Cell`` for steps; the equivalent
  PyTorch model for "model" and "sample") with the same weights, same dtype, ``batch_first``; its forward
  records autograd like fastrnn's forward keeps a cache, and its backward is
  ``torch.autograd.grad`` (fresh gradients, as fastrnn returns);
* "floor": the BLAS floor, only the matrix products the kernel design needs, with
  ``numpy.matmul`` into preallocated buffers (G = H for rnn, 4H for lstm, 3H for gru):
  forward X (NT, D) @ Wx (D, G) once and T times h (N, H) @ Wh (H, G); backward T times
  dA (N, G) @ Wh.T, then dX = dA @ Wx.T, dWx = X.T @ dA, dWh = Hprev.T @ dA (the GRU's kernels
  run the first two as two GEMMs each, over [dr, dz] and dn: the same work). For "model",
  those of the cell (D = wordvec) plus the model's own: features @ W_proj, Hs (NT, H) @ W_vocab,
  dScores @ W_vocab.T, Hs.T @ dScores and features.T @ dh0. The vocabulary projection alone is
  the same work in every implementation, so the model's floor bounds what any backend can gain
  there: oracle time / floor is the largest speed-up possible on this BLAS. For "sample": features @
  W_proj, then per word x (N, wordvec) @ Wx, h @ Wh and h @ W_vocab.

``benchmarks/`` and ``fastrnn bench`` both time these, so they measure the same thing.
"""

import contextlib
from dataclasses import dataclass, field

import numpy as np

from .. import _backend, layers
from .._cells import CELLS, gates
from .sizes import CAPTIONING, CAPTIONING_BATCHES, SIZES

__all__ = ["KINDS", "PASSES", "Case", "Workload", "cases", "build", "torch_available", "gemm_flops"]

KINDS = ("sequence", "step", "model", "sample")
PASSES = ("fwd", "fwd+bwd")
ORACLE = "numpy"


@dataclass(frozen=True)
class Case:
    kind: str  # "sequence", "step", "model" or "sample"
    cell: str  # "rnn", "lstm" or "gru"
    size: str  # a name from fastrnn.sizes.SIZES, or "N=25" for the model and sample
    dims: tuple  # ((name, value), ...): N, T, D, H (model, sample: N, T, V, input, wordvec, hidden)
    dtype: str  # "float32" or "float64"
    pass_: str  # "fwd" or "fwd+bwd"

    @property
    def dim(self):
        return dict(self.dims)

    @property
    def layer(self):
        """What is called: rnn, lstm, gru, rnn_step, lstm_step, gru_step, model or sample."""
        return {"sequence": self.cell, "step": f"{self.cell}_step", "model": f"{self.cell} model",
                "sample": f"{self.cell} sample"}[self.kind]

    @property
    def pass_label(self):
        return {"model": "loss+grads", "sample": "captions"}.get(self.kind, self.pass_)

    @property
    def label(self):
        return f"{self.layer} {self.size} {self.dtype} {self.pass_label}"


def cases(kinds=KINDS, cells=CELLS, sizes=None, dtypes=("float32", "float64"), passes=PASSES):
    """The cases of a benchmark, in the order they run.

    sequence and step cases: cell x size x dtype x pass. Model cases: cell x batch (25, 100),
    float32, loss + gradients; they run only when float32 and "fwd+bwd" are selected. Sample cases: the
    same, greedy captions of T words; they run only when float32 and "fwd" are selected.
    """
    sizes = list(SIZES) if sizes is None else list(sizes)
    out = []
    for kind in kinds:
        if kind in ("sequence", "step"):
            for cell in cells:
                for size in sizes:
                    s = SIZES[size]
                    dims = (("N", s.N), ("T", s.T if kind == "sequence" else 1), ("D", s.D), ("H", s.H))
                    for dtype in dtypes:
                        for pass_ in passes:
                            out.append(Case(kind, cell, size, dims, dtype, pass_))
        elif kind in ("model", "sample"):
            pass_ = "fwd+bwd" if kind == "model" else "fwd"
            if "float32" not in dtypes or pass_ not in passes:
                continue
            c = CAPTIONING
            for cell in cells:
                for N in CAPTIONING_BATCHES:
                    dims = (("N", N), ("T", c["T"]), ("V", c["vocab_size"]), ("input", c["input_dim"]),
                            ("wordvec", c["wordvec_dim"]), ("hidden", c["hidden_dim"]))
                    out.append(Case(kind, cell, f"N={N}", dims, "float32", pass_))
        else:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return out


def gemm_flops(case):
    """Floating-point operations of the GEMMs the kernel design needs (the floor's work)."""
    d = case.dim
    if case.kind == "model":
        N, T, V, D, W, H = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"]
        cell = _cell_flops(N, T, W, H, gates(case.cell) * H, backward=True)
        return cell + 2 * N * D * H * 2 + 2 * N * T * H * V * 3  # W_proj: fwd + dW; W_vocab: fwd, dH, dW
    if case.kind == "sample":
        N, T, V, D, W, H = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"]
        return 2 * N * D * H + T * 2 * N * (W * gates(case.cell) * H + H * gates(case.cell) * H + H * V)
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    return _cell_flops(N, T, D, H, gates(case.cell) * H, backward=case.pass_ == "fwd+bwd")


def _cell_flops(N, T, D, H, G, backward):
    forward = 2 * N * T * D * G + 2 * T * N * H * G
    return forward + (2 * T * N * G * H + 2 * N * T * G * D + 2 * D * N * T * G + 2 * H * N * T * G if backward else 0)


@dataclass
class Workload:
    name: str  # the implementation: a backend name, "torch" or "floor"
    role: str  # "oracle", "backend", "torch" or "floor"
    run: object  # () -> raw result; the timed call
    results: object = None  # raw result -> {name: ndarray} (None for the floor: it computes nothing usable)
    context: object = contextlib.nullcontext  # () -> context manager entered around runs (not timed)
    keep: list = field(default_factory=list)  # objects the closures need alive


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ inputs


def _randn(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def inputs(case, seed=0):
    """The case's inputs and upstream gradients (fixed by ``seed``), as NumPy arrays."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(case.dtype)
    d = case.dim
    if case.kind in ("model", "sample"):
        return _model_inputs(case, rng)
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    G = gates(case.cell) * H
    arrays = dict(
        Wx=_randn(rng, (D, G), dtype, 1 / np.sqrt(D)),
        Wh=_randn(rng, (H, G), dtype, 0.9 / np.sqrt(H)),
        b=_randn(rng, (G,), dtype, 0.1),
        h0=_randn(rng, (N, H), dtype, 0.5),
    )
    if case.cell == "gru":
        arrays["bhn"] = _randn(rng, (H,), dtype, 0.1)
    if case.kind == "sequence":
        arrays["x"] = _randn(rng, (N, T, D), dtype)
        arrays["dh"] = _randn(rng, (N, T, H), dtype)
    else:
        arrays["x"] = _randn(rng, (N, D), dtype)
        arrays["c0"] = _randn(rng, (N, H), dtype, 0.5)
        arrays["dh"] = _randn(rng, (N, H), dtype)
        arrays["dc"] = _randn(rng, (N, H), dtype)
    return arrays


def _model_inputs(case, rng):
    from ..models.captioning import CaptioningRNN

    d = case.dim
    V, N, T = d["V"], d["N"], d["T"]
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    word_to_idx.update({f"w{i}": i for i in range(3, V)})
    state = np.random.get_state()  # CaptioningRNN draws from the global generator: leave it as it was
    try:
        model = CaptioningRNN(word_to_idx, input_dim=d["input"], wordvec_dim=d["wordvec"], hidden_dim=d["hidden"],
                              cell_type=case.cell, dtype=np.float32)
    finally:
        np.random.set_state(state)
    for k, v in model.params.items():  # the model's own init scales, from our generator
        scale = 0.1 if k.startswith("b") else float(np.std(v)) or 0.1
        model.params[k] = _randn(rng, v.shape, np.float32, scale)
    captions = np.zeros((N, T + 1), dtype=np.int64)  # <NULL> padding
    captions[:, 0] = 1
    for n in range(N):
        length = int(rng.integers(T // 2, T + 1))  # words before <END>
        captions[n, 1:length] = rng.integers(3, V, size=length - 1)
        if length <= T:
            captions[n, length] = 2
    features = _randn(rng, (N, d["input"]), np.float32)
    return dict(model=model, features=features, captions=captions)


# ------------------------------------------------------------------ implementations


def build(case, name, arrays=None, seed=0):
    """The ``Workload`` of implementation ``name`` for ``case`` (see the module docstring)."""
    arrays = inputs(case, seed) if arrays is None else arrays
    if name == "torch":
        return _torch_workload(case, arrays)
    if name == "floor":
        return _floor_workload(case)
    _backend._resolve(name)  # ValueError naming the available backends
    w = _fastrnn_workload(case, arrays)
    w.name, w.role = name, "oracle" if name == ORACLE else "backend"
    w.context = lambda: _backend.use_backend(name)
    return w


def _fastrnn_workload(case, a):
    pass_both = case.pass_ == "fwd+bwd"
    if case.kind == "model":
        model, features, captions = a["model"], a["features"], a["captions"]

        def run():
            return model.loss(features, captions)

        def results(raw):
            loss, grads = raw
            return {"loss": np.asarray(loss), **grads}

        return Workload("", "", run, results)
    if case.kind == "sample":
        model, features, T = a["model"], a["features"], case.dim["T"]

        def run():
            return model.sample(features, max_length=T)

        def results(raw):
            return {"captions": np.asarray(raw, dtype=np.int64)}

        return Workload("", "", run, results)

    cell = case.cell
    weights = (a["Wx"], a["Wh"], a["b"]) + ((a["bhn"],) if cell == "gru" else ())
    weight_grads = ("dWx", "dWh", "db") + (("dbhn",) if cell == "gru" else ())
    if case.kind == "sequence":
        forward, backward = getattr(layers, f"{cell}_forward"), getattr(layers, f"{cell}_backward")
        args = (a["x"], a["h0"]) + weights
        douts = (a["dh"],)
        out_names = ("h",)
        grad_names = ("dx", "dh0") + weight_grads
    else:
        forward, backward = getattr(layers, f"{cell}_step_forward"), getattr(layers, f"{cell}_step_backward")
        if cell == "lstm":
            args = (a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"])
            douts = (a["dh"], a["dc"])
            out_names = ("next_h", "next_c")
            grad_names = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
        else:
            args = (a["x"], a["h0"]) + weights
            douts = (a["dh"],)
            out_names = ("next_h",)
            grad_names = ("dx", "dprev_h") + weight_grads

    if pass_both:
        def run():
            *outs, cache = forward(*args)
            return outs, backward(*douts, cache)
    else:
        def run():
            *outs, _ = forward(*args)
            return outs, ()

    def results(raw):
        outs, grads = raw
        return dict(zip(out_names + (grad_names if pass_both else ()), list(outs) + list(grads)))

    return Workload("", "", run, results)


def _torch_workload(case, a):
    try:
        import torch
    except ImportError as exc:
        raise ValueError("torch is not installed: pip install 'fastrnn[torch]'") from exc
    from ..interop.torch import captioning_to_torch, grads_from_torch, to_torch, torch_weights

    pass_both = case.pass_ == "fwd+bwd"
    if case.kind == "model":
        tmodel = captioning_to_torch(a["model"])
        features = torch.from_numpy(a["features"])
        captions = torch.from_numpy(a["captions"])
        params = tmodel.grad_params()

        def run():
            loss = tmodel.loss(features, captions)
            return loss, torch.autograd.grad(loss, params)

        def results(raw):
            loss, grads = raw
            return {"loss": loss.detach().numpy(), **tmodel.grads_to_cs231n(grads)}

        return Workload("torch", "torch", run, results, keep=[tmodel])
    if case.kind == "sample":
        tmodel = captioning_to_torch(a["model"])
        features, T = torch.from_numpy(a["features"]), case.dim["T"]

        def run():
            return tmodel.sample(features, max_length=T)

        def results(raw):
            return {"captions": raw.numpy().astype(np.int64)}

        return Workload("torch", "torch", run, results, keep=[tmodel])

    cell = case.cell
    step = case.kind == "step"
    module = to_torch(a["Wx"], a["Wh"], a["b"], cell, bhn=a.get("bhn"), step=step)
    weights = list(torch_weights(module))

    def leaf(array):
        return torch.from_numpy(np.ascontiguousarray(array)).requires_grad_()

    x = leaf(a["x"])
    if step:
        h0 = leaf(a["h0"])
        c0 = leaf(a["c0"])
        dh, dc = torch.from_numpy(a["dh"]), torch.from_numpy(a["dc"])
        if cell == "lstm":
            def forward():
                return module(x, (h0, c0))

            wrt, douts = [x, h0, c0] + weights, (dh, dc)
            out_names = ("next_h", "next_c")
            grad_names = ("dx", "dprev_h", "dprev_c")
        else:
            def forward():
                return (module(x, h0),)

            wrt, douts = [x, h0] + weights, (dh,)
            out_names = ("next_h",)
            grad_names = ("dx", "dprev_h")
    else:
        h0 = leaf(a["h0"][None])  # (num_layers = 1, N, H)
        c0 = torch.zeros_like(h0)
        dh = torch.from_numpy(a["dh"])
        state = (h0, c0) if cell == "lstm" else h0

        def forward():
            return (module(x, state)[0],)

        wrt, douts = [x, h0] + weights, (dh,)
        out_names = ("h",)
        grad_names = ("dx", "dh0")

    if pass_both:
        def run():
            outs = forward()
            return outs, torch.autograd.grad(outs, wrt, douts)
    else:
        def run():
            return forward(), ()

    def results(raw):
        outs, grads = raw
        out = {n: o.detach().numpy() for n, o in zip(out_names, outs)}
        if pass_both:
            k = len(grad_names)
            for n, g in zip(grad_names, grads[:k]):
                g = g.numpy()
                out[n] = g[0] if n == "dh0" else g
            out.update(zip(("dWx", "dWh", "db", "dbhn"), grads_from_torch(module, grads[k:])))
        return out

    return Workload("torch", "torch", run, results, keep=[module])


def _floor_workload(case):
    d = case.dim
    dtype = np.dtype(case.dtype)
    rng = np.random.default_rng(1)
    if case.kind == "model":
        return _model_floor(case, rng, dtype)
    if case.kind == "sample":
        return _sample_floor(case, rng, dtype)
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    forward, backward = _cell_gemms(rng, dtype, N, T, D, H, gates(case.cell) * H)
    if case.pass_ == "fwd+bwd":
        def run():
            forward()
            backward()
    else:
        run = forward
    return Workload("floor", "floor", run, None)


def _cell_gemms(rng, dtype, N, T, D, H, G):
    """(forward, backward): the cell's GEMMs of the floor (see the module docstring), on their own buffers."""
    X = _randn(rng, (N * T, D), dtype)
    Wx = _randn(rng, (D, G), dtype)
    Wh = _randn(rng, (H, G), dtype)
    Hprev = _randn(rng, (T, N, H), dtype)  # h_{t-1} of every step, contiguous per step
    dA = _randn(rng, (T, N, G), dtype)
    A = np.empty((N * T, G), dtype)  # input projection of all steps
    S = np.empty((T, N, G), dtype)  # h_{t-1} @ Wh of every step
    dHprev = np.empty((T, N, H), dtype)
    dX = np.empty((N * T, D), dtype)
    dWx = np.empty((D, G), dtype)
    dWh = np.empty((H, G), dtype)
    dA2, Hprev2 = dA.reshape(N * T, G), Hprev.reshape(N * T, H)
    matmul = np.matmul

    def forward():
        matmul(X, Wx, out=A)
        for t in range(T):
            matmul(Hprev[t], Wh, out=S[t])

    def backward():
        WhT = Wh.T
        for t in range(T):
            matmul(dA[t], WhT, out=dHprev[t])
        matmul(dA2, Wx.T, out=dX)
        matmul(X.T, dA2, out=dWx)
        matmul(Hprev2.T, dA2, out=dWh)

    return forward, backward


def _model_floor(case, rng, dtype):
    """The model's floor: the cell's GEMMs (input = word vectors) plus W_proj's and W_vocab's."""
    d = case.dim
    N, T, V, D, W, H = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"]
    cell_forward, cell_backward = _cell_gemms(rng, dtype, N, T, W, H, gates(case.cell) * H)
    features = _randn(rng, (N, D), dtype)
    W_proj = _randn(rng, (D, H), dtype)
    h0 = np.empty((N, H), dtype)
    dh0 = _randn(rng, (N, H), dtype)
    dW_proj = np.empty((D, H), dtype)
    Hs = _randn(rng, (N * T, H), dtype)  # the hidden states, scored against the vocabulary
    W_vocab = _randn(rng, (H, V), dtype)
    scores = np.empty((N * T, V), dtype)
    dscores = _randn(rng, (N * T, V), dtype)
    dHs = np.empty((N * T, H), dtype)
    dW_vocab = np.empty((H, V), dtype)
    matmul = np.matmul

    def run():
        matmul(features, W_proj, out=h0)
        cell_forward()
        matmul(Hs, W_vocab, out=scores)
        matmul(dscores, W_vocab.T, out=dHs)
        matmul(Hs.T, dscores, out=dW_vocab)
        cell_backward()
        matmul(features.T, dh0, out=dW_proj)

    return Workload("floor", "floor", run, None)


def _sample_floor(case, rng, dtype):
    """Sampling's floor: features @ W_proj, then per word x @ Wx, h @ Wh and h @ W_vocab."""
    d = case.dim
    N, T, V, D, W, H = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"]
    G = gates(case.cell) * H
    features, W_proj = _randn(rng, (N, D), dtype), _randn(rng, (D, H), dtype)
    x, Wx, Wh, W_vocab = (_randn(rng, (N, W), dtype), _randn(rng, (W, G), dtype), _randn(rng, (H, G), dtype),
                          _randn(rng, (H, V), dtype))
    h, A, S, scores = np.empty((N, H), dtype), np.empty((N, G), dtype), np.empty((N, G), dtype), np.empty((N, V), dtype)
    matmul = np.matmul

    def run():
        matmul(features, W_proj, out=h)
        for t in range(T):
            matmul(x, Wx, out=A)
            matmul(h, Wh, out=S)
            matmul(h, W_vocab, out=scores)

    return Workload("floor", "floor", run, None)
