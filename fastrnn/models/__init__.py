"""Models built only on the public layer functions (``fastrnn.layers``), so they run on every backend.

    captioning  CaptioningRNN, cs231n's image-captioning model (greedy sampling and beam search)
    charlm      CharLM, a character-level language model trained by truncated BPTT
    classifier  SequenceClassifier, a many-to-one recurrent classifier
"""

from .captioning import CaptioningRNN
from .charlm import CharLM
from .classifier import SequenceClassifier

__all__ = ["CaptioningRNN", "CharLM", "SequenceClassifier"]
