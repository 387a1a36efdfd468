"""Write results.md and its plots from the run logs: every figure is read from a run, none typed.

    python report.py                                   # runs/*/run_log.json -> results.md, results/*.png
    python report.py --runs runs --output /tmp/rep/results.md

Reads every ``<runs>/*/run_log.json``.  Only runs whose status is ``complete`` feed
the tables; the others are listed in the run index.  The main tables take only runs
on the whole official CIFAR-10 (its content, 50,000 training and 10,000 test images);
runs on other data (a JPEG copy, a quick run on a subset) have a section of their own.
Runs of one configuration with different seeds read as mean ± standard deviation
(n = seeds); comparisons are made at equal epochs.  Every table names the run ids it
comes from.  With a fixed learning rate, epoch k of a longer run is the same
computation as a k-epoch run with the same seed, so a missing k-epoch column may be
filled from a longer run's history ("run-id @ epoch k").  The output depends only on
the logs (no clock), so running it twice gives the same file.  A log that cannot be
read is skipped with a warning on stderr.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
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
from runs import (BUSY_MARGIN, DEVICE_ORDER, FULL_TEST, FULL_TRAIN, best, by_seed, choose_setup, config_groups,
                  configurations, is_number, load_runs, representative, resolve_sample, sample_std,
                  training_options)

CLASSES = plots.CLASSES
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}
NOT_MEASURED = "Not measured yet"
MAX_DPI = 600                  # a 600-dpi plot is already about 5,000 pixels wide
BUSY_MARK = "†"
BUSY_NOTE = (f"† Timed on a busy machine: other processes kept {BUSY_MARGIN:g} CPUs or more busy, on average "
             "over the run's training time (the machine's busy CPU time less the run's own; logs without "
             f"that measure: the mean 1-minute load average over the run's epochs, older logs: the larger of "
             f"its start and end loads, exceeded the CPU count + {BUSY_MARGIN:g}), so other work shared the "
             "processors and the time reads longer than the run alone would take.")
BENCH_BUSY_NOTE = (f"† Measured on a busy machine: other processes kept {BUSY_MARGIN:g} CPUs or more busy, on "
                   "average, while the benchmark ran (the machine's busy CPU time less the benchmark's own), "
                   "so its rates may read low.")
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


def at_recipe_defaults(run):
    """The run's batch size, learning rate, weight decay, momentum and options are its recipe's.

    The seed's rows are the recipes as the scripts train them; a run with other
    hyperparameters is its own configuration (in its model's table), never one of those rows.
    """
    recipe = recipes.recipe(run.model)
    d = recipe.config()
    weight_decay = (d.weight_decay if "weight_decay" in recipe.defaults
                    else recipes.ONECYCLE_WEIGHT_DECAY if run.onecycle else d.weight_decay)
    lr_key = "max_lr" if run.onecycle else "lr"
    c = run.cfg
    return (run.batch_size == d.batch_size and c.get(lr_key) == getattr(d, lr_key)
            and c.get("weight_decay") == weight_decay and c.get("momentum") == d.momentum
            and all(c.get(k, v) == v for k, v in recipes.OPTIONS.items()))


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
    def epochs(self):
        return self.target.epochs

    @property
    def command(self):
        return command(self.recipe.model, self.target.epochs, **self.target.flags)

    def holds(self, run):
        """``run`` is this row: its model and flags, the target's epochs, the recipe's hyperparameters."""
        defaults = recipes.Config()
        return (run.model == self.recipe.model and run.epochs == self.target.epochs
                and all(run.cfg.get(k, getattr(defaults, k, None)) == v for k, v in self.target.flags.items())
                and at_recipe_defaults(run))


def categories():
    return [Category(r, t) for r, t in recipes.targets()]


def is_large(aug, onecycle):
    """Runs of the wide LeNet's recipe with (or without) augmentation and OneCycle."""
    return lambda r: (r.model == "large" and r.augment == aug and r.onecycle == onecycle
                      and at_recipe_defaults(r))


# ---------------------------------------------------------------- formatting

def pct(v):
    return "—" if v is None else f"{v:.2f}%"


def pc(v):
    """A class's accuracy; n/a for a class with no test image."""
    return "n/a" if v is None else f"{v:.1f}%"


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


def points(v):
    """A difference of overall accuracies: '+0.95 points'."""
    return "—" if v is None else f"{round(v, 2) + 0.0:+.2f} points"


def accuracy_text(s):
    """A sample's accuracy: '84.91 ± 0.21% (n=3)' over several seeds, '84.91%' for one."""
    if s is None:
        return "—"
    if getattr(s, "n", 1) >= 2 and s.accuracy_std is not None:
        return f"{s.accuracy:.2f} ± {s.accuracy_std:.2f}% (n={s.n})"
    return pct(s.accuracy)


def time_text(s):
    """A cell's or sample's training time (the mean over seeds), † when the machine was busy; for
    seeds on several machines, which machine's time it is: '30.00s (AMD EPYC, 3 of 4 seeds)'."""
    if s is None:
        return "—"
    text = secs(s.time) + (BUSY_MARK if s.time is not None and s.busy else "")
    if s.time is not None and len(getattr(s, "chips", ())) > 1:
        chip, n = s.timed
        text += f" ({chip}, {n} of {s.n} seeds)"
    return text


def busy_note(items):
    """The † footnote when one of ``items`` (cells, samples) was timed on a busy machine."""
    return BUSY_NOTE if any(x is not None and x.busy and x.time is not None for x in items) else ""


def params_text(n):
    return f"{n:,}" if isinstance(n, int) else "—"


def sha_text(v):
    return f"`{v[:12]}…`" if isinstance(v, str) and v else "not recorded"


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


def config_label(run, chips, seed=True, options=True, machines=None):
    """'CPU, 2 Epochs, augmentation, OneCycleLR' with non-default settings added; where the document
    has several machines, the run's, or ``machines`` (those a sample's seeds ran on)."""
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
    if seed and run.seed is not None and run.seed != recipes.DEFAULT_SEED:
        parts.append(f"seed {run.seed}")
    lr_key = "max_lr" if run.onecycle else "lr"
    if run.cfg.get(lr_key) not in (None, getattr(defaults, lr_key)):
        parts.append(f"{lr_key.replace('_', ' ')} {run.cfg[lr_key]}")
    if options and (settings := settings_text(run.cfg)):
        parts.append(settings)
    if len(chips) > 1:
        parts.append(" + ".join(machines or [run.chip]))
    return ", ".join(parts)


def class_rows_sorted(per_class):
    """(class, accuracy) best first, classes without test images last; usual order among equals."""
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted(per_class.items(), key=lambda kv: (kv[1] is None, -(kv[1] or 0), order.get(kv[0], 99), kv[0]))


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
        row = [c] + [pc(p[c]) if c in p else "—" for p in pcs]
        if delta_header:
            a, b = pcs[base].get(c), pcs[other].get(c)
            row.append(delta(b - a) if a is not None and b is not None else "—")
        rows.append(row)
    headers = ["Class"] + [label for label, _ in columns] + ([delta_header] if delta_header else [])
    return table(headers, rows)


def extremes(base, new):
    """'largest gain: dog (+21.7); largest drop: horse (-6.9)' from two per-class dicts."""
    diffs = sorted(((new[c] - base[c], c) for c in class_names(base, new)
                    if base.get(c) is not None and new.get(c) is not None),
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
    """Time, accuracy, final loss and the runs of each cell or sample (None: not measured)."""
    return [["**Time**"] + [time_text(c) if c else "not measured" for c in cells],
            ["**Overall Accuracy**"] + [accuracy_text(c) if c else "not measured" for c in cells],
            ["**Final Loss**"] + [loss(c.final_loss) if c else "not measured" for c in cells],
            ["Run"] + [c.ref if c else "—" for c in cells]]


def history_note():
    return ("With a fixed learning rate, epoch k of a longer run with the same seed is the same "
            "computation as a k-epoch run, so a cell cited as \"run @ epoch k\" is read from that "
            "run's per-epoch history (Reproducibility, \"Longer Runs Against Shorter Ones\", "
            "compares the two where both were run).")


def seeds_note(samples, one_setup=False):
    """What mean ± std means, when one of ``samples`` pools several seeds.  ``one_setup``: the
    samples come from one machine and setup (``choose_setup``), not pooled across machines."""
    if not any(s is not None and s.n >= 2 for s in samples):
        return ""
    where = ("every column here comes from one machine and setup, so their times compare; seeds of "
             "the same recipe run on other machines count only in that recipe's own table"
             if one_setup else
             "seeds run on several machines pool their accuracy, and the time names the machine it "
             "was taken on")
    return ("A value over several seeds is their mean ± sample standard deviation (n = number of seeds; "
            "a rerun with a seed already counted is not a new sample: the fastest run of each seed stands "
            "for it, and on one machine reruns are identical); losses are "
            "means, and times the mean of the seeds timed on an idle machine (of all, marked †, when "
            f"none was); {where}.")


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


# ---------------------------------------------------------------- datasets

def dataset_name(run):
    """What the run's dataset is, from its fingerprint (data.describe_dataset)."""
    import data                # torch comes with it; only the names of datasets need it
    d = run.dataset
    return data.describe_dataset(d.get("content_sha256"), d.get("official"), d.get("files_id") or d.get("id"))


def dataset_id(run):
    return run.dataset.get("id", "unknown")


def dataset_size(run):
    return f"{run.dataset.get('train_images', '?')} / {run.dataset.get('test_images', '?')}"


def data_label(run):
    """'' for the whole official CIFAR-10; else what the run trained on, to label it with."""
    if run.full_official:
        return ""
    return f"{dataset_name(run)}, {dataset_size(run)} images"


def why_not_main(run):
    """Why a complete run is kept out of the main tables ('' when it is in them)."""
    if run.full_official:
        return ""
    d = run.dataset
    if run.ablation:
        return f"{run.val:,} images held out for validation: in Recipe Ablation"
    if (d.get("train_images"), d.get("test_images")) != (FULL_TRAIN, FULL_TEST):
        return f"{dataset_size(run)} images, not the full set"
    return "not the official images" if d.get("official") is False else "dataset not recorded"


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
    def main(self):
        """Complete runs on the whole official CIFAR-10: the only runs of the main tables."""
        return [r for r in self.done if r.full_official]

    @cached_property
    def ablation(self):
        """Complete runs of the recipe ablation (official content less a validation split)."""
        return [r for r in self.done if r.ablation]

    @cached_property
    def other(self):
        """Complete runs on other data (another copy, a subset), ablation runs aside."""
        return [r for r in self.done if not r.full_official and not r.ablation]

    @cached_property
    def bench(self):
        return [r for r in self.runs if r.kind == "benchmark"]

    @cached_property
    def chips(self):
        return sorted({r.chip for r in self.done})

    def link(self, path):
        return Path(os.path.relpath(path, self.out_dir)).as_posix()

    def label(self, run, seed=True):
        return config_label(run, self.chips, seed)

    def sample_label(self, s):
        """A configuration's label; its seed only when it has one."""
        return config_label(s.run, self.chips, seed=s.n < 2, machines=s.chips)

    def model_runs(self, model):
        """The model's complete runs of the main tables."""
        return [r for r in self.main if r.model == model]

    def model_heading(self, model):
        params = sorted({r.params for r in self.train if r.model == model and isinstance(r.params, int)})
        name = model_name(model)
        return f"{name} ({params_text(params[-1])} params)" if params else name


def best_sample(samples):
    """The most accurate sample (by its mean); the one with the newest run among equals."""
    return max(samples, key=lambda s: (s.accuracy if s.accuracy is not None else -1,
                                       max(r.run_id for r in s.runs)), default=None)


def category_best(ctx):
    """[(category, its most accurate configuration (a Sample) or None)] in the recipes' order."""
    return [(cat, best_sample(configurations([r for r in ctx.main if cat.holds(r)]))) for cat in categories()]


PROGRESSION_EPOCHS = (2, 10, 20)


def progression_cells(ctx, epochs=PROGRESSION_EPOCHS):
    """Samples of the wide LeNet after ``epochs`` (fixed rate, no augmentation), from one setup."""
    fixed = [r for r in ctx.main if is_large(False, False)(r)]
    return choose_setup(fixed, [(lambda r: True, k) for k in epochs])


# (label, (augment, onecycle), epochs): with and without augmentation at equal epochs.
AUGMENTATION_COLUMNS = [("No Aug (20 epochs)", (False, False), 20),
                        ("With Aug (20 epochs)", (True, False), 20),
                        ("No Aug (40 epochs)", (False, False), 40),
                        ("With Aug (40 epochs)", (True, False), 40)]


def augmentation_cells(ctx):
    """Samples of the augmentation table's columns (``AUGMENTATION_COLUMNS``), from one setup."""
    return choose_setup(ctx.main, [(is_large(*flags), k) for _, flags, k in AUGMENTATION_COLUMNS])


# ---------------------------------------------------------------- the sections

def header(ctx):
    """Every machine behind a figure of the document (complete runs and benchmarks), then the rules."""
    machines = {}
    for r in ctx.done + [b for b in ctx.bench if b.status == "complete" and b.results]:
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
    note += (f" The main tables take only runs on the whole official CIFAR-10 (its content; "
             f"{FULL_TRAIN:,} training and {FULL_TEST:,} test images)")
    if ctx.other:
        note += (f"; {len(ctx.other)} complete run(s) on other data are in "
                 "[Runs on Other Data](#runs-on-other-data)")
    note += (". Comparisons are made at equal epochs; runs of one configuration with several seeds "
             "read as mean ± standard deviation (n = seeds).")
    return hw + "\n\n" + note


def data_section(ctx):
    by_name = {}
    for r in ctx.train:
        by_name.setdefault(dataset_name(r), []).append(r)
    if not by_name:
        return [block(2, "Data", not_measured(first_command()))]
    rows = []
    for name, rs in sorted(by_name.items(), key=lambda kv: (not kv[1][0].dataset.get("official"), kv[0])):
        ids = sorted({f"`{dataset_id(r)}`" for r in rs})
        official = {r.dataset.get("official") for r in rs}
        folders = sorted({str(r.dataset.get("folder")) for r in rs if r.dataset.get("folder")})
        sizes = sorted({dataset_size(r) for r in rs})
        main = sum(r.complete and r.full_official for r in rs)
        rows.append([name, ", ".join(ids), "yes" if official == {True} else "no" if official == {False}
                     else "not recorded" if official == {None} else "mixed",
                     ", ".join(folders) or "—", ", ".join(sizes), len(rs),
                     f"{main} of {len(rs)}" if main else "no"])
    text = table(["Dataset", "Id", "Official", "Folder", "Train / test images", "Runs", "In the main tables"],
                 rows)
    text += ("\n\nEach run log fingerprints its dataset: the id is the start of the sha256 of the decoded "
             "images and labels (logs written before that digest existed: of the files' md5 sums), and "
             "the dataset is named by what that fingerprint is, never guessed from its folder. Only runs "
             f"on the official content at full size ({FULL_TRAIN:,} / {FULL_TEST:,} images) enter the main "
             "tables; the [Run Index](#run-index) gives the dataset of every run.")
    return [block(2, "Data", text)]


def run_bullets(s):
    r = s.run
    lines = [f"- **Overall accuracy:** {accuracy_text(s)}",
             f"- **Training time:** {time_text(s)}",
             f"- **Final loss:** {loss(s.final_loss)}",
             f"- **Device:** {r.device} ({r.precision})"]
    if s.n >= 2:
        lines.append(f"- **Seeds:** {', '.join(str(c.seed) for c in s.cells)}")
        lines.append(f"- **Runs:** {s.ref}")
    else:
        lines.append(f"- **Run:** `{r.run_id}`")
    return "\n".join(lines)


def configurations_table(ctx, samples, groups_of, with_device=True):
    """One row per configuration (a Sample over its seeds)."""
    headers = (["Configuration"] + (["Device", "Precision"] if with_device else [])
               + ["Epochs", "Accuracy", "Time", "Final loss", "Runs", "Runs of this config"])
    rows = [[ctx.sample_label(s)] + ([s.run.device, s.run.precision] if with_device else [])
            + [s.run.epochs, accuracy_text(s), time_text(s), loss(s.final_loss), s.ref,
               len(groups_of(s))] for s in samples]
    return table(headers, rows)


def runs_of(runs):
    """``sample -> every run of its configuration`` among ``runs``."""
    return lambda s: [r for r in runs if r.configuration == s.run.configuration]


def model_section(ctx, model):
    """One row per configuration of ``model``, then each configuration's per-class table."""
    text = description(model)
    if model == "large":
        text += "\n\n" + table(["Layer", "Config"], LARGE_LAYERS)
    runs = ctx.model_runs(model)
    extra = tutorial_loop_section(ctx) if model == "small" else []
    if not runs:
        return [block(2, ctx.model_heading(model), text, not_measured(command(model)))] + extra
    samples = configurations(runs)
    blocks = [block(2, ctx.model_heading(model), text,
                    f"Batch size {', '.join(sorted({str(r.batch_size) for r in runs}))}. One row per "
                    "configuration; of identical runs (same seed) the fastest.",
                    configurations_table(ctx, samples, runs_of(runs)), seeds_note(samples), busy_note(samples))]
    seen = {}
    for s in samples:
        heading = ctx.sample_label(s)
        seen[heading] = seen.get(heading, 0) + 1
        if seen[heading] > 1:
            heading += f" ({s.run.run_id})"
        blocks.append(block(3, heading, run_bullets(s), per_class_table(s.per_class)))
    return blocks + extra


def tutorial_loop_records(ctx):
    """{(chip, epochs): {seed: newest record}} of ``benchmark.py small --warmup 0`` on the whole
    official CIFAR-10, trained whole epochs: both nets trained exactly as their loops train."""
    groups = {}
    for r in sorted(ctx.bench, key=lambda r: r.run_id):
        st, res = r.rec.get("settings") or {}, r.results or {}
        if (r.rec.get("benchmark") != "small" or r.status != "complete" or not r.full_official
                or st.get("warmup") != 0 or not isinstance(st.get("epochs"), int)
                or not isinstance(st.get("seed"), int)
                or not all(is_number(res.get(k)) for k in ("ours_accuracy", "tutorial_accuracy"))):
            continue
        groups.setdefault((r.chip, st["epochs"]), {})[st["seed"]] = r
    return groups


def mean_sd(xs):
    """(mean, sample standard deviation or None for one value) of ``xs``."""
    return sum(xs) / len(xs), sample_std(xs)


def tutorial_loop_section(ctx):
    """train_small.py's loop against the PyTorch tutorial's, same data and seeds: test accuracy."""
    groups = tutorial_loop_records(ctx)
    intro = ("`python benchmark.py small --warmup 0 --seed S` trains the tutorial's LeNet twice from "
             "the same initial weights, for the same epochs, on the same data: through this project's "
             "loop (the images as uint8 tensors on the device, batched normalisation with the "
             "training set's mean and std) and through the PyTorch tutorial's own (a PIL image per "
             "item, `ToTensor` and `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`, a `DataLoader`), "
             "then tests each net the way its loop does. The first net is train_small.py's, weight for "
             "weight, on one machine (the last column compares the final weights where runs/ holds "
             "such a run). The two loops draw different batches from one seed, "
             "so they compare over seeds, not seed by seed.")
    if not groups:
        return [block(3, "Against the Tutorial's Own Loop", intro,
                      not_measured("python benchmark.py small --warmup 0"))]
    rows, seed_rows = [], []
    for (chip, epochs), by in sorted(groups.items()):
        ours = mean_sd([by[k].results["ours_accuracy"] for k in by])
        tut = mean_sd([by[k].results["tutorial_accuracy"] for k in by])
        rows.append([chip, epochs, mean_text(ours, len(by)), mean_text(tut, len(by)), points(ours[0] - tut[0]),
                     ", ".join(f"`{by[k].run_id}`" for k in sorted(by))])
        seed_rows += [[chip, epochs, k, pct(by[k].results["ours_accuracy"]),
                       pct(by[k].results["tutorial_accuracy"]), same_weights_text(ctx, by[k], epochs, k)]
                      for k in sorted(by)]
    return [block(3, "Against the Tutorial's Own Loop", intro,
                  table(["Chip", "Epochs", "This project's loop", "The tutorial's loop",
                         "Difference of the means", "Runs"], rows),
                  table(["Chip", "Epochs", "Seed", "This project's loop", "The tutorial's loop",
                         "train_small.py with this seed on this machine"], seed_rows))]


def same_weights_text(ctx, bench, epochs, seed):
    """Whether the benchmark's first net has the final weights of a train_small.py run of the same
    seed, epochs, machine and CPU settings: 'same weights (`run`)', 'other weights (`run`)', or why not told."""
    st = bench.rec.get("settings") or {}
    twins = [r for r in ctx.main if r.model == "small" and r.epochs == epochs and r.seed == seed
             and r.chip == bench.chip and r.device == bench.device and at_recipe_defaults(r)
             and not r.augment and not r.onecycle and r.cfg.get("onednn", True) == st.get("ours_onednn")
             and r.hw.get("torch_threads") == st.get("ours_threads")]
    if not twins:
        return "no such run"
    run = max(twins, key=lambda r: r.run_id)
    ours, theirs = bench.results.get("ours_weights_sha256"), run.results.get("weights_sha256")
    if not ours or not theirs:
        return f"weights not recorded (`{run.run_id}`)"
    return f"{'same' if ours == theirs else 'other'} weights (`{run.run_id}`)"


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


def bench_load(r):
    """What else used the machine while a benchmark ran, for its heading: "other processes 0.03 CPUs"."""
    v = r.other_cpus()
    if v is None:
        return "other processes' CPU use not recorded"
    return f"other processes {v:.2f} CPUs" + (BUSY_MARK if r.bench_busy() else "")


def bench_busy_note(records):
    return BENCH_BUSY_NOTE if any(r.bench_busy() for r in records) else ""


def benchmark_tables(ctx):
    """Training throughput per device from benchmark records (``results.devices``)."""
    parts = []
    records = latest_benchmarks(ctx, with_devices=True)
    for r in records:
        title = (f"**Throughput benchmark:** model {r.rec.get('model', '—')}, batch size "
                 f"{r.rec.get('batch_size', '—')}, {r.chip} (run `{r.run_id}`, {bench_load(r)}). Speedup: "
                 "images/s divided by the CPU's.")
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
    note = bench_busy_note(records)
    return parts + ([note] if note else [])


def device_comparison_section(ctx):
    fixed = [r for r in ctx.main if is_large(False, False)(r)]
    rows = []
    for setup in sorted({r.setup[:4] for r in fixed}):
        cell = resolve_sample([r for r in fixed if r.setup[:4] == setup], 2)
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
            body.append([label, time_text(c), accuracy_text(c), speed, "; ".join(x.load for x in c.runs), c.ref])
        parts.append(table(["Device", "Time", "Accuracy", "Speedup", "Load avg (start → end)", "Run"],
                           body))
        parts.append("Load avg is the machine's 1-minute load average logged at the start and the end "
                     "of the run: a value above the CPU count means the timing shared the machine.")
        parts += [seeds_note(rows), busy_note(rows)]
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


def setup_sentence(ctx, cells, batch=False):
    """" Device D (P)[, batch size B][, seed S][, machine]." of a one-setup comparison's columns:
    the seed when every column is one run, the machine when results.md has several."""
    r0 = next(c for c in cells if c).run
    return (f" Device {r0.device} ({r0.precision})"
            + (f", batch size {r0.batch_size}" if batch else "")
            + (f", seed {r0.seed}" if all(c is None or c.n == 1 for c in cells) else "")
            + (f", {r0.chip}" if len(ctx.chips) > 1 else "") + ".")


def progression_section(ctx):
    cells = progression_cells(ctx)
    fill = command("large", 20)
    parts = ["Large LeNet-style CNN, fixed learning rate, no augmentation."]
    if any(cells):
        parts[0] += setup_sentence(ctx, cells, batch=True)
        parts.append(table(["Metric"] + [f"{k} Epochs" for k in PROGRESSION_EPOCHS], metric_rows(cells)))
        parts += [seeds_note(cells, one_setup=True), busy_note(cells)]
        if any(c and c.derived for c in cells):
            parts.append(history_note())
        if not all(cells):
            parts.append(not_measured(fill))
    else:
        parts.append(not_measured(fill))
    return [block(3, "Training Progression", *parts)]


def per_class_by_epoch_section(ctx):
    by_epoch = [(k, c) for k, c in zip(PROGRESSION_EPOCHS, progression_cells(ctx)) if k in (10, 20)]
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
                    "learning rates, weight decay, seed, precision, dataset; on a CPU also its threads and "
                    "convolution kernels) on the same device and machine. "
                    "Match is ✓ when every run logged exactly the same value. Reproduction is a property "
                    "of the computation, so runs on any dataset count here; the dataset is named when it "
                    "is not the whole official CIFAR-10.")]
    order = model_order()
    keys = sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 9,
                                         groups[k][0].setup, k[1:], groups[k][0].run_id))
    for key in keys:
        rs = sorted(groups[key], key=lambda r: r.run_id)
        first = rs[0]
        on = data_label(first)
        blocks.append(block(3, f"{model_name(first.model)}, {ctx.label(first)}, seed {first.seed}"
                            + (f" — {on}" if on else ""), *repro_table(rs)))
    return blocks


