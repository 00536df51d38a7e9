"""rnn_forward/lstm_forward (+ backward) and the step functions: backend x cell x size x dtype x pass."""

KINDS = ("sequence", "step")


def test_layer(describe, verified_workload):
    w = verified_workload
    with w.context():
        describe(w.run)
