"""pytest-benchmark suite: every implementation of every case in fastrnn.workloads.

    pytest benchmarks/ --benchmark-only                       # the full suite (canonical sizes, minutes)
    pytest benchmarks/ --smoke --benchmark-disable -q         # CI smoke: tiny size, batch 25, each run once

Implementations: every available fastrnn backend ("numpy" is the oracle), "torch" when it is
installed, and "floor" (the BLAS floor: only the GEMMs the kernel design needs). Before it is
timed, every implementation's values and gradients are checked against the oracle's, so a
benchmark of a wrong answer fails instead of reporting a time. Benchmarks are grouped by case,
so pytest-benchmark compares the implementations of one case side by side.

``--smoke`` (or FASTRNN_BENCH_SMOKE=1) keeps only the tiny size and the model at batch 25, on one
thread; ``--bench-threads N`` limits the BLAS (threadpoolctl) and torch to N threads.
``fastrnn bench`` measures the same workloads with interleaved rounds and prints ratios.
"""

import os

import pytest

import fastrnn
from fastrnn.bench import harness as bench
from fastrnn.bench import workloads

SMOKE_ENV = "FASTRNN_BENCH_SMOKE"


def pytest_addoption(parser):
    parser.addoption("--smoke", action="store_true", default=False,
                     help=f"fastrnn: only the tiny size and the model at batch 25, on 1 thread (also {SMOKE_ENV}=1)")
    parser.addoption("--bench-threads", type=int, default=None,
                     help="fastrnn: limit BLAS threads and set torch's to the same (default: BLAS as it is; "
                          "1 with --smoke)")


def _smoke(config):
    return config.getoption("--smoke") or os.environ.get(SMOKE_ENV, "") not in ("", "0")


def _case_id(case, name, what=None):
    return f"{case.layer.replace(' ', '_')}-{case.size}-{case.dtype}-{what or case.pass_label}-{name}"


def pytest_generate_tests(metafunc):
    """Parametrizes ``case`` x ``impl`` for the kinds a module names in its KINDS."""
    if "case" not in metafunc.fixturenames:
        return
    smoke = _smoke(metafunc.config)
    kinds = metafunc.module.KINDS
    sizes = ["tiny"] if smoke else None
    cases = workloads.cases(kinds=kinds, sizes=sizes)
    if smoke:
        cases = [c for c in cases if c.kind != "model" or c.dim["N"] == 25]
    what = getattr(metafunc.function, "what", None)  # e.g. "sample": a label instead of the pass
    if getattr(metafunc.function, "backends_only", False):
        names = fastrnn.available_backends()[::-1]  # the oracle first, as in bench.implementations()
    else:
        names = bench.implementations()
    params = [(c, n) for c in cases for n in names]
    metafunc.parametrize("case,impl", params, ids=[_case_id(c, n, what) for c, n in params])


@pytest.fixture(scope="session", autouse=True)
def matched_threads(pytestconfig):
    """torch gets as many threads as the BLAS has, as in ``fastrnn bench``.

    The smoke run uses 1 thread: it only has to show the suite works, and on a busy 2-core
    machine a 2-thread BLAS or OpenMP team can be ten times slower.
    """
    threads = pytestconfig.getoption("--bench-threads") or (1 if _smoke(pytestconfig) else None)
    with bench.thread_settings(threads, workloads.torch_available()) as counts:
        yield counts


_oracle_cache = {}


def oracle_results(case, arrays):
    """The oracle's results for ``case`` (kept for the latest case only: the big ones are large)."""
    if case not in _oracle_cache:
        _oracle_cache.clear()
        w = workloads.build(case, workloads.ORACLE, arrays)
        with w.context():
            _oracle_cache[case] = w.results(w.run())
    return _oracle_cache[case]


_inputs_cache = {}


def case_inputs(case):
    if case not in _inputs_cache:
        _inputs_cache.clear()
        _inputs_cache[case] = workloads.inputs(case)
    return _inputs_cache[case]


@pytest.fixture
def verified_workload(case, impl):
    """The workload of ``impl`` for ``case``, checked against the oracle and warmed up."""
    arrays = case_inputs(case)
    w = workloads.build(case, impl, arrays)
    with w.context():
        raw = w.run()  # first call: for numba this compiles or loads the cached kernels
    if w.results is not None and impl != workloads.ORACLE:
        ok, worst, name, detail = bench._verify(w.results(raw), oracle_results(case, arrays), case.dtype)
        detail = detail or f"{name} at {worst:.3g}x the tolerance"
        assert ok, f"{impl} differs from the oracle on {case.label}: {detail}"
    return w


@pytest.fixture
def describe(benchmark, case, impl):
    """Groups the benchmark by case and records what it measured."""
    benchmark.group = case.label
    benchmark.extra_info.update(
        impl=impl, kind=case.kind, cell=case.cell, size=case.size, dtype=case.dtype, passes=case.pass_label,
        dims=case.dim, gemm_flops=workloads.gemm_flops(case), backends=fastrnn.available_backends(),
    )
    return benchmark
