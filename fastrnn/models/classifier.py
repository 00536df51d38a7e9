"""SequenceClassifier: a many-to-one recurrent classifier (sequence -> class) on ``fastrnn.layers``.

    word ids (N,T) -> embedding -> RNN/LSTM/GRU ----\
    or features (N,T,D) ----------> RNN/LSTM/GRU ----> final hidden state of each sequence -> affine -> softmax

Sequences of different lengths are padded at the end; ``mask`` (N,T) marks the real steps (a prefix
of every row). Padding after a sequence's last step cannot change its final hidden state, which is
read at its own last step.
"""

import numpy as np

from .. import layers
from . import _recurrent

__all__ = ["SequenceClassifier"]


class SequenceClassifier:
    """A many-to-one classifier: the final hidden state of each sequence -> class scores.

    Give ``vocab_size`` for sequences of word indices (an embedding of ``wordvec_dim`` comes first) or
    ``input_dim`` for sequences of feature vectors. ``cell_type`` is "rnn", "lstm" (or "gru" where the
    layer module has it); ``seed`` draws the initial weights; parameters are ``dtype``.

    ``params``: ``W_embed`` (V,W) (word inputs only), the cell's ``Wx``, ``Wh``, ``b`` (GRU: and
    ``bhn``), ``W_out`` (H,C), ``b_out`` (C,).
    """

    def __init__(self, num_classes, vocab_size=None, input_dim=None, wordvec_dim=64, hidden_dim=64,
                 cell_type="lstm", dtype=np.float32, seed=0):
        if (vocab_size is None) == (input_dim is None):
            raise ValueError("give exactly one of vocab_size (word-index inputs) and input_dim (feature inputs)")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.cell_type = _recurrent.check_cell(cell_type)
        self.num_classes = int(num_classes)
        self.vocab_size = None if vocab_size is None else int(vocab_size)
        self.input_dim = None if input_dim is None else int(input_dim)
        self.wordvec_dim = int(wordvec_dim)
        self.hidden_dim = int(hidden_dim)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        H, C = self.hidden_dim, self.num_classes
        params = {}
        if self.vocab_size is not None:
            params["W_embed"] = rng.standard_normal((self.vocab_size, self.wordvec_dim)) / 10
            D = self.wordvec_dim
        else:
            D = self.input_dim
        params.update(_recurrent.init_params(self.cell_type, D, H, rng, self.dtype))
        params["W_out"] = rng.standard_normal((H, C)) / np.sqrt(H)
        params["b_out"] = np.zeros(C)
        self.params = {k: np.asarray(v, dtype=self.dtype) for k, v in params.items()}

    def config(self):
        return {"model": "SequenceClassifier", "num_classes": self.num_classes, "vocab_size": self.vocab_size,
                "input_dim": self.input_dim, "wordvec_dim": self.wordvec_dim, "hidden_dim": self.hidden_dim,
                "cell_type": self.cell_type, "dtype": self.dtype.name}

    # ------------------------------------------------------------------ shared forward

    def _lengths(self, x, mask):
        N, T = x.shape[0], x.shape[1]
        if mask is None:
            return np.full(N, T, dtype=np.intp)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (N, T):
            raise ValueError(f"mask must have shape (N, T) = {(N, T)}, got {mask.shape}")
        lengths = mask.sum(axis=1)
        if not mask[:, 0].all():
            bad = int(np.flatnonzero(~mask[:, 0])[0])
            raise ValueError(f"mask row {bad} has no real step: every sequence needs at least one")
        prefix = np.arange(T)[None, :] < lengths[:, None]
        if not np.array_equal(mask, prefix):
            bad = int(np.flatnonzero((mask != prefix).any(axis=1))[0])
            raise ValueError(f"mask row {bad} is not a prefix (True for the real steps, then False for the padding)")
        return lengths.astype(np.intp)

    def _inputs(self, x):
        if self.vocab_size is not None:
            x = np.asarray(x)
            if x.ndim != 2:
                raise ValueError(f"x must be word indices of shape (N, T), got shape {x.shape}")
            return layers.word_embedding_forward(x, self.params["W_embed"])
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(f"x must have shape (N, T, D) with D = {self.input_dim}, got {x.shape}")
        return x, None

    def _scores(self, x, mask):
        inputs, embed_cache = self._inputs(x)
        N, T = inputs.shape[:2]
        if N == 0 or T == 0:
            raise ValueError(f"x must hold at least one sequence of at least one step, got shape {np.shape(x)}")
        lengths = self._lengths(inputs, mask)
        h0 = np.zeros((N, self.hidden_dim), dtype=self.dtype)
        h, cell_cache = _recurrent.forward(self.cell_type, inputs, h0, self.params)
        rows = np.arange(N)
        final = h[rows, lengths - 1]
        scores, out_cache = layers.affine_forward(final, self.params["W_out"], self.params["b_out"])
        return scores, (embed_cache, cell_cache, out_cache, lengths, h.shape)

    # ------------------------------------------------------------------ public

    def loss(self, x, y, mask=None):
        """Mean softmax cross-entropy over the N sequences, and its gradients: ``(loss, grads)``.

        ``x``: word indices (N,T) or features (N,T,D); ``y``: classes (N,) in [0, C); ``mask`` (N,T):
        True at the real steps (default: all).
        """
        scores, (embed_cache, cell_cache, out_cache, lengths, h_shape) = self._scores(x, mask)
        N = scores.shape[0]
        y = np.asarray(y)
        if y.shape != (N,):
            raise ValueError(f"y must have shape (N,) = {(N,)}, got {y.shape}")
        # The softmax loss of fastrnn.layers over a sequence of one step (it divides by N: the mean).
        loss, dscores = layers.temporal_softmax_loss(scores[:, None, :], y[:, None], np.ones((N, 1), dtype=bool))
        grads = {}
        dfinal, grads["W_out"], grads["b_out"] = layers.affine_backward(dscores[:, 0, :], out_cache)
        dh = np.zeros(h_shape, dtype=dfinal.dtype)
        dh[np.arange(N), lengths - 1] = dfinal
        dinputs, _, cell_grads = _recurrent.backward(self.cell_type, dh, cell_cache)
        grads.update(cell_grads)
        if embed_cache is not None:
            grads["W_embed"] = layers.word_embedding_backward(dinputs, embed_cache)
        return loss, {k: grads[k] for k in self.params}

    def scores(self, x, mask=None):
        """Class scores (N, C) (unnormalised log-probabilities)."""
        return self._scores(x, mask)[0]

    def predict(self, x, mask=None):
        """The most likely class of each sequence, (N,) int."""
        return self.scores(x, mask).argmax(axis=1)

    def accuracy(self, x, y, mask=None, batch_size=512):
        """The fraction of sequences classified correctly, in batches of ``batch_size``."""
        y = np.asarray(y)
        correct = 0
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            correct += int((self.predict(x[part], None if mask is None else mask[part]) == y[part]).sum())
        return correct / len(y)
