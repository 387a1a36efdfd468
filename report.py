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
from pathlib import Path

import atomic
from errors import UserError

CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DEVICE_ORDER = {"cpu": 0, "cuda": 1, "mps": 2}
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}
MODEL_ORDER = ("small", "large", "resnet18")
MODEL_NAMES = {"small": "Small LeNet-style CNN", "large": "Large LeNet-style CNN",
               "resnet18": "ResNet-18"}
# Recipe facts of the training scripts, used only to describe them and to leave
# a configuration's defaults out of its label.
DEFAULT_BATCH = {"small": 4, "large": 64, "resnet18": 128}
DEFAULT_SEED = 1111
NOT_MEASURED = "Not measured yet"


# ---------------------------------------------------------------- reading the logs

class Run:
    """One ``run_log.json`` record with tolerant accessors (older logs lack some fields)."""

    def __init__(self, rec, path):
        self.rec = rec
        self.path = path
        self.run_id = str(rec.get("run_id") or path.parent.name)
        self.kind = rec.get("kind", "train")
        self.status = rec.get("status", "unknown")
        self.cfg = rec.get("config") if isinstance(rec.get("config"), dict) else {}
        self.hw = rec.get("hardware") if isinstance(rec.get("hardware"), dict) else {}
        self.dataset = rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}
        self.results = rec.get("results") if isinstance(rec.get("results"), dict) else {}
        self.history = [h for h in rec.get("history") or [] if isinstance(h, dict)]
        self.loss_lines = [tuple(x) for x in rec.get("loss_lines") or []
                           if isinstance(x, (list, tuple)) and len(x) == 3]

    # -- configuration
    @property
    def model(self):
        return str(self.rec.get("model") or self.cfg.get("model") or "unknown")

    @property
    def epochs(self):
        return int(self.results.get("epochs") or self.cfg.get("epochs") or len(self.history))

    @property
    def augment(self):
        return bool(self.cfg.get("augment", False))

    @property
    def onecycle(self):
        return bool(self.cfg.get("onecycle", False))

    @property
    def device(self):
        return str(self.rec.get("device") or "unknown")

    @property
    def precision(self):
        return str(self.rec.get("precision") or "fp32")

    @property
    def seed(self):
        return self.rec.get("seed", self.cfg.get("seed"))

    @property
    def batch_size(self):
        return self.cfg.get("batch_size")

    @property
    def chip(self):
        return str(self.hw.get("chip") or "unknown chip")

    @property
    def machine(self):
        return (self.chip, str(self.hw.get("os") or "?"), str(self.hw.get("architecture") or "?"),
                str(self.hw.get("cpu_count") or "?"))

    @property
    def setup(self):
        """Where and how it ran: runs of one setup may share a table's columns."""
        return (DEVICE_ORDER.get(self.device, 9), self.device, self.chip, self.precision,
                str(self.batch_size), str(self.seed))

    @property
    def recipe(self):
        """Everything that defines what a run computes, plus where: equal recipes should reproduce."""
        c = self.cfg
        return (self.model, self.epochs, str(self.batch_size), self.augment, self.onecycle,
                str(self.seed), self.precision, str(c.get("lr")), str(c.get("max_lr")),
                str(c.get("weight_decay")), str(c.get("momentum")), self.device, self.chip,
                str(self.hw.get("torch_threads")) if self.device == "cpu" else "",
                str(c.get("onednn", True)) if self.device == "cpu" else "")

    # -- results
    @property
    def complete(self):
        return (self.kind == "train" and self.status == "complete"
                and isinstance(self.results.get("overall_accuracy"), (int, float)))

    @property
    def accuracy(self):
        return self.results.get("overall_accuracy")

    @property
    def params(self):
        return self.rec.get("params")

    @property
    def load(self):
        """'1.20 → 2.05': the machine's 1-minute load average at the start and the end, if logged."""
        def first(v):
            return f"{v[0]:.2f}" if isinstance(v, list) and v and _number(v[0]) else None
        start, end = first(self.hw.get("load_average")), first(self.hw.get("load_average_end"))
        if start is None and end is None:
            return "—"
        return f"{start or '?'} → {end or '?'}"

    def at(self, epoch=None):
        """The run's figures after ``epoch`` (default: its last epoch)."""
        return Cell(self, self.epochs if epoch is None else epoch)


@dataclass(frozen=True)
class Cell:
    """A run's figures after ``epoch``: from its results, or from its history for an earlier epoch."""

    run: Run
    epoch: int

    @property
    def derived(self):
        return self.epoch != self.run.epochs

    @property
    def _hist(self):
        h = self.run.history
        return h[self.epoch - 1] if 0 < self.epoch <= len(h) else {}

    @property
    def accuracy(self):
        return self._hist.get("test_accuracy") if self.derived else self.run.accuracy

    @property
    def time(self):
        if not self.derived and "train_time_s" in self.run.results:
            return self.run.results["train_time_s"]
        h = self._hist
        if "train_time_s" in h:
            return h["train_time_s"]
        times = [x.get("epoch_time_s") for x in self.run.history[:self.epoch]]
        return sum(times) if times and None not in times else None

    @property
    def final_loss(self):
        if not self.derived and "final_loss" in self.run.results:
            return self.run.results["final_loss"]
        lines = [x for x in self.run.loss_lines if x[0] == self.epoch]
        return lines[-1][2] if lines else self._hist.get("train_loss")

    @property
    def per_class(self):
        pc = self._hist.get("per_class") if self.derived else self.run.results.get("per_class")
        return pc if isinstance(pc, dict) else {}

    @property
    def ref(self):
        return f"`{self.run.run_id}` @ epoch {self.epoch}" if self.derived else f"`{self.run.run_id}`"


