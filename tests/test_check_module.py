"""``fastrnn check --module``: every outcome, on small modules the tests write (never anybody's real code).

Each check runs the module in a child process; the time limits here are short so that the
hanging cases cost about a second each.
"""

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from fastrnn import cli
from fastrnn.check import module as check_module_mod
from fastrnn.check import runner
from fastrnn.check.target import TargetError
import cs231n_variants as variants

check = check_module_mod.check_module

FAST = dict(timeout=10.0)  # a correct function takes well under a second
SHORT = dict(timeout=1.0)  # for the cases that hang


def _line(path, marker):
    """The number of the line of ``path`` that holds ``marker``."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text)


def _results(report):
    return {r["function"]: r for r in report["results"]}


def _write(path, *parts):
    """Writes the parts, each dedented, one after the other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(textwrap.dedent(p) for p in parts))
    return path


# A correct rnn_step pair, to which the cases below add one broken function.
RNN_STEP = """
    import numpy as np

    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
        return next_h, (x, prev_h, Wx, Wh, next_h)

    def rnn_step_backward(dnext_h, cache):
        x, prev_h, Wx, Wh, next_h = cache
        da = dnext_h * (1 - next_h ** 2)
        return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)
"""


def test_a_correct_module_passes_with_exit_status_0(tmp_path, capsys):
    path = variants.write(tmp_path)
    assert cli.main(["check", "--module", str(path), "--timeout", "30"]) == 0
    out = capsys.readouterr().out
    for name in ("rnn_step_forward", "lstm_backward", "temporal_softmax_loss"):
        assert f"\n{name}" in out
    assert "-> PASS" in out and "14 functions checked" in out


def test_wrong_names_the_output_the_error_and_the_sizes(tmp_path):
    path = variants.write(tmp_path, carry="dropped")
    report = check(str(path), only=["rnn"], **FAST)
    r = _results(report)
    assert r["rnn_backward"]["status"] == "wrong"
    message = r["rnn_backward"]["message"]
    assert "differs from the oracle's by" in message and "at N=" in message
    assert any(f.startswith(("dx", "dh0", "dWx", "dWh", "db")) for f in r["rnn_backward"]["findings"])
    assert {k: v["status"] for k, v in r.items() if k != "rnn_backward"} == dict.fromkeys(
        ["rnn_step_forward", "rnn_step_backward", "rnn_forward"], "pass")
    assert not report["ok"]


def test_error_names_the_exception_and_the_line(tmp_path):
    path = _write(tmp_path / "layers_error.py", RNN_STEP, """
        def rnn_forward(x, h0, Wx, Wh, b):
            N, T, D = x.shape
            raise KeyError("no such step")  # HERE

        def rnn_backward(dh, cache):
            return cache
    """)
    r = _results(check(str(path), only=["rnn"], **FAST))
    assert r["rnn_forward"]["status"] == "error"
    assert "KeyError" in r["rnn_forward"]["message"] and "no such step" in r["rnn_forward"]["message"]
    assert r["rnn_forward"]["location"].endswith(f"layers_error.py:{_line(path, 'HERE')} in rnn_forward")
    assert r["rnn_backward"]["status"] == "untestable"  # its forward fails everywhere: not a second error


def test_not_implemented_missing_template_and_notimplementederror(tmp_path):
    path = _write(tmp_path / "stubs.py", """
        def rnn_step_forward(x, prev_h, Wx, Wh, b):
            next_h, cache = None, None
            return next_h, cache

        def rnn_step_backward(dnext_h, cache):
            pass

        def rnn_forward(x, h0, Wx, Wh, b):
            raise NotImplementedError("TODO")
    """)
    r = _results(check(str(path), only=["rnn"], **FAST))
    assert r["rnn_step_forward"]["status"] == "not implemented"
    assert "template" in r["rnn_step_forward"]["message"]
    assert r["rnn_step_backward"]["status"] == "untestable"
    assert r["rnn_forward"]["status"] == "not implemented"
    assert "NotImplementedError" in r["rnn_forward"]["message"]
    assert r["rnn_backward"]["status"] == "not implemented"
    assert "does not define" in r["rnn_backward"]["message"]


def test_a_stub_returning_zero_is_wrong(tmp_path):
    path = variants.write(tmp_path, rnn_step="zero_stub")
    r = _results(check(str(path), only=["rnn_step_forward"], **FAST))
    assert r["rnn_step_forward"]["status"] == "wrong"
    assert "returned the int 0" in r["rnn_step_forward"]["message"]


def test_untestable_backward_when_its_forward_is_wrong_everywhere(tmp_path):
    path = variants.write(tmp_path, gate_order="ifgo")
    r = _results(check(str(path), only=["lstm"], **FAST))
    assert r["lstm_step_forward"]["status"] == "wrong"
    assert "notebook's values" in r["lstm_step_forward"]["message"]
    assert r["lstm_step_backward"]["status"] == "untestable"
    assert "lstm_step_forward" in r["lstm_step_backward"]["message"]


