"""fastrnn: the cs231n assignment-3 RNN stack with compiled time-step loops.

    import fastrnn.layers as rnn_layers        # drop-in for cs231n's rnn_layers
    fastrnn.set_backend("numba")               # or "cython", or "numpy" (the oracle)
    fastrnn.set_workspace_limit(64)            # MiB of scratch each thread may keep (default 256)
    fastrnn.release_workspace()                # free every thread's kept scratch now
    with fastrnn.packed_weights(Wx, Wh, W_vocab):  # a sampling loop of steps: weights packed once
        ...

See README.md for a tour and the measured speed.
"""

import sys as _sys

from . import gradcheck, layers, reference
from ._backend import available_backends, get_backend, register_backend, set_backend, use_backend
from ._packing import packed_weights
from ._version import __version__
from ._workspace import get_workspace_limit, release_workspace, set_workspace_limit, workspace_info
from .data import coco
from .models import CaptioningRNN, captioning
from .train import CaptioningSolver, optim, solver

# The modules' paths before the layout by concern keep working (``import fastrnn.optim``,
# ``from fastrnn.coco import load_coco_data``, ...): each old path names the moved module itself.
model = captioning
for _old, _module in {"optim": optim, "coco": coco, "model": model, "solver": solver}.items():
    _sys.modules[f"{__name__}.{_old}"] = _module
del _old, _module, captioning

__all__ = [
    "__version__",
    "available_backends",
    "get_backend",
    "register_backend",
    "set_backend",
    "use_backend",
    "set_workspace_limit",
    "get_workspace_limit",
    "release_workspace",
    "workspace_info",
    "packed_weights",
    "layers",
    "reference",
    "CaptioningRNN",
    "CaptioningSolver",
    "optim",
    "coco",
    "gradcheck",
]
