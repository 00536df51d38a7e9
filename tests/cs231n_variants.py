"""cs231n-style ``rnn_layers.py`` modules written several correct ways, and with known bugs.

``source(**choices)`` returns the text of a module (our own code, written for these tests,
in the style of the assignment). Each choice picks one way of writing one piece; the
defaults are a plain correct solution. ``CORRECT`` lists choices that compute the same
mathematics in another order or form (they must pass ``fastrnn check --module``); ``BUGS``
lists choices that are wrong the ways real submissions are, each with the functions that
must be named as failing.
"""

import textwrap

_PIECES = {
    "sigmoid": {
        "stable": """
            def sigmoid(x):
                pos = x >= 0
                z = np.zeros_like(x, dtype=float)
                z[pos] = np.exp(-x[pos])
                z[~pos] = np.exp(x[~pos])
                top = np.ones_like(x, dtype=float)
                top[~pos] = z[~pos]
                return top / (1 + z)
        """,
        "naive": """
            def sigmoid(x):
                return 1.0 / (1.0 + np.exp(-x))
        """,
        "ratio": """
            def sigmoid(x):
                e = np.exp(x)
                return e / (1.0 + e)
        """,
        "tanh": """
            def sigmoid(x):
                return 0.5 * (1.0 + np.tanh(0.5 * x))
        """,
    },
    "tanh": {
        "numpy": "tanh = np.tanh",
        "exp": """
            def tanh(a):
                return (np.exp(a) - np.exp(-a)) / (np.exp(a) + np.exp(-a))
        """,
        "sigmoid": """
            def tanh(a):
                return 2.0 * sigmoid(2.0 * a) - 1.0
        """,
    },
    "rnn_step": {
        # cache the output; the derivative from it
        "cached": """
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                next_h = tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
                return next_h, (x, prev_h, Wx, Wh, next_h)

            def rnn_step_backward(dnext_h, cache):
                x, prev_h, Wx, Wh, next_h = cache
                da = dnext_h * (1 - next_h ** 2)
                return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)
        """,
        # cache the pre-activation, recompute tanh; concatenated weights; a dict cache
        "recomputed": """
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                a = np.hstack([x, prev_h]) @ np.vstack([Wx, Wh]) + b
                return tanh(a), {"x": x, "h": prev_h, "Wx": Wx, "Wh": Wh, "a": a}

            def rnn_step_backward(dnext_h, cache):
                da = dnext_h / np.cosh(cache["a"]) ** 2
                dxh = da @ np.vstack([cache["Wx"], cache["Wh"]]).T
                D = cache["x"].shape[1]
                dW = np.hstack([cache["x"], cache["h"]]).T @ da
                return [dxh[:, :D], dxh[:, D:], dW[:D], dW[D:], np.einsum("nh->h", da)]
        """,
        "no_tanh_grad": """
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                next_h = tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
                return next_h, (x, prev_h, Wx, Wh, next_h)

            def rnn_step_backward(dnext_h, cache):
                x, prev_h, Wx, Wh, next_h = cache
                da = dnext_h
                return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)
        """,
        "zero_stub": """
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                return 0

            def rnn_step_backward(dnext_h, cache):
                return 0
        """,
    },
    "rnn": {
        "loop": """
            def rnn_forward(x, h0, Wx, Wh, b):
                N, T, D = x.shape
                h = np.zeros((N, T, h0.shape[1]))
                caches = []
                prev = h0
                for t in range(T):
                    prev, c = rnn_step_forward(x[:, t, :], prev, Wx, Wh, b)
                    h[:, t, :] = prev
                    caches.append(c)
                return h, caches

            def rnn_backward(dh, cache):
                N, T, H = dh.shape
                dx, dprev = [], np.zeros((N, H))
                grads = None
                for t in reversed(range(T)):
                    dx_t, dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + {carry}, cache[t])
                    dx.insert(0, dx_t)
                    step = (dWx_t, dWh_t, db_t)
                    grads = step if grads is None else tuple(g + s for g, s in zip(grads, step))
                return (np.stack(dx, axis=1), dprev) + grads
        """,
        # the input projection of every step at once; gradients of the weights after the loop
        "batched": """
            def rnn_forward(x, h0, Wx, Wh, b):
                N, T, D = x.shape
                xw = np.einsum("ntd,dh->nth", x, Wx) + b
                hs = [h0]
                for t in range(T):
                    hs.append(tanh(xw[:, t] + hs[-1] @ Wh))
                h = np.stack(hs[1:], axis=1)
                return h, (x, h0, Wx, Wh, h)

            def rnn_backward(dh, cache):
                x, h0, Wx, Wh, h = cache
                N, T, H = dh.shape
                da = np.empty_like(dh)
                dprev = np.zeros((N, H))
                for t in range(T - 1, -1, -1):
                    da[:, t] = (dh[:, t] + {carry}) * (1 - h[:, t] ** 2)
                    dprev = da[:, t] @ Wh.T
                hprev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
                return (da @ Wx.T, dprev, np.einsum("ntd,nth->dh", x, da), np.einsum("ntk,nth->kh", hprev, da),
                        da.sum(axis=(0, 1)), "an extra item")
        """,
    },
    "carry": {"yes": "dprev", "dropped": "0"},
    "embedding": {
        "add_at": """
            def word_embedding_forward(x, W):
                return W[x], (x, W.shape)

            def word_embedding_backward(dout, cache):
                x, shape = cache
                dW = np.zeros(shape)
                np.add.at(dW, x, dout)
                return dW
        """,
        "loop_tuple": """
            def word_embedding_forward(x, W):
                N, T = x.shape
                out = np.zeros((N, T, W.shape[1]))
                for n in range(N):
                    for t in range(T):
                        out[n, t] = W[x[n, t]]
                return [out, (x, W)]

            def word_embedding_backward(dout, cache):
                x, W = cache
                dW = np.zeros_like(W)
                for n in range(x.shape[0]):
                    for t in range(x.shape[1]):
                        dW[x[n, t]] += dout[n, t]
                return (dW,)
        """,
        "fancy_assign": """
            def word_embedding_forward(x, W):
                return W[x], (x, W.shape)

            def word_embedding_backward(dout, cache):
                x, shape = cache
                dW = np.zeros(shape)
                dW[x] += dout  # repeated words count once
                return dW
        """,
    },
    "lstm_step": {
        "plain": """
            def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
                H = prev_h.shape[1]
                a = x @ Wx + prev_h @ Wh + b
                i, f, o = ({gate_i}), ({gate_f}), ({gate_o})
                g = tanh({gate_g})
                next_c = f * prev_c + i * g
                next_h = o * tanh(next_c)
                return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)

            def lstm_step_backward(dnext_h, dnext_c, cache):
                x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
                tc = tanh(next_c)
                dc = dnext_c {dc_from_h}
                da = np.hstack({da_order})
                return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)
        """,
        # np.split of the activations, gate derivatives from the pre-activations; dnext_c updated in place
        "split": """
            def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
                a = np.dot(x, Wx) + np.dot(prev_h, Wh) + b
                ai, af, ao, ag = np.split(a, 4, axis=1)
                i, f, o, g = sigmoid(ai), sigmoid(af), sigmoid(ao), tanh(ag)
                next_c = f * prev_c + i * g
                return o * tanh(next_c), next_c, [x, prev_h, prev_c, Wx, Wh, a, next_c]

            def lstm_step_backward(dnext_h, dnext_c, cache):
                x, prev_h, prev_c, Wx, Wh, a, next_c = cache
                ai, af, ao, ag = np.split(a, 4, axis=1)
                i, f, o = sigmoid(ai), sigmoid(af), sigmoid(ao)
                g = tanh(ag)
                dnext_c += dnext_h * o * (1 - tanh(next_c) ** 2)
                dai = dnext_c * g * sigmoid(ai) * sigmoid(-ai)
                daf = dnext_c * prev_c * f * (1 - f)
                dao = dnext_h * tanh(next_c) * o * (1 - o)
                dag = dnext_c * i / np.cosh(ag) ** 2
                da = np.concatenate([dai, daf, dao, dag], axis=1)
                return (np.dot(da, Wx.T), np.dot(da, Wh.T), dnext_c * f, np.dot(x.T, da), np.dot(prev_h.T, da),
                        np.sum(da, axis=0))
        """,
    },
    "gate_order": {
        "ifog": dict(gate_i="sigmoid(a[:, :H])", gate_f="sigmoid(a[:, H:2*H])", gate_o="sigmoid(a[:, 2*H:3*H])",
                     gate_g="a[:, 3*H:]",
                     da_order="[dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o), "
                              "dc * i * (1 - g * g)]"),
        # i, f, g, o: the forward and the backward agree with each other, not with cs231n
        "ifgo": dict(gate_i="sigmoid(a[:, :H])", gate_f="sigmoid(a[:, H:2*H])", gate_o="sigmoid(a[:, 3*H:])",
                     gate_g="a[:, 2*H:3*H]",
                     da_order="[dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dc * i * (1 - g * g), "
                              "dnext_h * tc * o * (1 - o)]"),
    },
    "dc_from_h": {"yes": "+ dnext_h * o * (1 - tc ** 2)", "dropped": ""},
    "lstm": {
        "loop": """
            def lstm_forward(x, h0, Wx, Wh, b):
                N, T, D = x.shape
                h, c = h0, np.zeros_like(h0)
                hs, caches = [], []
                for t in range(T):
                    h, c, cache = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
                    hs.append(h)
                    caches.append(cache)
                return np.stack(hs, axis=1), caches

            def lstm_backward(dh, cache):
                N, T, H = dh.shape
                dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
                dx = [None] * T
                dWx = dWh = db = 0
                for t in reversed(range(T)):
                    dx[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
                        dh[:, t] + dprev_h, {cell_carry}, cache[t])
                    dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
                return np.stack(dx, axis=1), dprev_h, dWx, dWh, db
        """,
        "template": """
            def lstm_forward(x, h0, Wx, Wh, b):
                h, cache = None, None
                return h, cache

            def lstm_backward(dh, cache):
                dx, dh0, dWx, dWh, db = None, None, None, None, None
                return dx, dh0, dWx, dWh, db
        """,
    },
    "cell_carry": {"yes": "dprev_c", "dropped": "np.zeros((N, H))"},
    "temporal_affine": {
        "course": """
            def temporal_affine_forward(x, w, b):
                N, T, D = x.shape
                M = b.shape[0]
                out = x.reshape(N * T, D).dot(w).reshape(N, T, M) + b
                return out, (x, w, b, out)

            def temporal_affine_backward(dout, cache):
                x, w, b, out = cache
                N, T, D = x.shape
                M = b.shape[0]
                dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
                dw = dout.reshape(N * T, M).T.dot(x.reshape(N * T, D)).T
                db = dout.sum(axis=(0, 1))
                return dx, dw, db
        """,
        "keepdims": """
            def temporal_affine_forward(x, w, b):
                return np.einsum("ntd,dm->ntm", x, w) + b, (x, w)

            def temporal_affine_backward(dout, cache):
                x, w = cache
                return (np.einsum("ntm,dm->ntd", dout, w), np.einsum("ntd,ntm->dm", x, dout),
                        dout.sum(axis=(0, 1)).reshape(1, -1))
        """,
    },
    "softmax": {
        "course": """
            def temporal_softmax_loss(x, y, mask, verbose=False):
                N, T, V = x.shape
                x_flat = x.reshape(N * T, V)
                y_flat = y.reshape(N * T)
                mask_flat = mask.reshape(N * T)
                probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
                probs /= np.sum(probs, axis=1, keepdims=True)
                loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
                dx_flat = probs.copy()
                dx_flat[np.arange(N * T), y_flat] -= 1
                dx_flat /= {divide_by}
                dx_flat *= {dx_mask}
                if verbose:
                    print("dx_flat: ", dx_flat.shape)
                return loss, dx_flat.reshape(N, T, V)
        """,
        # log-sum-exp, one-hot, no verbose argument (an older signature)
        "logsumexp": """
            def temporal_softmax_loss(x, y, mask):
                N, T, V = x.shape
                m = x.max(axis=2, keepdims=True)
                logp = x - m - np.log(np.exp(x - m).sum(axis=2, keepdims=True))
                onehot = np.eye(V)[y]
                w = mask.astype(float)[:, :, None]
                loss = -(onehot * logp * w).sum() / N
                return loss, (np.exp(logp) - onehot) * w / N
        """,
    },
    "divide_by": {"N": "N", "mask_sum": "max(mask_flat.sum(), 1)"},
    "dx_mask": {"yes": "mask_flat[:, None]", "dropped": "1"},
    "affine": {
        "none": "",
        "plain": """
            def affine_forward(x, w, b):
                out = x.reshape(x.shape[0], -1).dot(w) + b
                return out, (x, w, b)

            def affine_backward(dout, cache):
                x, w, b = cache
                return dout.dot(w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T.dot(dout), dout.sum(axis=0)
        """,
    },
}

