"""First-order update rules, as in cs231n's ``optim.py``.

Each rule has the signature ``next_w, config = rule(w, dw, config=None)``: ``w`` and
``dw`` are arrays of one shape, ``config`` a dict of hyperparameters and state
(moving averages, step count) that the solver hands back on the next call. A rule
never modifies ``w`` or ``dw``; ``config`` is updated in place and returned.
"""

import numpy as np

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]


def _config(config, **defaults):
    config = {} if config is None else config
    for key, value in defaults.items():
        config.setdefault(key, value)
    return config


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent. config: learning_rate (1e-2)."""
    config = _config(config, learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum. config: learning_rate (1e-2), momentum (0.9), velocity (zeros)."""
    config = _config(config, learning_rate=1e-2, momentum=0.9)
    v = config.get("velocity")
    v = np.zeros_like(w) if v is None else v
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    """RMSProp. config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (zeros)."""
    config = _config(config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    cache = config.get("cache")
    cache = np.zeros_like(w) if cache is None else cache
    cache = config["decay_rate"] * cache + (1 - config["decay_rate"]) * dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config


def adam(w, dw, config=None):
    """Adam with bias correction.

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8), the moving
    averages m and v (zeros) and the step count t (0, incremented before use).
    """
    config = _config(config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    m = config.get("m")
    v = config.get("v")
    m = np.zeros_like(w) if m is None else m
    v = np.zeros_like(w) if v is None else v
    t = config["t"] + 1
    beta1, beta2 = config["beta1"], config["beta2"]
    m = beta1 * m + (1 - beta1) * dw
    v = beta2 * v + (1 - beta2) * (dw * dw)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    return next_w, config
