"""Bad input gets a clear error naming the argument, before any backend runs; odd but valid
input that NumPy (and so the oracle) accepts is accepted."""

import types

import numpy as np
import pytest

import fastrnn
from fastrnn import _backend, layers, reference
from helpers import assert_all_close

N, T, D, H, V = 2, 3, 4, 5, 7


@pytest.fixture
def no_backend(monkeypatch):
    """Replaces the active backend by one that fails the test if anything reaches it."""

    def forbidden(*args, **kwargs):
        raise AssertionError("invalid input reached the backend")

    spy = types.SimpleNamespace(**{name: forbidden for name in _backend.LAYER_FUNCTIONS})
    monkeypatch.setattr(_backend, "backend_module", lambda name=None: spy)
    return spy


def _seq(gates=1, dtype=np.float64):
    rng = np.random.default_rng(0)
    shapes = [(N, T, D), (N, H), (D, gates * H), (H, gates * H), (gates * H,)] + ([(H,)] if gates == 3 else [])
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


# ------------------------------------------------------------------ shapes


@pytest.mark.parametrize("fn,gates", [(layers.rnn_forward, 1), (layers.lstm_forward, 4), (layers.gru_forward, 3),
                                     (layers.rnn_forward_state, 1), (layers.gru_forward_state, 3)])
@pytest.mark.parametrize("arg,bad_shape,name", [
    (0, (N, T), "x"),  # wrong ndim
    (1, (N + 1, H), "h0"),
    (1, (N, H, 1), "h0"),
    (2, (D + 1, None), "Wx"),
    (3, (H, None, 1), "Wh"),
    (4, (None, 2), "b"),
    (4, (3,), "b"),
])
def test_sequence_shape_errors(no_backend, fn, gates, arg, bad_shape, name):
    args = _seq(gates)
    shape = tuple(gates * H if s is None else s for s in bad_shape)
    args[arg] = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        fn(*args)


def test_shape_error_message_names_expected_and_actual():
    x, h0, Wx, Wh, b = _seq()
    with pytest.raises(ValueError, match=r"h0 must have shape \(N, H\) = \(2, 5\), got \(3, 5\)"):
        layers.rnn_forward(x, np.zeros((3, H)), Wx, Wh, b)
    with pytest.raises(ValueError, match=r"Wx must have shape \(D, 4H\) = \(4, 20\), got \(4, 5\)"):
        layers.lstm_forward(x, h0, Wx, np.zeros((H, 4 * H)), np.zeros(4 * H))


@pytest.mark.parametrize("fn,gates", [(layers.rnn_step_forward, 1), (layers.lstm_step_forward, 4),
                                     (layers.gru_step_forward, 3)])
def test_step_shape_errors(no_backend, fn, gates):
    x, h, Wx, Wh, b, *bhn = (a[:, 0] if a.ndim == 3 else a for a in _seq(gates))
    extra = [np.zeros((N, H))] if gates == 4 else []
    with pytest.raises(ValueError, match="^x must be a 2-D"):
        fn(np.zeros((N, T, D)), h, *extra, Wx, Wh, b, *bhn)
    with pytest.raises(ValueError, match="^prev_h must"):
        fn(x, np.zeros((N, H + 1)), *extra, Wx, Wh, b, *bhn)
    with pytest.raises(ValueError, match="^Wh must"):
        fn(x, h, *extra, Wx, np.zeros((H, 2 * H)), b, *bhn)
    if gates == 4:
        with pytest.raises(ValueError, match="^prev_c must"):
            fn(x, h, np.zeros((N + 1, H)), Wx, Wh, b)
    if gates == 3:
        with pytest.raises(ValueError, match=r"^bhn must have shape \(H,\) = \(5,\), got \(6,\)"):
            fn(x, h, Wx, Wh, b, np.zeros(H + 1))


@pytest.mark.parametrize("fn", [layers.gru_forward, layers.gru_forward_state])
def test_gru_bias_errors(no_backend, fn):
    x, h0, Wx, Wh, b, bhn = _seq(3)
    with pytest.raises(ValueError, match=r"^bhn must have shape \(H,\) = \(5,\), got \(15,\)"):
        fn(x, h0, Wx, Wh, b, np.zeros(3 * H))
    with pytest.raises(ValueError, match=r"^b must have shape \(3H,\) = \(15,\), got \(5,\)"):
        fn(x, h0, Wx, Wh, bhn, bhn)
    with pytest.raises(ValueError, match=r"^Wx must have shape \(D, 3H\) = \(4, 15\), got \(4, 20\)"):
        fn(x, h0, np.zeros((D, 4 * H)), Wh, b, bhn)


