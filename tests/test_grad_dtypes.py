"""One dtype rule for every backward pass on every backend (and the oracle called directly):
each gradient has the dtype ``np.result_type(forward output, upstream gradients)``, as NumPy's
promotion gives it -- a float16 dout on a float64 forward gives float64 gradients, db included.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, reference
from fastrnn._tolerances import excess
import layer_cases

FORWARD_DTYPES = [np.float32, np.float64, np.float16, np.int64]
UPSTREAM_DTYPES = [np.float16, np.float32, np.float64, np.int64]
WITH_BACKWARD = [name for name, case in layer_cases.cases(np.random.default_rng(0), np.float64).items() if case[1]]


@pytest.mark.parametrize("layer", WITH_BACKWARD)
@pytest.mark.parametrize("backend", fastrnn.available_backends())
def test_every_gradient_has_the_promoted_dtype(backend, layer):
    for fdt in FORWARD_DTYPES:
        for udt in UPSTREAM_DTYPES:
            forward, backward, args = layer_cases.cases(np.random.default_rng(1), fdt)[layer]
            with fastrnn.use_backend(backend):
                outs, grads = layer_cases.run(layers, forward, backward, args, udt, seed=2)
            ref_outs, ref_grads = layer_cases.run(reference, forward, backward, args, udt, seed=2)
            expected = np.result_type(*(o.dtype for o in outs), udt)
            what = f"{layer} on {backend}, forward {np.dtype(fdt)}, upstream {np.dtype(udt)}"
            assert [g.dtype for g in grads] == [expected] * len(grads), what
            assert [g.dtype for g in ref_grads] == [expected] * len(grads), f"{what}: the oracle called directly"
            # as precise as the forward pass was: a float32 forward's activations carry float32 rounding
            # (the oracle's and a kernel's differ by an ulp), even when the upstream makes it float64
            precision = fdt if np.dtype(fdt) in (np.float32, np.float64) else expected
            for k, (g, e) in enumerate(zip(grads, ref_grads)):
                assert excess(g, e, precision) <= 1, f"{what}: gradient {k} differs from the oracle's"


def test_the_issue_case_float16_dout_on_a_float64_temporal_affine():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((2, 3, 5)).astype(np.float16)
    for backend in fastrnn.available_backends():
        with fastrnn.use_backend(backend):
            _, cache = layers.temporal_affine_forward(x, w, b)
            dx, dw, db = layers.temporal_affine_backward(dout, cache)
        assert dx.dtype == dw.dtype == db.dtype == np.float64, backend
        np.testing.assert_allclose(db, dout.astype(np.float64).sum(axis=(0, 1)), rtol=1e-12)


def test_integer_sequence_inputs_give_numpys_floats():
    """tanh of integer sums is a float, so is h: the oracle used to store it in an integer array."""
    x, h0 = np.ones((2, 3, 4), np.int64), np.ones((2, 5), np.int64)
    for cell, gates in (("rnn", 1), ("lstm", 4)):
        Wx, Wh, b = np.ones((4, 5 * gates), np.int64), np.ones((5, 5 * gates), np.int64), np.zeros(5 * gates, np.int64)
        h, _ = getattr(layers, f"{cell}_forward")(x, h0, Wx, Wh, b)
        expected, _ = getattr(reference, f"{cell}_forward")(*(a.astype(np.float64) for a in (x, h0, Wx, Wh, b)))
        assert h.dtype == np.float64
        np.testing.assert_allclose(h, expected, rtol=1e-12)


def test_db_has_shape_gates_h_whatever_shape_b_came_in():
    """A (1, H) bias is taken as NumPy broadcasts it; its gradient is (H,) everywhere (the oracle's
    rnn_backward alone gave b's shape, its lstm_backward and every backend (H,))."""
    rng = np.random.default_rng(4)
    for cell, gates in (("rnn", 1), ("lstm", 4)):
        x, h0, Wx, Wh, b = layer_cases.cell(rng, np.float64, 2, 3, 4, gates, (2, 5, 3))
        dh = rng.standard_normal((2, 5, 4))
        for backend in fastrnn.available_backends():
            with fastrnn.use_backend(backend):
                h, cache = getattr(layers, f"{cell}_forward")(x, h0, Wx, Wh, b[None])
                db = getattr(layers, f"{cell}_backward")(dh, cache)[-1]
            assert db.shape == (4 * gates,), (cell, backend)
        _, ref_cache = getattr(reference, f"{cell}_forward")(x, h0, Wx, Wh, b[None])
        assert getattr(reference, f"{cell}_backward")(dh, ref_cache)[-1].shape == (4 * gates,), cell
