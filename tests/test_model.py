"""CaptioningRNN: parameters, gradients (numerical check on every backend), sampling."""

import numpy as np
import pytest

import fastrnn
from fastrnn import CaptioningRNN
from fastrnn.gradcheck import eval_numerical_gradient
from helpers import assert_gradient_close

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3, "dog": 4, "sat": 5}


@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("cell_type,G", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_params(cell_type, G):
    np.random.seed(0)
    V, D, W, H = len(WORDS), 600, 70, 80
    model = CaptioningRNN(WORDS, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type)
    shapes = {k: v.shape for k, v in model.params.items()}
    extra = {"bhn": (H,)} if cell_type == "gru" else {}  # the GRU's recurrent n-gate bias
    assert shapes == {"W_embed": (V, W), "W_proj": (D, H), "b_proj": (H,), "Wx": (W, G * H), "Wh": (H, G * H),
                      "b": (G * H,), "W_vocab": (H, V), "b_vocab": (V,), **extra}
    assert all(v.dtype == np.float32 for v in model.params.values())
    for name, std in [("W_embed", 1 / 100), ("W_proj", 1 / np.sqrt(D)), ("Wx", 1 / np.sqrt(W)),
                      ("Wh", 1 / np.sqrt(H)), ("W_vocab", 1 / np.sqrt(H))]:
        assert model.params[name].std() == pytest.approx(std, rel=0.15), name
    for name in ("b_proj", "b", "b_vocab") + tuple(extra):
        assert not model.params[name].any()


def test_unknown_cell_type():
    with pytest.raises(ValueError, match="relu_rnn"):
        CaptioningRNN(WORDS, cell_type="relu_rnn")


def test_same_random_draws_for_rnn_and_lstm_as_cs231n():
    """Adding the GRU did not move the cs231n cells' initial weights: the same draws in the same order."""
    for cell_type, G in (("rnn", 1), ("lstm", 4)):
        np.random.seed(3)
        model = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=3, hidden_dim=2, cell_type=cell_type)
        np.random.seed(3)
        V = len(WORDS)
        expected = [np.random.randn(V, 3) / 100, np.random.randn(4, 2) / np.sqrt(4), np.random.randn(3, G * 2) / np.sqrt(3),
                    np.random.randn(2, G * 2) / np.sqrt(2), np.random.randn(2, V) / np.sqrt(2)]
        for name, e in zip(("W_embed", "W_proj", "Wx", "Wh", "W_vocab"), expected):
            np.testing.assert_array_equal(model.params[name], e.astype(np.float32))


@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_gradients(backend, cell_type):
    # cs231n's model gradient check: small sizes, float64, every parameter.
    np.random.seed(231)
    N, T, D, W, H = 2, 3, 4, 5, 6
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    captions = np.random.randint(len(word_to_idx), size=(N, T))
    features = np.random.randn(N, D)
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type,
                          dtype=np.float64)
    if cell_type == "gru":  # non-zero recurrent biases, so that their gradients are checked where they matter
        model.params["b"] = 0.5 * np.random.randn(3 * H)
        model.params["bhn"] = 0.5 * np.random.randn(H)
    loss, grads = model.loss(features, captions)
    assert set(grads) == set(model.params)
    for name in sorted(model.params):
        num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                      verbose=False)
        # cs231n's notebook accepts ~1e-6 for the whole model (round-off through all layers).
        assert_gradient_close(num, grads[name], threshold=1e-6, what=name)


def test_float32_model_stays_float32(backend):
    np.random.seed(1)
    model = CaptioningRNN(WORDS, input_dim=8, wordvec_dim=6, hidden_dim=5, cell_type="lstm")
    features = np.random.randn(3, 8)  # float64 features: the model computes in its own dtype
    captions = np.random.randint(len(WORDS), size=(3, 6))
    loss, grads = model.loss(features, captions)
    assert np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_sample(backend, cell_type):
    np.random.seed(2)
    model = CaptioningRNN(WORDS, input_dim=8, wordvec_dim=6, hidden_dim=5, cell_type=cell_type)
    features = np.random.randn(4, 8)
    captions = model.sample(features, max_length=7)
    assert captions.shape == (4, 7) and captions.dtype.kind == "i"
    assert ((captions >= 0) & (captions < len(WORDS))).all()
    # Column 0 is the first generated word: the greedy choice after <START>.
    h0 = features.astype(np.float32) @ model.params["W_proj"] + model.params["b_proj"]
    x0 = model.params["W_embed"][[WORDS["<START>"]] * 4]
    if cell_type == "rnn":
        h1, _ = fastrnn.reference.rnn_step_forward(x0, h0, model.params["Wx"], model.params["Wh"], model.params["b"])
    elif cell_type == "gru":
        h1, _ = fastrnn.reference.gru_step_forward(x0, h0, model.params["Wx"], model.params["Wh"], model.params["b"],
                                                   model.params["bhn"])
    else:
        h1, _, _ = fastrnn.reference.lstm_step_forward(x0, h0, np.zeros_like(h0), model.params["Wx"],
                                                        model.params["Wh"], model.params["b"])
    np.testing.assert_array_equal(captions[:, 0], (h1 @ model.params["W_vocab"] + model.params["b_vocab"]).argmax(1))
    # After a caption's <END> comes only <NULL>.
    for row in captions:
        ends = np.flatnonzero(row == WORDS["<END>"])
        if ends.size:
            assert (row[ends[0] + 1:] == WORDS["<NULL>"]).all()


def test_sample_needs_start_word():
    model = CaptioningRNN({"<NULL>": 0, "cat": 1}, input_dim=3, wordvec_dim=2, hidden_dim=2)
    with pytest.raises(ValueError, match="<START>"):
        model.sample(np.zeros((1, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_sampling_with_weights_packed_once_gives_the_oracles_captions(cell_type, dtype, monkeypatch):
    """On the compiled backends sample and beam_search keep Wx, Wh and W_vocab packed for their loop
    (fastrnn._native.resident, from 2 rows a step): the captions are the oracle's, and the same as with
    the weights packed at every product."""
    from fastrnn import _native
    from fastrnn.models import _recurrent

    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, 300)}}
    np.random.seed(5)
    model = CaptioningRNN(words, input_dim=40, wordvec_dim=64, hidden_dim=128, cell_type=cell_type, dtype=dtype)
    for name, value in model.params.items():  # weights large enough that the words vary from step to step
        model.params[name] = (value + np.random.randn(*value.shape) * 0.2).astype(dtype)
    features = np.random.randn(40, 40)

    def both():
        return model.sample(features, max_length=9), model.beam_search(features[:10], beam_size=4, max_length=6)

    with fastrnn.use_backend("numpy"):
        expected = both()
    assert len(np.unique(expected[0])) > 20
    for backend in fastrnn.available_backends():
        if backend == "numpy":
            continue
        with fastrnn.use_backend(backend):
            before = _native.resident_stats()["products"]
            packed_once = both()
            assert _native.resident_stats()["products"] > before
            with monkeypatch.context() as m:
                m.setattr(_recurrent, "RESIDENT_MIN_ROWS", 10**9)
                before = _native.resident_stats()["products"]
                packed_each_time = both()
                assert _native.resident_stats()["products"] == before
        for got, again, want in zip(packed_once, packed_each_time, expected):
            np.testing.assert_array_equal(got, want, err_msg=backend)
            np.testing.assert_array_equal(again, want, err_msg=backend)
        assert _native.resident_stats()["held_here"] == 0
