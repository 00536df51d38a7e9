"""fastrnn.interop.torch: the same weights give the same outputs and gradients in PyTorch.

Through ``fastrnn.layers`` on every available backend, every cell, both dtypes: h, dx, dh0,
dWx, dWh, db (GRU: dbhn; and for steps next_c, dprev_c) against torch.nn.RNN/LSTM/GRU and their
cells; the state forms against torch with and without initial states: h, hT, cT and the
gradients torch returns for h0 and c0.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastrnn  # noqa: E402
from fastrnn import layers  # noqa: E402
from fastrnn.interop import captioning_to_torch, from_torch, grads_from_torch, to_torch  # noqa: E402
from fastrnn.interop.torch import from_torch_layout, to_torch_layout, torch_weights  # noqa: E402
from helpers import assert_close  # noqa: E402

DTYPES = [np.float32, np.float64]
CELLS = [("rnn", 1), ("lstm", 4), ("gru", 3)]
MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
CELL_MODULES = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


def _weights(rng, D, H, gates, dtype):
    """(Wx, Wh, b), and bhn for the GRU: the weights its layer functions take."""
    G = gates * H
    weights = (
        (rng.standard_normal((D, G)) / np.sqrt(D)).astype(dtype),
        (rng.standard_normal((H, G)) / np.sqrt(H)).astype(dtype),
        (0.5 * rng.standard_normal(G)).astype(dtype),
    )
    return weights + ((0.5 * rng.standard_normal(H)).astype(dtype),) if gates == 3 else weights


def _to_torch(weights, cell, **kw):
    Wx, Wh, b, *bhn = weights
    return to_torch(Wx, Wh, b, cell, bhn=bhn[0] if bhn else None, **kw)


def _t(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_() if grad else t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,gates", CELLS)
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (1, 1, 1, 1), (2, 7, 3, 2)])
def test_sequence_matches_torch(backend, cell, gates, shape, dtype):
    N, T, D, H = shape
    rng = np.random.default_rng(0)
    weights = _weights(rng, D, H, gates, dtype)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((N, H))).astype(dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)

    h, cache = getattr(layers, f"{cell}_forward")(x, h0, *weights)
    grads = getattr(layers, f"{cell}_backward")(dh, cache)

    module = _to_torch(weights, cell)
    assert type(module) is MODULES[cell]
    assert module.batch_first and module.weight_ih_l0.dtype == getattr(torch, np.dtype(dtype).name)
    xt, h0t = _t(x, True), _t(h0[None], True)
    state = (h0t, torch.zeros_like(h0t)) if cell == "lstm" else h0t
    ht, _ = module(xt, state)
    tgrads = torch.autograd.grad(ht, [xt, h0t, *torch_weights(module)], _t(dh))
    expected = (tgrads[0].numpy(), tgrads[1].numpy()[0], *grads_from_torch(module, tgrads[2:]))

    msg = f"{cell} {shape} {np.dtype(dtype)} on {backend}"
    assert_close(h, ht.detach().numpy(), dtype, err_msg=msg + " h")
    assert len(grads) == len(expected)
    for name, got, want in zip(("dx", "dh0", "dWx", "dWh", "db", "dbhn"), grads, expected):
        assert got.dtype == want.dtype == np.dtype(dtype), f"{msg} {name}"
        assert_close(got, want, dtype, err_msg=f"{msg} {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,gates", CELLS)
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (1, 1, 1, 1), (2, 7, 3, 2)])
@pytest.mark.parametrize("initial", ["given", "torch's default"])
def test_state_matches_torch(backend, cell, gates, shape, dtype, initial):
    """*_forward_state / *_backward_state against a torch module run from an initial state (h0, c0), or
    from torch's default zeros: every step's h, the final states torch returns, and the gradients of
    the inputs, the weights and the initial states, with upstream gradients of h and of the final states."""
    N, T, D, H = shape
    rng = np.random.default_rng(7)
    weights = _weights(rng, D, H, gates, dtype)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    if initial == "given":
        h0, c0 = ((0.5 * rng.standard_normal((N, H))).astype(dtype) for _ in range(2))
    else:
        h0, c0 = np.zeros((N, H), dtype), None
    dh, dhT, dcT = (rng.standard_normal(s).astype(dtype) for s in [(N, T, H), (N, H), (N, H)])

    states = (h0, c0) if cell == "lstm" else (h0,)
    finals = (dhT, dcT) if cell == "lstm" else (dhT,)
    *outs, cache = getattr(layers, f"{cell}_forward_state")(x, *states, *weights)
    grads = getattr(layers, f"{cell}_backward_state")(dh, *finals, cache)

    module = _to_torch(weights, cell)
    xt = _t(x, True)
    if initial == "given":
        tstates = [_t(s[None], True) for s in states]  # torch's (num_layers, N, H)
        out, tfinal = module(xt, tuple(tstates) if cell == "lstm" else tstates[0])
    else:
        tstates = []
        out, tfinal = module(xt)
    tfinal = list(tfinal) if cell == "lstm" else [tfinal]
    tgrads = torch.autograd.grad([out, *tfinal], [xt, *tstates, *torch_weights(module)],
                                 [_t(dh)] + [_t(f[None]) for f in finals])
    k = 1 + len(tstates)
    expected_outs = [out.detach().numpy()] + [f.detach().numpy()[0] for f in tfinal]
    expected_grads = [tgrads[0].numpy()] + [g.numpy()[0] for g in tgrads[1:k]] + list(grads_from_torch(module, tgrads[k:]))

    msg = f"{cell} state {shape} {np.dtype(dtype)} on {backend}, initial state {initial}"
    names = ["h", "hT", "cT"][: len(outs)]
    assert len(outs) == len(expected_outs)
    for name, got, want in zip(names, outs, expected_outs):
        assert got.dtype == want.dtype == np.dtype(dtype), f"{msg} {name}"
        assert_close(got, want, dtype, err_msg=f"{msg} {name}")
    grad_names = ["dx", "dh0"] + (["dc0"] if cell == "lstm" else []) + ["dWx", "dWh", "db", "dbhn"][: len(weights)]
    if initial != "given":  # torch has no initial-state input to differentiate: compare the weights' only
        keep = [n for n in grad_names if n not in ("dh0", "dc0")]
        grads = [g for n, g in zip(grad_names, grads) if n in keep]
        grad_names = keep
    assert len(grads) == len(expected_grads) == len(grad_names)
    for name, got, want in zip(grad_names, grads, expected_grads):
        assert got.dtype == want.dtype == np.dtype(dtype), f"{msg} {name}"
        assert_close(got, want, dtype, err_msg=f"{msg} {name}")


def test_gru_bias_mapping():
    """b = bias_ih + [bias_hh_r, bias_hh_z, 0], bhn = bias_hh_n, and back."""
    H = 2
    bias_ih = np.arange(1.0, 7.0)
    bias_hh = np.arange(10.0, 16.0)
    Wx, Wh, b, bhn = from_torch_layout(np.zeros((3 * H, 3)), np.zeros((3 * H, H)), bias_ih, bias_hh, "gru")
    np.testing.assert_array_equal(b, [11.0, 13.0, 15.0, 17.0, 5.0, 6.0])
    np.testing.assert_array_equal(bhn, [14.0, 15.0])
    _, _, b_ih, b_hh = to_torch_layout(Wx, Wh, b, "gru", bhn=bhn)
    np.testing.assert_array_equal(b_ih, b)
    np.testing.assert_array_equal(b_hh, [0.0, 0.0, 0.0, 0.0, 14.0, 15.0])
    _, _, _, b_hh = to_torch_layout(Wx, Wh, b, "gru")  # bhn None: zeros
    assert not b_hh.any()


def test_gru_grads_attribute_path():
    weights = _weights(np.random.default_rng(8), 3, 2, 3, np.float64)
    module = _to_torch(weights, "gru")
    out, _ = module(torch.ones(1, 2, 3, dtype=torch.float64))
    out.sum().backward()
    dWx, dWh, db, dbhn = grads_from_torch(module)
    assert dWx.shape == (3, 6) and dWh.shape == (2, 6) and db.shape == (6,) and dbhn.shape == (2,)
    np.testing.assert_array_equal(db, module.bias_ih_l0.grad.numpy())
    np.testing.assert_array_equal(dbhn, module.bias_hh_l0.grad.numpy()[4:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,gates", CELLS)
def test_step_matches_torch_cell(backend, cell, gates, dtype):
    N, D, H = 4, 3, 5
    rng = np.random.default_rng(1)
    weights = _weights(rng, D, H, gates, dtype)
    x, prev_h, prev_c, dnext_h, dnext_c = (rng.standard_normal(s).astype(dtype)
                                           for s in [(N, D), (N, H), (N, H), (N, H), (N, H)])
    module = _to_torch(weights, cell, step=True)
    assert type(module) is CELL_MODULES[cell]
    xt, ht, ct = _t(x, True), _t(prev_h, True), _t(prev_c, True)
    tweights = list(torch_weights(module))
    msg = f"{cell}_step {np.dtype(dtype)} on {backend}"
    if cell == "lstm":
        next_h, next_c, cache = layers.lstm_step_forward(x, prev_h, prev_c, *weights)
        grads = layers.lstm_step_backward(dnext_h, dnext_c, cache)
        nh, nc = module(xt, (ht, ct))
        tg = torch.autograd.grad([nh, nc], [xt, ht, ct, *tweights], [_t(dnext_h), _t(dnext_c)])
        expected = (tg[0], tg[1], tg[2])
        assert_close(next_c, nc.detach().numpy(), dtype, err_msg=msg + " next_c")
    else:
        next_h, cache = getattr(layers, f"{cell}_step_forward")(x, prev_h, *weights)
        grads = getattr(layers, f"{cell}_step_backward")(dnext_h, cache)
        nh = module(xt, ht)
        tg = torch.autograd.grad(nh, [xt, ht, *tweights], _t(dnext_h))
        expected = (tg[0], tg[1])
    k = len(expected)
    expected = tuple(e.numpy() for e in expected) + grads_from_torch(module, tg[k:])
    assert_close(next_h, nh.detach().numpy(), dtype, err_msg=msg + " next_h")
    assert len(grads) == len(expected)
    for k, (got, want) in enumerate(zip(grads, expected)):
        assert_close(got, want, dtype, err_msg=f"{msg} gradient {k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,gates", CELLS)
def test_round_trip_is_exact(cell, gates, dtype):
    weights = _weights(np.random.default_rng(2), 3, 4, gates, dtype)
    for step in (False, True):
        back = from_torch(_to_torch(weights, cell, step=step))
        assert len(back) == len(weights)
        for got, want in zip(back, weights):
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell,gates", CELLS)
def test_from_a_torch_initialised_module(backend, cell, gates):
    """Both torch biases non-zero and torch's gate order: fastrnn must compute what torch computes."""
    torch.manual_seed(0)
    N, T, D, H = 2, 4, 3, 5
    module = MODULES[cell](D, H, batch_first=True, dtype=torch.float64)
    assert module.bias_hh_l0.abs().sum() > 0
    weights = from_torch(module)
    Wx, Wh, b = weights[:3]
    assert Wx.shape == (D, gates * H) and Wh.shape == (H, gates * H) and b.shape == (gates * H,)
    assert len(weights) == (4 if cell == "gru" else 3)
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    h, _ = getattr(layers, f"{cell}_forward")(x, h0, *weights)
    h0t = _t(h0[None])
    ht, _ = module(_t(x), (h0t, torch.zeros_like(h0t)) if cell == "lstm" else h0t)
    assert_close(h, ht.detach().numpy(), np.float64)


