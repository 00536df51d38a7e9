"""`fastrnn train`: a short run of each command (so they never rot), resume through the command line,
a run killed mid-epoch, and the error messages."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastrnn import cli
from fastrnn.train import checkpoint
from test_train_runs import write_coco



def _run(capsys, *args):
    code = cli.main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _params(directory):
    return checkpoint.load(os.path.join(directory, "checkpoint.h5"))["params"]


def test_classify_sentiment_one_epoch(capsys, tmp_path):
    code, out, err = _run(capsys, "classify", "--dataset", "sentiment", "--epochs", "1", "--no-progress",
                          "--json", str(tmp_path / "log.json"), "--plot", str(tmp_path / "curve.png"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "fastrnn train classify: sequence classifier on sentiment"
    assert "226 training and 80 test sequences" in out and "LSTM, hidden 64" in out
    epoch = [line for line in lines if line.startswith("epoch 1/1")]
    assert len(epoch) == 1 and "train loss" in epoch[0] and "test acc" in epoch[0] and epoch[0].endswith(" s")
    assert lines[-1].startswith("done: 1 epochs, 15 steps") and "test accuracy" in lines[-1]
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["run"]["kind"] == "classify" and len(log["history"]["epochs"]) == 1
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_classify_digits_one_epoch(capsys):
    code, out, err = _run(capsys, "classify", "--dataset", "digits", "--epochs", "1", "--hidden", "32")
    assert code == 0, err
    assert "1437 training and 360 test sequences (8 steps of 8 features), 10 classes" in out
    assert "epoch 1/1" in out and "done: 1 epochs" in out


def test_charlm_one_epoch_prints_a_sample(capsys):
    code, out, err = _run(capsys, "charlm", "--epochs", "1", "--hidden", "32", "--embed", "16",
                          "--sample-length", "80", "--prime", "The ")
    assert code == 0, err
    assert "character language model on pydoc_data.topics" in out
    assert "bits/char" in out.splitlines()[4]
    sample = out.split("sample:\n")[1].splitlines()
    assert "".join(sample[:-1]).startswith("The ") and "val" in sample[-1] and "bits/char" in sample[-1]


def test_caption_one_epoch(capsys, tmp_path):
    coco = write_coco(tmp_path / "coco")
    code, out, err = _run(capsys, "caption", "--data", str(coco), "--epochs", "1", "--hidden", "16", "--embed", "8",
                          "--batch-size", "8", "--beam-size", "2")
    assert code == 0, err
    assert "24 training captions of 12 images" in out
    assert "BLEU-1" in out and "BLEU-4" in out and "done: 1 epochs, 3 steps" in out


def test_resume_through_the_command_line_is_bit_identical(capsys, tmp_path):
    common = ["classify", "--dataset", "sentiment", "--hidden", "16", "--embed", "8"]
    assert _run(capsys, *common, "--epochs", "2", "--checkpoint", str(tmp_path / "a"))[0] == 0
    code, out, _ = _run(capsys, "classify", "--epochs", "4", "--checkpoint", str(tmp_path / "a"), "--resume")
    assert code == 0 and "resumed  from" in out and "after epoch 2" in out
    assert "epoch 1/4" not in out and "epoch 3/4" in out and "done: 4 epochs, 60 steps" in out
    assert _run(capsys, *common, "--epochs", "4", "--checkpoint", str(tmp_path / "b"))[0] == 0
    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_usage_errors(capsys, tmp_path):
    code, _, err = _run(capsys, "classify", "--resume")
    assert code == 2 and "--resume needs --checkpoint DIR" in err
    code, _, err = _run(capsys, "classify", "--resume", "--checkpoint", str(tmp_path / "none"))
    assert code == 2 and "nothing to resume" in err and "none" in err
    assert _run(capsys, "classify", "--epochs", "1", "--hidden", "8", "--checkpoint", str(tmp_path / "c"))[0] == 0
    code, _, err = _run(capsys, "classify", "--epochs", "1", "--checkpoint", str(tmp_path / "c"))
    assert code == 2 and "already exists: pass --resume" in err
    code, _, err = _run(capsys, "classify", "--epochs", "2", "--hidden", "9", "--checkpoint", str(tmp_path / "c"),
                        "--resume")
    assert code == 2 and "--hidden 9 (the checkpoint has 8)" in err
    code, _, err = _run(capsys, "charlm", "--epochs", "2", "--checkpoint", str(tmp_path / "c"), "--resume")
    assert code == 2 and "`fastrnn train classify` run, not charlm" in err
    code, _, err = _run(capsys, "classify", "--backend", "cuda")
    assert code == 2 and "unknown or unavailable backend 'cuda'" in err and "numpy" in err
    code, _, err = _run(capsys, "caption", "--data", str(tmp_path))
    assert code == 2 and "coco2014_captions.h5" in err
    with pytest.raises(SystemExit):
        cli.main(["train", "classify", "--epochs", "-1"])


def test_corrupt_checkpoint_and_data_files_are_named(capsys, tmp_path):
    ck = tmp_path / "run"
    assert _run(capsys, "classify", "--epochs", "1", "--hidden", "8", "--checkpoint", str(ck))[0] == 0
    path = ck / "checkpoint.h5"
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = _run(capsys, "classify", "--epochs", "2", "--checkpoint", str(ck), "--resume")
    assert code == 2 and str(path) in err and "not a readable HDF5 file" in err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("d\xe9j\xe0 vu ".encode("latin-1") * 50)
    code, _, err = _run(capsys, "charlm", "--text", str(bad), "--epochs", "1")
    assert code == 2 and "latin1.txt" in err and "not UTF-8" in err
    phrases = tmp_path / "p.tsv"
    phrases.write_text("pos\n", encoding="utf-8")
    code, _, err = _run(capsys, "classify", "--data", str(phrases))
    assert code == 2 and "p.tsv" in err and "line 1" in err
    coco = write_coco(tmp_path / "coco")
    (coco / "val2014_vgg16_fc7_pca.h5").write_bytes(b"garbage")
    code, _, err = _run(capsys, "caption", "--data", str(coco))
    assert code == 2 and "val2014_vgg16_fc7_pca.h5" in err and "not a readable HDF5 file" in err
    (coco / "coco2014_vocab.json").write_text("{not json", encoding="utf-8")
    (coco / "val2014_vgg16_fc7_pca.h5").unlink()
    write_coco(tmp_path / "coco2")
    os.replace(tmp_path / "coco2" / "val2014_vgg16_fc7_pca.h5", coco / "val2014_vgg16_fc7_pca.h5")
    code, _, err = _run(capsys, "caption", "--data", str(coco))
    assert code == 2 and "coco2014_vocab.json" in err and "not a readable JSON vocabulary" in err


def test_killed_run_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL a real run at moments inside epochs (checkpoints written every 2 steps, so some kills land
    during a write): the last complete checkpoint always loads, and the run resumes from it to the end."""
    env = dict(os.environ)
    env.pop("FASTRNN_BACKEND", None)
    directory = tmp_path / "run"
    path = directory / "checkpoint.h5"
    command = [sys.executable, "-m", "fastrnn.cli", "train", "classify", "--dataset", "digits", "--hidden", "16",
               "--epochs", "200", "--checkpoint", str(directory), "--checkpoint-every", "2", "--no-progress"]
    steps = []
    for attempt, delay in enumerate((0.0, 0.13, 0.29)):
        args = command if attempt == 0 else command + ["--resume"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 120
            start = os.path.getmtime(path) if path.exists() else None
            while time.monotonic() < deadline and proc.poll() is None:  # wait for a checkpoint of this process
                if path.exists() and os.path.getmtime(path) != start:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
            proc.stderr.close()
        state = checkpoint.load(path)  # a complete checkpoint, never a partial one
        # every 2 steps inside an epoch, and at every epoch's end (no plan: between epochs)
        assert state["step"] % 2 == 0 or state["plan"] is None
        steps.append(state["step"])
    assert steps == sorted(steps) and steps[-1] > steps[0]
    done = subprocess.run(command[:-5] + ["--epochs", str(state["epoch"] + 1), "--checkpoint", str(directory),
                                          "--resume", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed  from" in done.stdout and f"done: {state['epoch'] + 1} epochs" in done.stdout


def test_training_bench_runs_the_same_model_everywhere(tmp_path):
    """python -m fastrnn.bench.training, small: every implementation, torch included, starts from the same
    weights and trains on the same chunks, so they all end at the same validation bits/char."""
    import fastrnn
    from fastrnn.bench import training

    path = tmp_path / "text.txt"
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran", "far", "away"]
    path.write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(400)), encoding="utf-8")
    names = list(fastrnn.available_backends())
    try:
        import torch  # noqa: F401
        names.append("torch")
    except ImportError:
        pass
    report = training.run(names, epochs=1, progress=None, text=str(path),
                          config={"hidden": 24, "embed": 8, "batch_size": 8, "seq_len": 16})
    bits = {name: records[-1]["val_bits_per_char"] for name, records in report["results"].items()}
    assert set(bits) == set(names)
    assert max(bits.values()) - min(bits.values()) < 1e-4, bits  # float32 round-off only
    assert bits["numpy"] < 3.0  # it learned something (uniform over 17 characters is 4.1 bits)
    assert "| numpy (oracle) |" in training.table(report)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_charlm_resume_is_bit_identical_from_an_epoch_end_and_from_inside_one(capsys, tmp_path, cell):
    """2 epochs then --resume to 4 equals 4 epochs; so does a run killed inside epoch 3 (the checkpoint then
    holds the epoch's position and the carried hidden/cell state) and resumed."""
    path = tmp_path / "text.txt"
    path.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}\n" for i in range(300)),
                    encoding="utf-8")
    common = ["charlm", "--text", str(path), "--cell", cell, "--hidden", "16", "--embed", "8", "--batch-size", "8",
              "--seq-len", "16", "--sample-length", "20"]
    assert _run(capsys, *common, "--epochs", "4", "--checkpoint", str(tmp_path / "whole"))[0] == 0
    assert _run(capsys, *common, "--epochs", "2", "--checkpoint", str(tmp_path / "a"))[0] == 0
    code, out, _ = _run(capsys, "charlm", "--epochs", "4", "--checkpoint", str(tmp_path / "a"), "--resume",
                        "--sample-length", "20")
    assert code == 0 and "after epoch 2" in out and "done: 4 epochs" in out
    whole = _params(tmp_path / "whole")
    for name, value in _params(tmp_path / "a").items():
        np.testing.assert_array_equal(value, whole[name], err_msg=name)
    # stop inside epoch 3: a mid-epoch checkpoint (every 5 steps), then resume
    state = checkpoint.load(tmp_path / "a" / "checkpoint.h5")
    steps_per_epoch = state["step"] // 4
    assert _run(capsys, *common, "--epochs", "2", "--checkpoint", str(tmp_path / "b"))[0] == 0
    from fastrnn.train import run as train_run

    job = train_run.prepare("charlm", {"epochs": 3, "checkpoint": str(tmp_path / "b"), "resume": True,
                                       "checkpoint_every": 5, "progress": False})
    job.trainer.max_steps = 2 * steps_per_epoch + 7  # "killed" after 7 steps of epoch 3
    job.trainer.train()
    mid = checkpoint.load(tmp_path / "b" / "checkpoint.h5")
    assert mid["epoch"] == 2 and 0 < mid["step_in_epoch"] < steps_per_epoch and mid["carry"]
    assert set(mid["carry"]) == ({"h", "c"} if cell == "lstm" else {"h"})
    code, out, _ = _run(capsys, "charlm", "--epochs", "4", "--checkpoint", str(tmp_path / "b"), "--resume",
                        "--sample-length", "20")
    assert code == 0 and f"step {mid['step_in_epoch']} of epoch 3" in out
    for name, value in _params(tmp_path / "b").items():
        np.testing.assert_array_equal(value, whole[name], err_msg=name)