def repro_table(rs):
    """The compared values of runs ``rs`` of one recipe, the verdict and Run 1's per-class table."""
    lines = rs[0].loss_lines
    points_ = []
    if lines:
        points_.append(lines[0][:2])
        ep1 = [x for x in lines if x[0] == 1]
        if ep1 and ep1[-1][:2] not in points_:
            points_.append(ep1[-1][:2])
        if lines[-1][:2] not in points_:
            points_.append(lines[-1][:2])
    rows = []

    def add_row(name, values, fmt, exact_fmt=None):
        """✓ equal, ✗ different, or 'not recorded' when a run did not log the value (older logs)."""
        known = [v for v in values if v is not None]
        same = all(v == known[0] for v in known)
        shown = [fmt(v) if v is not None else "not recorded" for v in values]
        if not same and exact_fmt and len(set(shown)) < len(shown):
            shown = [exact_fmt(v) if v is not None else "not recorded" for v in values]
        match = "✗" if not same else "✓" if len(known) == len(values) else "not recorded"
        rows.append([name] + shown + [match])

    for ep, b in points_:
        vals = [next((x[2] for x in r.loss_lines if x[:2] == (ep, b)), None) for r in rs]
        add_row(f"Loss [{ep}, {b}]", vals, lambda v: f"{v:.3f}", lambda v: f"{v:.6f}")
    add_row("**Overall Accuracy**", [r.accuracy for r in rs], pct)
    add_row("Final weights sha256", [r.results.get("weights_sha256") for r in rs],
            lambda v: f"`{v[:12]}…`")
    if any(r.cfg.get("ema") for r in rs):               # the weights such a run evaluated
        add_row("Weight average (EMA) sha256", [r.results.get("weights_ema_sha256") for r in rs],
                lambda v: f"`{v[:12]}…`")
    headers = ["Metric"] + [f"Run {i}" for i in range(1, len(rs) + 1)] + ["Match"]
    runs_line = "Runs: " + ", ".join(f"Run {i} = `{r.run_id}`" for i, r in enumerate(rs, 1)) + "."
    differ = [row[0].strip("*") for row in rows if row[-1] == "✗"]
    unrecorded = [row[0].strip("*") for row in rows if row[-1] == "not recorded"]
    if differ:
        verdict = f"**Result:** the runs differ in {', '.join(differ)}."
    elif unrecorded:
        verdict = (f"**Result:** every value that all runs recorded is identical ({len(rows) - len(unrecorded)} "
                   f"of {len(rows)}); not recorded by every run (an older log): {', '.join(unrecorded)}.")
    else:
        verdict = (f"**Result:** all {len(rows)} compared values are identical: the runs reproduce "
                   "bit for bit.")
    return [table(headers, rows), runs_line, verdict,
            f"Per-class accuracy of Run 1 (`{rs[0].run_id}`):", per_class_table(rs[0].at().per_class)]


