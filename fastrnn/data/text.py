"""Text corpora for the character language model, offline.

The default corpus is the Python documentation text that ships inside every CPython: the help topics
of ``pydoc_data.topics`` (``help("assert")``, ...; about 465 kB and 100 distinct characters). Topics are
taken in the order of their names; every tenth one (the 10th, 20th, ...) is the validation split, so
both splits span the whole documentation and the split is the same on every run of one Python
version (the text itself differs a little between Python versions).

Any UTF-8 text file works too: its first 90 % (cut at a line end) trains, the rest validates.
"""

import os

import numpy as np

from ._files import DataFileError

__all__ = ["load_corpus", "default_corpus", "CharVocab", "DataFileError"]

MIN_CHARS = 100  # below this a file cannot make a training and a validation split worth the name


class CharVocab:
    """The characters of a corpus, sorted; encodes text to int indices and back."""

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or not self.chars:
            raise ValueError("chars must be a non-empty sequence of distinct characters")
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """int64 indices of ``text``'s characters; a character outside the vocabulary is a ValueError."""
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the model's vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)


def default_corpus():
    """The pydoc topics as ``(train_text, val_text)``: the last tenth of every topic validates."""
    from pydoc_data.topics import topics

    parts = [_split(topics[name]) for name in sorted(topics)]
    return "\n\n".join(p[0].rstrip("\n") for p in parts), "\n\n".join(p[1].rstrip("\n") for p in parts if p[1])


def _read(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"text file {path!r} not found") from None
    except IsADirectoryError:
        raise DataFileError(f"text file {path!r} is a directory") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"text file {path!r} is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if len(text) < MIN_CHARS:
        raise DataFileError(f"text file {path!r} holds {len(text)} characters; at least {MIN_CHARS} are needed "
                            f"for a training and a validation split")
    return text


def _split(text, fraction=0.9):
    """At the first line end after ``fraction`` of the text (or exactly there when no line end follows)."""
    cut = int(len(text) * fraction)
    newline = text.find("\n", cut)
    if newline != -1 and newline < len(text) - 1:
        cut = newline + 1
    return text[:cut], text[cut:]


def load_corpus(path=None):
    """A corpus as a dict: ``name``, ``train_text``, ``val_text`` and ``chars`` (sorted, both splits').

    ``path`` None is the default corpus (see the module's docstring); otherwise a UTF-8 text file,
    split 90/10. A missing file is a FileNotFoundError and an unusable one a DataFileError, naming it.
    """
    if path is None:
        train, val = default_corpus()
        name = "pydoc_data.topics"
    else:
        path = os.fspath(path)
        train, val = _split(_read(path))
        name = path
    return {"name": name, "train_text": train, "val_text": val, "chars": sorted(set(train) | set(val))}
