"""Drawing a ``fastrnn bench`` report as a PNG (matplotlib, an optional extra: ``fastrnn[plot]``).

One row per case and one marker per implementation (a dot plot: it stays readable with 60 cases
and five implementations, where grouped bars would not). Two panels share the rows:

* the share of the machine's peak each implementation reaches, the BLAS floor drawn as a black
  bar: the distance from a marker to the bar is time / floor, and 100 % is the large-GEMM rate;
* the speed-up over the NumPy oracle (log scale), the floor's bar there being oracle / floor,
  the speed-up of nothing but the GEMMs.
"""

__all__ = ["plot", "require_matplotlib"]

_MARKERS = "os^Dv<>PX*"
SHARE_AXIS_MAX_PCT = 150.0


def require_matplotlib():
    """Imports matplotlib (Agg) or raises ImportError saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 'fastrnn[plot]' (or pip install matplotlib)") from exc
    return plt


def _label(r):
    layer = r["cell"] + {"step": "_step", "model": " model", "sample": " sample"}.get(r["kind"], "")
    return f"{layer} {r['size']} f{r['dtype'][5:]} {r['pass']}"


def _values(records, name):
    """Per case (row): (share of peak in %, speed-up over the oracle) of ``name``, None where unknown."""
    out = []
    for r in records:
        rate = r.get("rates", {}).get(name, {})
        share = rate.get("share_of_peak")
        oracle, own = r["results"].get("numpy", {}).get("median_s"), r["results"].get(name, {}).get("median_s")
        speedup = oracle / own if oracle and own else None
        out.append((100 * share if share is not None else None, speedup))
    return out


def plot(report, path):
    """Writes a PNG: per case, every implementation's share of peak and speed-up over the oracle."""
    plt = require_matplotlib()
    records = report["cases"]
    names = [n for n in report["settings"]["implementations"] if any(n in r["results"] for r in records)]
    rows = len(records)
    height = min(60.0, 1.9 + 0.24 * rows)
    fig, axes = plt.subplots(1, 2, figsize=(14, height), sharey=True, gridspec_kw={"width_ratios": (3, 2)})
    share_ax, speed_ax = axes
    for i in range(rows):
        if i % 2:
            for ax in axes:
                ax.axhspan(i - 0.5, i + 0.5, color="0.94", zorder=0)
    for i in range(1, rows):
        if records[i]["kind"] != records[i - 1]["kind"]:
            for ax in axes:
                ax.axhline(i - 0.5, color="0.5", linewidth=0.8)
    shares = [v[0] for name in names for v in _values(records, name) if v[0] is not None]
    # Above 100 % means a disturbed peak measurement (or GEMM shapes faster than large square ones):
    # the axis stops at SHARE_AXIS_MAX_PCT so one such point cannot squash the others; beyond it, at the edge.
    share_max = min(max([100.0] + shares) * 1.05, SHARE_AXIS_MAX_PCT)
    others = [n for n in names if n != "floor"]
    for name in names:
        values = [(None if s is None else min(s, share_max), x) for s, x in _values(records, name)]
        if name == "floor":
            style = dict(marker="|", color="black", markersize=13, markeredgewidth=2.0, linestyle="none", zorder=2,
                         label="floor (BLAS, the GEMMs alone)")
        else:
            style = dict(marker=_MARKERS[others.index(name) % len(_MARKERS)], color=f"C{others.index(name)}",
                         markersize=6, linestyle="none", alpha=0.9, zorder=3, label=name)
        for ax, j in ((share_ax, 0), (speed_ax, 1)):
            if name == "numpy" and j == 1:
                continue  # the oracle's speed-up over itself is 1 by definition
            points = [(v[j], i) for i, v in enumerate(values) if v[j]]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, clip_on=ax is not share_ax, **style)  # points at the share axis's edge: whole
    share_ax.set_xlim(0, share_max)
    share_ax.axvline(100, color="black", linewidth=0.8)
    clipped = sum(s > share_max for s in shares)
    share_ax.set_title("share of the machine's peak, % (higher is better)"
                       + (f"\n{clipped} above {share_max:.0f} % drawn at the edge" if clipped else ""), fontsize=10)
    speed_ax.set_xscale("log")
    speed_ax.axvline(1.0, color="black", linewidth=0.8)
    speed_ax.set_title("speed-up over the NumPy oracle (log; higher is better)", fontsize=10)
    for ax in axes:
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_ylim(rows - 0.5, -0.5)  # first case on top
    share_ax.set_yticks(range(rows))
    share_ax.set_yticklabels([_label(r) for r in records], fontsize=7)
    handles, labels = share_ax.get_legend_handles_labels()
    # Fixed margins in inches, whatever the number of rows: title, legend, panel titles; tick labels.
    fig.subplots_adjust(left=2.0 / 14, right=0.985, bottom=0.45 / height, top=1 - 1.25 / height, wspace=0.04)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.5 / height))
    cpu = report["machine"]["cpu"]
    threads = report["settings"]["threads"]["blas"]
    peaks = "; ".join(f"{dtype} {d['gflops']:.0f} GFLOP/s ({d['library']}, n={d['size']})"
                      for dtype, d in (report.get("peak") or {}).get("dtypes", {}).items() if d["gflops"])
    fig.suptitle(f"fastrnn bench: {cpu['model']}, {threads} BLAS thread{'s' if threads != 1 else ''}"
                 + (f"\npeak: {peaks}" if peaks else ""), fontsize=10, y=1 - 0.06 / height, va="top")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
