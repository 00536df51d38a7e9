"""CaptioningRNN at the captioning configuration (V=1004, input 512, wordvec 256, hidden 512, T=16).

test_loss: loss and all gradients, every backend and torch's equivalent model.
test_sample: greedy sampling of 30 words (fastrnn backends only: it runs the step functions).
"""

import pytest

import fastrnn
from fastrnn.bench import workloads

KINDS = ("model",)


def test_loss(describe, verified_workload):
    w = verified_workload
    with w.context():
        describe(w.run)


@pytest.fixture
def sample_inputs(case):
    from conftest import case_inputs

    return case_inputs(case)


def test_sample(describe, case, impl, sample_inputs):
    model, features = sample_inputs["model"], sample_inputs["features"]
    with fastrnn.use_backend(workloads.ORACLE):
        expected = model.sample(features, max_length=30)
    with fastrnn.use_backend(impl):
        got = model.sample(features, max_length=30)
        # Greedy argmax can flip on a float32 near-tie between backends; almost all words agree.
        assert got.shape == expected.shape and (got == expected).mean() > 0.95
        describe.group = f"{case.cell} model {case.size} float32 sample(max_length=30)"
        describe(model.sample, features, max_length=30)


test_sample.backends_only = True  # read by conftest.pytest_generate_tests
test_sample.what = "sample"
