"""``fastrnn bench``: times the oracle, the compiled backends, PyTorch and the BLAS floor, case by case.

How a case is measured (all implementations in one process):

1. every implementation is built on the same inputs (``fastrnn.workloads``);
2. the oracle runs once, then every other implementation runs once and its values and
   gradients are compared with the oracle's at the tolerance of the dtype
   (``fastrnn._tolerances``), sampled captions word for word; one that disagrees, or raises,
   is reported and not timed.
   This first call is timed on its own and reported as ``first_call_s``: for Numba it
   includes compiling (or loading the cached) kernels;
3. every implementation runs once more as a warm-up, which also sizes its batch: a sample
   times ``number`` back-to-back calls, enough to last ``min_sample`` seconds;
4. rounds: the implementations are grouped by the thread pool they compute on -- NumPy's
   BLAS (the oracle and the floor), fastrnn's team (the compiled backends, see
   fastrnn._native), torch's -- and each group takes its rounds on its own, in visits: as many
   rounds as fit in ``VISIT_S`` (at least one, at most half of them), the groups in turn, forward
   then backward (``pool_schedule``), with a pause of ``SETTLE_S`` at every change of group. Every
   group's samples are then spread over the whole case: on the project's VM the whole guest at
   times ran ~1.6x slow for seconds (oracle, floor and team alike, nothing visible from inside),
   and with one visit per half of the rounds such a phase fell on the first half of one or two
   groups only, moving their medians and no one else's. Before its rounds (after each pause) the
   group's members run untimed, in turn, for ``WARM_S``: on the project's VM the first call after
   0.15 s idle ran 1.4-1.8x slow and the next two 1.05-1.1x, so without it the first sample of
   every group's share was slow. In each round every implementation of the group takes one
   sample, in turn (round-robin, starting one further along each round), so slow drifts of the
   machine hit all alike; the garbage collector is off during a sample. The reason for the groups is that a
   thread pool keeps its idle threads spinning after a call: measured here,
   OpenBLAS's for about 0.1 s, torch's for 10-50 ms, the team's for 1 ms. With 2 threads
   on 2 cores, the spinning threads of one pool take a core from whatever runs next on
   another pool: interleaved, torch ran up to 2x slow after a NumPy GEMM, the BLAS floor
   1.3x slow after torch, and a 2-thread team job right after a 2-thread OpenBLAS GEMM 2.2x
   slow. A user's program that mixes the pools pays that; a program that stays in one
   (fastrnn's layers and models, or torch alone) does not. With one thread (``--threads 1``)
   nothing spins: all implementations then form one group (``one_pool``), each taking one
   sample in turn in every round, with no pauses. Measured so (one thread, Zen 4, 2026-12-04:
   every implementation in turn, against group by group with the pause and the warm-up), the
   medians were 0.89-1.03x the grouped ones, none slower beyond noise: the finest interleaving,
   and no pauses;
5. the time of an implementation is the median of its samples, and every ratio is taken
   between medians of the same run;
6. rates: every implementation of a case (the floor included) is credited with the same work,
   the FLOPs of the GEMMs the kernel design needs (``workloads.gemm_flops``), so its achieved
   GFLOP/s is that count / its median, and its share of peak is that rate / the machine's peak
   in the case's dtype. The peak is measured once per dtype at the start of the run, with the
   run's threads, torch after NumPy with the same settle pause (``fastrnn.bench.peak``); beside
   it the FMA limit, the rate of multiply-adds from registers alone on the same threads, which
   no product can pass and a BLAS's large GEMM need not reach (``peak.fma_limit``); both again at
   the end of the run, and the report takes the higher of each.

``--rounds`` fixes the number of rounds; by default it is 9 for cases whose round takes
under 0.05 s, 7 under 0.25 s, else 5. With the default cases (``fastrnn.sizes.DEFAULT_BENCH_SIZES``
and the model and sampling at both batches) a run took 98 s on the project's 2 idle cores
(Intel Xeon, 2026-12-02; the first run of a fresh install, which compiles Numba's kernels, took
138 s), the peak measurement 5 s of it; on the AMD EPYC (Zen 4), with the visits of 4. (142 more
pauses than with one visit per half of the rounds, about 28 s), 156 s, the peak 13 s of it, and
with ``--threads 1`` (one group, no pauses) 85 s (2026-12-04). A busy machine makes it longer and
noisier, which the line on other processes above the table tells (``machine.other_cpu``: their
CPU use while the run sleeps half a second at its start), and so does each case's
``interference``: what other processes used and the hypervisor stole while that case ran, which
the report names where it took a fifth of a core or more. With two threads or more, each case also keeps
``round_trip_ns``: before every visit of a pool, the round trip of a cache line between the team's two
threads (``machine.core_round_trip``). A virtual machine's CPUs may sit on cores of one die or of two, and
the host may move them while the run goes on: on the project's Zen 4 guest the round trip was 50-70 ns, or
for 10-60 s at a time 320-360 ns, when the 2-thread LSTM forward + backward ran 15 % slower (torch's about
4 %). The report names the cases that met such readings at most of their visits (``machine.FAR_ROUND_TRIP``).
"""

