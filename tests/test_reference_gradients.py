"""Numerical gradient checks of the oracle's backward passes, in float64.

The oracle is what every backend is measured against, so its gradients are checked
against centred finite differences of its own forward passes, as the cs231n notebooks do.
cs231n's threshold is a relative error of about 1e-8; entries where finite differences
cannot do better are noted where the threshold is looser.
"""

import numpy as np
import pytest

from fastrnn import reference as R
from fastrnn.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array
from helpers import GRAD_THRESHOLD, assert_gradient_close

def _check_array_grads(forward, inputs, douts, analytic, threshold=GRAD_THRESHOLD):
    """forward(*inputs) -> outputs; compares analytic[k] with d(sum outputs*douts)/d inputs[k]."""
    for k, x in enumerate(inputs):
        if analytic[k] is None:
            continue

        def f(_, k=k):
            outs = forward(*inputs)
            return outs

        num = np.zeros_like(x)
        for out_index, dout in enumerate(douts):
            num += eval_numerical_gradient_array(lambda _: f(_)[out_index], x, dout)
        assert_gradient_close(num, analytic[k], threshold, what=f"input {k}")


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def test_affine(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, cache = R.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    grads = R.affine_backward(dout, cache)
    _check_array_grads(lambda *a: (R.affine_forward(*a)[0],), [x, w, b], [dout], grads)


def test_rnn_step(rng):
    N, D, H = 4, 5, 6
    args = [rng.standard_normal(s) for s in [(N, D), (N, H), (D, H), (H, H), (H,)]]
    out, cache = R.rnn_step_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.rnn_step_backward(dout, cache)
    _check_array_grads(lambda *a: (R.rnn_step_forward(*a)[0],), args, [dout], grads)


def test_rnn_sequence(rng):
    N, T, D, H = 2, 3, 4, 5
    args = [rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, H), (H, H), (H,)]]
    out, cache = R.rnn_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.rnn_backward(dout, cache)
    _check_array_grads(lambda *a: (R.rnn_forward(*a)[0],), args, [dout], grads)


def test_word_embedding(rng):
    V, D = 5, 3
    x = rng.integers(V, size=(2, 4))
    x[0, :2] = 1  # a repeated index: its gradient rows must add up
    W = rng.standard_normal((V, D))
    out, cache = R.word_embedding_forward(x, W)
    dout = rng.standard_normal(out.shape)
    dW = R.word_embedding_backward(dout, cache)
    num = eval_numerical_gradient_array(lambda W_: R.word_embedding_forward(x, W_)[0], W, dout)
    assert_gradient_close(num, dW)


def test_sigmoid_derivative(rng):
    x = rng.standard_normal(20) * 3
    s = R.sigmoid(x)
    num = eval_numerical_gradient_array(R.sigmoid, x.copy(), np.ones_like(x))
    assert_gradient_close(num, s * (1 - s))


def test_lstm_step(rng):
    N, D, H = 4, 5, 6
    args = [rng.standard_normal(s) for s in [(N, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]]
    next_h, next_c, cache = R.lstm_step_forward(*args)
    dnext_h, dnext_c = rng.standard_normal(next_h.shape), rng.standard_normal(next_c.shape)
    dx, dh, dc, dWx, dWh, db = R.lstm_step_backward(dnext_h, dnext_c, cache)
    _check_array_grads(lambda *a: R.lstm_step_forward(*a)[:2], args, [dnext_h, dnext_c], [dx, dh, dc, dWx, dWh, db])


def test_lstm_sequence(rng):
    N, T, D, H = 2, 3, 5, 6
    args = [rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]]
    out, cache = R.lstm_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.lstm_backward(dout, cache)
    _check_array_grads(lambda *a: (R.lstm_forward(*a)[0],), args, [dout], grads)


