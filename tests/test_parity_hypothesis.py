"""Parity on hypothesis-generated shapes and values: every backend against the oracle."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from fastrnn import layers, reference
from helpers import assert_all_close

dims = st.integers(min_value=1, max_value=9)
CELLS = [("rnn", 1), ("lstm", 4), ("gru", 3)]


def _inputs(rng, cell, gates, N, T, D, H, dtype, scale, state=False):
    """A sequence layer's arguments (with c0 after h0 for an LSTM's state form).

    ``scale`` multiplies x, h0, the biases and Wx (whose fan-in scaling is 1/sqrt(D)): at 4 the gates
    saturate.  Wh keeps 1/sqrt(H), so the recurrence stays well-conditioned: with Wh = 4 randn (H = 9,
    T = 9) the dynamics are chaotic -- a relative perturbation of 1e-7 of the float64 inputs moved the
    float64 gradients by 1.6e-4 -- and no float32 implementation can agree with another to 1e-4 there.
    """
    def randn(shape, s):
        return (s * rng.standard_normal(shape)).astype(dtype)

    G = gates * H
    args = [randn((N, T, D), scale), randn((N, H), scale)]
    if cell == "lstm" and state:
        args.append(randn((N, H), scale))
    args += [randn((D, G), scale / np.sqrt(D)), randn((H, G), 1 / np.sqrt(H)), randn((G,), scale)]
    if cell == "gru":
        args.append(randn((H,), scale))
    return args


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@pytest.mark.parametrize("cell,gates", CELLS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=dims, T=dims, D=dims, H=dims, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_sequence_fwd_bwd(backend, cell, gates, N, T, D, H, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    args = _inputs(rng, cell, gates, N, T, D, H, dtype, scale)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    with fastrnn.use_backend(backend):
        h, cache = getattr(layers, f"{cell}_forward")(*args)
        grads = getattr(layers, f"{cell}_backward")(dh, cache)
    expected_h, ref_cache = getattr(reference, f"{cell}_forward")(*args)
    assert_all_close(h, expected_h)
    assert_all_close(grads, getattr(reference, f"{cell}_backward")(dh, ref_cache))


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@pytest.mark.parametrize("cell,gates", CELLS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=dims, T=dims, D=dims, H=dims, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 4.0]),
       given=st.lists(st.booleans(), min_size=3, max_size=3))
def test_state_fwd_bwd(backend, cell, gates, N, T, D, H, dtype, seed, scale, given):
    """*_forward_state / *_backward_state, some upstream gradients None (zeros)."""
    rng = np.random.default_rng(seed)
    args = _inputs(rng, cell, gates, N, T, D, H, dtype, scale, state=True)
    with fastrnn.use_backend(backend):
        *outs, cache = getattr(layers, f"{cell}_forward_state")(*args)
        douts = [rng.standard_normal(o.shape).astype(dtype) if g else None for o, g in zip(outs, given)]
        grads = getattr(layers, f"{cell}_backward_state")(*douts, cache)
    *expected, ref_cache = getattr(reference, f"{cell}_forward_state")(*args)
    assert_all_close(tuple(outs), tuple(expected))
    assert_all_close(grads, getattr(reference, f"{cell}_backward_state")(*douts, ref_cache))


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@settings(max_examples=25, deadline=None)
@given(N=dims, T=dims, V=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_softmax_loss(backend, N, T, V, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((N, T, V))).astype(dtype)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.7
    with fastrnn.use_backend(backend):
        loss, dx = layers.temporal_softmax_loss(x, y, mask)
    expected = reference.temporal_softmax_loss(x, y, mask)
    assert_all_close((np.asarray(loss, dtype), dx), expected, dtype=dtype)
