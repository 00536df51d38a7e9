"""Update rules: cs231n's expected values (optim checks of assignment 2) and defaults."""

import numpy as np
import pytest

from fastrnn import optim
from fastrnn.gradcheck import rel_error

N, D = 4, 5
w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)


def test_sgd_default_learning_rate():
    next_w, config = optim.sgd(w, dw)
    np.testing.assert_allclose(next_w, w - 1e-2 * dw)
    assert config == {"learning_rate": 1e-2}


def test_sgd_momentum():
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = optim.sgd_momentum(w, dw, {"learning_rate": 1e-3, "velocity": v})
    expected_v = 0.9 * v - 1e-3 * dw
    assert rel_error(next_w, w + expected_v) < 1e-12
    assert rel_error(config["velocity"], expected_v) < 1e-12


def test_rmsprop():
    cache = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = optim.rmsprop(w, dw, {"learning_rate": 1e-2, "cache": cache})
    expected_cache = 0.99 * cache + 0.01 * dw**2
    assert rel_error(config["cache"], expected_cache) < 1e-12
    assert rel_error(next_w, w - 1e-2 * dw / (np.sqrt(expected_cache) + 1e-8)) < 1e-12


def test_adam_matches_cs231n_values():
    # The assignment's check: t=5 means this is the 6th step.
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    next_w, config = optim.adam(w, dw, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    expected_v = np.asarray([
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    expected_m = np.asarray([
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    assert rel_error(expected_next_w, next_w) < 1e-6
    assert rel_error(expected_v, config["v"]) < 1e-6
    assert rel_error(expected_m, config["m"]) < 1e-6
    assert config["t"] == 6


def test_adam_defaults_and_inputs_untouched():
    w0, dw0 = w.copy(), dw.copy()
    _, config = optim.adam(w, dw)
    assert {k: config[k] for k in ("learning_rate", "beta1", "beta2", "epsilon", "t")} == {
        "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dw, dw0)


@pytest.mark.parametrize("rule", [optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam])
def test_float32_stays_float32(rule):
    w32, dw32 = w.astype(np.float32), dw.astype(np.float32)
    next_w, _ = rule(w32, dw32, None)
    assert next_w.dtype == np.float32
