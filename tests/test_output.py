"""fastrnn._output: the one way fastrnn writes its JSON and replaces files."""

import json
import os

import numpy as np
import pytest

from fastrnn import _output


def test_an_error_inside_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    _output.write_json(path, {"run": 1})
    with pytest.raises(RuntimeError):
        with _output.replaced(path) as tmp:
            with open(tmp, "w") as f:
                f.write("{half")
            raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"run": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_strict_json_from_numpy_scalars_non_finite_floats_and_other_objects(tmp_path):
    path = tmp_path / "out.json"
    _output.write_json(path, {"a": float("nan"), "b": np.float32(1.5), "c": (np.int64(3), float("-inf")),
                              "d": tmp_path, 4: None})
    assert json.loads(path.read_text()) == {"a": "nan", "b": 1.5, "c": [3, "-inf"], "d": str(tmp_path), "4": None}
