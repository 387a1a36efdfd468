"""Write results.md and its plots from the run logs: every figure is read from a run, none typed.

    python report.py                                   # runs/*/run_log.json -> results.md, results/*.png
    python report.py --runs runs --output /tmp/rep/results.md

Reads every ``<runs>/*/run_log.json``.  Only runs whose status is ``complete`` feed
the tables; the others are listed in the run index.  Every table names the run
ids it comes from.  With a fixed learning rate, epoch k of a longer run is the
same computation as a k-epoch run with the same seed, so a missing k-epoch
column may be filled from a longer run's history ("run-id @ epoch k").  The
output depends only on the logs (no clock), so running it twice gives the same
file.  A log that cannot be read is skipped with a warning on stderr.
"""
import argparse
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import atomic
import plots
import recipes
from errors import UserError
from runs import (DEVICE_ORDER, best, choose_setup, config_groups, is_number, load_runs, representative,
                  resolve)

CLASSES = plots.CLASSES
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}
NOT_MEASURED = "Not measured yet"
# What each model section says about its network (the recipes' one-line summary otherwise).
DESCRIPTIONS = {
    "small": "The PyTorch tutorial's LeNet (conv 3→6→16, fc 400→120→84→10).",
    "large": "The same LeNet, wider (conv 3→64→128, fc 3200→512→256→10).",
    "resnet18": "ResNet-18 adapted for CIFAR-10 (3x3 conv1, no max-pool, 10-class fc) with OneCycleLR "
                "and augmentation.",
}
LARGE_LAYERS = [["conv1", "3→64 (5x5)"], ["conv2", "64→128 (5x5)"], ["fc1", "3200→512"],
                ["fc2", "512→256"], ["fc3", "256→10"]]


# ---------------------------------------------------------------- the recipes

def model_order(runs=()):
    """The recipes' models in registry order, then any other model the runs name."""
    known = list(recipes.RECIPES)
    return known + sorted({r.model for r in runs} - set(known))


def model_name(model):
    return recipes.recipe(model).name


def description(model):
    """What a model section says about its network."""
    summary = recipes.recipe(model).summary
    return DESCRIPTIONS.get(model) or summary[:1].upper() + summary[1:] + "."


def first_command():
    """The command of the first recipe: what fills an empty document first."""
    return command(next(iter(recipes.RECIPES)))


def command(model, epochs=None, **flags):
    """The command line that trains ``model`` with ``flags`` (those at its recipe's defaults left out).

    ``epochs``, when given, is always written, so a sentence about a 20-epoch run shows its 20.
    """
    recipe = recipes.recipe(model)
    text, head = recipe.command(**flags), f"python {recipe.script}"
    return text if epochs is None else f"{head} --epochs {epochs}{text[len(head):]}"


@dataclass(frozen=True)
class Category:
    """One of the seed's accuracy targets and the runs that count for it."""

    recipe: recipes.Recipe
    target: recipes.Target

    @property
    def name(self):
        return self.target.name

    @property
    def features(self):
        return self.target.features

    @property
    def command(self):
        return command(self.recipe.model, self.target.epochs, **self.target.flags)

    def holds(self, run):
        """``run`` trains this model with the target's flags (any length)."""
        defaults = recipes.Config()
        return run.model == self.recipe.model and all(
            run.cfg.get(k, getattr(defaults, k, None)) == v for k, v in self.target.flags.items())


def categories():
    return [Category(r, t) for r, t in recipes.targets()]


def is_large(aug, onecycle):
    return lambda r: r.model == "large" and r.augment == aug and r.onecycle == onecycle


# ---------------------------------------------------------------- formatting

def pct(v):
    return "—" if v is None else f"{v:.2f}%"


def pc(v):
    return "—" if v is None else f"{v:.1f}%"


def secs(v):
    return "—" if v is None else f"{v:.2f}s"


def loss(v):
    return "—" if v is None else f"{v:.3f}"


def delta(v, bold_from=10.0):
    """A signed difference in percentage points; large gains in bold as in the per-class tables."""
    if v is None:
        return "—"
    text = f"{round(v, 1) + 0.0:+.1f}"
    return f"**{text}**" if v >= bold_from else text


def params_text(n):
    return f"{n:,}" if isinstance(n, int) else "—"


def sha_text(v):
    return f"`{v[:12]}…`" if isinstance(v, str) and v else "—"