def test_lstm_state_shape_errors(no_backend):
    x, h0, Wx, Wh, b = _seq(4)
    with pytest.raises(ValueError, match=r"^c0 must have shape \(N, H\) = \(2, 5\), got \(2, 6\)"):
        layers.lstm_forward_state(x, h0, np.zeros((N, H + 1)), Wx, Wh, b)
    with pytest.raises(ValueError, match=r"^c0 must have shape \(N, H\) = \(2, 5\), got \(5,\)"):
        layers.lstm_forward(x, h0, Wx, Wh, b, c0=np.zeros(H))
    with pytest.raises(ValueError, match=r"^h0 must have shape"):
        layers.lstm_forward_state(x, h0[:1], None, Wx, Wh, b)
    with pytest.raises(TypeError, match="^c0 must hold real numbers"):
        layers.lstm_forward_state(x, h0, np.array([["a"]]), Wx, Wh, b)


@pytest.mark.parametrize("cell,finals", [("rnn", ("dhT",)), ("lstm", ("dhT", "dcT")), ("gru", ("dhT",))])
def test_state_backward_gradient_errors(cell, finals):
    """Each upstream gradient of a state backward is checked and named; None means zeros."""
    args = _seq({"rnn": 1, "lstm": 4, "gru": 3}[cell])
    if cell == "lstm":
        args.insert(2, None)
    *_, cache = getattr(layers, f"{cell}_forward_state")(*args)
    backward = getattr(layers, f"{cell}_backward_state")
    good = [np.zeros((N, T, H))] + [np.zeros((N, H))] * len(finals)
    with pytest.raises(ValueError, match=r"^dh must have shape \(shape of the forward output\) = \(2, 3, 5\)"):
        backward(np.zeros((N, T + 1, H)), *good[1:], cache)
    for k, name in enumerate(finals, start=1):
        bad = list(good)
        bad[k] = np.zeros((N, T, H))
        with pytest.raises(ValueError, match=rf"^{name} must have shape \(N, H\) = \(2, 5\), got \(2, 3, 5\)"):
            backward(*bad, cache)
        bad[k] = np.array([["x"]])
        with pytest.raises(TypeError, match=rf"^{name} must hold real numbers"):
            backward(*bad, cache)
    with pytest.raises(TypeError, match=rf"cache must be the cache returned by fastrnn.layers.{cell}_forward or "
                                        rf"{cell}_forward_state"):
        backward(*good, ("not", "a", "cache"))
    with pytest.raises(TypeError, match="^dh must hold real numbers"):  # cs231n's backward takes no None
        getattr(layers, f"{cell}_backward")(None, cache)
    grads = backward(*([None] * len(good)), cache)  # no upstream gradient at all: every gradient is zero
    assert len(grads) == len(args) and all(not np.any(g) for g in grads)


def test_state_backward_refuses_another_cells_cache():
    *_, cache = layers.gru_forward_state(*_seq(3))
    with pytest.raises(TypeError, match="from gru_forward"):
        layers.rnn_backward_state(None, np.zeros((N, H)), cache)
    _, step_cache = layers.rnn_step_forward(np.zeros((N, D)), np.zeros((N, H)), np.zeros((D, H)), np.zeros((H, H)),
                                            np.zeros(H))
    with pytest.raises(TypeError, match="from rnn_step_forward"):
        layers.rnn_backward_state(None, np.zeros((N, H)), step_cache)


