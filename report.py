"""Write results.md, results/details.md and the plots from the run logs: every figure is read from a run.

    python report.py                                   # runs/*/run_log.json -> results.md, results/
    python report.py --runs runs --output /tmp/rep/results.md

results.md is what a reader needs: the seed's rows beside ours first, then the seed's sections.
results/details.md holds what a reviewer checks: every configuration, every rerun, the ablation,
the benchmarks and the run index.  Each document is a list of sections (``RESULTS``, ``DETAILS``);
a section is a function of the loaded runs (``Report``) that returns its markdown, or "" to leave
itself out, so adding a section is one function and one entry in a list.  A network added to
``recipes.RECIPES`` appears with its rows (``Recipe.targets``, ``best``) and nothing else to edit.

The rules, written once: only complete runs count; results.md's tables take runs on the whole
official CIFAR-10 (50,000 / 10,000 images); a configuration run with several seeds reads as
mean ± sample standard deviation (n = seeds, each seed counted once), and where several
configurations could fill a row, the one over the most seeds does (then the most accurate); a
run's time is the median of its idle epochs times its epochs (``runs.Run.epoch_seconds``), and
times compare only on one machine.  The output depends only on the logs, so running it twice
gives the same files.  A log that cannot be read is skipped with a warning on stderr.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import itertools
import json
import math
import os
import re
import sys
import textwrap
from collections import namedtuple
from dataclasses import dataclass
from functools import cached_property, partial
from operator import attrgetter
from pathlib import Path

import atomic
import plots
import recipes
from ablation import ablations, evaluation_text, mean_sd, options_key, options_text, paired_change
from compare import backends_markdown, backends_problem, compare_runs, machine_pairs
from compare import markdown as comparison_markdown
from errors import UserError
from runs import (BUSY_MARGIN, DEVICE_ORDER, FULL_TEST, FULL_TRAIN, best, configurations, group, is_number,
                  latest, load_runs, representative, resolve_sample)

CLASSES = plots.CLASSES
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}
MAX_DPI = 600                  # a 600-dpi plot is already about 5,000 pixels wide
BUSY_MARK = "†"
NOT_MEASURED = "not measured yet"
BEST_SEEDS = 3                  # the best recipe's targets are means over this many seeds
SEEDS_ARG = ",".join(str(recipes.DEFAULT_SEED + i) for i in range(BEST_SEEDS))     # 1111,1112,1113
DETAILS_NAME = "details.md"     # beside the plots
WRAP = 160                      # prose lines of the documents
DESCRIPTIONS = {                # what each model's section says about its network (else its summary)
    "small": "The PyTorch tutorial's LeNet (conv 3→6→16, fc 400→120→84→10), batch size 4.",
    "large": "The same LeNet, wider (conv 3→64 and 64→128, 5x5; fc 3200→512→256→10), batch size 64.",
    "resnet18": "ResNet-18 adapted for CIFAR-10 (3x3 conv1, no max-pool, 10-class fc), augmentation and "
                "OneCycleLR, batch size 128.",
}
PLAIN, AUG, CYCLE = recipes.PLAIN, recipes.AUGMENTED, {"augment": True, "onecycle": True}
# The seed's comparisons as data: (heading, model, intro, [(column label, flags or "best", epochs)], step):
# step 1 compares each column with the one before it, step 2 the columns in pairs.
COMPARISONS = [
    ("Training Progression", "large", "Large LeNet-style CNN, fixed learning rate, no augmentation: more "
     "epochs, nothing else changed.", [(f"{k} epochs", PLAIN, k) for k in (2, 10, 20, 40)], 1),
    ("Data Augmentation", "large", "Large LeNet-style CNN, fixed learning rate, with RandomCrop(32, padding=4) "
     "and RandomHorizontalFlip against none, at equal epochs.",
     [("No Aug (20 epochs)", PLAIN, 20), ("With Aug (20 epochs)", AUG, 20),
      ("No Aug (40 epochs)", PLAIN, 40), ("With Aug (40 epochs)", AUG, 40)], 2),
    ("Learning Rate Scheduling (40 Epochs)", "large", "Large LeNet-style CNN with augmentation, 40 epochs: "
     "fixed learning rate (0.001) against OneCycleLR (max_lr 0.1, cosine, 30% warm-up) + weight decay 0.0005.",
     [("Fixed LR", AUG, 40), ("OneCycleLR", CYCLE, 40)], 2),
]
# Per-class Δ columns of a model's per-class table: (label, column, against column), labels as above.
PER_CLASS_DELTAS = {"large": [("Δ aug (40 ep)", "aug 40", "40 ep"), ("Δ OneCycle", "aug+OneCycle 40", "aug 40"),
                              ("Δ best", "best 40", "aug+OneCycle 40")],
                    "small": [("Δ best", "best 2", "2 ep")]}
# The targets an earlier results.md set the seed's rows, superseded by the seed's own figures
# (``recipes.Target``): (model, flags, epochs, bar %).
EARLIER_TARGETS = [("small", {}, 2, 50), ("large", PLAIN, 20, 70), ("large", AUG, 40, 75), ("large", CYCLE, 40, 85),
                   ("resnet18", {}, 40, 90)]
SHORT_FLAGS = {(True, False): " aug", (True, True): " aug+1cycle", (False, True): " 1cycle"}   # (augment, onecycle)
LARGE_LAYERS = [["conv1", "3→64 (5x5)"], ["conv2", "64→128 (5x5)"], ["fc1", "3200→512"],
                ["fc2", "512→256"], ["fc3", "256→10"]]


# ---------------------------------------------------------------- formatting

def dash(fmt):
    """The formatter ``fmt`` with a missing value (None) shown as —."""
    return lambda v: "—" if v is None else fmt(v)


secs, loss = dash("{:.2f}s".format), dash("{:.3f}".format)
points = dash(lambda v: f"{round(v, 2) + 0.0:+.2f} points")


def timed(cell):
    """A time in seconds, marked when every epoch of it was busy (a ``runs.Cell``)."""
    return secs(cell.time) + (BUSY_MARK if cell.busy else "")


def pct(v, digits=2, none="—"):
    return none if v is None else f"{v:.{digits}f}%"


def delta(v, bold_from=10.0):
    """A signed difference in percentage points; large gains in bold as in the seed's per-class tables."""
    text = f"{round(v, 1) + 0.0:+.1f}"
    return f"**{text}**" if v >= bold_from else text


def accuracy_text(s):
    """'84.91 ± 0.21% (n=3)' over several seeds, '84.91% (n=1)' for one."""
    if s is None or s.accuracy is None:
        return "—"
    sd = s.accuracy_std if s.n >= 2 else None
    return f"{s.accuracy:.2f}" + (f" ± {sd:.2f}" if sd is not None else "") + f"% (n={s.n})"


def mean_text(stat, n):
    m, sd = stat
    return f"{m:.2f}% (n={n})" if sd is None else f"{m:.2f} ± {sd:.2f}% (n={n})"


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
    return "\n".join(lines + ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows])


def section(level, heading, *parts):
    return "\n\n".join(["#" * level + " " + heading] + [p for p in parts if p])


def run_cmd(*commands):
    return "Run " + " and ".join(f"`{c}`" for c in commands) + ", then `python report.py`."


def command(model, epochs=None, **flags):
    """The command that trains ``model`` with ``flags`` (those at its recipe's defaults left out)."""
    recipe = recipes.recipe(model)
    text, head = recipe.command(**flags), f"python {recipe.script}"
    return text if epochs is None else f"{head} --epochs {epochs}{text[len(head):]}"


def model_name(model):
    return recipes.recipe(model).name


def device_order(device):
    return DEVICE_ORDER.get(device, 9), device


def model_order(runs=()):
    known = list(recipes.RECIPES)
    return known + sorted({r.model for r in runs} - set(known))


def class_names(*per_classes):
    names = [c for c in CLASSES if any(c in p for p in per_classes)]
    return names + sorted({c for p in per_classes for c in p} - set(names))


def extremes(base, new):
    """'9 of 10 classes improved; largest gain: bird (+13.0); largest drop: ship (-1.5)'."""
    diffs = sorted(((new[c] - base[c], c) for c in class_names(base, new)
                    if base.get(c) is not None and new.get(c) is not None), key=lambda x: (-x[0], x[1]))
    if not diffs:
        return "no classes to compare"
    parts = [f"{sum(d > 0 for d, _ in diffs)} of {len(diffs)} classes improved"]
    if diffs[0][0] > 0:
        parts.append(f"largest gain: {diffs[0][1]} ({delta(diffs[0][0], math.inf)})")
    if diffs[-1][0] < 0:
        parts.append(f"largest drop: {diffs[-1][1]} ({delta(diffs[-1][0], math.inf)})")
    return "; ".join(parts)


def joined(*parts):
    """The parts that are there (not empty, None or False), comma-separated."""
    return ", ".join(p for p in parts if p)


def listing(values, missing="—"):
    """The distinct values there (not None or empty), sorted and comma-separated; ``missing`` if none."""
    return ", ".join(sorted({str(v) for v in values if v not in (None, "")})) or missing


def settings_text(cfg):
    """The recipe options of ``cfg`` off the seed's recipe: training options, split, evaluation."""
    val = cfg.get("val")
    return joined(options_text(options_key(cfg)), is_number(val) and val > 0 and f"{val:,} held out",
                  evaluation_text(cfg.get("ema"), cfg.get("tta"), cfg.get("tta_translate")))


def best_text(best):
    return joined(best.get("augment") and "augmentation", best.get("onecycle") and "OneCycleLR", settings_text(best))


def config_label(run, options=True):
    """'CPU, 40 Epochs, augmentation, OneCycleLR' with the settings off the model's recipe added."""
    defaults, lr_key = recipes.config_for(run.model), "max_lr" if run.onecycle else "lr"
    cpu, lr = run.device == "cpu", run.cfg.get(lr_key)
    batch = defaults.batch_size if run.model in recipes.RECIPES else None
    return joined(DEVICE_NAMES.get(run.device, run.device), f"{run.epochs} Epochs",
                  run.augment and "augmentation", run.onecycle and "OneCycleLR",
                  run.precision != "fp32" and run.precision, cpu and run.cfg.get("onednn") is False and "oneDNN off",
                  cpu and run.cfg.get("threads") and f"{run.cfg['threads']} threads",
                  run.batch_size not in (None, batch) and f"batch {run.batch_size}",
                  lr not in (None, getattr(defaults, lr_key)) and f"{lr_key.replace('_', ' ')} {lr}",
                  options and settings_text(run.cfg))