def table(headers, rows):
    """A markdown table; ``|`` and newlines in cells are escaped."""
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("-" * (len(cell(h)) + 2) for h in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def not_measured(*commands, sep=" and "):
    """'*Not measured yet.* Run `cmd` ..., then `python report.py`.'"""
    cmds = sep.join(f"`{c}`" for c in commands)
    return f"*{NOT_MEASURED}.* Run {cmds}, then `python report.py`."


def config_label(run, chips):
    """'CPU, 2 Epochs, augmentation, OneCycleLR' with non-default settings added."""
    parts = [DEVICE_NAMES.get(run.device, run.device), f"{run.epochs} Epochs"]
    if run.augment:
        parts.append("augmentation")
    if run.onecycle:
        parts.append("OneCycleLR")
    if run.precision != "fp32":
        parts.append(run.precision)
    if run.device == "cpu" and run.cfg.get("onednn") is False:
        parts.append("oneDNN off")
    if run.device == "cpu" and run.cfg.get("threads"):
        parts.append(f"{run.cfg['threads']} threads")
    defaults = recipes.config_for(run.model)
    default_batch = defaults.batch_size if run.model in recipes.RECIPES else None
    if run.batch_size is not None and run.batch_size != default_batch:
        parts.append(f"batch {run.batch_size}")
    if run.seed is not None and run.seed != recipes.DEFAULT_SEED:
        parts.append(f"seed {run.seed}")
    lr_key = "max_lr" if run.onecycle else "lr"
    if run.cfg.get(lr_key) not in (None, getattr(defaults, lr_key)):
        parts.append(f"{lr_key.replace('_', ' ')} {run.cfg[lr_key]}")
    if len(chips) > 1:
        parts.append(run.chip)
    return ", ".join(parts)


def class_rows_sorted(per_class):
    """(class, accuracy) best first; classes in their usual order among equals."""
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted(per_class.items(), key=lambda kv: (-kv[1], order.get(kv[0], 99), kv[0]))


def class_names(*per_classes):
    names = [c for c in CLASSES if any(c in p for p in per_classes)]
    extra = sorted({c for p in per_classes for c in p} - set(names))
    return names + extra


def per_class_table(per_class):
    """Class and accuracy, best first."""
    return table(["Class", "Accuracy"], [[c, pc(v)] for c, v in class_rows_sorted(per_class)])


def per_class_compare(columns, base=0, other=-1, delta_header=None):
    """Per-class table: one column per (label, per_class), Δ = column[other] − column[base]."""
    pcs = [p for _, p in columns]
    rows = []
    for c in class_names(*pcs):
        row = [c] + [pc(p.get(c)) for p in pcs]
        if delta_header:
            a, b = pcs[base].get(c), pcs[other].get(c)
            row.append(delta(b - a) if a is not None and b is not None else "—")
        rows.append(row)
    headers = ["Class"] + [label for label, _ in columns] + ([delta_header] if delta_header else [])
    return table(headers, rows)


def extremes(base, new):
    """'largest gain: dog (+21.7); largest drop: horse (-6.9)' from two per-class dicts."""
    diffs = sorted(((new[c] - base[c], c) for c in class_names(base, new) if c in base and c in new),
                   key=lambda x: (-x[0], x[1]))
    if not diffs:
        return "no classes to compare"
    parts = [f"{sum(d > 0 for d, _ in diffs)} of {len(diffs)} classes improved"]
    if diffs[0][0] > 0:
        parts.append(f"largest gain: {diffs[0][1]} ({delta(diffs[0][0], math.inf)})")
    if diffs[-1][0] < 0:
        parts.append(f"largest drop: {diffs[-1][1]} ({delta(diffs[-1][0], math.inf)})")
    return "; ".join(parts)


def metric_rows(cells):
    """Time, accuracy, final loss and the run of each cell (None: not measured)."""
    return [["**Time**"] + [secs(c.time) if c else "not measured" for c in cells],
            ["**Overall Accuracy**"] + [pct(c.accuracy) if c else "not measured" for c in cells],
            ["**Final Loss**"] + [loss(c.final_loss) if c else "not measured" for c in cells],
            ["Run"] + [c.ref if c else "—" for c in cells]]


def history_note():
    return ("With a fixed learning rate, epoch k of a longer run with the same seed is the same "
            "computation as a k-epoch run, so a cell cited as \"run @ epoch k\" is read from that "
            "run's per-epoch history.")


def scalars(results, skip=()):
    """[key, value] rows for the plain values of a results dict; floats to 4 significant digits."""
    rows = []
    for k, v in sorted(results.items()):
        if k in skip or not isinstance(v, (int, float, str, bool)):
            continue
        rows.append([k, f"{v:.4g}" if isinstance(v, float) else v])
    return rows


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# ---------------------------------------------------------------- what every section reads

@dataclass(frozen=True)
class Block:
    """One heading of results.md and the text under it."""
    level: int
    heading: str
    body: str


def block(level, heading, *parts):
    return Block(level, heading, "\n\n".join(p for p in parts if p))


@dataclass
class Context:
    """The runs and where the document and its plots go."""

    runs: list                  # every runs.Run loaded
    out_dir: Path               # the folder of results.md: links are relative to it
    plot_dir: Path
    runs_label: str = "runs"    # the runs folder as the document names it
    draw_plots: bool = True

    @cached_property
    def train(self):
        return [r for r in self.runs if r.kind == "train"]

    @cached_property
    def done(self):
        return [r for r in self.train if r.complete]

    @cached_property
    def bench(self):
        return [r for r in self.runs if r.kind == "benchmark"]

    @cached_property
    def chips(self):
        return sorted({r.chip for r in self.done})

    def link(self, path):
        return Path(os.path.relpath(path, self.out_dir)).as_posix()

    def label(self, run):
        return config_label(run, self.chips)

    def model_runs(self, model):
        return [r for r in self.done if r.model == model]

    def model_heading(self, model):
        params = sorted({r.params for r in self.train if r.model == model and isinstance(r.params, int)})
        name = model_name(model)
        return f"{name} ({params_text(params[-1])} params)" if params else name


def category_best(ctx):
    """[(category, its most accurate complete run or None)] in the recipes' order."""
    return [(cat, best([r for r in ctx.done if cat.holds(r)])) for cat in categories()]


def progression_cells(ctx):
    """Cells of the wide LeNet's 2/10/20-epoch columns (fixed rate, no augmentation), one setup."""
    fixed = [r for r in ctx.done if is_large(False, False)(r)]
    return choose_setup(fixed, [(lambda r: True, k) for k in (2, 10, 20)])


AUGMENTATION_COLUMNS = [("No Aug (20 epochs)", (False, False), 20),
                        ("With Aug (20 epochs)", (True, False), 20),
                        ("With Aug (40 epochs)", (True, False), 40)]


def augmentation_cells(ctx):
    """Cells of the augmentation table's columns (``AUGMENTATION_COLUMNS``), one setup."""
    return choose_setup(ctx.done, [(is_large(*flags), k) for _, flags, k in AUGMENTATION_COLUMNS])


# ---------------------------------------------------------------- the sections

def header(ctx):
    machines = {}
    for r in ctx.done:
        machines.setdefault(r.machine, []).append(r)
    if machines:
        parts = []
        for (chip, os_name, arch, cpus), rs in sorted(machines.items()):
            gpus = sorted({r.hw.get("gpu") for r in rs if r.hw.get("gpu")})
            torch_v = sorted({str(r.hw.get("torch")) for r in rs if r.hw.get("torch")})
            devices = sorted({r.device for r in rs}, key=lambda d: (DEVICE_ORDER.get(d, 9), d))
            parts.append(f"{chip} ({os_name} {arch}, {cpus} CPUs"
                         + (f", GPU: {', '.join(gpus)}" if gpus else "") + ")"
                         + (f", PyTorch {', '.join(torch_v)}" if torch_v else "")
                         + f"; devices used: {', '.join(devices)}")
        hw = "> **Hardware:** " + "; ".join(parts) + "."
    else:
        hw = "> **Hardware:** no complete runs yet."
    pending = [r for r in ctx.train if not r.complete]
    note = (f"Every figure below is read from `{ctx.runs_label}/*/run_log.json` by "
            f"`python report.py`; each table names the run ids it comes from, and the "
            f"[Run Index](#run-index) lists every run. Only complete runs are used.")
    if pending:
        note += (f" {len(pending)} run(s) not complete (running, interrupted or failed) "
                 "are listed in the index only.")
    return hw + "\n\n" + note


def dataset_id(run):
    return run.dataset.get("id", "unknown")


def data_section(ctx):
    by_id = {}
    for r in ctx.train:
        by_id.setdefault(str(dataset_id(r)), []).append(r)
    if not by_id:
        return [block(2, "Data", not_measured(first_command()))]
    rows, lossy = [], False
    for ds_id, rs in sorted(by_id.items()):
        official = rs[-1].dataset.get("official")
        lossy |= official is False
        kind = ("official CIFAR-10 python release" if official is True
                else "offline lossy JPEG re-encoding (not the official files)" if official is False
                else "unknown (not recorded)")
        folders = sorted({str(r.dataset.get("folder")) for r in rs if r.dataset.get("folder")})
        sizes = sorted({f"{r.dataset.get('train_images', '?')} / {r.dataset.get('test_images', '?')}"
                        for r in rs})
        rows.append([f"`{ds_id}`", kind, ", ".join(folders) or "—", ", ".join(sizes), len(rs)])
    text = table(["Dataset id", "Files", "Folder", "Train / test images", "Runs"], rows)
    text += ("\n\nThe dataset id is a fingerprint of the files' md5 sums, recorded in each run log; "
             "the [Run Index](#run-index) gives the dataset of every run.")
    if lossy:
        text += ("\n\nRuns on the offline lossy JPEG re-encoding did not see the official files: "
                 "the images passed through JPEG compression, so their accuracy may read a little "
                 "below what the official files give.")
    return [block(2, "Data", text)]


def run_bullets(r):
    return "\n".join([f"- **Overall accuracy:** {pct(r.accuracy)}",
                      f"- **Training time:** {secs(r.at().time)}",
                      f"- **Final loss:** {loss(r.at().final_loss)}",
                      f"- **Device:** {r.device} ({r.precision})",
                      f"- **Run:** `{r.run_id}`"])


def model_section(ctx, model):
    """One row per configuration of ``model``, then each configuration's per-class table."""
    text = description(model)
    if model == "large":
        text += "\n\n" + table(["Layer", "Config"], LARGE_LAYERS)
    runs = ctx.model_runs(model)
    if not runs:
        return [block(2, ctx.model_heading(model), text, not_measured(command(model)))]
    heads, groups = config_groups(runs)
    summary = table(
        ["Configuration", "Device", "Precision", "Epochs", "Accuracy", "Time", "Final loss", "Run",
         "Runs of this config"],
        [[ctx.label(r), r.device, r.precision, r.epochs, pct(r.accuracy), secs(r.at().time),
          loss(r.at().final_loss), f"`{r.run_id}`", len(groups[r.recipe])] for r in heads])
    blocks = [block(2, ctx.model_heading(model), text,
                    f"Batch size {', '.join(sorted({str(r.batch_size) for r in runs}))}. One row per "
                    "configuration, from its fastest complete run (identical runs give identical numbers).",
                    summary)]
    seen = {}
    for r in heads:
        heading = ctx.label(r)
        seen[heading] = seen.get(heading, 0) + 1
        if seen[heading] > 1:
            heading += f" ({r.run_id})"
        blocks.append(block(3, heading, run_bullets(r), per_class_table(r.at().per_class)))
    return blocks


def latest_benchmarks(ctx, with_devices):
    """The newest usable benchmark record per (benchmark, chip, model, batch size)."""
    heads = {}
    for r in ctx.bench:
        if r.status in ("running", "interrupted", "failed") or not r.results:
            continue
        if isinstance(r.results.get("devices"), dict) != with_devices:
            continue
        key = (str(r.rec.get("benchmark", "")), r.chip, str(r.rec.get("model")),
               str(r.rec.get("batch_size")))
        if key not in heads or r.run_id > heads[key].run_id:
            heads[key] = r
    return [heads[k] for k in sorted(heads)]


def benchmark_tables(ctx):
    """Training throughput per device from benchmark records (``results.devices``)."""
    parts = []
    for r in latest_benchmarks(ctx, with_devices=True):
        title = (f"**Throughput benchmark:** model {r.rec.get('model', '—')}, batch size "
                 f"{r.rec.get('batch_size', '—')}, {r.chip} (run `{r.run_id}`). Speedup: images/s "
                 "divided by the CPU's.")
        entries = {d: v for d, v in r.results["devices"].items() if isinstance(v, dict)}
        cpu_rate = (entries.get("cpu") or {}).get("images_per_s")
        body = []
        for d in sorted(entries, key=lambda d: (DEVICE_ORDER.get(d, 9), d)):
            rate = entries[d].get("images_per_s")
            if is_number(rate) and is_number(cpu_rate) and cpu_rate > 0:
                speed = rate / cpu_rate
            else:
                speed = entries[d].get("speedup_vs_cpu")
            body.append([DEVICE_NAMES.get(d, d), f"{rate:,.1f}" if is_number(rate) else "—",
                         f"{speed:.1f}x" if is_number(speed) else "—"])
        skipped = r.results.get("skipped")
        if isinstance(skipped, dict):
            for d in sorted(skipped, key=lambda d: (DEVICE_ORDER.get(d, 9), d)):
                body.append([DEVICE_NAMES.get(d, d), f"skipped ({skipped[d]})", "—"])
        text = title + "\n\n" + table(["Device", "Images/s", "Speedup vs CPU"], body)
        rows = scalars(r.results, skip=("devices", "skipped"))
        if rows:
            text += "\n\n" + table(["Result", "Value"], rows)
        parts.append(text)
    return parts


def device_comparison_section(ctx):
    fixed = [r for r in ctx.done if is_large(False, False)(r)]
    rows = []
    for setup in sorted({r.setup[:4] for r in fixed}):
        cell = resolve([r for r in fixed if r.setup[:4] == setup], 2)
        if cell:
            rows.append(cell)
    parts = ["Large LeNet-style CNN, fixed learning rate, no augmentation. Speedup is the CPU "
             "time divided by the device's time on the same machine (chip)."]
    if rows:
        body = []
        for c in rows:
            r = c.run
            cpu = [x for x in rows if x.run.device == "cpu" and x.run.chip == r.chip]
            base = min(cpu, key=lambda x: (x.run.precision != "fp32", x.run.precision)) if cpu else None
            if base is None or not base.time or c.time is None:
                speed = "—"
            elif base is c:
                speed = "1.0x (baseline)"
            else:
                s = base.time / c.time
                speed = f"**{s:.1f}x faster**" if s >= 1 else f"{s:.2f}x (slower)"
            label = DEVICE_NAMES.get(r.device, r.device) + (f" ({r.precision})" if r.precision != "fp32" else "")
            if len(ctx.chips) > 1:
                label += f", {r.chip}"
            body.append([label, secs(c.time), pct(c.accuracy), speed, r.load, c.ref])
        parts.append(table(["Device", "Time", "Accuracy", "Speedup", "Load avg (start → end)", "Run"],
                           body))
        parts.append("Load avg is the machine's 1-minute load average logged at the start and the end "
                     "of the run: a value above the CPU count means the timing shared the machine.")
        if any(c.derived for c in rows):
            parts.append(history_note())
        if not any(c.run.device != "cpu" for c in rows):
            parts.append(f"No accelerator run yet: run `{command('large', 2, device='cuda')}` "
                         "(or `--device mps`) on a machine that has one, then `python report.py`.")
        if not any(c.run.device == "cpu" for c in rows):
            parts.append(f"No CPU baseline yet: run `{command('large', 2, device='cpu')}`.")
    else:
        parts.append(not_measured(command("large", 2, device="cpu"), command("large", 2, device="cuda")))
    parts += benchmark_tables(ctx)
    return [block(3, "Device Comparison (2 Epochs)", *parts)]


def progression_section(ctx):
    cells = progression_cells(ctx)
    fill = command("large", 20)
    parts = ["Large LeNet-style CNN, fixed learning rate, no augmentation."]
    if any(cells):
        r0 = next(c for c in cells if c).run
        parts[0] += (f" Device {r0.device} ({r0.precision}), batch size {r0.batch_size}, "
                     f"seed {r0.seed}" + (f", {r0.chip}" if len(ctx.chips) > 1 else "") + ".")
        parts.append(table(["Metric"] + [f"{k} Epochs" for k in (2, 10, 20)], metric_rows(cells)))
        if any(c and c.derived for c in cells):
            parts.append(history_note())
        if not all(cells):
            parts.append(not_measured(fill))
    else:
        parts.append(not_measured(fill))
    return [block(3, "Training Progression", *parts)]


def per_class_by_epoch_section(ctx):
    by_epoch = [(k, c) for k, c in zip((2, 10, 20), progression_cells(ctx)) if k in (10, 20)]
    if all(c for _, c in by_epoch):
        text = per_class_compare([(f"{k} Epochs", c.per_class) for k, c in by_epoch])
        text += "\n\nRuns: " + ", ".join(f"{k} epochs: {c.ref}" for k, c in by_epoch) + "."
    else:
        text = not_measured(command("large", 20))
    return [block(3, "Per-Class Accuracy by Epoch", text)]


def reproducibility_section(ctx):
    groups = {}
    for r in ctx.done:
        groups.setdefault(r.recipe, []).append(r)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return [block(2, "Reproducibility",
                      "Two runs with the same configuration and seed on the same device and machine "
                      "should log the same losses and end with bit-identical weights (on a CPU).",
                      f"*{NOT_MEASURED}.* Run `{command('large', 2)}` twice on the same "
                      "machine (`--device cpu` for bit-identical weights), then `python report.py`.")]
    blocks = [block(2, "Reproducibility",
                    "Runs with the same configuration (model, epochs, batch size, augmentation, schedule, "
                    "learning rates, weight decay, seed, precision; on a CPU also its threads and "
                    "convolution kernels) on the same device and machine. "
                    "Match is ✓ when every run logged exactly the same value.")]
    order = model_order()
    keys = sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 9,
                                         groups[k][0].setup, k[1:], groups[k][0].run_id))
    for key in keys:
        rs = sorted(groups[key], key=lambda r: r.run_id)
        first = rs[0]
        blocks.append(block(3, f"{model_name(first.model)}, {ctx.label(first)}, seed {first.seed}",
                            *repro_table(rs)))
    return blocks


