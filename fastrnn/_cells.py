"""Facts about the recurrent cells, defined once: their names and their gate blocks.

A cell with ``gates(cell) = g`` has g blocks of H columns in ``Wx`` (D, gH), ``Wh`` (H, gH) and
``b`` (gH,): rnn 1 (tanh), lstm 4 (i, f, o, g), gru 3 (r, z, n; plus ``bhn`` (H,), the bias
of the n block's recurrent product).
"""

__all__ = ["CELLS", "gates"]

CELLS = ("rnn", "lstm", "gru")

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def gates(cell):
    """Gate blocks per hidden unit: G = gates(cell) * H columns in Wx, Wh and b."""
    try:
        return _GATES[cell]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(map(repr, CELLS))}") from None
