"""Drawing a ``fastrnn bench`` report as a PNG (matplotlib, an optional extra: ``fastrnn[plot]``)."""

__all__ = ["plot", "require_matplotlib"]


def require_matplotlib():
    """Imports matplotlib (Agg) or raises ImportError saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 'fastrnn[plot]' (or pip install matplotlib)") from exc
    return plt


def plot(report, path):
    """Writes a PNG: per case, every implementation's speed-up over the oracle and its time / BLAS floor."""
    plt = require_matplotlib()
    records = report["cases"]
    all_names = []
    for r in records:
        for name in r["ratios"]:
            if name not in all_names:
                all_names.append(name)
    labels = [f"{r['cell']}{'_step' if r['kind'] == 'step' else ' model' if r['kind'] == 'model' else ''} "
              f"{r['size']} f{r['dtype'][5:]} {r['pass']}" for r in records]
    height = min(60.0, max(3.0, 0.12 * len(records) * max(1, len(all_names)) + 1.5))
    fig, axes = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    panels = ((axes[0], "speedup_vs_oracle", "speed-up over the NumPy oracle (higher is better)"),
              (axes[1], "time_over_floor", "time / BLAS floor (1 = only the GEMMs; lower is better)"))
    for ax, key, title in panels:
        # The oracle's speed-up over itself is 1 by definition: not drawn.
        names = [n for n in all_names if not (key == "speedup_vs_oracle" and n == "numpy")]
        bar = 0.8 / max(1, len(names))
        for k, name in enumerate(names):
            ys, xs = [], []
            for i, r in enumerate(records):
                v = r["ratios"].get(name, {}).get(key)
                if v:
                    ys.append(i + (k - (len(names) - 1) / 2) * bar)
                    xs.append(v)
            ax.barh(ys, xs, height=bar, label=name, color=f"C{all_names.index(name)}")
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(len(records)))
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=8)
    cpu = report["machine"]["cpu"]
    fig.suptitle(f"fastrnn bench: {cpu['model']}, BLAS threads {report['settings']['threads']['blas']}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
