"""Declares the extension modules (the Cython kernels, and the C kernels both compiled backends share);
everything else is in pyproject.toml.

The build needs Cython, NumPy (headers) and SciPy (scipy/linalg/cython_blas.pxd), all declared in
pyproject.toml's [build-system].  A failed build fails the install: the extension is not optional.

Flags: -O3 only, plus -fno-trapping-math, which tells gcc that floating-point operations raise no
signals we care about, so it may if-convert the selects in pointwise.h and vectorize those loops.  It
changes no result: no -ffast-math, so NaN and inf propagate exactly as IEEE (and NumPy) say.  No
-march: pointwise.h picks AVX-512 / AVX2 / SSE2 code at run time (target_clones), so one binary runs on
any x86-64.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

_FLAGS = ["/O2"] if os.name == "nt" else ["-O3", "-fno-trapping-math"]

extensions = [
    # The packed-weight micro-kernels, the thread team and the array pool: plain C, shared by both
    # compiled backends (fastrnn/_native/__init__.py says how).
    Extension(
        "fastrnn._native._native",
        sources=["fastrnn/_native/_native.c"],
        depends=["fastrnn/_native/fma.h", "fastrnn/_native/packed.h", "fastrnn/_native/packed_template.h",
                 "fastrnn/_native/pool.h", "fastrnn/_native/product.h", "fastrnn/_native/resident.h",
                 "fastrnn/_native/roundtrip.h", "fastrnn/_native/team.h"],
        include_dirs=[numpy.get_include(), "fastrnn/_native"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=_FLAGS + ([] if os.name == "nt" else ["-pthread"]),
        extra_link_args=[] if os.name == "nt" else ["-pthread"],
    ),
    Extension(
        "fastrnn._cython._kernels",
        sources=["fastrnn/_cython/_kernels.pyx"],
        # listed here so that changes rebuild the extension and an sdist ships them (cythonize swaps
        # the .pyx source for the generated .c, which alone could not rebuild from the sdist)
        depends=["fastrnn/_cython/_kernels.pyx", "fastrnn/_cython/pointwise.h", "fastrnn/_cython/pointwise_template.h"],
        include_dirs=[numpy.get_include(), "fastrnn/_cython"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=_FLAGS,
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}))
