"""Training: update rules and the solver.

    optim       cs231n's update rules (sgd, sgd_momentum, rmsprop, adam)
    solver      CaptioningSolver, cs231n's training loop for CaptioningRNN
"""

from . import optim
from .solver import CaptioningSolver

__all__ = ["optim", "CaptioningSolver"]
