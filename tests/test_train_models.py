"""SequenceClassifier and CharLM (gradients on every backend, masks, sampling), and CaptioningRNN's beam search."""

import itertools
import math

import numpy as np
import pytest

import fastrnn
from fastrnn import CaptioningRNN, layers
from fastrnn.gradcheck import eval_numerical_gradient
from fastrnn.models import CharLM, SequenceClassifier, _recurrent
from helpers import assert_gradient_close

CELLS = list(_recurrent.available_cells())


def _captioning_accepts(cell_type):
    try:
        CaptioningRNN({"<NULL>": 0}, input_dim=2, wordvec_dim=2, hidden_dim=2, cell_type=cell_type)
        return True
    except ValueError:
        return False


CAPTION_CELLS = [c for c in CELLS if _captioning_accepts(c)]


@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


def _check_gradients(model, loss_fn):
    _, grads = loss_fn()
    assert set(grads) == set(model.params)
    for name, w in model.params.items():
        num = eval_numerical_gradient(lambda _: loss_fn()[0], w, verbose=False)
        assert grads[name].shape == w.shape and grads[name].dtype == w.dtype, name
        assert_gradient_close(num, grads[name], what=name)


# ----------------------------------------------------------------------------- SequenceClassifier

@pytest.mark.parametrize("cell_type", CELLS)
def test_classifier_gradients_words_with_padding(backend, cell_type):
    model = SequenceClassifier(3, vocab_size=7, wordvec_dim=4, hidden_dim=5, cell_type=cell_type,
                               dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, size=(4, 6))
    mask = np.arange(6)[None, :] < np.array([6, 1, 3, 4])[:, None]
    y = np.array([0, 2, 1, 2])
    _check_gradients(model, lambda: model.loss(x, y, mask))


@pytest.mark.parametrize("cell_type", CELLS)
def test_classifier_gradients_features(backend, cell_type):
    model = SequenceClassifier(4, input_dim=3, hidden_dim=6, cell_type=cell_type, dtype=np.float64, seed=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 3))
    _check_gradients(model, lambda: model.loss(x, np.array([0, 1, 2, 3, 0])))


def test_classifier_padding_does_not_change_the_answer():
    model = SequenceClassifier(2, vocab_size=9, wordvec_dim=4, hidden_dim=6, seed=3)
    x = np.array([[3, 4, 5, 0, 0]])
    padded = model.scores(x, np.array([[True, True, True, False, False]]))
    alone = model.scores(x[:, :3])
    np.testing.assert_array_equal(padded, alone)
    other_padding = model.scores(np.array([[3, 4, 5, 8, 8]]), np.array([[True, True, True, False, False]]))
    np.testing.assert_array_equal(padded, other_padding)


def test_classifier_bad_inputs():
    model = SequenceClassifier(2, vocab_size=9, hidden_dim=4)
    x = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="mask row 1 is not a prefix"):
        model.loss(x, np.array([0, 1]), np.array([[True, True, False], [True, False, True]]))
    with pytest.raises(ValueError, match="mask row 0 has no real step"):
        model.loss(x, np.array([0, 1]), np.array([[False, False, False], [True, False, False]]))
    with pytest.raises(ValueError, match=r"mask must have shape \(N, T\) = \(2, 3\)"):
        model.loss(x, np.array([0, 1]), np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(2,\)"):
        model.loss(x, np.array([0, 1, 1]))
    with pytest.raises(IndexError, match="word index 9"):
        model.loss(np.array([[9, 1, 1]]), np.array([0]))
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        SequenceClassifier(2)
    with pytest.raises(ValueError, match="cell_type"):
        SequenceClassifier(2, input_dim=3, cell_type="transformer")


# ----------------------------------------------------------------------------- CharLM

CHARS = "\nabcd e"


@pytest.mark.parametrize("cell_type", CELLS)
def test_charlm_gradients_with_carried_state(backend, cell_type):
    model = CharLM(CHARS, embed_dim=3, hidden_dim=5, cell_type=cell_type, dtype=np.float64, seed=4)
    rng = np.random.default_rng(2)
    x = rng.integers(0, len(CHARS), size=(3, 5))
    y = rng.integers(0, len(CHARS), size=(3, 5))
    h0 = rng.standard_normal((3, 5)) * 0.5
    state = (h0, rng.standard_normal((3, 5)) * 0.5 if cell_type == "lstm" else None)
    _check_gradients(model, lambda: model.loss(x, y, state)[:2])


@pytest.mark.parametrize("cell_type", CELLS)
def test_charlm_chunks_carry_the_state(cell_type):
    """Two chunks with the state carried give the forward values of one long chunk."""
    model = CharLM(CHARS, embed_dim=3, hidden_dim=5, cell_type=cell_type, dtype=np.float64, seed=5)
    rng = np.random.default_rng(3)
    x = rng.integers(0, len(CHARS), size=(2, 8))
    y = rng.integers(0, len(CHARS), size=(2, 8))
    whole, whole_state = model.nats(x, y)
    first, state = model.nats(x[:, :3], y[:, :3])
    second, end_state = model.nats(x[:, 3:], y[:, 3:], state)
    assert first + second == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(end_state[0], whole_state[0], rtol=1e-12)
    loss, _, loss_state = model.loss(x, y)
    assert loss == pytest.approx(whole / x.size, rel=1e-12)  # loss is the mean per character
    np.testing.assert_allclose(loss_state[0], whole_state[0], rtol=1e-12)


def test_charlm_sample_is_reproducible_and_greedy_at_temperature_zero():
    model = CharLM(CHARS, embed_dim=3, hidden_dim=8, seed=6)
    a = model.sample("ab", length=30, temperature=1.0, rng=7)
    assert a == model.sample("ab", length=30, temperature=1.0, rng=7)
    assert a.startswith("ab") and len(a) == 32 and set(a) <= set(CHARS)
    greedy = model.sample("ab", length=10, temperature=0)
    assert greedy == model.sample("ab", length=10, temperature=0, rng=99)
    assert len(model.sample("", length=5, rng=0)) == 5
    with pytest.raises(ValueError, match="'z' is not in the model's vocabulary"):
        model.sample("z")
    with pytest.raises(ValueError, match="temperature"):
        model.sample("a", temperature=-1)


# ----------------------------------------------------------------------------- beam search

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}


