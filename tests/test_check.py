"""``fastrnn check``: passes on the real backends, fails (exit 1) on a deliberately broken one."""

import numpy as np
import pytest

import fastrnn
from fastrnn import _backend, cli
from fastrnn.check import backends as check
from fakes import BREAKAGES, BROKEN_LAYER, register_broken_backend
from helpers import COMPILED_BACKENDS


def test_every_available_backend_passes():
    result = check.run(trials=8, seed=3)
    assert result["ok"], check.table(result)
    assert result["backends"] == fastrnn.available_backends()
    layers = {r["layer"] for r in result["rows"]}
    assert layers == set(check.LAYERS)
    assert all(r["trials"] == 8 and r["passed"] == 8 for r in result["rows"])


def test_first_trial_has_every_size_one_and_later_trials_vary():
    seen = []
    original = check._inputs

    def spy(layer, rng, dtype, d):
        seen.append((dict(d), np.dtype(dtype)))
        return original(layer, rng, dtype, d)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(check, "_inputs", spy)
        check.run(backends=["numpy"], trials=12, seed=0)
    assert set(seen[0][0].values()) == {1}
    assert {dt for _, dt in seen} == {np.dtype(np.float32), np.dtype(np.float64)}
    assert len({tuple(d.values()) for d, _ in seen}) > 5


@pytest.mark.parametrize("mode", BREAKAGES)
def test_broken_backend_fails(monkeypatch, mode):
    name = register_broken_backend(monkeypatch, mode)
    assert name in fastrnn.available_backends()
    result = check.run(backends=["numpy", name], trials=20, seed=0)
    assert not result["ok"]
    failed = {(f["backend"], f["layer"]) for f in result["failures"]}
    assert failed == {(name, BROKEN_LAYER[mode])}, check.table(result)
    rows = {(r["backend"], r["layer"]): r for r in result["rows"]}
    assert rows[(name, BROKEN_LAYER[mode])]["passed"] < 20
    assert rows[("numpy", BROKEN_LAYER[mode])]["passed"] == 20  # the oracle itself was left alone


def test_cli_exits_non_zero_on_a_broken_backend(monkeypatch, capsys):
    name = register_broken_backend(monkeypatch, "wrong_gradient")
    assert cli.main(["check", "--backends", name, "--trials", "4"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "lstm" in out and "dWh" in out


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_cli_exits_non_zero_when_a_real_backend_is_broken(monkeypatch, capsys, backend):
    module = _backend.backend_module(backend)
    original = module.rnn_backward

    def rnn_backward(dh, cache):
        dx, dh0, dWx, dWh, db = original(dh, cache)
        return dx, dh0, dWx * 1.01 + 0.01, dWh, db

    monkeypatch.setattr(module, "rnn_backward", rnn_backward)
    assert cli.main(["check", "--backends", backend, "--trials", "3"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_passes_and_writes_json(tmp_path, capsys):
    path = tmp_path / "check.json"
    assert cli.main(["check", "--trials", "3", "--seed", "7", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "comparisons passed" in out and "FAIL" not in out
    import json

    data = json.loads(path.read_text())
    assert data["ok"] is True and data["seed"] == 7 and data["trials"] == 3


def test_unknown_backend_is_a_usage_error(capsys):
    assert cli.main(["check", "--backends", "no-such-backend"]) == 2
    assert "available backends" in capsys.readouterr().err


def test_markdown_table(capsys):
    assert cli.main(["check", "--trials", "2", "--backends", "numpy", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "\n| backend" in out and "|:-" in out