def but_length(run):
    """``Run.recipe`` but for the number of epochs: runs equal in it compute the same epochs."""
    return run.recipe[:1] + run.recipe[2:]


def twin_values(run, ref, k, after=0):
    """``run`` (k epochs) against epoch k of ``ref``, the same computation: (run's, ref's, match) as
    text for the loss lines after epoch ``after``, the accuracy and the weights sha256; match is ✓, ✗
    or not recorded."""
    h = ref.history[k - 1]
    ref_sha = h.get("weights_sha256") or (ref.results.get("weights_sha256") if ref.epochs == k else None)
    run_sha = run.results.get("weights_sha256")
    ref_lines = [x for x in ref.loss_lines if after < x[0] <= k]
    run_lines = [x for x in run.loss_lines if x[0] > after]
    return [(f"{len(run_lines)} lines", f"{len(ref_lines)} lines",
             "✓" if run_lines and run_lines == ref_lines else "✗"),
            (pct(run.accuracy), pct(h.get("test_accuracy")),
             "✓" if run.accuracy == h.get("test_accuracy") else "✗"),
            (sha_text(run_sha), sha_text(ref_sha),
             "not recorded" if not (ref_sha and run_sha) else "✓" if run_sha == ref_sha else "✗")]


def overall_match(matches):
    """✗ if any value differs, else not recorded if any is missing, else ✓."""
    return next((m for m in ("✗", "not recorded") if m in matches), "✓")


