"""``fastrnn check``: implementations of the layer contract against the NumPy oracle.

    backends    fastrnn's own backends (or any registered one) on random shapes, dtypes and layouts
"""

from .backends import LAYERS, run, table

__all__ = ["LAYERS", "run", "table"]