def repro_table(rs):
    """The compared values of runs ``rs`` of one recipe, the verdict and Run 1's per-class table."""
    lines = rs[0].loss_lines
    points = []
    if lines:
        points.append(lines[0][:2])
        ep1 = [x for x in lines if x[0] == 1]
        if ep1 and ep1[-1][:2] not in points:
            points.append(ep1[-1][:2])
        if lines[-1][:2] not in points:
            points.append(lines[-1][:2])
    rows = []

    def add_row(name, values, fmt, exact_fmt=None):
        known = [v for v in values if v is not None]
        same = len(known) == len(values) and all(v == known[0] for v in known)
        shown = [fmt(v) if v is not None else "—" for v in values]
        if not same and exact_fmt and len(set(shown)) < len(shown):
            shown = [exact_fmt(v) if v is not None else "—" for v in values]
        rows.append([name] + shown + ["✓" if same else "✗"])

    for ep, b in points:
        vals = [next((x[2] for x in r.loss_lines if x[:2] == (ep, b)), None) for r in rs]
        add_row(f"Loss [{ep}, {b}]", vals, lambda v: f"{v:.3f}", lambda v: f"{v:.6f}")
    add_row("**Overall Accuracy**", [r.accuracy for r in rs], pct)
    add_row("Final weights sha256", [r.results.get("weights_sha256") for r in rs],
            lambda v: f"`{v[:12]}…`")
    matches = [row[-1] == "✓" for row in rows]
    headers = ["Metric"] + [f"Run {i}" for i in range(1, len(rs) + 1)] + ["Match"]
    runs_line = "Runs: " + ", ".join(f"Run {i} = `{r.run_id}`" for i, r in enumerate(rs, 1)) + "."
    if all(matches):
        verdict = (f"**Result:** all {len(rows)} compared values are identical: the runs reproduce "
                   "bit for bit.")
    else:
        diff = [row[0].strip("*") for row in rows if row[-1] == "✗"]
        verdict = f"**Result:** the runs differ in {', '.join(diff)}."
    return [table(headers, rows), runs_line, verdict,
            f"Per-class accuracy of Run 1 (`{rs[0].run_id}`):", per_class_table(rs[0].at().per_class)]


