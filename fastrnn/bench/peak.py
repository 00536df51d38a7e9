"""The machine's peak: the rate of large square GEMMs, measured in the run that reports shares of it.

``fastrnn bench`` reports for every implementation of a case its achieved GFLOP/s and the share
of the machine's peak that rate is. The peak is measured at the start of the same run, once per
dtype, with the run's threads: a peak from another run, another thread count or a datasheet
would make the shares tell more about that difference than about the implementation.

What is measured: ``C = A @ B`` on (n, n) operands into a preallocated C, by

* ``numpy.matmul``: NumPy's BLAS, the one the oracle and the BLAS floor run on;
* ``torch.mm``: torch's BLAS (MKL in the x86-64 wheels), when torch is installed.

The peak of a dtype is the best rate over the libraries and sizes, and the report names the
library and size that gave it. A BLAS's rate rises with n up to a plateau. Measured on the
project's 2-core machine (Xeon, AVX-512, 2 threads): n = 1000 runs 4-11 % below the rate at 3000,
n = 2000 1-4 % below it, and powers of two run up to 6 % slower than their neighbours (2048 than
2000), so the sizes avoid them. Machines with many cores need larger n. So the sizes are
``DEFAULT_SIZES`` in order: the first two always, a larger one only while the last one still
gained ``GAIN`` over the best before it, and none whose one call would take over ``MAX_CALL_S``.
``GAIN`` sits just above the 5-9 % that 1000 -> 2000 gains here: this machine stops at 2000 (3000
would cost 3.4x as much again for 1-4 %), a machine still far from its plateau goes on. Sizes given
explicitly (``--peak-sizes``) are measured as given.

Each size takes one warm-up call (which also touches the fresh buffers), then ``ROUNDS`` samples,
each a batch of calls lasting at least ``min_sample`` (``fastrnn.bench.timing``); its rate is
2 n^3 / the median sample. The libraries run one after the other, with the harness's settle pause
between them and after the last (their thread pools keep spinning after a call; see
``fastrnn.bench.harness``).

Cost (the report stores it as ``elapsed_s``), both dtypes and both libraries, on the project's
2-core machine: 2.1 s with 2 threads (of a 33 s default run), 3.6 s with 1 thread.

The FMA limit (``fma_limit``) is the ceiling above that peak: the rate of multiply-adds from
registers alone, on the run's threads, with the vectors and ISA the packed kernels chose
(``fastrnn/_native/fma.h``). A BLAS's large GEMM need not reach it: on the project's AMD EPYC (Zen 4)
OpenBLAS's ran at 0.92 of it (107-109 of 117 GFLOP/s a core in float32). The report shows both, so a
share of peak can be read against what the cores can do. The harness measures it at the start of a run
and again at its end, about 0.5 s each time (both dtypes, ``FMA_ROUNDS`` samples of ``FMA_SAMPLE_S``).
"""

import statistics
import time

import numpy as np

from . import timing, workloads

__all__ = ["DEFAULT_SIZES", "libraries", "describe_libraries", "make_gemm", "measure", "select", "fma_limit"]

DEFAULT_SIZES = (1000, 2000, 3000, 4000)
MIN_SIZES = 2  # always measured (of DEFAULT_SIZES), whatever the first one gave
GAIN = 0.10  # a larger size is measured only while the last one gained this much over the best before it
MAX_CALL_S = 1.0  # ... and only while its one call is predicted to take less than this
ROUNDS = 5
FMA_ROUNDS = 5
FMA_SAMPLE_S = 0.05  # seconds of one sample of the FMA loops
FMA_PROBE_ITERS = 100_000  # rounds of the first, untimed call (which also wakes the team) that sizes the samples
FMA_WHAT = ("median rate of independent vector multiply-adds from registers (2 FLOPs each), on every thread "
            "of the run at once, with the packed kernels' ISA")
WHAT = ("best median rate of square GEMMs (C = A @ B into a preallocated C, 2 n^3 FLOPs) over the libraries "
        "and sizes measured, in this run, with its threads")


def libraries():
    """The libraries whose GEMMs are measured: numpy, and torch when it is installed."""
    return ["numpy"] + (["torch"] if workloads.torch_available() else [])


