"""What a training run leaves behind besides its checkpoint: a JSON log and a PNG learning curve.

The JSON log is rewritten (atomically: temporary file, then rename) after every epoch, so a run that
is stopped still has an up-to-date log. The learning curve needs matplotlib (the ``plot`` extra).
"""

import os

from .. import _output

__all__ = ["write_json", "require_matplotlib", "plot_learning_curve"]


def write_json(path, obj):
    """Writes ``obj`` as indented JSON to ``path`` (its folder created if needed): a temporary file in the
    same folder, then a rename."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _output.write_json(path, obj)


def require_matplotlib():
    """Imports matplotlib with a non-interactive backend, or raises ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("drawing the learning curve needs matplotlib: pip install 'fastrnn[plot]' "
                          "(or pip install matplotlib)") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def plot_learning_curve(history, path, title=""):
    """Draws the training loss per step and per epoch, and each validation metric per epoch, to ``path``.

    ``history`` is a trainer's history: ``{"loss": [per step], "epochs": [records], "metric": the headline
    metric, "metric_keys": the validation numbers in each record}``.
    """
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    epochs = history["epochs"]
    losses = history["loss"]
    metric = history.get("metric")
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if losses:
        steps_per_epoch = [r["steps"] for r in epochs]
        ax_loss.plot(range(1, len(losses) + 1), losses, color="0.75", lw=0.8, label="per step")
        ends, total = [], 0
        for n in steps_per_epoch:
            total += n
            ends.append(total)
        ax_loss.plot(ends, [r["train_loss"] for r in epochs], "o-", color="C0", label="epoch mean")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel(history.get("loss_name", "training loss"))
        ax_loss.set_title("training loss")
        ax_loss.legend()
        ax_loss.grid(alpha=0.3)
    numbers = [k for k in history.get("metric_keys", []) if epochs and isinstance(epochs[-1].get(k), (int, float))]
    for i, key in enumerate(sorted(numbers, key=lambda k: k != metric)):
        ax_metric.plot([r["epoch"] for r in epochs], [r[key] for r in epochs], "o-", color=f"C{i + 1}",
                       label=key.replace("_", " "))
    ax_metric.set_xlabel("epoch")
    ax_metric.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_metric.set_title("validation")
    if numbers:
        ax_metric.legend()
    ax_metric.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