def prefix_section(ctx):
    """Uninterrupted fixed-rate runs against the same epochs of a longer run of the same computation:
    the evidence for the "run @ epoch k" cells."""
    plain = sorted((r for r in ctx.done if not r.rec.get("resumes") and not r.onecycle), key=lambda r: r.run_id)
    rows = []
    for run in plain:
        for ref in plain:
            if (but_length(ref) == but_length(run) and ref.epochs > run.epochs
                    and len(ref.history) >= run.epochs):
                values = twin_values(run, ref, run.epochs)
                on = data_label(run)
                rows.append([f"`{run.run_id}`", f"`{ref.run_id}` @ epoch {run.epochs}",
                             f"{model_name(run.model)}, {ctx.label(run)}" + (f"; {on}" if on else "")]
                            + [f"{a} / {b}" for a, b, _ in values] + [overall_match([m for *_, m in values])])
    if not rows:
        return []
    matches = [r[-1] for r in rows]
    verdict = {"✗": f"**Result:** {matches.count('✗')} of {len(rows)} pairs differ.",
               "not recorded": f"**Result:** all {len(rows)} pairs are identical where both runs recorded the values.",
               "✓": f"**Result:** all {len(rows)} pairs are identical: epoch k of the longer run is the k-epoch run."
               }[overall_match(matches)]
    return [block(3, "Longer Runs Against Shorter Ones",
                  "A run with a fixed learning rate against the same epochs of a longer run of the same "
                  "computation (same recipe, seed, device and machine; neither resumed): the loss lines up to "
                  "that epoch, the test accuracy and the weights after it, as \"shorter / longer\". "
                  "Match is ✓ when all three are identical.",
                  table(["Run", "Same epochs of", "Configuration", "Loss lines", "Accuracy",
                         "Weights sha256", "Match"], rows), verdict)]


