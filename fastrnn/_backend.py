"""Backend registry: which implementation of the layer functions is active.

A backend is a module that defines every name in ``LAYER_FUNCTIONS`` with the
cs231n signatures and returns.  ``fastrnn.layers`` validates inputs and hands
the backend only contiguous float32/float64 arrays of one dtype.

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

LAYER_FUNCTIONS = (
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


def available_backends():
    """Names of the backends that import on this install, fastest first."""
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
    """Makes ``name`` ("numpy", "numba" or "cython") the default backend of the process.

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
