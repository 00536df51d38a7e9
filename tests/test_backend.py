"""The backend registry: names, defaults, overrides, errors."""

import os
import subprocess
import sys

import pytest

import fastrnn
from fastrnn import _backend
from helpers import REQUIRED_BACKENDS


def test_numpy_is_always_available():
    assert "numpy" in fastrnn.available_backends()


def test_required_backends_are_available():
    # CI sets FASTRNN_REQUIRE_BACKENDS so a backend that fails to build or import fails the run
    # instead of having its parity tests silently not run.
    missing = [b for b in REQUIRED_BACKENDS if b not in fastrnn.available_backends()]
    assert not missing, f"backends {missing} were required but do not import: {fastrnn.available_backends()}"


def test_default_is_first_available():
    code = "import fastrnn; print(fastrnn.get_backend())"
    env = {k: v for k, v in os.environ.items() if k != _backend.ENV_VAR}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == fastrnn.available_backends()[0]


@pytest.mark.parametrize("name", ["numpy"])
def test_environment_variable_selects(name):
    code = "import fastrnn; print(fastrnn.get_backend())"
    env = {**os.environ, _backend.ENV_VAR: name}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == name


def test_environment_variable_unknown_name_is_a_clear_error():
    code = "import fastrnn; fastrnn.get_backend()"
    env = {**os.environ, _backend.ENV_VAR: "fortran"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "unknown backend 'fortran'" in out.stderr and "numpy" in out.stderr


def test_set_and_use_backend():
    before = fastrnn.get_backend()
    for name in fastrnn.available_backends():
        with fastrnn.use_backend(name) as active:
            assert active == name == fastrnn.get_backend()
        assert fastrnn.get_backend() == before
    fastrnn.set_backend("numpy")
    try:
        assert fastrnn.get_backend() == "numpy"
    finally:
        fastrnn.set_backend(before)


def test_use_backend_restores_after_an_exception():
    before = fastrnn.get_backend()
    with pytest.raises(RuntimeError):
        with fastrnn.use_backend("numpy"):
            raise RuntimeError
    assert fastrnn.get_backend() == before


@pytest.mark.parametrize("name", ["fortran", "", None, 3])
def test_unknown_backend_lists_the_available_ones(name):
    with pytest.raises(ValueError, match=r"unknown backend .*available backends: \['"):
        fastrnn.set_backend(name)


def test_unavailable_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(_backend._modules, "cython", ImportError("No module named 'fastrnn._cython._kernels'"))
    with pytest.raises(ValueError, match="backend 'cython' is not available .*pip install -e"):
        fastrnn.set_backend("cython")
    assert "cython" not in fastrnn.available_backends()


def test_incomplete_backend_is_not_available(monkeypatch):
    import types

    fake = types.ModuleType("fake_backend")
    monkeypatch.setitem(_backend._CANDIDATES, "fake", ("fake_backend", "nothing"))
    monkeypatch.setitem(sys.modules, "fake_backend", fake)
    monkeypatch.delitem(_backend._modules, "fake", raising=False)
    assert "fake" not in fastrnn.available_backends()
    with pytest.raises(ValueError, match="does not define affine_forward"):
        fastrnn.set_backend("fake")
    _backend._modules.pop("fake", None)


def test_backend_that_fails_to_import_is_unavailable(monkeypatch, tmp_path):
    """Any import failure (not only ImportError) leaves the backend out instead of breaking every call."""
    (tmp_path / "fastrnn_broken_backend.py").write_text("raise AttributeError('half-built extension')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(_backend._CANDIDATES, "broken", ("fastrnn_broken_backend", "rebuild it"))
    monkeypatch.delitem(_backend._modules, "broken", raising=False)
    try:
        assert "broken" not in fastrnn.available_backends()
        with pytest.raises(ValueError, match="backend 'broken' is not available .*half-built extension"):
            fastrnn.set_backend("broken")
    finally:
        _backend._modules.pop("broken", None)


def test_use_backend_is_per_thread():
    # Two threads, each inside its own use_backend block, in lockstep: each sees only its own
    # choice, and the main thread (in no block) keeps the default throughout.
    import threading

    names = fastrnn.available_backends()
    other = names[1] if len(names) > 1 else names[0]
    default = fastrnn.get_backend()
    barrier = threading.Barrier(3, timeout=30)
    seen = {}

    def worker(name):
        with fastrnn.use_backend(name):
            barrier.wait()  # both blocks are open now
            seen[name] = fastrnn.get_backend()
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("numpy", other)]
    for t in threads:
        t.start()
    barrier.wait()
    in_main = fastrnn.get_backend()
    barrier.wait()
    for t in threads:
        t.join()
    assert seen == {"numpy": "numpy", other: other}
    assert in_main == default


def test_set_backend_is_the_default_of_threads_without_a_block():
    import threading

    before = fastrnn.get_backend()
    seen = []
    try:
        with fastrnn.use_backend(before):  # this thread's block is not changed by set_backend
            fastrnn.set_backend("numpy")
            assert fastrnn.get_backend() == before
            t = threading.Thread(target=lambda: seen.append(fastrnn.get_backend()))
            t.start()
            t.join()
        assert seen == ["numpy"] and fastrnn.get_backend() == "numpy"
    finally:
        fastrnn.set_backend(before)


def test_backward_runs_on_the_forward_backend_in_another_thread():
    # The cache remembers its backend, whichever backend the thread calling backward has.
    import threading

    import numpy as np

    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5))
    Wx, Wh, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 5)), rng.standard_normal(5)
    with fastrnn.use_backend("numpy"):
        h, cache = fastrnn.layers.rnn_forward(x, h0, Wx, Wh, b)
    out = []
    t = threading.Thread(target=lambda: out.append(fastrnn.layers.rnn_backward(np.ones_like(h), cache)))
    t.start()
    t.join()
    expected = fastrnn.reference.rnn_backward(np.ones_like(h), fastrnn.reference.rnn_forward(x, h0, Wx, Wh, b)[1])
    for a, e in zip(out[0], expected):
        np.testing.assert_allclose(a, e, rtol=1e-12)