def test_time_out_is_reported_and_the_check_goes_on(tmp_path):
    path = _write(tmp_path / "loops.py", RNN_STEP, """
        def sigmoid(x):
            while True:  # HERE
                pass
    """)
    report = check(str(path), only=["rnn_step", "sigmoid"], **SHORT)
    r = _results(report)
    assert r["sigmoid"]["status"] == "time-out"
    assert "1 s" in r["sigmoid"]["message"]
    here = _line(path, "HERE")
    assert r["sigmoid"]["location"].endswith((f"loops.py:{here} in sigmoid", f"loops.py:{here + 1} in sigmoid"))
    assert r["rnn_step_forward"]["status"] == "pass" and r["rnn_step_backward"]["status"] == "pass"


@pytest.mark.parametrize("body,expected", [
    ("import sys\n    sys.exit(3)", "sys.exit(3)"),
    ("import os\n    os._exit(5)", "exited with status 5"),
    ("import ctypes\n    ctypes.string_at(0)", "SIGSEGV"),
])
def test_exit_and_crash_are_reported_for_that_function(tmp_path, body, expected):
    path = _write(tmp_path / "crashes.py", RNN_STEP, textwrap.dedent("""
        def sigmoid(x):
            {body}
            return x
    """).replace("{body}", body))
    # sigmoid comes after the rnn_step pair, and the functions after it still run.
    report = check(str(path), only=["rnn_step", "sigmoid", "word_embedding"], **FAST)
    r = _results(report)
    assert r["sigmoid"]["status"] == "error"
    assert expected in r["sigmoid"]["message"]
    if "exited" not in expected:
        assert "crashes.py:" in r["sigmoid"]["location"]
    assert r["rnn_step_forward"]["status"] == "pass"
    assert r["word_embedding_forward"]["status"] == "not implemented"  # checked after the crash


def test_memory_hog_gets_a_memory_error(tmp_path):
    path = _write(tmp_path / "hog.py", RNN_STEP, """
        def sigmoid(x):
            import numpy as np
            hoard = [np.ones(2 ** 24) for _ in range(200)]  # 128 MiB each: 25 GiB in all
            return x
    """)
    r = _results(check(str(path), only=["sigmoid"], timeout=20.0, memory_mb=300))
    assert r["sigmoid"]["status"] == "error"
    assert "MemoryError" in r["sigmoid"]["message"]
    assert "hog.py:" in r["sigmoid"]["location"]


def test_a_package_with_relative_imports(tmp_path):
    pkg = tmp_path / "assignment3" / "cs231n"
    _write(pkg / "__init__.py", "")
    _write(pkg / "layers.py", """
        import numpy as np

        def tanh(a):
            return np.tanh(a)
    """)
    _write(pkg / "rnn_layers.py", "from .layers import *\n", RNN_STEP.replace("np.tanh", "tanh"))
    report = check(str(pkg / "rnn_layers.py"), only=["rnn_step"], **FAST)
    assert report["module"] == "cs231n.rnn_layers"
    assert report["ok"], report["results"]


def test_a_namespace_package_and_an_absolute_import_of_its_own_package(tmp_path):
    # No __init__.py (some years of the assignment): relative imports still work, and so does
    # ``from cs231n.layers import *`` from inside cs231n/.
    pkg = tmp_path / "a3" / "cs231n"
    _write(pkg / "layers.py", "import numpy as np\ndef tanh(a):\n    return np.tanh(a)\n")
    _write(pkg / "rnn_layers.py", "from .layers import *\n", RNN_STEP.replace("np.tanh", "tanh"))
    _write(pkg / "other_layers.py", "from cs231n.layers import *\n", RNN_STEP.replace("np.tanh", "tanh"))
    assert check(str(pkg / "rnn_layers.py"), only=["rnn_step"], **FAST)["ok"]
    assert check(str(pkg / "other_layers.py"), only=["rnn_step"], **FAST)["ok"]


def test_python2_code_of_the_early_assignments_is_checked_with_a_note(tmp_path):
    source = variants.source().replace('print("dx_flat: ", dx_flat.shape)', "print 'dx_flat: ', dx_flat.shape")
    source = source.replace("for t in range(T):", "for t in xrange(T):")
    path = _write(tmp_path / "rnn_layers.py", source)
    report = check(str(path), only=["rnn", "temporal_softmax_loss"], **FAST)
    assert report["ok"], report["results"]
    assert any("Python 2" in n and "print" in n for n in report["notes"])
    assert any("xrange" in n for n in report["notes"])


def test_only_checks_the_named_families_and_functions(tmp_path):
    path = variants.write(tmp_path)
    report = check(str(path), only=["word_embedding", "sigmoid", "rnn_step_backward"], **FAST)
    assert [r["function"] for r in report["results"]] == [
        "rnn_step_backward", "word_embedding_forward", "word_embedding_backward", "sigmoid"]
    with pytest.raises(ValueError, match="unknown gru2"):
        check(str(path), only=["gru2"], **FAST)


