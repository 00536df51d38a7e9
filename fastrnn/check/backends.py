"""``fastrnn check``: every backend against the NumPy oracle, on random shapes and dtypes.

Each trial draws sizes (N, T, D, H, V, M; the first trial sets all of them to 1, later ones
draw each as 1 a quarter of the time, 2-9 half of the time, 10-64 otherwise), a dtype (float32 or float64) and, per input, a
memory layout (C-ordered, Fortran-ordered, or a strided view). For every layer function it
runs the forward pass and, where there is one, the backward pass with random upstream
gradients, through ``fastrnn.layers`` on each backend and through ``fastrnn.reference``
directly, and compares every value and gradient at the dtype's tolerance
(``fastrnn._tolerances``), their dtypes and shapes, and that no input was modified.

A run is reproducible from ``seed`` and ``trials``; a failure names the trial, the shapes,
the dtype and the array that differs.
"""

import math

import numpy as np

from .. import _backend, layers, reference
from .._cells import CELLS, gates
from .._tolerances import excess

__all__ = ["LAYERS", "run", "table"]

# Layer name -> (forward, backward or None) as named in fastrnn.layers.
LAYERS = {
    "affine": ("affine_forward", "affine_backward"),
    "rnn_step": ("rnn_step_forward", "rnn_step_backward"),
    "rnn": ("rnn_forward", "rnn_backward"),
    "lstm_step": ("lstm_step_forward", "lstm_step_backward"),
    "lstm": ("lstm_forward", "lstm_backward"),
    "gru_step": ("gru_step_forward", "gru_step_backward"),
    "gru": ("gru_forward", "gru_backward"),
    "rnn_state": ("rnn_forward_state", "rnn_backward_state"),
    "lstm_state": ("lstm_forward_state", "lstm_backward_state"),
    "gru_state": ("gru_forward_state", "gru_backward_state"),
    "word_embedding": ("word_embedding_forward", "word_embedding_backward"),
    "temporal_affine": ("temporal_affine_forward", "temporal_affine_backward"),
    "sigmoid": ("sigmoid", None),
    "temporal_softmax_loss": ("temporal_softmax_loss", None),
}

_LAYOUTS = ("C", "F", "strided")

# What each layer returns, to name a differing array.
_OUT_NAMES = {
    "rnn_step": ("next_h",), "rnn": ("h",), "lstm_step": ("next_h", "next_c"), "lstm": ("h",),
    "gru_step": ("next_h",), "gru": ("h",),
    "rnn_state": ("h", "hT"), "lstm_state": ("h", "hT", "cT"), "gru_state": ("h", "hT"),
}
_GRAD_NAMES = {
    "affine": ("dx", "dw", "db"),
    "rnn_step": ("dx", "dprev_h", "dWx", "dWh", "db"),
    "rnn": ("dx", "dh0", "dWx", "dWh", "db"),
    "lstm_step": ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"),
    "lstm": ("dx", "dh0", "dWx", "dWh", "db"),
    "gru_step": ("dx", "dprev_h", "dWx", "dWh", "db", "dbhn"),
    "gru": ("dx", "dh0", "dWx", "dWh", "db", "dbhn"),
    "rnn_state": ("dx", "dh0", "dWx", "dWh", "db"),
    "lstm_state": ("dx", "dh0", "dc0", "dWx", "dWh", "db"),
    "gru_state": ("dx", "dh0", "dWx", "dWh", "db", "dbhn"),
    "word_embedding": ("dW",),
    "temporal_affine": ("dx", "dw", "db"),
}


def _dims(rng, trial):
    names = ("N", "T", "D", "H", "V", "M")
    if trial == 0:
        return dict.fromkeys(names, 1)
    def draw():
        u = rng.random()
        return 1 if u < 0.25 else int(rng.integers(2, 10)) if u < 0.75 else int(rng.integers(10, 65))

    return {k: draw() for k in names}


