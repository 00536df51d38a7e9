"""Small labelled sequence sets for the many-to-one classifier, shipped with fastrnn (no download).

    load_sentiment()        short English phrases, positive/negative, with negations ("not bad")
    load_phrases(path)      the same from your own file: lines "label<TAB>phrase" or "split<TAB>label<TAB>phrase"
    load_digits()           the 8x8 handwritten digits (UCI optdigits test set, CC BY 4.0), rows as 8 steps

Every loader returns a dict with ``name``, ``classes`` (label names; class k is ``classes[k]``) and,
for each split in ("train", "test"), ``<split>_x``, ``<split>_mask`` and ``<split>_y``. Phrase sets
add ``idx_to_word``/``word_to_idx`` (index 0 is ``<NULL>``, the padding; 1 is ``<UNK>``, any word the
training split does not have) and ``<split>_text``. A missing file is a FileNotFoundError and a
malformed one a DataFileError, each naming the file (and the line).
"""

import gzip
import os
import re

import numpy as np

from ._files import DataFileError, package_file

__all__ = ["load_sentiment", "load_phrases", "load_digits", "tokenize", "DataFileError"]

NULL, UNK = "<NULL>", "<UNK>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text):
    """Lower-case words (letters and digits; "don't" stays one word); punctuation is dropped."""
    return _WORD.findall(text.lower())


def _read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"data file {os.fspath(path)!r} not found") from None
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFileError(f"data file {path!r} is not a readable gzip file: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"data file {path!r} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _pad(sequences, width=None):
    width = max(len(s) for s in sequences) if width is None else width
    x = np.zeros((len(sequences), width), dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=bool)
    for n, s in enumerate(sequences):
        x[n, :len(s)] = s
        mask[n, :len(s)] = True
    return x, mask


def load_phrases(path, name=None, test_every=5):
    """Reads a phrase file: one phrase a line, ``label<TAB>phrase`` or ``split<TAB>label<TAB>phrase``.

    ``split`` is "train" or "test"; without that column every ``test_every``-th phrase (the 5th,
    10th, ...) is a test phrase. Blank lines and lines starting with ``#`` are skipped. The
    vocabulary is the training split's words.
    """
    path = os.fspath(path)
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            split = "test" if (len(rows) + 1) % test_every == 0 else "train"
            label, phrase = fields
        elif len(fields) == 3:
            split, label, phrase = fields
            if split not in ("train", "test"):
                raise DataFileError(f"{path!r} line {number}: split must be 'train' or 'test', got {split!r}")
        else:
            raise DataFileError(f"{path!r} line {number}: expected 'label<TAB>phrase' or "
                                f"'split<TAB>label<TAB>phrase', got {len(fields)} tab-separated fields")
        words = tokenize(phrase)
        if not words or not label.strip():
            raise DataFileError(f"{path!r} line {number}: empty {'phrase' if not words else 'label'}")
        rows.append((split, label.strip(), words, phrase.strip()))
    for split in ("train", "test"):
        if not any(r[0] == split for r in rows):
            raise DataFileError(f"{path!r} has no {split} phrases")
    classes = sorted({r[1] for r in rows})
    if len(classes) < 2:
        raise DataFileError(f"{path!r} has a single label {classes[0]!r}; a classifier needs at least two")
    train_words = sorted({w for r in rows if r[0] == "train" for w in r[2]})
    idx_to_word = [NULL, UNK] + train_words
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    width = max(len(r[2]) for r in rows)
    data = {"name": name or os.path.basename(path), "classes": classes, "idx_to_word": idx_to_word,
            "word_to_idx": word_to_idx}
    for split in ("train", "test"):
        part = [r for r in rows if r[0] == split]
        ids = [[word_to_idx.get(w, 1) for w in r[2]] for r in part]
        data[f"{split}_x"], data[f"{split}_mask"] = _pad(ids, width)
        data[f"{split}_y"] = np.array([classes.index(r[1]) for r in part], dtype=np.int64)
        data[f"{split}_text"] = [r[3] for r in part]
    return data


def load_sentiment():
    """The sentiment phrases written for fastrnn: 226 training and 80 test phrases, positive/negative."""
    return load_phrases(package_file("sentiment.tsv"), name="sentiment")


def load_digits(path=None):
    """The 8x8 digits as sequences: ``x`` (N, 8, 8) float32 in [0, 1] (row t is step t), ``y`` the digit.

    ``path`` defaults to the copy shipped with fastrnn (see ``fastrnn/data/files/DIGITS-README.txt``:
    UCI optdigits' test set, 1797 images, CC BY 4.0). Every fifth image (0, 5, 10, ...) is the test
    split: 360 test and 1437 training images.
    """
    path = package_file("digits.csv.gz") if path is None else os.fspath(path)
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [int(v) for v in line.split(",")]
        except ValueError:
            raise DataFileError(f"{path!r} line {number}: expected 65 comma-separated integers") from None
        if len(values) != 65 or not all(0 <= v <= 16 for v in values[:64]) or not 0 <= values[64] <= 9:
            raise DataFileError(f"{path!r} line {number}: expected 64 pixels in 0..16 and a digit 0..9, "
                                f"got {len(values)} values")
        rows.append(values)
    if len(rows) < 10:
        raise DataFileError(f"{path!r} holds {len(rows)} images; too few to train on")
    table = np.array(rows, dtype=np.int64)
    x = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 8, 8)
    y = table[:, 64]
    test = np.arange(len(rows)) % 5 == 0
    data = {"name": "digits", "classes": [str(d) for d in range(10)]}
    for split, keep in (("train", ~test), ("test", test)):
        data[f"{split}_x"] = x[keep]
        data[f"{split}_mask"] = None
        data[f"{split}_y"] = y[keep]
    return data