def _log_probs(model, features, prefix):
    """log p(next word | prefix) for one image, by the step functions (the model's definition)."""
    p = model.params
    h, _ = layers.affine_forward(features[None], p["W_proj"], p["b_proj"])
    c = np.zeros_like(h)
    for word in [model._start] + list(prefix):
        x, _ = layers.word_embedding_forward(np.array([word]), p["W_embed"])
        h, c = _recurrent.step(model.cell_type, x, h, c if model.cell_type == "lstm" else None, p)
    scores = np.asarray(layers.affine_forward(h, p["W_vocab"], p["b_vocab"])[0][0], dtype=np.float64)
    return scores - scores.max() - np.log(np.exp(scores - scores.max()).sum())


def _best_by_enumeration(model, features, max_length, alpha):
    V = len(WORDS)
    best, best_score = None, -math.inf
    for length in range(1, max_length + 1):
        for words in itertools.product(range(V), repeat=length):
            if any(w == model._end for w in words[:-1]):
                continue  # a caption ends at its first <END>
            if length < max_length and words[-1] != model._end:
                continue  # shorter than max_length: must end with <END>
            logp = sum(_log_probs(model, features, words[:t])[words[t]] for t in range(length))
            score = logp / length ** alpha
            if score > best_score:
                best, best_score = words, score
    return list(best)


@pytest.mark.parametrize("cell_type", CAPTION_CELLS)
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_wide_enough_is_exhaustive(cell_type, alpha):
    np.random.seed(7)
    model = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=3, hidden_dim=6, cell_type=cell_type, dtype=np.float64)
    for name in ("W_embed", "W_vocab"):  # a model whose best caption is not just the greedy one
        model.params[name] = model.params[name] * 30
    features = np.random.randn(3, 4)
    got = model.beam_search(features, beam_size=len(WORDS) ** 3, max_length=3, length_penalty=alpha)
    for n in range(3):
        expected = _best_by_enumeration(model, features[n], 3, alpha)
        assert list(got[n, :len(expected)]) == expected
        assert (got[n, len(expected):] == model._null).all()


@pytest.mark.parametrize("cell_type", CAPTION_CELLS)
def test_beam_of_one_without_length_penalty_is_greedy(backend, cell_type):
    np.random.seed(8)
    model = CaptioningRNN(WORDS, input_dim=5, wordvec_dim=4, hidden_dim=8, cell_type=cell_type)
    model.params["W_vocab"] *= 20
    features = np.random.randn(9, 5)
    np.testing.assert_array_equal(model.beam_search(features, beam_size=1, max_length=6, length_penalty=0),
                                  model.sample(features, max_length=6))


def test_beam_search_bad_arguments():
    model = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=3, hidden_dim=6)
    with pytest.raises(ValueError, match="beam_size"):
        model.beam_search(np.zeros((1, 4)), beam_size=0)
    with pytest.raises(ValueError, match="<START>"):
        CaptioningRNN({"<NULL>": 0, "x": 1}, input_dim=4).beam_search(np.zeros((1, 4)))