import contextlib
import math
import statistics
import time

import numpy as np

from .. import _backend
from . import machine, peak, timing, workloads
from .._tolerances import excess
from .sizes import DEFAULT_BENCH_SIZES

__all__ = ["run", "auto_rounds", "rounds_per_visit", "pool_schedule", "rates", "ratios", "DEFAULT_KINDS",
           "DEFAULT_SIZES", "SCHEMA"]

SCHEMA = "fastrnn-bench/2"  # 2: the machine's peak ("peak"), and per case "peak_gflops" and "rates"
# (since 2026-12-04 also "fma_limit" and "fma_limit_end", the FMA limit at the start and the end of the run,
# and since 2026-12-05 per case "round_trip_ns", the core-to-core round trips before its visits; a reader of
# older reports finds them missing)
DEFAULT_KINDS = workloads.KINDS
DEFAULT_SIZES = DEFAULT_BENCH_SIZES
MIN_SAMPLE_S = timing.MIN_SAMPLE_S
INTERFERENCE_MIN_S = 0.5  # a case shorter than this is too short for /proc/stat's ticks to tell
SETTLE_S = timing.SETTLE_S  # seconds between implementations on different thread pools (see 4. above)
WARM_S = timing.WARM_S  # seconds of untimed calls of a pool's members before its samples (see 4. above)
VISIT_S = 0.25  # seconds of rounds per visit of the pools, about (see 4. above and rounds_per_visit)


def auto_rounds(round_s):
    """Rounds for a case whose one round (one sample of every implementation) takes ``round_s``."""
    if round_s < 0.05:
        return 9
    if round_s < 0.25:
        return 7
    return 5