def resumed_section(ctx):
    """Runs interrupted and resumed, against an uninterrupted run of the same computation."""
    resumed = [r for r in ctx.done if r.rec.get("resumes")]
    if not resumed:
        return []
    blocks = []
    for run in sorted(resumed, key=lambda r: r.run_id):
        k = run.epochs
        same = run.recipe[:1] + run.recipe[2:]          # the recipe but for its length
        refs = [r for r in ctx.done if not r.rec.get("resumes") and r.recipe[:1] + r.recipe[2:] == same
                and (r.epochs == k or (not r.onecycle and r.epochs > k and len(r.history) >= k))]
        first = run.rec["resumes"][0]
        after, before = first.get("after_epoch", 0), first.get("epochs_before")
        if before is None:                              # logs older than epochs_before
            how = f"stopped after epoch {after} of {k}, resumed"
        elif before == after < k:
            how = f"extended from {before} to {k} epochs"
        else:
            how = f"interrupted after epoch {after} of {k}, resumed"
        title = f"`{run.run_id}`: {how} ({model_name(run.model)}, {ctx.label(run)})"
        if not refs:
            blocks.append((title, "No uninterrupted run of the same computation to compare with yet."))
            continue
        ref = representative(refs)
        h = ref.history[k - 1]
        ref_sha = h.get("weights_sha256") or (ref.results.get("weights_sha256") if ref.epochs == k else None)
        ref_lines = [x for x in ref.loss_lines if after < x[0] <= k]
        run_lines = [x for x in run.loss_lines if x[0] > after]
        rows = [
            ["Loss lines after the resume", f"{len(run_lines)} lines", f"{len(ref_lines)} lines",
             "✓" if run_lines and run_lines == ref_lines else "✗"],
            [f"Accuracy after epoch {k}", pct(run.accuracy), pct(h.get("test_accuracy")),
             "✓" if run.accuracy == h.get("test_accuracy") else "✗"],
            [f"Weights sha256 after epoch {k}", sha_text(run.results.get("weights_sha256")), sha_text(ref_sha),
             "✓" if ref_sha and run.results.get("weights_sha256") == ref_sha else "✗"],
        ]
        where = f"`{ref.run_id}`" + (f" @ epoch {k}" if ref.epochs != k else "")
        blocks.append((title, table(["Metric", "Resumed run", f"Uninterrupted {where}", "Match"], rows)))
    return [block(3, "Interrupted and Resumed",
                  "Runs continued with `--resume` (after a signal stopped them, or to extend them to "
                  "more epochs) against an uninterrupted run of the same computation (with a fixed "
                  "learning rate, epoch k of a longer run is the same computation as a k-epoch run).",
                  *[f"**{t}**\n\n{body}" for t, body in blocks])]


