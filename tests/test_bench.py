"""The benchmark harness (fastrnn.bench, fastrnn.workloads): how it measures, not what it measures."""

import itertools
import math
import os
import sys
from collections import namedtuple

import numpy as np
import pytest

import fastrnn
from fastrnn.bench import harness as bench
from fastrnn.bench import machine
from fastrnn.bench import peak
from fastrnn.bench import report as bench_report
from fastrnn.bench import workloads
from fastrnn._cells import gates
from fastrnn._tolerances import excess
from fastrnn.bench.sizes import CAPTIONING, SIZES


def _tiny(kind="sequence", cell="lstm", dtype="float32", pass_="fwd+bwd"):
    return workloads.cases(kinds=(kind,), cells=(cell,), sizes=("tiny",), dtypes=(dtype,), passes=(pass_,))[0]


def test_cases_cover_the_grid():
    cs = workloads.cases()
    seq = [c for c in cs if c.kind == "sequence"]
    assert len(seq) == 3 * len(SIZES) * 2 * 2  # rnn, lstm, gru x sizes x dtypes x passes
    assert {c.cell for c in cs} == {"rnn", "lstm", "gru"}
    assert {c.size for c in seq} == set(SIZES)
    step = [c for c in cs if c.kind == "step"]
    assert all(c.dim["T"] == 1 for c in step) and len(step) == len(seq)
    model = [c for c in cs if c.kind == "model"]
    assert sorted(c.dim["N"] for c in model) == [25, 25, 25, 100, 100, 100]
    assert all(c.dtype == "float32" and c.dim["V"] == CAPTIONING["vocab_size"] for c in model)
    sample = [c for c in cs if c.kind == "sample"]
    assert [c.dims for c in sample] == [c.dims for c in model] and all(c.pass_ == "fwd" for c in sample)
    assert len({c.label for c in cs}) == len(cs)


def _name_runs(monkeypatch, on_run=None):
    """Makes every workload's ``run`` carry its implementation's name (``run.implementation``), and
    call ``on_run(name)`` first when given."""
    build = workloads.build

    def named_build(case, name, *args, **kwargs):
        w = build(case, name, *args, **kwargs)
        run = w.run

        def run_of_this_implementation():
            if on_run is not None:
                on_run(name)
            return run()

        run_of_this_implementation.implementation = name
        w.run = run_of_this_implementation
        return w

    monkeypatch.setattr(workloads, "build", named_build)


def _log_samples(monkeypatch, log, entry=lambda name: name):
    """Makes every timed sample append ``entry(its implementation's name)`` to ``log`` (needs _name_runs)."""
    sample = bench.timing.sample

    def logged_sample(fn, number, clock):
        log.append(entry(fn.implementation))
        return sample(fn, number, clock)

    monkeypatch.setattr(bench.timing, "sample", logged_sample)


@pytest.mark.parametrize("visit_s, per_visit", [(None, 3), (1e-9, 1)])
def test_runs_are_interleaved_round_robin_within_each_thread_pool(monkeypatch, visit_s, per_visit):
    """The implementations take their rounds pool by pool (NumPy's BLAS: the oracle and the floor;
    fastrnn's team: the compiled backends; torch's), in visits of ``per_visit`` rounds: a pass over the
    pools in one order, the next in the reverse order, and so on, with a pause at every change of pool and
    after the last; within a pool every round samples every member once, in turn, each round starting one
    further. A tiny case fits all its rounds in VISIT_S: half of them per visit; where a round takes longer
    than VISIT_S, one."""
    log = []
    _name_runs(monkeypatch)
    if visit_s is not None:
        monkeypatch.setattr(bench, "VISIT_S", visit_s)
    _log_samples(monkeypatch, log)
    names = bench.implementations()
    rounds = 5
    with bench.thread_settings(1, "torch" in names):
        record = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=rounds,
                                    sleep=lambda s: log.append(("pause", s)))
    pools = [["numpy", "floor"], [n for n in names if n not in ("numpy", "floor", "torch")], ["torch"]]
    pools = [[n for n in pool if n in names] for pool in pools]
    pools = [pool for pool in pools if pool]
    pause = ("pause", bench.SETTLE_S)
    groups, current = [], []
    for entry in log:
        if entry == pause:
            groups.append(current)
            current = []
        else:
            current.append(entry)
    assert current == []  # a pause after the last pool too
    # passes of per_visit rounds, alternately forward and reversed; at a turn one pool's two visits are one group
    expected = []
    for i, start in enumerate(range(0, rounds, per_visit)):
        n = min(per_visit, rounds - start)
        expected += [(p, n) for p in (pools if i % 2 == 0 else pools[::-1])]
    merged = [expected[0]]
    for members, n in expected[1:]:
        if members == merged[-1][0]:
            merged[-1] = (members, merged[-1][1] + n)
        else:
            merged.append((members, n))
    assert len(groups) == len(merged)
    rounds_of = {}  # per pool, its rounds in time order
    for (members, n), group in zip(merged, groups):
        assert len(group) == n * len(members)
        chunks = [group[i:i + len(members)] for i in range(0, len(group), len(members))]
        assert all(sorted(c) == sorted(members) for c in chunks)
        rounds_of.setdefault(tuple(members), []).extend(chunks)
    for members, chunks in rounds_of.items():
        assert len(chunks) == rounds
        if len(members) > 1:
            assert all(a != b for a, b in zip(chunks, chunks[1:]))  # each round starts one further along
    assert all(len(record["results"][n]["samples_s"]) == rounds for n in names)
    assert record["rounds_per_visit"] == per_visit