def resumed_section(ctx):
    """Runs interrupted and resumed, against an uninterrupted run of the same computation."""
    resumed = [r for r in ctx.done if r.rec.get("resumes")]
    if not resumed:
        return []
    blocks = []
    for run in sorted(resumed, key=lambda r: r.run_id):
        k = run.epochs
        refs = [r for r in ctx.done if not r.rec.get("resumes") and but_length(r) == but_length(run)
                and (r.epochs == k or (not r.onecycle and r.epochs > k and len(r.history) >= k))]
        first = run.rec["resumes"][0]
        after, before = first.get("after_epoch", 0), first.get("epochs_before")
        if before is None:                              # logs older than epochs_before
            how = f"stopped after epoch {after} of {k}, resumed"
        elif before == after < k:
            how = f"extended from {before} to {k} epochs"
        else:
            how = f"interrupted after epoch {after} of {k}, resumed"
        on = data_label(run)
        title = (f"`{run.run_id}`: {how} ({model_name(run.model)}, {ctx.label(run)}"
                 + (f"; {on}" if on else "") + ")")
        if not refs:
            blocks.append((title, "No uninterrupted run of the same computation to compare with yet."))
            continue
        ref = representative(refs)
        names = ["Loss lines after the resume", f"Accuracy after epoch {k}", f"Weights sha256 after epoch {k}"]
        rows = [[name, *values] for name, values in zip(names, twin_values(run, ref, k, after))]
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
             "RandomHorizontalFlip against none, at equal epochs.")
    cmds = [command("large", k, augment=aug) for _, (aug, _), k in AUGMENTATION_COLUMNS]
    if not any(cells):
        return [block(2, "Data Augmentation", intro, not_measured(*sorted(set(cmds))))]
    intro += setup_sentence(ctx, cells)
    parts = [intro, table(["Metric"] + [label for label, _, _ in AUGMENTATION_COLUMNS], metric_rows(cells)),
             seeds_note(cells, one_setup=True), busy_note(cells)]
    if any(c and c.derived for c in cells):
        parts.append(history_note())
    missing = sorted({cmds[i] for i, c in enumerate(cells) if c is None})
    if missing:
        parts.append(not_measured(*missing))
    pairs = [(k, cells[i], cells[i + 1]) for i, (_, _, k) in enumerate(AUGMENTATION_COLUMNS)
             if i % 2 == 0 and cells[i] and cells[i + 1]]
    if pairs:
        parts.append("**Key findings:** " + "; ".join(
            f"at {k} epochs, {accuracy_text(aug)} with augmentation against {accuracy_text(no)} without "
            f"({points(aug.accuracy - no.accuracy)})" for k, no, aug in pairs) + ".")
    blocks = [block(2, "Data Augmentation", *parts)]
    if pairs:
        k, no, aug = pairs[-1]                       # the longest equal-epoch pair
        text = per_class_compare([(f"No Aug ({k} ep)", no.per_class), (f"Aug ({k} ep)", aug.per_class)],
                                 delta_header="Δ")
        text += (f"\n\nBoth at {k} epochs. **Key findings:** {extremes(no.per_class, aug.per_class)}.")
        blocks.append(block(3, "Per-Class Accuracy Comparison", text))
    return blocks


def scheduling_section(ctx):
    fixed, cyc = choose_setup(ctx.main, [(is_large(True, False), 40), (is_large(True, True), 40)])
    heading = "Learning Rate Scheduling (40 Epochs)"
    intro = "Large LeNet-style CNN with augmentation, 40 epochs: fixed learning rate against OneCycleLR."
    if cyc:
        c = cyc.run.cfg
        intro = ("Large LeNet-style CNN with augmentation, 40 epochs: fixed learning rate "
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
                               [["**Overall Accuracy**"] + [accuracy_text(c) if c is x else "not measured"
                                                            for x in (fixed, cyc)],
                                ["Run"] + [c.ref if c is x else "—" for x in (fixed, cyc)]]))
        parts.append(not_measured(*missing))
        return [block(2, heading, *parts)]
    loss_change = (f"{round(100 * (cyc.final_loss - fixed.final_loss) / fixed.final_loss) + 0:+d}%"
                   if fixed.final_loss and cyc.final_loss is not None else "—")
    time_change = (f"{cyc.time / fixed.time:.2f}x" if fixed.time and cyc.time is not None else "—")
    rows = [["**Overall Accuracy**", accuracy_text(fixed), accuracy_text(cyc),
             points(cyc.accuracy - fixed.accuracy)],
            ["**Final Loss**", loss(fixed.final_loss), loss(cyc.final_loss), loss_change],
            ["**Time**", time_text(fixed), time_text(cyc), time_change],
            ["Run", fixed.ref, cyc.ref, ""]]
    if len(ctx.chips) > 1:
        intro += f" Both on {cyc.run.chip}."
    parts = [intro, table(["Metric", "Fixed LR", "OneCycleLR", "Change"], rows),
             seeds_note([fixed, cyc], one_setup=True), busy_note([fixed, cyc])]
    if fixed.derived:
        parts.append(history_note())
    text = per_class_compare([("Fixed LR", fixed.per_class), ("OneCycleLR", cyc.per_class)],
                             delta_header="Δ")
    text += f"\n\n**Key findings:** {extremes(fixed.per_class, cyc.per_class)}."
    return [block(2, heading, *parts),
            block(3, "Per-Class Accuracy Comparison (Fixed LR vs OneCycleLR)", text)]


def seed_rows_section(ctx, heading, intro, headers, row_of):
    """A section with one row per seed's row (``categories``): ``row_of(category, its best Sample
    or None)``, the seeds note, and the commands of the rows not measured yet."""
    rows, missing, shown = [], [], []
    for cat, s in category_best(ctx):
        rows.append(row_of(cat, s))
        (missing if s is None else shown).append(cat.command if s is None else s)
    parts = [intro, table(headers, rows), seeds_note(shown)]
    if missing:
        parts.append(not_measured(*missing, sep=" / "))
    return [block(2, heading, *parts)]


def targets_section(ctx):
    def row_of(cat, s):
        if s is None:
            return [cat.name, f"≥{cat.target.accuracy:g}%", cat.epochs, "—", "not measured", "—"]
        short = cat.target.accuracy - s.accuracy
        status = "✓ Achieved" if short <= 0 else f"✗ {short:.2f} points below"
        return [cat.name, f"≥{cat.target.accuracy:g}%", cat.epochs, accuracy_text(s), status, s.ref]
    return seed_rows_section(
        ctx, "Acceptable Accuracy Targets",
        "Each target is the seed's row: its recipe as the script trains it, at the epochs shown. "
        "Status from the most accurate configuration of each row (over its seeds when it has several).",
        ["Model", "Target Accuracy", "Epochs", "Accuracy", "Status", "Runs"], row_of)


EPOCHS_SERIES = (2, 10, 20, 40)


def epochs_section(ctx):
    """The wide LeNet without augmentation at a fixed rate: accuracy after more epochs, nothing else varied."""
    heading = "Epoch Training and Diminishing Returns"
    entries = [(k, c) for k, c in zip(EPOCHS_SERIES, progression_cells(ctx, EPOCHS_SERIES)) if c]
    if not entries:
        return [block(2, heading, not_measured(command("large", 20)))]
    rows, prev = [], None
    for k, c in entries:
        rows.append([k, accuracy_text(c), "-" if prev is None else points(c.accuracy - prev), c.ref])
        prev = c.accuracy
    return [block(2, heading,
                  "Large LeNet-style CNN, fixed learning rate, no augmentation: accuracy after more epochs, "
                  "nothing else changed (augmentation and OneCycleLR are compared in their own sections).",
                  table(["Epochs", "Accuracy", "Δ from Previous", "Run"], rows),
                  seeds_note([c for _, c in entries]))]


