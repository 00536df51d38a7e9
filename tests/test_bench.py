"""The benchmark harness (fastrnn.bench, fastrnn.workloads): how it measures, not what it measures."""

import itertools
import math

import numpy as np
import pytest

import fastrnn
from fastrnn.bench import harness as bench
from fastrnn.bench import report as bench_report
from fastrnn.bench import workloads
from fastrnn._tolerances import excess
from fastrnn.bench.sizes import CAPTIONING, SIZES


def _tiny(kind="sequence", cell="lstm", dtype="float32", pass_="fwd+bwd"):
    return workloads.cases(kinds=(kind,), cells=(cell,), sizes=("tiny",), dtypes=(dtype,), passes=(pass_,))[0]


def test_cases_cover_the_grid():
    cs = workloads.cases()
    seq = [c for c in cs if c.kind == "sequence"]
    assert len(seq) == 2 * len(SIZES) * 2 * 2
    assert {c.size for c in seq} == set(SIZES)
    step = [c for c in cs if c.kind == "step"]
    assert all(c.dim["T"] == 1 for c in step) and len(step) == len(seq)
    model = [c for c in cs if c.kind == "model"]
    assert sorted(c.dim["N"] for c in model) == [25, 25, 100, 100]
    assert all(c.dtype == "float32" and c.dim["V"] == CAPTIONING["vocab_size"] for c in model)
    assert len({c.label for c in cs}) == len(cs)


def test_runs_are_interleaved_round_robin(monkeypatch):
    """Every round samples every implementation on NumPy's BLAS once, in turn, before the next
    round starts; torch (its own thread pool) takes its rounds after them, with a pause on each side."""
    log = []
    build = workloads.build

    def spying_build(case, name, *args, **kwargs):
        w = build(case, name, *args, **kwargs)
        run = w.run

        def logged():
            log.append(name)
            return run()

        w.run = logged
        return w

    monkeypatch.setattr(workloads, "build", spying_build)
    names = bench.implementations()
    with bench.thread_settings(1, "torch" in names):
        record = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=4,
                                    sleep=lambda s: log.append(("pause", s)))
    collapsed = [k for k, _ in itertools.groupby(log)]  # one entry per sample (a batch of calls)
    setup, timed = collapsed[:len(names)], collapsed[len(names):]
    assert setup == names  # first call + warm-up of each, in order
    blas = [n for n in names if n != "torch"]
    pause = ("pause", bench.SETTLE_S)
    if "torch" in names:
        assert timed[-3:] == [pause, "torch", pause]  # its 4 samples back to back (collapsed to one)
        timed = timed[:-3]
    else:
        assert pause not in timed
    assert len(timed) == 4 * len(blas)
    rounds = [timed[i:i + len(blas)] for i in range(0, len(timed), len(blas))]
    assert all(sorted(r) == sorted(blas) for r in rounds)
    assert rounds[0] != rounds[1]  # each round starts one further along
    assert all(len(record["results"][n]["samples_s"]) == 4 for n in names)


def test_medians_and_ratios_come_from_the_samples(monkeypatch):
    ticks = itertools.count()

    def clock():  # every call to the clock advances 1 "second": timings are fully determined
        return float(next(ticks))

    record = bench.measure_case(_tiny(pass_="fwd"), ["numpy", "floor"], rounds=3, clock=clock)
    for e in record["results"].values():
        assert e["median_s"] == pytest.approx(1.0 / e["number"])
        assert e["first_call_s"] == 1.0
    r = record["ratios"]["numpy"]
    assert r["speedup_vs_oracle"] == 1.0
    assert r["time_over_floor"] == pytest.approx(
        record["results"]["numpy"]["median_s"] / record["results"]["floor"]["median_s"])
    assert r["time_over_torch"] is None


def test_auto_rounds():
    assert bench.auto_rounds(0.001) == 9
    assert bench.auto_rounds(0.1) == 7
    assert bench.auto_rounds(5.0) == 5
    assert min(bench.auto_rounds(t) for t in (1e-6, 0.01, 0.1, 1, 10, 100)) >= 5


