"""The cs231n notebooks' own checks, as data: their inputs, expected values and tolerances.

One source for the test suite (``tests/test_golden.py`` runs them on every fastrnn backend)
and for ``fastrnn check --module/--model`` (which runs them on anybody's code).

Sources: assignment 3's ``RNN_Captioning.ipynb`` and ``LSTM_Captioning.ipynb``, and
assignment 2's ``FullyConnectedNets.ipynb`` for the affine layer (it lives in
``rnn_layers.py`` from 2020 on).

Tolerances:

* Expected values (``FORWARD_VALUES``): the notebook compares with ``rel_error`` (the largest
  ``|x - y| / max(1e-8, |x| + |y|)``) and asks for "errors on the order of 1e-8 or less".
  Those expected values are printed to 8 decimals, so the error any correct implementation
  reaches is set by that rounding, not by how it computes (it is the same 6.3e-9, 7.7e-8, ...
  for every correct implementation, to ~1e-15): the thresholds are the notebook's orders,
  except for the word embedding, whose 8-decimal values give exactly 1.0e-8 (the notebook's
  own output), so 1e-7 there.
* Numerical gradient checks (``GRADIENT_CHECKS``): the notebook draws inputs with
  ``np.random.seed(231)``, compares ``rel_error(numerical, analytic)`` and asks for errors "on
  the order of 1e-k or less". There the error does depend on the implementation: finite
  differences of *its* forward pass carry its rounding, divided by h = 1e-5, and the
  elementwise relative error magnifies that on small entries (the notebook's own LSTM run
  gives 2.7e-6 for dWh, where it asks for "1e-6 or less"). "On the order of 1e-k" is read as
  below 10^(1-k), the next order of magnitude. Correct implementations written six ways
  (``tests/test_check_tolerance.py``) and 42 public student solutions reach at most 0.23 of
  these thresholds (lstm_backward's dWh); every dropped term we tried, 1e4 times them or more.
  At the notebook's own orders, correct code would fail (2.3 times lstm_backward's).
* Model losses: "a difference on the order of 1e-10 or less" from the expected loss.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import numpy as np

__all__ = [
    "ForwardValues", "FORWARD_VALUES", "GradientCheck", "GRADIENT_CHECKS", "SOFTMAX_SANITY",
    "ModelLoss", "MODEL_LOSSES", "MODEL_GRADIENT_CHECK", "notebook_draws",
]


def _lin(lo, hi, *shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


@dataclass(frozen=True)
class ForwardValues:
    """A forward function on the notebook's ``np.linspace`` inputs, and the outputs it printed."""

    function: str
    inputs: Callable[[], tuple]  # fresh arrays each call
    expected: Dict[str, np.ndarray]  # output name -> the notebook's values
    threshold: float  # largest rel_error accepted


def _affine_inputs():
    x = _lin(-0.1, 0.5, 2, 4, 5, 6)
    w = _lin(-0.2, 0.3, 120, 3)
    b = _lin(-0.3, 0.1, 3)
    return x, w, b


def _rnn_step_inputs():
    N, D, H = 3, 10, 4
    return _lin(-0.4, 0.7, N, D), _lin(-0.2, 0.5, N, H), _lin(-0.1, 0.9, D, H), _lin(-0.3, 0.7, H, H), \
        _lin(-0.2, 0.4, H)


def _rnn_inputs():
    N, T, D, H = 2, 3, 4, 5
    return _lin(-0.1, 0.3, N, T, D), _lin(-0.3, 0.1, N, H), _lin(-0.2, 0.4, D, H), _lin(-0.4, 0.1, H, H), \
        _lin(-0.7, 0.1, H)


def _word_embedding_inputs():
    V, D = 5, 3
    return np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]]), _lin(0, 1, V, D)