def load_runs(runs_dir, warn):
    """Every readable ``run_log.json`` under ``runs_dir``, sorted by run id."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"no runs folder {runs_dir}; train a model first (python train_small.py) "
                        "or point --runs at the folder of run folders")
    runs = []
    for path in sorted(runs_dir.glob("*/run_log.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            warn(f"warning: skipping {path}: unreadable run log ({type(exc).__name__})")
            continue
        if not isinstance(rec, dict):
            warn(f"warning: skipping {path}: not a run log (a JSON object was expected)")
            continue
        runs.append(Run(rec, path))
    return sorted(runs, key=lambda r: (r.run_id, str(r.path)))


# ---------------------------------------------------------------- choosing runs

def latest(runs):
    """The most recent run (run ids start with a sortable timestamp)."""
    return max(runs, key=lambda r: r.run_id) if runs else None


def _sha(v):
    return f"`{v[:12]}…`" if isinstance(v, str) and v else "—"


def representative(runs):
    """Of runs of one configuration (the same computation), the fastest; the newest among equals.

    Identical runs give identical numbers on one machine; their times differ only by how
    busy the machine was, and the fastest is the closest to what the recipe costs.
    """
    def time_of(r):
        t = (r.results or {}).get("train_time_s")
        return t if isinstance(t, (int, float)) else float("inf")
    return min(runs, key=lambda r: (time_of(r), [-ord(c) for c in r.run_id])) if runs else None


def best(runs):
    """The most accurate run; the most recent among equals."""
    return max(runs, key=lambda r: (r.accuracy, r.run_id)) if runs else None


def resolve(runs, epoch):
    """The figures after ``epoch`` epochs: a real run of that length, else a longer fixed-LR run's history."""
    real = [r for r in runs if r.epochs == epoch]
    if real:
        return representative(real).at()
    longer = [r for r in runs if not r.onecycle and r.epochs > epoch and len(r.history) >= epoch]
    return latest(longer).at(epoch) if longer else None


def choose_setup(runs, columns):
    """Fill ``columns`` [(predicate, epochs)] from one setup: the one filling most, then the newest.

    Returns the list of cells (None where nothing qualifies).
    """
    chosen, score = [None] * len(columns), (0, "")
    for setup in sorted({r.setup for r in runs if any(p(r) for p, _ in columns)}):
        cells = [resolve([r for r in runs if r.setup == setup and p(r)], k) for p, k in columns]
        filled = [c for c in cells if c is not None]
        s = (len(filled), max((c.run.run_id for c in filled), default=""))
        if s > score:
            chosen, score = cells, s
    return chosen


def is_large(aug, onecycle):
    return lambda r: r.model == "large" and r.augment == aug and r.onecycle == onecycle


@dataclass(frozen=True)
class Category:
    key: str
    name: str
    target: float
    test: object
    command: str
    features: str


CATEGORIES = (
    Category("small", "Small LeNet-style CNN", 50, lambda r: r.model == "small",
             "python train_small.py", "Original tutorial architecture (conv 3→6→16)"),
    Category("wide", "Large LeNet-style CNN", 70, is_large(False, False),
             "python train_large.py --epochs 20", "Wider conv layers (64, 128), fixed LR"),
    Category("wide_aug", "Large LeNet-style CNN + augmentation", 75, is_large(True, False),
             "python train_large.py --epochs 40 --augment", "+ random crop and horizontal flip"),
    Category("wide_aug_onecycle", "Large LeNet-style CNN + augmentation + OneCycleLR", 85,
             is_large(True, True), "python train_large.py --epochs 40 --augment --onecycle",
             "+ OneCycleLR, weight decay"),
    Category("resnet18", "ResNet-18", 90, lambda r: r.model == "resnet18",
             "python train_resnet.py --epochs 40", "Residual connections, 3x3 stem for 32x32, no max-pool"),
)


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


def table(headers, rows):
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
    if run.batch_size is not None and run.batch_size != DEFAULT_BATCH.get(run.model):
        parts.append(f"batch {run.batch_size}")
    if run.seed is not None and run.seed != DEFAULT_SEED:
        parts.append(f"seed {run.seed}")
    lr_key = "max_lr" if run.onecycle else "lr"
    lr_default = 0.1 if run.onecycle else 0.001
    if run.cfg.get(lr_key) not in (None, lr_default):
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


# ---------------------------------------------------------------- the document

