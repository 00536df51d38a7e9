"""Moving weights between fastrnn (cs231n layout) and other frameworks.

    from fastrnn.interop import to_torch, from_torch
    lstm = to_torch(Wx, Wh, b, cell="lstm")      # a torch.nn.LSTM with the same function
    Wx, Wh, b = from_torch(lstm)

PyTorch is imported only when one of these functions is called.
"""

from .torch import captioning_to_torch, from_torch, grads_from_torch, to_torch

__all__ = ["to_torch", "from_torch", "grads_from_torch", "captioning_to_torch"]