def deep_model_section(ctx, model):
    """A deeper network: its most accurate configuration, per class, against the wide LeNet at equal epochs."""
    runs = ctx.model_runs(model)
    heading = ctx.model_heading(model)
    name = model_name(model)
    intro = description(model)
    target_epochs = max((t.epochs for t in recipes.recipe(model).targets),
                        default=recipes.recipe(model).config().epochs)
    if not runs:
        return [block(2, heading, intro, not_measured(command(model, target_epochs)))]
    samples = configurations(runs)
    top = best_sample(samples)
    r = top.run
    rows = [["**Overall Accuracy**", f"**{accuracy_text(top)}**"], ["**Training Time**", time_text(top)],
            ["**Final Loss**", loss(top.final_loss)], ["**Device**", f"{r.device} ({r.precision})"],
            ["**Epochs**", r.epochs], ["**Seed**", ", ".join(str(c.seed) for c in top.cells)],
            ["Run", top.ref]]
    parts = [intro, "Most accurate configuration:", table(["Metric", "Value"], rows),
             seeds_note([top]), busy_note([top])]
    longest = max(x.epochs for x in runs)
    if longest < target_epochs:
        parts.append(f"Only short runs so far (at most {longest} epochs): the "
                     f"{target_epochs}-epoch recipe has not been measured yet: run "
                     f"`{command(model, target_epochs)}`, then `python report.py`.")
    blocks = [block(2, heading, *parts),
              block(3, "Per-Class Accuracy", per_class_table(top.per_class))]
    wides = configurations([x for x in ctx.main if is_large(True, True)(x)])
    pairs = [(s, best_sample([w for w in wides if w.run.epochs == s.run.epochs]))
             for s in sorted(samples, key=lambda s: (-s.run.epochs, -(s.accuracy or 0)))]
    pairs = [(s, w) for s, w in pairs if w is not None]
    if pairs:
        s, w = pairs[0]                               # the longest runs that both models have
        k = s.run.epochs
        text = per_class_compare([(f"Large CNN ({accuracy_text(w)})", w.per_class),
                                  (f"{name} ({accuracy_text(s)})", s.per_class)], delta_header="Δ")
        text += (f"\n\nBoth at {k} epochs. Runs: Large LeNet-style CNN + OneCycleLR {w.ref}, "
                 f"{name} {s.ref}. **Key findings:** {extremes(w.per_class, s.per_class)}.")
    else:
        have = sorted({s.run.epochs for s in samples})
        text = (f"No run of the Large LeNet-style CNN + OneCycleLR at the epochs of a {name} run "
                f"({', '.join(map(str, have))}) yet: a per-class comparison waits for equal epochs. "
                + not_measured(*[command("large", k, augment=True, onecycle=True) for k in have]))
    blocks.append(block(3, "Comparison vs Large LeNet-style CNN + OneCycleLR", text))
    blocks.append(block(3, f"All {name} Configurations",
                        configurations_table(ctx, samples, runs_of(runs), with_device=False)))
    return blocks


def architectures_section(ctx):
    def row_of(cat, s):
        if s is None:
            return [cat.name, "—", cat.epochs, "not measured", cat.features, "—"]
        return [cat.name, params_text(s.run.params), cat.epochs, accuracy_text(s),
                f"{cat.features}, batch size {s.run.batch_size}", s.ref]
    return seed_rows_section(
        ctx, "Architecture Comparison",
        "Each row is its recipe at its own epochs (the seed's rows, as in the targets): rows with "
        "different epochs describe the recipes, not which network learns more in equal time.",
        ["Model", "Params", "Epochs", "Accuracy", "Key Features", "Runs"], row_of)


# ---------------------------------------------------------------- the recipe ablation

ABLATION_VARIANTS = (("model", ()), ("ema", ("ema",)), ("model+tta", ("tta",)), ("ema+tta", ("ema", "tta")))
OPTION_TEXT = {
    "label_smoothing": lambda v: f"label smoothing {v}",
    "nesterov": lambda v: "Nesterov" if v else "no Nesterov",
    "decay_norm_bias": lambda v: "weight decay on norms and biases" if v else "no weight decay on norms and biases",
    "cutout": lambda v: f"Cutout {v} px",
}


def option_text(key, value):
    return OPTION_TEXT[key](value) if key in OPTION_TEXT else f"{key} {value}"


def options_text(options):
    """Training options (``options_key`` pairs) as text: "label smoothing 0.1, Nesterov"."""
    return ", ".join(option_text(k, v) for k, v in options)


def evaluation_text(ema, tta):
    """How weights are evaluated, as text: "EMA 0.999 + flip TTA" ("" for the model alone)."""
    return " + ".join(x for x in (f"EMA {ema}" if ema else "", "flip TTA" if tta else "") if x)


@dataclass(frozen=True)
class AblationRow:
    """One training configuration evaluated one way, over its seeds: {seed: (val %, test %)}."""
    label: str
    values: dict
    runs: tuple

    @property
    def n(self):
        return len(self.values)

    def stat(self, i):
        """(mean, sample std or None) of val (i=0) or test (i=1) accuracy over the seeds."""
        return mean_sd([v[i] for v in self.values.values()])


def mean_text(stat, n):
    m, sd = stat
    return f"{m:.2f}%" if sd is None else f"{m:.2f} ± {sd:.2f}% (n={n})"


def ablation_row(label, group, variant):
    """The row of ``variant`` over the seeds of ``group`` (each seed's representative run), or None."""
    values, used = {}, []
    for seed, rs in by_seed(group).items():
        r = representative([r for r in rs if variant in r.evaluations])
        if r is not None:
            values[seed] = (r.evaluations[variant]["val"], r.evaluations[variant]["test"])
            used.append(r)
    return AblationRow(label, values, tuple(used)) if values else None


def best_recipe_row(model):
    """(training options, evaluation variant) of ``model``'s ``--recipe best`` in an ablation's
    terms, or None: the row of the ablation table that the named recipe trains and evaluates."""
    best = recipes.recipe(model).best
    if not best:
        return None
    return options_key(best), recipes.variant_name(best.get("ema"), best.get("tta"))


def options_key(cfg):
    """``cfg``'s training options as a sorted tuple: the key that groups an ablation's runs."""
    return tuple(sorted(training_options(cfg).items(), key=str))


def ablation_rows(runs):
    """The rows of one ablation (runs sharing ``Run.ablation_base``): the seed's recipe, then each
    set of training options, each evaluated every way its runs were; ``--recipe best``'s row says so."""
    named = best_recipe_row(runs[0].model) if runs else None
    groups = {}
    for r in runs:
        groups.setdefault(options_key(r.cfg), []).append(r)

    rows = []
    for options in sorted(groups, key=lambda o: (len(o), str(o))):
        group = groups[options]
        train_text = options_text(options)
        decay = next((r.cfg.get("ema") for r in group if r.cfg.get("ema")), None)
        for variant, evaluated in ABLATION_VARIANTS:
            if not any(variant in r.evaluations for r in group):
                continue
            extra = evaluation_text(decay if "ema" in evaluated else None, "tta" in evaluated)
            label = ("seed's recipe" if not options and not extra else
                     "+ " + " + ".join(x for x in (train_text, extra) if x))
            if (options, variant) == named:
                label += " (`--recipe best`)"
            row = ablation_row(label, group, variant)
            if row is not None:
                rows.append(row)
    return rows


def paired_change(row, base, i):
    """(mean change of val (i=0) or test (i=1) accuracy from ``base`` over the seeds both rows
    ran, True): a seed fixes the initial weights, the data order and the augmentation, so each
    seed is compared with itself.  (change of the means, False) when they share no seed."""
    shared = [s for s in row.values if s in base.values]
    if not shared:
        return row.stat(i)[0] - base.stat(i)[0], False
    return sum(row.values[s][i] - base.values[s][i] for s in shared) / len(shared), True


def ablation_table(rows):
    base = next((r for r in rows if r.label == "seed's recipe"), None)

    def change(row, i):
        if base is None or row is base:
            return "—"
        value, paired = paired_change(row, base, i)
        return points(value) + ("" if paired else " ‡")
    # A mean over fewer seeds is not ranked against one over more: the bold goes to the highest
    # validation accuracy among the rows with the most seeds.
    most = max(r.n for r in rows)
    best_val = max((r for r in rows if r.n == most), key=lambda r: r.stat(0)[0])
    out = [[f"**{r.label}**" if r is best_val else r.label, mean_text(r.stat(0), r.n), change(r, 0),
            mean_text(r.stat(1), r.n), change(r, 1), ", ".join(f"`{x.run_id}`" for x in r.runs)] for r in rows]
    return table(["Change", "Val accuracy", "Δ val", "Test accuracy", "Δ test", "Runs"], out)


BEST_SEEDS = 3                  # the best recipe's targets are means over this many seeds
SEEDS_ARG = ",".join(str(recipes.DEFAULT_SEED + i) for i in range(BEST_SEEDS))     # 1111,1112,1113
ABLATION_ARGS = f"--val 5000 --ema 0.999 --tta --seeds {SEEDS_ARG}"
# The ablation of each model: its script and the options it compares (the README's loops).
_FOUR = "[--label-smoothing 0.1 | --nesterov | --no-decay-norm-bias | --cutout 8 | all four]"
ABLATION_COMMANDS = {
    "small": f"python train_small.py {ABLATION_ARGS} "
             "[--label-smoothing 0.1 | --label-smoothing 0.2 | --nesterov | --cutout 8]",
    "resnet18": f"python train_resnet.py --epochs 40 {ABLATION_ARGS} {_FOUR}",
    "large": f"python train_large.py --augment --onecycle --epochs 40 {ABLATION_ARGS} {_FOUR}",
}


