"""fastrnn.packed_weights: a loop of single steps and affine layers by weights packed once."""

import numpy as np
import pytest

import fastrnn
import fastrnn.layers as layers
from fastrnn import _native
from helpers import assert_all_close


def _decode(cell, x, h, Wx, Wh, b, W_vocab, b_vocab, steps=3):
    """A user's own decoding loop: a step, then the vocabulary scores, fed back as the next input."""
    c = np.zeros_like(h)
    out = []
    for _ in range(steps):
        if cell == "rnn":
            h, _ = layers.rnn_step_forward(x, h, Wx, Wh, b)
        else:
            h, c, _ = layers.lstm_step_forward(x, h, c, Wx, Wh, b)
        scores, _ = layers.affine_forward(h, W_vocab, b_vocab)
        out.append(scores)
        x = scores[:, : x.shape[1]]
    return out


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,N,D,H,V", [("lstm", 40, 64, 100, 300), ("rnn", 3, 5, 1, 7), ("lstm", 1, 8, 70, 80),
                                          ("rnn", 100, 256, 512, 1004)])
def test_a_loop_inside_gives_what_it_gives_outside(backend, dtype, cell, N, D, H, V):
    rng = np.random.default_rng(3)
    G = (4 if cell == "lstm" else 1) * H
    x, h = rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((N, H)).astype(dtype)
    Wx = (rng.standard_normal((D, G)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, G)) / np.sqrt(H)).astype(dtype)
    W_vocab = (rng.standard_normal((H, V)) / np.sqrt(H)).astype(dtype)
    b, b_vocab = rng.standard_normal(G).astype(dtype), rng.standard_normal(V).astype(dtype)
    for w in (Wx, Wh, W_vocab):
        w.flags.writeable = False  # only ever read
    copies = [a.copy() for a in (x, h, Wx, Wh, W_vocab, b, b_vocab)]
    with fastrnn.use_backend(backend):
        expected = _decode(cell, x, h, Wx, Wh, b, W_vocab, b_vocab)
        before = _native.resident_stats()["products"]
        with fastrnn.packed_weights(Wx, Wh, W_vocab):
            got = _decode(cell, x, h, Wx, Wh, b, W_vocab, b_vocab)
        used = _native.resident_stats()["products"] - before
    assert_all_close(tuple(got), tuple(expected))
    for a, c in zip((x, h, Wx, Wh, W_vocab, b, b_vocab), copies):
        np.testing.assert_array_equal(a, c)
    if backend == "numpy":
        assert used == 0
    else:  # every vocabulary projection at least (the steps' products too, above OpenBLAS's one-thread line)
        assert used >= 3
    assert _native.resident_stats()["held_here"] == 0


def test_weights_must_be_numpy_arrays():
    with pytest.raises(TypeError, match="weight 1 is a list"):
        with fastrnn.packed_weights(np.ones((2, 2)), [[1.0]]):
            pass


def test_weights_it_cannot_keep_packed_are_used_as_before():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    wide = rng.standard_normal((10, 40)).astype(np.float32)
    w, b = wide[:, ::2], np.zeros(20, np.float32)  # columns 8 bytes apart: not kept, the layer copies it
    expected, _ = layers.affine_forward(x, w, b)
    with fastrnn.packed_weights(w):
        assert _native.resident_stats()["held_here"] == 0
        got, _ = layers.affine_forward(x, w, b)
    assert_all_close(got, expected)