def test_with_one_pool_every_round_samples_every_implementation_without_pauses(monkeypatch):
    """With one thread nothing spins: one group of all the implementations, each sampled once per round,
    in turn, starting one further along each round; warmed up once, no pause until the case ends."""
    log = []
    _name_runs(monkeypatch)
    _log_samples(monkeypatch, log)
    names = bench.implementations()
    rounds = 4
    with bench.thread_settings(1, "torch" in names):
        record = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=rounds, one_pool=True,
                                    sleep=lambda s: log.append(("pause", s)))
    assert all(not isinstance(e, tuple) for e in log)  # no pause at all: one pool, nothing to wait for
    chunks = [log[i:i + len(names)] for i in range(0, len(log), len(names))]
    assert len(chunks) == rounds and all(sorted(c) == sorted(names) for c in chunks)
    assert all(a != b for a, b in zip(chunks, chunks[1:]))
    assert all(len(record["results"][n]["samples_s"]) == rounds for n in names)
    assert record["rounds_per_visit"] == rounds  # one visit of every round


def test_a_one_thread_run_takes_one_pool_and_says_so(monkeypatch):
    seen = []
    measure = bench.measure_case
    monkeypatch.setattr(bench, "measure_case", lambda *a, **k: seen.append(k["one_pool"]) or measure(*a, **k))
    case = _tiny(cell="rnn", pass_="fwd")
    for threads in (1, 2):
        report = bench.run([case], ["numpy", "floor"], rounds=2, threads=threads, peak_sizes=(64,),
                           sleep=lambda s: None)
        assert report["settings"]["one_pool"] is (report["settings"]["threads"]["blas"] == 1)
        text = bench_report.table(report)
        assert ("every implementation in turn" in text) is report["settings"]["one_pool"]
    assert seen[0] is True


def test_every_pool_is_warmed_up_untimed_before_its_samples(monkeypatch):
    """Before a pool's first sample, and after every pause, each member of the pool runs untimed
    (the first calls after a pause run slow), for at least WARM_S of the clock."""
    log = []
    _name_runs(monkeypatch, on_run=lambda name: log.append(("run", name)))
    _log_samples(monkeypatch, log, entry=lambda name: ("sample", name))
    ticks = itertools.count()
    team = [b for b in ("cython", "numba") if b in fastrnn.available_backends()]
    if not team:
        pytest.skip("no compiled backend: no team pool to warm up")
    names = ["numpy", *team, "floor"]
    bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=4, clock=lambda: 0.001 * next(ticks),
                       sleep=lambda s: log.append(("pause", s)))
    # the log: every implementation's checked first call and sizing call, then the rounds (blas's first
    # half, the team's two halves, blas's second half) with a pause at each change of pool and at the end
    setup = 2 * len(names)
    assert [e[1] for e in log[:setup]] == [n for n in names for _ in range(2)]
    pieces = [[]]
    for entry in log[setup:]:
        if entry[0] == "pause":
            pieces.append([])
        else:
            pieces[-1].append(entry)
    assert pieces[-1] == [] and len(pieces) == 4
    pools = [{"numpy", "floor"}, set(team), {"numpy", "floor"}]
    for piece, members in zip(pieces, pools):
        warm = [name for kind, name in itertools.takewhile(lambda e: e[0] == "run", piece)]
        assert set(warm) == members  # every member of the pool, and only those, before any sample
        assert len(warm) >= bench.WARM_S / 0.001 * len(members) / 2  # calls until WARM_S has passed
        assert {name for kind, name in piece if kind == "sample"} == members


def test_warm_up_calls_each_function_until_the_time_is_up():
    calls = []
    ticks = itertools.count()
    n = bench.timing.warm_up([lambda: calls.append("a"), lambda: calls.append("b")], 0.01,
                             clock=lambda: 0.001 * next(ticks))
    assert n == len(calls) and calls[:2] == ["a", "b"] and calls.count("a") == calls.count("b")
    assert calls.count("a") == 10  # one clock read per pass of 0.001 after the first: 10 passes reach 0.01
    calls.clear()
    assert bench.timing.warm_up([lambda: calls.append("a")], 0.0, clock=lambda: 0.0) == 1  # at least once


@pytest.mark.parametrize("rounds, per_visit", [(1, None), (2, None), (5, None), (9, None), (5, 1), (6, 1),
                                               (9, 2), (8, 2), (7, 3)])
def test_pool_schedule_spreads_every_pool_over_the_case(rounds, per_visit):
    pools = [["numpy", "floor"], ["cython", "numba"], ["torch"]]
    schedule = bench.pool_schedule(pools, rounds, per_visit)
    k = per_visit or (rounds + 1) // 2
    for members in pools:
        taken = [r for m, rs in schedule if m is members for r in rs]
        assert taken == list(range(rounds))  # every round once, in order
        assert all(len(rs) == k for m, rs in schedule if m is members if rs[-1] != rounds - 1)  # full visits
    # the order of the segments: passes over the pools, forward then reversed, and so on
    passes = -(-rounds // k)
    order = [pools.index(m) for m, rs in schedule]
    assert order == [i for p in range(passes) for i in ([0, 1, 2] if p % 2 == 0 else [2, 1, 0])]
    # the mean position of a pool's samples in time is the same for every pool when the passes pair up
    positions = {}
    t = 0
    for members, rs in schedule:
        for _ in rs:
            positions.setdefault(pools.index(members), []).append(t)
            t += 1
    means = [sum(p) / len(p) for p in positions.values()]
    if rounds % (2 * k) == 0:
        assert max(means) == min(means)


@pytest.mark.parametrize("schedule_before", [False, True])
def test_a_slow_phase_of_the_machine_moves_no_pool_against_another(monkeypatch, schedule_before):
    """A simulated machine: every call costs one second of a virtual clock, 1.6 seconds during a phase that
    covers the first 40 % of the calls after the setup (as the project's VM did for seconds at a time,
    every thread pool alike). Visits of one round each (a round here takes far longer than VISIT_S) put
    two of every pool's five samples in the phase, and every median stays 1 s; with one visit per half of
    the rounds (VISIT_S = 1e9: the schedule before) the phase took three samples of the first pool only."""
    team = [b for b in ("cython", "numba") if b in fastrnn.available_backends()]
    if not team:
        pytest.skip("no compiled backend: one thread pool only")
    names = ["numpy", "floor", *team]
    setup = 2 * len(names)  # every implementation's checked first call and its sizing call
    if schedule_before:
        monkeypatch.setattr(bench, "VISIT_S", 1e9)
    now, calls, slow = [0.0], [0], [range(0)]

    def on_run(name):
        now[0] += 1.6 if calls[0] in slow[0] else 1.0
        calls[0] += 1

    _name_runs(monkeypatch, on_run=on_run)

    def measure():
        calls[0] = 0
        return bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=5, clock=lambda: now[0],
                                  sleep=lambda s: now.__setitem__(0, now[0] + s), min_sample=0.5)

    measure()  # counts the calls
    slow[0] = range(setup, setup + int(0.4 * (calls[0] - setup)))
    record = measure()
    medians = {name: e["median_s"] for name, e in record["results"].items()}
    if not schedule_before:
        assert record["rounds_per_visit"] == 1
        assert all(m == pytest.approx(1.0) for m in medians.values())
    else:
        assert record["rounds_per_visit"] == 3
        assert medians["numpy"] == pytest.approx(1.6) and medians["floor"] == pytest.approx(1.6)
        assert all(medians[n] == pytest.approx(1.0) for n in team)


