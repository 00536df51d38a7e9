"""The trainer's parts: gradient clipping, corpus BLEU, checkpoints on disk, the JSON log and the plot."""

import json
import math
import os

import h5py
import numpy as np
import pytest

from fastrnn.train import checkpoint, clip, logs, metrics
from fastrnn.train.checkpoint import CheckpointError


# ----------------------------------------------------------------------------- clipping

def test_clip_by_value_clips_each_entry_and_keeps_inputs():
    g = {"a": np.array([-3.0, 0.5, 2.0], dtype=np.float32), "b": np.array([[0.1, -0.2]])}
    before = {k: v.copy() for k, v in g.items()}
    out = clip.clip_by_value(g, 1.0)
    np.testing.assert_array_equal(out["a"], [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(out["b"], before["b"])
    assert out["a"].dtype == np.float32
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])


def test_clip_by_global_norm_scales_all_gradients_together():
    g = {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([[0.0], [4.0]], dtype=np.float32)}
    out, norm = clip.clip_by_global_norm(g, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(out["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[0.0], [0.8]], rtol=1e-6)
    assert clip.global_norm(out) == pytest.approx(1.0, rel=1e-6)
    assert out["a"].dtype == np.float32
    np.testing.assert_array_equal(g["a"], [3.0, 0.0])  # not modified
    same, norm = clip.clip_by_global_norm(g, 10.0)  # under the threshold: untouched
    assert norm == pytest.approx(5.0) and same["a"] is g["a"]


def test_global_norm_of_large_strided_and_scalar_gradients():
    """Large enough for BLAS to have threaded a dot (which it no longer calls), a transposed view, a 0-d
    array and both float dtypes: the norm in float64, as math.fsum of the squares gives it."""
    rng = np.random.default_rng(0)
    g = {"W": rng.standard_normal((256, 1024)).astype(np.float32), "Wt": rng.standard_normal((300, 70)).T,
         "s": np.array(2.5), "b": rng.standard_normal(1024).astype(np.float32)}
    squares = math.fsum(float(x) ** 2 for a in g.values() for x in np.asarray(a, np.float64).ravel())
    assert clip.global_norm(g) == pytest.approx(math.sqrt(squares), rel=1e-12)


def test_clip_lets_nan_through_and_rejects_bad_thresholds():
    out, norm = clip.clip_by_global_norm({"a": np.array([np.nan, 1.0])}, 1.0)
    assert math.isnan(norm) and np.isnan(out["a"][0])
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive finite"):
            clip.clip_by_value({"a": np.zeros(1)}, bad)


# ----------------------------------------------------------------------------- BLEU

# Papineni et al. (2002), section 2.1, example 1, and the corpus example of NLTK's corpus_bleu documentation.
HYP1 = "It is a guide to action which ensures that the military always obeys the commands of the party".split()
REF1A = "It is a guide to action that ensures that the military will forever heed Party commands".split()
REF1B = ("It is the guiding principle which guarantees the military forces always being under the command of "
         "the Party").split()
REF1C = "It is the practical guide for the army always to heed the directions of the party".split()
HYP2 = "he read the book because he was interested in world history".split()
REF2A = "he was interested in world history because he read the book".split()


def test_bleu_modified_precision_matches_the_paper():
    assert metrics.modified_precision([REF1A, REF1B, REF1C], HYP1, 1) == (17, 18)
    assert metrics.modified_precision([REF1A, REF1B, REF1C], HYP1, 2) == (10, 17)
    # "the the the ...": each "the" counts at most as often as one reference has it
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    assert metrics.modified_precision(refs, "the the the the the the the".split(), 1) == (2, 7)


def test_bleu_published_values():
    one = metrics.corpus_bleu([[REF1A, REF1B, REF1C]], [HYP1])
    assert one["bleu4"] == pytest.approx(0.5045666840058485, abs=1e-12)
    assert one["bleu1"] == pytest.approx(17 / 18)
    both = metrics.corpus_bleu([[REF1A, REF1B, REF1C], [REF2A]], [HYP1, HYP2])
    assert both["bleu4"] == pytest.approx(0.5920778868801042, abs=1e-12)  # not the mean of sentence BLEUs
    assert both["brevity_penalty"] == 1.0


def test_bleu_brevity_penalty_and_edges():
    assert metrics.brevity_penalty(28, 12) == pytest.approx(0.2635971381157267)
    assert metrics.brevity_penalty(13, 12) == pytest.approx(0.9200444146293233)
    # the closest reference length decides; on a tie the shorter one
    short = metrics.corpus_bleu([[["a"] * 13, ["a"] * 2]], [["a"] * 12])
    assert short["reference_length"] == 13
    tie = metrics.corpus_bleu([[["a"] * 13, ["a"] * 11]], [["a"] * 12])
    assert tie["reference_length"] == 11 and tie["brevity_penalty"] == 1.0
    assert metrics.corpus_bleu([[["a", "b", "c", "d"]]], [["a", "b", "c", "d"]])["bleu4"] == 1.0
    no_4gram = metrics.corpus_bleu([[["a", "b", "c"]]], [["a", "b", "c"]])
    assert no_4gram["bleu3"] == 1.0 and no_4gram["bleu4"] == 0.0
    assert metrics.corpus_bleu([[["x"]]], [[]])["bleu1"] == 0.0
    with pytest.raises(ValueError, match="same length"):
        metrics.corpus_bleu([[["a"]]], [])


def test_cross_entropy_and_bits():
    scores = np.array([[0.0, 0.0], [1000.0, 0.0]])
    assert metrics.cross_entropy(scores, np.array([0, 0])) == pytest.approx(math.log(2) / 2)
    assert metrics.bits_per_char(math.log(2)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- checkpoints

def _state(**over):
    state = {
        "epoch": 2, "step": 30, "step_in_epoch": 0, "update_rule": "adam",
        "rng": np.random.default_rng(5).bit_generator.state,
        "config": {"task": {"x": 1}}, "history": {"loss": [0.5, 0.25], "epochs": []},
        "params": {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3)},
        "optim": {"W": {"learning_rate": 0.1 * 3, "t": 7, "m": np.ones((2, 3), np.float32)}, "b": {}},
        "plan": np.array([3, 1, 2]), "carry": {"h": np.full((2, 4), 0.5)}, "np_random": np.random.get_state(),
    }
    state.update(over)
    return state


def test_checkpoint_round_trip_is_exact(tmp_path):
    path = tmp_path / "run" / "ck.h5"
    state = _state()
    checkpoint.save(path, state)
    back = checkpoint.load(path)
    for key in ("epoch", "step", "step_in_epoch", "update_rule", "rng", "config", "history"):
        assert back[key] == state[key]
    for name in state["params"]:
        assert back["params"][name].dtype == state["params"][name].dtype
        np.testing.assert_array_equal(back["params"][name], state["params"][name])
    assert back["optim"]["W"]["learning_rate"] == 0.1 * 3 and type(back["optim"]["W"]["t"]) is int
    np.testing.assert_array_equal(back["optim"]["W"]["m"], state["optim"]["W"]["m"])
    np.testing.assert_array_equal(back["plan"], state["plan"])
    np.testing.assert_array_equal(back["carry"]["h"], state["carry"]["h"])
    kind, keys, pos, has_gauss, cached = back["np_random"]
    assert kind == "MT19937" and pos == state["np_random"][2]
    np.testing.assert_array_equal(keys, state["np_random"][1])
    assert os.listdir(path.parent) == ["ck.h5"]  # no temporary file left behind


def test_checkpoint_holds_a_long_history(tmp_path):
    """The history grows with the run (a loss per step): far past HDF5's 64 kB limit for attributes."""
    history = {"loss": [0.1 + i * 1e-7 for i in range(100_000)], "epochs": []}
    checkpoint.save(tmp_path / "ck.h5", _state(history=history))
    assert checkpoint.load(tmp_path / "ck.h5")["history"] == history


def test_failed_write_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.h5"
    checkpoint.save(path, _state(epoch=1))
    before = path.read_bytes()

    def boom(f, state):
        f.create_group("params")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a write

    monkeypatch.setattr(checkpoint, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, _state(epoch=2))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.h5"]
    monkeypatch.undo()
    assert checkpoint.load(path)["epoch"] == 1


def test_corrupt_checkpoints_are_named(tmp_path):
    path = tmp_path / "ck.h5"
    checkpoint.save(path, _state())
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.h5"):
        checkpoint.load(truncated)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(CheckpointError, match=r"garbage\.h5.*not a readable HDF5 file"):
        checkpoint.load(garbage)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(CheckpointError, match=r"other\.h5.*not a fastrnn checkpoint"):
        checkpoint.load(other)
    broken = tmp_path / "broken.h5"
    checkpoint.save(broken, _state())
    with h5py.File(broken, "a") as f:
        del f["optim"]
    with pytest.raises(CheckpointError, match=r"broken\.h5.*incomplete or corrupt"):
        checkpoint.load(broken)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        checkpoint.load(tmp_path / "missing.h5")


def test_checkpoint_refuses_unknown_optimizer_state(tmp_path):
    with pytest.raises(TypeError, match="'fn' of parameter 'W'"):
        checkpoint.save(tmp_path / "ck.h5", _state(optim={"W": {"fn": object()}, "b": {}}))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- log and plot

def _history():
    return {"metric": "test_accuracy", "metric_keys": ["test_accuracy", "test_loss"], "loss": [1.0, 0.8, 0.5, 0.4],
            "loss_name": "cross-entropy",
            "epochs": [{"epoch": 1, "steps": 2, "train_loss": 0.9, "test_accuracy": 0.5, "test_loss": 0.7},
                       {"epoch": 2, "steps": 2, "train_loss": 0.45, "test_accuracy": 0.9, "test_loss": 0.3}]}


def test_json_log_is_strict_json(tmp_path):
    path = tmp_path / "sub" / "log.json"
    logs.write_json(path, {"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(3)]})
    assert json.loads(path.read_text()) == {"a": "nan", "b": 1.5, "c": [3]}
    assert os.listdir(path.parent) == ["log.json"]


def test_learning_curve_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = logs.plot_learning_curve(_history(), tmp_path / "curve.png", title="test")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_learning_curve_without_matplotlib_says_how_to_get_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"fastrnn\[plot\]"):
        logs.require_matplotlib()
