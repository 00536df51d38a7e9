"""Presenting a ``fastrnn bench`` report as a terminal or Markdown table (``plot`` draws it)."""

import math
import statistics
import textwrap

from . import machine
from .._table import render

__all__ = ["table", "format_time", "format_gflops", "format_share", "peak_lines", "fma_lines", "interference_line",
           "round_trip_line"]

# the peak measured again at the end of a run that differs from the start's by more than this gets a note
PEAK_DRIFT = 0.05

_KIND_TITLES = {
    "sequence": "Sequences: rnn_forward / lstm_forward / gru_forward (+ backward)",
    "step": "Single steps: rnn_step_forward / lstm_step_forward / gru_step_forward (+ backward)",
    "model": "CaptioningRNN.loss (loss and all gradients), V=1004, input 512, wordvec 256, hidden 512, T=16",
    "sample": "CaptioningRNN.sample (greedy captions of 16 words), V=1004, input 512, wordvec 256, hidden 512",
}


def format_time(seconds):
    """Seconds as a short human string with 3 significant digits: '12.3 ms', '456 us', '1.20 s'."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            v = seconds / scale
            digits = 0 if v >= 100 else 1 if v >= 10 else 2
            return f"{v:.{digits}f} {unit}"


def _ratio(x):
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def format_gflops(gflops):
    """GFLOP/s with 3 significant digits: '412', '41.2', '4.12', '0.41'."""
    if gflops is None or not math.isfinite(gflops):
        return "-"
    return f"{gflops:.0f}" if gflops >= 100 else f"{gflops:.1f}" if gflops >= 10 else f"{gflops:.2f}"


def format_share(share):
    """A fraction of the peak as a percentage: '42%', '4.2%', '0.42%'."""
    if share is None or not math.isfinite(share):
        return "-"
    pct = 100 * share
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1f}%" if pct >= 1 else f"{pct:.2f}%"


def peak_lines(report):
    """The machine's peak per dtype (rate, library and size that gave it, the other library's best) and how."""
    p = report.get("peak")
    if not p:
        return []
    threads = report["settings"]["threads"]["blas"]
    libs = p["libraries"]
    lines = []
    for dtype, d in p["dtypes"].items():
        head = f"peak {dtype}, {threads} thread{'s' if threads != 1 else ''}: "
        if d["gflops"] is None:
            lines.append(head + "not measured")
            continue
        others = [f"{libs.get(lib, lib)} {format_gflops(b['gflops'])} at n={b['size']}"
                  for lib, b in d["best_by_library"].items() if lib != d["library"]]
        lines.append(head + f"{format_gflops(d['gflops'])} GFLOP/s by {libs.get(d['library'], d['library'])} at "
                     f"n={d['size']}" + (f"; {'; '.join(others)}" if others else ""))
    n = p["sizes"]
    sizes = (f"{n[0]}, {n[1]} and larger (up to {n[-1]}) while the rate still rises"
             if p.get("plateau_rule") and len(n) > 2 else ", ".join(map(str, n)))
    lines.append(f"peak = best median rate of square n x n GEMMs (C = A @ B, 2n^3 FLOPs), n = {sizes}, "
                 f"{p['rounds']} rounds each, measured at the start of this run with its threads in "
                 f"{p['elapsed_s']:.1f} s")
    end = report.get("peak_end") or {}
    if end:
        lines.append("peak again at the end of the run (same library and n): " + "; ".join(
            f"{dtype} {format_gflops(e['gflops'])} GFLOP/s ({e['ratio']:.2f} x the start)" for dtype, e in end.items()
            if e["gflops"] is not None) + "; % peak below is of the higher of the two")
        moved = [dtype for dtype, e in end.items() if e["ratio"] is not None and abs(e["ratio"] - 1) > PEAK_DRIFT]
        if moved:
            lines.append(f"note: the machine's large-GEMM rate moved by more than {100 * PEAK_DRIFT:.0f} % during "
                         f"the run ({', '.join(moved)}): compare the ratios within a case, not shares of peak "
                         "between runs")
    for what, error in p.get("errors", {}).items():
        lines.append(f"peak: {what} failed: {error}")
    return lines + fma_lines(report)


def _higher(*rates):
    """The highest of the rates that were measured (None: not), or 0 when none was."""
    return max([r for r in rates if r] or [0])


def fma_lines(report):
    """The FMA limit per dtype (``fastrnn.bench.peak.fma_limit``; the higher of the run's start and end) and the
    share of it the peak is."""
    f = report.get("fma_limit")
    if not f:
        return []
    if f.get("error"):
        return [f"FMA limit: not measured: {f['error']}"]
    threads = f["threads"]
    peaks = (report.get("peak") or {}).get("dtypes", {})
    peaks_end = report.get("peak_end") or {}
    end = (report.get("fma_limit_end") or {}).get("dtypes", {})
    parts = []
    for dtype, d in f["dtypes"].items():
        limit = _higher(d["gflops"], (end.get(dtype) or {}).get("gflops"))
        if not limit:
            parts.append(f"{dtype} not measured")
            continue
        peak = _higher((peaks.get(dtype) or {}).get("gflops"), (peaks_end.get(dtype) or {}).get("gflops"))
        parts.append(f"{dtype} {format_gflops(limit)} GFLOP/s"
                     + (f" (the peak is {peak / limit:.2f} of it)" if peak else ""))
    isa = f"{f['isa']} " if f.get("isa") else ""
    when = "the higher of the run's start and end" if end else "at the run's start"
    return [f"FMA limit, {threads} thread{'s' if threads != 1 else ''} ({isa}multiply-adds from registers only, "
            f"the most any product could reach; {when}): " + "; ".join(parts)]


def _spread(entry):
    if entry["iqr_s"] is None or not entry["median_s"]:
        return "-"
    return f"{100 * entry['iqr_s'] / entry['median_s']:.0f}%"


def _status(entry):
    if entry["error"]:
        return "FAIL" if entry["verified"] is False else "ERROR"
    if entry["verified"] is None:
        return "n/a"
    return "ok"


def _dims(record):
    d = record["dims"]
    if record["kind"] in ("model", "sample"):
        return f"N={d['N']}"
    return f"({d['N']},{d['T']},{d['D']},{d['H']})"


def table(report, markdown=False):
    """The report as text: the machine, then one table per kind of case, a legend and any failures."""
    s = report["settings"]
    threads = s["threads"]
    lines = machine.summary_lines(report["machine"])
    lines += peak_lines(report)
    rounds = s["rounds"]
    how = []  # how the rounds were taken (see fastrnn.bench.harness)
    if s.get("one_pool"):
        how.append("one thread: every implementation in turn in every round, no pauses")
    elif threads.get("torch"):
        visit = s.get("visit_s")
        how.append("each thread pool in rounds of its own: NumPy's BLAS, fastrnn's team, torch's in turn, "
                   + (f"{1000 * visit:.0f} ms of rounds (at most half of them) per visit, " if visit else "")
                   + "forward then backward")
    if s.get("warm_up_s"):
        whose = "the" if s.get("one_pool") else "each pool's"
        how.append(f"{whose} rounds after {1000 * s['warm_up_s']:.0f} ms of untimed calls")
    lines.append(
        f"threads: BLAS {threads['blas']}" + (f", torch {threads['torch']}" if threads.get("torch") else "")
        + f"; time = median of {'auto (5-9)' if rounds == 'auto' else rounds} interleaved rounds"
        + (f" ({'; '.join(how)})" if how else "")
        + f", each sample a batch of calls lasting >= {1000 * s['min_sample_s']:.0f} ms; "
        f"run took {report.get('elapsed_s', 0):.0f} s"
    )
    out = [f"- {line}" for line in lines] if markdown else list(lines)
    headers = ["case", "shape", "impl", "median", "IQR", "check", "x oracle", "/ floor", "/ torch", "GFLOP/s",
               "% peak"]
    for kind in ("sequence", "step", "model", "sample"):
        records = [r for r in report["cases"] if r["kind"] == kind]
        if not records:
            continue
        rows = []
        for r in records:
            first = True
            for name, e in r["results"].items():
                q = r["ratios"].get(name, {})
                rate = r.get("rates", {}).get(name, {})
                captioning = kind in ("model", "sample")
                label = f"{r['cell']} {r['dtype']} {r['pass']}" if captioning else (
                    f"{r['cell']} {r['size']} {r['dtype']} {r['pass']}")
                rows.append([
                    label if first else "", _dims(r) if first else "", name,
                    format_time(e["median_s"]), _spread(e), _status(e),
                    _ratio(q.get("speedup_vs_oracle")), _ratio(q.get("time_over_floor")),
                    _ratio(q.get("time_over_torch")), format_gflops(rate.get("gflops")),
                    format_share(rate.get("share_of_peak")),
                ])
                first = False
        title = _KIND_TITLES[kind]
        out += ["", f"### {title}" if markdown else title, ""]
        out.append(render(headers, rows, markdown=markdown, align="lllrrlrrrrr"))
    legend = (
        "shape = (N, T, D, H). impl: numpy = the NumPy oracle (fastrnn.reference via fastrnn.layers); "
        "torch = torch.nn.RNN/LSTM (RNNCell/LSTMCell for steps), forward with autograd recording + "
        "torch.autograd.grad; floor = the BLAS floor, only the GEMMs the kernel design needs, numpy.matmul into "
        "preallocated buffers (for the model: the cell's plus W_proj's and W_vocab's, so the oracle's / floor "
        "is the largest speed-up any implementation on this BLAS can reach; for sampling: features @ W_proj, then "
        "per word x @ Wx, h @ Wh, h @ W_vocab). median = median time of one call; IQR = interquartile range of "
        "the samples relative to the median; check = values and gradients within the dtype's tolerance of the "
        "oracle (sampling: the same captions); "
        "x oracle = speed-up over the oracle (higher is better); / floor = time / BLAS floor "
        "(1 = nothing but the GEMMs); / torch = time / torch's time (below 1: faster than torch). "
        "GFLOP/s = the FLOPs of the GEMMs the case needs (the floor's work, the same count for every "
        "implementation) / median; % peak = GFLOP/s / the peak of the case's dtype above: how much of the "
        "machine's large-GEMM rate an implementation turns into this case (the floor's shows what these GEMM "
        "shapes alone reach on NumPy's BLAS)."
    )
    wrap = (lambda text: text) if markdown else (lambda text: textwrap.fill(text, width=110))
    out += ["", wrap(legend)]
    above = [f"{r['label']}: {name}" for r in report["cases"] for name, v in r.get("rates", {}).items()
             if (v.get("share_of_peak") or 0) > 1]
    if above:
        out += ["", wrap(f"note: {len(above)} result(s) above 100 % of the peak ({'; '.join(above[:3])}"
                         f"{'; ...' if len(above) > 3 else ''}): either the peak measurement was disturbed (see the "
                         "other processes above) or these GEMM shapes run faster than large square ones.")]
    fc = report.get("first_calls", {})
    if fc:
        out += ["", wrap("one-time cost, not in the timings: first call minus median, summed over the cases "
                         "(for numba this includes compiling or loading the cached kernels): "
                         + "; ".join(f"{name} {format_time(v['overhead_s'])} (largest {format_time(v['largest_s'])}"
                                     f" in {v['largest_case']})" for name, v in fc.items()))]
    for line in (interference_line(report["cases"]), round_trip_line(report["cases"])):
        if line:
            out += ["", wrap(line)]
    if report.get("failures"):
        out += ["", "FAILURES:"] + [f"  {f}" for f in report["failures"]]
    return "\n".join(out)


def interference_line(cases, most=6):
    """What other processes and the hypervisor took while the cases ran (each case's ``interference``,
    fastrnn.bench.machine): the largest of each, and the cases where together they took
    ``machine.BUSY_CORES`` cores or more, whose rows may be slow for it; None when no case was measured."""
    measured = [(r["label"], r["interference"]) for r in cases if r.get("interference")]
    if not measured:
        return None
    other = max(measured, key=lambda c: c[1]["cores"])
    steal = max(measured, key=lambda c: c[1]["steal_cores"])
    text = (f"while the cases ran, other processes used at most {other[1]['cores']:.2f} cores "
            f"({other[0]}) and the hypervisor took at most {steal[1]['steal_cores']:.2f} ({steal[0]})")
    noisy = [f"{label} ({i['cores']:.2f} / {i['steal_cores']:.2f})" for label, i in measured
             if i["cores"] + i["steal_cores"] >= machine.BUSY_CORES]
    if noisy:
        text += (f"; {len(noisy)} case(s) lost {machine.BUSY_CORES} cores or more to them, so their rows may be slow "
                 f"for it (cores used by other processes / taken by the hypervisor): {'; '.join(noisy[:most])}"
                 + ("; ..." if len(noisy) > most else ""))
    return text


def round_trip_line(cases, most=6):
    """How far apart the team's two CPUs were while the cases ran (each case's ``round_trip_ns``, read
    before every visit of a thread pool: ``machine.core_round_trip``): the run's median reading, range and
    nearest tenth (the CPUs at their nearest in this run: a run may spend most of its time with them far
    apart, 2026-12-05), and the cases whose own median reading was ``machine.FAR_ROUND_TRIP`` times that
    tenth's or more, whose 2-thread rows may be slow for it; None when nothing was read (one thread, or no
    C kernels)."""
    readings = [(r["label"], r["round_trip_ns"]) for r in cases if r.get("round_trip_ns")]
    if not readings:
        return None
    every = sorted(ns for _, case in readings for ns in case)
    typical, near = statistics.median(every), every[len(every) // 10]
    far = [(label, statistics.median(ns), sum(x >= machine.FAR_ROUND_TRIP * near for x in ns), len(ns))
           for label, ns in readings if statistics.median(ns) >= machine.FAR_ROUND_TRIP * near]
    text = (f"core-to-core round trip (a cache line between fastrnn's two team threads, before every visit of a "
            f"thread pool): median {typical:.0f} ns, {every[0]:.0f}-{every[-1]:.0f} ns, the nearest tenth "
            f"{near:.0f} ns or less")
    if not far:
        return text + f"; no case met {machine.FAR_ROUND_TRIP:g}x that at most of its visits"
    text += (f"; {len(far)} of {len(readings)} case(s) met {machine.FAR_ROUND_TRIP:g}x that or more at most of "
             f"their visits, when the two CPUs sat farther apart (on a virtual machine: cores of different dies; "
             f"fastrnn's 2-thread calls ran up to 15 % slower so on the project's AMD EPYC guest) or, above a "
             f"microsecond, took turns on one CPU, so their rows may be slow for it: "
             + "; ".join(f"{label} ({ns:.0f} ns at {n} of {total} visits)" for label, ns, n, total in far[:most])
             + ("; ..." if len(far) > most else ""))
    return text
