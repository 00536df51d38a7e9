"""``fastrnn.register_backend``: a third-party module behind fastrnn.layers and ``fastrnn check --backends``."""

import sys
import types

import numpy as np
import pytest

import fastrnn
from fastrnn import _backend, cli, layers, reference


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(_backend, "_CANDIDATES", dict(_backend._CANDIDATES))
    monkeypatch.setattr(_backend, "_modules", dict(_backend._modules))


def _module(name="thirdparty_layers", without=(), **replace):
    """A module with the oracle's cs231n functions (minus ``without``), as a third party would ship."""
    module = types.ModuleType(name)
    for f in _backend.REQUIRED_FUNCTIONS:
        if f not in without:
            setattr(module, f, getattr(reference, f))
    for f, value in replace.items():
        setattr(module, f, value)
    return module


def test_registered_backend_runs_behind_layers_with_validated_contiguous_inputs():
    seen = []

    def rnn_forward(x, h0, Wx, Wh, b):
        seen.append([a.flags.c_contiguous and a.dtype == np.float32 for a in (x, h0, Wx, Wh, b)])
        return reference.rnn_forward(x, h0, Wx, Wh, b)

    assert fastrnn.register_backend("mine", _module(rnn_forward=rnn_forward)) == "mine"
    assert fastrnn.available_backends()[-1] == "mine"
    assert fastrnn.get_backend() != "mine"  # never the default
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.standard_normal((2, 3, 4)).astype(np.float32))
    args = [x, np.zeros((2, 5), np.float32), np.ones((4, 5), np.float32), np.ones((5, 5), np.float32),
            np.zeros(5, np.float32)]
    with fastrnn.use_backend("mine"):
        h, cache = layers.rnn_forward(*args)
        dx, *_ = layers.rnn_backward(np.ones_like(h), cache)
    assert seen == [[True] * 5]
    np.testing.assert_allclose(h, reference.rnn_forward(*args)[0])
    with pytest.raises(ValueError, match="h0 must have shape"):
        with fastrnn.use_backend("mine"):
            layers.rnn_forward(args[0], np.zeros((3, 5), np.float32), *args[2:])  # rejected before the backend
    fastrnn.set_backend("mine")
    try:
        assert fastrnn.get_backend() == "mine"
    finally:
        _backend._default = None


def test_registration_by_dotted_name(monkeypatch):
    monkeypatch.setitem(sys.modules, "thirdparty_layers", _module())
    fastrnn.register_backend("dotted", "thirdparty_layers")
    assert "dotted" in fastrnn.available_backends()
    with pytest.raises(ImportError, match="cannot register backend 'nope'"):
        fastrnn.register_backend("nope", "no_such_module_anywhere")


def test_missing_or_uncallable_functions_are_named():
    with pytest.raises(ValueError, match=r"does not define lstm_backward, temporal_softmax_loss") as info:
        fastrnn.register_backend("half", _module(without=("lstm_backward", "temporal_softmax_loss")))
    assert "cs231n layer contract" in str(info.value)
    with pytest.raises(ValueError, match="sigmoid is not callable"):
        fastrnn.register_backend("half", _module(sigmoid=3))
    assert "half" not in fastrnn.available_backends()


@pytest.mark.parametrize("name", ["numpy", "", None])
def test_bad_names(name):
    with pytest.raises(ValueError):
        fastrnn.register_backend(name, _module())


def test_an_optional_function_it_lacks_raises_not_implemented(monkeypatch):
    # A layer function beyond the cs231n contract (as GRU's are): calling it names backend and function.
    monkeypatch.setattr(_backend, "LAYER_FUNCTIONS", _backend.LAYER_FUNCTIONS + ("extra_forward",))
    fastrnn.register_backend("mine", _module())
    module = _backend.backend_module("mine")
    with pytest.raises(NotImplementedError, match="backend 'mine' does not implement extra_forward"):
        module.extra_forward(np.zeros(1))


def test_check_backends_passes_a_good_registered_backend_and_fails_a_broken_one(capsys):
    fastrnn.register_backend("good", _module())

    def broken_backward(dh, cache):
        dx, dh0, dWx, dWh, db = reference.rnn_backward(dh, cache)
        return dx, dh0, dWx, dWh, db * 1.5

    fastrnn.register_backend("bad", _module(rnn_backward=broken_backward))
    assert cli.main(["check", "--backends", "good", "--trials", "3"]) == 0
    assert cli.main(["check", "--backends", "bad", "--trials", "3"]) == 1
    assert "FAIL bad rnn" in capsys.readouterr().out


def test_check_backends_registers_an_importable_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "thirdparty_layers", _module())
    assert cli.main(["check", "--backends", "thirdparty_layers", "--trials", "2"]) == 0
    assert "thirdparty_layers" in capsys.readouterr().out
    assert cli.main(["check", "--backends", "no_such_module_anywhere"]) == 2
    assert "available backends" in capsys.readouterr().err
