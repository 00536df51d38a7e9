"""Training: the trainer, update rules, clipping, checkpoints, metrics, and cs231n's solver.

    trainer     Trainer, one training loop for every model, and the Task interface it trains
    tasks       ClassifyTask, CharLMTask, CaptionTask: a model and its data as the trainer sees them
    optim       cs231n's update rules (sgd, sgd_momentum, rmsprop, adam)
    clip        gradient clipping by value and by global norm
    checkpoint  HDF5 checkpoints, written atomically, that resume bit-identically
    metrics     cross-entropy, bits per character, corpus BLEU-1..4
    logs        the JSON log and the PNG learning curve
    solver      CaptioningSolver, cs231n's training loop for CaptioningRNN, on top of the trainer
    run         what `fastrnn train` runs: the three tasks with their defaults
"""

from . import checkpoint, clip, metrics, optim
from .checkpoint import CheckpointError
from .solver import CaptioningSolver
from .trainer import Task, Trainer

__all__ = ["optim", "clip", "checkpoint", "metrics", "CheckpointError", "CaptioningSolver", "Task", "Trainer"]
