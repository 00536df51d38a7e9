"""``fastrnn bench``: timing the oracle, the compiled backends, PyTorch and the BLAS floor against the machine's peak.

    harness     how a case is measured (interleaved rounds, medians, ratios, rates) and the run
    peak        the machine's peak: large square GEMMs per dtype, NumPy's BLAS and torch's, in the same run
    timing      one timing sample (a batch of calls, garbage collector off)
    workloads   what a case computes, for every implementation (fastrnn backends, torch, floor)
    sizes       the canonical problem sizes
    machine     what the numbers were measured on (CPU, BLAS, threads, versions)
    report      the report as a table
    plot        ... and as a PNG: share of peak and speed-up per case (matplotlib)
"""

from .harness import implementations, run

__all__ = ["run", "implementations"]
