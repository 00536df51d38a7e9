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
