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


class CharLMTask(Task):
    """Truncated BPTT over ``batch_size`` parallel streams of the training text, ``seq_len`` characters a step.

    An epoch cuts the training text, from a random offset in [0, seq_len) (drawn from the trainer's
    generator: the plan), into ``batch_size`` contiguous streams and walks them ``seq_len`` characters at a
    time; the hidden (and cell) state carries from each chunk to the next one of the same stream and
    starts from zeros every epoch. Validation: bits per character over the whole validation text, read
    as ``batch_size`` streams with the state carried the same way.
    """

    unit = "chars"
    metric = "val_bits_per_char"
    loss_name = "cross-entropy (nats/char)"

    def __init__(self, model, corpus, batch_size=32, seq_len=64, eval_chunk=256):
        self.model = model
        self.corpus_name = corpus["name"]
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.eval_chunk = int(eval_chunk)
        if self.batch_size < 1 or self.seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be at least 1, got {batch_size} and {seq_len}")
        self.train_ids = model.vocab.encode(corpus["train_text"])
        self.val_ids = model.vocab.encode(corpus["val_text"])
        need = self.batch_size * self.seq_len * 2 + 1
        if len(self.train_ids) < need:
            raise ValueError(f"the training text has {len(self.train_ids)} characters; batch_size {self.batch_size} "
                             f"x seq_len {self.seq_len} needs at least {need}")
        if len(self.val_ids) < 2:
            raise ValueError("the validation text needs at least 2 characters")
        self.reset_carry()

    def _streams(self, offset):
        S = (len(self.train_ids) - 1 - offset) // self.batch_size
        x = self.train_ids[offset:offset + self.batch_size * S].reshape(self.batch_size, S)
        y = self.train_ids[offset + 1:offset + 1 + self.batch_size * S].reshape(self.batch_size, S)
        return x, y

    def epoch_plan(self, rng):
        return np.array([rng.integers(self.seq_len)], dtype=np.int64)

    def num_steps(self, plan):
        S = (len(self.train_ids) - 1 - int(plan[0])) // self.batch_size
        return S // self.seq_len

    def epoch_items(self, plan):
        return self.num_steps(plan) * self.batch_size * self.seq_len

    def items_before(self, plan, index):
        return index * self.batch_size * self.seq_len

    def step(self, plan, index):
        x, y = self._streams(int(plan[0]))
        cols = slice(index * self.seq_len, (index + 1) * self.seq_len)
        loss, grads, self.state = self.model.loss(x[:, cols], y[:, cols], self.state)
        return loss, grads, self.batch_size * self.seq_len

    def reset_carry(self):
        self.state = self.model.initial_state(self.batch_size)

    def get_carry(self):
        h, c = self.state
        return {"h": h} if c is None else {"h": h, "c": c}

    def set_carry(self, carry):
        self.state = (carry["h"], carry.get("c"))

    def evaluate(self):
        ids = self.val_ids
        N = min(self.batch_size, len(ids) - 1)
        S = (len(ids) - 1) // N
        x = ids[:N * S].reshape(N, S)
        y = ids[1:N * S + 1].reshape(N, S)
        state, total = None, 0.0
        for start in range(0, S, self.eval_chunk):
            nats, state = self.model.nats(x[:, start:start + self.eval_chunk], y[:, start:start + self.eval_chunk],
                                          state)
            total += nats
        per_char = total / (N * S)
        return {"val_bits_per_char": metrics.bits_per_char(per_char), "val_loss": per_char}

    def config(self):
        return {**self.model.config(), "dataset": self.corpus_name, "batch_size": self.batch_size,
                "seq_len": self.seq_len}


def _caption_words(row, idx_to_word):
    """A caption's words without <START>, <END> and <NULL> (what BLEU compares)."""
    return [w for w in decode_captions(row, idx_to_word).split() if w not in ("<START>", "<END>", "<NULL>")]


