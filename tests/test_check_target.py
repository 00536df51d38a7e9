"""How ``fastrnn check`` finds and imports its targets, and reads Python 2 code (no child process here)."""

import os

import pytest

from fastrnn.check import contract, legacy
from fastrnn.check.functions import error_of
from fastrnn.check.target import TargetError, resolve, split_class


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_file_in_a_package_is_imported_as_part_of_it(tmp_path):
    _touch(tmp_path / "a3" / "cs231n" / "__init__.py")
    f = _touch(tmp_path / "a3" / "cs231n" / "classifiers" / "rnn.py", "from ..rnn_layers import *\n")
    _touch(tmp_path / "a3" / "cs231n" / "classifiers" / "__init__.py")
    t = resolve(str(f))
    assert t.module == "cs231n.classifiers.rnn"
    assert t.sys_path[0] == str(tmp_path / "a3")
    assert t.root == str(tmp_path / "a3" / "cs231n")


def test_relative_imports_without_init_make_namespace_packages(tmp_path):
    f = _touch(tmp_path / "a3" / "cs231n" / "classifiers" / "rnn.py", "from ..rnn_layers import *\n")
    t = resolve(str(f))
    assert t.module == "cs231n.classifiers.rnn" and t.sys_path[0] == str(tmp_path / "a3")


def test_an_absolute_import_of_an_enclosing_directory_puts_its_parent_on_the_path(tmp_path):
    f = _touch(tmp_path / "a3" / "cs231n" / "classifiers" / "rnn.py", "from cs231n.layers import *\n")
    t = resolve(str(f))
    assert t.module == "rnn"
    assert str(tmp_path / "a3") in t.sys_path and str(f.parent) in t.sys_path
    assert t.root == str(tmp_path / "a3" / "cs231n")


def test_a_lone_file_and_a_dotted_name(tmp_path, monkeypatch):
    f = _touch(tmp_path / "layers.py", "import numpy\n")
    t = resolve(str(f))
    assert t.module == "layers" and t.root == str(tmp_path) and t.file == str(f)
    monkeypatch.chdir(tmp_path)
    t = resolve("pkg.rnn_layers")
    assert t.module == "pkg.rnn_layers" and t.file is None and t.sys_path == (os.getcwd(),)


def test_bad_targets(tmp_path):
    with pytest.raises(TargetError, match="no such file"):
        resolve(str(tmp_path / "missing.py"))
    with pytest.raises(TargetError, match="neither an existing file nor a dotted module name"):
        resolve("not a module")
    with pytest.raises(TargetError, match="directory without __init__.py"):
        resolve(str(tmp_path))


def test_class_names(tmp_path):
    assert split_class("cs231n/classifiers/rnn.py:CaptioningRNN") == ("cs231n/classifiers/rnn.py", "CaptioningRNN")
    assert split_class("pkg.rnn") == ("pkg.rnn", "CaptioningRNN")
    assert split_class(r"C:\work\rnn.py") == (r"C:\work\rnn.py", "CaptioningRNN")


def test_python2_print_statements_become_calls_and_line_numbers_stay():
    source = ("def f(x, verbose=False):\n"
              "  if verbose: print 'dx_flat: ', x.shape\n"
              "  print\n"
              "  print 'a',\n"
              "  print ('kept', 1)\n"
              "  for k, v in d.iteritems(): print k; y = 2\n"
              "  return x\n")
    new, changes = legacy.translate(source)
    assert new.splitlines() == [
        "def f(x, verbose=False):",
        "  if verbose: print('dx_flat: ', x.shape)",
        "  print()",
        "  print('a', end=\" \")",
        "  print ('kept', 1)",
        "  for k, v in d.items(): print(k); y = 2",
        "  return x"]
    assert changes == ["4 print statement(s) as print() calls", "1 dict.iteritems()-style call(s) as "
                                                               "items()/values()/keys()"]
    assert legacy.translate("print('python 3')\n") == ("print('python 3')\n", [])
    assert legacy.used_names(compile("for i in xrange(3): reduce(f, i)\n", "x", "exec")) == ["reduce", "xrange"]


def test_error_measure():
    import numpy as np

    assert error_of(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 4e-16]))[0] < 1e-15
    assert error_of(np.zeros((1, 3)), np.zeros(3))[2].startswith("has shape (1, 3)")  # a note, compared anyway
    assert error_of(np.zeros((3, 1)), np.zeros((1, 3)))[0] == 0.0
    assert error_of(np.zeros((2, 3)), np.zeros((3, 2)))[1] == "has shape (2, 3), expected (3, 2)"
    assert error_of(None, np.zeros(3))[1] == "is None"
    assert "NaN" in error_of(np.array([np.nan]), np.array([1.0]))[1]
    # Relative to max(1, |oracle|): the rounding of a small result is not magnified.
    assert error_of(np.array([1e-17]), np.array([0.0]))[0] == 1e-17


def test_the_function_table_matches_the_oracle():
    assert contract._check_table()
    names = [f.name for f in contract.available()]
    assert "rnn_step_forward" in names and "temporal_softmax_loss" in names
    assert [f.name for f in contract.select(["rnn_step"])] == ["rnn_step_forward", "rnn_step_backward"]
