"""CaptioningRNN: cs231n's image-captioning model on top of ``fastrnn.layers``.

It only calls the public layer functions, so it runs on whichever backend is
active (``fastrnn.set_backend``).
"""

import numpy as np

from .. import layers
from .._cells import CELLS as _CELLS
from .._cells import gates
from . import _recurrent

__all__ = ["CaptioningRNN"]


class CaptioningRNN:
    """Image features -> initial hidden state -> RNN/LSTM/GRU over word vectors -> vocabulary scores.

    Parameters: ``word_to_idx`` (dict word -> index; must contain ``<NULL>``, and
    ``<START>`` for sampling; ``<END>`` ends a sampled caption), ``input_dim`` D of the image features, ``wordvec_dim`` W,
    ``hidden_dim`` H, ``cell_type`` ("rnn", "lstm" or "gru"), ``dtype`` of the parameters.
    With ``cell_type="gru"`` the parameters also hold ``bhn`` (H,), the GRU's recurrent n-gate bias (zeros).
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32):
        if cell_type not in _CELLS:
            raise ValueError(f'Invalid cell_type "{cell_type}"; expected one of {_CELLS}')
        if "<NULL>" not in word_to_idx:
            raise ValueError("word_to_idx must contain '<NULL>' (the padding word)")
        self.cell_type = cell_type
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)

        V, D, W, H = len(word_to_idx), input_dim, wordvec_dim, hidden_dim
        G = gates(cell_type) * H
        self.params = {
            "W_embed": np.random.randn(V, W) / 100,
            "W_proj": np.random.randn(D, H) / np.sqrt(D),
            "b_proj": np.zeros(H),
            "Wx": np.random.randn(W, G) / np.sqrt(W),
            "Wh": np.random.randn(H, G) / np.sqrt(H),
            "b": np.zeros(G),
            "W_vocab": np.random.randn(H, V) / np.sqrt(H),
            "b_vocab": np.zeros(V),
        }
        if cell_type == "gru":
            self.params["bhn"] = np.zeros(H)
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def _cell(self):
        """The cell's sequence forward and backward, and the names of its parameters in their order."""
        forward, backward = getattr(layers, f"{self.cell_type}_forward"), getattr(layers, f"{self.cell_type}_backward")
        return forward, backward, ("Wx", "Wh", "b", "bhn") if self.cell_type == "gru" else ("Wx", "Wh", "b")

    def loss(self, features, captions):
        """Training loss and gradients for features (N, D) and captions (N, T + 1).

        The RNN reads ``captions[:, :-1]`` and is scored on predicting ``captions[:, 1:]``;
        positions whose target is ``<NULL>`` are not scored. Returns ``(loss, grads)``,
        ``grads`` keyed like ``self.params``.
        """
        captions = np.asarray(captions)
        if captions.ndim != 2 or captions.shape[1] < 2:
            raise ValueError(f"captions must have shape (N, T + 1) with T >= 1, got {captions.shape}")
        features = np.asarray(features, dtype=self.dtype)  # the model computes in its own dtype
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        p = self.params
        cell_forward, cell_backward, cell_params = self._cell()

        h0, proj_cache = layers.affine_forward(features, p["W_proj"], p["b_proj"])
        words, embed_cache = layers.word_embedding_forward(captions_in, p["W_embed"])
        h, cell_cache = cell_forward(words, h0, *(p[k] for k in cell_params))
        scores, vocab_cache = layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = layers.temporal_softmax_loss(scores, captions_out, mask)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = layers.temporal_affine_backward(dscores, vocab_cache)
        dwords, dh0, *dcell = cell_backward(dh, cell_cache)
        grads.update(zip(cell_params, dcell))
        grads["W_embed"] = layers.word_embedding_backward(dwords, embed_cache)
        _, grads["W_proj"], grads["b_proj"] = layers.affine_backward(dh0, proj_cache)
        return loss, grads

    def sample(self, features, max_length=30):
        """Greedy captions for features (N, D): an int array (N, max_length).

        Starts from ``<START>``, feeds back the highest-scoring word each step; column 0 is
        the first generated word. Positions after a caption's ``<END>`` are ``<NULL>``.
        """
        if self._start is None:
            raise ValueError("sample needs '<START>' in word_to_idx")
        p = self.params
        features = np.asarray(features, dtype=self.dtype)
        N = features.shape[0]
        captions = np.full((N, max_length), self._null, dtype=np.int64)
        h, _ = layers.affine_forward(features, p["W_proj"], p["b_proj"])
        c = np.zeros_like(h)
        words = np.full(N, self._start, dtype=np.int64)
        finished = np.zeros(N, dtype=bool)
        with _recurrent.resident(N, p["Wx"], p["Wh"], p["W_vocab"]):
            for t in range(max_length):
                x, _ = layers.word_embedding_forward(words, p["W_embed"])
                if self.cell_type == "rnn":
                    h, _ = layers.rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
                elif self.cell_type == "gru":
                    h, _ = layers.gru_step_forward(x, h, p["Wx"], p["Wh"], p["b"], p["bhn"])
                else:
                    h, c, _ = layers.lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
                scores, _ = layers.affine_forward(h, p["W_vocab"], p["b_vocab"])
                words = scores.argmax(axis=1)
                captions[~finished, t] = words[~finished]
                finished |= words == self._end
                if finished.all():
                    break
        return captions

    def beam_search(self, features, beam_size=3, max_length=30, length_penalty=1.0):
        """Captions for features (N, D) by beam search: an int array (N, max_length), laid out like ``sample``.

        Each image keeps the ``beam_size`` most probable partial captions; a caption ends with
        ``<END>`` (kept in the output, followed by ``<NULL>``) or after ``max_length`` words. The best
        finished caption wins, by its log-probability divided by ``length ** length_penalty`` (its number
        of words, ``<END>`` included): ``length_penalty=0`` is the raw log-probability, which favours
        short captions; 1, the default, is the mean log-probability per word. An image's search stops
        when no partial caption can beat its best finished one any more, so a beam wide enough to keep
        every partial caption finds the best caption of all. ``beam_size=1`` with ``length_penalty=0``
        is greedy decoding: the captions of ``sample``.
        """
        if self._start is None:
            raise ValueError("beam_search needs '<START>' in word_to_idx")
        beam_size, max_length = int(beam_size), int(max_length)
        if beam_size < 1 or max_length < 1:
            raise ValueError(f"beam_size and max_length must be at least 1, got {beam_size} and {max_length}")
        p = self.params
        features = np.asarray(features, dtype=self.dtype)
        N, B = features.shape[0], beam_size
        V = p["W_vocab"].shape[1]
        h, _ = layers.affine_forward(features, p["W_proj"], p["b_proj"])
        h = np.repeat(h, B, axis=0)  # (N*B, H): beam b of image n is row n*B + b
        c = np.zeros_like(h) if self.cell_type == "lstm" else None
        words = np.full(N * B, self._start, dtype=np.int64)
        logp = np.full((N, B), -np.inf)
        logp[:, 0] = 0.0  # all beams start identical: keep one, or the first step fills the beam with copies
        prefixes = np.full((N, B, max_length), self._null, dtype=np.int64)
        best = [(-np.inf, None)] * N  # per image: (score, caption) of the best finished caption
        done = np.zeros(N, dtype=bool)
        with _recurrent.resident(N * B, p["Wx"], p["Wh"], p["W_vocab"]):
            for t in range(max_length):
                x, _ = layers.word_embedding_forward(words, p["W_embed"])
                h, c = _recurrent.step(self.cell_type, x, h, c, p)
                scores, _ = layers.affine_forward(h, p["W_vocab"], p["b_vocab"])
                scores = np.asarray(scores, dtype=np.float64)
                shifted = scores - scores.max(axis=1, keepdims=True)
                log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
                total = (logp[:, :, None] + log_probs.reshape(N, B, V)).reshape(N, B * V)
                # B live captions need at most 2B candidates: at most B of them (one per beam) are <END>
                order = np.argsort(-total, axis=1, kind="stable")[:, :2 * B]
                keep_rows = np.zeros((N, B), dtype=np.int64)
                next_logp = np.full((N, B), -np.inf)
                next_words = np.full((N, B), self._null, dtype=np.int64)
                for n in np.flatnonzero(~done):
                    filled = 0
                    for flat in order[n]:
                        score = total[n, flat]
                        if not np.isfinite(score):
                            break
                        beam, word = divmod(int(flat), V)
                        if word == self._end or t == max_length - 1:
                            normalised = score / (t + 1) ** length_penalty
                            if normalised > best[n][0]:
                                best[n] = (normalised, np.append(prefixes[n, beam, :t], word))
                        else:
                            keep_rows[n, filled], next_logp[n, filled], next_words[n, filled] = beam, score, word
                            filled += 1
                            if filled == B:
                                break  # what ranks below the B-th live caption cannot matter
                    # Log-probabilities only fall as a caption grows, so a live caption can at best end with
                    # its current log-probability, divided by at most max_length ** length_penalty.
                    bound = next_logp[n, 0] / (max_length ** length_penalty if next_logp[n, 0] < 0 else 1)
                    done[n] = filled == 0 or best[n][0] >= bound
                if done.all():
                    break
                rows = (np.arange(N)[:, None] * B + keep_rows).ravel()
                h = h[rows]
                c = None if c is None else c[rows]
                prefixes = prefixes[np.arange(N)[:, None], keep_rows]
                prefixes[:, :, t] = next_words
                logp, words = next_logp, next_words.ravel()
        captions = np.full((N, max_length), self._null, dtype=np.int64)
        for n, (_, caption) in enumerate(best):
            captions[n, :len(caption)] = caption
        return captions