def test_pool_schedule_refuses_empty_visits():
    with pytest.raises(ValueError, match="per_visit"):
        bench.pool_schedule([["numpy"]], 5, 0)


def test_rounds_per_visit_fits_visit_s_within_half_the_rounds():
    v = bench.VISIT_S
    assert bench.rounds_per_visit(v / 2, 5) == 2  # two rounds fit
    assert bench.rounds_per_visit(v / 100, 9) == 5  # all would fit: half of them (rounded up), two visits each
    assert bench.rounds_per_visit(v * 3, 5) == 1  # none fits: one
    assert bench.rounds_per_visit(0.0, 7) == 4
    assert bench.rounds_per_visit(v / 100, 1) == 1


def test_medians_and_ratios_come_from_the_samples(monkeypatch):
    ticks = itertools.count()

    def clock():  # every call to the clock advances 1 "second": timings are fully determined
        return float(next(ticks))

    record = bench.measure_case(_tiny(pass_="fwd"), ["numpy", "floor"], rounds=3, clock=clock)
    for e in record["results"].values():
        assert e["median_s"] == pytest.approx(1.0 / e["number"])
        assert e["first_call_s"] == 1.0
    for name, e in record["results"].items():  # the same FLOPs for every implementation, the floor included
        assert record["rates"][name]["gflops"] == pytest.approx(record["gemm_flops"] / e["median_s"] / 1e9)
        assert record["rates"][name]["share_of_peak"] is None  # no peak given
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
    ("step", "lstm", "fwd+bwd"), ("step", "lstm", "fwd"), ("sequence", "gru", "fwd+bwd"), ("step", "gru", "fwd+bwd"),
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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_case_is_verified_for_every_implementation(cell):
    case = next(c for c in workloads.cases(kinds=("model",), cells=(cell,)) if c.dim["N"] == 25)
    names = bench.implementations()
    with bench.thread_settings(1, "torch" in names):  # a busy 2-core machine makes 2 threads crawl
        record = bench.measure_case(case, names, rounds=1)
    for name, e in record["results"].items():
        assert e["error"] is None, (name, e)
        assert e["verified"] is (None if name == "floor" else True), (name, e)
    assert record["ratios"]["numpy"]["time_over_floor"] > 0  # the oracle / floor: the bound on any speed-up
    text = bench_report.table({"settings": {"threads": {"blas": 1}, "rounds": 1, "min_sample_s": 0.005},
                               "machine": _fake_machine(), "cases": [record]})
    assert f"{cell} float32 loss+grads" in text and "N=25" in text


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_sample_case_is_verified_for_every_implementation(cell):
    """CaptioningRNN.sample: every implementation's captions equal the oracle's (torch's equivalent model
    included); the floor does features @ W_proj and per word x @ Wx, h @ Wh, h @ W_vocab."""
    case = next(c for c in workloads.cases(kinds=("sample",), cells=(cell,)) if c.dim["N"] == 25)
    names = bench.implementations()
    with bench.thread_settings(1, "torch" in names):
        record = bench.measure_case(case, names, rounds=1)
    for name, e in record["results"].items():
        assert e["error"] is None, (name, e)
        assert e["verified"] is (None if name == "floor" else True), (name, e)
    text = bench_report.table({"settings": {"threads": {"blas": 1}, "rounds": 1, "min_sample_s": 0.005},
                               "machine": _fake_machine(), "cases": [record]})
    assert f"{cell} float32 captions" in text and "CaptioningRNN.sample" in text
    d = case.dim
    N, T, V, D, W, H, G = d["N"], d["T"], d["V"], d["input"], d["wordvec"], d["hidden"], gates(cell) * d["hidden"]
    calls = []
    real = np.matmul

    def counting(a, b, out=None):
        calls.append((a.shape, b.shape))
        return real(a, b, out=out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "matmul", counting)
        workloads.build(case, "floor").run()
    assert sorted(calls) == sorted([((N, D), (D, H))] + [((N, W), (W, G)), ((N, H), (H, G)), ((N, H), (H, V))] * T)
    assert workloads.gemm_flops(case) == sum(2 * a[0] * a[1] * b[1] for a, b in calls)


def test_sampled_captions_must_equal_the_oracles_and_a_difference_is_located():
    """Captions are word indices: one wrong word fails the check, whatever the float tolerance, and the
    message says how many words differ and where the first is (what a rare mismatch needs to be chased)."""
    expected = {"captions": np.arange(3, 3 + 4 * 16, dtype=np.int64).reshape(4, 16)}
    same = {"captions": expected["captions"].copy()}
    assert bench._verify(same, expected, "float32") == (True, 0.0, "captions", None)
    wrong = expected["captions"].copy()
    wrong[2, 5] += 1  # the neighbouring word (compared as floats, 9001 for 9000 would pass float32's tolerance)
    wrong[3, 0] = 7
    ok, worst, name, detail = bench._verify({"captions": wrong}, expected, "float32")
    assert not ok and worst == math.inf and name == "captions"
    assert detail == "2 of 64 entries of captions differ from the oracle's, the first at [2, 5]: 41 instead of 40"
    ok, _, _, detail = bench._verify({"captions": wrong[:, :8]}, expected, "float32")
    assert not ok and "shape (4, 8), the oracle's (4, 16)" in detail
    # float results keep the per-dtype tolerance and report no detail
    x = {"h": np.ones((3, 4), np.float32)}
    assert bench._verify({"h": x["h"] * (1 + 1e-7)}, x, "float32")[0]
    ok, worst, name, detail = bench._verify({"h": x["h"] * 1.1}, x, "float32")
    assert not ok and 1 < worst < math.inf and name == "h" and detail is None


