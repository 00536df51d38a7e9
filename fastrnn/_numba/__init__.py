"""Numba kernels for fastrnn; the backend module is ``fastrnn._numba.backend``.

Importing this package imports nothing heavy: Numba is imported, and kernels are
compiled (or loaded from Numba's on-disk cache) only when the backend is used.
"""