def test_affine_shape_errors(no_backend):
    with pytest.raises(ValueError, match="^w must have shape"):
        layers.affine_forward(np.zeros((2, 3, 4)), np.zeros((11, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="^b must have shape"):
        layers.affine_forward(np.zeros((2, 12)), np.zeros((12, 5)), np.zeros(4))
    with pytest.raises(ValueError, match="^x must have at least 1 dimension"):
        layers.affine_forward(np.float64(1.0), np.zeros((1, 5)), np.zeros(5))


def test_temporal_affine_shape_errors(no_backend):
    with pytest.raises(ValueError, match="^x must be a 3-D"):
        layers.temporal_affine_forward(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="^w must have shape"):
        layers.temporal_affine_forward(np.zeros((2, 3, 4)), np.zeros((3, 5)), np.zeros(5))


def test_softmax_loss_errors(no_backend):
    x = np.zeros((N, T, V))
    y = np.zeros((N, T), dtype=int)
    mask = np.ones((N, T), dtype=bool)
    with pytest.raises(ValueError, match="^mask must have shape"):
        layers.temporal_softmax_loss(x, y, mask[:, :-1])
    with pytest.raises(ValueError, match="^y must have shape"):
        layers.temporal_softmax_loss(x, y.T, mask)
    with pytest.raises(IndexError, match=f"^y holds word index {V}"):
        layers.temporal_softmax_loss(x, np.full((N, T), V), mask)
    with pytest.raises(TypeError, match="^y must hold integer"):
        layers.temporal_softmax_loss(x, y.astype(float), mask)
    with pytest.raises(ValueError, match="^x must be a 3-D"):
        layers.temporal_softmax_loss(x[0], y, mask)


# ------------------------------------------------------------------ indices and dtypes


@pytest.mark.parametrize("bad", [-1, V, 10**9])
def test_embedding_index_out_of_range(no_backend, bad):
    x = np.array([[0, 1], [2, bad]])
    with pytest.raises(IndexError, match=rf"x holds word index {bad}, outside \[0, V\) = \[0, {V}\)"):
        layers.word_embedding_forward(x, np.zeros((V, 3)))


@pytest.mark.parametrize("x", [np.array([0.0, 1.0]), np.array([True, False]), np.array(["a"])])
def test_embedding_non_integer_indices(no_backend, x):
    with pytest.raises(TypeError, match="^x must hold integer word indices"):
        layers.word_embedding_forward(x, np.zeros((V, 3)))


def test_embedding_W_must_be_2d(no_backend):
    with pytest.raises(ValueError, match="^W must be a 2-D"):
        layers.word_embedding_forward(np.array([0]), np.zeros(V))


@pytest.mark.parametrize("bad", [np.array([["a"]]), np.zeros((N, H), dtype=complex), np.array([[None]])])
def test_non_numeric_data(no_backend, bad):
    x, h0, Wx, Wh, b = _seq()
    with pytest.raises(TypeError, match="^h0 must hold real numbers"):
        layers.rnn_forward(x, bad, Wx, Wh, b)


# ------------------------------------------------------------------ backward inputs


def test_backward_checks_cache_and_gradient_shape(no_backend):
    rnn_cache = layers.LayerCache("rnn", reference, (), np.dtype(np.float64), (N, T, H))
    with pytest.raises(ValueError, match=r"^dh must have shape"):
        layers.rnn_backward(np.zeros((N, T, H + 1)), rnn_cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by fastrnn.layers.rnn_forward"):
        layers.rnn_backward(np.zeros((N, T, H)), ("not", "a", "cache"))
    with pytest.raises(TypeError, match="from lstm_forward"):
        layers.rnn_backward(np.zeros((N, T, H)), layers.LayerCache("lstm", reference, (), np.float64, (N, T, H)))
    with pytest.raises(ValueError, match=r"^dnext_c must have shape"):
        cache = layers.LayerCache("lstm_step", reference, (), np.dtype(np.float64), (N, H))
        layers.lstm_step_backward(np.zeros((N, H)), np.zeros((N, H + 1)), cache)


# ------------------------------------------------------------------ what NumPy accepts, we accept


@pytest.fixture(params=fastrnn.available_backends())
def backend(request):
    with fastrnn.use_backend(request.param):
        yield request.param


def test_lists_and_python_scalars(backend):
    out, _ = layers.affine_forward([[1.0, 2.0]], [[1.0], [1.0]], [0.5])
    np.testing.assert_allclose(out, [[3.5]])
    out, _ = layers.word_embedding_forward(2, np.eye(3))  # a Python int: shape () + (D,)
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0])


@pytest.mark.parametrize("x_shape", [(N,), (N, 1), (N, T)])
def test_embedding_index_shapes(backend, x_shape):
    W = np.arange(V * 3, dtype=np.float32).reshape(V, 3)
    x = np.arange(np.prod(x_shape)).reshape(x_shape) % V
    out, cache = layers.word_embedding_forward(x.astype(np.int32), W)
    assert out.shape == x_shape + (3,) and out.dtype == np.float32
    dW = layers.word_embedding_backward(np.ones(out.shape, np.float32), cache)
    np.testing.assert_array_equal(dW, reference.word_embedding_backward(np.ones(out.shape, np.float32), (x, W)))


def test_bias_of_shape_1_by_H(backend):
    x, h0, Wx, Wh, b = _seq()
    assert_all_close(layers.rnn_forward(x, h0, Wx, Wh, b[None])[0], reference.rnn_forward(x, h0, Wx, Wh, b)[0])


def test_single_step_through_temporal_affine(backend):
    # cs231n sampling code: ht.reshape(N, 1, -1) into temporal_affine_forward.
    h = np.random.default_rng(1).standard_normal((N, H))
    w, b = np.ones((H, V)), np.zeros(V)
    out, _ = layers.temporal_affine_forward(h.reshape(N, 1, -1), w, b)
    assert out.shape == (N, 1, V)
    assert_all_close(out, reference.temporal_affine_forward(h.reshape(N, 1, -1), w, b)[0])


@pytest.mark.parametrize("dtype", [np.float16, np.int64])
def test_other_dtypes_follow_numpy(backend, dtype):
    x, h0, Wx, Wh, b = (a.astype(dtype) if dtype == np.float16 else np.round(a).astype(dtype) for a in _seq())
    h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
    expected, _ = reference.rnn_forward(x, h0, Wx, Wh, b)
    assert h.dtype == expected.dtype
    np.testing.assert_array_equal(h, expected)


@pytest.mark.parametrize("shape", [(0, T, D, H), (N, 0, D, H), (N, T, 0, H)])
@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_empty_dimensions(backend, shape, cell, gates):
    n, t, d, hh = shape
    rng = np.random.default_rng(2)
    shapes = [(n, t, d), (n, hh), (d, gates * hh), (hh, gates * hh), (gates * hh,)] + ([(hh,)] if gates == 3 else [])
    args = [rng.standard_normal(s) for s in shapes]
    h, cache = getattr(layers, f"{cell}_forward")(*args)
    expected, ref_cache = getattr(reference, f"{cell}_forward")(*args)
    assert_all_close(h, expected)
    dh = rng.standard_normal(h.shape)
    assert_all_close(getattr(layers, f"{cell}_backward")(dh, cache),
                     getattr(reference, f"{cell}_backward")(dh, ref_cache))
    # The state forms: with T = 0 the final state is the initial one (a copy), and its gradient flows to it.
    state_args = args[:2] + [0.5 * args[1]] + args[2:] if cell == "lstm" else args
    *outs, cache = getattr(layers, f"{cell}_forward_state")(*state_args)
    *expected, ref_cache = getattr(reference, f"{cell}_forward_state")(*state_args)
    assert_all_close(tuple(outs), tuple(expected))
    if t == 0:
        for final, initial in zip(outs[1:], state_args[1:]):
            np.testing.assert_array_equal(final, initial)
            assert not np.shares_memory(final, initial)
    finals = [rng.standard_normal(o.shape) for o in outs[1:]]
    assert_all_close(getattr(layers, f"{cell}_backward_state")(dh, *finals, cache),
                     getattr(reference, f"{cell}_backward_state")(dh, *finals, ref_cache))


def test_all_contract_names_exported():
    namespace = {}
    exec("from fastrnn.layers import *", namespace)
    for name in _backend.LAYER_FUNCTIONS:
        assert callable(namespace[name]) and callable(getattr(reference, name))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("x_shape,h_shape", [((D,), (N, H)), ((N, D), (H,)), ((D,), (H,)), ((D,), (1, H))])
def test_step_with_1d_rows_like_numpy(backend, cell, x_shape, h_shape):
    # cs231n sampling code often squeezes (N, 1, W) word vectors: with N = 1 they become 1-D.
    rng = np.random.default_rng(3)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x, h = rng.standard_normal(x_shape), rng.standard_normal(h_shape)
    Wx, Wh, b = rng.standard_normal((D, gates * H)), rng.standard_normal((H, gates * H)), rng.standard_normal(gates * H)
    states = (h, np.zeros(h_shape)) if cell == "lstm" else (h,)
    bhn = (rng.standard_normal(H),) if cell == "gru" else ()
    out = getattr(layers, f"{cell}_step_forward")(x, *states, Wx, Wh, b, *bhn)[:-1]
    expected = getattr(reference, f"{cell}_step_forward")(x, *states, Wx, Wh, b, *bhn)[:-1]
    assert_all_close(out, expected)


def test_step_row_count_mismatch_names_the_state(no_backend):
    with pytest.raises(ValueError, match=r"^prev_h must have shape \(N, H\) = \(2, 5\), got \(3, 5\)"):
        layers.rnn_step_forward(np.zeros((2, D)), np.zeros((3, H)), np.zeros((D, H)), np.zeros((H, H)), np.zeros(H))