def test_temporal_affine(rng):
    N, T, D, M = 2, 3, 4, 5
    args = [rng.standard_normal(s) for s in [(N, T, D), (D, M), (M,)]]
    out, cache = R.temporal_affine_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.temporal_affine_backward(dout, cache)
    _check_array_grads(lambda *a: (R.temporal_affine_forward(*a)[0],), args, [dout], grads)


def test_temporal_softmax_loss(rng):
    N, T, V = 7, 8, 9
    x = 0.001 * rng.standard_normal((N, T, V))
    y = rng.integers(V, size=(N, T))
    mask = rng.random((N, T)) > 0.5
    _, dx = R.temporal_softmax_loss(x, y, mask, verbose=False)
    num = eval_numerical_gradient(lambda x_: R.temporal_softmax_loss(x_, y, mask)[0], x, verbose=False)
    assert_gradient_close(num, dx)


def test_temporal_softmax_loss_verbose_prints(capsys, rng):
    x, y, mask = rng.standard_normal((2, 3, 4)), rng.integers(4, size=(2, 3)), np.ones((2, 3), bool)
    R.temporal_softmax_loss(x, y, mask, verbose=True)
    assert "dx_flat" in capsys.readouterr().out


# ------------------------------------------------------------------ GRU


def test_gru_step(rng):
    N, D, H = 4, 5, 6
    args = [rng.standard_normal(s) for s in [(N, D), (N, H), (D, 3 * H), (H, 3 * H), (3 * H,), (H,)]]
    out, cache = R.gru_step_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.gru_step_backward(dout, cache)
    assert len(grads) == 6  # dx, dprev_h, dWx, dWh, db, dbhn
    _check_array_grads(lambda *a: (R.gru_step_forward(*a)[0],), args, [dout], grads)


def test_gru_sequence(rng):
    N, T, D, H = 2, 3, 5, 4
    args = [rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, 3 * H), (H, 3 * H), (3 * H,), (H,)]]
    out, cache = R.gru_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = R.gru_backward(dout, cache)
    _check_array_grads(lambda *a: (R.gru_forward(*a)[0],), args, [dout], grads)


def test_gru_step_is_pytorchs_formula(rng):
    """The equations of DESIGN.md, written out once more, on one step."""
    N, D, H = 3, 4, 2
    x, h, Wx, Wh, b, bhn = (rng.standard_normal(s) for s in [(N, D), (N, H), (D, 3 * H), (H, 3 * H), (3 * H,), (H,)])
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    r = sig(x @ Wx[:, :H] + h @ Wh[:, :H] + b[:H])
    z = sig(x @ Wx[:, H:2 * H] + h @ Wh[:, H:2 * H] + b[H:2 * H])
    n = np.tanh(x @ Wx[:, 2 * H:] + b[2 * H:] + r * (h @ Wh[:, 2 * H:] + bhn))
    np.testing.assert_allclose(R.gru_step_forward(x, h, Wx, Wh, b, bhn)[0], (1 - z) * n + z * h, rtol=1e-13)


# ------------------------------------------------------------------ carried state

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _state_args(rng, cell, N, T, D, H):
    g = _GATES[cell]
    shapes = [(N, T, D), (N, H)] + ([(N, H)] if cell == "lstm" else []) + [(D, g * H), (H, g * H), (g * H,)]
    shapes += [(H,)] if cell == "gru" else []
    return [rng.standard_normal(s) for s in shapes]


_GIVEN = ["all", "final states only", "steps only", "hT only"]


