"""The trainer end to end: resume identity, mid-epoch checkpoints, decay, progress, and CaptioningSolver's additions."""

import io
import json
import os
import time

import h5py
import numpy as np
import pytest

import fastrnn
from fastrnn import CaptioningRNN, CaptioningSolver
from fastrnn.data import sequences
from fastrnn.models import SequenceClassifier
from fastrnn.train import CheckpointError, Trainer
from fastrnn.train.tasks import ClassifyTask

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "sat", "on", "the", "mat", "ran", "far", "away"]
SENTENCES = ["a cat sat on the mat", "the dog ran far away", "a dog sat", "the cat ran away", "a mat",
             "the cat sat on a dog"]


def write_coco(directory, n_images=12, D=16, seed=0):
    """cs231n's COCO files in their real layout, small: 2 captions per image, features that tell them apart."""
    rng = np.random.default_rng(seed)
    word_to_idx = {w: i for i, w in enumerate(WORDS)}

    def encode(sentence):
        ids = [word_to_idx[w] for w in ["<START>", *sentence.split(), "<END>"]]
        return ids + [0] * (17 - len(ids))

    splits = {}
    for split, n in (("train", n_images), ("val", n_images // 2)):
        image_ids = np.repeat(np.arange(n), 2)
        caps = np.array([encode(SENTENCES[i % len(SENTENCES)]) for i in image_ids], dtype=np.int32)
        feats = np.stack([np.eye(D)[i % len(SENTENCES)] * 3 + 0.1 * rng.standard_normal(D) for i in range(n)])
        splits[split] = (caps, image_ids.astype(np.int32), feats.astype(np.float32))
    os.makedirs(directory, exist_ok=True)
    with h5py.File(os.path.join(directory, "coco2014_captions.h5"), "w") as f:
        for split, (caps, ids, _) in splits.items():
            f[f"{split}_captions"] = caps
            f[f"{split}_image_idxs"] = ids
    for split, (_, _, feats) in splits.items():
        with h5py.File(os.path.join(directory, f"{split}2014_vgg16_fc7_pca.h5"), "w") as f:
            f["features"] = feats
        with open(os.path.join(directory, f"{split}2014_urls.txt"), "w") as f:
            f.write("".join(f"http://img/{split}/{i}.jpg\n" for i in range(len(feats))))
    with open(os.path.join(directory, "coco2014_vocab.json"), "w") as f:
        json.dump({"idx_to_word": WORDS, "word_to_idx": word_to_idx}, f)
    return directory


def _classify_trainer(tmp_path, name, epochs, data, **kwargs):
    model = SequenceClassifier(2, vocab_size=len(data["idx_to_word"]), wordvec_dim=8, hidden_dim=12, seed=0)
    return Trainer(ClassifyTask(model, data, batch_size=32), update_rule="adam", optim_config={"learning_rate": 1e-2},
                   lr_decay=0.9, num_epochs=epochs, clip_norm=1.0, seed=3, checkpoint_dir=tmp_path / name,
                   progress=False, **kwargs)


def _assert_same_run(a, b):
    for name in a.model.params:
        np.testing.assert_array_equal(a.model.params[name], b.model.params[name], err_msg=name)
        for key, value in a.optim_configs[name].items():
            np.testing.assert_array_equal(value, b.optim_configs[name][key], err_msg=f"{name} {key}")
    assert a.history["loss"] == b.history["loss"]
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    data = sequences.load_sentiment()
    whole = _classify_trainer(tmp_path, "whole", 4, data)
    whole.train()
    first = _classify_trainer(tmp_path, "parts", 2, data)
    first.train()
    second = _classify_trainer(tmp_path, "parts", 4, data, resume=True)
    assert second.epoch == 2 and second.resumed_from.endswith("checkpoint.h5")
    second.train()
    _assert_same_run(whole, second)
    assert [r["epoch"] for r in second.history["epochs"]] == [1, 2, 3, 4]
    assert whole.optim_configs["Wx"]["t"] == second.optim_configs["Wx"]["t"] == 4 * 8
    assert whole.optim_configs["Wx"]["learning_rate"] == pytest.approx(1e-2 * 0.9 ** 4)


def test_resume_from_inside_an_epoch_is_bit_identical(tmp_path):
    data = sequences.load_sentiment()
    whole = _classify_trainer(tmp_path, "whole", 2, data)
    whole.train()
    part = _classify_trainer(tmp_path, "part", 2, data, max_steps=11, checkpoint_every=3)
    part.train()  # 8 steps an epoch: stops inside epoch 2; the last checkpoint is of step 9
    assert part.step_count == 11 and part.epoch == 1
    rest = _classify_trainer(tmp_path, "part", 2, data, resume=True)
    assert rest.step_count == 9 and rest.step_in_epoch == 1 and rest.plan is not None
    rest.train()
    _assert_same_run(whole, rest)


def test_resume_refuses_another_model(tmp_path):
    data = sequences.load_sentiment()
    _classify_trainer(tmp_path, "run", 1, data).train()
    model = SequenceClassifier(2, vocab_size=len(data["idx_to_word"]), wordvec_dim=8, hidden_dim=13, seed=0)
    trainer = Trainer(ClassifyTask(model, data), num_epochs=2, progress=False)
    with pytest.raises(CheckpointError, match=r"checkpoint\.h5.*parameter \w+ is float32 \(.*\), the model's is "
                                              r"float32 \(.*13.*\)"):
        trainer.resume(tmp_path / "run" / "checkpoint.h5")
    with pytest.raises(CheckpointError, match="update rule 'adam'.*'sgd'"):
        Trainer(ClassifyTask(_classify_trainer(tmp_path, "x", 1, data).model, data), update_rule="sgd",
                progress=False).resume(tmp_path / "run" / "checkpoint.h5")


def test_progress_bar_log_and_callbacks(tmp_path, monkeypatch):
    data = sequences.load_sentiment()
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    seen = []
    slow = lambda t, loss: time.sleep(0.15) if t.step_in_epoch < 3 else None  # let the bar redraw once or twice
    trainer = _classify_trainer(tmp_path, "run", 2, data, log_path=tmp_path / "log.json",
                                on_epoch=lambda t, r: seen.append(r["epoch"]), on_step=slow)
    trainer.progress = True
    trainer.train()
    assert seen == [1, 2]
    assert "epoch 2/2" in err.getvalue() and "sequence/s" in err.getvalue() and "loss" in err.getvalue()
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["epochs_done"] == 2 and len(log["history"]["loss"]) == 16
    record = log["history"]["epochs"][-1]
    for key in ("train_loss", "test_accuracy", "train_accuracy", "seconds", "items_per_second"):
        assert key in record
    assert log["config"]["task"]["dataset"] == "sentiment" and log["config"]["trainer"]["clip_norm"] == 1.0


def test_trainer_learns_sentiment_with_classic_sgd_and_value_clipping(tmp_path):
    """The classic NumPy tutorial recipe: plain SGD, gradients clipped into [-1, 1]."""
    data = sequences.load_sentiment()
    model = SequenceClassifier(2, vocab_size=len(data["idx_to_word"]), wordvec_dim=16, hidden_dim=32, seed=0)
    trainer = Trainer(ClassifyTask(model, data, batch_size=8), update_rule="sgd", optim_config={"learning_rate": 1.0},
                      num_epochs=40, clip_value=1.0, seed=0, progress=False)
    trainer.train()
    assert trainer.history["epochs"][-1]["train_accuracy"] > 0.95


# ----------------------------------------------------------------------------- CaptioningSolver


def _solver(data, **kwargs):
    np.random.seed(231)
    model = CaptioningRNN(data["word_to_idx"], input_dim=16, wordvec_dim=16, hidden_dim=32, cell_type="lstm")
    return CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 2e-2}, lr_decay=0.99,
                            batch_size=6, verbose=False, **kwargs)


