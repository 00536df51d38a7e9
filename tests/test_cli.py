"""The ``fastrnn`` command: info, check and bench, in-process through ``main`` and as a subprocess.

Timings are never asserted: only that the numbers are there, well-formed and consistent.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastrnn
from fastrnn import cli
from fastrnn.bench import workloads

# One thread: on a busy 2-core machine a 2-thread OpenMP team (torch) can be 10x slower, and the
# tests only check the harness, never the timings. A small peak GEMM: the default sizes cost seconds.
PEAK_N = 64
QUICK = ["--sizes", "tiny", "--rounds", "3", "--no-progress", "--threads", "1", "--peak-sizes", str(PEAK_N)]


def _subprocess(*args, timeout=300):
    env = dict(os.environ)
    env.pop("FASTRNN_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "fastrnn.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastrnn {fastrnn.__version__}"


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"fastrnn {fastrnn.__version__}" in out
    for word in ("numpy", "scipy", "numba", "Cython", "torch", "backends", "active backend", "CPU", "BLAS",
                 "numba cache"):
        assert word in out
    assert ", ".join(fastrnn.available_backends()) in out


def test_info_json(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["fastrnn"] == fastrnn.__version__
    assert info["backends"]["available"] == fastrnn.available_backends()
    assert info["backends"]["active"] in info["backends"]["available"]
    assert info["numba_cache"]["path"] == str(tmp_path) and info["numba_cache"]["source"] == "NUMBA_CACHE_DIR"
    assert any(lib["user_api"] == "blas" and lib["num_threads"] >= 1 for lib in info["blas"])
    assert info["cpu"]["logical_cores"] >= 1
    ws = info["workspace"]
    assert ws["limit_bytes"] == fastrnn.get_workspace_limit() * 2**20
    assert ws["total_bytes"] == sum(t["bytes"] for t in ws["threads"])


def test_info_shows_the_packed_kernels(capsys, monkeypatch):
    """Which micro-kernel ISA the CPU got, the panel widths, and whether FASTRNN_NATIVE turned the team off."""
    from fastrnn import _native

    layout = _native.layout()
    assert cli.main(["info", "--json"]) == 0
    nat = json.loads(capsys.readouterr().out)["native"]
    assert (nat["isa"], nat["nr_float32"], nat["nr_float64"]) == (layout["isa"], layout["nr_float32"],
                                                                  layout["nr_float64"])
    monkeypatch.setenv("FASTRNN_NATIVE", "0")
    assert cli.main(["info"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("packed kernels"))
    assert layout["isa"] in line and "off: FASTRNN_NATIVE=0" in line


def test_info_numba_cache_default_is_next_to_the_kernels(capsys, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert cli.main(["info", "--json"]) == 0
    cache = json.loads(capsys.readouterr().out)["numba_cache"]
    kernels = os.path.join(os.path.dirname(fastrnn.__file__), "_numba")
    if os.access(kernels, os.W_OK):
        assert cache["path"] == os.path.join(kernels, "__pycache__") and cache["source"].startswith("default")


def test_info_shows_the_workspace(capsys):
    """The cap, where it comes from, and what each thread holds."""
    import threading

    fastrnn.release_workspace()
    previous = fastrnn.set_workspace_limit(48)
    try:
        held, release = threading.Event(), threading.Event()

        def worker():
            from fastrnn import _workspace

            memory = _workspace.scratch(3 * 2**20)  # noqa: F841  (held while the main thread looks)
            held.set()
            release.wait(30)

        thread = threading.Thread(target=worker, name="ws-worker")
        thread.start()
        held.wait(30)
        assert cli.main(["info"]) == 0
        release.set()
        thread.join()
        out = capsys.readouterr().out
    finally:
        fastrnn.set_workspace_limit(previous)
    assert "kept scratch per thread at most 48.0 MiB (set by fastrnn.set_workspace_limit())" in out
    assert "held now: 3.0 MiB in 1 thread" in out
    assert "ws-worker" in out and "in use" in out


def test_info_does_not_import_torch():
    # Versions come from package metadata: `fastrnn info` must not pay for importing torch.
    code = "import sys; from fastrnn import cli; cli.main(['info']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_check_in_process(capsys):
    assert cli.main(["check", "--trials", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for backend in fastrnn.available_backends():
        assert backend in out
    assert "FAIL" not in out


def test_check_subprocess():
    result = _subprocess("check", "--trials", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comparisons passed" in result.stdout


def _check_report(report, cells, dtypes, passes, kinds=("sequence",)):
    names = report["settings"]["implementations"]
    assert names[0] == "numpy" and names[-1] == "floor"
    assert set(fastrnn.available_backends()) <= set(names)
    assert ("torch" in names) == workloads.torch_available()
    assert report["ok"] is True and report["failures"] == []
    assert len(report["cases"]) == len(cells) * len(dtypes) * len(passes) * len(kinds)
    _check_peak(report, dtypes)
    for case in report["cases"]:
        assert case["rounds"] == 3
        # the peak of the case's dtype: the start's, or the end's where that was higher
        start, end = report["peak"]["dtypes"][case["dtype"]]["gflops"], report["peak_end"][case["dtype"]]["gflops"]
        peak = max(start, end)
        assert case["peak_gflops"] == peak
        assert set(case["rates"]) == set(names)  # the floor has a rate too
        for name, rate in case["rates"].items():
            t = case["results"][name]["median_s"]
            assert math.isclose(rate["gflops"], case["gemm_flops"] / t / 1e9)
            assert math.isclose(rate["share_of_peak"], rate["gflops"] / peak)
        for name in names:
            e = case["results"][name]
            assert e["error"] is None, e
            assert len(e["samples_s"]) == 3 and e["median_s"] > 0 and e["number"] >= 1
            assert e["verified"] is (None if name == "floor" else True)
        ratios = case["ratios"]
        assert set(ratios) == set(names) - {"floor"}
        assert ratios["numpy"]["speedup_vs_oracle"] == 1.0
        for name, r in ratios.items():
            t = case["results"][name]["median_s"]
            assert math.isclose(r["speedup_vs_oracle"], case["results"]["numpy"]["median_s"] / t)
            assert math.isclose(r["time_over_floor"], t / case["results"]["floor"]["median_s"])
            if "torch" in names and name != "torch":
                assert math.isclose(r["time_over_torch"], t / case["results"]["torch"]["median_s"])


def _check_peak(report, dtypes):
    """The peak: one entry per dtype of the run, the best of its measurements, each with its samples."""
    p = report["peak"]
    libraries = ["numpy"] + (["torch"] if workloads.torch_available() else [])
    assert list(p["libraries"]) == libraries and p["sizes"] == [PEAK_N] and p["errors"] == {}
    assert p["elapsed_s"] > 0 and p["rounds"] >= 1
    assert set(p["dtypes"]) == set(dtypes)
    for d in p["dtypes"].values():
        ms = d["measurements"]
        assert sorted(m["library"] for m in ms) == libraries  # one size, each library once
        for m in ms:
            assert m["size"] == PEAK_N and m["flops"] == 2 * PEAK_N ** 3
            assert len(m["samples_s"]) == p["rounds"] and m["median_s"] > 0 and m["number"] >= 1
            assert math.isclose(m["gflops"], m["flops"] / m["median_s"] / 1e9)
        best = max(ms, key=lambda m: m["gflops"])
        assert (d["gflops"], d["library"], d["size"]) == (best["gflops"], best["library"], best["size"])
        assert set(d["best_by_library"]) == set(libraries)


def test_bench_in_process_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    args = ["bench", *QUICK, "--kinds", "sequence", "--cells", "lstm", "--dtypes", "float32", "--json", str(path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "CPU:" in out and "BLAS:" in out and "lstm tiny float32 fwd+bwd" in out and "x oracle" in out
    assert "GFLOP/s" in out and "% peak" in out and "peak float32, 1 thread: " in out
    report = json.loads(path.read_text())
    assert report["schema"] == "fastrnn-bench/2"
    assert report["machine"]["cpu"]["logical_cores"] >= 1
    _check_report(report, ["lstm"], ["float32"], ["fwd", "fwd+bwd"])


def test_bench_subprocess_markdown(tmp_path):
    path = tmp_path / "bench.json"
    result = _subprocess("bench", *QUICK, "--kinds", "step", "--cells", "rnn", "--dtypes", "float64",
                         "--passes", "fwd+bwd", "--markdown", "--json", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| case" in result.stdout and "|:-" in result.stdout and "### Single steps" in result.stdout
    assert "| GFLOP/s | % peak |" in result.stdout and "- peak float64, 1 thread: " in result.stdout
    report = json.loads(path.read_text())
    _check_report(report, ["rnn"], ["float64"], ["fwd+bwd"])
    assert report["cases"][0]["dims"] == {"N": 10, "T": 1, "D": 30, "H": 40}


def test_console_script():
    exe = shutil.which("fastrnn", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the fastrnn console script is not installed next to this Python")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and fastrnn.__version__ in result.stdout


def test_bench_threads_are_applied_and_restored(tmp_path):
    from threadpoolctl import threadpool_info

    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    path = tmp_path / "bench.json"
    args = ["bench", *QUICK, "--rounds", "1", "--kinds", "step", "--cells", "rnn", "--dtypes", "float32",
            "--passes", "fwd", "--json", str(path)]
    assert cli.main(args) == 0
    threads = json.loads(path.read_text())["settings"]["threads"]
    assert threads["blas"] == 1
    if workloads.torch_available():
        assert threads["torch"] == 1
    after = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    assert [a for a in after if a[0] in dict(before)] == [b for b in before if b[0] in dict(after)]


def test_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    args = ["bench", *QUICK, "--rounds", "1", "--kinds", "sequence", "--cells", "rnn", "--dtypes", "float32",
            "--passes", "fwd", "--plot", str(png)]
    assert cli.main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main(["bench", "--sizes", "tiny", "--plot", "out.png"]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install" in err


@pytest.mark.parametrize("args", [
    ["--backends", "no-such-backend"],
    ["--sizes", "huge"],
    ["--cells", "relu"],
    ["--rounds", "0"],
    ["--peak-sizes", "0"],
    ["--peak-sizes", "1024,big"],
])
def test_bench_bad_options(args, capsys):
    try:
        code = cli.main(["bench", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2


def test_bench_no_matching_case(capsys):
    # The model runs in float32 only: asking for it in float64 alone selects nothing.
    assert cli.main(["bench", "--kinds", "model", "--dtypes", "float64"]) == 2
    assert "no case" in capsys.readouterr().err


def test_bench_fails_on_a_broken_backend(monkeypatch, tmp_path, capsys):
    from fakes import register_broken_backend

    name = register_broken_backend(monkeypatch, "wrong_value")
    path = tmp_path / "bench.json"
    args = ["bench", *QUICK, "--rounds", "1", "--kinds", "sequence", "--cells", "rnn", "--dtypes", "float32",
            "--passes", "fwd", "--backends", name, "--json", str(path)]
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILURES" in out
    report = json.loads(path.read_text())
    entry = report["cases"][0]["results"][name]
    assert entry["verified"] is False and entry["median_s"] is None and entry["samples_s"] == []
    assert "differs from the oracle" in entry["error"]
    assert name not in report["cases"][0]["ratios"]
