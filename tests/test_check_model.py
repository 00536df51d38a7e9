"""``fastrnn check --model``: a CaptioningRNN class in a cs231n package layout, right and wrong."""

import textwrap

import pytest

from fastrnn import cli
from fastrnn.check.model import check_model
from fastrnn.check.target import TargetError
import cs231n_variants as variants

# A cs231n-style model of our own, importing the layers from its package as the assignment does.
MODEL = """
    import numpy as np

    from ..rnn_layers import *


    class CaptioningRNN(object):
        def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                     dtype=np.float32):
            if cell_type not in {"rnn", "lstm"}:
                raise ValueError("Invalid cell_type")
            self.cell_type, self.dtype, self._null = cell_type, dtype, word_to_idx["<NULL>"]
            V, G = len(word_to_idx), 4 if cell_type == "lstm" else 1
            W, H, D = wordvec_dim, hidden_dim, input_dim
            self.params = {
                "W_embed": np.random.randn(V, W) / 100, "W_proj": np.random.randn(D, H) / np.sqrt(D),
                "b_proj": np.zeros(H), "Wx": np.random.randn(W, G * H) / np.sqrt(W),
                "Wh": np.random.randn(H, G * H) / np.sqrt(H), "b": np.zeros(G * H),
                "W_vocab": np.random.randn(H, V) / np.sqrt(H), "b_vocab": np.zeros(V)}
            for k, v in self.params.items():
                self.params[k] = v.astype(self.dtype)

        def loss(self, features, captions):
            captions_in, captions_out = captions[:, :-1], captions[:, 1:]
            mask = captions_out != self._null
            p, grads = self.params, {}
            h0, c_proj = affine_forward(features, p["W_proj"], p["b_proj"])
            x, c_embed = word_embedding_forward(captions_in, p["W_embed"])
            forward, backward = (rnn_forward, rnn_backward) if self.cell_type == "rnn" else (lstm_forward, lstm_backward)
            h, c_cell = forward(x, h0, p["Wx"], p["Wh"], p["b"])
            scores, c_vocab = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
            loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
            dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, c_vocab)
            dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, c_cell)
            grads["W_embed"] = word_embedding_backward(dx, c_embed)
            _, grads["W_proj"], grads["b_proj"] = affine_backward(DH0, c_proj)
            return loss, grads
"""


def _package(tmp_path, dh0="dh0", **choices):
    pkg = tmp_path / "cs231n"
    (pkg / "classifiers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "classifiers" / "__init__.py").write_text("")
    variants.write(pkg, affine="plain", **choices)
    path = pkg / "classifiers" / "rnn.py"
    path.write_text(textwrap.dedent(MODEL).replace("DH0", dh0))
    return path


def test_a_correct_model_passes(tmp_path, capsys):
    path = _package(tmp_path)
    assert cli.main(["check", "--model", f"{path}:CaptioningRNN", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "CaptioningRNN(cell_type='rnn')" in out and "CaptioningRNN(cell_type='lstm')" in out
    assert "2 cell types checked" in out and "-> PASS" in out


def test_a_model_that_drops_a_gradient_fails_and_names_the_parameter(tmp_path):
    report = check_model(str(_package(tmp_path, dh0="0 * dh0")), cells=("rnn",), timeout=60)
    (result,) = report["results"]
    assert result["status"] == "wrong"
    assert "W_proj" in result["message"] or "b_proj" in result["message"]


def test_wrong_layers_under_a_model_fail_it(tmp_path):
    report = check_model(str(_package(tmp_path, gate_order="ifgo")), timeout=60)
    statuses = {r["family"]: r["status"] for r in report["results"]}
    assert statuses == {"rnn": "pass", "lstm": "wrong"}
    assert "the notebook expects" in report["results"][1]["message"]


def test_fastrnn_model_by_dotted_name_passes():
    assert check_model("fastrnn.models.captioning:CaptioningRNN", timeout=60)["ok"]


def test_missing_class_is_a_usage_error(tmp_path, capsys):
    path = _package(tmp_path)
    with pytest.raises(TargetError, match="has no class Captioner"):
        check_model(f"{path}:Captioner")
    assert cli.main(["check", "--model", f"{path}:Captioner"]) == 2
    assert "has no class Captioner" in capsys.readouterr().err