def test_lstm_gate_order_is_swapped():
    H = 2
    Wx = np.zeros((1, 4 * H))
    Wx[0] = np.repeat([1.0, 2.0, 3.0, 4.0], H)  # cs231n blocks i, f, o, g
    weight_ih, _, _, _ = to_torch_layout(Wx, np.zeros((H, 4 * H)), np.zeros(4 * H), "lstm")
    np.testing.assert_array_equal(weight_ih[:, 0], np.repeat([1.0, 2.0, 4.0, 3.0], H))  # torch i, f, g, o
    Wx2, _, b2 = from_torch_layout(weight_ih, np.zeros((4 * H, H)), np.ones(4 * H), np.ones(4 * H), "lstm")
    np.testing.assert_array_equal(Wx2, Wx)
    np.testing.assert_array_equal(b2, 2.0)  # b = bias_ih + bias_hh


def test_backward_grads_attribute_path():
    Wx, Wh, b = _weights(np.random.default_rng(4), 3, 2, 4, np.float64)
    module = to_torch(Wx, Wh, b, "lstm")
    with pytest.raises(ValueError, match="no gradients"):
        grads_from_torch(module)
    out, _ = module(torch.ones(1, 2, 3, dtype=torch.float64))
    out.sum().backward()
    dWx, dWh, db = grads_from_torch(module)
    assert dWx.shape == Wx.shape and dWh.shape == Wh.shape and db.shape == b.shape
    np.testing.assert_array_equal(db, from_torch_layout(
        module.weight_ih_l0.grad.numpy(), module.weight_hh_l0.grad.numpy(), module.bias_hh_l0.grad.numpy(),
        cell="lstm")[2])


