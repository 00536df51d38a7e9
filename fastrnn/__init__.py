"""fastrnn: the cs231n assignment-3 RNN stack with compiled time-step loops.

    import fastrnn.layers as rnn_layers        # drop-in for cs231n's rnn_layers
    fastrnn.set_backend("numba")               # or "cython", or "numpy" (the oracle)

See README.md for a tour and the measured speed.
"""

from . import gradcheck, layers, optim, reference
from ._backend import available_backends, get_backend, set_backend, use_backend
from ._version import __version__
from .model import CaptioningRNN
from .solver import CaptioningSolver
from . import coco

__all__ = [
    "__version__",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "layers",
    "reference",
    "CaptioningRNN",
    "CaptioningSolver",
    "optim",
    "coco",
    "gradcheck",
]