def augmentation_section(ctx):
    cells = augmentation_cells(ctx)
    intro = ("Large LeNet-style CNN, fixed learning rate, with RandomCrop(32, padding=4) and "
             "RandomHorizontalFlip against none.")
    cmds = [command("large", 20), command("large", 40, augment=True), command("large", 40, augment=True)]
    if not any(cells):
        return [block(2, "Data Augmentation", intro, not_measured(cmds[0], cmds[1]))]
    r0 = next(c for c in cells if c).run
    intro += f" Device {r0.device} ({r0.precision}), seed {r0.seed}."
    parts = [intro, table(["Metric"] + [label for label, _, _ in AUGMENTATION_COLUMNS], metric_rows(cells))]
    if any(c and c.derived for c in cells):
        parts.append(history_note())
    missing = sorted({cmds[i] for i, c in enumerate(cells) if c is None})
    if missing:
        parts.append(not_measured(*missing))
    blocks = [block(2, "Data Augmentation", *parts)]
    if cells[0] and cells[2]:
        cols = [("No Aug (20 ep)", cells[0].per_class)]
        if cells[1]:
            cols.append(("Aug (20 ep)", cells[1].per_class))
        cols.append(("Aug (40 ep)", cells[2].per_class))
        text = per_class_compare(cols, delta_header="Δ (40 vs No Aug)")
        gain = cells[2].accuracy - cells[0].accuracy
        text += (f"\n\n**Key findings:** augmentation with 40 epochs: {pct(cells[2].accuracy)} against "
                 f"{pct(cells[0].accuracy)} without ({delta(gain, math.inf)} points); "
                 f"{extremes(cells[0].per_class, cells[2].per_class)}.")
        blocks.append(block(3, "Per-Class Accuracy Comparison", text))
    return blocks


