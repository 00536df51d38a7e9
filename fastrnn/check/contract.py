"""The layer contract as a table: what every function takes and returns, for ``fastrnn check --module``.

One ``Function`` entry per function. A forward entry names its arguments (with their shapes
in symbols N, T, D, H, V, M, ... and how random values for them are drawn) and its outputs;
a backward entry names its forward and the inputs of that forward it returns gradients
for. Everything else — random inputs, upstream gradients, which outputs to compare, the
numerical gradient check — follows from that, so adding a function is one entry here
(and, when the notebooks check it, one line in ``golden``).

An entry is checked only when ``fastrnn.reference`` (the oracle) defines its function; the
GRU entries switch on by themselves once the oracle has GRU.

``family`` groups the functions for ``--only``. A module must define every function of a
*required* family (the cs231n contract in every year's ``rnn_layers.py``); the functions of
an *optional* family (``affine``, in ``rnn_layers.py`` only from 2020 on; ``gru``, beyond
cs231n) are checked when the module defines any of them.
"""

import math
from dataclasses import dataclass
from typing import Optional, Tuple

from .. import reference

__all__ = ["Arg", "Function", "FUNCTIONS", "FAMILIES", "OPTIONAL_FAMILIES", "PARITY_SIZES", "by_name", "select",
           "shape_of", "draw"]

FAN_IN = "fan_in"  # scale 1/sqrt(rows): activations neither linear nor saturated


@dataclass(frozen=True)
class Arg:
    """One argument: its name, its shape ("N,T,D", "4*H", "A*B,M", "" for a scalar) and its kind.

    ``kind`` is "value" (random normal times ``scale``), "index" (word indices in
    [0, ``bound``)) or "mask" (booleans).
    """

    name: str
    shape: str
    kind: str = "value"
    scale: object = 1.0  # a number or FAN_IN, for the random-shape parity inputs
    bound: str = "V"  # for "index": the symbol of the exclusive upper bound


@dataclass(frozen=True)
class Function:
    """One function of the contract.

    Forward (``forward`` is None): ``args``, ``outputs`` (array outputs, in order), and
    ``cache`` (True when a cache follows the outputs). A loss returns ``("loss", "dx")``
    with ``loss_grad_of`` naming the argument ``dx`` is the gradient of.

    Backward: ``forward`` (the name of its forward entry) and ``grads``: the names of the
    forward's arguments it returns gradients for, in order ("x" -> "dx"). It takes one
    upstream gradient per output of the forward ("next_h" -> "dnext_h"), then the cache.
    """

    name: str
    family: str
    args: Tuple[Arg, ...] = ()
    outputs: Tuple[str, ...] = ()
    cache: bool = True
    forward: Optional[str] = None
    grads: Tuple[str, ...] = ()
    loss_grad_of: Optional[str] = None

    @property
    def is_backward(self):
        return self.forward is not None

    @property
    def grad_names(self):
        return tuple("d" + g for g in self.grads)


def _value(name, shape, scale=1.0):
    return Arg(name, shape, "value", scale)


def _cell(gates, step, with_c=False, extra=()):
    """Arguments of an RNN/LSTM/GRU step or sequence: x, the state(s), Wx, Wh, b (and extras)."""
    G = "H" if gates == 1 else f"{gates}*H"
    x = _value("x", "N,D" if step else "N,T,D")
    states = (_value("prev_h", "N,H", 0.5),) if step else (_value("h0", "N,H", 0.5),)
    if with_c:
        states += (_value("prev_c", "N,H", 0.5),)
    return (x, *states, _value("Wx", f"D,{G}", FAN_IN), _value("Wh", f"H,{G}", FAN_IN), _value("b", G, 0.5), *extra)


def _pair(name, family, args, outputs, grads=None):
    """A forward entry ``{name}_forward`` and its backward ``{name}_backward``."""
    grads = tuple(a.name for a in args if a.kind == "value") if grads is None else grads
    forward = Function(f"{name}_forward", family, args=args, outputs=outputs)
    return forward, Function(f"{name}_backward", family, forward=forward.name, grads=grads)


FUNCTIONS = (
    *_pair("affine", "affine", (_value("x", "N,A,B"), _value("w", "A*B,M", FAN_IN), _value("b", "M", 0.5)), ("out",)),
    *_pair("rnn_step", "rnn", _cell(1, step=True), ("next_h",)),
    *_pair("rnn", "rnn", _cell(1, step=False), ("h",)),
    *_pair("word_embedding", "word_embedding", (Arg("x", "N,T", "index"), _value("W", "V,D")), ("out",), ("W",)),
    Function("sigmoid", "sigmoid", args=(_value("x", "N,H", 10.0),), outputs=("out",), cache=False),
    *_pair("lstm_step", "lstm", _cell(4, step=True, with_c=True), ("next_h", "next_c")),
    *_pair("lstm", "lstm", _cell(4, step=False), ("h",)),
    *_pair("temporal_affine", "temporal_affine",
           (_value("x", "N,T,D"), _value("w", "D,M", FAN_IN), _value("b", "M", 0.5)), ("out",)),
    Function("temporal_softmax_loss", "temporal_softmax_loss",
             args=(_value("x", "N,T,V", 3.0), Arg("y", "N,T", "index"), Arg("mask", "N,T", "mask")),
             outputs=("loss", "dx"), cache=False, loss_grad_of="x"),
    *_pair("gru_step", "gru", _cell(3, step=True, extra=(_value("bhn", "H", 0.5),)), ("next_h",)),
    *_pair("gru", "gru", _cell(3, step=False, extra=(_value("bhn", "H", 0.5),)), ("h",)),
)