# ---------------------------------------------------------------- which runs make a row

def at_recipe_defaults(run, options=None):
    """The run's batch size, learning rate, weight decay and momentum are its recipe's, and its recipe
    options are its recipe's (the seed's but for a network with options of its own), or ``options``."""
    recipe = recipes.recipe(run.model)
    d = recipe.config()
    weight_decay = (d.weight_decay if "weight_decay" in recipe.defaults
                    else recipes.ONECYCLE_WEIGHT_DECAY if run.onecycle else d.weight_decay)
    lr_key = "max_lr" if run.onecycle else "lr"
    c, options = run.cfg, {k: getattr(d, k) for k in (*recipes.OPTIONS, *recipes.FAST_OPTIONS)} | (options or {})
    return (run.batch_size == d.batch_size and c.get(lr_key) == getattr(d, lr_key)
            and c.get("weight_decay") == weight_decay and c.get("momentum") == d.momentum
            and all(c.get(k, v) == v for k, v in options.items()))


def with_best():
    """(model, recipe, target %, epochs, the seed's flags at those epochs) of each recipe with a
    ``--recipe best`` target."""
    return [(m, r, *r.best_target, next((t.flags for t in r.targets[::-1] if t.epochs == r.best_target[1]), {}))
            for m, r in recipes.RECIPES.items() if r.best and r.best_target]


# A row of the summary: what it is, the bar it is measured against, its sample (or None), the command that
# measures it, and its kind: "seed" (the seed's figure) or "best" (recipes.best_target).
Row = namedtuple("Row", "model name epochs bar bar_text sample command kind")


def accuracy_key(s):
    return s.accuracy if s.accuracy is not None else -1


def best_sample(samples):
    """The most accurate sample among those over the most seeds (a mean over fewer seeds is not ranked
    against one over more); the one with the newest run among equals."""
    return max(samples, key=lambda s: (s.n, accuracy_key(s), max(r.run_id for r in s.runs)), default=None)


def sample_of(runs, epochs):
    """The configuration of ``runs`` at ``epochs`` that ``best_sample`` picks; else the epoch of longer
    fixed-rate runs."""
    real = [r for r in runs if r.epochs == epochs]
    return best_sample(configurations(real)) if real else resolve_sample(runs, epochs)


# ---------------------------------------------------------------- the loader

@dataclass
class Report:
    """Every run loaded, the rules that choose among them, and where the documents go."""

    runs: list
    out_dir: Path               # results.md's folder
    plot_dir: Path              # details.md and the PNGs
    runs_label: str = "runs"
    draw_plots: bool = True

    def __post_init__(self):
        """The runs by what they are for: training runs, the complete ones, those on the whole official
        set (results.md's tables), with a validation split (the ablation), on other data; benchmark
        records; backends.py records of the form it writes (``compare.backends_problem``)."""
        self.train = [r for r in self.runs if r.kind == "train"]
        self.done = [r for r in self.train if r.complete and r.epochs > 0]
        self.main = [r for r in self.done if r.full_official]
        self.ablation = [r for r in self.done if r.ablation]
        self.other = [r for r in self.done if not r.full_official and not r.ablation]
        self.bench = [r for r in self.runs if r.kind == "benchmark"]
        self.backends = [r for r in self.runs if r.kind == "backends" and r.status == "complete"
                         and backends_problem(r.rec) is None]

    @cached_property
    def machines(self):
        """{machine key: short label}: 'EPYC B'; a letter per machine in the order it first ran, so two
        CPUs of one name never read alike and a label stays as new runs come."""
        first = {}
        for r in sorted(self.done + [b for b in self.bench if b.status == "complete"], key=lambda r: r.run_id):
            first.setdefault(machine_key(r), r)
        return {k: f"{short_name(r)} {chr(65 + i) if i < 26 else i}" for i, (k, r) in enumerate(first.items())}

    def machine(self, run):
        return self.machines.get(machine_key(run), short_name(run))

    @cached_property
    def keys(self):
        """{run id: 'r12'}: training runs in run-id order (new runs append), benchmarks 'b3'."""
        keys = {r.run_id: f"r{i}" for i, r in enumerate(self.train, 1)}
        return keys | {r.run_id: f"b{i}" for i, r in enumerate(self.bench, 1)}

    def refs(self, items):
        """'r3, r5–r7' for runs (or a sample's cells); '@ epoch k' for figures read from a longer run's
        history; and which of them were continued with --resume."""
        runs = [getattr(x, "run", x) for x in items]
        nums = sorted({int(self.keys[r.run_id][1:]) for r in runs})
        spans = [[n for _, n in g] for _, g in itertools.groupby(enumerate(nums), lambda x: x[1] - x[0])]
        text = ", ".join(f"r{g[0]}" + (f"–r{g[-1]}" if len(g) > 1 else "") for g in spans)
        text += "".join(f" @ epoch {k}" for k in sorted({c.epoch for c in items if getattr(c, "derived", False)}))
        notes = [(f"{self.keys[r.run_id]} " if len(nums) > 1 else "") + resumed_text(r)
                 for r in runs if r.rec.get("resumes")]
        return text + (f" ({'; '.join(notes)})" if notes else "")

    @cached_property
    def configurations(self):
        """Samples of every configuration of the main runs, keyed 'c1'... in model and label order."""
        order = model_order(self.main)
        samples = sorted(configurations(self.main), key=lambda s: (order.index(s.run.model), s.run.epochs,
                                                                   config_label(s.run), s.run.run_id))
        return {f"c{i}": s for i, s in enumerate(samples, 1)}

    def seed_runs(self, model, flags):
        """Main runs of ``model``'s recipe as its script trains it, with ``flags`` (any epochs)."""
        defaults = recipes.Config()
        return [r for r in self.main if r.model == model and at_recipe_defaults(r)
                and all(r.cfg.get(k, getattr(defaults, k, None)) == v for k, v in flags.items())]

    def config_key(self, run):
        return next((k for k, s in self.configurations.items() if s.run.configuration == run.configuration), "")

    @cached_property
    def rows(self):
        """The summary's rows: each model's seed's rows (``Recipe.targets``), then its ``--recipe best``,
        then each network with a recipe of its own against its ``Recipe.reference``."""
        rows = [Row(model, t.name, t.epochs, t.accuracy, t.shown or f"{t.accuracy:g}%",
                    sample_of(self.seed_runs(model, t.flags), t.epochs), command(model, t.epochs, **t.flags), "seed")
                for model, recipe in recipes.RECIPES.items() for t in recipe.targets]
        for model, recipe, bar, k, _ in with_best():
            runs = [r for r in self.main if r.model == model and r.epochs == k and r.cfg.get("recipe") == "best"
                    and at_recipe_defaults(r, recipe.best) and all(r.cfg.get(o) == v for o, v in recipe.best.items())]
            rows.append(Row(model, f"{recipe.name}, `--recipe best`", k, bar, f"target {bar:g}%",
                            best_sample(configurations(runs)),
                            f"python {recipe.script} --recipe best --epochs {k} --seeds {SEEDS_ARG}", "best"))
        for model, recipe in recipes.RECIPES.items():
            if recipes.own_recipe(model) and recipe.reference:
                k = recipe.defaults["epochs"]
                at_k = [r for r in self.seed_runs(model, {}) if r.epochs == k]
                rows.append(Row(model, f"{recipe.name}, its own recipe", k, *recipe.reference,
                                best_sample(configurations(at_k)), f"python {recipe.script} --seeds {SEEDS_ARG}",
                                "own"))
        return rows

    def column(self, model, flags, epochs):
        """A comparison's column: the seed's recipe with ``flags``, or ``--recipe best`` ("best")."""
        if flags == "best":
            return next((row.sample for row in self.rows if row.kind == "best" and row.model == model), None)
        return sample_of(self.seed_runs(model, flags), epochs)

    def time_text(self, s, rule=None):
        """'1290.12s on EPYC B' (``runs.Sample``: the mean over the seeds timed on that machine), † busy;
        by the per-epoch rule, or ``rule`` (``whole_run``)."""
        t, busy, runs = (rule or per_epoch)(s) if s is not None else (None, None, None)
        return "—" if t is None else f"{secs(t)}{BUSY_MARK if busy else ''} on {self.machine(runs[0])}"

    def link(self, path, doc_dir):
        return Path(os.path.relpath(path, doc_dir)).as_posix()

    @property
    def details_path(self):
        return self.plot_dir / DETAILS_NAME

    def details(self, anchor="", text="details"):
        """A link from results.md to results/details.md (at ``anchor``)."""
        return f"[{text}]({self.link(self.details_path, self.out_dir)}{'#' + anchor if anchor else ''})"

    @cached_property
    def flops(self):
        """The newest complete ``benchmark.py flops`` record (each network's FLOP per image), or None."""
        return latest([b for b in self.bench if b.status == "complete" and b.rec.get("benchmark") == "flops"])

    def params(self, model):
        """The largest parameter count a run of ``model`` logged, or None."""
        return max((r.params for r in self.train if r.model == model and isinstance(r.params, int)), default=None)


def machine_key(run):
    return run.chip, str(run.hw.get("gpu") or "") if run.device == "cuda" else ""


def short_name(run):
    """The CPU's (on CUDA the GPU's) name without vendor words: 'EPYC', 'Xeon', 'H200'."""
    name = str(run.hw.get("gpu") or "") if run.device == "cuda" else ""
    name = name or str(run.hw.get("chip") or "unknown")
    words = [w for w in re.sub(r"\([^)]*\)", " ", name).split()
             if w not in ("Intel", "AMD", "NVIDIA", "Apple", "Processor", "CPU", "GPU")]
    return words[0] if words else "machine"