def ablation_section(ctx):
    """Runs with a validation split, by model and shared base: each option against the seed's recipe.

    Each model of ``ABLATION_COMMANDS`` without such runs gets the command that fills its part.
    """
    parts = ["Runs with a validation split (`--val N`: N training images held out, the same ones for every "
             "seed, so these runs train on fewer images than the main tables' runs): each recipe option "
             "against the seed's recipe on the same split, at equal epochs. Options are judged on validation "
             "accuracy (in bold, the highest among the rows with the most seeds); the test accuracy stands "
             "beside it and chooses nothing. The row "
             "marked `--recipe best` is what the named recipe trains and evaluates, built one change at a time: "
             "a change joins it only when it gains more validation accuracy, paired by seed, than the recipe "
             "before it spreads over the seeds (its standard deviation). EMA and "
             "flip TTA change only what is evaluated, so every run reports its final weights evaluated each "
             "way it can (`evaluations` in its results): the model and, with `--ema`, the weight average, "
             "each without and with flip TTA. Δ: change against the seed's recipe on the same split, "
             "the mean over the seeds both rows ran (‡: they share no seed, so the change of the means)."]
    blocks = [block(2, "Recipe Ablation (Validation Split)", *parts)]
    models = [m for m in model_order(ctx.ablation)
              if m in ABLATION_COMMANDS or any(r.model == m for r in ctx.ablation)]
    for m in models:
        bases = {}
        for r in ctx.ablation:
            if r.model == m:
                bases.setdefault(r.ablation_base, []).append(r)
        shown = 0
        for base in sorted(bases, key=str):
            rs = bases[base]
            rows = ablation_rows(rs)
            if not rows:
                continue
            shown += 1
            head = rs[0]
            label = config_label(head, ctx.chips, seed=False, options=False)
            blocks.append(block(3, f"{model_name(m)}: {label}, {head.val:,} held out",
                                f"Trained on {FULL_TRAIN - head.val:,} images; validation on the "
                                f"{head.val:,} held out (split seed {head.cfg.get('val_seed')}), test on "
                                f"the {FULL_TEST:,} test images.",
                                ablation_table(rows),
                                "Over several seeds: mean ± sample standard deviation (n = seeds)."
                                if any(r.n > 1 for r in rows) else ""))
        if not shown and m in ABLATION_COMMANDS:
            blocks.append(block(3, model_name(m), not_measured(ABLATION_COMMANDS[m])))
    return blocks


def is_best_recipe(recipe, epochs):
    """Runs of ``--recipe best`` as the script trains it (its options, the recipe's hyperparameters)."""
    d = recipe.config()
    lr_key = "max_lr" if recipe.best.get("onecycle", d.onecycle) else "lr"
    options = {k: recipe.best.get(k, v) for k, v in recipes.OPTIONS.items()}       # the others at the seed's

    def holds(run):
        c = run.cfg
        return (run.model == recipe.model and run.epochs == epochs and c.get("recipe") == "best"
                and all(c.get(k) == v for k, v in recipe.best.items())
                and all(c.get(k, v) == v for k, v in options.items()) and run.batch_size == d.batch_size
                and c.get(lr_key) == getattr(d, lr_key) and c.get("momentum") == d.momentum)
    return holds


def recipe_text(cfg):
    """A run's recipe options, training and evaluation: "label smoothing 0.1, flip TTA"."""
    return settings_text(cfg) or "no option"


def settings_text(cfg):
    """The recipe options of ``cfg`` (a run's config or a recipe's ``best``) off the seed's recipe,
    as text: training options, a validation split, then how it evaluates ("" for none)."""
    val = cfg.get("val")
    parts = (options_text(options_key(cfg)),
             f"{val:,} held out" if is_number(val) and val > 0 else "",
             evaluation_text(cfg.get("ema"), cfg.get("tta")))
    return ", ".join(x for x in parts if x)


def best_text(best):
    """What a recipe's ``best`` switches on, as text: "augmentation, OneCycleLR, label smoothing 0.1, ..."."""
    parts = ["augmentation" if best.get("augment") else "", "OneCycleLR" if best.get("onecycle") else "",
             settings_text(best)]
    return ", ".join(x for x in parts if x)


def earlier_best(ctx, recipe, epochs):
    """Samples of full-set ``--recipe best`` runs of ``recipe`` at ``epochs`` with other options
    than the recipe sets now: an earlier choice of the ablation, or flags that override it."""
    now = is_best_recipe(recipe, epochs)
    runs = [r for r in ctx.main if r.model == recipe.model and r.epochs == epochs
            and r.cfg.get("recipe") == "best" and not now(r)]
    return configurations(runs)


def best_status(target, sample):
    """How a sample's mean test accuracy stands against a ``best_target``: met, or by how much it
    falls short, and on how few seeds when it has fewer than the target asks for."""
    if sample is None:
        return "not measured"
    short = target - sample.accuracy
    if sample.n < BEST_SEEDS:
        return (f"{'above' if short <= 0 else f'{short:.2f} points below'} on {sample.n} of the "
                f"{BEST_SEEDS} seeds the target asks for")
    return "✓ Achieved" if short <= 0 else f"✗ {short:.2f} points below"


def best_recipe_section(ctx):
    """Each model's ``--recipe best`` on the full training set beside the seed's recipe at equal epochs."""
    rows, shown, missing, earlier = [], [], [], []
    for recipe in recipes.RECIPES.values():
        if not recipe.best or not recipe.best_target:
            continue
        target, epochs = recipe.best_target
        seed_rows = [c for c in categories() if c.recipe is recipe and c.epochs == epochs
                     and all(recipe.best.get(k, v) == v for k, v in c.target.flags.items())]
        seed = best_sample(configurations([r for r in ctx.main if seed_rows[-1].holds(r)])) if seed_rows else None
        best = best_sample(configurations([r for r in ctx.main if is_best_recipe(recipe, epochs)(r)]))
        shown += [s for s in (seed, best) if s is not None]
        if best is None or best.n < BEST_SEEDS:
            missing.append(f"python {recipe.script} --recipe best --epochs {epochs} --seeds {SEEDS_ARG}")
        rows.append([recipe.name, "seed's recipe", epochs, accuracy_text(seed), f"≥{target:g}%",
                     best_status(target, seed), seed.ref if seed else "—"])
        rows.append([recipe.name, "`--recipe best`", epochs, accuracy_text(best), f"≥{target:g}%",
                     best_status(target, best), best.ref if best else "—"])
        for s in earlier_best(ctx, recipe, epochs):
            earlier.append(s)
            rows.append([recipe.name, recipe_text(s.run.cfg), epochs, accuracy_text(s), "—", "—", s.ref])
    if not rows:
        return []
    options = "; ".join(f"{r.name}: {best_text(r.best)}" for r in recipes.RECIPES.values() if r.best)
    parts = ["The named better recipe on the full training set (no validation split), beside the seed's "
             f"recipe at equal epochs, test accuracy over seeds. `--recipe best` sets: {options}.",
             table(["Model", "Recipe", "Epochs", "Test accuracy", "Target", "Status", "Runs"], rows)]
    if earlier:
        parts.append("A row named by its options holds full-set runs of `--recipe best` with other options than "
                     "it sets now: an earlier choice of the ablation, or flags given to override it.")
    parts.append(seeds_note(shown + earlier))
    if missing:
        parts.append(not_measured(*missing, sep=" / "))
    return [block(2, "Seed's Recipe vs the Best Recipe", *parts)]


