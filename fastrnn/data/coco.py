"""The COCO captioning data of cs231n assignment 3: loading, minibatches, decoding, images.

The files are the ones cs231n's ``cs231n/datasets/get_datasets.sh`` unpacks into
``coco_captioning/``: ``coco2014_captions.h5``, ``train2014_vgg16_fc7[_pca].h5``,
``val2014_vgg16_fc7[_pca].h5``, ``coco2014_vocab.json``, ``train2014_urls.txt`` and
``val2014_urls.txt``.
"""

import io
import json
import os
import urllib.error
import urllib.request

import numpy as np

from ._files import DataFileError

__all__ = ["load_coco_data", "decode_captions", "sample_coco_minibatch", "image_from_url"]

_WHERE = ("the cs231n assignment-3 data (coco_captioning.zip, unpacked by the assignment's "
          "cs231n/datasets/get_datasets.sh)")


def _path(base_dir, name):
    path = os.path.join(base_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO data file {name!r} not found in {os.path.abspath(base_dir)!r}; "
                                f"it is part of {_WHERE}")
    return path


def _read_h5(path, names=None):
    """The datasets of an HDF5 file as arrays (all of them, or ``names``); a bad file is a DataFileError naming it."""
    import h5py  # imported here: only the data loader needs it

    try:
        with h5py.File(path, "r") as f:
            names = list(f.keys()) if names is None else names
            missing = [n for n in names if n not in f]
            if missing:
                raise DataFileError(f"COCO data file {path!r} has no dataset {missing[0]!r}")
            return {n: np.asarray(f[n]) for n in names}
    except OSError as exc:
        raise DataFileError(f"COCO data file {path!r} is not a readable HDF5 file (truncated or corrupt?): {exc}") \
            from None


def load_coco_data(base_dir, max_train=None, pca_features=True):
    """Loads the captions, image features, vocabulary and image URLs into one dict.

    Keys: ``train_captions``, ``train_image_idxs``, ``val_captions``, ``val_image_idxs``,
    ``train_features``, ``val_features``, ``idx_to_word``, ``word_to_idx``,
    ``train_urls``, ``val_urls``. ``pca_features`` picks the 512-d PCA features over the
    4096-d fc7 ones. ``max_train`` keeps that many training captions drawn at random (with
    replacement, as cs231n does).
    """
    data = _read_h5(_path(base_dir, "coco2014_captions.h5"))
    suffix = "_pca" if pca_features else ""
    for split in ("train", "val"):
        data[f"{split}_features"] = _read_h5(_path(base_dir, f"{split}2014_vgg16_fc7{suffix}.h5"), ["features"])["features"]
    vocab = _path(base_dir, "coco2014_vocab.json")
    with open(vocab, "r", encoding="utf-8") as f:
        try:
            data.update(json.load(f))
        except ValueError as exc:  # not JSON, or not UTF-8
            raise DataFileError(f"COCO data file {vocab!r} is not a readable JSON vocabulary: {exc}") from None
    for split in ("train", "val"):
        with open(_path(base_dir, f"{split}2014_urls.txt"), "r", encoding="utf-8") as f:
            data[f"{split}_urls"] = np.asarray([line.strip() for line in f])
    if max_train is not None:
        keep = np.random.randint(data["train_captions"].shape[0], size=max_train)
        data["train_captions"] = data["train_captions"][keep]
        data["train_image_idxs"] = data["train_image_idxs"][keep]
    return data


def decode_captions(captions, idx_to_word):
    """Turns word indices into strings: (T,) -> str, (N, T) -> list of N str.

    ``<NULL>`` is skipped; decoding stops after ``<END>`` (which is kept, as in cs231n).
    ``idx_to_word`` is a list or a dict from index to word.
    """
    captions = np.asarray(captions)
    singleton = captions.ndim == 1
    if singleton:
        captions = captions[None]
    if captions.ndim != 2:
        raise ValueError(f"captions must be 1-D (T,) or 2-D (N, T), got shape {captions.shape}")
    decoded = []
    for row in captions:
        words = []
        for idx in row:
            word = idx_to_word[int(idx)]
            if word != "<NULL>":
                words.append(word)
            if word == "<END>":
                break
        decoded.append(" ".join(words))
    return decoded[0] if singleton else decoded


def sample_coco_minibatch(data, batch_size=100, split="train"):
    """Draws ``batch_size`` captions of ``split`` at random (with replacement).

    Returns ``(captions, image_features, urls)``; ``urls`` is None when ``data`` has none.
    """
    if split not in ("train", "val"):
        raise ValueError(f'split must be "train" or "val", got {split!r}')
    captions = data[f"{split}_captions"]
    pick = np.random.choice(captions.shape[0], batch_size)
    image_idxs = data[f"{split}_image_idxs"][pick]
    urls = data.get(f"{split}_urls")
    return captions[pick], data[f"{split}_features"][image_idxs], None if urls is None else urls[image_idxs]


def image_from_url(url, timeout=30):
    """Downloads an image and returns it as a uint8 array (H, W[, C]), or None on a URL error.

    Unlike the original, nothing is written to disk (so no temporary file can be left
    behind or stay locked), and an HTTP error is reported as such: ``HTTPError`` is a
    subclass of ``URLError`` and must be caught first. Needs Pillow.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("image_from_url needs Pillow: pip install pillow") from exc
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as e:
        print("HTTP Error: ", e.code, url)
        return None
    except urllib.error.URLError as e:
        print("URL Error: ", e.reason, url)
        return None
    with Image.open(io.BytesIO(payload)) as img:
        return np.asarray(img)