def test_optional_affine_is_checked_only_when_present(tmp_path):
    without = variants.write(tmp_path, name="without.py")
    assert "affine_forward" not in _results(check(str(without), only=["affine", "sigmoid"], **FAST))
    with_affine = variants.write(tmp_path, name="with_affine.py", affine="plain")
    r = _results(check(str(with_affine), only=["affine"], **FAST))
    assert r["affine_forward"]["status"] == r["affine_backward"]["status"] == "pass"


def test_json_and_junit_reports(tmp_path, capsys):
    path = variants.write(tmp_path, carry="dropped", lstm="template")
    json_path, junit_path = tmp_path / "report.json", tmp_path / "junit.xml"
    status = cli.main(["check", "--module", str(path), "--only", "rnn,lstm", "--json", str(json_path),
                       "--junit", str(junit_path), "--timeout", "30"])
    assert status == 1
    out = capsys.readouterr().out
    assert "WRONG" in out and "NOT IMPLEMENTED" in out and "-> FAIL" in out
    assert "not passing: rnn_backward, lstm_forward, lstm_backward" in out
    data = json.loads(json_path.read_text())
    assert data["ok"] is False and data["exit_status"] == 1
    (report,) = data["reports"]
    assert {r["function"]: r["status"] for r in report["results"]}["rnn_backward"] == "wrong"
    suite = ET.parse(junit_path).getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "8"
    assert suite.get("failures") == "2" and suite.get("skipped") == "1" and suite.get("errors") == "0"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 8
    assert cases["rnn_backward"].find("failure").get("type") == "wrong"
    assert cases["lstm_forward"].find("failure").get("type") == "not implemented"
    assert cases["lstm_backward"].find("skipped") is not None
    assert len(list(cases["rnn_forward"])) == 0  # a pass has no child element


@pytest.mark.parametrize("target,message", [
    ("no/such/rnn_layers.py", "no such file"),
    ("no_such_package.rnn_layers", "No module named 'no_such_package'"),
])
def test_usage_errors_exit_2(target, message, capsys):
    assert cli.main(["check", "--module", target]) == 2
    assert message in capsys.readouterr().err


def test_a_module_that_does_not_import_is_a_usage_error_with_the_line(tmp_path, capsys):
    path = _write(tmp_path / "broken.py", "import numpy as np\n\ndef rnn_forward(x:\n    pass\n")
    assert cli.main(["check", "--module", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot import" in err and "SyntaxError" in err and "broken.py:3" in err
    importer = _write(tmp_path / "raises.py", "import numpy as np\nraise RuntimeError('bad setup')\n")
    with pytest.raises(TargetError, match=r"RuntimeError: bad setup .*raises.py:2"):
        check(str(importer), **FAST)


def test_a_module_without_layer_functions_is_a_usage_error(tmp_path):
    path = _write(tmp_path / "nothing.py", "def f():\n    return 1\n")
    with pytest.raises(TargetError, match="defines none of the layer functions"):
        check(str(path), **FAST)


def test_options_of_the_two_modes_do_not_mix(tmp_path, capsys):
    path = variants.write(tmp_path)
    assert cli.main(["check", "--module", str(path), "--backends", "numpy"]) == 2
    assert cli.main(["check", "--junit", str(tmp_path / "j.xml")]) == 2
    assert "goes with --module" in capsys.readouterr().err


def test_fastrnn_itself_passes_by_dotted_name():
    for target in ("fastrnn.reference", "fastrnn.layers"):
        report = check(target, only=["rnn", "temporal_softmax_loss"], **FAST)
        assert report["ok"], (target, report["results"])


def test_locate_picks_the_innermost_frame_of_the_checked_code(tmp_path):
    root = str(tmp_path)
    frames = [(runner.__file__, 10, "batch"), (str(tmp_path / "a.py"), 5, "f"),
              (str(tmp_path / "b.py"), 7, "g"), ("/usr/lib/numpy/core.py", 99, "dot")]
    assert runner.locate(frames, root).endswith("b.py:7 in g")


def test_a_backward_without_a_notebook_check_gets_the_default_gradient_check(tmp_path, monkeypatch):
    # As GRU's will: scaled inputs, the error relative to the gradient's largest entry.
    from fastrnn.check import golden

    checks = dict(golden.GRADIENT_CHECKS)
    del checks["rnn_step_backward"]
    monkeypatch.setattr(golden, "GRADIENT_CHECKS", checks)
    good = _results(check(str(variants.write(tmp_path, name="good.py")), only=["rnn_step"], **FAST))
    gradient = [c for c in good["rnn_step_backward"]["checks"] if c["check"] == "gradient check"]
    assert good["rnn_step_backward"]["status"] == "pass" and gradient[0]["where"].startswith("N=3")
    bad = _results(check(str(variants.write(tmp_path, name="bad.py", rnn_step="no_tanh_grad")), only=["rnn_step"],
                         **FAST))
    assert bad["rnn_step_backward"]["status"] == "wrong"
    assert any("relative to its largest entry" in f for f in bad["rnn_step_backward"]["findings"])
