"""The figures of results.md: training curves, per-class bars and confusion matrices, as PNGs.

    >>> fig = draw_curves(runs, label=lambda r: r.model)     # runs: runs.Run objects
    >>> write_plots([("curves_large.png", lambda: fig)], Path("results"), dpi=100)

Each ``draw_*`` function returns a matplotlib figure (the Agg backend: no display is
needed); ``write_plots`` saves figures atomically and closes them.  ``report.py`` decides
which runs each figure shows and names them in the text beside it.
"""
import math

import atomic

CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw_curves(runs, label):
    """Loss (logged lines and per-epoch means) and test accuracy per epoch, one line per run."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        name = f"{label(r)} ({r.run_id[:15]})"
        steps = steps_per_epoch(r)
        if r.loss_lines:
            xs = [e - 1 + b / steps for e, b, _ in r.loss_lines]
            ax_loss.plot(xs, [v for _, _, v in r.loss_lines], color=color, alpha=0.35, lw=0.8)
        ep = [h.get("epoch") for h in r.history]
        mid = [e - 0.5 for e in ep]                       # an epoch's mean loss sits mid-epoch
        ax_loss.plot(mid, [h.get("train_loss") for h in r.history], "o-", color=color, ms=3, label=name)
        ax_acc.plot(ep, [h.get("test_accuracy") for h in r.history], "o-", color=color, ms=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss",
                title="Training loss (faint: every log interval; dots: epoch mean)")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def steps_per_epoch(r):
    """Mini-batches per epoch of run ``r``: from its dataset size and batch size, else its loss lines."""
    n, bs = r.dataset.get("train_images"), r.batch_size
    if isinstance(n, int) and isinstance(bs, int) and bs > 0:
        return math.ceil(n / bs)
    return max((b for _, b, _ in r.loss_lines), default=1)


def draw_per_class(bars, title="Per-class accuracy, best run of each model"):
    """Grouped bars: ``bars`` is [(legend label, {class: accuracy % or None})]; a missing class draws 0."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(len(bars), 1)
    for i, (name, per_class) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(CLASSES))]
        ax.bar(xs, [per_class.get(c) or 0 for c in CLASSES], width, label=name)
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    if bars:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def draw_confusion(confusion, title):
    """The (true, predicted) count matrix ``confusion``, shaded by the share of each true class."""
    import numpy as np
    plt = _pyplot()
    m = np.asarray(confusion, dtype=float)                           # (true, predicted) counts
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = m.shape[0]
    names = list(CLASSES) if n == len(CLASSES) else [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45)
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def write_plots(figures, plot_dir, dpi):
    """Draw and save each (file name, draw function) of ``figures`` into ``plot_dir``.

    PNGs without a software tag, so equal figures give equal files.
    """
    plt = _pyplot()
    for name, draw in figures:
        fig = draw()
        try:
            atomic.save_figure(plot_dir / name, fig, flag="--plots", dpi=dpi, metadata={"Software": None})
        finally:
            plt.close(fig)