def describe_libraries(names):
    """name -> what it calls: the function and the BLAS behind it."""
    out = {}
    for name in names:
        if name == "numpy":
            from . import machine

            libs = [f"{lib['internal_api']} {lib['version'] or ''}".strip()
                    for lib in machine.blas(load_scipy=False)
                    if lib["user_api"] == "blas" and lib["loaded_by"] == "numpy"]
            out[name] = f"numpy.matmul ({', '.join(libs) or 'BLAS not identified'})"
        elif name == "torch":
            import torch

            blas = next((item.split("=", 1)[1] for item in torch.__config__.show().replace(",", " ").split()
                         if item.startswith("BLAS_INFO=")), None)
            out[name] = f"torch.mm (torch {torch.__version__}" + (f", BLAS {blas})" if blas else ")")
        else:
            out[name] = name
    return out


def make_gemm(library, n, dtype, seed=0):
    """A call computing one (n, n) @ (n, n) product in ``dtype`` with ``library``, into a preallocated buffer."""
    rng = np.random.default_rng(seed)
    a = rng.random((n, n), dtype=dtype)
    b = rng.random((n, n), dtype=dtype)
    c = np.empty((n, n), dtype=dtype)
    if library == "numpy":
        matmul = np.matmul

        def run():
            matmul(a, b, out=c)

        return run
    if library == "torch":
        import torch

        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        mm = torch.mm

        def run():
            mm(ta, tb, out=tc)

        return run
    raise ValueError(f"unknown library {library!r}; expected 'numpy' or 'torch'")


def _measure_size(fn, flops, rounds, min_sample, clock):
    start = clock()
    fn()
    warm = clock() - start
    number = timing.calls_per_sample(warm, min_sample)
    samples = [timing.sample(fn, number, clock) for _ in range(rounds)]
    median = statistics.median(samples)
    return {"warmup_s": warm, "number": number, "samples_s": samples, "median_s": median,
            "gflops": flops / median / 1e9 if median > 0 else None}


def _measure_library(library, dtype, sizes, climb, rounds, min_sample, clock, gemm):
    """The measurements of one library in one dtype, size after size (see the module docstring)."""
    out = []
    for n in sizes:
        if climb and out:
            last = out[-1]
            if last["median_s"] * (n / last["size"]) ** 3 > MAX_CALL_S:
                break
            before = max((m["gflops"] or 0.0) for m in out[:-1]) if len(out) > 1 else 0.0
            if len(out) >= MIN_SIZES and (last["gflops"] or 0.0) < (1 + GAIN) * before:
                break  # the plateau: the last size gained less than GAIN
        fn = gemm(library, n, dtype)
        flops = 2 * n ** 3
        out.append({"library": library, "size": n, "flops": flops,
                    **_measure_size(fn, flops, rounds, min_sample, clock)})
        del fn  # frees the operands before the next, larger size
    return out


def select(measurements):
    """The peak of one dtype from its measurements: the best rate, its library and size, each library's best."""
    by_library = {}
    for m in measurements:
        best = by_library.get(m["library"])
        if m["gflops"] is not None and (best is None or m["gflops"] > best["gflops"]):
            by_library[m["library"]] = {"gflops": m["gflops"], "size": m["size"]}
    if not by_library:
        return {"gflops": None, "library": None, "size": None, "best_by_library": {}, "measurements": measurements}
    library = max(by_library, key=lambda name: by_library[name]["gflops"])
    return {"gflops": by_library[library]["gflops"], "library": library, "size": by_library[library]["size"],
            "best_by_library": by_library, "measurements": measurements}


def remeasure(first, clock=time.perf_counter, sleep=time.sleep, gemm=make_gemm):
    """The peak of ``first`` (a ``measure`` record) measured again, each dtype only by the library and at the
    size that gave it: a check, at the end of a run, that the machine ran as fast as when the run started.
    Returns {dtype: {"gflops", "ratio" (to the first)}} for the dtypes that had a peak."""
    out = {}
    for dtype, d in first["dtypes"].items():
        if d.get("gflops") is None:
            continue
        again = measure([dtype], [d["library"]], sizes=[d["size"]], rounds=first["rounds"], clock=clock,
                        sleep=sleep, gemm=gemm)["dtypes"][dtype]["gflops"]
        out[dtype] = {"gflops": again, "ratio": None if again is None else again / d["gflops"]}
    return out