def resumed_text(run):
    first = run.rec["resumes"][0]
    after, before = first.get("after_epoch", 0), first.get("epochs_before")
    if before is not None and before == after < run.epochs:
        return f"extended from {before} to {run.epochs} epochs by --resume"
    return f"stopped after epoch {after} of {run.epochs}, resumed"


# ---------------------------------------------------------------- results.md

def summary(rep):
    rows, missing = [], []
    for row in rep.rows:
        s = row.sample
        if s is None:
            rows.append([row.name, row.epochs, row.bar_text, NOT_MEASURED, "—", "—", "—"])
            missing.append(row.command)
            continue
        few = f" ({s.n} of the {BEST_SEEDS} seeds the target asks)" if row.kind == "best" and s.n < BEST_SEEDS else ""
        rows.append([row.name, row.epochs, row.bar_text, accuracy_text(s) + few, points(s.accuracy - row.bar),
                     rep.time_text(s), rep.refs(s.cells)])
    where = (f"Hardware and data: {len(rep.main)} complete runs on the whole official CIFAR-10 ({FULL_TRAIN:,} "
             f"training / {FULL_TEST:,} test images), devices {listing(r.device for r in rep.main)}"
             f", on the machines {listing(rep.machines.values())} ([Hardware DNA](#hardware-dna)"
             f"); {len(rep.other) + len(rep.ablation)} more runs on other data or with a validation split, and every "
             f"table's runs, are in {rep.details()}.")
    return section(2, "Summary", table(["Row", "Epochs", "Seed", "Ours", "Δ", "Time per run", "Runs"], rows), where,
                   reading_note(rep), f"Not measured yet: {', '.join(f'`{c}`' for c in missing)}." if missing else "")


def reading_note(rep):
    seeds = sorted({c.seed for row in rep.rows if row.sample for c in row.sample.cells if c.seed is not None})
    return (f"**Reading the tables.** Ours: the mean ± sample standard deviation over seeds (n = seeds: "
            f"{', '.join(map(str, seeds)) or '—'}); a rerun of a seed already counted is not a new sample. Seed: "
            "the seed document's figure for the row, the bar to beat; for `--recipe best`, its target "
            "(`best_target` in recipes.py); for a network with a recipe of its own, the figure the seed cites for "
            "it (`reference` in recipes.py; its time, on other hardware, is not comparable). "
            "Δ: ours − that bar. Time per run: the median training time of a "
            "run's idle epochs × its epochs, the mean over the seeds timed on the machine named; an epoch is "
            f"idle unless other processes kept {BUSY_MARGIN:g} CPUs or more busy during it (older logs: unless "
            f"the 1-minute load average exceeded the CPU count + {BUSY_MARGIN:g}); {BUSY_MARK} every epoch busy, "
            "the median of them all. Times compare only on one machine. r12: a run of the "
            f"{rep.details('run-index', 'run index')}.")


def class_table(cols, deltas=()):
    """(A per-class table, its key findings): a column per (label, {class: %}) of ``cols``, then a column
    per (label, i, j) of ``deltas``, column i less column j, each with its findings (``extremes``).
    A class with no test image reads n/a, one not there —."""
    pcs = [p for _, p in cols]

    def diff(c, i, j):
        return "—" if None in (pcs[i].get(c), pcs[j].get(c)) else delta(pcs[i][c] - pcs[j][c])
    rows = [[c] + [pct(p[c], 1, "n/a") if c in p else "—" for p in pcs] + [diff(c, i, j) for _, i, j in deltas]
            for c in class_names(*pcs)]
    return (table(["Class"] + [lab for lab, _ in cols] + [lab for lab, _, _ in deltas], rows),
            [extremes(pcs[j], pcs[i]) for _, i, j in deltas])


def per_class_table(rep, model):
    """One per-class table per model: its summary rows side by side ('20 ep', 'aug 40', 'best 40'), with
    the Δ columns of ``PER_CLASS_DELTAS``."""
    cols = {}
    for row in rep.rows:
        if row.model == model and row.sample is not None and row.kind != "own":     # own: its confusion plot
            t = row.name.split("+")
            label = "best" if row.kind == "best" else "aug+OneCycle" if len(t) > 2 else "aug" if len(t) > 1 else ""
            cols[f"{label} {row.epochs}" if label else f"{row.epochs} ep"] = row.sample
    if model == "large" and (s := rep.column("large", PLAIN, 40)):
        cols["40 ep"] = s
    order = [c for c in ("2 ep", "10 ep", "20 ep", "40 ep") if c in cols] + [c for c in cols if "ep" not in c]
    deltas = [(lab, order.index(a), order.index(b)) for lab, a, b in PER_CLASS_DELTAS.get(model, [])
              if a in cols and b in cols]
    text, found = class_table([(c, cols[c].per_class) for c in order], deltas)
    findings = "; ".join(f"{lab}: {f}" for (lab, _, _), f in zip(deltas, found))
    return text + (f"\n\n**Key findings:** {findings}." if found else "") if order else ""


def model_section(rep, model):
    """A model's section: its network, its per-class table over its rows, its plots' place."""
    summary_, n = recipes.recipe(model).summary, rep.params(model)
    heading = f"{model_name(model)} ({params_text(n)} params)" if n else model_name(model)
    parts = [DESCRIPTIONS.get(model) or summary_[:1].upper() + summary_[1:] + ".",
             table(["Layer", "Config"], LARGE_LAYERS) if model == "large" else ""]
    if not any(r.model == model for r in rep.main):
        return section(2, heading, *parts, run_cmd(command(model)))
    if text := per_class_table(rep, model):
        parts += ["Per-class test accuracy of the summary's rows (the mean over their seeds):", text]
    parts.append(tutorial_loop(rep) if model == "small" else device_line(rep) if model == "large" else "")
    return section(2, heading, *parts)


def tutorial_loop(rep):
    rows = []
    for (_, epochs), by in sorted(tutorial_loop_records(rep).items()):
        ours, tut = (mean_sd([r.results[k] for r in by.values()]) for k in ("ours_accuracy", "tutorial_accuracy"))
        rows.append([rep.machine(next(iter(by.values()))), epochs, mean_text(ours, len(by)), mean_text(tut, len(by)),
                     points(ours[0] - tut[0])])
    return ("Against the PyTorch tutorial's own loop (`python benchmark.py small --warmup 0 --seed S`: the same "
            "initial weights and data, its PIL/`DataLoader` pipeline and normalisation; per seed in details):\n\n"
            + table(["Machine", "Epochs", "This project's loop", "The tutorial's loop", "Difference"], rows)
            if rows else "")


def tutorial_loop_records(rep):
    """{(chip, epochs): {seed: newest record}} of ``benchmark.py small --warmup 0`` on the official set."""
    groups = {}
    for r in sorted(rep.bench, key=lambda r: r.run_id):
        st, res = r.rec.get("settings") or {}, r.results or {}
        if (r.rec.get("benchmark") == "small" and r.status == "complete" and r.full_official
                and st.get("warmup") == 0 and isinstance(st.get("epochs"), int) and isinstance(st.get("seed"), int)
                and all(is_number(res.get(k)) for k in ("ours_accuracy", "tutorial_accuracy"))):
            groups.setdefault((r.chip, st["epochs"]), {})[st["seed"]] = r
    return groups


def device_line(rep):
    devices = sorted({r.device for r in rep.main if r.model == "large"}, key=device_order)
    if len(devices) > 1:
        return f"Each device's runs: {rep.details('configurations', 'Configurations')} (each names its device)."
    return (f"Device comparison (the seed's MPS vs CPU): only {', '.join(devices) or 'no'} runs so far; "
            f"r{run_cmd(command('large', 2, device='cuda'))[1:]} Throughput benchmarks are in "
            f"{rep.details('benchmarks')}.")


# (time, busy, runs timed) of a ``runs.Sample`` by the per-epoch rule (the reading note's) and by the
# earlier whole-run rule.
per_epoch, whole_run = attrgetter("time", "busy", "timed_runs"), attrgetter("whole_run_time")


def comparison(rep, heading, model, intro, columns, step=2, level=2, cells=None, rule=per_epoch):
    """The seed's comparison tables: one column per (label, flags, epochs) (or per sample of ``cells``),
    accuracy pooled over seeds, each time with its machine; a change only between neighbours timed on
    one machine."""
    cells = cells or [rep.column(model, flags, k) for _, flags, k in columns]
    if not any(cells):
        return section(level, heading, intro, run_cmd(*sorted({command(model, k, **f) for _, f, k in columns
                                                               if f != "best"})))
    rows = [[name] + [(fmt(c) if c else empty) for c in cells] for name, fmt, empty in (
        ("**Overall Accuracy**", accuracy_text, NOT_MEASURED), ("**Time**", lambda c: rep.time_text(c, rule), "—"),
        ("**Final Loss**", lambda c: loss(c.final_loss), "—"), ("Runs", lambda c: rep.refs(c.cells), "—"))]
    changes = []
    for i in range(0, len(columns) - 1, step):
        (la, _, _), (lb, _, _), a, b = columns[i], columns[i + 1], cells[i], cells[i + 1]
        if a and b and a.accuracy is not None and b.accuracy is not None:
            (ta, _, ra), (tb, _, rb) = rule(a), rule(b)
            same = ta and tb and rep.machine(ra[0]) == rep.machine(rb[0])
            ratio = f", time ×{tb / ta:.2f} on {rep.machine(ra[0])}" if same else ""
            lossed = (f", final loss {round(100 * (b.final_loss - a.final_loss) / a.final_loss) + 0:+d}%"
                      if a.final_loss and b.final_loss is not None else "")
            changes.append(f"{lb} against {la}: {points(b.accuracy - a.accuracy)}{lossed}{ratio}")
    return section(level, heading, intro, table(["Metric"] + [lab for lab, _, _ in columns], rows),
                   "**Key findings:** " + "; ".join(changes) + "." if changes else "")


def compare(i):
    """The section of ``COMPARISONS[i]``."""
    return lambda rep: comparison(rep, *COMPARISONS[i])