def scheduling_section(ctx):
    fixed, cyc = choose_setup(ctx.done, [(is_large(True, False), 40), (is_large(True, True), 40)])
    heading = "Learning Rate Scheduling (40 Epochs)"
    intro = "Large LeNet-style CNN with augmentation: fixed learning rate against OneCycleLR."
    if cyc:
        c = cyc.run.cfg
        intro = ("Large LeNet-style CNN with augmentation: fixed learning rate "
                 f"({fixed.run.cfg.get('lr') if fixed else '—'}) against OneCycleLR "
                 f"(max_lr={c.get('max_lr')}, cosine annealing, 30% warm-up) + weight decay "
                 f"({c.get('weight_decay')}).")
    if not fixed or not cyc:
        missing = ([] if fixed else [command("large", 40, augment=True)]) + \
                  ([] if cyc else [command("large", 40, augment=True, onecycle=True)])
        parts = [intro]
        if fixed or cyc:
            c = fixed or cyc
            parts.append(table(["Metric", "Fixed LR", "OneCycleLR"],
                               [["**Overall Accuracy**"] + [pct(c.accuracy) if c is x else "not measured"
                                                            for x in (fixed, cyc)],
                                ["Run"] + [c.ref if c is x else "—" for x in (fixed, cyc)]]))
        parts.append(not_measured(*missing))
        return [block(2, heading, *parts)]
    loss_change = (f"{round(100 * (cyc.final_loss - fixed.final_loss) / fixed.final_loss) + 0:+d}%"
                   if fixed.final_loss and cyc.final_loss is not None else "—")
    time_change = (f"{cyc.time / fixed.time:.2f}x" if fixed.time and cyc.time is not None else "—")
    rows = [["**Overall Accuracy**", pct(fixed.accuracy), pct(cyc.accuracy),
             delta(cyc.accuracy - fixed.accuracy, math.inf) + " points"],
            ["**Final Loss**", loss(fixed.final_loss), loss(cyc.final_loss), loss_change],
            ["**Time**", secs(fixed.time), secs(cyc.time), time_change],
            ["Run", fixed.ref, cyc.ref, ""]]
    parts = [intro, table(["Metric", "Fixed LR", "OneCycleLR", "Change"], rows)]
    if fixed.derived:
        parts.append(history_note())
    text = per_class_compare([("Fixed LR", fixed.per_class), ("OneCycleLR", cyc.per_class)],
                             delta_header="Δ")
    text += f"\n\n**Key findings:** {extremes(fixed.per_class, cyc.per_class)}."
    return [block(2, heading, *parts),
            block(3, "Per-Class Accuracy Comparison (Fixed LR vs OneCycleLR)", text)]


def targets_section(ctx):
    rows, missing = [], []
    for cat, r in category_best(ctx):
        if r is None:
            status, run = "not measured", "—"
            missing.append(cat.command)
        else:
            ok = r.accuracy >= cat.target.accuracy
            status = ("✓ Achieved" if ok else "✗ Not yet") + f" ({pct(r.accuracy)}, {r.epochs} epochs)"
            run = f"`{r.run_id}`"
        rows.append([cat.name, f"≥{cat.target.accuracy:g}%", status, run])
    parts = ["Status from the most accurate complete run of each category.",
             table(["Model", "Target Accuracy", "Status", "Run"], rows)]
    if missing:
        parts.append(not_measured(*missing, sep=" / "))
    return [block(2, "Acceptable Accuracy Targets", *parts)]


def epochs_section(ctx):
    heading = "Epoch Training and Diminishing Returns"
    aug40 = augmentation_cells(ctx)[2]
    entries = [(str(k), c) for k, c in zip((2, 10, 20), progression_cells(ctx)) if c]
    if aug40:
        entries.append(("40 (aug)", aug40))
    if not entries:
        return [block(2, heading, not_measured(command("large", 20)))]
    rows, prev = [], None
    for label, c in entries:
        rows.append([label, pct(c.accuracy), "-" if prev is None else delta(c.accuracy - prev, math.inf),
                     c.ref])
        prev = c.accuracy
    return [block(2, heading, "Large LeNet-style CNN: accuracy after more epochs (cells of the tables above).",
                  table(["Epochs", "Accuracy", "Δ from Previous", "Run"], rows))]


def deep_model_section(ctx, model):
    """A deeper network: its most accurate run, per-class, against the wide LeNet, every configuration."""
    runs = ctx.model_runs(model)
    heading = ctx.model_heading(model)
    name = model_name(model)
    intro = description(model)
    target_epochs = max((t.epochs for t in recipes.recipe(model).targets),
                        default=recipes.recipe(model).config().epochs)
    if not runs:
        return [block(2, heading, intro, not_measured(command(model, target_epochs)))]
    r = best(runs)
    c = r.at()
    rows = [["**Overall Accuracy**", f"**{pct(r.accuracy)}**"], ["**Training Time**", secs(c.time)],
            ["**Final Loss**", loss(c.final_loss)], ["**Device**", f"{r.device} ({r.precision})"],
            ["**Epochs**", r.epochs], ["**Seed**", r.seed], ["Run", f"`{r.run_id}`"]]
    parts = [intro, "Most accurate complete run:", table(["Metric", "Value"], rows)]
    longest = max(x.epochs for x in runs)
    if longest < target_epochs:
        parts.append(f"Only short runs so far (at most {longest} epochs): the "
                     f"{target_epochs}-epoch recipe has not been measured yet: run "
                     f"`{command(model, target_epochs)}`, then `python report.py`.")
    blocks = [block(2, heading, *parts), block(3, "Per-Class Accuracy", per_class_table(c.per_class))]
    wide = best([x for x in ctx.done if is_large(True, True)(x)])
    if wide:
        text = per_class_compare([(f"Large CNN ({pct(wide.accuracy)})", wide.at().per_class),
                                  (f"{name} ({pct(r.accuracy)})", c.per_class)], delta_header="Δ")
        text += (f"\n\nRuns: Large LeNet-style CNN + OneCycleLR `{wide.run_id}` ({wide.epochs} epochs), "
                 f"{name} `{r.run_id}` ({r.epochs} epochs). **Key findings:** "
                 f"{extremes(wide.at().per_class, c.per_class)}.")
    else:
        text = not_measured(command("large", 40, augment=True, onecycle=True))
    blocks.append(block(3, "Comparison vs Large LeNet-style CNN + OneCycleLR", text))
    heads, groups = config_groups(runs)
    blocks.append(block(3, f"All {name} Configurations", table(
        ["Configuration", "Epochs", "Accuracy", "Time", "Final loss", "Run", "Runs of this config"],
        [[ctx.label(x), x.epochs, pct(x.accuracy), secs(x.at().time), loss(x.at().final_loss),
          f"`{x.run_id}`", len(groups[x.recipe])] for x in heads])))
    return blocks


