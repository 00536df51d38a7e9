"""The canonical problem sizes, defined once: ``fastrnn bench`` and ``benchmarks/`` both use these.

A sequence size is (N, T, D, H): batch, time steps, input dimension, hidden dimension.
The captioning configuration is cs231n's COCO model with a 1004-word vocabulary.
"""

from typing import NamedTuple

from .._cells import gates  # noqa: F401  (a cell fact, defined in fastrnn._cells; kept importable from here)

__all__ = ["Size", "SIZES", "DEFAULT_BENCH_SIZES", "CAPTIONING", "CAPTIONING_BATCHES", "gates"]


class Size(NamedTuple):
    N: int  # batch
    T: int  # time steps
    D: int  # input dimension
    H: int  # hidden dimension


SIZES = {
    "tiny": Size(10, 13, 30, 40),  # cs231n's own test size: all Python overhead
    "small": Size(25, 16, 256, 512),  # the captioning model's cell at batch 25
    "medium": Size(100, 16, 256, 512),  # ... and at batch 100
    "large": Size(64, 64, 512, 1024),  # GEMM-bound
}

# What ``fastrnn bench`` runs without --sizes, chosen so a default run (with the model and sampling
# at both batches) takes two to three minutes on 2 idle cores (98 s measured on the Xeon, 156 s on
# the Zen 4 with the harness's shorter visits, fastrnn.bench.harness): "medium" would add about
# as much again, and "large" takes minutes on its own. ``--sizes all`` runs every one.
DEFAULT_BENCH_SIZES = ("tiny", "small")

# cs231n's captioning model on COCO: V words, image features of input_dim, T caption steps.
CAPTIONING = dict(vocab_size=1004, input_dim=512, wordvec_dim=256, hidden_dim=512, T=16)
CAPTIONING_BATCHES = (25, 100)

