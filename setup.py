"""Declares the Cython extension modules; everything else is in pyproject.toml."""

from setuptools import setup

setup(ext_modules=[])
