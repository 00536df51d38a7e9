"""CaptioningSolver: arguments, and a small overfit that reproduces its training captions."""

import numpy as np
import pytest

import fastrnn
from fastrnn import CaptioningRNN, CaptioningSolver
from fastrnn.coco import decode_captions

WORDS = ["<NULL>", "<START>", "<END>", "a", "cat", "dog", "sat", "on", "the", "mat", "ran", "far", "away", "big"]
SENTENCES = ["a cat sat on the mat", "the dog ran far away", "a big dog sat", "the cat ran away",
             "a big mat", "the big cat sat on a dog"]


def _captioning_data(rng, T=9, D=16):
    """One image (random features) per caption; captions in cs231n's <START> ... <END> <NULL>* form."""
    word_to_idx = {w: i for i, w in enumerate(WORDS)}
    captions = np.zeros((len(SENTENCES), T), dtype=np.int32)
    for n, sentence in enumerate(SENTENCES):
        ids = [word_to_idx[w] for w in ["<START>", *sentence.split(), "<END>"]]
        captions[n, :len(ids)] = ids
    return {
        "train_captions": captions,
        "train_image_idxs": np.arange(len(SENTENCES)),
        "train_features": rng.standard_normal((len(SENTENCES), D)).astype(np.float32),
        "word_to_idx": word_to_idx,
        "idx_to_word": WORDS,
    }


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_overfit_small_data(backend, cell_type, capsys):
    np.random.seed(231)
    data = _captioning_data(np.random.default_rng(0))
    with fastrnn.use_backend(backend):
        model = CaptioningRNN(data["word_to_idx"], input_dim=16, wordvec_dim=16, hidden_dim=32, cell_type=cell_type)
        solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 2e-2},
                                  lr_decay=0.995, batch_size=len(SENTENCES), num_epochs=150, print_every=50)
        solver.train()
        assert len(solver.loss_history) == 150
        assert solver.loss_history[-1] < 1.0 < solver.loss_history[0]
        samples = model.sample(data["train_features"], max_length=8)
    expected = decode_captions(data["train_captions"][:, 1:], WORDS)
    assert decode_captions(samples, WORDS) == expected
    out = capsys.readouterr().out
    assert "(Iteration 1 / 150) loss:" in out and "(Epoch 150 / 150)" in out


def test_unknown_kwarg_is_value_error():
    data = _captioning_data(np.random.default_rng(1))
    model = CaptioningRNN(data["word_to_idx"], input_dim=16, wordvec_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="learning_rate"):
        CaptioningSolver(model, data, learning_rate=1e-3)
    with pytest.raises(ValueError, match="update_rule"):
        CaptioningSolver(model, data, update_rule="lbfgs")


def test_quiet_training_and_lr_decay(capsys):
    data = _captioning_data(np.random.default_rng(2))
    model = CaptioningRNN(data["word_to_idx"], input_dim=16, wordvec_dim=4, hidden_dim=4)
    solver = CaptioningSolver(model, data, update_rule="sgd", optim_config={"learning_rate": 0.1}, lr_decay=0.5,
                              batch_size=3, num_epochs=2, verbose=False)
    solver.train()
    assert capsys.readouterr().out == ""
    assert len(solver.loss_history) == 4  # 6 captions / batch 3 = 2 iterations an epoch
    assert all(c["learning_rate"] == pytest.approx(0.025) for c in solver.optim_configs.values())
