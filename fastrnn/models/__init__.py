"""Models built only on the public layer functions (``fastrnn.layers``), so they run on every backend.

    captioning  CaptioningRNN, cs231n's image-captioning model
"""

from .captioning import CaptioningRNN

__all__ = ["CaptioningRNN"]
