"""Data sets and their loaders; everything but COCO ships with fastrnn, so training runs offline.

    coco        cs231n's COCO captioning files (load_coco_data, decode_captions, minibatches, images)
    text        text corpora for the character model (default: CPython's pydoc topics; or any UTF-8 file)
    sequences   labelled sequence sets: sentiment phrases (written for fastrnn), 8x8 digits (UCI, CC BY 4.0)
"""

from . import coco, sequences, text
from ._files import DataFileError

__all__ = ["coco", "text", "sequences", "DataFileError"]