@pytest.mark.parametrize("make,error", [
    (lambda: torch.nn.LSTM(3, 4, num_layers=2), ValueError),
    (lambda: torch.nn.LSTM(3, 4, bidirectional=True), ValueError),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2), ValueError),
    (lambda: torch.nn.RNN(3, 4, nonlinearity="relu"), ValueError),
    (lambda: torch.nn.RNNCell(3, 4, nonlinearity="relu"), ValueError),
    (lambda: torch.nn.GRU(3, 4, num_layers=2), ValueError),
    (lambda: torch.nn.GRU(3, 4, bidirectional=True), ValueError),
    (lambda: torch.nn.Linear(3, 4), TypeError),
])
def test_modules_without_an_equivalent_are_refused(make, error):
    with pytest.raises(error):
        from_torch(make())


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="Wh"):
        to_torch(np.zeros((3, 8)), np.zeros((2, 7)), np.zeros(8), "lstm")
    with pytest.raises(ValueError, match="Wx"):
        to_torch(np.zeros((3, 7)), np.zeros((2, 8)), np.zeros(8), "lstm")
    with pytest.raises(ValueError, match="b must"):
        to_torch(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(3), "rnn")
    with pytest.raises(ValueError, match="cell"):
        to_torch(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2), "relu")
    with pytest.raises(ValueError, match="bhn must"):
        to_torch(np.zeros((3, 6)), np.zeros((2, 6)), np.zeros(6), "gru", bhn=np.zeros(3))
    with pytest.raises(ValueError, match="bhn"):
        to_torch(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2), "rnn", bhn=np.zeros(2))


