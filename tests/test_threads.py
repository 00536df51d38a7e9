"""Concurrent first calls: a fresh process whose threads all make their first call at once.

Each case runs tests/first_calls.py in a subprocess, so nothing is imported, compiled or
loaded before the barrier opens; every layer function, forward and backward, float32 and
float64, is compared with the oracle.  For Numba, with the package's on-disk cache (warm once
any test has run the kernels) and with an empty one (compiling under contention), and the
notice that Numba is compiling: printed once when it compiles, not when it loads.
"""

import os
import subprocess
import sys

import pytest

import fastrnn

HERE = os.path.dirname(os.path.abspath(__file__))
NOTICE = "fastrnn: compiling the Numba kernels"


def _first_calls(backend, *options, env_extra=None, timeout=600):
    env = {**os.environ, "FASTRNN_BACKEND": backend, **(env_extra or {})}
    out = subprocess.run([sys.executable, os.path.join(HERE, "first_calls.py"), *options], env=env, cwd=HERE,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0 and f"backend {backend}: ok" in out.stdout, (out.stdout[-3000:], out.stderr[-3000:])
    return out


@pytest.mark.parametrize("backend", fastrnn.available_backends())
def test_concurrent_first_calls_of_every_layer_function(backend):
    _first_calls(backend, "--threads", "6")


@pytest.mark.skipif("numba" not in fastrnn.available_backends(), reason="numba backend not available")
def test_concurrent_first_calls_compile_into_an_empty_numba_cache_and_say_so_once(tmp_path):
    """Cold: six threads compile the same kernels at once (a subset, for time); the notice comes
    once.  Warm: the second process loads them from that cache, silently."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    cold = _first_calls("numba", "--threads", "6", "--only", "rnn,sigmoid", env_extra=env)
    assert cold.stderr.count(NOTICE) == 1, cold.stderr
    assert any(name.endswith(".nbi") for _, _, files in os.walk(tmp_path) for name in files)
    warm = _first_calls("numba", "--threads", "6", "--only", "rnn,sigmoid", env_extra=env)
    assert NOTICE not in warm.stderr, warm.stderr