def test_gemm_flops_of_the_gru():
    """The floor's GEMMs for G = 3H: forward X Wx and T h Wh; backward T dA Wh^T, dX, dWx and dWh."""
    case = workloads.cases(kinds=("sequence",), cells=("gru",), sizes=("tiny",), dtypes=("float32",))[1]
    assert case.pass_ == "fwd+bwd"
    N, T, D, H = (case.dim[k] for k in "NTDH")
    G = 3 * H
    forward = 2 * N * T * D * G + 2 * T * N * H * G
    backward = 2 * T * N * G * H + 2 * N * T * G * D + 2 * D * N * T * G + 2 * H * N * T * G
    assert workloads.gemm_flops(case) == forward + backward


def _fake_machine():
    return {"cpu": {"model": "x", "machine": "x86_64", "logical_cores": 2, "usable_cores": 2},
            "blas": [], "versions": {"fastrnn": fastrnn.__version__}}


@pytest.mark.parametrize("kind,cell,pass_", [
    ("sequence", "lstm", "fwd+bwd"), ("sequence", "rnn", "fwd+bwd"), ("sequence", "lstm", "fwd"),
    ("step", "rnn", "fwd"), ("step", "lstm", "fwd+bwd"),
])
def test_floor_does_the_designed_gemms(kind, cell, pass_):
    """gemm_flops counts exactly the floor's matrix products: 2 m k n for each (m, k) @ (k, n)."""
    case = _tiny(kind, cell, "float64", pass_)
    N, T, D, H = case.dim["N"], case.dim["T"], case.dim["D"], case.dim["H"]
    G = (4 if cell == "lstm" else 1) * H
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
    expected = [((N * T, D), (D, G))] + [((N, H), (H, G))] * T
    if pass_ == "fwd+bwd":
        expected += [((N, G), (G, H))] * T + [((N * T, G), (G, D)), ((D, N * T), (N * T, G)), ((H, N * T), (N * T, G))]
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


# ------------------------------------------------------------------ the machine's peak and shares of it


class FakeMachine:
    """A clock that only moves when a fake GEMM runs: n in ``dtype`` by ``library`` takes 2 n^3 / rate.

    ``rates[library][dtype][n]`` is the GFLOP/s the fake runs at; a missing entry raises.
    """

    def __init__(self, rates):
        self.rates = rates
        self.now = 0.0
        self.made = []  # (library, dtype, n), in the order the GEMMs were built

    def clock(self):
        return self.now

    def gemm(self, library, n, dtype):
        rate = self.rates[library][dtype][n]
        self.made.append((library, dtype, n))

        def run():
            self.now += 2 * n ** 3 / (rate * 1e9)

        return run


def _flat(rate):
    return {n: rate for n in peak.DEFAULT_SIZES}


def test_peak_is_the_better_library_per_dtype():
    m = FakeMachine({"numpy": {"float32": _flat(300.0), "float64": _flat(180.0)},
                     "torch": {"float32": _flat(420.0), "float64": _flat(150.0)}})
    pauses = []
    p = peak.measure(["float32", "float64"], ["numpy", "torch"], clock=m.clock, sleep=pauses.append, gemm=m.gemm)
    f32, f64 = p["dtypes"]["float32"], p["dtypes"]["float64"]
    assert (f32["library"], f64["library"]) == ("torch", "numpy")
    assert f32["gflops"] == pytest.approx(420.0) and f64["gflops"] == pytest.approx(180.0)
    assert f32["best_by_library"]["numpy"]["gflops"] == pytest.approx(300.0)
    assert f64["best_by_library"]["torch"]["gflops"] == pytest.approx(150.0)
    # every library measured in every dtype, numpy's all before torch's; a pause between them and after
    assert [lib for lib, _, _ in m.made] == sorted(lib for lib, _, _ in m.made)
    assert {(lib, d) for lib, d, _ in m.made} == {(lib, d) for lib in ("numpy", "torch") for d in ("float32", "float64")}
    assert pauses == [peak.timing.SETTLE_S] * 2
    for mm in f32["measurements"] + f64["measurements"]:
        assert len(mm["samples_s"]) == peak.ROUNDS and mm["flops"] == 2 * mm["size"] ** 3
        assert mm["gflops"] == pytest.approx(mm["flops"] / mm["median_s"] / 1e9)
    assert p["errors"] == {} and set(p["libraries"]) == {"numpy", "torch"}


def test_peak_climbs_sizes_while_the_rate_rises():
    n1, n2, n3, n4 = peak.DEFAULT_SIZES
    steep, flat = 1 + 2 * peak.GAIN, 1 + peak.GAIN / 2
    rates = {"numpy": {
        # rising steeply up to the third size, then hardly: the fourth is never built
        "float32": {n1: 100.0, n2: 100.0 * steep, n3: 100.0 * steep * flat, n4: 500.0},
        # the first two sizes are always measured, even when the second is slower
        "float64": {n1: 50.0, n2: 45.0, n3: 500.0, n4: 500.0},
    }}
    m = FakeMachine(rates)
    p = peak.measure(["float32", "float64"], ["numpy"], clock=m.clock, sleep=lambda s: None, gemm=m.gemm)
    assert [n for _, d, n in m.made if d == "float32"] == [n1, n2, n3]
    assert [n for _, d, n in m.made if d == "float64"] == [n1, n2]
    assert (p["dtypes"]["float32"]["size"], p["dtypes"]["float64"]["size"]) == (n3, n1)
    assert p["dtypes"]["float32"]["gflops"] == pytest.approx(100.0 * steep * flat)
    assert p["plateau_rule"] is not None


