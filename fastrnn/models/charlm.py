"""CharLM: a character-level language model (min-char-rnn, batched) on ``fastrnn.layers``.

    chars (N,T) -> embedding (V,E) -> RNN/LSTM/GRU -> temporal affine (H,V) -> softmax over the next char

Training is truncated backpropagation through time: ``loss`` takes the hidden state (and the LSTM's
cell state) that the previous chunk of the same text streams ended with, and returns the state this
chunk ends with. The state is carried forward but gradients stop at the chunk boundary.
"""

import math

import numpy as np

from .. import layers
from . import _recurrent

__all__ = ["CharLM"]


class CharLM:
    """A character language model over the characters ``chars`` (a sequence of distinct characters).

    ``embed_dim`` E, ``hidden_dim`` H, ``cell_type`` ("rnn", "lstm", or "gru" where the layer module
    has it), ``dtype`` of the parameters, ``seed`` of the initial weights.

    ``params``: ``W_embed`` (V,E), the cell's ``Wx``, ``Wh``, ``b`` (GRU: and ``bhn``), ``W_vocab`` (H,V),
    ``b_vocab`` (V,).
    """

    def __init__(self, chars, embed_dim=64, hidden_dim=256, cell_type="lstm", dtype=np.float32, seed=0):
        from ..data.text import CharVocab

        self.vocab = CharVocab(chars)
        self.chars = self.vocab.chars
        self.cell_type = _recurrent.check_cell(cell_type)
        self.embed_dim = int(embed_dim)
        self.hidden_dim = int(hidden_dim)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        V, E, H = len(self.chars), self.embed_dim, self.hidden_dim
        params = {"W_embed": rng.standard_normal((V, E))}
        params.update(_recurrent.init_params(self.cell_type, E, H, rng, self.dtype))
        params["W_vocab"] = rng.standard_normal((H, V)) / np.sqrt(H)
        params["b_vocab"] = np.zeros(V)
        self.params = {k: np.asarray(v, dtype=self.dtype) for k, v in params.items()}

    def config(self):
        return {"model": "CharLM", "chars": "".join(self.chars), "embed_dim": self.embed_dim,
                "hidden_dim": self.hidden_dim, "cell_type": self.cell_type, "dtype": self.dtype.name}

    def initial_state(self, N):
        """Zeros: ``(h, c)`` with c None for cells without a cell state."""
        h = np.zeros((N, self.hidden_dim), dtype=self.dtype)
        return h, (np.zeros_like(h) if _recurrent.carries_cell_state(self.cell_type) else None)

    def _check(self, x, name="x"):
        x = np.asarray(x)
        if x.ndim != 2 or 0 in x.shape:
            raise ValueError(f"{name} must be character indices of shape (N, T) with N, T >= 1, got {x.shape}")
        return x

    def _forward(self, x, state):
        x = self._check(x)
        h0, c0 = self.initial_state(x.shape[0]) if state is None else state
        p = self.params
        inputs, embed_cache = layers.word_embedding_forward(x, p["W_embed"])
        h, hT, cT, cell_cache = _recurrent.forward_state(self.cell_type, inputs, h0, c0, p)
        scores, vocab_cache = layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        return scores, (hT, cT), (embed_cache, cell_cache, vocab_cache)

    def loss(self, x, y, state=None):
        """Mean cross-entropy per character (nats) of predicting ``y`` (N,T) from ``x`` (N,T), its gradients,
        and the state the chunk ends with: ``(loss, grads, (hT, cT))``.

        ``state`` is the ``(h, c)`` the previous chunk ended with (None: zeros); it is treated as a
        constant (truncated BPTT).
        """
        scores, next_state, (embed_cache, cell_cache, vocab_cache) = self._forward(x, state)
        N, T = scores.shape[:2]
        y = self._check(y, "y")
        if y.shape != (N, T):
            raise ValueError(f"y must have the shape of x, {(N, T)}, got {y.shape}")
        loss, dscores = layers.temporal_softmax_loss(scores, y, np.ones((N, T), dtype=bool))
        # temporal_softmax_loss sums over the T steps and divides by N: divide by T for a per-char mean
        loss, dscores = loss / T, dscores / np.asarray(T, dtype=dscores.dtype)
        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = layers.temporal_affine_backward(dscores, vocab_cache)
        dinputs, _, _, cell_grads = _recurrent.backward_state(self.cell_type, dh, None, None, cell_cache)
        grads.update(cell_grads)
        grads["W_embed"] = layers.word_embedding_backward(dinputs, embed_cache)
        return loss, {k: grads[k] for k in self.params}, next_state

    def nats(self, x, y, state=None):
        """Forward only: the summed cross-entropy (nats) of ``y`` given ``x``, and the final state."""
        scores, next_state, _ = self._forward(x, state)
        scores = np.asarray(scores, dtype=np.float64)
        shifted = scores - scores.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        y = np.asarray(y)
        picked = np.take_along_axis(log_probs, y[:, :, None], axis=2)
        return float(-picked.sum()), next_state

    def sample(self, prime="", length=200, temperature=1.0, rng=None):
        """Text generated after ``prime``: ``length`` characters drawn one at a time.

        Each character is drawn from softmax(scores / temperature): lower temperatures are more
        conservative, ``temperature=0`` takes the most likely character. ``rng`` (a NumPy Generator or a
        seed) makes the sample reproducible. The prime's characters must be in the vocabulary; an empty
        prime starts after a newline (or the first character of the vocabulary).
        """
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        rng = np.random.default_rng(rng)
        if not prime:
            prime = "\n" if "\n" in self.vocab.index else self.chars[0]
            shown = ""
        else:
            shown = prime
        ids = self.vocab.encode(prime)
        p = self.params
        h, c = self.initial_state(1)
        if len(ids) > 1:
            _, (h, c), _ = self._forward(ids[None, :-1], (h, c))
        current = int(ids[-1])
        out = []
        for _ in range(int(length)):
            x, _ = layers.word_embedding_forward(np.array([current]), p["W_embed"])
            h, c = _recurrent.step(self.cell_type, x, h, c, p)
            scores, _ = layers.affine_forward(h, p["W_vocab"], p["b_vocab"])
            scores = np.asarray(scores[0], dtype=np.float64)
            if temperature == 0:
                current = int(scores.argmax())
            else:
                z = scores / temperature
                probs = np.exp(z - z.max())
                current = int(rng.choice(len(probs), p=probs / probs.sum()))
            out.append(current)
        return shown + self.vocab.decode(out)