def seed_vs_best(rep):
    """Each model's seed's recipe against its ``--recipe best`` at the best recipe's epochs."""
    parts = [comparison(rep, f"{recipe.name}: Seed's Recipe vs `--recipe best`", model,
                        f"`--recipe best` ({recipes.BEST_NOTES.get(model, 'its options')}) sets "
                        f"{best_text(recipe.best)}; target {bar:g}%.",
                        [("seed's recipe", flags, k), ("`--recipe best`", "best", k)], level=3)
             for model, recipe, bar, k, flags in with_best()]
    return section(2, "Seed's Recipe vs the Best Recipe", *parts) if parts else ""


def reproducibility(rep):
    """The seed's reproducibility table for the headline group of reruns; every group in details."""
    groups = rerun_groups(rep)
    if not groups:
        return section(2, "Reproducibility", "Two runs with one configuration and seed on one machine should log "
                       f"the same losses and weights. {run_cmd(command('large', 2))} twice.")
    rs = max(groups, key=lambda g: (g[0].model == "large", g[0].full_official, g[0].epochs, g[0].run_id))
    same = sum(rerun_match(g)[0] == "✓" for g in groups)
    return section(2, "Reproducibility", f"{model_name(rs[0].model)}, {config_label(rs[0])}, seed {rs[0].seed}, on "
                   f"{rep.machine(rs[0])}: {rep.refs(rs)}.", repro_table(rs),
                   f"Of {len(groups)} groups of reruns (same configuration, seed and machine), {same} reproduce bit "
                   f"for bit in every value both logged: {rep.details('reproducibility', 'every group')}.")


def rerun_groups(rep):
    order = model_order()
    return sorted((sorted(g, key=lambda r: r.run_id) for g in group(rep.done, lambda r: r.recipe).values()
                   if len(g) >= 2), key=lambda g: (order.index(g[0].model) if g[0].model in order else 9, g[0].run_id))


