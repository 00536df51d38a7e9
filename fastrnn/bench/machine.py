"""What this install runs on: versions, CPU, BLAS and its threads, backends, the Numba cache, and
the kernels' kept scratch memory (the workspace).

``fastrnn info`` prints it, and ``fastrnn bench`` prints it above its table and stores it in
its JSON, so a measured number always comes with the machine it was measured on.

Versions are read from the installed distributions' metadata, so asking for them does not
import Numba, Cython or PyTorch.
"""

import os
import platform
import time
from importlib import metadata
from pathlib import Path

__all__ = ["versions", "cpu", "blas", "numba_cache", "backends", "workspace", "describe", "other_cpu",
           "cpu_snapshot", "interference", "core_round_trip"]

BUSY_CORES = 0.2  # cores taken by other processes (or the hypervisor) at a run's start or during a case: expect noise
ROUND_TRIP_ITERS = 2000  # round trips per reading of ``core_round_trip``: 0.1-0.7 ms on the project's VM
# A case whose readings were mostly this many times the run's nearest tenth (report.round_trip_line): the team's two
# CPUs were farther apart then.
# On the project's Zen 4 guest the readings were 60-70 ns or 320-360 ns, rarely between; about 4 us where the two
# threads took turns on one CPU (a 2-thread run of every case, 2026-12-05: 701, 116 and 21 of 848).
FAR_ROUND_TRIP = 2.0

# distribution name -> label
_PACKAGES = {
    "fastrnn": "fastrnn",
    "numpy": "numpy",
    "scipy": "scipy",
    "numba": "numba",
    "Cython": "Cython",
    "torch": "torch",
    "threadpoolctl": "threadpoolctl",
}