@pytest.mark.parametrize("cell,given", [(c, g) for c in ("rnn", "lstm", "gru") for g in _GIVEN] + [("lstm", "cT only")])
def test_state_gradients(rng, cell, given):
    """dh0 (and dc0) and every other gradient of the state-carrying layers, with upstream gradients of
    every step's h, of the final state(s), or of some of them (None means zeros)."""
    N, T, D, H = 2, 3, 4, 3
    args = _state_args(rng, cell, N, T, D, H)
    forward_state = getattr(R, f"{cell}_forward_state")
    *outs, cache = forward_state(*args)
    assert len(outs) == (3 if cell == "lstm" else 2)
    douts = [rng.standard_normal(o.shape) for o in outs]  # dh, dhT (, dcT)
    keep = {"all": (0, 1, 2), "final states only": (1, 2), "steps only": (0,), "hT only": (1,), "cT only": (2,)}[given]
    douts = [d if k in keep else None for k, d in enumerate(douts)]
    grads = getattr(R, f"{cell}_backward_state")(*douts, cache)
    assert len(grads) == len(args)  # one gradient per input, in the inputs' order
    numeric_douts = [np.zeros(o.shape) if d is None else d for o, d in zip(outs, douts)]
    _check_array_grads(lambda *a: forward_state(*a)[:-1], args, numeric_douts, grads)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_final_state_is_the_last_step(rng, cell):
    args = _state_args(rng, cell, 3, 4, 2, 5)
    *outs, cache = getattr(R, f"{cell}_forward_state")(*args)
    h, hT = outs[0], outs[1]
    np.testing.assert_array_equal(hT, h[:, -1])
    assert not np.shares_memory(hT, h)
    if cell == "lstm":  # cT: step the cell by hand
        x, prev_h, prev_c, Wx, Wh, b = args
        for t in range(x.shape[1]):
            prev_h, prev_c, _ = R.lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        np.testing.assert_allclose(outs[2], prev_c, rtol=1e-14)
        np.testing.assert_allclose(hT, prev_h, rtol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_layers_extend_the_cs231n_ones(rng, cell):
    """The cs231n forms are the state forms with the final states dropped (and c0 = 0), and truncated
    BPTT over two chunks gives the gradients of the whole sequence."""
    args = _state_args(rng, cell, 2, 6, 3, 4)
    x, h0 = args[0], args[1]
    weights = args[3:] if cell == "lstm" else args[2:]
    c0 = args[2] if cell == "lstm" else None
    forward_state, backward_state = getattr(R, f"{cell}_forward_state"), getattr(R, f"{cell}_backward_state")
    if cell == "lstm":
        h, cache = R.lstm_forward(x, h0, *weights, c0=c0)
        h_state, *_ = forward_state(x, h0, c0, *weights)
        np.testing.assert_array_equal(h, h_state)
        h_zero, _ = R.lstm_forward(x, h0, *weights)
        np.testing.assert_array_equal(h_zero, forward_state(x, h0, None, *weights)[0])
        np.testing.assert_array_equal(h_zero, forward_state(x, h0, np.zeros_like(h0), *weights)[0])
    # Whole sequence against two chunks whose states are handed over, forward and backward.
    state0 = (h0, c0) if cell == "lstm" else (h0,)
    dh = rng.standard_normal((2, 6, 4))
    *whole, cache = forward_state(x, *state0, *weights)
    g_whole = backward_state(dh, *([None] * len(state0)), cache)
    *first, cache1 = forward_state(x[:, :4], *state0, *weights)
    *second, cache2 = forward_state(x[:, 4:], *first[1:], *weights)
    np.testing.assert_allclose(np.concatenate([first[0], second[0]], axis=1), whole[0], rtol=1e-13)
    g2 = backward_state(dh[:, 4:], *([None] * len(state0)), cache2)
    n_state = len(state0)
    g1 = backward_state(dh[:, :4], *g2[1:1 + n_state], cache1)
    np.testing.assert_allclose(np.concatenate([g1[0], g2[0]], axis=1), g_whole[0], rtol=1e-12, atol=1e-14)
    for k in range(1, 1 + n_state):  # dh0 (, dc0)
        np.testing.assert_allclose(g1[k], g_whole[k], rtol=1e-12, atol=1e-14)
    for k in range(1 + n_state, len(g_whole)):  # weight gradients add up over the chunks
        np.testing.assert_allclose(g1[k] + g2[k], g_whole[k], rtol=1e-12, atol=1e-14)