def architectures_section(ctx):
    rows, missing = [], []
    for cat, r in category_best(ctx):
        if r is None:
            rows.append([cat.name, "—", "not measured", cat.features, "—"])
            missing.append(cat.command)
        else:
            rows.append([cat.name, params_text(r.params), pct(r.accuracy),
                         f"{cat.features}, batch size {r.batch_size}", f"`{r.run_id}`"])
    parts = [table(["Model", "Params", "Best Accuracy", "Key Features", "Run"], rows)]
    if missing:
        parts.append(not_measured(*missing, sep=" / "))
    return [block(2, "Architecture Comparison", *parts)]


def hardware_section(ctx):
    intro = ("Each training run records a hardware fingerprint in its `run_log.json`. Floating-point "
             "addition is not associative, and GPU backends sum in a different order than a CPU, so "
             "the same seed on different hardware ends with different weights; the fingerprint says "
             "which machine produced which numbers.")
    machines = {}
    for r in ctx.done:
        machines.setdefault(r.machine, []).append(r)
    if not machines:
        return [block(2, "Hardware DNA", intro, not_measured(first_command()))]
    blocks = [block(2, "Hardware DNA", intro)]
    for key in sorted(machines):
        rs = sorted(machines[key], key=lambda r: r.run_id)

        def values(field):
            vals = sorted({str(r.hw.get(field)) for r in rs if r.hw.get(field) not in (None, "")})
            return ", ".join(vals) if vals else "—"
        fields = [("OS", f"{values('os')} {values('os_release')}"), ("Architecture", values("architecture")),
                  ("Chip", values("chip")), ("CPU count", values("cpu_count")), ("GPU", values("gpu")),
                  ("Python", values("python")), ("PyTorch", values("torch")),
                  ("torchvision", values("torchvision")), ("NumPy", values("numpy"))]
        run_rows = [[f"`{r.run_id}`", model_name(r.model), r.device, r.precision,
                     r.seed, r.epochs, secs(r.at().time), r.load, pct(r.accuracy), params_text(r.params)]
                    for r in rs]
        blocks.append(block(3, f"{key[0]} ({key[1]} {key[2]})", table(["Field", "Value"], fields),
                            table(["Run", "Model", "Device", "Precision", "Seed", "Epochs", "Training Time",
                                   "Load avg (start → end)", "Overall Accuracy", "Model Params"], run_rows)))
    return blocks


def activations_section(ctx):
    folder = ctx.out_dir / "activations"
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    intro = ("`visualize_activations.py` hooks layers of a trained network during a forward pass "
             "and saves feature-map grids as PNGs to `activations/`.")
    if not pngs:
        return [block(2, "Activation Visualization", intro, not_measured("python visualize_activations.py"))]
    parts = [intro + " Regenerate them with `python visualize_activations.py`."]
    parts += activation_stats(ctx, folder)
    parts.append("\n\n".join(f"**{p.stem}**\n\n![{p.stem}]({ctx.link(p)})" for p in pngs))
    return [block(2, "Activation Visualization", *parts)]


