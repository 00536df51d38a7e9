"""The data sets `fastrnn train` uses: shipped files, the default text corpus, user files, bad files."""

import gzip
import os
import sys

import numpy as np
import pytest

from fastrnn.data import DataFileError, sequences, text
from fastrnn.data._files import package_file


def test_sentiment_phrases_fixed_split():
    data = sequences.load_sentiment()
    assert data["classes"] == ["negative", "positive"]
    assert len(data["train_y"]) == 226 and len(data["test_y"]) == 80
    assert len(data["train_y"]) + len(data["test_y"]) >= 150
    for split in ("train", "test"):  # balanced
        assert np.bincount(data[f"{split}_y"]).tolist() == [len(data[f"{split}_y"]) // 2] * 2
    i = data["train_text"].index("not bad")
    assert data["classes"][data["train_y"][i]] == "positive"
    assert data["idx_to_word"][:2] == ["<NULL>", "<UNK>"]
    # padding: index 0 exactly where the mask is False
    assert ((data["train_x"] == 0) == ~data["train_mask"]).all()
    assert data["train_mask"][:, 0].all()
    # the test phrases are new combinations of known words, none a training phrase
    assert not set(data["test_text"]) & set(data["train_text"])
    assert not (data["test_x"] == 1).any()


def test_digits_as_row_sequences():
    data = sequences.load_digits()
    assert data["train_x"].shape == (1437, 8, 8) and data["test_x"].shape == (360, 8, 8)
    assert data["train_x"].dtype == np.float32 and 0 <= data["train_x"].min() and data["train_x"].max() <= 1
    assert sorted(set(data["test_y"].tolist())) == list(range(10))
    assert data["train_mask"] is None
    # the file is UCI optdigits.tes as scikit-learn ships it: 1797 images, each class 174..183 times
    counts = np.bincount(np.concatenate([data["train_y"], data["test_y"]]))
    assert counts.sum() == 1797 and counts.min() == 174 and counts.max() == 183


def test_package_data_is_declared_for_wheels():
    """Every shipped data file matches a package-data pattern of pyproject.toml, so wheels carry it."""
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    import fnmatch

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["fastrnn.data"]
    files = os.listdir(os.path.dirname(package_file("sentiment.tsv")))
    assert {"sentiment.tsv", "digits.csv.gz", "DIGITS-README.txt"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(f"files/{name}", p) for p in patterns), name


def test_user_phrase_file(tmp_path):
    path = tmp_path / "mine.tsv"
    lines = [f"{'pos' if i % 2 else 'neg'}\tphrase number {i} is {'fine' if i % 2 else 'poor'}" for i in range(20)]
    path.write_text("# a comment\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    data = sequences.load_phrases(path)
    assert data["classes"] == ["neg", "pos"] and data["name"] == "mine.tsv"
    assert len(data["test_y"]) == 4 and len(data["train_y"]) == 16  # every 5th phrase tests
    assert data["test_text"][0] == lines[4].split("\t")[1]


@pytest.mark.parametrize("content,message", [
    ("pos\tgood\nneg\n", r"line 2: expected 'label<TAB>phrase'"),
    ("valid\tpos\tgood\n", r"line 1: split must be 'train' or 'test'"),
    ("train\tpos\tgood\ntest\tpos\tfine\n", r"single label 'pos'"),
    ("train\tpos\tgood\ntrain\tneg\tbad\n", r"no test phrases"),
    ("train\tpos\t!!!\n", r"line 1: empty phrase"),
])
def test_bad_phrase_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=r"bad\.tsv.*" + message):
        sequences.load_phrases(path)


def test_bad_digit_files_are_named(tmp_path):
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match=r"digits\.csv\.gz.*not a readable gzip file"):
        sequences.load_digits(path)
    path.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(DataFileError, match=r"digits\.csv\.gz.* line 1: expected 64 pixels"):
        sequences.load_digits(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        sequences.load_digits(tmp_path / "nope.csv")


def test_default_corpus_is_python_docs_split_per_topic():
    corpus = text.load_corpus()
    assert corpus["name"] == "pydoc_data.topics"
    train, val = corpus["train_text"], corpus["val_text"]
    assert 0.07 < len(val) / (len(train) + len(val)) < 0.13
    assert "assert" in train and len(corpus["chars"]) > 60
    assert text.load_corpus() == corpus  # deterministic
    vocab = text.CharVocab(corpus["chars"])
    assert vocab.decode(vocab.encode(val[:500])) == val[:500]


def test_text_file_corpus(tmp_path):
    path = tmp_path / "story.txt"
    lines = [f"line {i} of a small story about nothing much." for i in range(100)]
    path.write_text("\ufeff" + "\n".join(lines), encoding="utf-8")
    corpus = text.load_corpus(path)
    assert corpus["train_text"] + corpus["val_text"] == "\n".join(lines)
    assert corpus["train_text"].endswith("much.\n") and corpus["val_text"].startswith("line ")  # at a line end
    assert 0.08 < len(corpus["val_text"]) / len("\n".join(lines)) <= 0.1
    assert "\ufeff" not in corpus["chars"]


def test_bad_text_files_are_named(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(DataFileError, match=r"latin1\.txt.*not UTF-8"):
        text.load_corpus(bad)
    short = tmp_path / "short.txt"
    short.write_text("tiny", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"short\.txt.*4 characters"):
        text.load_corpus(short)
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        text.load_corpus(tmp_path / "absent.txt")
    with pytest.raises(DataFileError, match="is a directory"):
        text.load_corpus(tmp_path)