def test_peak_skips_sizes_too_slow_for_the_run():
    # the first size at 1 GFLOP/s takes about 2 s: the second would take 8x that, over MAX_CALL_S
    m = FakeMachine({"numpy": {"float64": _flat(1.0)}})
    p = peak.measure(["float64"], ["numpy"], clock=m.clock, sleep=lambda s: None, gemm=m.gemm)
    assert [n for _, _, n in m.made] == [peak.DEFAULT_SIZES[0]]
    assert p["dtypes"]["float64"]["size"] == peak.DEFAULT_SIZES[0]


def test_peak_at_explicit_sizes_measures_them_all():
    m = FakeMachine({"numpy": {"float32": {64: 10.0, 128: 9.0, 96: 30.0}}})
    p = peak.measure(["float32"], ["numpy"], sizes=[64, 128, 96], clock=m.clock, sleep=lambda s: None,
                     gemm=m.gemm)
    assert [n for _, _, n in m.made] == [64, 128, 96]
    assert p["dtypes"]["float32"]["size"] == 96 and p["sizes"] == [64, 128, 96] and p["plateau_rule"] is None
    with pytest.raises(ValueError, match="positive"):
        peak.measure(["float32"], ["numpy"], sizes=[0], gemm=m.gemm)


def test_peak_survives_a_failing_library():
    m = FakeMachine({"numpy": {"float32": _flat(100.0)}, "torch": {}})  # torch's GEMM raises KeyError
    p = peak.measure(["float32"], ["numpy", "torch"], clock=m.clock, sleep=lambda s: None, gemm=m.gemm)
    assert p["dtypes"]["float32"]["library"] == "numpy"
    assert "torch float32" in p["errors"] and "KeyError" in p["errors"]["torch float32"]
    assert any("torch float32 failed" in line for line in bench_report.peak_lines(
        {"peak": p, "settings": {"threads": {"blas": 1}}}))


def test_real_gemms_compute_the_product():
    for library in peak.libraries():
        fn = peak.make_gemm(library, 8, "float32")
        fn()  # runs; the rate itself is never asserted
    with pytest.raises(ValueError, match="library"):
        peak.make_gemm("nope", 8, "float32")


def test_rates_and_shares_of_peak_in_a_run():
    """A whole run on a clock that ticks 1 s per reading: every median is 1 s / number, so the
    rates and shares follow from the FLOP counts alone."""
    ticks = itertools.count()

    def clock():
        return float(next(ticks))

    cases = [_tiny("sequence", "lstm", "float32", "fwd+bwd"), _tiny("step", "rnn", "float64", "fwd")]
    n = 64
    report = bench.run(cases, ["numpy", "floor"], rounds=3, threads=1, clock=clock, sleep=lambda s: None,
                       peak_sizes=[n], peak_gemm=lambda library, size, dtype: (lambda: None),
                       fma_run=lambda double, iters, threads: {"seconds": 1.0, "flops": 4 * n ** 3, "threads": 1})
    assert report["schema"] == bench.SCHEMA == "fastrnn-bench/2"
    p = report["peak"]
    assert set(p["dtypes"]) == {"float32", "float64"}
    for d in p["dtypes"].values():
        # warm-up 1 s, so one call per sample, each sample 1 s
        assert d["size"] == n and d["gflops"] == pytest.approx(2 * n ** 3 / 1e9)
        assert all(m["samples_s"] == [1.0] * peak.ROUNDS for m in d["measurements"])
    for record in report["cases"]:
        assert record["peak_gflops"] == p["dtypes"][record["dtype"]]["gflops"]
        assert set(record["rates"]) == {"numpy", "floor"}
        for name, rate in record["rates"].items():
            e = record["results"][name]
            assert e["median_s"] == pytest.approx(1.0 / e["number"])
            assert rate["gflops"] == pytest.approx(record["gemm_flops"] * e["number"] / 1e9)
            assert rate["share_of_peak"] == pytest.approx(record["gemm_flops"] * e["number"] / (2 * n ** 3))
    text = bench_report.table(report)
    assert "GFLOP/s" in text and "% peak" in text
    assert f"peak float32, 1 thread: {bench_report.format_gflops(2 * n ** 3 / 1e9)} GFLOP/s" in text
    assert "n = 64, 5 rounds each" in text
    # the peak measured again after the cases, by the same library at the same size: same clock, same rate
    assert set(report["peak_end"]) == {"float32", "float64"}
    for dtype, e in report["peak_end"].items():
        assert e["gflops"] == pytest.approx(p["dtypes"][dtype]["gflops"]) and e["ratio"] == pytest.approx(1.0)
    assert "peak again at the end of the run (same library and n): float32" in text
    assert "% peak below is of the higher of the two" in text
    assert "moved by more than" not in text
    # the FMA limit, on the run's threads: 4 n^3 FLOPs a second in every sample, twice the peak
    f = report["fma_limit"]
    assert f["threads"] == 1 and set(f["dtypes"]) == {"float32", "float64"}
    assert all(d["gflops"] == pytest.approx(4 * n ** 3 / 1e9) for d in f["dtypes"].values())
    assert report["fma_limit_end"]["dtypes"] == f["dtypes"]  # measured again after the cases
    assert (f"FMA limit, 1 thread (multiply-adds from registers only, the most any product could reach; the higher "
            f"of the run's start and end): float32 {bench_report.format_gflops(4 * n ** 3 / 1e9)} GFLOP/s (the peak "
            f"is 0.50 of it)") in text