@pytest.mark.parametrize("kind,cell,pass_", [
    ("sequence", "rnn", "fwd"), ("sequence", "lstm", "fwd+bwd"), ("step", "rnn", "fwd+bwd"),
    ("step", "lstm", "fwd+bwd"), ("step", "lstm", "fwd"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_implementation_agrees_with_the_oracle(kind, cell, pass_, dtype):
    case = _tiny(kind, cell, dtype, pass_)
    arrays = workloads.inputs(case)
    oracle = workloads.build(case, "numpy", arrays)
    with oracle.context():
        expected = oracle.results(oracle.run())
    names = [n for n in bench.implementations() if n not in ("numpy", "floor")]
    for name in names:
        w = workloads.build(case, name, arrays)
        with w.context():
            got = w.results(w.run())
        assert set(got) == set(expected)
        for k in expected:
            assert got[k].dtype == expected[k].dtype, (name, k)
            assert excess(got[k], expected[k]) <= 1, (name, k)


def test_model_case_is_verified_for_every_implementation():
    case = next(c for c in workloads.cases(kinds=("model",), cells=("lstm",)) if c.dim["N"] == 25)
    names = bench.implementations()
    with bench.thread_settings(1, "torch" in names):  # a busy 2-core machine makes 2 threads crawl
        record = bench.measure_case(case, names, rounds=1)
    for name, e in record["results"].items():
        assert e["error"] is None, (name, e)
        assert e["verified"] is (None if name == "floor" else True), (name, e)
    assert record["ratios"]["numpy"]["time_over_floor"] > 0  # the oracle / floor: the bound on any speed-up
    text = bench_report.table({"settings": {"threads": {"blas": 1}, "rounds": 1, "min_sample_s": 0.005},
                               "machine": _fake_machine(), "cases": [record]})
    assert "lstm float32 loss+grads" in text and "N=25" in text


def _fake_machine():
    return {"cpu": {"model": "x", "machine": "x86_64", "logical_cores": 2, "usable_cores": 2},
            "blas": [], "versions": {"fastrnn": fastrnn.__version__}}


def test_floor_does_the_designed_gemms():
    case = _tiny("sequence", "lstm", "float64", "fwd+bwd")
    N, T, D, H = SIZES["tiny"]
    G = 4 * H
    calls = []
    real = np.matmul

    def counting(a, b, out=None):
        calls.append((a.shape, b.shape))
        return real(a, b, out=out)

    w = workloads.build(case, "floor")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "matmul", counting)
        w = workloads.build(case, "floor")
        w.run()
    expected = ([((N * T, D), (D, G))] + [((N, H), (H, G))] * T + [((N, G), (G, H))] * T
                + [((N * T, G), (G, D)), ((D, N * T), (N * T, G)), ((H, N * T), (N * T, G))])
    assert calls == expected
    assert workloads.gemm_flops(case) == sum(2 * a[0] * a[1] * b[1] for a, b in expected)


def test_model_floor_does_the_models_gemms():
    case = next(c for c in workloads.cases(kinds=("model",), cells=("lstm",)) if c.dim["N"] == 25)
    d = case.dim
    N, T, V, D, W, H = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"]
    G = 4 * H
    calls = []
    real = np.matmul

    def counting(a, b, out=None):
        calls.append((a.shape, b.shape))
        assert out is not None and out.dtype == np.float32  # into preallocated buffers, in the model's dtype
        return real(a, b, out=out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "matmul", counting)
        w = workloads.build(case, "floor")
        w.run()
    M = N * T
    cell = ([((M, W), (W, G))] + [((N, H), (H, G))] * T + [((N, G), (G, H))] * T
            + [((M, G), (G, W)), ((W, M), (M, G)), ((H, M), (M, G))])
    model = [((N, D), (D, H)), ((M, H), (H, V)), ((M, V), (V, H)), ((H, M), (M, V)), ((D, N), (N, H))]
    assert sorted(calls) == sorted(cell + model)
    assert workloads.gemm_flops(case) == sum(2 * a[0] * a[1] * b[1] for a, b in calls)


def test_implementations_validation():
    assert bench.implementations(["numpy"]) == ["numpy", "floor"]
    with pytest.raises(ValueError, match="available"):
        bench.implementations(["nope"])
    assert bench.implementations()[0] == "numpy"


def test_format_time():
    assert bench_report.format_time(1.5) == "1.50 s"
    assert bench_report.format_time(0.0123) == "12.3 ms"
    assert bench_report.format_time(4.56e-4) == "456 us"
    assert bench_report.format_time(7e-8) == "0.07 us"
    assert bench_report.format_time(None) == "-"


def test_excess():
    e = np.array([1.0, -2.0, 0.0])
    assert excess(e, e) == 0
    assert excess(e + 1e-13, e) < 1  # float64: atol 1e-12 * max(1, 2)
    assert excess(e + 1e-9, e) > 1
    assert excess(e.astype(np.float32) * (1 + 1e-5), e.astype(np.float32)) < 1
    assert math.isinf(excess(e[:2], e))
    assert math.isinf(excess(np.array([np.nan, 1.0]), np.array([0.0, 1.0])))
    assert excess(np.array([np.nan, np.inf]), np.array([np.nan, np.inf])) == 0