def versions():
    """label -> installed version, or None when the package is not installed."""
    out = {"python": platform.python_version()}
    for dist, label in _PACKAGES.items():
        try:
            out[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[label] = None
    if out["fastrnn"] is None:  # running from a source tree that was never installed
        from .._version import __version__

        out["fastrnn"] = __version__
    return out


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu():
    """CPU model, logical cores, and the cores this process may run on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "model": _cpu_model(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
    }


def blas(load_scipy=True):
    """The BLAS and OpenMP libraries loaded in this process, with their thread counts (threadpoolctl).

    SciPy's BLAS (which the compiled kernels call) is only listed once ``scipy.linalg`` is
    imported, so by default it is imported first.
    """
    import numpy  # noqa: F401  (loads NumPy's BLAS)

    if load_scipy:
        try:
            import scipy.linalg  # noqa: F401
        except ImportError:
            pass
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture", "filepath")
    out = []
    for lib in threadpool_info():
        entry = {k: lib.get(k) for k in keys}
        entry["loaded_by"] = _owner(entry["filepath"] or "")
        out.append(entry)
    return out


def _owner(path):
    """Which package shipped a library, from its path: who calls it."""
    parts = Path(path).parts
    for name, label in (("numpy.libs", "numpy"), ("numpy", "numpy"), ("scipy.libs", "scipy"), ("scipy", "scipy"),
                        ("torch", "torch")):
        if name in parts:
            return label
    return None


def blas_threads(libraries=None):
    """The largest thread count of the loaded BLAS libraries (what a GEMM will use)."""
    libraries = blas() if libraries is None else libraries
    counts = [lib["num_threads"] for lib in libraries if lib["user_api"] == "blas" and lib["num_threads"]]
    return max(counts) if counts else 1


def numba_cache():
    """Where Numba keeps the compiled kernels (``cache=True``), without importing Numba.

    NUMBA_CACHE_DIR when set; otherwise Numba writes next to the source, in
    ``fastrnn/_numba/__pycache__``, and falls back to a per-user cache directory when that
    is not writable.
    """
    env = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    source_dir = Path(__file__).resolve().parent.parent / "_numba"  # fastrnn/_numba
    if env:
        where, how = Path(env), "NUMBA_CACHE_DIR"
    else:
        where, how = source_dir / "__pycache__", "default (next to the source)"
        if source_dir.is_dir() and not os.access(source_dir, os.W_OK):
            xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            where, how = Path(xdg) / "numba", "default (source not writable: per-user cache)"
    files = list(where.rglob("*.nbi")) if where.is_dir() else []
    return {"path": str(where), "source": how, "cached_kernel_indexes": len(files)}


def backends():
    """Available backends (fastest first) and the active one.

    This imports the backend modules: the registry decides availability by importing them.
    """
    from .. import _backend

    return {"available": _backend.available_backends(), "active": _backend.get_backend()}


def workspace():
    """The scratch memory the kernels keep per thread: the cap (per thread), what each thread holds
    now, and the total (``fastrnn.workspace_info()``)."""
    from .._workspace import workspace_info

    return workspace_info()


def load_average():
    """The 1, 5 and 15 minute load averages (None where the system does not tell)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def _cpu_ticks(path="/proc/stat"):
    """(busy, steal) clock ticks since boot of the CPUs this process may run on (its affinity; all CPUs
    where the system does not tell), from Linux's /proc/stat: busy = user, nice, system, irq and softirq
    time; steal = time the hypervisor gave to others."""
    try:
        mine = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        mine = None
    busy = steal = 0
    with open(path) as f:
        for line in f:
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            if mine is not None and int(name[3:]) not in mine:
                continue
            fields = [int(v) for v in values[:8]] + [0] * (8 - len(values[:8]))
            user, nice, system, _idle, _iowait, irq, softirq, st = fields
            busy += user + nice + system + irq + softirq
            steal += st
    return busy, steal


def cpu_snapshot(ticks=_cpu_ticks, own=os.times, clock=time.monotonic):
    """A reading for ``interference``: the machine's busy and stolen clock ticks (``_cpu_ticks``), this
    process's CPU time and the time; None where the system does not tell (no /proc/stat)."""
    try:
        busy, steal = ticks()
        t = own()
        return {"busy": busy, "steal": steal, "own_s": t.user + t.system, "at": clock()}
    except (OSError, ValueError, AttributeError, IndexError):
        return None


def interference(before, after, min_seconds=0.0):
    """Between two ``cpu_snapshot`` readings: the cores' worth of CPU time that other processes used, and
    that the hypervisor stole, as {"seconds", "cores", "steal_cores"}; None without both readings or over
    less than ``min_seconds`` (the kernel counts CPU time in ticks of 1-10 ms: a short window cannot tell)."""
    if before is None or after is None:
        return None
    elapsed = after["at"] - before["at"]
    if elapsed <= 0 or elapsed < min_seconds:
        return None
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return None
    mine = after["own_s"] - before["own_s"]
    return {"seconds": elapsed, "cores": max(0.0, ((after["busy"] - before["busy"]) / hz - mine) / elapsed),
            "steal_cores": max(0.0, (after["steal"] - before["steal"]) / hz / elapsed)}


def other_cpu(seconds=0.5, sleep=time.sleep, ticks=_cpu_ticks, own=os.times, clock=time.monotonic):
    """How busy the machine is right now, without us: the cores' worth of CPU time that other processes
    used, and that the hypervisor stole, while this process slept ``seconds``.  None where the system does
    not tell (no /proc/stat).  Unlike the load average, which decays over a minute, it is not raised by
    a run that has just ended."""
    before = cpu_snapshot(ticks, own, clock)
    if before is None:
        return None
    sleep(seconds)
    # a sleep cut short (or faked) is too short a window to tell
    return interference(before, cpu_snapshot(ticks, own, clock), min_seconds=seconds / 2)


def core_round_trip(iters=ROUND_TRIP_ITERS):
    """Nanoseconds a cache line takes to go from one of fastrnn's team threads to another and back
    (``fastrnn._native.round_trip``: the caller and a worker, as the 2-thread kernels run); None when the
    C kernels did not build or the team could not give two threads.  A guest's CPUs may sit on cores of
    one die or of two, and the host may move them between the two while a run goes on: only this tells."""
    try:
        from .._native import round_trip
    except ImportError:
        return None
    return round_trip(iters)


def native():
    """The shared C kernels: the micro-kernel ISA chosen for this CPU, its panel widths, and whether the
    compiled backends use the team (FASTRNN_NATIVE=0 turns it off); None when the library did not build."""
    try:
        from .. import _native
        layout = _native.layout()
    except ImportError:
        return None
    return {"isa": layout["isa"], "nr_float32": layout["nr_float32"], "nr_float64": layout["nr_float64"],
            "isa_forced": os.environ.get("FASTRNN_ISA") or None,
            "enabled": os.environ.get("FASTRNN_NATIVE", "").strip() != "0"}


def describe(include_backends=True):
    """Everything above, as one JSON-serialisable dict."""
    libs = blas()
    out = {
        "versions": versions(),
        "cpu": cpu(),
        "blas": libs,
        "blas_threads": blas_threads(libs),
        "numba_cache": numba_cache(),
        "load_average": load_average(),
        "workspace": workspace(),
        "native": native(),
    }
    if include_backends:
        out["backends"] = backends()
    return out


def summary_lines(info):
    """A few human lines for the top of a benchmark table."""
    c, v = info["cpu"], info["versions"]
    blas_libs = [lib for lib in info["blas"] if lib["user_api"] == "blas"]
    blas_text = "; ".join(
        f"{lib['loaded_by'] or '?'}'s {lib['internal_api']} {lib['version'] or ''} ({lib['architecture'] or '?'}, "
        f"{lib['num_threads']} threads)"
        for lib in blas_libs
    ) or "none found"
    lines = [
        f"CPU: {c['model']} ({c['machine']}), {c['logical_cores']} logical cores, {c['usable_cores']} usable",
        f"BLAS: {blas_text}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
    ]
    load, other = info.get("load_average"), info.get("other_cpu")
    if other:
        busy = other["cores"] >= BUSY_CORES
        lines.append(f"other processes at start: {other['cores']:.2f} of {c['usable_cores']} usable cores busy, "
                     f"{other['steal_cores']:.2f} taken by the hypervisor (over {other['seconds']:.1f} s)"
                     + (f"; load average {load[0]:.2f} (1 min)" if load else "")
                     + ("; the machine is busy, so expect noisy timings" if busy else ""))
    elif load:
        busy = load[0] > 0.5 * (c["usable_cores"] or 1)
        lines.append(f"load average at start: {load[0]:.2f} (1 min) on {c['usable_cores']} usable cores"
                     + ("; other processes are busy, so expect noisy timings" if busy else ""))
    nat = info.get("native")
    if nat:
        lines.append(f"packed kernels: {nat['isa']} (panel width float32 {nat['nr_float32']}, float64 "
                     f"{nat['nr_float64']})" + ("" if nat["enabled"] else "; off (FASTRNN_NATIVE=0)"))
    if "backends" in info:
        lines.append(f"backends: {', '.join(info['backends']['available'])} (active: {info['backends']['active']})")
    return lines
