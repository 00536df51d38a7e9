"""``fastrnn bench``: timing the oracle, the compiled backends, PyTorch and the BLAS floor.

    harness     how a case is measured (interleaved rounds, medians, ratios) and the run
    workloads   what a case computes, for every implementation (fastrnn backends, torch, floor)
    sizes       the canonical problem sizes
    machine     what the numbers were measured on (CPU, BLAS, threads, versions)
    report      the report as a table
    plot        ... and as a PNG (matplotlib)
"""

from .harness import implementations, run

__all__ = ["run", "implementations"]
