"""``fastrnn check``: implementations of the layer contract against the NumPy oracle.

    backends    fastrnn's own backends (or any registered one) on random shapes, dtypes and layouts

``fastrnn check --module/--model``, anybody's cs231n-style code, one concern per module:

    target      what to check: a file (imported as part of its package) or a dotted name
    runner      the isolated child process: a time limit per function, a memory cap, crashes
    worker      what runs inside that child: calls the checked code, reports what it returned
    legacy      Python 2 code of the 2016-17 assignment, made importable
    contract    the function table: arguments, outputs, families (adding a function is one entry)
    golden      the notebooks' inputs, expected values and tolerances (shared with the tests)
    functions   the checks of one layer function and their verdict
    module      --module: every function of a module
    model       --model: a CaptioningRNN class
    report      the text table, JSON and JUnit XML
"""

from .backends import LAYERS, run, table

__all__ = ["LAYERS", "run", "table"]