OPTIONAL_FAMILIES = ("affine", "gru")
FAMILIES = tuple(dict.fromkeys(f.family for f in FUNCTIONS))

# Sizes of the random-shape parity checks: every size distinct in most of them, so that a
# transposed or swapped axis shows; every size 1 at once; N, T and H set to 1 one at a time
# (a batch of one, a sequence of one step, one hidden unit); and the notebook's model sizes,
# for longer sums and sequences.
PARITY_SIZES = (
    dict(N=1, T=1, D=1, H=1, V=1, M=1, A=1, B=1),
    dict(N=2, T=3, D=4, H=5, V=6, M=7, A=2, B=3),
    dict(N=1, T=4, D=3, H=5, V=7, M=2, A=3, B=1),
    dict(N=3, T=1, D=4, H=2, V=5, M=3, A=1, B=4),
    dict(N=4, T=3, D=2, H=1, V=3, M=1, A=2, B=2),
    dict(N=3, T=5, D=6, H=3, V=9, M=4, A=1, B=1),
    dict(N=10, T=13, D=30, H=40, V=50, M=20, A=5, B=6),
)


def by_name(name):
    for f in FUNCTIONS:
        if f.name == name:
            return f
    raise KeyError(name)


def available():
    """The entries whose function the oracle defines."""
    return tuple(f for f in FUNCTIONS if callable(getattr(reference, f.name, None)))


def select(only=None):
    """The entries to check: all the oracle has, or those of the families, layers or functions in ``only``.

    Raises ValueError naming an unknown item.
    """
    entries = available()
    if not only:
        return entries

    def names(f):  # what selects f: its family, its name, its layer ("rnn_step" for rnn_step_forward)
        return {f.family, f.name, f.name.rsplit("_", 1)[0] if f.name.endswith(("_forward", "_backward")) else f.name}

    known = set().union(*(names(f) for f in entries))
    unknown = [o for o in only if o not in known]
    if unknown:
        raise ValueError(f"--only: unknown {', '.join(unknown)}; choose from the families "
                         f"{', '.join(sorted({f.family for f in entries}))}, layers such as rnn_step, or function "
                         f"names such as rnn_step_backward")
    return tuple(f for f in entries if names(f) & set(only))


def _size(expr, sizes):
    """Evaluates one shape entry: "H", "4*H", "A*B" or "3"."""
    total = 1
    for term in expr.split("*"):
        term = term.strip()
        total *= int(term) if term.isdigit() else sizes[term]
    return total


def shape_of(arg, sizes):
    """The shape of ``arg`` for the symbol values ``sizes``."""
    if not arg.shape:
        return ()
    return tuple(_size(e, sizes) for e in arg.shape.split(","))


def draw(arg, sizes, rng, notebook=False):
    """Random values for ``arg``.

    ``notebook=True`` draws as the cs231n notebooks do from a ``RandomState`` (unscaled
    ``randn``, ``randint(V, size=...)``, ``rand() > 0.5``); otherwise values are scaled
    (``arg.scale``) so that activations are neither linear nor saturated, and word indices
    repeat (their gradient rows must add up).
    """
    shape = shape_of(arg, sizes)
    if arg.kind == "index":
        bound = sizes[arg.bound]
        if notebook:
            return rng.randint(bound, size=shape)
        idx = rng.randint(bound, size=shape)
        if idx.size >= 2:
            idx.flat[1] = idx.flat[0]  # at least one repeated word
        return idx
    if arg.kind == "mask":
        if notebook:
            return rng.rand(*shape) > 0.5
        mask = rng.rand(*shape) > 0.3
        mask.flat[0] = True  # at least one counted position
        return mask
    if notebook:
        return rng.randn(*shape)
    scale = 1 / math.sqrt(shape[0]) if arg.scale == FAN_IN else float(arg.scale)
    return scale * rng.randn(*shape)


def oracle(name):
    """The oracle's function ``name``."""
    return getattr(reference, name)


def _check_table():
    """The table is consistent with the oracle's signatures (run by the tests)."""
    import inspect

    for f in available():
        if f.is_backward:
            fwd = by_name(f.forward)
            assert set(f.grads) <= {a.name for a in fwd.args}, f.name
        else:
            params = list(inspect.signature(oracle(f.name)).parameters)
            assert params[:len(f.args)] == [a.name for a in f.args], (f.name, params)
    return True