DEFAULTS = dict(sigmoid="stable", tanh="numpy", rnn_step="cached", rnn="loop", carry="yes", embedding="add_at",
                lstm_step="plain", gate_order="ifog", dc_from_h="yes", lstm="loop", cell_carry="yes",
                temporal_affine="course", softmax="course", divide_by="N", dx_mask="yes", affine="none")

# Correct ways of writing the same thing: each must pass.
CORRECT = {
    "plain": {},
    "sigmoid naive, tanh from exponentials": dict(sigmoid="naive", tanh="exp"),
    "sigmoid as a ratio, tanh from sigmoid": dict(sigmoid="ratio", tanh="sigmoid"),
    "sigmoid from tanh, recomputed activations": dict(sigmoid="tanh", rnn_step="recomputed", lstm_step="split"),
    "batched sequences, dict caches, lists, extra items": dict(rnn="batched", embedding="loop_tuple",
                                                                temporal_affine="keepdims", affine="plain"),
    "tanh from exponentials everywhere, log-sum-exp loss": dict(tanh="exp", rnn_step="recomputed", rnn="batched",
                                                               lstm_step="split", softmax="logsumexp"),
}

# Known bugs: the choices, and the functions that must fail (others must still pass).
BUGS = {
    "rnn_backward drops the gradient carried between steps": (dict(carry="dropped"), {"rnn_backward"}),
    "rnn_step_backward drops tanh's derivative": (dict(rnn_step="no_tanh_grad"),
                                                  {"rnn_step_backward", "rnn_backward"}),
    "lstm_step_backward drops next_h's path into the cell": (dict(dc_from_h="dropped"),
                                                             {"lstm_step_backward", "lstm_backward"}),
    "lstm_backward drops the cell gradient between steps": (dict(cell_carry="dropped"), {"lstm_backward"}),
    "gates in the order i, f, g, o": (dict(gate_order="ifgo"),
                                      {"lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward"}),
    "word_embedding_backward counts a repeated word once": (dict(embedding="fancy_assign"),
                                                            {"word_embedding_backward"}),
    "temporal_softmax_loss divides by the mask's count": (dict(divide_by="mask_sum"), {"temporal_softmax_loss"}),
    "temporal_softmax_loss forgets the mask in dx": (dict(dx_mask="dropped"), {"temporal_softmax_loss"}),
    "the LSTM is still the template": (dict(lstm="template"), {"lstm_forward", "lstm_backward"}),
    "a stub that returns 0": (dict(rnn_step="zero_stub"),
                              {"rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward"}),
}


def source(**choices):
    """The text of a module made of the given choices (the rest from ``DEFAULTS``)."""
    unknown = set(choices) - set(DEFAULTS)
    if unknown:
        raise KeyError(unknown)
    c = {**DEFAULTS, **choices}
    fills = {"carry": _PIECES["carry"][c["carry"]], "dc_from_h": _PIECES["dc_from_h"][c["dc_from_h"]],
             "cell_carry": _PIECES["cell_carry"][c["cell_carry"]], "divide_by": _PIECES["divide_by"][c["divide_by"]],
             "dx_mask": _PIECES["dx_mask"][c["dx_mask"]], **_PIECES["gate_order"][c["gate_order"]]}
    parts = ["import numpy as np"]
    for piece in ("sigmoid", "tanh", "affine", "rnn_step", "rnn", "embedding", "lstm_step", "lstm",
                  "temporal_affine", "softmax"):
        text = textwrap.dedent(_PIECES[piece][c[piece]])
        for key, value in fills.items():
            text = text.replace("{" + key + "}", value)
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def write(directory, name="rnn_layers.py", **choices):
    """Writes ``source(**choices)`` to ``directory/name``; returns the path."""
    path = directory / name
    path.write_text(source(**choices))
    return path
