"""Tasks: a model and its data as the trainer sees them (see ``fastrnn.train.trainer.Task``).

    ClassifyTask    SequenceClassifier on a labelled sequence set (fastrnn.data.sequences)
    CharLMTask      CharLM on a text corpus: truncated BPTT over parallel streams, state carried
    CaptionTask     CaptioningRNN on the COCO captioning data (fastrnn.data.coco)
"""

import math

import numpy as np

from ..data.coco import decode_captions, sample_coco_minibatch
from . import metrics
from .trainer import Task

__all__ = ["ClassifyTask", "CharLMTask", "CaptionTask"]


class ClassifyTask(Task):
    """Minibatches of a shuffled training split; accuracy and loss on the test split after each epoch."""

    unit = "sequences"
    metric = "test_accuracy"
    loss_name = "cross-entropy"

    def __init__(self, model, data, batch_size=32):
        self.model = model
        self.data = data
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.num_train = len(data["train_y"])

    def _batch(self, split, idx):
        x, mask = self.data[f"{split}_x"][idx], self.data[f"{split}_mask"]
        if mask is not None:  # drop the padding columns no sequence of this batch needs
            mask = mask[idx]
            width = int(mask.sum(axis=1).max())
            x, mask = x[:, :width], mask[:, :width]
        return x, mask, self.data[f"{split}_y"][idx]

    def epoch_plan(self, rng):
        return rng.permutation(self.num_train)

    def num_steps(self, plan):
        return math.ceil(len(plan) / self.batch_size)

    def epoch_items(self, plan):
        return len(plan)

    def items_before(self, plan, index):
        return min(index * self.batch_size, len(plan))

    def step(self, plan, index):
        idx = plan[index * self.batch_size:(index + 1) * self.batch_size]
        x, mask, y = self._batch("train", idx)
        loss, grads = self.model.loss(x, y, mask)
        return loss, grads, len(idx)

    def _split_metrics(self, split):
        y = self.data[f"{split}_y"]
        correct, loss_sum = 0, 0.0
        for start in range(0, len(y), 512):
            idx = np.arange(start, min(start + 512, len(y)))
            x, mask, yb = self._batch(split, idx)
            scores = np.asarray(self.model.scores(x, mask), dtype=np.float64)
            correct += int((scores.argmax(axis=1) == yb).sum())
            loss_sum += float(metrics.cross_entropy(scores, yb)) * len(yb)
        return correct / len(y), loss_sum / len(y)

    def evaluate(self):
        train_acc, _ = self._split_metrics("train")
        test_acc, test_loss = self._split_metrics("test")
        return {"train_accuracy": train_acc, "test_accuracy": test_acc, "test_loss": test_loss}

    def config(self):
        return {**self.model.config(), "dataset": self.data["name"], "classes": list(self.data["classes"]),
                "batch_size": self.batch_size}