def test_a_peak_that_moved_during_the_run_gets_a_note():
    first = {"dtypes": {"float32": {"gflops": 400.0, "library": "torch", "size": 2000, "best_by_library": {}}},
             "libraries": {"torch": "torch.mm"}, "sizes": [1000, 2000], "rounds": 5, "elapsed_s": 2.0}
    report = {"peak": first, "settings": {"threads": {"blas": 2}},
              "peak_end": {"float32": {"gflops": 340.0, "ratio": 0.85}}}
    lines = bench_report.peak_lines(report)
    assert ("peak again at the end of the run (same library and n): float32 340 GFLOP/s (0.85 x the start); "
            "% peak below is of the higher of the two") in lines
    assert any(line.startswith("note: the machine's large-GEMM rate moved by more than 5 % during the run "
                               "(float32)") for line in lines)
    report["peak_end"]["float32"] = {"gflops": 390.0, "ratio": 0.975}
    assert not any(line.startswith("note:") for line in bench_report.peak_lines(report))


def test_shares_of_peak_use_the_higher_of_the_start_and_end_peaks():
    results = {"cython": {"median_s": 0.5}, "torch": {"median_s": 1.0}}

    def record(dtype, peak_gflops):
        return {"dtype": dtype, "gemm_flops": 100e9, "results": results, "peak_gflops": peak_gflops,
                "rates": bench.rates(results, 100e9, peak_gflops)}

    report = {"peak": {"dtypes": {"float32": {"gflops": 400.0}, "float64": {"gflops": 200.0}}},
              "peak_end": {"float32": {"gflops": 500.0, "ratio": 1.25}, "float64": {"gflops": 150.0, "ratio": 0.75}},
              "cases": [record("float32", 400.0), record("float64", 200.0)]}
    bench.use_higher_end_peak(report)
    f32, f64 = report["cases"]
    assert f32["peak_gflops"] == 500.0 and f32["rates"]["cython"]["share_of_peak"] == pytest.approx(200 / 500)
    assert f64["peak_gflops"] == 200.0 and f64["rates"]["torch"]["share_of_peak"] == pytest.approx(100 / 200)


def test_remeasure_uses_the_library_and_size_that_gave_the_peak():
    made = []

    def gemm(library, size, dtype):
        made.append((library, size, dtype))
        return lambda: None

    ticks = itertools.count()
    first = {"rounds": 3, "dtypes": {"float32": {"gflops": 1.0, "library": "torch", "size": 48},
                                     "float64": {"gflops": None, "library": None, "size": None}}}
    again = peak.remeasure(first, clock=lambda: float(next(ticks)), sleep=lambda s: None, gemm=gemm)
    assert made == [("torch", 48, "float32")] and set(again) == {"float32"}
    assert again["float32"]["gflops"] == pytest.approx(2 * 48 ** 3 / 1e9)


def test_fma_limit_sizes_its_samples_from_a_probe_and_takes_their_median():
    calls = []
    speeds = iter([1.0, 1.0, 2.0, 1.0, 3.0, 1.0])  # a probe, then 5 samples, per dtype (float32 here)

    def fma_run(double, iters, threads):
        calls.append((double, iters, threads))
        per_iter = 32 if double else 64
        return {"seconds": iters * 1e-6 / next(speeds, 1.0), "flops": 2 * iters * per_iter, "threads": threads}

    record = peak.fma_limit(["float32", "float64"], 2, sample_s=0.05, fma_run=fma_run)
    probe = peak.FMA_PROBE_ITERS
    iters = round(probe * 0.05 / (probe * 1e-6))  # samples of 0.05 s at the probe's speed
    assert calls == [(False, probe, 2)] + [(False, iters, 2)] * 5 + [(True, probe, 2)] + [(True, iters, 2)] * 5
    f32, f64 = record["dtypes"]["float32"], record["dtypes"]["float64"]
    assert f32["samples_gflops"] == pytest.approx([2 * 64 * s * 1e6 / 1e9 for s in (1.0, 2.0, 1.0, 3.0, 1.0)])
    assert f32["gflops"] == pytest.approx(2 * 64 * 1e6 / 1e9)  # the median, not the best
    assert f64["gflops"] == pytest.approx(2 * 32 * 1e6 / 1e9)
    assert record["threads"] == 2 and record["error"] is None


def test_fma_limit_of_the_compiled_loops_and_without_them(monkeypatch):
    real = peak.fma_limit(["float64"], 1, rounds=2, sample_s=0.002)
    assert real["isa"] == fastrnn._native.layout()["isa"] and real["threads"] == 1
    assert len(real["dtypes"]["float64"]["samples_gflops"]) == 2  # the rate itself is never asserted
    # as on an install without the compiled module
    monkeypatch.setitem(sys.modules, "fastrnn._native", None)
    monkeypatch.delattr(fastrnn, "_native")
    missing = peak.fma_limit(["float32"], 2)
    assert missing["dtypes"] == {} and "compiled module is not available" in missing["error"]
    report = {"peak": None, "fma_limit": missing}
    assert bench_report.fma_lines(report) == [f"FMA limit: not measured: {missing['error']}"]


def test_fma_line_takes_the_higher_of_the_start_and_end_limits():
    def limit(gflops):
        return {"isa": "avx2", "threads": 2, "error": None, "dtypes": {"float32": {"gflops": gflops}}}

    report = {"peak": {"dtypes": {"float32": {"gflops": 180.0}}}, "peak_end": {"float32": {"gflops": 190.0}},
              "fma_limit": limit(190.0), "fma_limit_end": limit(200.0)}
    assert bench_report.fma_lines(report) == [
        "FMA limit, 2 threads (avx2 multiply-adds from registers only, the most any product could reach; the higher "
        "of the run's start and end): float32 200 GFLOP/s (the peak is 0.95 of it)"]
    report["fma_limit_end"] = None  # a report of a run that measured it at the start only
    assert bench_report.fma_lines(report)[0].endswith("at the run's start): float32 190 GFLOP/s (the peak is 1.00 "
                                                      "of it)")


def test_format_gflops_and_share():
    assert bench_report.format_gflops(412.3) == "412"
    assert bench_report.format_gflops(41.23) == "41.2"
    assert bench_report.format_gflops(4.123) == "4.12"
    assert bench_report.format_gflops(None) == "-"
    assert bench_report.format_share(0.4234) == "42%"
    assert bench_report.format_share(0.04234) == "4.2%"
    assert bench_report.format_share(0.004234) == "0.42%"
    assert bench_report.format_share(None) == "-"


