"""Parity on hypothesis-generated shapes and values: every backend against the oracle."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from fastrnn import layers, reference
from helpers import assert_all_close

dims = st.integers(min_value=1, max_value=9)


@pytest.mark.parametrize("backend", fastrnn.available_backends())
@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4)])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=dims, T=dims, D=dims, H=dims, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_sequence_fwd_bwd(backend, cell, gates, N, T, D, H, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    args = [(scale * rng.standard_normal(s)).astype(dtype)
            for s in [(N, T, D), (N, H), (D, gates * H), (H, gates * H), (gates * H,)]]
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    with fastrnn.use_backend(backend):
        h, cache = getattr(layers, f"{cell}_forward")(*args)
        grads = getattr(layers, f"{cell}_backward")(dh, cache)
    expected_h, ref_cache = getattr(reference, f"{cell}_forward")(*args)
    assert_all_close(h, expected_h)
    assert_all_close(grads, getattr(reference, f"{cell}_backward")(dh, ref_cache))


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