def test_module_without_bias():
    module = torch.nn.RNN(3, 4, bias=False, dtype=torch.float64)
    Wx, Wh, b = from_torch(module)
    np.testing.assert_array_equal(b, np.zeros(4))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_captioning_model_matches_torch(backend, cell):
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, 20)}}
    np.random.seed(5)
    model = fastrnn.CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=5, hidden_dim=7, cell_type=cell,
                                  dtype=np.float64)
    for k in model.params:
        model.params[k] = model.params[k] + 0.1 * np.random.randn(*model.params[k].shape)
    rng = np.random.default_rng(6)
    features = rng.standard_normal((3, 6))
    captions = rng.integers(0, 20, size=(3, 8))
    captions[:, 0] = 1
    captions[0, 5:] = 0  # <NULL> padding: not scored
    loss, grads = model.loss(features, captions)

    tmodel = captioning_to_torch(model)
    tloss = tmodel.loss(_t(features), _t(captions))
    tloss.backward()
    assert_close(np.asarray(loss), tloss.detach().numpy(), np.float64)
    tgrads = tmodel.grads_to_cs231n()
    assert set(tgrads) == set(grads)
    for k in grads:
        assert_close(grads[k], tgrads[k], np.float64, err_msg=f"{cell} model {k} on {backend}")
    # greedy sampling: the same captions, <NULL> after an <END>
    sampled = model.sample(features, max_length=12)
    assert np.array_equal(sampled, tmodel.sample(_t(features), max_length=12).numpy())