def _synthetic_report(n_cases):
    """A report in the run's layout with ``n_cases`` cases and made-up times (no measuring)."""
    all_cases = workloads.cases()
    names = ["numpy", "cython", "numba", "torch", "floor"]
    peaks = {"float32": 400.0, "float64": 200.0}
    records = []
    for i, case in enumerate(all_cases[:n_cases]):
        results = {name: {**bench._entry("x"), "median_s": 1e-3 * (5 - k + (i % 3))} for k, name in enumerate(names)}
        if i == 0:
            results["numba"]["median_s"] = 1e-9  # a share far above 100 %: drawn at the axis's edge
        flops = workloads.gemm_flops(case)
        records.append({"label": case.label, "kind": case.kind, "cell": case.cell, "size": case.size,
                        "dtype": case.dtype, "pass": case.pass_label, "dims": case.dim, "gemm_flops": flops,
                        "peak_gflops": peaks[case.dtype], "results": results, "ratios": bench.ratios(results),
                        "rates": bench.rates(results, flops, peaks[case.dtype])})
    return {"settings": {"implementations": names, "threads": {"blas": 2, "torch": 2}, "rounds": 5,
                         "min_sample_s": 0.005},
            "machine": _fake_machine(),
            "peak": {"dtypes": {d: {"gflops": g, "library": "torch", "size": 2048, "best_by_library": {}}
                                for d, g in peaks.items()},
                     "libraries": {}, "sizes": [1024, 2048], "plateau_rule": None, "rounds": 5, "elapsed_s": 2.0},
            "cases": records}


@pytest.mark.parametrize("n_cases", [1, 60])
def test_plot_writes_a_png(tmp_path, n_cases):
    pytest.importorskip("matplotlib")
    from fastrnn.bench import plot as bench_plot

    report = _synthetic_report(n_cases)
    path = tmp_path / "bench.png"
    assert bench_plot.plot(report, path) == path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")  # IHDR: the figure grows with the number of cases
    assert height > 110 * 0.24 * n_cases


def test_table_notes_shares_above_the_peak():
    report = _synthetic_report(3)
    text = bench_report.table(report, markdown=True)
    assert f"1 result(s) above 100 % of the peak ({report['cases'][0]['label']}: numba)" in text