class Report:
    """Builds results.md from the runs; ``plots`` maps plot names to the figures to draw."""

    def __init__(self, runs, out_dir, plot_dir, runs_label, draw_plots=True):
        self.all = runs
        self.train = [r for r in runs if r.kind == "train"]
        self.done = [r for r in self.train if r.complete]
        self.bench = [r for r in runs if r.kind == "benchmark"]
        self.out_dir = out_dir
        self.plot_dir = plot_dir
        self.runs_label = runs_label
        self.draw_plots = draw_plots
        self.chips = sorted({r.chip for r in self.done})
        self.plots = []          # (filename, drawing function, runs)
        self.sections = []       # (level, heading, text)
        self.progression = [None] * 3   # cells of the 2/10/20-epoch columns, reused below
        self.aug_cells = [None] * 3

    def link(self, path):
        return Path(os.path.relpath(path, self.out_dir)).as_posix()

    def add(self, level, heading, *parts):
        self.sections.append((level, heading, "\n\n".join(p for p in parts if p)))

    def label(self, run):
        return config_label(run, self.chips)

    def model_runs(self, model):
        return [r for r in self.done if r.model == model]

    def model_heading(self, model):
        params = sorted({r.params for r in self.train if r.model == model and isinstance(r.params, int)})
        name = MODEL_NAMES[model]
        return f"{name} ({params_text(params[-1])} params)" if params else name

    # -- sections
    def build(self):
        self.sec_data()
        self.sec_model("small", "The PyTorch tutorial's LeNet (conv 3→6→16, fc 400→120→84→10).",
                       "python train_small.py")
        self.sec_model("large", "The same LeNet, wider (conv 3→64→128, fc 3200→512→256→10).\n\n"
                       + table(["Layer", "Config"], [["conv1", "3→64 (5x5)"], ["conv2", "64→128 (5x5)"],
                                                     ["fc1", "3200→512"], ["fc2", "512→256"],
                                                     ["fc3", "256→10"]]),
                       "python train_large.py --epochs 2")
        self.sec_device_comparison()
        self.sec_progression()
        self.sec_reproducibility()
        self.sec_augmentation()
        self.sec_scheduling()
        self.sec_targets()
        self.sec_epochs()
        self.sec_resnet()
        self.sec_architectures()
        self.sec_hardware()
        self.sec_activations()
        self.sec_plots()
        self.sec_index()
        return self.render()

    def render(self):
        out = ["# Training Results", self.header()]
        toc = [f"- [{h}](#{anchor(h)})" for level, h, _ in self.sections if level == 2]
        out += ["## Table of Contents", "\n".join(toc), "---"]
        for level, heading, text in self.sections:
            if level == 2 and out[-1] != "---":
                out.append("---")
            out.append("#" * level + " " + heading)
            if text:
                out.append(text)
        return "\n\n".join(out).rstrip() + "\n"

    def header(self):
        machines = {}
        for r in self.done:
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
        pending = [r for r in self.train if not r.complete]
        note = (f"Every figure below is read from `{self.runs_label}/*/run_log.json` by "
                f"`python report.py`; each table names the run ids it comes from, and the "
                f"[Run Index](#run-index) lists every run. Only complete runs are used.")
        if pending:
            note += (f" {len(pending)} run(s) not complete (running, interrupted or failed) "
                     "are listed in the index only.")
        return hw + "\n\n" + note

    def sec_data(self):
        by_id = {}
        for r in self.train:
            by_id.setdefault(str(self.dataset_id(r)), []).append(r)
        if not by_id:
            self.add(2, "Data", not_measured("python train_small.py"))
            return
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
        self.add(2, "Data", text)

    @staticmethod
    def dataset_id(run):
        return run.dataset.get("id", "unknown")

    def config_groups(self, runs):
        """Headline run (the fastest, see ``representative``) of each configuration, in a stable order."""
        groups = {}
        for r in runs:
            groups.setdefault(r.recipe, []).append(r)
        heads = [representative(rs) for rs in groups.values()]
        return sorted(heads, key=lambda r: (r.setup, r.epochs, r.augment, r.onecycle, r.run_id)), groups

    def sec_model(self, model, description, command):
        runs = self.model_runs(model)
        if not runs:
            self.add(2, self.model_heading(model), description, not_measured(command))
            return
        heads, groups = self.config_groups(runs)
        summary = table(
            ["Configuration", "Device", "Precision", "Epochs", "Accuracy", "Time", "Final loss", "Run",
             "Runs of this config"],
            [[self.label(r), r.device, r.precision, r.epochs, pct(r.accuracy), secs(r.at().time),
              loss(r.at().final_loss), f"`{r.run_id}`", len(groups[r.recipe])] for r in heads])
        self.add(2, self.model_heading(model), description,
                 f"Batch size {', '.join(sorted({str(r.batch_size) for r in runs}))}. One row per "
                 "configuration, from its fastest complete run (identical runs give identical numbers).", summary)
        seen = {}
        for r in heads:
            heading = self.label(r)
            seen[heading] = seen.get(heading, 0) + 1
            if seen[heading] > 1:
                heading += f" ({r.run_id})"
            self.add(3, heading, self.run_bullets(r),
                     table(["Class", "Accuracy"], [[c, pc(v)] for c, v in class_rows_sorted(r.at().per_class)]))

    def run_bullets(self, r):
        return "\n".join([f"- **Overall accuracy:** {pct(r.accuracy)}",
                          f"- **Training time:** {secs(r.at().time)}",
                          f"- **Final loss:** {loss(r.at().final_loss)}",
                          f"- **Device:** {r.device} ({r.precision})",
                          f"- **Run:** `{r.run_id}`"])

    def sec_device_comparison(self):
        heading = "Device Comparison (2 Epochs)"
        fixed = [r for r in self.done if is_large(False, False)(r)]
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
                if len(self.chips) > 1:
                    label += f", {r.chip}"
                body.append([label, secs(c.time), pct(c.accuracy), speed, r.load, c.ref])
            parts.append(table(["Device", "Time", "Accuracy", "Speedup", "Load avg (start → end)", "Run"],
                               body))
            parts.append("Load avg is the machine's 1-minute load average logged at the start and the end "
                         "of the run: a value above the CPU count means the timing shared the machine.")
            if any(c.derived for c in rows):
                parts.append(self.history_note())
            if not any(c.run.device != "cpu" for c in rows):
                parts.append("No accelerator run yet: run `python train_large.py --epochs 2 --device cuda` "
                             "(or `--device mps`) on a machine that has one, then `python report.py`.")
            if not any(c.run.device == "cpu" for c in rows):
                parts.append("No CPU baseline yet: run `python train_large.py --epochs 2 --device cpu`.")
        else:
            parts.append(not_measured("python train_large.py --epochs 2 --device cpu",
                                      "python train_large.py --epochs 2 --device cuda"))
        parts += self.benchmark_tables()
        self.add(3, heading, *parts)

    def latest_benchmarks(self, with_devices):
        """The newest usable benchmark record per (benchmark, chip, model, batch size)."""
        heads = {}
        for r in self.bench:
            if r.status in ("running", "interrupted", "failed") or not r.results:
                continue
            if isinstance(r.results.get("devices"), dict) != with_devices:
                continue
            key = (str(r.rec.get("benchmark", "")), r.chip, str(r.rec.get("model")),
                   str(r.rec.get("batch_size")))
            if key not in heads or r.run_id > heads[key].run_id:
                heads[key] = r
        return [heads[k] for k in sorted(heads)]

    def benchmark_tables(self):
        """Training throughput per device from benchmark records (``results.devices``)."""
        parts = []
        for r in self.latest_benchmarks(with_devices=True):
            title = (f"**Throughput benchmark:** model {r.rec.get('model', '—')}, batch size "
                     f"{r.rec.get('batch_size', '—')}, {r.chip} (run `{r.run_id}`). Speedup: images/s "
                     "divided by the CPU's.")
            entries = {d: v for d, v in r.results["devices"].items() if isinstance(v, dict)}
            cpu_rate = (entries.get("cpu") or {}).get("images_per_s")
            body = []
            for d in sorted(entries, key=lambda d: (DEVICE_ORDER.get(d, 9), d)):
                rate = entries[d].get("images_per_s")
                if _number(rate) and _number(cpu_rate) and cpu_rate > 0:
                    speed = rate / cpu_rate
                else:
                    speed = entries[d].get("speedup_vs_cpu")
                body.append([DEVICE_NAMES.get(d, d), f"{rate:,.1f}" if _number(rate) else "—",
                             f"{speed:.1f}x" if _number(speed) else "—"])
            skipped = r.results.get("skipped")
            if isinstance(skipped, dict):
                for d in sorted(skipped, key=lambda d: (DEVICE_ORDER.get(d, 9), d)):
                    body.append([DEVICE_NAMES.get(d, d), f"skipped ({skipped[d]})", "—"])
            text = title + "\n\n" + table(["Device", "Images/s", "Speedup vs CPU"], body)
            scalars = _scalars(r.results, skip=("devices", "skipped"))
            if scalars:
                text += "\n\n" + table(["Result", "Value"], scalars)
            parts.append(text)
        return parts

    @staticmethod
    def history_note():
        return ("With a fixed learning rate, epoch k of a longer run with the same seed is the same "
                "computation as a k-epoch run, so a cell cited as \"run @ epoch k\" is read from that "
                "run's per-epoch history.")

    def sec_progression(self):
        fixed = [r for r in self.done if is_large(False, False)(r)]
        ks = (2, 10, 20)
        cells = choose_setup(fixed, [(lambda r: True, k) for k in ks])
        parts = ["Large LeNet-style CNN, fixed learning rate, no augmentation."]
        if any(cells):
            r0 = next(c for c in cells if c).run
            parts[0] += (f" Device {r0.device} ({r0.precision}), batch size {r0.batch_size}, "
                         f"seed {r0.seed}" + (f", {r0.chip}" if len(self.chips) > 1 else "") + ".")
            rows = [["**Time**"] + [secs(c.time) if c else "not measured" for c in cells],
                    ["**Overall Accuracy**"] + [pct(c.accuracy) if c else "not measured" for c in cells],
                    ["**Final Loss**"] + [loss(c.final_loss) if c else "not measured" for c in cells],
                    ["Run"] + [c.ref if c else "—" for c in cells]]
            parts.append(table(["Metric"] + [f"{k} Epochs" for k in ks], rows))
            if any(c and c.derived for c in cells):
                parts.append(self.history_note())
            if not all(cells):
                parts.append(not_measured("python train_large.py --epochs 20"))
        else:
            parts.append(not_measured("python train_large.py --epochs 20"))
        self.add(3, "Training Progression", *parts)
        self.progression = cells

        by_epoch = [(k, c) for k, c in zip(ks, cells) if k in (10, 20)]
        if all(c for _, c in by_epoch):
            text = per_class_compare([(f"{k} Epochs", c.per_class) for k, c in by_epoch])
            text += "\n\nRuns: " + ", ".join(f"{k} epochs: {c.ref}" for k, c in by_epoch) + "."
        else:
            text = not_measured("python train_large.py --epochs 20")
        self.add(3, "Per-Class Accuracy by Epoch", text)

    def sec_reproducibility(self):
        groups = {}
        for r in self.done:
            groups.setdefault(r.recipe, []).append(r)
        groups = {k: v for k, v in groups.items() if len(v) >= 2}
        if not groups:
            self.add(2, "Reproducibility",
                     "Two runs with the same configuration and seed on the same device and machine "
                     "should log the same losses and end with bit-identical weights (on a CPU).",
                     f"*{NOT_MEASURED}.* Run `python train_large.py --epochs 2` twice on the same "
                     "machine (`--device cpu` for bit-identical weights), then `python report.py`.")
            self.sec_resumed()
            return
        self.add(2, "Reproducibility",
                 "Runs with the same configuration (model, epochs, batch size, augmentation, schedule, "
                 "learning rates, weight decay, seed, precision; on a CPU also its threads and "
                 "convolution kernels) on the same device and machine. "
                 "Match is ✓ when every run logged exactly the same value.")
        order = sorted(groups, key=lambda k: (MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER else 9,
                                              groups[k][0].setup, k[1:], groups[k][0].run_id))
        for key in order:
            rs = sorted(groups[key], key=lambda r: r.run_id)
            first = rs[0]
            self.add(3, f"{MODEL_NAMES.get(first.model, first.model)}, {self.label(first)}, "
                        f"seed {first.seed}", *self.repro_table(rs))
        self.sec_resumed()

    def sec_resumed(self):
        """Runs interrupted and resumed, against an uninterrupted run of the same computation."""
        resumed = [r for r in self.done if r.rec.get("resumes")]
        if not resumed:
            return
        blocks = []
        for run in sorted(resumed, key=lambda r: r.run_id):
            k = run.epochs
            same = run.recipe[:1] + run.recipe[2:]          # the recipe but for its length
            refs = [r for r in self.done if not r.rec.get("resumes") and r.recipe[:1] + r.recipe[2:] == same
                    and (r.epochs == k or (not r.onecycle and r.epochs > k and len(r.history) >= k))]
            first = run.rec["resumes"][0]
            after, before = first.get("after_epoch", 0), first.get("epochs_before")
            if before is None:                              # logs older than epochs_before
                how = f"stopped after epoch {after} of {k}, resumed"
            elif before == after < k:
                how = f"extended from {before} to {k} epochs"
            else:
                how = f"interrupted after epoch {after} of {k}, resumed"
            title = f"`{run.run_id}`: {how} ({MODEL_NAMES.get(run.model, run.model)}, {self.label(run)})"
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
                [f"Weights sha256 after epoch {k}", _sha(run.results.get("weights_sha256")), _sha(ref_sha),
                 "✓" if ref_sha and run.results.get("weights_sha256") == ref_sha else "✗"],
            ]
            where = f"`{ref.run_id}`" + (f" @ epoch {k}" if ref.epochs != k else "")
            blocks.append((title, table(["Metric", "Resumed run", f"Uninterrupted {where}", "Match"], rows)))
        self.add(3, "Interrupted and Resumed",
                 "Runs continued with `--resume` (after a signal stopped them, or to extend them to "
                 "more epochs) against an uninterrupted run of the same computation (with a fixed "
                 "learning rate, epoch k of a longer run is the same computation as a k-epoch run).",
                 *[f"**{t}**\n\n{body}" for t, body in blocks])

    def repro_table(self, rs):
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
        per_class = table(["Class", "Accuracy"], [[c, pc(v)] for c, v in class_rows_sorted(rs[0].at().per_class)])
        return [table(headers, rows), runs_line, verdict,
                f"Per-class accuracy of Run 1 (`{rs[0].run_id}`):", per_class]

    def sec_augmentation(self):
        columns = [("No Aug (20 epochs)", is_large(False, False), 20),
                   ("With Aug (20 epochs)", is_large(True, False), 20),
                   ("With Aug (40 epochs)", is_large(True, False), 40)]
        cells = choose_setup(self.done, [(p, k) for _, p, k in columns])
        self.aug_cells = cells
        intro = ("Large LeNet-style CNN, fixed learning rate, with RandomCrop(32, padding=4) and "
                 "RandomHorizontalFlip against none.")
        cmds = {0: "python train_large.py --epochs 20", 1: "python train_large.py --epochs 40 --augment",
                2: "python train_large.py --epochs 40 --augment"}
        if not any(cells):
            self.add(2, "Data Augmentation", intro,
                     not_measured("python train_large.py --epochs 20", "python train_large.py --epochs 40 --augment"))
            return
        r0 = next(c for c in cells if c).run
        intro += f" Device {r0.device} ({r0.precision}), seed {r0.seed}."
        rows = [["**Time**"] + [secs(c.time) if c else "not measured" for c in cells],
                ["**Overall Accuracy**"] + [pct(c.accuracy) if c else "not measured" for c in cells],
                ["**Final Loss**"] + [loss(c.final_loss) if c else "not measured" for c in cells],
                ["Run"] + [c.ref if c else "—" for c in cells]]
        parts = [intro, table(["Metric"] + [label for label, _, _ in columns], rows)]
        if any(c and c.derived for c in cells):
            parts.append(self.history_note())
        missing = sorted({cmds[i] for i, c in enumerate(cells) if c is None})
        if missing:
            parts.append(not_measured(*missing))
        self.add(2, "Data Augmentation", *parts)
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
            self.add(3, "Per-Class Accuracy Comparison", text)

    def sec_scheduling(self):
        cells = choose_setup(self.done, [(is_large(True, False), 40), (is_large(True, True), 40)])
        fixed, cyc = cells
        heading = "Learning Rate Scheduling (40 Epochs)"
        intro = "Large LeNet-style CNN with augmentation: fixed learning rate against OneCycleLR."
        if cyc:
            c = cyc.run.cfg
            intro = ("Large LeNet-style CNN with augmentation: fixed learning rate "
                     f"({fixed.run.cfg.get('lr') if fixed else '—'}) against OneCycleLR "
                     f"(max_lr={c.get('max_lr')}, cosine annealing, 30% warm-up) + weight decay "
                     f"({c.get('weight_decay')}).")
        if not fixed or not cyc:
            missing = ([] if fixed else ["python train_large.py --epochs 40 --augment"]) + \
                      ([] if cyc else ["python train_large.py --epochs 40 --augment --onecycle"])
            parts = [intro]
            if fixed or cyc:
                c = fixed or cyc
                parts.append(table(["Metric", "Fixed LR", "OneCycleLR"],
                                   [["**Overall Accuracy**"] + [pct(c.accuracy) if c is x else "not measured"
                                                                for x in (fixed, cyc)],
                                    ["Run"] + [c.ref if c is x else "—" for x in (fixed, cyc)]]))
            parts.append(not_measured(*missing))
            self.add(2, heading, *parts)
            return
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
            parts.append(self.history_note())
        self.add(2, heading, *parts)
        text = per_class_compare([("Fixed LR", fixed.per_class), ("OneCycleLR", cyc.per_class)],
                                 delta_header="Δ")
        text += f"\n\n**Key findings:** {extremes(fixed.per_class, cyc.per_class)}."
        self.add(3, "Per-Class Accuracy Comparison (Fixed LR vs OneCycleLR)", text)

    def category_best(self):
        return {cat.key: best([r for r in self.done if cat.test(r)]) for cat in CATEGORIES}

    def sec_targets(self):
        bests = self.category_best()
        rows, missing = [], []
        for cat in CATEGORIES:
            r = bests[cat.key]
            if r is None:
                status, run = "not measured", "—"
                missing.append(cat.command)
            else:
                ok = r.accuracy >= cat.target
                status = ("✓ Achieved" if ok else "✗ Not yet") + f" ({pct(r.accuracy)}, {r.epochs} epochs)"
                run = f"`{r.run_id}`"
            rows.append([cat.name, f"≥{cat.target:g}%", status, run])
        parts = ["Status from the most accurate complete run of each category.",
                 table(["Model", "Target Accuracy", "Status", "Run"], rows)]
        if missing:
            parts.append(not_measured(*missing, sep=" / "))
        self.add(2, "Acceptable Accuracy Targets", *parts)

    def sec_epochs(self):
        aug40 = self.aug_cells[2]
        entries = [(str(k), c) for k, c in zip((2, 10, 20), self.progression) if c]
        if aug40:
            entries.append(("40 (aug)", aug40))
        if not entries:
            self.add(2, "Epoch Training and Diminishing Returns", not_measured("python train_large.py --epochs 20"))
            return
        rows, prev = [], None
        for label, c in entries:
            rows.append([label, pct(c.accuracy), "-" if prev is None else delta(c.accuracy - prev, math.inf),
                         c.ref])
            prev = c.accuracy
        self.add(2, "Epoch Training and Diminishing Returns",
                 "Large LeNet-style CNN: accuracy after more epochs (cells of the tables above).",
                 table(["Epochs", "Accuracy", "Δ from Previous", "Run"], rows))

    def sec_resnet(self):
        runs = self.model_runs("resnet18")
        heading = self.model_heading("resnet18")
        intro = ("ResNet-18 adapted for CIFAR-10 (3x3 conv1, no max-pool, 10-class fc) with OneCycleLR "
                 "and augmentation.")
        if not runs:
            self.add(2, heading, intro, not_measured("python train_resnet.py --epochs 40"))
            return
        r = best(runs)
        c = r.at()
        rows = [["**Overall Accuracy**", f"**{pct(r.accuracy)}**"], ["**Training Time**", secs(c.time)],
                ["**Final Loss**", loss(c.final_loss)], ["**Device**", f"{r.device} ({r.precision})"],
                ["**Epochs**", r.epochs], ["**Seed**", r.seed], ["Run", f"`{r.run_id}`"]]
        parts = [intro, "Most accurate complete run:", table(["Metric", "Value"], rows)]
        if max(x.epochs for x in runs) < 40:
            parts.append(f"Only short runs so far (at most {max(x.epochs for x in runs)} epochs): the "
                         "40-epoch recipe has not been measured yet: run `python train_resnet.py --epochs 40`, "
                         "then `python report.py`.")
        self.add(2, heading, *parts)
        self.add(3, "Per-Class Accuracy",
                 table(["Class", "Accuracy"], [[k, pc(v)] for k, v in class_rows_sorted(c.per_class)]))
        wide = best([x for x in self.done if is_large(True, True)(x)])
        if wide:
            text = per_class_compare([(f"Large CNN ({pct(wide.accuracy)})", wide.at().per_class),
                                      (f"ResNet-18 ({pct(r.accuracy)})", c.per_class)], delta_header="Δ")
            text += (f"\n\nRuns: Large LeNet-style CNN + OneCycleLR `{wide.run_id}` ({wide.epochs} epochs), "
                     f"ResNet-18 `{r.run_id}` ({r.epochs} epochs). **Key findings:** "
                     f"{extremes(wide.at().per_class, c.per_class)}.")
        else:
            text = not_measured("python train_large.py --epochs 40 --augment --onecycle")
        self.add(3, "Comparison vs Large LeNet-style CNN + OneCycleLR", text)
        heads, groups = self.config_groups(runs)
        self.add(3, "All ResNet-18 Configurations", table(
            ["Configuration", "Epochs", "Accuracy", "Time", "Final loss", "Run", "Runs of this config"],
            [[self.label(x), x.epochs, pct(x.accuracy), secs(x.at().time), loss(x.at().final_loss),
              f"`{x.run_id}`", len(groups[x.recipe])] for x in heads]))

    def sec_architectures(self):
        bests = self.category_best()
        rows = []
        for cat in CATEGORIES:
            r = bests[cat.key]
            if r is None:
                rows.append([cat.name, "—", "not measured", cat.features, "—"])
            else:
                rows.append([cat.name, params_text(r.params), pct(r.accuracy),
                             f"{cat.features}, batch size {r.batch_size}", f"`{r.run_id}`"])
        parts = [table(["Model", "Params", "Best Accuracy", "Key Features", "Run"], rows)]
        if any(bests[c.key] is None for c in CATEGORIES):
            parts.append(not_measured(*[c.command for c in CATEGORIES if bests[c.key] is None], sep=" / "))
        self.add(2, "Architecture Comparison", *parts)

    def sec_hardware(self):
        intro = ("Each training run records a hardware fingerprint in its `run_log.json`. Floating-point "
                 "addition is not associative, and GPU backends sum in a different order than a CPU, so "
                 "the same seed on different hardware ends with different weights; the fingerprint says "
                 "which machine produced which numbers.")
        machines = {}
        for r in self.done:
            machines.setdefault(r.machine, []).append(r)
        if not machines:
            self.add(2, "Hardware DNA", intro, not_measured("python train_small.py"))
            return
        self.add(2, "Hardware DNA", intro)
        for key in sorted(machines):
            rs = sorted(machines[key], key=lambda r: r.run_id)

            def values(field):
                vals = sorted({str(r.hw.get(field)) for r in rs if r.hw.get(field) not in (None, "")})
                return ", ".join(vals) if vals else "—"
            fields = [("OS", f"{values('os')} {values('os_release')}"), ("Architecture", values("architecture")),
                      ("Chip", values("chip")), ("CPU count", values("cpu_count")), ("GPU", values("gpu")),
                      ("Python", values("python")), ("PyTorch", values("torch")),
                      ("torchvision", values("torchvision")), ("NumPy", values("numpy"))]
            run_rows = [[f"`{r.run_id}`", MODEL_NAMES.get(r.model, r.model), r.device, r.precision,
                         r.seed, r.epochs, secs(r.at().time), r.load, pct(r.accuracy), params_text(r.params)]
                        for r in rs]
            self.add(3, f"{key[0]} ({key[1]} {key[2]})", table(["Field", "Value"], fields),
                     table(["Run", "Model", "Device", "Precision", "Seed", "Epochs", "Training Time",
                            "Load avg (start → end)", "Overall Accuracy", "Model Params"], run_rows))

    def sec_activations(self):
        folder = self.out_dir / "activations"
        pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
        intro = ("`visualize_activations.py` hooks layers of a trained network during a forward pass "
                 "and saves feature-map grids as PNGs to `activations/`.")
        if not pngs:
            self.add(2, "Activation Visualization", intro, not_measured("python visualize_activations.py"))
            return
        parts = [intro + " Regenerate them with `python visualize_activations.py`."]
        for stats in self.activation_stats(folder):
            parts.append(stats)
        parts.append("\n\n".join(f"**{p.stem}**\n\n![{p.stem}]({self.link(p)})" for p in pngs))
        self.add(2, "Activation Visualization", *parts)

    def activation_stats(self, folder):
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
            head = (f"**{MODEL_NAMES.get(rec.get('model'), rec.get('model'))}** ({rec.get('source', '?')}, "
                    f"{rec.get('device', '?')}; test image {img.get('index', '?')}: true {img.get('true', '?')}, "
                    f"predicted {img.get('predicted', '?')}), from `{self.link(path)}`:")
            rows = [[x.get("layer", "?"), x.get("channels", "—"), x.get("resolution", "—"),
                     f"{x['mean']:.3f}" if _number(x.get("mean")) else "—",
                     f"{100 * x['zeros']:.1f}%" if _number(x.get("zeros")) else "—"] for x in layers]
            out.append(head + "\n\n" + table(["Layer", "Channels", "Resolution", "Mean activation",
                                                "Exact zeros"], rows))
        return out

    def sec_plots(self):
        if not self.done:
            self.add(2, "Plots", not_measured("python train_small.py"))
            return
        if not self.draw_plots:
            self.add(2, "Plots", "Not drawn this time (`--no-plots`); run `python report.py` to draw them.")
            return
        self.add(2, "Plots", f"Drawn by `python report.py` into `{self.link(self.plot_dir)}/`.")
        for model in MODEL_ORDER + tuple(sorted({r.model for r in self.done} - set(MODEL_ORDER))):
            runs = self.model_runs(model)
            if not runs:
                continue
            heads, _ = self.config_groups(runs)
            heads = sorted(heads, key=lambda r: r.run_id)[-6:]       # the six newest configurations
            name = f"curves_{_safe(model)}.png"
            self.plots.append((name, lambda fig_runs=heads: draw_curves(fig_runs, self.label), heads))
            self.add(3, f"Training Curves: {MODEL_NAMES.get(model, model)}",
                     f"![training curves {model}]({self.link(self.plot_dir / name)})",
                     "Runs: " + ", ".join(f"`{r.run_id}`" for r in heads) + ".")
        by_cat = self.category_best()
        bests = [(cat, by_cat[cat.key]) for cat in CATEGORIES if by_cat[cat.key]]
        self.plots.append(("per_class.png", lambda b=bests: draw_per_class(b), [r for _, r in bests]))
        self.add(3, "Per-Class Accuracy of the Best Runs",
                 f"![per-class accuracy]({self.link(self.plot_dir / 'per_class.png')})",
                 "Runs: " + ", ".join(f"{cat.name} `{r.run_id}`" for cat, r in bests) + ".")
        for model in MODEL_ORDER + tuple(sorted({r.model for r in self.done} - set(MODEL_ORDER))):
            r = best([x for x in self.model_runs(model) if x.results.get("confusion")])
            if r is None:
                continue
            name = f"confusion_{_safe(model)}.png"
            self.plots.append((name, lambda run=r: draw_confusion(run), [r]))
            self.add(3, f"Confusion Matrix: {MODEL_NAMES.get(model, model)}",
                     f"![confusion matrix {model}]({self.link(self.plot_dir / name)})",
                     f"Run: `{r.run_id}` ({pct(r.accuracy)}); rows are the true class, columns the prediction.")

    def sec_index(self):
        rows = []
        for r in self.train:
            resumes = r.rec.get("resumes")
            resumed = f" (resumed {len(resumes)}×)" if isinstance(resumes, list) and resumes else ""
            if r.complete:
                state = "complete" + resumed
            elif r.status == "complete":
                state = "complete, but its log has no results"
            else:
                state = f"{r.status} (epoch {len(r.history)}/{r.epochs}){resumed}"
            rows.append([f"`{r.run_id}`", MODEL_NAMES.get(r.model, r.model), r.epochs,
                         "yes" if r.augment else "no", "yes" if r.onecycle else "no", r.device, r.precision,
                         r.chip, f"`{self.dataset_id(r)}`", pct(r.accuracy) if r.complete else "—",
                         secs(r.at().time) if r.complete else "—", state])
        parts = [table(["Run", "Model", "Epochs", "Aug", "OneCycle", "Device", "Precision", "Chip",
                        "Dataset", "Accuracy", "Time", "Status"], rows) if rows
                 else not_measured("python train_small.py")]
        if self.bench:
            parts.append("Benchmark records (`python benchmark.py`):\n\n" + table(
                ["Run", "Benchmark", "Model", "Batch size", "Device", "Chip", "Status"],
                [[f"`{r.run_id}`", r.rec.get("benchmark") or "—", r.rec.get("model") or "—",
                  r.rec.get("batch_size") or "—", r.device, r.chip, r.status] for r in self.bench]))
        other = [r for r in self.all if r.kind not in ("train", "benchmark")]
        if other:
            parts.append("Other records (not used): " + ", ".join(f"`{r.run_id}` ({r.kind})" for r in other) + ".")
        self.add(2, "Run Index", *parts)
        others = [(r, _scalars(r.results)) for r in self.latest_benchmarks(with_devices=False)]
        others = [(r, rows) for r, rows in others if rows]
        if others:
            self.add(3, "Other Benchmark Results", "The newest record of each benchmark; plain values only.",
                     *[f"**{r.rec.get('benchmark') or 'benchmark'}** (run `{r.run_id}`, {r.device}, "
                       f"{r.chip}):\n\n" + table(["Result", "Value"], rows) for r, rows in others])


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scalars(results, skip=()):
    """[key, value] rows for the plain values of a results dict; floats to 4 significant digits."""
    rows = []
    for k, v in sorted(results.items()):
        if k in skip or not isinstance(v, (int, float, str, bool)):
            continue
        rows.append([k, f"{v:.4g}" if isinstance(v, float) else v])
    return rows


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# ---------------------------------------------------------------- plots

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
        steps = _steps_per_epoch(r)
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


