"""Backend registry: which implementation of the layer functions is active.

A backend is a module that defines the layer functions with the cs231n signatures and
returns.  ``fastrnn.layers`` validates inputs and hands the backend only contiguous
float32/float64 arrays of one dtype.  fastrnn's own backends define every name in
``LAYER_FUNCTIONS``.  A third-party backend (``register_backend``) must define at least
``REQUIRED_FUNCTIONS``, the cs231n contract; calling a layer function it does not define
raises NotImplementedError naming the backend and the function (never a silent fallback
to another backend).

Backends are imported lazily, the first time they are asked for, so that
``import fastrnn`` stays cheap (Numba's import alone costs a few hundred
milliseconds).  To add a backend, add one line to ``_CANDIDATES``.

Which backend is active is decided per thread and per context: ``use_backend`` sets a
context variable for its block only (another thread, or another asyncio task, keeps its
own choice), and ``set_backend`` sets the process-wide default that every context without
a ``use_backend`` block of its own follows.
"""

import contextlib
import contextvars
import importlib
import os

# What a third-party backend must define: the layer functions of cs231n's rnn_layers.py
# (with the affine layer, in it from 2020 on). Everything else in LAYER_FUNCTIONS is optional.
REQUIRED_FUNCTIONS = (
    "affine_forward",
    "affine_backward",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "word_embedding_forward",
    "word_embedding_backward",
    "sigmoid",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "temporal_softmax_loss",
)

# Every layer function a backend may define: the required ones, then fastrnn's additions.
LAYER_FUNCTIONS = REQUIRED_FUNCTIONS + (
    "gru_step_forward",
    "gru_step_backward",
    "gru_forward",
    "gru_backward",
    # the sequence layers that take and return the recurrent state (truncated BPTT, stacking)
    "rnn_forward_state",
    "rnn_backward_state",
    "lstm_forward_state",
    "lstm_backward_state",
    "gru_forward_state",
    "gru_backward_state",
)

# name -> (module, how to get it when it is missing); in order of preference for the default.
_CANDIDATES = {
    "cython": ("fastrnn._cython.backend", "build the extension: pip install -e . (needs gcc, Cython and numpy)"),
    "numba": ("fastrnn._numba.backend", "pip install numba"),
    "numpy": ("fastrnn.reference", "it ships with fastrnn"),
}

ENV_VAR = "FASTRNN_BACKEND"

_modules = {}  # name -> imported module, or the ImportError that stopped it
_default = None  # the process-wide default: set_backend's choice, else resolved on first use
_chosen = contextvars.ContextVar("fastrnn_backend", default=None)  # use_backend's choice in this context


def _load(name):
    if name not in _modules:
        try:
            module = importlib.import_module(_CANDIDATES[name][0])
            missing = [f for f in LAYER_FUNCTIONS if not callable(getattr(module, f, None))]
            if missing:
                raise ImportError(f"backend {name!r} does not define {', '.join(missing)}")
            _modules[name] = module
        except Exception as exc:  # any failure to import (a half-built extension, say) makes it unavailable
            _modules[name] = exc if isinstance(exc, ImportError) else ImportError(f"{type(exc).__name__}: {exc}")
    return _modules[name]


_BUILT_IN = tuple(_CANDIDATES)


def _missing(backend, function):
    """A stand-in for a layer function a registered backend does not define."""
    def missing(*args, **kwargs):
        raise NotImplementedError(
            f"backend {backend!r} does not implement {function}; run it on another backend, e.g. "
            f"`with fastrnn.use_backend({_BUILT_IN[-1]!r}): ...` (available backends: {available_backends()})")
    missing.__name__ = function
    missing.fastrnn_missing = True
    return missing