def test_other_cpu_counts_the_machines_busy_ticks_less_our_own():
    hz = os.sysconf("SC_CLK_TCK")
    Times = namedtuple("Times", "user system")
    ticks = iter([(1000, 50), (1000 + hz, 50 + hz // 4)])  # one core's second busy, a quarter stolen
    own = iter([Times(1.0, 0.5), Times(1.25, 0.5)])  # of which 0.25 s were ours
    clock = iter([10.0, 11.0])
    other = machine.other_cpu(seconds=1.0, sleep=lambda s: None, ticks=lambda: next(ticks),
                              own=lambda: next(own), clock=lambda: next(clock))
    assert other["seconds"] == 1.0
    assert other["cores"] == pytest.approx(0.75)
    assert other["steal_cores"] == pytest.approx((hz // 4) / hz)

    def no_proc():
        raise OSError("no /proc/stat")

    assert machine.other_cpu(sleep=lambda s: None, ticks=no_proc) is None
    assert machine.other_cpu(seconds=0.5, sleep=lambda s: None) is None  # no time passed: nothing measured


def test_summary_says_whether_other_processes_are_busy():
    info = machine.describe(include_backends=False)
    info["load_average"] = [1.9, 1.0, 0.5]  # a run that just ended: the load average still says busy
    info["other_cpu"] = {"seconds": 0.5, "cores": 0.01, "steal_cores": 0.0}
    line = next(x for x in machine.summary_lines(info) if x.startswith("other processes"))
    assert "0.01 of" in line and "load average 1.90" in line and "expect noisy" not in line
    info["other_cpu"]["cores"] = machine.BUSY_CORES
    line = next(x for x in machine.summary_lines(info) if x.startswith("other processes"))
    assert "expect noisy timings" in line
    info["other_cpu"] = None  # not measured (no /proc/stat): the load average decides
    line = next(x for x in machine.summary_lines(info) if x.startswith("load average"))
    assert "expect noisy timings" in line



def test_interference_is_what_others_and_the_hypervisor_took_between_two_readings():
    hz = os.sysconf("SC_CLK_TCK")
    Times = namedtuple("Times", "user system")
    before = machine.cpu_snapshot(ticks=lambda: (1000, 50), own=lambda: Times(1.0, 0.5), clock=lambda: 10.0)
    # two seconds later: 3 cores' seconds busy (1.5 of them ours), half a core's second stolen
    after = machine.cpu_snapshot(ticks=lambda: (1000 + 3 * hz, 50 + hz // 2), own=lambda: Times(2.0, 1.0),
                                 clock=lambda: 12.0)
    got = machine.interference(before, after)
    assert got["seconds"] == 2.0
    assert got["cores"] == pytest.approx(0.75)
    assert got["steal_cores"] == pytest.approx((hz // 2) / hz / 2)
    assert machine.interference(before, after, min_seconds=3.0) is None  # too short a window to tell
    assert machine.interference(None, after) is None

    def no_proc():
        raise OSError("no /proc/stat")

    assert machine.cpu_snapshot(ticks=no_proc) is None


def test_each_case_records_what_others_took_while_it_ran(monkeypatch):
    Times = namedtuple("Times", "user system")
    hz = os.sysconf("SC_CLK_TCK")
    readings = iter([(0, 0, 0.0, 100.0), (4 * hz, hz, 1.0, 102.0)])  # 2 s: 3 cores' s of others, 1 stolen

    real = machine.cpu_snapshot

    def snapshot():
        busy, steal, own, at = next(readings)
        return real(ticks=lambda: (busy, steal), own=lambda: Times(own, 0.0), clock=lambda: at)

    monkeypatch.setattr(machine, "cpu_snapshot", snapshot)
    record = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), ["numpy", "floor"], rounds=1)
    assert record["interference"]["cores"] == pytest.approx(1.5)
    assert record["interference"]["steal_cores"] == pytest.approx(0.5)


def test_table_says_what_others_took_and_names_the_cases_they_slowed():
    report = _synthetic_report(3)
    quiet = {"seconds": 2.0, "cores": 0.01, "steal_cores": 0.0}
    for r in report["cases"]:
        r["interference"] = dict(quiet)
    text = bench_report.table(report, markdown=True)
    assert "other processes used at most 0.01 cores" in text and "may be slow" not in text
    noisy = report["cases"][1]
    noisy["interference"] = {"seconds": 2.0, "cores": 0.15, "steal_cores": machine.BUSY_CORES}
    text = bench_report.table(report, markdown=True)
    assert f"hypervisor took at most {machine.BUSY_CORES:.2f} ({noisy['label']})" in text
    assert f"1 case(s) lost {machine.BUSY_CORES} cores or more" in text
    assert f"{noisy['label']} (0.15 / {machine.BUSY_CORES:.2f})" in text
    for r in report["cases"]:
        r["interference"] = None  # not measured (no /proc/stat, or cases too short): no line
    assert "other processes used" not in bench_report.table(report, markdown=True)

def test_a_round_trip_is_read_before_every_visit_of_a_pool(monkeypatch):
    """With ``round_trip``, each visit of a pool starts with a reading (after the pause that ends the
    previous visit), kept in the record in time order; a reading of None (no second thread) is left out."""
    log = []
    _name_runs(monkeypatch)
    _log_samples(monkeypatch, log)
    readings = itertools.count(50)

    def round_trip():
        log.append("round trip")
        value = next(readings)
        return None if value == 51 else float(value)

    names = bench.implementations()
    with bench.thread_settings(1, "torch" in names):
        record = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), names, rounds=3, round_trip=round_trip,
                                    sleep=lambda s: None)
    visits = log.count("round trip")
    assert visits >= 2 * (1 + ("torch" in names))  # every pool visited at least twice (see pool_schedule)
    assert log[0] == "round trip"
    after = [log[i + 1] for i, entry in enumerate(log) if entry == "round trip"]
    assert "round trip" not in after  # a reading, then that visit's samples
    assert record["round_trip_ns"] == [50.0] + [float(v) for v in range(52, 50 + visits)]
    # without it, nothing is read
    plain = bench.measure_case(_tiny(cell="rnn", pass_="fwd"), ["numpy", "floor"], rounds=1, sleep=lambda s: None)
    assert plain["round_trip_ns"] == []


def test_a_run_reads_round_trips_only_with_two_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(machine, "core_round_trip", lambda: calls.append(1) or 60.0)
    kwargs = dict(rounds=1, sleep=lambda s: None, peak_sizes=[8],
                  peak_gemm=lambda library, size, dtype: (lambda: None),
                  fma_run=lambda double, iters, threads: {"seconds": 1.0, "flops": 1e9, "threads": threads})
    one = bench.run([_tiny(cell="rnn", pass_="fwd")], ["numpy", "floor"], threads=1, **kwargs)
    assert calls == [] and one["cases"][0]["round_trip_ns"] == []
    two = bench.run([_tiny(cell="rnn", pass_="fwd")], ["numpy", "floor"], threads=2, **kwargs)
    if two["settings"]["threads"]["blas"] >= 2:  # a BLAS that can use two
        assert calls and two["cases"][0]["round_trip_ns"] == [60.0] * len(calls)


def test_core_round_trip_is_measured_between_two_team_threads():
    from fastrnn import _native

    ns = machine.core_round_trip(iters=200)
    assert ns is None or (math.isfinite(ns) and ns > 0)  # None only when the team is busy elsewhere
    with pytest.raises(ValueError, match="iters"):
        _native.round_trip(0)


def test_table_names_the_cases_that_met_cores_far_apart():
    report = _synthetic_report(3)
    text = bench_report.table(report, markdown=True)
    assert "round trip" not in text  # nothing read (one thread, or an older report)
    for r in report["cases"]:
        r["round_trip_ns"] = [55.0, 61.0, 60.0]
    text = bench_report.table(report, markdown=True)
    assert "core-to-core round trip" in text and "median 60 ns, 55-61 ns, the nearest tenth 55 ns" in text
    assert "farther apart" not in text
    far = machine.FAR_ROUND_TRIP * 60.0 + 1
    report["cases"][0]["round_trip_ns"] = [58.0, 4000.0, 59.0]  # one odd visit: not named
    report["cases"][2]["round_trip_ns"] = [far, 58.0, far + 10]
    text = bench_report.table(report, markdown=True)
    assert f"1 of 3 case(s) met {machine.FAR_ROUND_TRIP:g}x that or more" in text
    assert f"{report['cases'][2]['label']} ({far:.0f} ns at 2 of 3 visits)" in text
    assert report["cases"][0]["label"] + " (" not in text.split("core-to-core")[1]
    # a run that spent most of its time with the CPUs far apart still names those cases
    report["cases"][0]["round_trip_ns"] = [60.0, 62.0, 61.0]
    report["cases"][1]["round_trip_ns"] = [340.0, 350.0, 61.0]
    report["cases"][2]["round_trip_ns"] = [345.0, 330.0, 338.0]
    text = bench_report.table(report, markdown=True)
    assert "median 330 ns" in text and "the nearest tenth 60 ns" in text
    assert "2 of 3 case(s) met" in text and report["cases"][0]["label"] + " (" not in text.split("core-to-core")[1]


def test_cpu_ticks_count_only_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 900 0 0 0 9 0 0\n"
                    "cpu0 10 1 20 500 5 2 3 4 0 0\n"
                    "cpu1 40 0 60 400 0 0 0 5 0 0\n"
                    "cpu2 1000 0 0 0 0 0 0 0 0 0\n"
                    "intr 12345\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert machine._cpu_ticks(str(stat)) == (10 + 1 + 20 + 2 + 3 + 40 + 60, 4 + 5)  # not cpu2, not the total