def activation_stats(ctx, folder):
    """Per-layer tables from ``activations/<model>_stats.json`` (written by visualize_activations.py)."""
    out = []
    for path in sorted(folder.glob("*_stats.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            layers = [x for x in rec.get("layers", []) if isinstance(x, dict)]
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            continue                       # a figure's side file; the PNGs are still linked
        if not layers:
            continue
        img = rec.get("image") if isinstance(rec.get("image"), dict) else {}
        head = (f"**{model_name(rec.get('model'))}** ({rec.get('source', '?')}, "
                f"{rec.get('device', '?')}; test image {img.get('index', '?')}: true {img.get('true', '?')}, "
                f"predicted {img.get('predicted', '?')}), from `{ctx.link(path)}`:")
        rows = [[x.get("layer", "?"), x.get("channels", "—"), x.get("resolution", "—"),
                 f"{x['mean']:.3f}" if is_number(x.get("mean")) else "—",
                 f"{100 * x['zeros']:.1f}%" if is_number(x.get("zeros")) else "—"] for x in layers]
        out.append(head + "\n\n" + table(["Layer", "Channels", "Resolution", "Mean activation",
                                            "Exact zeros"], rows))
    return out


@dataclass(frozen=True)
class Figure:
    """A plot of the Plots section: its file, heading, text and how to draw it."""
    name: str
    heading: str
    alt: str
    caption: str
    draw: object                # () -> matplotlib figure


def figures(ctx):
    """The plots of the document, in their order (none before a complete run)."""
    if not ctx.done:
        return []
    out = []
    for model in model_order(ctx.done):
        runs = ctx.model_runs(model)
        if not runs:
            continue
        heads, _ = config_groups(runs)
        heads = sorted(heads, key=lambda r: r.run_id)[-6:]       # the six newest configurations
        out.append(Figure(f"curves_{safe_name(model)}.png", f"Training Curves: {model_name(model)}",
                          f"training curves {model}", "Runs: " + ", ".join(f"`{r.run_id}`" for r in heads) + ".",
                          lambda fig_runs=heads: plots.draw_curves(fig_runs, ctx.label)))
    bests = [(cat, r) for cat, r in category_best(ctx) if r]
    bars = [(f"{cat.name} ({pct(r.accuracy)})", r.at().per_class) for cat, r in bests]
    out.append(Figure("per_class.png", "Per-Class Accuracy of the Best Runs", "per-class accuracy",
                      "Runs: " + ", ".join(f"{cat.name} `{r.run_id}`" for cat, r in bests) + ".",
                      lambda b=bars: plots.draw_per_class(b)))
    for model in model_order(ctx.done):
        r = best([x for x in ctx.model_runs(model) if x.results.get("confusion")])
        if r is None:
            continue
        out.append(Figure(f"confusion_{safe_name(model)}.png", f"Confusion Matrix: {model_name(model)}",
                          f"confusion matrix {model}",
                          f"Run: `{r.run_id}` ({pct(r.accuracy)}); rows are the true class, columns the prediction.",
                          lambda run=r: plots.draw_confusion(run.results["confusion"],
                                                             f"{run.run_id} ({pct(run.accuracy)})")))
    return out


def plots_section(ctx):
    if not ctx.done:
        return [block(2, "Plots", not_measured(first_command()))]
    if not ctx.draw_plots:
        return [block(2, "Plots", "Not drawn this time (`--no-plots`); run `python report.py` to draw them.")]
    blocks = [block(2, "Plots", f"Drawn by `python report.py` into `{ctx.link(ctx.plot_dir)}/`.")]
    for f in figures(ctx):
        blocks.append(block(3, f.heading, f"![{f.alt}]({ctx.link(ctx.plot_dir / f.name)})", f.caption))
    return blocks


def index_section(ctx):
    rows = []
    for r in ctx.train:
        resumes = r.rec.get("resumes")
        resumed = f" (resumed {len(resumes)}×)" if isinstance(resumes, list) and resumes else ""
        if r.complete:
            state = "complete" + resumed
        elif r.status == "complete":
            state = "complete, but its log has no results"
        else:
            state = f"{r.status} (epoch {len(r.history)}/{r.epochs}){resumed}"
        rows.append([f"`{r.run_id}`", model_name(r.model), r.epochs,
                     "yes" if r.augment else "no", "yes" if r.onecycle else "no", r.device, r.precision,
                     r.chip, f"`{dataset_id(r)}`", pct(r.accuracy) if r.complete else "—",
                     secs(r.at().time) if r.complete else "—", state])
    parts = [table(["Run", "Model", "Epochs", "Aug", "OneCycle", "Device", "Precision", "Chip",
                    "Dataset", "Accuracy", "Time", "Status"], rows) if rows
             else not_measured(first_command())]
    if ctx.bench:
        parts.append("Benchmark records (`python benchmark.py`):\n\n" + table(
            ["Run", "Benchmark", "Model", "Batch size", "Device", "Chip", "Status"],
            [[f"`{r.run_id}`", r.rec.get("benchmark") or "—", r.rec.get("model") or "—",
              r.rec.get("batch_size") or "—", r.device, r.chip, r.status] for r in ctx.bench]))
    other = [r for r in ctx.runs if r.kind not in ("train", "benchmark")]
    if other:
        parts.append("Other records (not used): " + ", ".join(f"`{r.run_id}` ({r.kind})" for r in other) + ".")
    return [block(2, "Run Index", *parts)]


def other_benchmarks_section(ctx):
    others = [(r, scalars(r.results)) for r in latest_benchmarks(ctx, with_devices=False)]
    others = [(r, rows) for r, rows in others if rows]
    if not others:
        return []
    return [block(3, "Other Benchmark Results", "The newest record of each benchmark; plain values only.",
                  *[f"**{r.rec.get('benchmark') or 'benchmark'}** (run `{r.run_id}`, {r.device}, "
                    f"{r.chip}):\n\n" + table(["Result", "Value"], rows) for r, rows in others])]


# The wide LeNet's experiments (device, progression, augmentation, ...) follow its own section;
# every further model of the recipes gets a section after ResNet-18's.
LENETS = ("small", "large")


def sections(ctx):
    """Every section of results.md in order: each a list of blocks, computed from ``ctx`` alone."""
    deeper = [m for m in model_order(ctx.done) if m not in LENETS and m in recipes.RECIPES]
    return [
        data_section(ctx),
        *(model_section(ctx, m) for m in LENETS),
        device_comparison_section(ctx),
        progression_section(ctx),
        per_class_by_epoch_section(ctx),
        reproducibility_section(ctx),
        resumed_section(ctx),
        augmentation_section(ctx),
        scheduling_section(ctx),
        targets_section(ctx),
        epochs_section(ctx),
        *(deep_model_section(ctx, m) for m in deeper),
        architectures_section(ctx),
        hardware_section(ctx),
        activations_section(ctx),
        plots_section(ctx),
        index_section(ctx),
        other_benchmarks_section(ctx),
    ]


def render(ctx):
    """results.md: title, header, table of contents, then every section's blocks."""
    blocks = [b for sec in sections(ctx) for b in sec]
    out = ["# Training Results", header(ctx)]
    toc = [f"- [{b.heading}](#{anchor(b.heading)})" for b in blocks if b.level == 2]
    out += ["## Table of Contents", "\n".join(toc), "---"]
    for b in blocks:
        if b.level == 2 and out[-1] != "---":
            out.append("---")
        out.append("#" * b.level + " " + b.heading)
        if b.body:
            out.append(b.body)
    return "\n\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- command line

class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage text."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def build_parser():
    p = Parser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", help="folder of run folders holding run_log.json (default: runs)")
    p.add_argument("--output", default="results.md", help="the results document to write (default: results.md)")
    p.add_argument("--plots", default=None,
                   help="folder for the PNG plots (default: results/ beside --output)")
    p.add_argument("--dpi", type=_positive_int, default=100, help="resolution of the plots (default: 100)")
    p.add_argument("--no-plots", action="store_true", help="write results.md without drawing plots (default: off)")
    return p


def prepare_output(output):
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; give a file path such as {output / 'results.md'}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {output} ({exc.strerror or exc}); "
                        "choose a writable location with --output") from None


def main(argv=None):
    """Read the run logs, write results.md and its plots; return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        output = Path(args.output)
        prepare_output(output)
        out_dir = output.parent
        plot_dir = Path(args.plots) if args.plots else out_dir / "results"
        runs = load_runs(args.runs, lambda msg: print(msg, file=sys.stderr))
        runs_label = Path(os.path.relpath(Path(args.runs).resolve(), out_dir.resolve())).as_posix()
        if runs_label.startswith(".."):
            runs_label = Path(args.runs).as_posix()  # as given: never this machine's absolute path
        ctx = Context(runs, out_dir, plot_dir, runs_label, draw_plots=not args.no_plots)
        text = render(ctx)
        figs = figures(ctx) if ctx.draw_plots else []
        plots.write_plots([(f.name, f.draw) for f in figs], plot_dir, args.dpi)
        atomic.write_text(output, text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    done = sum(r.complete for r in runs)
    print(f"wrote {output} from {done} complete run(s) of {len(runs)} log(s)"
          + (f" and {len(figs)} plot(s) in {plot_dir}" if figs else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
