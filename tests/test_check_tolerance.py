"""The parity tolerance of ``fastrnn check --module`` against correct code written other ways, and known bugs.

These are the measurements behind ``fastrnn._tolerances.FOREIGN`` and the gradient-check
thresholds of ``fastrnn.check.golden``: every correct variant passes with its largest error far
below the tolerance, and every bug fails with its error far above it.
"""

import pytest

from fastrnn import _tolerances
from fastrnn.check.module import check_module
import cs231n_variants as variants

TOLERANCE = _tolerances.FOREIGN["tolerance"]


def _errors(report, check):
    return [c["error"] for r in report["results"] for c in r["checks"]
            if c["check"] == check and c["error"] is not None]


@pytest.mark.parametrize("name", sorted(variants.CORRECT))
def test_correct_code_written_another_way_passes_far_below_the_tolerance(tmp_path, name):
    report = check_module(str(variants.write(tmp_path, **variants.CORRECT[name])), timeout=60)
    assert report["ok"], [(r["function"], r["message"]) for r in report["results"] if r["status"] != "pass"]
    assert max(_errors(report, "parity")) < TOLERANCE * 1e-4  # measured: 1.1e-15 at most
    # The notebook's gradient checks: well inside "the next order of magnitude" (measured: 0.23 at most).
    assert max(_errors(report, "gradient check")) < 0.5


_FAMILIES = {"rnn_backward": "rnn", "rnn_step_backward": "rnn", "word_embedding_backward": "word_embedding",
             "temporal_softmax_loss": "temporal_softmax_loss"}


@pytest.mark.parametrize("name", sorted(variants.BUGS))
def test_known_bugs_fail_far_above_the_tolerance(tmp_path, name):
    choices, failing = variants.BUGS[name]
    only = sorted({f.split("_")[0] if f.startswith(("rnn", "lstm")) else _FAMILIES.get(f, f) for f in failing})
    report = check_module(str(variants.write(tmp_path, **choices)), only=only, timeout=60)
    statuses = {r["function"]: r["status"] for r in report["results"]}
    assert {f for f, s in statuses.items() if s != "pass"} == failing, statuses
    wrong_parity = [c["error"] for r in report["results"] if r["function"] in failing for c in r["checks"]
                    if c["check"] == "parity" and c["ok"] is False and c["error"] is not None]
    assert all(e > TOLERANCE * 1e5 for e in wrong_parity), wrong_parity  # measured: 0.5 at least