def _layout(a, kind):
    """``a`` with the same values, as a C-ordered, Fortran-ordered or strided array."""
    if not isinstance(a, np.ndarray) or a.ndim == 0 or kind == "C":
        return a
    if kind == "F":
        return np.asfortranarray(a)
    big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _inputs(layer, rng, dtype, d):
    """Forward arguments of ``layer`` for sizes ``d``."""
    N, T, D, H, V, M = (d[k] for k in ("N", "T", "D", "H", "V", "M"))

    def randn(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    if layer == "affine":
        rest = tuple(int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3))))
        x = randn(N, *rest)
        K = int(np.prod(rest, dtype=np.int64))
        return [x, randn(K, M), randn(M)]
    cell, _, form = layer.partition("_")
    if cell in CELLS and form in ("", "step", "state"):
        G = gates(cell) * H
        x = randn(N, D) if form == "step" else randn(N, T, D)
        args = [x, randn(N, H, scale=0.5), randn(D, G, scale=1 / math.sqrt(D)), randn(H, G, scale=1 / math.sqrt(H)),
                randn(G, scale=0.5)]
        if cell == "lstm" and form in ("step", "state"):
            args.insert(2, randn(N, H, scale=0.5))  # prev_c, c0
        if cell == "gru":
            args.append(randn(H, scale=0.5))  # bhn
        return args
    if layer == "word_embedding":
        shape = [(N,), (N, 1), (N, T)][int(rng.integers(0, 3))]
        return [rng.integers(0, V, size=shape), randn(V, D)]
    if layer == "temporal_affine":
        return [randn(N, T, D), randn(D, M), randn(M)]
    if layer == "sigmoid":
        shape = tuple(int(rng.integers(1, 6)) for _ in range(int(rng.integers(0, 4))))
        return [np.asarray(randn(*shape, scale=20.0))]
    if layer == "temporal_softmax_loss":
        mask = rng.random((N, T)) > 0.3
        if rng.random() < 0.5:
            mask = mask.astype(dtype)
        return [randn(N, T, V, scale=3.0), rng.integers(0, V, size=(N, T)), mask]
    raise ValueError(layer)