def test_captioning_solver_resumes_bit_identically(tmp_path):
    data = fastrnn.coco.load_coco_data(write_coco(tmp_path / "coco"))
    whole = _solver(data, num_epochs=6)
    whole.train()
    first = _solver(data, num_epochs=3, checkpoint_dir=tmp_path / "ck")
    first.train()
    np.random.seed(12345)  # whatever happened in between: resume restores NumPy's global random state
    rest = _solver(data, num_epochs=6, checkpoint_dir=tmp_path / "ck", resume=True)
    assert rest.epoch == 3 and len(rest.loss_history) == 12
    rest.train()
    assert rest.loss_history == whole.loss_history
    for name in whole.model.params:
        np.testing.assert_array_equal(rest.model.params[name], whole.model.params[name], err_msg=name)


def test_captioning_solver_validation_clipping_and_bleu(tmp_path, capsys):
    data = fastrnn.coco.load_coco_data(write_coco(tmp_path / "coco"))
    solver = _solver(data, num_epochs=60, clip_norm=5.0, validate=True, beam_size=2, log_path=tmp_path / "log.json")
    solver.verbose = True
    solver.print_every = 1000
    solver.train()
    out = capsys.readouterr().out
    assert "(Epoch 60 / 60) mean loss:" in out and "bleu4:" in out
    last = solver.history["epochs"][-1]
    assert last["val_bleu1"] > 0.9 and last["val_bleu4"] > 0.8  # the val images are the train images' kinds
    bleu = solver.check_bleu("train")
    assert bleu["bleu4"] > 0.8 and set(bleu) >= {"bleu1", "bleu2", "bleu3", "bleu4", "brevity_penalty"}
    assert json.loads((tmp_path / "log.json").read_text())["history"]["metric"] == "val_bleu4"


def test_captioning_solver_still_rejects_unknown_keywords(tmp_path):
    data = fastrnn.coco.load_coco_data(write_coco(tmp_path / "coco"))
    with pytest.raises(ValueError, match="Unrecognized arguments checkpoint_directory"):
        _solver(data, checkpoint_directory="x")
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        _solver(data, resume=True)