def _steps_per_epoch(r):
    n, bs = r.dataset.get("train_images"), r.batch_size
    if isinstance(n, int) and isinstance(bs, int) and bs > 0:
        return math.ceil(n / bs)
    return max((b for _, b, _ in r.loss_lines), default=1)


def draw_per_class(bests):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(len(bests), 1)
    for i, (cat, r) in enumerate(bests):
        pcs = r.at().per_class
        xs = [j + (i - (len(bests) - 1) / 2) * width for j in range(len(CLASSES))]
        ax.bar(xs, [pcs.get(c, 0) for c in CLASSES], width, label=f"{cat.name} ({pct(r.accuracy)})")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title="Per-class accuracy, best run of each model")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def draw_confusion(r):
    import numpy as np
    plt = _pyplot()
    m = np.asarray(r.results["confusion"], dtype=float)            # (true, predicted) counts
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
    ax.set(xlabel="predicted", ylabel="true", title=f"{r.run_id} ({pct(r.accuracy)})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def write_plots(report, dpi):
    plt = _pyplot()
    for name, draw, _ in report.plots:
        fig = draw()
        try:
            atomic.save_figure(report.plot_dir / name, fig, dpi=dpi, metadata={"Software": None})
        finally:
            plt.close(fig)


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
        report = Report(runs, out_dir, plot_dir, runs_label, draw_plots=not args.no_plots)
        text = report.build()
        if report.plots:
            write_plots(report, args.dpi)
        atomic.write_text(output, text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    done = sum(r.complete for r in runs)
    print(f"wrote {output} from {done} complete run(s) of {len(runs)} log(s)"
          + (f" and {len(report.plots)} plot(s) in {plot_dir}" if report.plots else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