class _Registered:
    """A registered third-party backend as ``fastrnn.layers`` sees it: the module's layer functions,
    looked up on each call (so later changes to the module show), and a NotImplementedError
    stand-in for each layer function it does not define."""

    def __init__(self, name, module):
        self.name = name
        self.module = module
        self.__name__ = getattr(module, "__name__", name)

    def __getattr__(self, attr):
        f = getattr(self.module, attr, None)
        if attr in LAYER_FUNCTIONS and not callable(f):
            return _missing(self.name, attr)
        if f is None:
            raise AttributeError(f"backend {self.name!r} has no attribute {attr!r}")
        return f

    def __repr__(self):
        return f"<fastrnn backend {self.name!r}: {self.__name__}>"


def register_backend(name, module):
    """Makes ``module`` (a module, or the dotted name of one) available as backend ``name``.

    The module must define every function of ``REQUIRED_FUNCTIONS`` (the cs231n layer contract),
    with cs231n's signatures and returns; ValueError names what is missing or not callable. It
    may define the other ``LAYER_FUNCTIONS`` (GRU, ...); calling one it lacks through
    ``fastrnn.layers`` raises NotImplementedError. Then ``set_backend(name)``,
    ``use_backend(name)`` and ``fastrnn check --backends name`` work as for fastrnn's own
    backends: ``fastrnn.layers`` validates the inputs and hands the module contiguous float32 or
    float64 arrays; a forward's cache is the module's own, handed back to its backward. A
    registered backend is never the default. Registering a name again replaces its module; the
    names of fastrnn's own backends cannot be taken. Returns ``name``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a backend name must be a non-empty string, got {name!r}")
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is one of fastrnn's own backends {list(_BUILT_IN)}; register under another name")
    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"cannot register backend {name!r}: {exc}") from exc
    missing = [f for f in REQUIRED_FUNCTIONS if not hasattr(module, f)]
    uncallable = [f for f in REQUIRED_FUNCTIONS if hasattr(module, f) and not callable(getattr(module, f))]
    if missing or uncallable:
        what = getattr(module, "__name__", repr(module))
        problems = ([f"it does not define {', '.join(missing)}"] if missing else []) + \
            [f"{f} is not callable (it is {type(getattr(module, f)).__name__})" for f in uncallable]
        raise ValueError(f"cannot register backend {name!r} ({what}): {'; '.join(problems)}. A backend must define "
                         f"every function of the cs231n layer contract: {', '.join(REQUIRED_FUNCTIONS)}")
    _CANDIDATES[name] = (None, "register it with fastrnn.register_backend(name, module)")
    _modules[name] = _Registered(name, module)
    return name


def available_backends():
    """Names of the backends that import on this install, fastest first, then registered ones."""
    return [name for name in _CANDIDATES if not isinstance(_load(name), ImportError)]


def _resolve(name):
    if not isinstance(name, str) or name not in _CANDIDATES:
        raise ValueError(f"unknown backend {name!r}; available backends: {available_backends()}")
    module = _load(name)
    if isinstance(module, ImportError):
        raise ValueError(
            f"backend {name!r} is not available ({module}); to get it: {_CANDIDATES[name][1]}; "
            f"available backends: {available_backends()}"
        )
    return name


def _default_name():
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested:
        return _resolve(requested)
    for name in _CANDIDATES:
        if not isinstance(_load(name), ImportError):
            return name
    raise AssertionError("the numpy backend always imports")


def get_backend():
    """Name of the backend active here: this context's ``use_backend`` block's, else the default."""
    global _default
    name = _chosen.get()
    if name is not None:
        return name
    if _default is None:
        _default = _default_name()
    return _default


def set_backend(name):
    """Makes ``name`` ("numpy", "numba", "cython" or a registered one) the default backend of the process.

    It applies everywhere except inside ``use_backend`` blocks, which keep their own choice.
    """
    global _default
    _default = _resolve(name)


@contextlib.contextmanager
def use_backend(name):
    """Context manager: runs its block with ``name`` as the active backend.

    Only this thread (or asyncio task) sees the change; other threads keep theirs.
    """
    token = _chosen.set(_resolve(name))
    try:
        yield name
    finally:
        _chosen.reset(token)


def backend_module(name=None):
    """The module implementing backend ``name`` (the active one by default)."""
    return _load(_resolve(name) if name is not None else get_backend())