def other_data_section(ctx):
    """Complete runs not on the whole official CIFAR-10, by dataset: never in the main tables."""
    if not ctx.other:
        return []
    groups = {}
    for r in ctx.other:
        groups.setdefault((dataset_name(r), dataset_size(r)), []).append(r)
    blocks = [block(2, "Runs on Other Data",
                    "Complete runs that did not train and test on the whole official CIFAR-10 (its content, "
                    f"{FULL_TRAIN:,} / {FULL_TEST:,} images): another copy of the images or a subset. Their "
                    "figures are not comparable with the seed's and stay out of every table above.")]
    order = model_order(ctx.other)
    for (name, size), rs in sorted(groups.items()):
        samples = sorted(configurations(rs), key=lambda s: order.index(s.run.model))
        ids = ", ".join(sorted({f"`{dataset_id(r)}`" for r in rs}))
        rows = [[model_name(s.run.model), ctx.sample_label(s), s.run.epochs, accuracy_text(s), time_text(s),
                 loss(s.final_loss), s.ref, len(runs_of(rs)(s))] for s in samples]
        blocks.append(block(3, f"{name} ({size} images)", f"Dataset id {ids}.",
                            table(["Model", "Configuration", "Epochs", "Accuracy", "Time", "Final loss", "Runs",
                                   "Runs of this config"], rows),
                            seeds_note(samples), busy_note(samples)))
    return blocks


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

        def values(field, missing="—"):
            vals = sorted({str(r.hw.get(field)) for r in rs if r.hw.get(field) not in (None, "")})
            return ", ".join(vals) if vals else missing
        unrecorded = "not recorded (older logs)"
        fields = [("OS", f"{values('os')} {values('os_release')}"), ("Architecture", values("architecture")),
                  ("Chip", values("chip")), ("CPU family and model", values("cpu_model_id", unrecorded)),
                  ("CPU kernels' instruction set", values("cpu_capability", unrecorded)),
                  ("CPU count", values("cpu_count")), ("GPU", values("gpu")),
                  ("Python", values("python")), ("PyTorch", values("torch")),
                  ("torchvision", values("torchvision")), ("NumPy", values("numpy"))]
        run_rows = [[f"`{r.run_id}`", model_name(r.model), r.device, r.precision,
                     r.seed, r.epochs, time_text(r.at()), r.load, pct(r.accuracy), params_text(r.params)]
                    for r in rs]
        blocks.append(block(3, f"{key[0]} ({key[1]} {key[2]})", table(["Field", "Value"], fields),
                            table(["Run", "Model", "Device", "Precision", "Seed", "Epochs", "Training Time",
                                   "Load avg (start → end)", "Overall Accuracy", "Model Params"], run_rows),
                            busy_note([r.at() for r in rs])))
    return blocks


def activations_section(ctx):
    folder = ctx.out_dir / "activations"
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    intro = ("`visualize_activations.py` hooks layers of a trained network during a forward pass "
             "and saves feature-map grids as PNGs to `activations/`.")
    command = "python visualize_activations.py --out activations"     # by default a run's maps stay in its folder
    if not pngs:
        return [block(2, "Activation Visualization", intro, not_measured(command))]
    parts = [intro + f" Regenerate them with `{command}`."]
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
    """The plots of the document, in their order, from the main tables' runs (none before one)."""
    if not ctx.main:
        return []
    out = []
    for model in model_order(ctx.main):
        runs = ctx.model_runs(model)
        if not runs:
            continue
        heads, _ = config_groups(runs)
        heads = sorted(heads, key=lambda r: r.run_id)[-6:]       # the six newest configurations
        out.append(Figure(f"curves_{safe_name(model)}.png", f"Training Curves: {model_name(model)}",
                          f"training curves {model}", "Runs: " + ", ".join(f"`{r.run_id}`" for r in heads) + ".",
                          lambda fig_runs=heads: plots.draw_curves(fig_runs, ctx.label)))
    bests = [(cat, s) for cat, s in category_best(ctx) if s]
    bars = [(f"{cat.name}, {cat.epochs} ep ({accuracy_text(s)})", s.per_class) for cat, s in bests]
    out.append(Figure("per_class.png", "Per-Class Accuracy of the Target Rows", "per-class accuracy",
                      "Each target row at its own epochs (in the legend), as in the "
                      "[targets](#acceptable-accuracy-targets). Runs: "
                      + ", ".join(f"{cat.name} ({cat.epochs} epochs) {s.ref}" for cat, s in bests) + ".",
                      lambda b=bars: plots.draw_per_class(b, "Per-class accuracy of each target row at its "
                                                             "epochs")))
    for model in model_order(ctx.main):
        r = best([x for x in ctx.model_runs(model) if x.results.get("confusion")])
        if r is None:
            continue
        out.append(Figure(f"confusion_{safe_name(model)}.png", f"Confusion Matrix: {model_name(model)}",
                          f"confusion matrix {model}",
                          f"Run: `{r.run_id}` ({pct(r.accuracy)}, {r.epochs} epochs); rows are the true class, "
                          "columns the prediction.",
                          lambda run=r: plots.draw_confusion(
                              run.results["confusion"], f"{run.run_id} ({pct(run.accuracy)}, {run.epochs} epochs)")))
    return out


def plots_section(ctx):
    if not ctx.main:
        return [block(2, "Plots", "Drawn from the runs of the main tables (the whole official CIFAR-10).",
                      not_measured(first_command()))]
    if not ctx.draw_plots:
        return [block(2, "Plots", "Not drawn this time (`--no-plots`); run `python report.py` to draw them.")]
    blocks = [block(2, "Plots", f"Drawn by `python report.py` into `{ctx.link(ctx.plot_dir)}/` from the runs "
                                "of the main tables.")]
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
        main = "no: not complete" if not r.complete else f"no: {why_not_main(r)}" if why_not_main(r) else "yes"
        rows.append([f"`{r.run_id}`", model_name(r.model), r.epochs,
                     "yes" if r.augment else "no", "yes" if r.onecycle else "no", r.device, r.precision,
                     r.chip, f"`{dataset_id(r)}`", pct(r.accuracy) if r.complete else "—",
                     time_text(r.at()) if r.complete else "—", state, main])
    parts = [table(["Run", "Model", "Epochs", "Aug", "OneCycle", "Device", "Precision", "Chip",
                    "Dataset", "Accuracy", "Time", "Status", "In the main tables"], rows) if rows
             else not_measured(first_command()),
             busy_note([r.at() for r in ctx.done])]
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
    return [block(3, "Other Benchmark Results",
                  "The newest record of each benchmark; plain values only. Other processes: the CPUs "
                  "that processes other than the benchmark (and its data-loading workers) kept busy, on "
                  "average, while it ran.",
                  *[f"**{r.rec.get('benchmark') or 'benchmark'}** (run `{r.run_id}`, {r.device}, "
                    f"{r.chip}, {bench_load(r)}):\n\n" + table(["Result", "Value"], rows) for r, rows in others],
                  bench_busy_note([r for r, _ in others]))]


# The wide LeNet's experiments (device, progression, augmentation, ...) follow its own section;
# every further model of the recipes gets a section after ResNet-18's.
LENETS = ("small", "large")


def sections(ctx):
    """Every section of results.md in order: each a list of blocks, computed from ``ctx`` alone."""
    deeper = [m for m in model_order() if m not in LENETS]
    return [
        data_section(ctx),
        *(model_section(ctx, m) for m in LENETS),
        device_comparison_section(ctx),
        progression_section(ctx),
        per_class_by_epoch_section(ctx),
        reproducibility_section(ctx),
        prefix_section(ctx),
        resumed_section(ctx),
        augmentation_section(ctx),
        scheduling_section(ctx),
        targets_section(ctx),
        epochs_section(ctx),
        *(deep_model_section(ctx, m) for m in deeper),
        architectures_section(ctx),
        ablation_section(ctx),
        best_recipe_section(ctx),
        other_data_section(ctx),
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

def build_parser():
    p = cli.Parser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", help="folder of run folders holding run_log.json (default: runs)")
    p.add_argument("--output", default="results.md", help="the results document to write (default: results.md)")
    p.add_argument("--plots", default=None,
                   help="folder for the PNG plots (default: results/ beside --output)")
    p.add_argument("--dpi", type=cli.number(int, f"a resolution from 10 to {MAX_DPI} dots per inch",
                                            low=10, high=MAX_DPI),
                   default=100, help=f"resolution of the plots, 10 to {MAX_DPI} (default: 100)")
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


def write_report(args):
    """Read the run logs, write results.md and its plots; return the exit status."""
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
    atomic.write_text(output, text, flag="--output")
    done = sum(r.complete for r in runs)
    print(f"wrote {output} from {done} complete run(s) of {len(runs)} log(s)"
          + (f" and {len(figs)} plot(s) in {plot_dir}" if figs else ""))
    return 0


def main(argv=None):
    return cli.guarded(lambda: write_report(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