def rounds_per_visit(round_s, rounds):
    """How many rounds a pool takes per visit, for a case whose one round takes ``round_s``: as many as fit
    in ``VISIT_S`` (a visit costs a pause of ``SETTLE_S`` and ``WARM_S`` of untimed calls, so the rounds of
    short cases go in few visits), at least one and at most half of the ``rounds`` (rounded up), so that
    every pool has at least two visits, one in each half of the case."""
    fit = math.floor(VISIT_S / round_s) if round_s > 0 else rounds
    return max(1, min(fit, (rounds + 1) // 2))


@contextlib.contextmanager
def thread_settings(threads, with_torch):
    """Limits BLAS to ``threads`` (threadpoolctl) and sets torch's to the same; restores both after.

    Without ``threads`` BLAS is left alone and torch gets as many threads as the BLAS has.
    Yields {"blas": n, "torch": n or None}.
    """
    from threadpoolctl import threadpool_limits

    machine.blas()  # loads SciPy's BLAS too, so the limit reaches the one the kernels call
    limiter = threadpool_limits(limits=threads, user_api="blas") if threads else contextlib.nullcontext()
    with limiter:
        blas_threads = machine.blas_threads()
        torch_threads = previous = None
        if with_torch:
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(blas_threads)
            torch_threads = torch.get_num_threads()
        try:
            yield {"blas": blas_threads, "torch": torch_threads}
        finally:
            if previous is not None:
                torch.set_num_threads(previous)


def _in_context(w):
    """One call of workload ``w``, in its context (backend, threads)."""
    def call():
        with w.context():
            w.run()
    return call


def _timed_call(w, clock):
    with w.context():
        start = clock()
        raw = w.run()
        return raw, clock() - start


def _verify(results, expected, dtype):
    """(verified, worst excess, name of the worst array or of what is missing, what differs or None).

    Integer results (sampled captions) must equal the oracle's: a word index is right or wrong, and the
    message says how many differ and where the first one is."""
    missing = sorted(set(expected) - set(results))
    if missing:
        return False, math.inf, f"missing {', '.join(missing)}", None
    worst, worst_name, detail = 0.0, None, None
    for name, e in expected.items():
        a = np.asarray(results[name])
        e = np.asarray(e)
        if np.issubdtype(e.dtype, np.integer):
            x, d = _integer_mismatch(a, e, name)
        else:
            x, d = excess(a, e, dtype), None
        if a.dtype != e.dtype:
            x = math.inf
        if x > worst or worst_name is None:
            worst, worst_name, detail = x, name, d
    return worst <= 1.0, worst, worst_name, detail


def _integer_mismatch(a, e, name):
    """(0, None) when a equals e, else (inf, a description of the entries that differ)."""
    if a.shape != e.shape:
        return math.inf, f"{name} has shape {a.shape}, the oracle's {e.shape}"
    wrong = np.argwhere(a != e)
    if not len(wrong):
        return 0.0, None
    first = tuple(int(i) for i in wrong[0])
    return math.inf, (f"{len(wrong)} of {e.size} entries of {name} differ from the oracle's, the first at "
                      f"{list(first)}: {a[first]} instead of {e[first]}")


def _entry(role):
    return {"role": role, "median_s": None, "iqr_s": None, "samples_s": [], "number": None,
            "first_call_s": None, "verified": None, "max_excess": None, "worst": None, "error": None}


def _thread_pool(name):
    """The thread pool an implementation computes on (see 4. above): torch's, NumPy's BLAS for the oracle
    and the floor, else fastrnn's team."""
    if name == "torch":
        return "torch"
    return "blas" if name in (workloads.ORACLE, "floor") else "fastrnn"


def measure_case(case, names, rounds=None, seed=0, min_sample=MIN_SAMPLE_S, clock=time.perf_counter,
                 sleep=time.sleep, settle=SETTLE_S, peak_gflops=None, one_pool=False, round_trip=None):
    """Measures one case; returns its JSON-able record (see the module docstring).

    ``peak_gflops`` is the machine's peak in the case's dtype (None: shares of peak are None);
    ``one_pool``: every implementation in one group, no pauses (for one thread: see 4. above);
    ``round_trip``: called before every visit of a pool, after its pause (``machine.core_round_trip``:
    how far apart the team's two CPUs are then), its readings kept in the record's ``round_trip_ns``.
    """
    started = time.perf_counter()
    cpu_before = machine.cpu_snapshot()
    record = {
        "label": case.label, "kind": case.kind, "cell": case.cell, "size": case.size, "dims": case.dim,
        "dtype": case.dtype, "pass": case.pass_label, "gemm_flops": workloads.gemm_flops(case),
        "peak_gflops": peak_gflops, "rounds": None, "results": {}, "ratios": {}, "rates": {},
        "round_trip_ns": [],
    }
    arrays = workloads.inputs(case, seed)
    runnable = []
    expected = None
    for name in names:
        entry = record["results"][name] = _entry(
            "oracle" if name == workloads.ORACLE else name if name in ("torch", "floor") else "backend")
        try:
            w = workloads.build(case, name, arrays)
            raw, entry["first_call_s"] = _timed_call(w, clock)
            if w.results is not None:
                got = w.results(raw)
                if name == workloads.ORACLE:
                    expected = got
                    entry["verified"], entry["max_excess"] = True, 0.0
                else:
                    ok, worst, worst_name, detail = _verify(got, expected, case.dtype)
                    entry["verified"], entry["max_excess"], entry["worst"] = ok, worst, worst_name
                    if not ok:
                        detail = detail or f"{worst_name} at {worst:.3g}x the tolerance"
                        entry["error"] = f"differs from the oracle: {detail}"
                        continue
            del raw
            _, warm = _timed_call(w, clock)  # warm-up, and the size of a sample
        except Exception as exc:  # a failing implementation is reported, the others still run
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["verified"] = False if name != "floor" else None
            if name == workloads.ORACLE:
                raise
            continue
        entry["number"] = timing.calls_per_sample(warm, min_sample)
        runnable.append((name, w, entry, warm))

    round_s = sum(e["number"] * warm for _, _, e, warm in runnable)  # one sample of every implementation
    if rounds is None:
        rounds = auto_rounds(round_s)
    record["rounds"] = rounds
    per_visit = rounds if one_pool else rounds_per_visit(round_s, rounds)
    record["rounds_per_visit"] = per_visit
    pools = {}
    for item in runnable:
        pools.setdefault("all" if one_pool else _thread_pool(item[0]), []).append(item)
    previous = None
    for members, rounds_of_pool in pool_schedule(list(pools.values()), rounds, per_visit):
        if members is not previous:
            if previous is not None:
                sleep(settle)  # let the previous pool's threads stop spinning
            if round_trip is not None:
                reading = round_trip()
                if reading is not None:
                    record["round_trip_ns"].append(reading)
            timing.warm_up([_in_context(w) for _, w, _, _ in members], WARM_S, clock)  # and this one's cores wake
        previous = members
        for r in rounds_of_pool:
            k = r % len(members)
            for name, w, entry, _ in members[k:] + members[:k]:
                with w.context():
                    entry["samples_s"].append(timing.sample(w.run, entry["number"], clock))
    if len(pools) > 1:
        sleep(settle)  # ... and before the next case
    for name, w, entry, _ in runnable:
        s = entry["samples_s"]
        entry["median_s"] = statistics.median(s)
        if len(s) >= 3:
            q = statistics.quantiles(s, n=4)
            entry["iqr_s"] = q[2] - q[0]
    record["ratios"] = ratios(record["results"])
    record["rates"] = rates(record["results"], record["gemm_flops"], peak_gflops)
    record["elapsed_s"] = time.perf_counter() - started
    # what other processes and the hypervisor took while the case ran (see report.interference_line)
    record["interference"] = machine.interference(cpu_before, machine.cpu_snapshot(), INTERFERENCE_MIN_S)
    return record


def pool_schedule(pools, rounds, per_visit=None):
    """The order in which the pools take their rounds (see 4. above), as ``[(pool, round indices), ...]``:
    passes of ``per_visit`` rounds (default: half of them, rounded up), each pass visiting every pool, the
    first pass in the given order, the next in reverse, and so on.  Two reasons.  A machine that drifts
    steadily (this VM does, by several % over seconds) then biases no ratio between pools: every pair of
    passes puts each pool's samples at the same mean time, where one pass (every round of one pool, then of
    the next) credited the drift to the pool timed last.  And a step change (seconds of a slow machine) falls
    on the visits of every pool it covers, not on one pool's half of the rounds.  The pool at a turn takes
    two visits in a row: one pause fewer."""
    if per_visit is None:
        per_visit = (rounds + 1) // 2
    if per_visit < 1:
        raise ValueError("per_visit must be at least 1")
    schedule = []
    for p, start in enumerate(range(0, rounds, per_visit)):
        these = range(start, min(start + per_visit, rounds))
        schedule += [(members, these) for members in (pools if p % 2 == 0 else pools[::-1])]
    return schedule


def ratios(results):
    """Per implementation: speed-up over the oracle, time / BLAS floor, time / torch (None when unknown)."""
    def median(name):
        return results.get(name, {}).get("median_s")

    oracle, floor, torch_t = median(workloads.ORACLE), median("floor"), median("torch")
    out = {}
    for name, entry in results.items():
        t = entry["median_s"]
        if t is None or name == "floor":
            continue
        out[name] = {
            "speedup_vs_oracle": oracle / t if oracle else None,
            "time_over_floor": t / floor if floor else None,
            "time_over_torch": t / torch_t if torch_t and name != "torch" else None,
        }
    return out


def use_higher_end_peak(report):
    """Where the peak measured again at the end of the run (``report["peak_end"]``) is higher than the start's,
    the cases of that dtype take it as their peak: shares of peak are then of the best rate the machine showed
    in the run, never inflated by a slow moment at its start."""
    for dtype, end in (report.get("peak_end") or {}).items():
        start = report["peak"]["dtypes"][dtype]["gflops"]
        if end["gflops"] is None or start is None or end["gflops"] <= start:
            continue
        for record in report["cases"]:
            if record["dtype"] == dtype:
                record["peak_gflops"] = end["gflops"]
                record["rates"] = rates(record["results"], record["gemm_flops"], end["gflops"])


def rates(results, flops, peak_gflops):
    """Per implementation with a time, the floor included: achieved GFLOP/s and its share of the peak.

    Every implementation is credited with the same ``flops`` (the case's GEMMs), so the rates
    compare like the times do; ``share_of_peak`` is a fraction (None without a peak).
    """
    out = {}
    for name, entry in results.items():
        t = entry["median_s"]
        if not t:
            continue
        gflops = flops / t / 1e9
        out[name] = {"gflops": gflops, "share_of_peak": gflops / peak_gflops if peak_gflops else None}
    return out


def implementations(backends=None, torch=None):
    """The implementations to run: the oracle, the chosen fastrnn backends, torch, the floor.

    ``backends`` is a list of backend names, and may include "torch"; by default every
    available backend and torch when it is installed. Unknown or unavailable names: ValueError.
    """
    available = _backend.available_backends()
    if backends is None:
        chosen = list(available) + (["torch"] if workloads.torch_available() else [])
    else:
        chosen = []
        for name in backends:
            if name == "torch":
                if not workloads.torch_available():
                    raise ValueError("torch is not installed: pip install 'fastrnn[torch]'")
            elif name not in available:
                raise ValueError(f"backend {name!r} is not available; available backends: {available} (and torch)")
            if name not in chosen:
                chosen.append(name)
    # The oracle first (the others are checked against it), then the compiled backends, torch, floor.
    order = [workloads.ORACLE] + [b for b in available if b != workloads.ORACLE and b in chosen]
    if "torch" in chosen:
        order.append("torch")
    return order + ["floor"]


def run(cases, names, rounds=None, threads=None, seed=0, min_sample=MIN_SAMPLE_S, progress=False,
        clock=time.perf_counter, sleep=time.sleep, peak_sizes=None, peak_gemm=peak.make_gemm, fma_run=None,
        round_trip=None):
    """Runs the benchmark; returns the report (JSON-able dict).

    ``cases`` from ``fastrnn.workloads.cases``, ``names`` from ``implementations``;
    ``progress`` shows a tqdm bar on stderr. The machine's peak is measured first, in every
    dtype of ``cases``, with NumPy and (when installed) torch: ``peak_sizes`` as in
    ``fastrnn.bench.peak.measure``; then the FMA limit (``fastrnn.bench.peak.fma_limit``) on the same
    threads; both again after the cases. Before every visit of a pool, with two threads or more, the
    round trip of a cache line between the team's threads (``machine.core_round_trip``; ``round_trip``
    replaces it). ``clock``, ``sleep``, ``peak_gemm``, ``fma_run`` and ``round_trip`` are for tests.
    """
    from tqdm.auto import tqdm

    if rounds is not None and rounds < 1:
        raise ValueError("rounds must be at least 1")
    peak_libraries = peak.libraries()
    dtypes = list(dict.fromkeys(case.dtype for case in cases))
    with thread_settings(threads, "torch" in names or "torch" in peak_libraries) as thread_counts:
        one_pool = thread_counts["blas"] == 1 and thread_counts["torch"] in (None, 1)  # nothing spins (4. above)
        report = {
            "schema": SCHEMA,
            "machine": {**machine.describe(), "other_cpu": machine.other_cpu(sleep=sleep)},
            "settings": {
                "implementations": list(names), "rounds": rounds if rounds is not None else "auto",
                "threads": thread_counts, "seed": seed, "min_sample_s": min_sample, "warm_up_s": WARM_S,
                "visit_s": VISIT_S, "one_pool": one_pool,
            },
            "peak": None,
            "peak_end": None,
            "fma_limit": None,
            "fma_limit_end": None,
            "cases": [],
        }
        # how far apart the team's two CPUs are, before every visit (only with two threads or more to run on)
        if round_trip is None and thread_counts["blas"] >= 2:
            round_trip = machine.core_round_trip
        started = time.perf_counter()
        with tqdm(total=len(cases), unit="case", disable=not progress, leave=False, dynamic_ncols=True) as bar:
            bar.set_postfix_str("the machine's peak (large GEMMs)", refresh=True)
            report["peak"] = peak.measure(dtypes, peak_libraries, sizes=peak_sizes, min_sample=min_sample,
                                          clock=clock, sleep=sleep, gemm=peak_gemm)
            bar.set_postfix_str("the FMA limit", refresh=True)
            report["fma_limit"] = peak.fma_limit(dtypes, thread_counts["blas"], fma_run=fma_run)
            for case in cases:
                bar.set_postfix_str(case.label, refresh=True)
                report["cases"].append(measure_case(
                    case, names, rounds, seed, min_sample, clock, sleep=sleep,
                    peak_gflops=report["peak"]["dtypes"][case.dtype]["gflops"], one_pool=one_pool,
                    round_trip=round_trip))
                bar.update()
            bar.set_postfix_str("the machine's peak again", refresh=True)
            report["peak_end"] = peak.remeasure(report["peak"], clock=clock, sleep=sleep, gemm=peak_gemm)
            report["fma_limit_end"] = peak.fma_limit(dtypes, thread_counts["blas"], fma_run=fma_run)
            use_higher_end_peak(report)
        report["elapsed_s"] = time.perf_counter() - started
    report["first_calls"] = first_calls(report["cases"])
    report["failures"] = [
        f"{c['label']}: {name}: {e['error']}"
        for c in report["cases"] for name, e in c["results"].items() if e["error"]
    ]
    report["ok"] = not report["failures"]
    return report


def first_calls(records):
    """Per implementation, the one-time cost of first calls: first call minus median, summed over cases.

    For Numba this is where compiling (or loading the cached) kernels shows; also the case with
    the largest such overhead.
    """
    out = {}
    for c in records:
        for name, e in c["results"].items():
            if e["first_call_s"] is None or e["median_s"] is None:
                continue
            extra = max(0.0, e["first_call_s"] - e["median_s"])
            entry = out.setdefault(name, {"overhead_s": 0.0, "largest_s": 0.0, "largest_case": None})
            entry["overhead_s"] += extra
            if extra >= entry["largest_s"]:
                entry["largest_s"], entry["largest_case"] = extra, c["label"]
    return out
