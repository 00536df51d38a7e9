"""Data sets and their loaders.

    coco        cs231n's COCO captioning files (load_coco_data, decode_captions, minibatches, images)
"""

from . import coco

__all__ = ["coco"]