def _run(module, layer, args, dgrad_seed, dtype):
    """Forward (and backward) of ``layer`` in ``module``: {name: array} of every output and gradient."""
    forward_name, backward_name = LAYERS[layer]
    result = getattr(module, forward_name)(*args)
    if backward_name is None:
        if layer == "sigmoid":
            return {"out": result}
        loss, dx = result
        return {"loss": np.asarray(loss), "dx": dx}
    outs, cache = result[:-1], result[-1]
    rng = np.random.default_rng(dgrad_seed)
    douts = [(rng.standard_normal(o.shape)).astype(dtype) for o in outs]
    grads = getattr(module, backward_name)(*douts, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    out_names = _OUT_NAMES.get(layer, ("out",))
    grad_names = _GRAD_NAMES[layer]
    if len(outs) != len(out_names) or len(grads) != len(grad_names):
        raise TypeError(f"{forward_name}/{backward_name} returned {len(outs)} outputs and {len(grads)} gradients, "
                        f"expected {len(out_names)} and {len(grad_names)}")
    return {**dict(zip(out_names, outs)), **dict(zip(grad_names, grads))}


def _compare(got, expected, dtype):
    """(worst excess, name of the worst array, what was wrong or None)."""
    worst, worst_name = 0.0, None
    for name, e in expected.items():
        if name not in got:
            return math.inf, name, "missing"
        a = np.asarray(got[name])
        e = np.asarray(e)
        if a.shape != e.shape:
            return math.inf, name, f"shape {a.shape}, the oracle's {e.shape}"
        if a.dtype != e.dtype and name != "loss":  # the loss may come back as a Python float
            return math.inf, name, f"dtype {a.dtype}, the oracle's {e.dtype}"
        x = excess(a, e, dtype)
        if x > worst or worst_name is None:
            worst, worst_name = x, name
    return worst, worst_name, None if worst <= 1 else f"{worst:.3g}x the tolerance"


def run(backends=None, seed=0, trials=20, layers_=None):
    """Runs the check; returns {"rows": [...], "failures": [...], "ok": bool, ...}.

    ``backends`` default to every available one (``numpy`` included: it checks the
    plumbing of ``fastrnn.layers``). Unknown or unavailable names raise ValueError.
    """
    available = _backend.available_backends()
    backends = list(available) if backends is None else list(backends)
    for b in backends:
        if b not in _backend._CANDIDATES and all(p.isidentifier() for p in b.split(".")):
            try:  # a module name: registered for this check (ValueError says what it lacks)
                _backend.register_backend(b, b)
            except ImportError as exc:
                raise ValueError(f"unknown backend {b!r} (and no module of that name: {exc}); available backends: "
                                 f"{available}") from None
        _backend._resolve(b)  # ValueError listing the available ones
    if trials < 1:
        raise ValueError("trials must be at least 1")
    names = list(LAYERS) if layers_ is None else list(layers_)
    stats = {(b, layer): {"trials": 0, "passed": 0, "worst": 0.0} for b in backends for layer in names}
    failures = []
    for trial in range(trials):
        rng = np.random.default_rng([seed, trial])
        d = _dims(rng, trial)
        dtype = np.dtype([np.float32, np.float64][int(rng.integers(0, 2))])
        for layer in names:
            args = _inputs(layer, rng, dtype, d)
            dgrad_seed = int(rng.integers(2**31))
            expected = _run(reference, layer, args, dgrad_seed, dtype)
            kinds = [_LAYOUTS[int(rng.integers(0, 3))] for _ in args]
            for b in backends:
                s = stats[(b, layer)]
                if _lacks(b, layer):  # a registered backend without this (optional) layer
                    s["missing"] = True
                    continue
                s["trials"] += 1
                laid = [_layout(a, k) for a, k in zip(args, kinds)]
                before = [np.array(a, copy=True) for a in laid]
                try:
                    with _backend.use_backend(b):
                        got = _run(layers, layer, laid, dgrad_seed, dtype)
                    worst, worst_name, problem = _compare(got, expected, dtype)
                    if problem is None and not all(np.array_equal(a, c, equal_nan=True) for a, c in zip(laid, before)):
                        worst, problem = math.inf, "an input was modified"
                except Exception as exc:  # a crash is a failure like a wrong number
                    worst, worst_name, problem = math.inf, None, f"raised {type(exc).__name__}: {exc}"
                s["worst"] = max(s["worst"], worst)
                if problem is None:
                    s["passed"] += 1
                else:
                    shapes = ", ".join(str(np.shape(a)) for a in args)
                    failures.append({
                        "backend": b, "layer": layer, "trial": trial, "dtype": dtype.name, "shapes": shapes,
                        "layouts": kinds, "array": worst_name, "problem": problem,
                    })
    rows = [{"backend": b, "layer": layer, **s} for (b, layer), s in stats.items()]
    return {"seed": seed, "trials": trials, "backends": backends, "rows": rows, "failures": failures,
            "ok": not failures}


def _lacks(backend, layer):
    """Whether ``backend`` (a registered one) does not implement ``layer``."""
    module = _backend.backend_module(backend)
    return any(getattr(getattr(module, f, None), "fastrnn_missing", False) for f in LAYERS[layer] if f)


def table(result, markdown=False, max_failures=20):
    """The result as text: one row per backend and layer, then the failures."""
    from .._table import render

    rows = []
    for r in result["rows"]:
        worst = r["worst"]
        rows.append([
            r["backend"], r["layer"], r["trials"], r["passed"],
            "inf" if not math.isfinite(worst) else f"{worst:.3f}",
            "not implemented" if r.get("missing") else "ok" if r["passed"] == r["trials"] else "FAIL",
        ])
    from .._version import __version__

    out = [f"fastrnn {__version__} check: {', '.join(result['backends'])} against the NumPy oracle "
           f"(fastrnn.reference), random shapes, dtypes and layouts", ""]
    out += [render(["backend", "layer (forward + backward)", "trials", "passed", "worst err/tol", "status"], rows,
                  markdown=markdown, align="llrrrl")]
    n_fail = len(result["failures"])
    total = sum(r["trials"] for r in result["rows"])
    out.append("")
    out.append(f"seed {result['seed']}, {result['trials']} trials: {total - n_fail} of {total} comparisons passed"
               + ("" if not n_fail else f", {n_fail} FAILED"))
    out.append("err/tol: the largest |got - oracle| / (atol * max(1, max|oracle|) + rtol * |oracle|) over every "
               "value and gradient; above 1 fails.")
    for f in result["failures"][:max_failures]:
        out.append(f"FAIL {f['backend']} {f['layer']} trial {f['trial']} {f['dtype']} inputs {f['shapes']} "
                   f"layouts {','.join(f['layouts'])}: {f['array'] or ''} {f['problem']}")
    if n_fail > max_failures:
        out.append(f"... and {n_fail - max_failures} more")
    return "\n".join(out)
