"""The checks of the cs231n assignment-3 notebooks (RNN_Captioning, LSTM_Captioning), on every backend.

Inputs, expected values and tolerances come from ``fastrnn.check.golden``, the one copy that
``fastrnn check --module/--model`` also runs on other people's code.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import layers
from fastrnn.check import golden
from fastrnn.check.contract import by_name
from fastrnn.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("case", golden.FORWARD_VALUES, ids=lambda c: c.function)
def test_forward_values(backend, case):
    result = getattr(layers, case.function)(*case.inputs())
    outputs = dict(zip(by_name(case.function).outputs, result))
    assert set(case.expected) <= set(outputs)
    for name, expected in case.expected.items():
        assert rel_error(expected, outputs[name]) < case.threshold, name


@pytest.mark.parametrize("N,T,V,p,expected", golden.SOFTMAX_SANITY)
def test_temporal_softmax_loss_sanity(backend, N, T, V, p, expected):
    # Small random scores: the loss of each counted position is about log(V) = 2.3.
    rng = np.random.default_rng(0)
    x = 0.001 * rng.standard_normal((N, T, V))
    y = rng.integers(V, size=(N, T))
    mask = rng.random((N, T)) <= p
    loss, _ = layers.temporal_softmax_loss(x, y, mask)
    assert loss == pytest.approx(expected * (mask.sum() / (N * T)) / p, rel=golden.SOFTMAX_SANITY_RTOL)


@pytest.mark.parametrize("function", sorted(golden.GRADIENT_CHECKS))
def test_notebook_gradient_checks(backend, function):
    """The notebook's numerical gradient checks, with its inputs, pass at the notebook's tolerances."""
    from fastrnn.check.contract import draw

    check = golden.GRADIENT_CHECKS[function]
    rs = golden.notebook_draws()
    entry = by_name(function)
    if entry.loss_grad_of:  # temporal_softmax_loss: its dx against the loss's numerical gradient
        x, y, mask = (draw(a, check.sizes, rs, notebook=True) for a in entry.args)
        _, dx = layers.temporal_softmax_loss(x, y, mask)
        num = eval_numerical_gradient(lambda x_: layers.temporal_softmax_loss(x_, y, mask)[0], x, verbose=False)
        assert rel_error(num, dx) < check.thresholds["dx"]
        return
    fwd = by_name(entry.forward)
    args = [draw(a, check.sizes, rs, notebook=True) for a in fwd.args]
    result = getattr(layers, fwd.name)(*args)
    outs, cache = result[:-1], result[-1]
    douts = [rs.randn(*o.shape) for o in outs]
    grads = getattr(layers, function)(*douts, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for name, grad in zip(entry.grad_names, grads):
        k = [a.name for a in fwd.args].index(name[1:])
        num = sum(eval_numerical_gradient_array(
            lambda v, j=j: getattr(layers, fwd.name)(*args[:k], v, *args[k + 1:])[j], args[k], douts[j])
            for j in range(len(douts)))
        assert rel_error(num, grad) < check.thresholds[name], name


@pytest.mark.parametrize("cell_type", sorted(golden.MODEL_LOSSES))
def test_captioning_rnn_loss(backend, cell_type):
    case = golden.MODEL_LOSSES[cell_type]
    s = case.sizes
    model = fastrnn.CaptioningRNN(case.word_to_idx, input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"],
                                  cell_type=cell_type, dtype=np.float64)
    for k, v in model.params.items():
        model.params[k] = case.param_value(v.shape)
    loss, _ = model.loss(case.features(), case.captions())
    assert abs(loss - case.expected_loss) < case.tolerance


def test_notebook_draws_reproduce_the_notebook():
    """The gradient-check inputs are the notebook's: np.random.seed(231), then randn in argument order."""
    np.random.seed(231)
    expected = [np.random.randn(4, 5), np.random.randn(4, 6)]
    from fastrnn.check.contract import draw

    rs = golden.notebook_draws()
    got = [draw(a, golden.GRADIENT_CHECKS["rnn_step_backward"].sizes, rs, notebook=True)
           for a in by_name("rnn_step_forward").args[:2]]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