def _lstm_step_inputs():
    N, D, H = 3, 4, 5
    return _lin(-0.4, 1.2, N, D), _lin(-0.3, 0.7, N, H), _lin(-0.4, 0.9, N, H), _lin(-2.1, 1.3, D, 4 * H), \
        _lin(-0.7, 2.2, H, 4 * H), _lin(0.3, 0.7, 4 * H)


def _lstm_inputs():
    N, D, H, T = 2, 5, 4, 3
    return _lin(-0.4, 0.6, N, T, D), _lin(-0.4, 0.8, N, H), _lin(-0.2, 0.9, D, 4 * H), _lin(-0.3, 0.6, H, 4 * H), \
        _lin(0.2, 0.7, 4 * H)


FORWARD_VALUES = (
    ForwardValues("affine_forward", _affine_inputs, {"out": np.asarray([
        [1.49834967, 1.70660132, 1.91485297],
        [3.25553199, 3.5141327, 3.77273342]])}, threshold=1e-9),
    ForwardValues("rnn_step_forward", _rnn_step_inputs, {"next_h": np.asarray([
        [-0.58172089, -0.50182032, -0.41232771, -0.31410098],
        [0.66854692, 0.79562378, 0.87755553, 0.92795967],
        [0.97934501, 0.99144213, 0.99646691, 0.99854353]])}, threshold=1e-8),
    ForwardValues("rnn_forward", _rnn_inputs, {"h": np.asarray([
        [[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
         [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
         [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
        [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
         [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
         [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]])}, threshold=1e-7),
    ForwardValues("word_embedding_forward", _word_embedding_inputs, {"out": np.asarray([
        [[0., 0.07142857, 0.14285714],
         [0.64285714, 0.71428571, 0.78571429],
         [0.21428571, 0.28571429, 0.35714286],
         [0.42857143, 0.5, 0.57142857]],
        [[0.42857143, 0.5, 0.57142857],
         [0.21428571, 0.28571429, 0.35714286],
         [0., 0.07142857, 0.14285714],
         [0.64285714, 0.71428571, 0.78571429]]])}, threshold=1e-7),
    ForwardValues("lstm_step_forward", _lstm_step_inputs, {
        "next_h": np.asarray([
            [0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
            [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
            [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]]),
        "next_c": np.asarray([
            [0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
            [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
            [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]])}, threshold=1e-8),
    ForwardValues("lstm_forward", _lstm_inputs, {"h": np.asarray([
        [[0.01764008, 0.01823233, 0.01882671, 0.0194232],
         [0.11287491, 0.12146228, 0.13018446, 0.13902939],
         [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
        [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
         [0.6704845, 0.69350089, 0.71486014, 0.7346449],
         [0.81733511, 0.83677871, 0.85403753, 0.86935314]]])}, threshold=1e-7),
)


@dataclass(frozen=True)
class GradientCheck:
    """The notebook's numerical gradient check of a backward pass (or of a loss's gradient).

    ``sizes`` fixes the symbols of the function's argument shapes (``fastrnn.check.contract``);
    ``notebook_draws`` makes the inputs as the notebook does, from ``np.random.seed(231)``:
    each argument in order (``randn`` for values, ``randint(V)`` for word indices,
    ``rand() > 0.5`` for a mask), then, after the forward pass, one ``randn`` upstream
    gradient per output. ``thresholds`` maps each gradient to the largest rel_error accepted.
    """

    function: str
    sizes: Dict[str, int]
    thresholds: Dict[str, float]
    h: float = 1e-5


def _orders(order, names, **overrides):
    """Thresholds for "errors on the order of ``order`` or less": ten times the order."""
    return {n: 10 * overrides.get(n, order) for n in names}


GRADIENT_CHECKS = {g.function: g for g in (
    GradientCheck("affine_backward", dict(N=10, A=2, B=3, M=5), _orders(1e-10, ("dx", "dw", "db"))),
    GradientCheck("rnn_step_backward", dict(N=4, D=5, H=6), _orders(1e-8, ("dx", "dprev_h", "dWx", "dWh", "db"))),
    GradientCheck("rnn_backward", dict(N=2, D=3, T=10, H=5), _orders(1e-6, ("dx", "dh0", "dWx", "dWh", "db"))),
    GradientCheck("word_embedding_backward", dict(N=50, T=3, V=5, D=6), _orders(1e-11, ("dW",))),
    GradientCheck("lstm_step_backward", dict(N=4, D=5, H=6),
                  _orders(1e-7, ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"))),
    # "errors on the order of e-8 or less. (For dWh, it's fine if your error is on the order of e-6 or less)"
    GradientCheck("lstm_backward", dict(N=2, D=3, T=10, H=6),
                  _orders(1e-8, ("dx", "dh0", "dWx", "dWh", "db"), dWh=1e-6)),
    GradientCheck("temporal_affine_backward", dict(N=2, T=3, D=4, M=5), _orders(1e-9, ("dx", "dw", "db"))),
    GradientCheck("temporal_softmax_loss", dict(N=7, T=8, V=9), _orders(1e-7, ("dx",))),
)}


def notebook_draws(seed=231):
    """The notebook's random source: a legacy ``RandomState``, as ``np.random.seed`` gives."""
    return np.random.RandomState(seed)


# The notebook's sanity check of temporal_softmax_loss on small random scores: the loss of each
# counted position is about log(V) = 2.3. (N, T, V, p, expected loss); the notebook says
# "should be about 2.3 / 23 / within 2.2-2.4", so 5 % once the loss is scaled by the mask
# fraction actually drawn.
SOFTMAX_SANITY = ((100, 1, 10, 1.0, 2.3), (100, 10, 10, 1.0, 23.0), (5000, 10, 10, 0.1, 2.3))
SOFTMAX_SANITY_RTOL = 0.05


@dataclass(frozen=True)
class ModelLoss:
    """The notebook's check of ``CaptioningRNN.loss``: every parameter set to a linspace."""

    cell_type: str
    feature_range: Tuple[float, float]
    expected_loss: float
    tolerance: float = 1e-10  # "a difference on the order of e-10 or less"
    sizes: Dict[str, int] = field(default_factory=lambda: dict(N=10, D=20, W=30, H=40, T=13))
    word_to_idx: Dict[str, int] = field(default_factory=lambda: {"<NULL>": 0, "cat": 2, "dog": 3})

    def features(self):
        s = self.sizes
        return np.linspace(*self.feature_range, num=s["N"] * s["D"]).reshape(s["N"], s["D"])

    def captions(self):
        s = self.sizes
        return (np.arange(s["N"] * s["T"]) % len(self.word_to_idx)).reshape(s["N"], s["T"])

    @staticmethod
    def param_value(shape):
        """The notebook's value of every parameter: ``np.linspace(-1.4, 1.3, num=v.size)``."""
        return np.linspace(-1.4, 1.3, num=int(np.prod(shape))).reshape(shape)


MODEL_LOSSES = {
    "rnn": ModelLoss("rnn", (-1.5, 0.3), 9.83235591003),
    "lstm": ModelLoss("lstm", (-0.5, 1.7), 9.82445935443),
}

# The notebook's gradient check of the whole model: np.random.seed(231), captions
# randint(V, (N, T)), features randn(N, D), then the model (whose __init__ draws its weights
# from np.random), every parameter checked with eval_numerical_gradient(h=1e-6). It asks for
# "errors around the order of e-6 or less" of its elementwise rel_error; the checker measures
# the error relative to each gradient's largest entry instead (see fastrnn.check.model): correct
# models reach 1.6e-7 there (rnn and lstm, eight initializations), a dropped term 1e-1 or more.
MODEL_GRADIENT_CHECK = dict(sizes=dict(N=2, T=3, D=4, W=5, H=6), word_to_idx={"<NULL>": 0, "cat": 2, "dog": 3},
                            h=1e-6, threshold=1e-5)
