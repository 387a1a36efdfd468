"""The figures of results.md: training curves, per-class bars and confusion matrices, as PNGs.

    >>> fig = draw_curves([("seed's recipe", runs)], "Wide LeNet")     # runs: runs.Run objects
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


def mean_band(series):
    """(epochs, mean, sd) over runs of per-epoch values ``series`` [[value per epoch]], at the epochs all have
    (a value of None, an epoch not evaluated, leaves its epoch out)."""
    n = min(len(v) for v in series)
    epochs = [i + 1 for i in range(n) if all(v[i] is not None for v in series)]
    cols = [[v[e - 1] for v in series] for e in epochs]
    means = [sum(c) / len(c) for c in cols]
    sds = [math.sqrt(sum((x - m) ** 2 for x in c) / (len(c) - 1)) if len(c) > 1 else 0.0 for c, m in zip(cols, means)]
    return epochs, means, sds


def draw_curves(series, title):
    """Training loss and test accuracy per epoch of each (label, runs) of ``series``: the mean over the
    runs (seeds) as a line, ± one standard deviation as a band; the legend below both panels."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    for i, (label, runs) in enumerate(series):
        for ax, key in ((ax_loss, "train_loss"), (ax_acc, "test_accuracy")):
            ep, mean, sd = mean_band([[h.get(key) for h in r.history] for r in runs])
            ax.plot(ep, mean, "o-", color=f"C{i % 10}", ms=3, lw=1.5, label=label if ax is ax_loss else None)
            ax.fill_between(ep, [m - d for m, d in zip(mean, sd)], [m + d for m, d in zip(mean, sd)],
                            color=f"C{i % 10}", alpha=0.2, lw=0)
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.legend(loc="outside lower center", ncol=min(len(series), 3), fontsize=8, frameon=False)
    return fig


def draw_per_class(bars, title):
    """Grouped bars: ``bars`` is [(legend label, {class: accuracy % or None})]; a missing class draws 0."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.6), layout="constrained")
    width = 0.8 / max(len(bars), 1)
    for i, (name, per_class) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(CLASSES))]
        ax.bar(xs, [per_class.get(c) or 0 for c in CLASSES], width, label=name)
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    ax.grid(axis="y", alpha=0.3)
    if bars:
        fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
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
    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45)
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return fig


def draw_compute(points, title):
    """Test accuracy against training compute (left, PFLOP) and against minutes per run (right): each
    point a (network, label, pflop, minutes, machine, accuracy) of ``points``; a colour per network,
    on the right a marker per machine (times compare only within one machine).  Both x axes log."""
    plt = _pyplot()
    fig, (ax_flop, ax_time) = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    networks = list(dict.fromkeys(p[0] for p in points))
    machines = list(dict.fromkeys(p[4] for p in points if p[3] is not None))
    markers = "osD^v<>p*h"
    labels = {ax_flop: [], ax_time: []}
    for network, label, pflop, minutes, machine, acc in points:
        colour = f"C{networks.index(network) % 10}"
        ax_flop.plot(pflop, acc, "o", color=colour, ms=6)
        labels[ax_flop].append((pflop, acc, label))
        if minutes is not None:
            ax_time.plot(minutes, acc, markers[machines.index(machine) % len(markers)], color=colour, ms=6)
            labels[ax_time].append((minutes, acc, label))
    ax_flop.set(xscale="log", xlabel="training compute (PFLOP, log scale)", ylabel="test accuracy (%)",
                title="Accuracy against training compute")
    ax_time.set(xscale="log", xlabel="minutes per run (log scale)", ylabel="test accuracy (%)",
                title="Accuracy against time, marker = machine")
    for ax in (ax_flop, ax_time):
        ax.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], ls="", marker="o", color=f"C{i % 10}", label=n) for i, n in enumerate(networks)]
    handles += [plt.Line2D([], [], ls="", marker=markers[i % len(markers)], color="grey", label=m)
                for i, m in enumerate(machines)]
    fig.suptitle(title)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.canvas.draw()                            # the layout is final: data to pixels holds from here
    for ax, marks in labels.items():
        place_labels(ax, marks, fig.dpi / 72)
    return fig


# Where a point's label may go, in points from the point: (dx, dy, horizontal alignment), in order of
# preference: below right, above right, below left, above left, right, left.
LABEL_SPOTS = ((4, -9, "left"), (4, 3, "left"), (-4, -9, "right"), (-4, 3, "right"), (6, -3, "left"),
               (-6, -3, "right"))


def place_labels(ax, marks, px_per_pt, size=6):
    """Annotate each (x, y, text) of ``marks`` at the first of ``LABEL_SPOTS`` whose box (its size
    estimated from the text's length) overlaps no label placed before it and no point, else at the
    first spot."""
    where = [ax.transData.transform((x, y)) for x, y, _ in marks]
    dots = [(px - 4 * px_per_pt, py - 4 * px_per_pt, px + 4 * px_per_pt, py + 4 * px_per_pt) for px, py in where]
    placed = []

    def clear(box):
        return not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + dots)
    for (x, y, text), (px, py) in zip(marks, where):
        w, h = 0.6 * size * len(text) * px_per_pt, size * px_per_pt
        boxes = []
        for dx, dy, ha in LABEL_SPOTS:
            left = px + dx * px_per_pt - (w if ha == "right" else 0)
            bottom = py + dy * px_per_pt
            boxes.append(((left, bottom, left + w, bottom + h), dx, dy, ha))
        box, dx, dy, ha = next((b for b in boxes if clear(b[0])), boxes[0])
        placed.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=size, ha=ha)


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