def measure(dtypes, libs=None, sizes=None, rounds=ROUNDS, min_sample=timing.MIN_SAMPLE_S, clock=time.perf_counter,
            sleep=time.sleep, settle=timing.SETTLE_S, gemm=make_gemm):
    """Measures the peak of every dtype in ``dtypes``; returns its JSON-able record.

    ``libs`` defaults to ``libraries()``; ``sizes`` to ``DEFAULT_SIZES`` with the plateau rule
    (explicit sizes are all measured). ``gemm(library, n, dtype)`` makes the timed call;
    ``clock`` and ``sleep`` are injectable so the selection can be tested without timing.
    Thread counts are the caller's (the harness sets them before).
    """
    started = time.perf_counter()
    libs = libraries() if libs is None else list(libs)
    climb = sizes is None
    sizes = DEFAULT_SIZES if sizes is None else tuple(int(n) for n in sizes)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"peak sizes must be positive integers, got {sizes}")
    measurements = {dtype: [] for dtype in dtypes}
    errors = {}
    for i, library in enumerate(libs):
        if i:
            sleep(settle)  # let the previous library's thread pool stop spinning
        for dtype in dtypes:
            try:
                measurements[dtype] += _measure_library(library, dtype, sizes, climb, rounds, min_sample, clock,
                                                        gemm)
            except Exception as exc:  # the other library still gives a peak; the report says what failed
                errors[f"{library} {dtype}"] = f"{type(exc).__name__}: {exc}"
    if len(libs) > 1:
        sleep(settle)  # ... and before whatever runs next on NumPy's BLAS
    return {
        "what": WHAT,
        "libraries": describe_libraries(libs),
        "sizes": list(sizes),
        "plateau_rule": (f"the first {MIN_SIZES} sizes, then the next only while the last gained >= {100 * GAIN:.0f} % "
                         f"over the best before it and one call takes < {MAX_CALL_S:g} s") if climb else None,
        "rounds": rounds,
        "dtypes": {dtype: select(ms) for dtype, ms in measurements.items()},
        "errors": errors,
        "elapsed_s": time.perf_counter() - started,
    }


def fma_limit(dtypes, threads, rounds=FMA_ROUNDS, sample_s=FMA_SAMPLE_S, fma_run=None):
    """The FMA limit of every dtype in ``dtypes`` on ``threads`` threads (see the module docstring); returns its
    JSON-able record: {"what", "isa", "threads", "dtypes": {dtype: {"gflops", "samples_gflops"}}, "elapsed_s",
    "error"}. ``fma_run(double, iters, threads)`` -> {"seconds", "flops", "threads"} runs the loops (default:
    ``fastrnn._native``'s); without the compiled module the record says so in "error" and has no rates."""
    started = time.perf_counter()
    record = {"what": FMA_WHAT, "isa": None, "threads": None, "dtypes": {}, "elapsed_s": None, "error": None}
    if fma_run is None:
        try:
            from .. import _native
        except ImportError as exc:  # no compiled kernels: no compiled loop to measure with
            record["error"] = f"fastrnn's compiled module is not available ({exc})"
            return record
        fma_run, record["isa"] = _native.fma_run, _native.layout()["isa"]
    for dtype in dtypes:
        double = np.dtype(dtype) == np.float64
        probe = fma_run(double, FMA_PROBE_ITERS, threads)
        iters = max(1, round(FMA_PROBE_ITERS * sample_s / max(probe["seconds"], 1e-9)))
        samples = [fma_run(double, iters, threads) for _ in range(rounds)]
        rates = [s["flops"] / s["seconds"] / 1e9 for s in samples if s["seconds"] > 0]
        record["threads"] = samples[-1]["threads"]
        record["dtypes"][dtype] = {"gflops": statistics.median(rates) if rates else None, "samples_gflops": rates}
    record["elapsed_s"] = time.perf_counter() - started
    return record