class CaptionTask(Task):
    """CaptioningRNN on COCO captions; validation loss and corpus BLEU-1..4 on the validation split.

    ``sampling="epoch"``: every epoch visits each training caption once, in a random order drawn from
    the trainer's generator. ``sampling="cs231n"``: cs231n's solver, ``len // batch_size`` minibatches an
    epoch, each drawn with replacement from NumPy's global random state (``sample_coco_minibatch``).

    Validation (when the data has a ``val`` split and ``validate``): the loss on the first
    ``val_captions`` validation captions, and BLEU of the captions generated for the first
    ``bleu_images`` validation images (greedy, or beam search of ``beam_size``) against all of each
    image's reference captions.
    """

    unit = "captions"
    metric = "val_bleu4"
    loss_name = "cross-entropy (per caption)"

    def __init__(self, model, data, batch_size=100, sampling="epoch", validate=True, val_captions=1000,
                 bleu_images=500, beam_size=1, max_length=30):
        if sampling not in ("epoch", "cs231n"):
            raise ValueError(f'sampling must be "epoch" or "cs231n", got {sampling!r}')
        self.model = model
        self.data = data
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sampling = sampling
        self.uses_global_rng = sampling == "cs231n"
        self.validate = validate and "val_captions" in data and len(data["val_captions"]) > 0
        self.metric = "val_bleu4" if self.validate else None
        self.val_captions = int(val_captions)
        self.bleu_images = int(bleu_images)
        self.beam_size = int(beam_size)
        self.max_length = int(max_length)
        self.num_train = data["train_captions"].shape[0]

    def epoch_plan(self, rng):
        if self.sampling == "cs231n":
            return np.zeros(0, dtype=np.int64)
        return rng.permutation(self.num_train)

    def num_steps(self, plan):
        if self.sampling == "cs231n":
            return max(self.num_train // self.batch_size, 1)
        return math.ceil(self.num_train / self.batch_size)

    def epoch_items(self, plan):
        if self.sampling == "cs231n":
            return self.num_steps(plan) * self.batch_size
        return self.num_train

    def items_before(self, plan, index):
        return min(index * self.batch_size, self.epoch_items(plan))

    def step(self, plan, index):
        if self.sampling == "cs231n":
            captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size, split="train")
        else:
            idx = plan[index * self.batch_size:(index + 1) * self.batch_size]
            captions = self.data["train_captions"][idx]
            features = self.data["train_features"][self.data["train_image_idxs"][idx]]
        loss, grads = self.model.loss(features, captions)
        return loss, grads, len(captions)

    def generate(self, features):
        if self.beam_size > 1:
            return self.model.beam_search(features, beam_size=self.beam_size, max_length=self.max_length)
        return self.model.sample(features, max_length=self.max_length)

    def bleu(self, split="val", images=None):
        """Corpus BLEU-1..4 of the captions generated for ``split``'s first ``images`` images."""
        data, idx_to_word = self.data, self.data["idx_to_word"]
        image_idxs = np.asarray(data[f"{split}_image_idxs"])
        images = np.unique(image_idxs)[:self.bleu_images if images is None else images]
        references = [[_caption_words(row, idx_to_word) for row in data[f"{split}_captions"][image_idxs == i]]
                      for i in images]
        hypotheses = []
        for start in range(0, len(images), 100):
            generated = self.generate(data[f"{split}_features"][images[start:start + 100]])
            hypotheses += [_caption_words(row, idx_to_word) for row in generated]
        return metrics.corpus_bleu(references, hypotheses)

    def evaluate(self):
        if not self.validate:
            return {}
        data = self.data
        n = min(self.val_captions, len(data["val_captions"]))
        total = 0.0
        for start in range(0, n, 500):
            stop = min(start + 500, n)
            captions = data["val_captions"][start:stop]
            features = data["val_features"][data["val_image_idxs"][start:stop]]
            total += float(self.model.loss(features, captions)[0]) * (stop - start)
        bleu = self.bleu()
        return {"val_loss": total / n, **{f"val_bleu{k}": bleu[f"bleu{k}"] for k in range(1, 5)}}

    def config(self):
        m = self.model
        return {"model": "CaptioningRNN", "cell_type": m.cell_type, "vocab_size": len(m.word_to_idx),
                "input_dim": int(m.params["W_proj"].shape[0]), "wordvec_dim": int(m.params["W_embed"].shape[1]),
                "hidden_dim": int(m.params["W_proj"].shape[1]), "dtype": np.dtype(m.dtype).name,
                "batch_size": self.batch_size, "sampling": self.sampling, "beam_size": self.beam_size}
