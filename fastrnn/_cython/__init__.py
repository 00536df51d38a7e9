"""The Cython backend: compiled kernels in _kernels.pyx (+ pointwise.h); see backend.py."""
