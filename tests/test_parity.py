"""Parity: every compiled backend against the NumPy oracle.

backend x dtype x shapes (sizes of 1 included) x memory layout, forward values and
every gradient, for every layer function; plus mixed dtypes, inputs left unmodified,
and caches handed across backends.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, reference
from helpers import COMPILED_BACKENDS, LAYOUTS, assert_all_close, layout
from helpers import randn as _randn
from helpers import sequence_inputs as _seq_inputs
from helpers import state_inputs

DTYPES = [np.float32, np.float64]

# (N, T, D, H): sizes of 1 in every position, odd sizes, the canonical "tiny" size, and a long
# sequence (N*T >= 256, where a backend may switch to a different BPTT strategy).
SEQ_SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (1, 5, 3, 1), (3, 1, 2, 4), (4, 7, 1, 3), (10, 13, 30, 40), (4, 70, 3, 5)]


# "numpy" is included: it checks the plumbing of fastrnn.layers (validation, layouts, caches).
@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


# ------------------------------------------------------------------ input factories


def _step_inputs(rng, dtype, shape, gates):
    N, _, D, H = shape
    args = [
        _randn(rng, (N, D), dtype),
        _randn(rng, (N, H), dtype, 0.5),
        _randn(rng, (D, gates * H), dtype, 1 / np.sqrt(D)),
        _randn(rng, (H, gates * H), dtype, 1 / np.sqrt(H)),
        _randn(rng, (gates * H,), dtype, 0.5),
    ]
    if gates == 4:
        args.insert(2, _randn(rng, (N, H), dtype))  # prev_c
    if gates == 3:
        args.append(_randn(rng, (H,), dtype, 0.5))  # bhn
    return args


def _run(module, name, args, rng_seed, dtype):
    """Forward, then backward with upstream gradients drawn from a fixed seed."""
    forward = getattr(module, f"{name}_forward")
    backward = getattr(module, f"{name}_backward")
    result = forward(*args)
    outs, cache = result[:-1], result[-1]
    rng = np.random.default_rng(rng_seed)
    douts = [_randn(rng, o.shape, dtype) for o in outs]
    grads = backward(*douts, cache)
    return outs, grads if isinstance(grads, tuple) else (grads,)


def _check_layer(name, args, dtype, kinds=LAYOUTS):
    """Runs `name` on the active backend and on the oracle for every layout; compares everything."""
    expected = _run(reference, name, args, 1, dtype)
    for kind in kinds:
        laid = [layout(a, kind) if isinstance(a, np.ndarray) else a for a in args]
        before = [np.array(a, copy=True) for a in laid]
        outs, grads = _run(layers, name, laid, 1, dtype)
        msg = f"{name} on {fastrnn.get_backend()}, {np.dtype(dtype)}, layout {kind}"
        assert_all_close(tuple(outs), tuple(expected[0]), err_msg=msg + " forward")
        assert_all_close(tuple(grads), tuple(expected[1]), err_msg=msg + " backward")
        for a, b in zip(laid, before):
            np.testing.assert_array_equal(a, b, err_msg=msg + ": an input was modified")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SEQ_SHAPES)
@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_sequence(backend, cell, gates, shape, dtype):
    args = _seq_inputs(np.random.default_rng(0), dtype, shape, gates)
    _check_layer(cell, args, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SEQ_SHAPES)
@pytest.mark.parametrize("cell,gates", [("rnn_step", 1), ("lstm_step", 4), ("gru_step", 3)])
def test_step(backend, cell, gates, shape, dtype):
    args = _step_inputs(np.random.default_rng(1), dtype, shape, gates)
    _check_layer(cell, args, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,M", [((1, 1), 1), ((4, 5), 3), ((3, 2, 4), 6), ((2, 3, 1, 2), 5), ((7,), 2)])
def test_affine(backend, x_shape, M, dtype):
    rng = np.random.default_rng(2)
    D = int(np.prod(x_shape[1:]))
    args = [_randn(rng, x_shape, dtype), _randn(rng, (D, M), dtype), _randn(rng, (M,), dtype)]
    _check_layer("affine", args, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (10, 13, 30, 7)])
def test_temporal_affine(backend, shape, dtype):
    N, T, D, M = shape
    rng = np.random.default_rng(3)
    args = [_randn(rng, (N, T, D), dtype), _randn(rng, (D, M), dtype), _randn(rng, (M,), dtype)]
    _check_layer("temporal_affine", args, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(1,), (5,), (4, 1), (3, 6), (2, 3, 4)])
def test_word_embedding(backend, x_shape, dtype):
    rng = np.random.default_rng(4)
    V, D = 7, 3
    x = rng.integers(0, V, size=x_shape)  # small V: repeated indices are certain
    _check_layer("word_embedding", [x, _randn(rng, (V, D), dtype)], dtype)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.uint8])
def test_word_embedding_index_dtypes(backend, index_dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, size=(3, 4)).astype(index_dtype)
    _check_layer("word_embedding", [x, _randn(rng, (5, 2), np.float32)], np.float32, kinds=("C",))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 5), (2, 3, 4), (10, 13, 50)])
@pytest.mark.parametrize("mask_kind", ["bool", "float", "all_false"])
def test_temporal_softmax_loss(backend, shape, dtype, mask_kind):
    N, T, V = shape
    rng = np.random.default_rng(6)
    x = _randn(rng, shape, dtype, 3.0)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) > 0.3
    if mask_kind == "float":
        mask = mask.astype(np.float64)
    elif mask_kind == "all_false":
        mask[:] = False
    expected = reference.temporal_softmax_loss(x, y, mask)
    for kind in LAYOUTS:
        lx, ly, lm = layout(x, kind), layout(y, kind), layout(mask, kind)
        loss, dx = layers.temporal_softmax_loss(lx, ly, lm)
        msg = f"temporal_softmax_loss on {fastrnn.get_backend()}, {np.dtype(dtype)}, layout {kind}"
        assert dx.dtype == expected[1].dtype, msg
        assert_all_close((np.asarray(loss, dtype), dx), expected, dtype=dtype, err_msg=msg)
        np.testing.assert_array_equal(lx, x, err_msg=msg)


@pytest.mark.parametrize("dtype", DTYPES)
def test_temporal_softmax_loss_extreme_scores(backend, dtype):
    # Scores far apart: the target's probability underflows; the loss must stay finite and exact.
    x = np.array([[[0.0, 1e4, -1e4], [50.0, -50.0, 0.0]]], dtype=dtype)
    y, mask = np.array([[2, 1]]), np.array([[True, True]])
    assert_all_close(
        tuple(np.asarray(v) for v in layers.temporal_softmax_loss(x, y, mask)),
        tuple(np.asarray(v) for v in reference.temporal_softmax_loss(x, y, mask)),
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 4), (2, 3, 5)])
def test_sigmoid(backend, shape, dtype):
    rng = np.random.default_rng(7)
    x = _randn(rng, shape, dtype, 30.0)
    for kind in LAYOUTS if shape else ("C",):
        out = layers.sigmoid(layout(x, kind))
        assert out.dtype == np.dtype(dtype)
        assert_all_close(out, reference.sigmoid(x), dtype=dtype)


def test_sigmoid_extremes(backend):
    for dtype in DTYPES:
        x = np.array([-np.inf, -1e6, -100.0, -1.0, 0.0, 1.0, 100.0, 1e6, np.inf], dtype=dtype)
        with np.errstate(over="raise", invalid="raise"):  # no overflow inside, whatever the backend
            out = layers.sigmoid(x)
        assert_all_close(out, reference.sigmoid(x), dtype=dtype)
        assert out[0] == 0 and out[-1] == 1 and out[4] == 0.5


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_nan_propagates(backend, cell, gates):
    args = _seq_inputs(np.random.default_rng(8), np.float64, (2, 3, 4, 5), gates)
    args[0][1, 1, 2] = np.nan
    h, cache = getattr(layers, f"{cell}_forward")(*args)
    expected, ref_cache = getattr(reference, f"{cell}_forward")(*args)
    np.testing.assert_array_equal(np.isnan(h), np.isnan(expected))
    assert np.isnan(h[1, 1:]).all() and not np.isnan(h[0]).any()
    dh = np.ones_like(h)
    for got, want in zip(getattr(layers, f"{cell}_backward")(dh, cache), getattr(reference, f"{cell}_backward")(dh, ref_cache)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


# ------------------------------------------------------------------ carried state

STATE_CELLS = ["rnn", "lstm", "gru"]
# Which upstream gradients a backward_state gets (by position: dh, dhT, dcT); the others are None (zeros).
GIVEN = [(0, 1, 2), (0,), (1, 2)]


def _run_state(module, cell, args, rng_seed, dtype, given):
    *outs, cache = getattr(module, f"{cell}_forward_state")(*args)
    rng = np.random.default_rng(rng_seed)
    douts = [_randn(rng, o.shape, dtype) if k in given else None for k, o in enumerate(outs)]
    grads = getattr(module, f"{cell}_backward_state")(*douts, cache)
    return outs, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SEQ_SHAPES)
@pytest.mark.parametrize("cell", STATE_CELLS)
def test_state(backend, cell, shape, dtype):
    """*_forward_state / *_backward_state: outputs, final states and every gradient (dh0, dc0 included),
    with the upstream gradients of the steps, of the final states, or of both."""
    args = state_inputs(np.random.default_rng(20), dtype, shape, cell)
    for given in GIVEN:
        expected = _run_state(reference, cell, args, 21, dtype, given)
        for kind in LAYOUTS:
            laid = [layout(a, kind) for a in args]
            before = [np.array(a, copy=True) for a in laid]
            outs, grads = _run_state(layers, cell, laid, 21, dtype, given)
            msg = f"{cell}_forward_state on {fastrnn.get_backend()}, {np.dtype(dtype)}, layout {kind}, given {given}"
            assert len(outs) == len(expected[0]) and len(grads) == len(args), msg
            assert_all_close(tuple(outs), tuple(expected[0]), err_msg=msg + " forward")
            assert_all_close(tuple(grads), tuple(expected[1]), err_msg=msg + " backward")
            for final in outs[1:]:  # hT, cT: arrays of their own
                assert final.flags.c_contiguous and final.flags.writeable, msg
                assert not any(np.shares_memory(final, a) for a in [*outs[:1], *laid]), msg
            for a, b in zip(laid, before):
                np.testing.assert_array_equal(a, b, err_msg=msg + ": an input was modified")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 6), (4, 70, 3, 5)])
def test_lstm_without_c0(backend, shape, dtype):
    """c0 = None is zeros, in lstm_forward_state and in lstm_forward(c0=...)."""
    args = state_inputs(np.random.default_rng(22), dtype, shape, "lstm")
    args[2] = None
    expected = _run_state(reference, "lstm", args, 23, dtype, (0, 1, 2))
    outs, grads = _run_state(layers, "lstm", args, 23, dtype, (0, 1, 2))
    assert_all_close(tuple(outs), tuple(expected[0]))
    assert_all_close(tuple(grads), tuple(expected[1]))
    x, h0, _, Wx, Wh, b = args
    h, cache = layers.lstm_forward(x, h0, Wx, Wh, b, c0=None)
    assert_all_close(h, expected[0][0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_lstm_forward_with_c0(backend, kind, dtype):
    """The keyword c0 of cs231n's lstm_forward: same h, and lstm_backward's five gradients."""
    x, h0, c0, Wx, Wh, b = (layout(a, kind) for a in state_inputs(np.random.default_rng(24), dtype, (3, 4, 5, 6), "lstm"))
    h, cache = layers.lstm_forward(x, h0, Wx, Wh, b, c0=c0)
    eh, ecache = reference.lstm_forward(x, h0, Wx, Wh, b, c0=c0)
    dh = _randn(np.random.default_rng(25), h.shape, dtype)
    assert_all_close(h, eh)
    grads = layers.lstm_backward(dh, cache)
    assert len(grads) == 5
    assert_all_close(grads, reference.lstm_backward(dh, ecache))


@pytest.mark.parametrize("cell", STATE_CELLS)
def test_either_backward_takes_either_forwards_cache(backend, cell):
    args = state_inputs(np.random.default_rng(26), np.float64, (2, 3, 4, 5), cell)
    cs231n_args = [a for k, a in enumerate(args) if not (cell == "lstm" and k == 2)]  # no c0: zeros
    state_args = list(args)
    if cell == "lstm":
        state_args[2] = np.zeros_like(args[1])
    rng = np.random.default_rng(27)
    dh, dhT = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 5))
    *_, ref_cache = getattr(reference, f"{cell}_forward_state")(*state_args)
    finals = (dhT, None) if cell == "lstm" else (dhT,)
    expected_state = getattr(reference, f"{cell}_backward_state")(dh, *finals, ref_cache)
    expected_cs231n = getattr(reference, f"{cell}_backward")(dh, ref_cache)

    _, cache = getattr(layers, f"{cell}_forward")(*cs231n_args)
    assert_all_close(getattr(layers, f"{cell}_backward_state")(dh, *finals, cache), expected_state)
    *_, cache = getattr(layers, f"{cell}_forward_state")(*state_args)
    assert_all_close(getattr(layers, f"{cell}_backward")(dh, cache), expected_cs231n)


@pytest.mark.parametrize("cell", STATE_CELLS)
def test_state_mixed_dtypes(backend, cell):
    """A float64 initial state next to float32 weights computes in float64; so does a float64 gradient
    of the final state handed to the backward of a float32 forward."""
    args = state_inputs(np.random.default_rng(28), np.float32, (3, 4, 5, 6), cell)
    promoted = list(args)
    promoted[1] = args[1].astype(np.float64)
    outs, grads = _run_state(layers, cell, promoted, 29, np.float64, (0, 1, 2))
    expected = _run_state(reference, cell, promoted, 29, np.float64, (0, 1, 2))
    assert all(o.dtype == np.float64 for o in outs) and all(g.dtype == np.float64 for g in grads)
    assert_all_close(tuple(outs), tuple(expected[0]), dtype=np.float32)  # see test_mixed_dtypes_promote_like_numpy
    assert_all_close(tuple(grads), tuple(expected[1]), dtype=np.float32)

    *outs, cache = getattr(layers, f"{cell}_forward_state")(*args)
    *_, ref_cache = getattr(reference, f"{cell}_forward_state")(*args)
    assert all(o.dtype == np.float32 for o in outs)  # float32 stays float32
    finals = [np.random.default_rng(30).standard_normal(o.shape) for o in outs[1:]]  # float64
    grads = getattr(layers, f"{cell}_backward_state")(None, *finals, cache)
    assert all(g.dtype == np.float64 for g in grads)
    assert_all_close(grads, getattr(reference, f"{cell}_backward_state")(None, *finals, ref_cache), dtype=np.float32)


# ------------------------------------------------------------------ mixed dtypes


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_mixed_dtypes_promote_like_numpy(backend, cell, gates):
    args = _seq_inputs(np.random.default_rng(9), np.float32, (3, 4, 5, 6), gates)
    args[1] = args[1].astype(np.float64)  # a float64 h0 next to float32 everything else
    outs, grads = _run(layers, cell, args, 1, np.float64)
    expected = _run(reference, cell, args, 1, np.float64)
    assert outs[0].dtype == np.float64
    # NumPy computes x @ Wx in float32 before promoting; fastrnn promotes first, so the
    # results agree to float32 rounding.
    assert_all_close(tuple(outs), tuple(expected[0]), dtype=np.float32)
    assert_all_close(tuple(grads), tuple(expected[1]), dtype=np.float32)


def test_lstm_step_float64_cell_state(backend):
    # cs231n sampling code: c = np.zeros(h.shape) (float64) next to float32 h and weights.
    x, prev_h, _, Wx, Wh, b = _step_inputs(np.random.default_rng(10), np.float32, (2, 1, 3, 4), 4)
    prev_c = np.zeros(prev_h.shape)
    next_h, next_c, _ = layers.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    eh, ec, _ = reference.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    assert next_h.dtype == eh.dtype == np.float64 and next_c.dtype == np.float64
    assert_all_close((next_h, next_c), (eh, ec), dtype=np.float32)  # see test_mixed_dtypes_promote_like_numpy


def test_float64_gradient_into_float32_forward(backend):
    args = _seq_inputs(np.random.default_rng(11), np.float32, (2, 3, 4, 5), 4)
    h, cache = layers.lstm_forward(*args)
    dh = np.random.default_rng(12).standard_normal(h.shape)  # float64
    grads = layers.lstm_backward(dh, cache)
    _, ref_cache = reference.lstm_forward(*args)
    expected = reference.lstm_backward(dh, ref_cache)
    assert all(g.dtype == np.float64 for g in grads)
    assert_all_close(grads, expected, dtype=np.float32)  # the forward pass was float32


# ------------------------------------------------------------------ caches across backends


@pytest.mark.parametrize("other", ["numpy"] + COMPILED_BACKENDS)
@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_cache_from_another_backend(backend, other, cell, gates):
    """A backward runs on the backend of its forward pass, whichever is active by then."""
    args = _seq_inputs(np.random.default_rng(13), np.float64, (2, 3, 4, 5), gates)
    h, cache = getattr(layers, f"{cell}_forward")(*args)
    dh = np.random.default_rng(14).standard_normal(h.shape)
    with fastrnn.use_backend(other):
        grads = getattr(layers, f"{cell}_backward")(dh, cache)
    _, ref_cache = getattr(reference, f"{cell}_forward")(*args)
    assert_all_close(grads, getattr(reference, f"{cell}_backward")(dh, ref_cache))


def test_foreign_cache_is_a_type_error(backend):
    args = _seq_inputs(np.random.default_rng(15), np.float64, (2, 3, 4, 5), 1)
    h, ref_cache = reference.rnn_forward(*args)
    with pytest.raises(TypeError, match="cache"):
        layers.rnn_backward(np.ones_like(h), ref_cache)
    _, lstm_cache = layers.lstm_forward(*_seq_inputs(np.random.default_rng(15), np.float64, (2, 3, 4, 5), 4))
    with pytest.raises(TypeError, match="lstm_forward"):
        layers.rnn_backward(np.ones_like(h), lstm_cache)