def repro_table(rs):
    """The reruns ``rs`` side by side: the first loss line, the last of the middle epoch and of the last
    epoch, the accuracy and the weights, each with ✓ when every run logged the same value."""
    lines, rows, marks = rs[0].loss_lines, [], []
    if lines:
        mid = [x for x in lines if x[0] == max(1, rs[0].epochs // 2)]
        marks = list(dict.fromkeys([lines[0][:2]] + ([mid[-1][:2]] if mid else []) + [lines[-1][:2]]))

    def add(name, values, fmt):
        known = [v for v in values if v is not None]
        match = ("✗" if any(v != known[0] for v in known) else "✓" if len(known) == len(values) else "not recorded")
        shown = [fmt(v) if v is not None else "not recorded" for v in values]
        if match == "✗" and len(set(shown)) < len(shown) and fmt is not pct:
            shown = [f"{v:.6f}" if is_number(v) else s for v, s in zip(values, shown)]
        rows.append([name] + shown + [match])
    for ep, b in marks:
        add(f"Loss [{ep}, {b}]", [next((x[2] for x in r.loss_lines if x[:2] == (ep, b)), None) for r in rs], loss)
    add("**Overall Accuracy**", [r.accuracy for r in rs], pct)
    add("Final weights sha256", [r.results.get("weights_sha256") for r in rs], sha_text)
    if any(r.cfg.get("ema") for r in rs):
        add("Weight average (EMA) sha256", [r.results.get("weights_ema_sha256") for r in rs], sha_text)
    return table(["Metric"] + [f"Run {i}" for i in range(1, len(rs) + 1)] + ["Match"], rows)


def rerun_match(rs):
    """(✓, ✗ or "not recorded", [compare.py's comparison of the first run with each other one]) for
    reruns ``rs``: ✗ unless every verdict is identical, "not recorded" when a log lacks a weights digest."""
    cmps = [compare_runs(rs[0], r) for r in rs[1:]]
    if any(c["verdict"]["kind"] != "identical" for c in cmps):
        return "✗", cmps
    finals = [c["numbers"]["final_weights"].get("weights_sha256") for c in cmps]
    return ("not recorded" if any(f is None or f["equal"] is None for f in finals) else "✓"), cmps


def rerun_text(rep, sample):
    """A sentence on the reruns of ``sample``'s configuration (same seed, same machine), or ""."""
    said = {"✓": "the same loss lines, accuracy and final weights", "✗": "they differ",
            "not recorded": "the same where both logged a value"}
    parts = []
    for g in rerun_groups(rep):
        if g[0].configuration == sample.run.configuration:
            match = rerun_match(g)[0]
            sha = f" (sha256 {sha_text(g[0].results.get('weights_sha256'))})" if match == "✓" else ""
            parts.append(f"seed {g[0].seed} on {rep.machine(g[0])}, {rep.refs(g)}: {said[match]}{sha}")
    return (f"Run again with the same seed: {'; '.join(parts)} ({rep.details('reproducibility', 'every group')})."
            if parts else "")


def other_models(rep):
    """A section for each model past the two LeNets (ResNet-18, and any network the recipes add), with
    its per-class figures against the wide LeNet + OneCycleLR's at equal epochs."""
    out, wides = [], configurations(rep.seed_runs("large", CYCLE))
    for model in [m for m in model_order(rep.main) if m not in ("small", "large")]:
        samples = configurations([r for r in rep.main if r.model == model])
        parts = [model_section(rep, model)]
        if not (top := best_sample(samples)):
            out.append(parts[0])
            continue
        longest = max(s.run.epochs for s in samples)
        aims = max((t.epochs for t in recipes.recipe(model).targets), default=longest)
        most = max(samples, key=accuracy_key)
        others = "; ".join(f"{accuracy_text(s)}, {config_label(s.run)}, {rep.time_text(s)} ({rep.refs(s.cells)})"
                           for s in samples if s is not top)
        parts += [("Most accurate configuration: " if most.accuracy == top.accuracy else
                   "Configuration over the most seeds: ") + f"{accuracy_text(top)}, {config_label(top.run)}, "
                  f"{rep.time_text(top)} ({rep.refs(top.cells)}).", rerun_text(rep, top),
                  f"Other configurations: {others}." if others else "",
                  f"Only short runs so far (at most {longest} epochs). {run_cmd(command(model, aims))}"
                  if longest < aims else ""]
        pair = next(((s, w) for s in sorted(samples, key=lambda s: (-s.run.epochs, -(s.accuracy or 0)))
                     for w in [best_sample([w for w in wides if w.run.epochs == s.run.epochs])] if w), None)
        if pair:
            s, w = pair
            text, (found,) = class_table([(f"Large CNN ({accuracy_text(w)})", w.per_class),
                                          (f"{model_name(model)} ({accuracy_text(s)})", s.per_class)], [("Δ", 1, 0)])
            parts += [f"### Comparison vs Large LeNet-style CNN + OneCycleLR ({s.run.epochs} epochs)", text,
                      f"Runs: {rep.refs(w.cells)} and {rep.refs(s.cells)}. **Key findings:** {found}."]
        out.append("\n\n".join(p for p in parts if p))
    return "\n\n".join(out)


def own_rows(rep, model):
    """(label, sample) of ``model``'s summary rows measured so far ('40 ep aug+1cycle', 'best 40 ep'); a
    network with none: its own recipe's configuration that ``best_sample`` picks."""
    rows = [(("best " if row.kind == "best" else "") + f"{row.epochs} ep" + SHORT_FLAGS.get(
        (row.sample.run.augment, row.sample.run.onecycle), "") * (row.kind == "seed"), row.sample)
            for row in rep.rows if row.model == model and row.sample]
    own = own_recipe_sample(rep, model) if not rows else None
    return rows or ([(f"{own.run.epochs} ep", own)] if own else [])


def own_recipe_sample(rep, model):
    """``model``'s own recipe's configuration that ``best_sample`` picks (for a network with no seed row)."""
    return best_sample(configurations(rep.seed_runs(model, {})))


def architectures(rep):
    rows = []
    for model, recipe in recipes.RECIPES.items():
        seed = [row for row in rep.rows if row.model == model and row.kind == "seed"]
        top = best_sample([row.sample for row in seed if row.sample]) if seed else own_recipe_sample(rep, model)
        bst = rep.column(model, "best", None)
        rows.append([recipe.name, params_text(rep.params(model))] + [
            f"{accuracy_text(s)}, {s.run.epochs} ep, {rep.time_text(s)}" if s else NOT_MEASURED for s in (top, bst)]
            + [seed[-1].name if seed else "its own recipe (no seed row)", recipe.summary])
    plot = (f" Accuracy against training compute and against minutes: {compute_caption(rep)} "
            f"([plot]({rep.link(rep.plot_dir / 'compute.png', rep.out_dir)}))." if rep.flops else "")
    return section(2, "Architecture Comparison", "Each model's most accurate row of the seed's recipes and its "
                   "`--recipe best`, each at its own epochs, with its time per run and machine." + plot,
                   table(["Model", "Params", "Seed's recipes: best row", "`--recipe best`", "Row", "Network"], rows))


def compute_caption(rep):
    return (f"a run's compute is its network's FLOP per training image (counted by torch.utils.flop_counter, "
            f"{rep.keys[rep.flops.run_id]}) x training images x epochs; its time by the per-epoch rule, "
            "comparable only on one machine (one marker)")


def compute_points(rep):
    """(network, label, PFLOP, minutes or None, machine, accuracy) of each network's summary rows, for the
    networks ``rep.flops`` counted."""
    counted = rep.flops.rec["results"] if rep.flops else {}
    out = []
    for model in recipes.RECIPES:
        for label, s in own_rows(rep, model):
            if model in counted and s.accuracy is not None:
                t, _, timed = per_epoch(s)
                images = s.run.rec["dataset"]["train_images"] * s.run.epochs
                pflop = counted[model]["train_flop_per_image"] * images / 1e15
                out.append((model_name(model), label, pflop, t / 60 if t else None,
                            rep.machine(timed[0]) if t else None, s.accuracy))
    return out


def ablation_left(model, rows):
    """How many of the trainings of ``model``'s planned ablation (``OWN_ABLATIONS``, each row over
    SEEDS_ARG's seeds) ``rows`` hold, and the command for them all; "" once they are all there.  Runs
    that train alike (the same options and seed, evaluated another way) count once."""
    planned = len(OWN_ABLATIONS.get(model, ())) * BEST_SEEDS
    done = len({(options_key(r.cfg), r.seed) for row in rows for r in row.runs})
    return (f"{done} of the ablation's {planned} runs so far ({planned // BEST_SEEDS} rows that train, seeds "
            f"{SEEDS_ARG}). "
            + run_cmd(ABLATION_COMMANDS[model]) if done < planned else "")


CHANCE_LOSS = math.log(10)          # cross-entropy of a uniform guess over the ten classes (smoothed or not)


def stalled_text(rep, rows):
    """The rows whose training stalled at chance (training loss within 0.1 of ln 10) for more than one epoch,
    with those epochs: a row far below the rest that never learned at the recipe's learning rates."""
    out, seen = [], set()
    for row in rows:
        spans = []
        for run in row.runs:
            epochs = [h["epoch"] for h in run.history if h.get("train_loss", 0) >= CHANCE_LOSS - 0.1]
            if len(epochs) > 1 and run.run_id not in seen:
                seen.add(run.run_id)
                span = (f"{epochs[0]}–{epochs[-1]}" if epochs == list(range(epochs[0], epochs[-1] + 1))
                        else ", ".join(map(str, epochs)))
                spans.append(f"{span} of {run.epochs} ({rep.keys[run.run_id]})")
        if spans:
            out.append(f"{row.label}, epochs {'; '.join(spans)}")
    return (f"Training stalled at chance (loss within 0.1 of ln 10 = {CHANCE_LOSS:.2f}) at the recipe's learning "
            f"rates: {'; '.join(out)}." if out else "")


def ablation_summary(rep):
    rows, own = [], []
    for (model, _), ab_rows in ablations(rep.ablation, model_order(rep.ablation)):
        if recipes.own_recipe(model):
            own.append(section(3, f"{model_name(model)}: each trick off",
                               f"Its whole recipe, then each of its tricks turned off (the flags that do it) on a "
                               f"validation split (`--val {ab_rows[0].runs[0].val}`), on "
                               f"{', '.join(sorted({rep.machine(r) for row in ab_rows for r in row.runs}))}; "
                               "Δ against the whole recipe, "
                               "paired by seed, the largest loss first:", ablation_table(rep, ab_rows),
                               stalled_text(rep, ab_rows), ablation_left(model, ab_rows)))
            continue
        named = next((r for r in ab_rows if r.named), None)
        seed = next((r for r in ab_rows if r.base), None)
        if named and seed:
            rows.append([model_name(model), named.label.replace(" (`--recipe best`)", ""), named.n,
                         points(paired_change(named, seed, 0)[0]), points(paired_change(named, seed, 1)[0])])
    return section(2, "Recipe Ablation (Validation Split)",
                   "Each recipe option against the seed's recipe on a validation split (`--val 5000`), judged on "
                   "validation accuracy, paired by seed; the row `--recipe best` trains and evaluates:" if rows else "",
                   table(["Model", "`--recipe best` over the seed's recipe", "Seeds", "Δ val", "Δ test"], rows)
                   if rows else "", *own, f"Every row: {rep.details('recipe-ablation')}.") if rows or own else ""


def hardware(rep):
    """One row per machine: its short label, what it is, and how many runs it made."""
    intro = ("Each run records a hardware fingerprint in its `run_log.json`. Floating-point addition is not "
             "associative, and backends sum in different orders, so one seed on two machines ends with different "
             "weights; and one computation takes different times on two CPUs of one name, so each machine has a "
             "label of its own.")
    by = group(rep.done + [b for b in rep.bench if b.status == "complete"], rep.machine)
    if not by:
        return section(2, "Hardware DNA", intro, run_cmd(command("small")))
    rows = []
    for label, rs in sorted(by.items()):
        def vals(field, missing="not recorded"):
            return listing((r.hw.get(field) for r in rs), missing)
        rows.append([label, vals("chip"), vals("cpu_model_id"), vals("cpu_capability"), vals("cpu_count"),
                     vals("gpu", "—"), f"{vals('os')} {vals('os_release')} {vals('architecture')}"]
                    + [vals(k) for k in ("python", "torch", "torchvision", "numpy")]
                    + [sum(r.kind == "train" for r in rs)])
    if same := next((rs for rs in group(rep.done, lambda r: (r.configuration, r.seed)).values()
                     if len({rep.machine(r) for r in rs}) > 1), None):
        by_machine = {rep.machine(r): r for r in sorted(same, key=lambda r: r.run_id)}
        intro += (f" One computation ({model_name(same[0].model)}, {config_label(same[0])}, seed "
                  f"{same[0].seed}) took " + " and ".join(
                      f"{timed(r.at())} on {m} ({rep.keys[r.run_id]})"
                      for m, r in sorted(by_machine.items())) + "."
                  + (f" {BUSY_MARK} Timed on a busy machine (every epoch)."
                     if any(r.at().busy for r in by_machine.values()) else ""))
    return section(2, "Hardware DNA", intro, table(["Machine", "Chip", "CPU family and model", "Kernels' ISA", "CPUs",
                                                   "GPU", "OS", "Python", "PyTorch", "torchvision", "NumPy", "Runs"],
                                                  rows))


MACHINE_PAIRS_INTRO = ("Complete runs of one configuration, seed and dataset made on more than one machine or software "
                       "stack, one run of each compared with `compare.py` (which prints the same)")


def machine_comparisons(rep):
    """results.md: one line per pair of machines that made the same computation, its verdict; the tables
    are in details (``machine_comparisons_all``)."""
    by_id = {r.run_id: r for r in rep.done}
    rows = [[f"{rep.machine(by_id[c['a']['run_id']])} against {rep.machine(by_id[c['b']['run_id']])}",
             f"`python compare.py {c['a']['run_id']} {c['b']['run_id']}`",
             c["verdict"]["text"][0].upper() + c["verdict"]["text"][1:]] for c in machine_pairs(rep.done)]
    return section(3, "Same Computation, Two Machines", f"{MACHINE_PAIRS_INTRO}, and its verdict; the fields that "
                   f"differ and where the numbers part: {rep.details('same-computation-two-machines')}.",
                   table(["Machines", "Command", "Verdict"], rows)) if rows else ""


def machine_comparisons_all(rep):
    """details: ``compare.py``'s tables for each pair of ``machine_comparisons``."""
    by_id = {r.run_id: r for r in rep.done}
    parts = [f"**{rep.machine(by_id[c['a']['run_id']])} against {rep.machine(by_id[c['b']['run_id']])}**: "
             f"`python compare.py {c['a']['run_id']} {c['b']['run_id']}`\n\n{comparison_markdown(c)}"
             for c in machine_pairs(rep.done)]
    return section(2, "Same Computation, Two Machines", f"{MACHINE_PAIRS_INTRO}: the fields that differ, where "
                   "the numbers part, and the verdict.", *parts) if parts else ""


def backend_comparisons(rep):
    """One trained network's weights on two backends (backends.py records), the newest per model."""
    recs = {r.model: r for r in rep.backends}          # run-id order: the newest per model
    if not recs:
        return section(3, "Same Weights, Two Backends", "How far one network's activations and predictions part "
                       f"between CPU fp32 and bf16: {NOT_MEASURED}. {run_cmd('python backends.py')}")
    return "\n\n".join(section(3, f"Same Weights, Two Backends: {model_name(m)}", *backends_markdown(r.rec))
                       for m, r in recs.items())


def activation_pngs(rep):
    folder = rep.out_dir / "activations"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def activations(rep):
    pngs, command = activation_pngs(rep), "python visualize_activations.py --out activations"
    intro = ("`visualize_activations.py` hooks layers of a trained network during a forward pass and saves "
             "feature-map grids as PNGs to `activations/`.")          # by default a run's maps stay in its folder
    if not pngs:
        return section(2, "Activation Visualization", intro, run_cmd(command))
    overview = [p for p in pngs if p.stem.endswith("overview")] or pngs
    return section(2, "Activation Visualization", intro + f" Regenerate them with `{command}`;"
                   " every map is linked in details.", *activation_stats(rep.out_dir / "activations"),
                   "\n\n".join(f"![{p.stem}]({rep.link(p, rep.out_dir)})" for p in overview))


def activation_stats(folder):
    """Per-layer tables from ``activations/<model>_stats.json`` (written by visualize_activations.py)."""
    out = []
    for path in sorted(folder.glob("*_stats.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            layers = [x for x in rec.get("layers", []) if isinstance(x, dict)]
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            continue
        img = rec.get("image") if isinstance(rec.get("image"), dict) else {}
        rows = [[x.get("layer", "?"), x.get("channels", "—"), x.get("resolution", "—"),
                 f"{x['mean']:.3f}" if is_number(x.get("mean")) else "—",
                 f"{100 * x['zeros']:.1f}%" if is_number(x.get("zeros")) else "—"] for x in layers]
        if rows:
            out.append(f"**{model_name(rec.get('model'))}** ({rec.get('source', '?')}, {rec.get('device', '?')}; "
                       f"test image {img.get('index', '?')}: true {img.get('true', '?')}, predicted "
                       f"{img.get('predicted', '?')}):\n\n"
                       + table(["Layer", "Channels", "Resolution", "Mean activation", "Exact zeros"], rows))
    return out


def plots_section(rep):
    if not rep.main:
        return ""
    if not rep.draw_plots:
        return section(2, "Plots", "Not drawn this time (`--no-plots`); `python report.py` draws them.")
    return section(2, "Plots", *[f"![{f.alt}]({rep.link(rep.plot_dir / f.name, rep.out_dir)})\n\n{f.caption}"
                                 for f in figures(rep)])


RESULTS = [summary, partial(model_section, model="small"), partial(model_section, model="large"), compare(0),
           reproducibility, compare(1), compare(2), seed_vs_best, other_models, architectures, ablation_summary,
           hardware, machine_comparisons, backend_comparisons, activations, plots_section]


# ---------------------------------------------------------------- results/details.md

def details_intro(rep):
    return (f"What a reviewer checks behind [results.md]({rep.link(rep.out_dir / 'results.md', rep.plot_dir)}), "
            f"generated with it by `python report.py` from `{rep.runs_label}/*/run_log.json`: every "
            "configuration, every group of reruns, one computation on two machines, the recipe ablation, the "
            "benchmarks, runs on other data and the run index (rN, bN). results.md's reading note holds here too.")


def samples_table(rep, samples, runs, key=False):
    """A row per configuration's ``Sample``: its figures over its seeds, and how many of ``runs`` it has."""
    head = ["Key"] * key + ["Model", "Configuration", "Accuracy", "Time per run", "Final loss"] + ["Seeds"] * key
    rows = [[k] * key + [model_name(s.run.model), config_label(s.run), accuracy_text(s), rep.time_text(s),
                         loss(s.final_loss)] + [", ".join(str(c.seed) for c in s.cells)] * key
            + [rep.refs(s.cells), sum(r.configuration == s.run.configuration for r in runs)] for k, s in samples]
    return table(head + ["Runs", "Runs of this config"], rows)


def configurations_section(rep):
    if not rep.configurations:
        return ""
    parts = ["Every configuration of the runs on the whole official CIFAR-10, over its seeds (each seed's fastest "
             "run stands for it).", samples_table(rep, rep.configurations.items(), rep.main, key=True)]
    for model in model_order(rep.main):
        cols = [(k, s.per_class) for k, s in rep.configurations.items() if s.run.model == model]
        if cols:
            parts.append(f"**{model_name(model)}**, per-class test accuracy (the mean over the seeds):\n\n"
                         + class_table(cols)[0])
    return section(2, "Configurations", *parts)


def bench_load(rep, r):
    v = r.other_cpus()
    return f"{rep.machine(r)}, " + ("other processes' CPU use not recorded" if v is None else
                                    f"other processes {v:.2f} CPUs{BUSY_MARK if r.bench_busy() else ''}")


def latest_benchmarks(rep, with_devices):
    """The newest usable benchmark record per (benchmark, machine, model, batch size)."""
    heads = {}
    for r in rep.bench:
        if (r.status not in ("running", "interrupted", "failed") and r.results
                and isinstance(r.results.get("devices"), dict) == with_devices):
            heads[(str(r.rec.get("benchmark", "")), r.chip, str(r.rec.get("model")), str(r.rec.get("batch_size")))] = r
    return [heads[k] for k in sorted(heads)]           # run-id order: the newest per key stays


def scalars(results, skip=()):
    return [[k, f"{v:.4g}" if isinstance(v, float) else v] for k, v in sorted(results.items())
            if k not in skip and isinstance(v, (int, float, str, bool))]


def benchmarks(rep):
    """Throughput per device (``benchmark.py devices``) and every other benchmark's newest plain values."""
    parts = []
    for r in latest_benchmarks(rep, with_devices=True):
        entries = {d: v for d, v in r.results["devices"].items() if isinstance(v, dict)}
        cpu_rate = (entries.get("cpu") or {}).get("images_per_s")
        body = []
        for d in sorted(entries, key=device_order):
            rate = entries[d].get("images_per_s")
            speed = (rate / cpu_rate if is_number(rate) and is_number(cpu_rate) and cpu_rate > 0
                     else entries[d].get("speedup_vs_cpu"))
            body.append([DEVICE_NAMES.get(d, d), f"{rate:,.1f}" if is_number(rate) else "—",
                         f"{speed:.1f}x" if is_number(speed) else "—"])
        skipped = r.results.get("skipped") if isinstance(r.results.get("skipped"), dict) else {}
        body += [[DEVICE_NAMES.get(d, d), f"skipped ({skipped[d]})", "—"] for d in sorted(skipped, key=device_order)]
        extra = scalars(r.results, skip=("devices", "skipped"))
        parts.append(f"**Throughput** ({rep.keys[r.run_id]}, model {r.rec.get('model', '—')}, batch size "
                     f"{r.rec.get('batch_size', '—')}, {bench_load(rep, r)}); speedup: images/s over the CPU's:\n\n"
                     + table(["Device", "Images/s", "Speedup vs CPU"], body)
                     + ("\n\n" + table(["Result", "Value"], extra) if extra else ""))
    parts += [f"**{r.rec.get('benchmark') or 'benchmark'}** ({rep.keys[r.run_id]}, {bench_models(r)}, "
              f"{r.device}, {bench_load(rep, r)}):"
              f"\n\n" + table(["Result", "Value"], scalars(r.results))
              for r in latest_benchmarks(rep, with_devices=False) if scalars(r.results)]
    return section(2, "Benchmarks", "The newest record of each benchmark and machine (`python benchmark.py`); "
                   "other processes: the CPUs other processes kept busy, on average, while it ran.", *parts,
                   f"{BUSY_MARK} Measured on a busy machine: other processes kept {BUSY_MARGIN:g} CPUs or more busy, "
                   "so its rates may read low." if any(r.bench_busy() for r in rep.bench) else "") if parts else ""


def bench_models(r):
    """'model fast' or 'models resnet18, large': what a benchmark record measured."""
    names = str(r.rec.get("model") or "—").split(",")
    return ("models " if len(names) > 1 else "model ") + ", ".join(names)


def tutorial_loop_seeds(rep):
    rows = [[rep.machine(by[k]), epochs, k, pct(by[k].results["ours_accuracy"]),
             pct(by[k].results["tutorial_accuracy"]), same_weights(rep, by[k], epochs, k), rep.keys[by[k].run_id]]
            for (_, epochs), by in sorted(tutorial_loop_records(rep).items()) for k in sorted(by)]
    return section(2, "Against the Tutorial's Own Loop", "`python benchmark.py small --warmup 0 --seed S` trains the "
                   "tutorial's LeNet twice from the same initial weights on the same data: through this project's "
                   "loop and through the PyTorch tutorial's own (`ToTensor`, `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, "
                   "0.5))`, a `DataLoader`). The two loops draw different batches from one seed, so they compare "
                   "over seeds; the first net is train_small.py's, weight for weight, on one machine.",
                   table(["Machine", "Epochs", "Seed", "This project's loop", "The tutorial's loop",
                          "train_small.py with this seed on this machine", "Record"], rows)) if rows else ""


def same_weights(rep, bench, epochs, seed):
    """Whether train_small.py's newest run of ``seed`` and ``epochs`` on the benchmark's machine, device, threads
    and kernels ended with the weights of the benchmark's pass through this project's loop."""
    st = bench.rec.get("settings") or {}
    run = latest([r for r in rep.seed_runs("small", PLAIN)
                  if (r.epochs, r.seed, r.chip, r.device) == (epochs, seed, bench.chip, bench.device)
                  and r.cfg.get("onednn", True) == st.get("ours_onednn")
                  and r.hw.get("torch_threads") == st.get("ours_threads")])
    if run is None:
        return "no such run"
    ours, theirs = bench.results.get("ours_weights_sha256"), run.results.get("weights_sha256")
    if not ours or not theirs:
        return f"weights not recorded ({rep.keys[run.run_id]})"
    return f"{'same' if ours == theirs else 'other'} weights ({rep.keys[run.run_id]})"


def reproducibility_all(rep):
    parts = []
    for rs in rerun_groups(rep):
        (match, cmps), on = rerun_match(rs), data_label(rs[0])
        verdict = {"✓": "identical: bit for bit", "✗": "the runs differ",
                   "not recorded": "identical where every run recorded the value (older logs)"}[match]
        if match == "✗":
            verdict += "; " + "; ".join(f"Run {i}: {c['verdict']['text']}" for i, c in enumerate(cmps, 2)
                                        if c["verdict"]["kind"] != "identical")
        parts.append(f"**{model_name(rs[0].model)}, {config_label(rs[0])}, seed {rs[0].seed}, {rep.machine(rs[0])}"
                     f"{' — ' + on if on else ''}** ({rep.refs(rs)}): {verdict}.\n\n" + repro_table(rs))
    return section(2, "Reproducibility", "Runs with the same configuration (model, epochs, batch size, augmentation, "
                   "schedule, learning rates, weight decay, seed, precision, dataset; on a CPU also its threads and "
                   "convolution kernels) on the same device and machine, on any dataset. Match is ✓ when every run "
                   "logged exactly the same value.", *parts) if parts else ""


def but_length(run):
    """``Run.recipe`` but for the number of epochs: runs equal in it compute the same epochs."""
    return run.recipe[:1] + run.recipe[2:]


def twin_values(run, ref, after):
    """``run`` against the same epoch of ``ref``, the same computation: (run's, ref's, match) as text for
    the loss lines after epoch ``after``, the accuracy and the weights sha256."""
    k = run.epochs
    h = ref.history[k - 1] if 0 < k <= len(ref.history) else {}
    ref_acc = h.get("test_accuracy", ref.accuracy if ref.epochs == k else None)
    ref_sha = h.get("weights_sha256") or (ref.results.get("weights_sha256") if ref.epochs == k else None)
    run_sha = run.results.get("weights_sha256")
    ref_lines = [x for x in ref.loss_lines if after < x[0] <= k]
    run_lines = [x for x in run.loss_lines if x[0] > after]
    return [(f"{len(run_lines)} lines", f"{len(ref_lines)} lines",
             "✓" if run_lines and run_lines == ref_lines else "✗"),
            (pct(run.accuracy), pct(ref_acc), "✓" if ref_acc is not None and run.accuracy == ref_acc else "✗"),
            (sha_text(run_sha), sha_text(ref_sha),
             "not recorded" if not (ref_sha and run_sha) else "✓" if run_sha == ref_sha else "✗")]


def twins(rep):
    """Runs against a run of the same computation: a fixed-rate run against the same epochs of a longer
    one (the evidence for the "@ epoch k" cells), a resumed run against an uninterrupted one."""
    whole = sorted((r for r in rep.done if not r.rec.get("resumes")), key=lambda r: r.run_id)

    def longer(ref, run):
        return (not ref.onecycle and ref.epochs > run.epochs and len(ref.history) >= run.epochs
                and ref.history[run.epochs - 1].get("test_accuracy") is not None)     # evaluated then
    pairs = [(run, ref, "shorter run", 0) for run in whole for ref in whole
             if not run.onecycle and but_length(ref) == but_length(run) and longer(ref, run)]
    for run in sorted((r for r in rep.done if r.rec.get("resumes")), key=lambda r: r.run_id):
        refs = [r for r in whole if but_length(r) == but_length(run) and (r.epochs == run.epochs or longer(r, run))]
        pairs.append((run, representative(refs), resumed_text(run), run.rec["resumes"][0].get("after_epoch", 0)))
    rows = []
    for run, ref, how, after in pairs:
        on = data_label(run)
        head = [rep.keys[run.run_id], how, f"{model_name(run.model)}, {config_label(run)}, {rep.machine(run)}"
                + (f"; {on}" if on else "")]
        if ref is None:
            rows.append(head + ["no run of the same computation yet", "—", "—", "—", "—"])
            continue
        values = twin_values(run, ref, after)
        matches = [m for *_, m in values]
        rows.append(head + [rep.keys[ref.run_id] + (f" @ epoch {run.epochs}" if ref.epochs != run.epochs else "")]
                    + [f"{a} / {b}" for a, b, _ in values]
                    + [next((m for m in ("✗", "not recorded") if m in matches), "✓")])
    bad = sum(r[-1] == "✗" for r in rows)
    return section(2, "Runs Against Their Twins", "A run against one of the same computation, as \"run / twin\": a "
                   "fixed-rate run against the same epochs of a longer run (neither resumed), and a run continued "
                   "with `--resume` (stopped, or extended to more epochs) against an uninterrupted one; the loss lines "
                   "(after the resume), the accuracy and the weights.",
                   table(["Run", "How", "Configuration", "Twin", "Loss lines", "Accuracy", "Weights sha256", "Match"],
                         rows), f"**Result:** {bad} of {len(rows)} pairs differ." if bad else "") if rows else ""


# ---------------------------------------------------------------- the recipe ablation's tables

ABLATION_ARGS = f"--val 5000 --ema 0.999 --tta --seeds {SEEDS_ARG}"
_FOUR = "[--label-smoothing 0.1 | --nesterov | --no-decay-norm-bias | --cutout 8 | all four]"
ABLATION_COMMANDS = {
    "small": f"python train_small.py {ABLATION_ARGS} [--label-smoothing 0.1 | --label-smoothing 0.2 | --nesterov "
             "| --cutout 8]",
    "large": f"python train_large.py --augment --onecycle --epochs 40 {ABLATION_ARGS} {_FOUR}",
    "resnet18": f"python train_resnet.py --epochs 40 {ABLATION_ARGS} {_FOUR}",
    "fast": f"python train_fast.py --val 5000 --eval-every 0 --seeds {SEEDS_ARG} --precision fp32 "
            f"[{' | '.join(filter(None, recipes.FAST_ABLATION))}]",
}


OWN_ABLATIONS = {"fast": recipes.FAST_ABLATION}     # a network with a recipe of its own: its ablation's rows


def ablation_table(rep, rows):
    base = next((r for r in rows if r.base), None)

    def change(row, i):
        if base is None or row is base:
            return "—"
        value, paired = paired_change(row, base, i)
        return points(value) + ("" if paired else " ‡")
    most = max(r.n for r in rows)           # a mean over fewer seeds is not ranked against one over more
    top = max((r for r in rows if r.n == most), key=lambda r: r.stat(0)[0])
    out = [[f"**{r.label}**" if r is top else r.label, mean_text(r.stat(0), r.n), change(r, 0),
            mean_text(r.stat(1), r.n), change(r, 1), rep.refs(r.runs)] for r in rows]
    return table(["Change", "Val accuracy", "Δ val", "Test accuracy", "Δ test", "Runs"], out)


def ablation_section(rep):
    parts, shown = [], set()
    for (model, _), rows in ablations(rep.ablation, model_order(rep.ablation)):
        head = rows[0].runs[0]
        shown.add(model)
        parts.append(section(3, f"{model_name(model)}: {config_label(head, options=False)}, {rep.machine(head)}, "
                             f"{head.val:,} held out",
                             f"Trained on {FULL_TRAIN - head.val:,} images; validation on the {head.val:,} held out "
                             f"(split seed {head.cfg.get('val_seed')}), test on the {FULL_TEST:,} test images.",
                             ablation_table(rep, rows)))
    parts += [section(3, model_name(m), run_cmd(c)) for m, c in ABLATION_COMMANDS.items()
              if m in recipes.RECIPES and m not in shown]
    return section(2, "Recipe Ablation", "Runs with a validation split (`--val N`: N training images held out, the "
                   "same for every seed): each recipe option against the seed's recipe on the same split, at equal "
                   "epochs, judged on validation accuracy (in bold the highest among the rows with the most seeds); "
                   "the test accuracy chooses nothing. `--recipe best` is built one change at a time: a change joins "
                   "only when it gains more validation accuracy, paired by seed, than the recipe before it spreads "
                   "over the seeds. EMA and flip TTA change only what is evaluated, so each run reports its weights "
                   "evaluated every way (`evaluations`). Δ: against the seed's recipe, the mean over the seeds both "
                   "rows ran (‡: no seed shared, the change of the means).", *parts)


# ---------------------------------------------------------------- data, machines, the run index

def dataset_name(run):
    """What the run's dataset is, from its fingerprint (data.describe_dataset)."""
    import data                # torch comes with it; only the names of datasets need it
    d = run.dataset
    return data.describe_dataset(d.get("content_sha256"), d.get("official"), d.get("files_id") or d.get("id"))


def dataset_size(run):
    return f"{run.dataset.get('train_images', '?')} / {run.dataset.get('test_images', '?')}"


def data_label(run):
    return "" if run.full_official else f"{dataset_name(run)}, {dataset_size(run)} images"


def in_results(run):
    """'yes' for a run in results.md's tables, else 'no: ' and why not."""
    d = run.dataset
    if not run.complete:
        return "no: not complete"
    if run.full_official:
        return "yes"
    if run.ablation:
        return f"no: {run.val:,} images held out for validation: in Recipe Ablation"
    if (d.get("train_images"), d.get("test_images")) != (FULL_TRAIN, FULL_TEST):
        return f"no: {dataset_size(run)} images, not the full set"
    return "no: not the official images" if d.get("official") is False else "no: dataset not recorded"


def other_data(rep):
    parts = []
    for (name, size), rs in sorted(group(rep.other, lambda r: (dataset_name(r), dataset_size(r))).items()):
        order = model_order(rs)
        samples = sorted(configurations(rs), key=lambda s: order.index(s.run.model))
        parts.append(section(3, f"{name} ({size} images)",
                             f"Dataset id {listing(r.dataset.get('id', '?') for r in rs)}.",
                             samples_table(rep, [(None, s) for s in samples], rs)))
    return section(2, "Runs on Other Data", "Complete runs that did not train and test on the whole official CIFAR-10: "
                   "another copy of the images or a subset. Not comparable with the seed's figures.",
                   *parts) if parts else ""


def datasets(rep):
    rows = []
    for name, rs in sorted(group(rep.train, dataset_name).items(),
                           key=lambda kv: (not kv[1][0].dataset.get("official"), kv[0])):
        official = frozenset(r.dataset.get("official") for r in rs)
        main = sum(r.complete and r.full_official for r in rs)
        rows.append([name, listing(f"`{r.dataset.get('id', 'unknown')}`" for r in rs),
                     {frozenset({True}): "yes", frozenset({False}): "no", frozenset({None}): "not recorded"}.get(
                         official, "mixed"),
                     listing(r.dataset.get("folder") for r in rs), listing(map(dataset_size, rs)), len(rs),
                     f"{main} of {len(rs)}" if main else "no"])
    return section(2, "Data", table(["Dataset", "Id", "Official", "Folder", "Train / test images", "Runs",
                                     "In results.md's tables"], rows),
                   "The id is the start of the sha256 of the decoded images and labels (older logs: of the files' md5 "
                   "sums); a dataset is named by its fingerprint, never by its folder.") if rows else ""


def code_text(git):
    """A run log's ``git`` as '`0123abc`', with '+' when the tree had uncommitted changes."""
    if not isinstance(git, dict) or not isinstance(git.get("commit"), str):
        return "not recorded"
    return f"`{git['commit'][:7]}`" + ("+" if git.get("dirty") else "")


def run_index(rep):
    rows = []
    for r in rep.train:
        res = r.rec.get("resumes")
        state = ("complete" if r.complete else "complete, but its log has no results" if r.status == "complete"
                 else f"{r.status} (epoch {len(r.history)}/{r.epochs})") + (
                     f" (resumed {len(res)}×)" if isinstance(res, list) and res else "")
        cell, (idle, logged) = r.at(), r.idle_epochs
        rows.append([rep.keys[r.run_id], f"`{r.run_id}`", model_name(r.model), r.seed, r.epochs,
                     "yes" if r.augment else "no", "yes" if r.onecycle else "no", r.device, r.precision,
                     rep.machine(r), f"`{r.dataset.get('id', 'unknown')}`",
                     pct(r.accuracy) if r.complete else "—", secs(r.results.get("train_time_s")),
                     timed(cell) if r.complete else "—",
                     f"{idle}/{logged}", r.load, state, in_results(r), rep.config_key(r) if r.complete else "—",
                     code_text(r.rec.get("git"))])
    per_class = [[rep.keys[r.run_id]] + [pct(r.at().per_class.get(c), 1, "n/a") for c in CLASSES] for r in rep.done]
    other = [r for r in rep.runs if r.kind not in ("train", "benchmark") and r not in rep.backends]
    return section(2, "Run Index", table(
        ["Key", "Run", "Model", "Seed", "Epochs", "Aug", "OneCycle", "Device", "Precision", "Machine", "Dataset",
         "Accuracy", "Logged time", "Time (idle epochs)", "Idle epochs", "Load (start → end)", "Status",
         "In results.md", "Configuration", "Code"], rows) if rows else run_cmd(command("small")),
        "Logged time: the training time the run logged. Time (idle epochs): the median of its idle epochs × its "
        f"epochs ({BUSY_MARK}: no idle epoch). Configuration: its key in [Configurations](#configurations). Code: "
        "the commit it ran (+: with uncommitted changes to it).",
        "Per-class test accuracy of every complete run:\n\n" + table(["Key"] + list(CLASSES), per_class)
        if per_class else "",
        "Benchmark records (`python benchmark.py`):\n\n" + table(
            ["Key", "Run", "Benchmark", "Model", "Batch size", "Device", "Machine", "Status"],
            [[rep.keys[r.run_id], f"`{r.run_id}`", r.rec.get("benchmark") or "—", r.rec.get("model") or "—",
              r.rec.get("batch_size") or "—", r.device, rep.machine(r), r.status] for r in rep.bench])
        if rep.bench else "",
        "Backend records (`python backends.py`), shown in results.md's Hardware DNA: " + ", ".join(
            f"`{r.run_id}` ({r.model}, run `{r.rec['source']['run']}`)" for r in rep.backends) + "."
        if rep.backends else "",
        "Other records (not used): " + ", ".join(f"`{r.run_id}` ({r.kind})" for r in other) + "." if other else "")


def superseded(rep):
    """Figures an earlier results.md printed by targets and rules it no longer uses, each labelled."""
    rows = []
    for model, flags, k, bar, which in ([(*t, "Acceptable Accuracy Targets") for t in EARLIER_TARGETS] + [
            (m, flags, k, bar, "`--recipe best`'s target, applied to the seed's recipe")
            for m, _, bar, k, flags in with_best()]):
        if model in recipes.RECIPES:
            s = rep.column(model, flags, k)
            name = next((t.name for t in recipes.recipe(model).targets if t.flags == flags), model_name(model))
            rows.append([name, k, f"≥{bar:g}%", which, accuracy_text(s) if s else NOT_MEASURED,
                         "—" if s is None else "✓ achieved" if s.accuracy >= bar
                         else f"✗ {bar - s.accuracy:.2f} points below"])
    parts = [section(3, "Superseded Target Set", "An earlier results.md measured the seed's rows against two sets "
                     "of targets at once; the summary now sets each row against the seed's own figure, and "
                     "`--recipe best` against its target.", table(["Row", "Epochs", "Superseded target", "Set",
                                                                  "Ours", "Against it"], rows))]
    fixed = rep.column("large", AUG, 40)
    cyc = fixed and sample_of([r for r in rep.seed_runs("large", CYCLE) if r.chip == fixed.run.chip], 40)
    if cyc and cyc.n != rep.column("large", CYCLE, 40).n:
        text, (found,) = class_table([("Fixed LR", fixed.per_class), ("OneCycleLR", cyc.per_class)], [("Δ", 1, 0)])
        parts.append(comparison(
            rep, f"Learning Rate Scheduling on {rep.machine(fixed.run)} Alone ({cyc.n} Seeds, n Differs From the "
            "Summary)", "large", f"The earlier section took both columns from one machine, so its OneCycleLR column "
            f"holds the {cyc.n} seeds run on {rep.machine(fixed.run)}, where results.md pools every machine's; its "
            "times are the whole-run rule's (below).", COMPARISONS[2][3], level=3, cells=[fixed, cyc], rule=whole_run)
            + f"\n\n{text}\n\n**Key findings:** {found}.")
    cols = [(f"{heading}: {lab}", c) for heading, model, _, columns, _ in COMPARISONS for lab, f, k in columns
            if (c := rep.column(model, f, k)) and any(x.derived for x in c.cells)]
    rows = [[k, model_name(s.run.model), config_label(s.run), rep.time_text(s), rep.time_text(s, whole_run),
             rep.refs([c for c in s.cells if c.run in whole_run(s)[2]])]
            for k, s in list(rep.configurations.items()) + cols]
    parts.append(section(3, "Times by the Whole-Run Rule (See the Per-Epoch Rule)", "An earlier results.md timed a "
                         "run by the training time it logged, over the seeds whose run was judged idle as a whole "
                         "(else all of them), on one machine. A run busy in only some epochs could pass as idle, so "
                         "these times are superseded by the per-epoch rule of the reading note, beside them.",
                         table(["Configuration", "Model", "Settings", "Per-epoch rule", "Whole-run rule",
                                "Timed runs (whole-run rule)"], rows)))
    return section(2, "Superseded Figures", "Figures an earlier results.md printed by targets and rules this one "
                   "no longer uses, kept so that none is lost. Each says what it is; none is comparable with "
                   "results.md's.", *parts) if rep.main else ""


def activation_maps(rep):
    return section(2, "Activation Maps", "\n\n".join(f"**{p.stem}**\n\n![{p.stem}]({rep.link(p, rep.plot_dir)})"
                                                    for p in activation_pngs(rep))) if activation_pngs(rep) else ""


DETAILS = [details_intro, configurations_section, benchmarks, tutorial_loop_seeds,
           reproducibility_all, twins, machine_comparisons_all, ablation_section, other_data, datasets, superseded,
           activation_maps, run_index]


# ---------------------------------------------------------------- the plots

Figure = namedtuple("Figure", "name alt caption draw")          # draw: () -> matplotlib figure


def figures(rep):
    """Curves of each model's seed's recipe against its ``--recipe best`` (the summary's rows at the best
    recipe's epochs), the per-class bars of those rows, and each model's most accurate run's confusion."""
    out, bars = [], []
    if dots := compute_points(rep):
        out.append(Figure("compute.png", "accuracy against compute and time", f"Test accuracy (mean over seeds) "
                          f"of each network's summary rows: {compute_caption(rep)}.",
                          partial(plots.draw_compute, dots, "Test accuracy against training compute and time")))
    for model, recipe in recipes.RECIPES.items():
        k = recipe.best_target[1] if recipe.best_target else max((t.epochs for t in recipe.targets), default=0)
        rows = [row for row in rep.rows if row.model == model and row.epochs == k and row.sample]
        if not rows:
            continue
        series = [(f"{row.name.replace(recipe.name, '').strip(' ,+').replace('`', '') or 'seed recipe'} "
                   f"({accuracy_text(row.sample)})", row.sample.runs) for row in rows]
        title = f"{recipe.name}, {k} epochs"
        out.append(Figure(f"curves_{model}.png", f"training curves {model}", f"{title}: the mean over seeds (band: "
                          "± one standard deviation) of each row's runs: "
                          + "; ".join(f"{row.name}: {rep.refs(row.sample.cells)}" for row in rows) + "."
                          + (" Label smoothing keeps a run's training loss higher." if any(
                              r.cfg.get("label_smoothing") for row in rows for r in row.sample.runs) else ""),
                          partial(plots.draw_curves, series, title)))
        bars += [(f"{recipe.name}: {label}", row.sample.per_class) for (label, _), row in zip(series, rows)]
    if bars:
        out.append(Figure("per_class.png", "per-class accuracy", "Per-class test accuracy of the rows of the curves "
                          "above (the mean over seeds).",
                          partial(plots.draw_per_class, bars, "Per-class test accuracy, seed's recipe and best")))
    for model in model_order(rep.main):
        if r := best([x for x in rep.main if x.model == model and x.results.get("confusion")]):
            name = model_name(model)
            out.append(Figure(f"confusion_{model}.png", f"confusion matrix {model}",
                              f"{name}: the most accurate run, {rep.keys[r.run_id]} ({pct(r.accuracy)}, {r.epochs} "
                              "epochs); rows are the true class, columns the prediction.",
                              partial(plots.draw_confusion, r.results["confusion"], f"{name}, {r.run_id}")))
    return out


# ---------------------------------------------------------------- the documents and the command line

def render(rep, parts, title):
    """A document: its title, then every section's markdown in order (empty sections left out), prose
    wrapped at ``WRAP`` characters (tables, headings and images as they are)."""
    text = "\n\n".join([f"# {title}"] + [t for t in (f(rep) for f in parts) if t]).rstrip() + "\n"
    return "\n".join(line if line[:1] in "|#!" else fill(line) for line in text.split("\n"))


def fill(line):
    """``line`` wrapped at ``WRAP`` characters, never before a "|" (a line that starts with one reads
    as a table row): the space before each is held as a non-space while wrapping."""
    glued = textwrap.fill(line.replace(" |", "\x1f|"), WRAP, break_long_words=False, break_on_hyphens=False)
    return glued.replace("\x1f", " ")


def build_parser():
    p = cli.Parser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", help="folder of run folders holding run_log.json (default: runs)")
    p.add_argument("--output", default="results.md", help="the results document to write (default: results.md)")
    p.add_argument("--plots", default=None, help="folder for details.md and the PNG plots "
                                                 "(default: results/ beside --output)")
    p.add_argument("--dpi", type=cli.number(int, f"a resolution from 10 to {MAX_DPI} dots per inch", low=10,
                                            high=MAX_DPI), default=100,
                   help=f"resolution of the plots, 10 to {MAX_DPI} (default: 100)")
    p.add_argument("--no-plots", action="store_true", help="write the documents without drawing plots (default: off)")
    return p


def prepare(path, flag):
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file path such as {path / 'results.md'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc}); "
                        f"choose a writable location with {flag}") from None


def write_report(args):
    """Read the run logs, write results.md, details.md and the plots; return the exit status."""
    output = Path(args.output)
    prepare(output, "--output")
    plot_dir = Path(args.plots) if args.plots else output.parent / "results"
    runs = load_runs(args.runs, lambda msg: print(msg, file=sys.stderr))
    runs_label = Path(os.path.relpath(Path(args.runs).resolve(), output.parent.resolve())).as_posix()
    if runs_label.startswith(".."):
        runs_label = Path(args.runs).as_posix()  # as given: never this machine's absolute path
    rep = Report(runs, output.parent, plot_dir, runs_label, draw_plots=not args.no_plots)
    text, details = render(rep, RESULTS, "Training Results"), render(rep, DETAILS, "Training Results: Details")
    prepare(rep.details_path, "--plots")
    figs = figures(rep) if rep.draw_plots else []
    plots.write_plots([(f.name, f.draw) for f in figs], plot_dir, args.dpi)
    atomic.write_text(rep.details_path, details, flag="--plots")
    atomic.write_text(output, text, flag="--output")
    print(f"wrote {output} and {rep.details_path} from {len(rep.done)} complete run(s) of {len(runs)} log(s)"
          + (f" and {len(figs)} plot(s) in {plot_dir}" if figs else ""))
    return 0


def main(argv=None):
    return cli.guarded(lambda: write_report(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
