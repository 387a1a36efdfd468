"""Run folders and run logs: create, find, read and choose runs.

    >>> run_dir = new_run_dir("runs", "large-e20")        # runs/20261130-031709-large-e20/
    >>> latest_complete("runs", "resnet18")               # newest finished ResNet-18 run with weights

A run lives in ``<out>/<timestamp>-<tag>/``: ``run_log.json`` (the record),
``checkpoint.pt`` (after every epoch) and ``weights.pt`` (when complete).  The
timestamp sorts, so the last folder name is the newest run.
"""
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import atomic
from errors import UserError

LOG = "run_log.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"


def new_run_dir(out, tag):
    """Create ``<out>/<timestamp>-<tag>/`` (suffixed if taken) and return it."""
    base = time.strftime("%Y%m%d-%H%M%S") + f"-{tag}"
    out = Path(out)
    for i in range(1000):
        run_dir = out / (base if i == 0 else f"{base}-{i + 1}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot create a run folder in {out} ({exc.strerror}); "
                            "choose a writable folder with --out") from None
    raise UserError(f"no free run folder name for {base} in {out}; wait a second and start again")


def write_log(run_dir, record):
    """Write ``<run_dir>/run_log.json`` atomically."""
    atomic.write_json(Path(run_dir) / LOG, record)


def read_log(run_dir):
    """The run's ``run_log.json`` as a dict, or None when it is missing or unreadable."""
    try:
        record = json.loads((Path(run_dir) / LOG).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_complete_training(record, model=None):
    return (isinstance(record, dict) and record.get("kind", "train") == "train"
            and record.get("status") == "complete"
            and (model is None or record.get("model") == model))


def latest_complete(runs_dir, model):
    """The newest complete training run of ``model`` with its weights, or None."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    for run_dir in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if is_complete_training(read_log(run_dir), model) and (run_dir / WEIGHTS).is_file():
            return run_dir
    return None


def find_complete(run, runs_dir, known_models):
    """``run`` is a run id in ``runs_dir`` or a run folder; return (folder, its model)."""
    for cand in (Path(runs_dir) / run, Path(run)):
        if (cand / LOG).is_file():
            break
    else:
        raise UserError(f"no run {run!r} in {runs_dir} (list the runs with: ls {runs_dir})")
    record = read_log(cand)
    if record is None or record.get("model") not in known_models:
        raise UserError(f"{cand / LOG} is unreadable or names no known model")
    if not is_complete_training(record):
        raise UserError(f"run {cand.name} is {record.get('status')!r}, not complete, so it has no "
                        "final weights yet; pass its checkpoint with --weights "
                        f"{cand / CHECKPOINT} to see the last finished epoch")
    if not (cand / WEIGHTS).is_file():
        raise UserError(f"run {cand.name} is complete but {cand / WEIGHTS} is missing")
    return cand, record["model"]


def find_checkpoint(resume, out):
    """``resume`` is a run id in ``out``, a run folder, or a checkpoint file."""
    for cand in (Path(resume), Path(out) / resume):
        if cand.is_file():
            return cand
        if (cand / CHECKPOINT).is_file():
            return cand / CHECKPOINT
    raise UserError(f"no run {resume!r} to resume: no {CHECKPOINT} in {Path(out) / resume} "
                    f"(list the runs with: ls {out})")


# ---------------------------------------------------------------- reading every run log

# Table order of the devices: the CPU baseline first.
DEVICE_ORDER = {"cpu": 0, "cuda": 1, "mps": 2}


def is_number(v):
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dict(v):
    return v if isinstance(v, dict) else {}


class Run:
    """One ``run_log.json`` record with tolerant accessors (older logs lack some fields)."""

    def __init__(self, rec, path):
        self.rec = rec
        self.path = path
        self.run_id = str(rec.get("run_id") or path.parent.name)
        self.kind = rec.get("kind", "train")
        self.status = rec.get("status", "unknown")
        self.cfg = _dict(rec.get("config"))
        self.hw = _dict(rec.get("hardware"))
        self.dataset = _dict(rec.get("dataset"))
        self.results = _dict(rec.get("results"))
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
            return f"{v[0]:.2f}" if isinstance(v, list) and v and is_number(v[0]) else None
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
    """Every readable ``<runs_dir>/*/run_log.json`` as a ``Run``, sorted by run id.

    A log that cannot be read is skipped and named through ``warn(message)``.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"no runs folder {runs_dir}; train a model first (python train_small.py) "
                        "or point --runs at the folder of run folders")
    runs = []
    for path in sorted(runs_dir.glob(f"*/{LOG}")):
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


def representative(runs):
    """Of runs of one configuration (the same computation), the fastest; the newest among equals.

    Identical runs give identical numbers on one machine; their times differ only by how
    busy the machine was, and the fastest is the closest to what the recipe costs.
    """
    def time_of(r):
        t = r.results.get("train_time_s")
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


def config_groups(runs):
    """(headline run of each configuration, {recipe: its runs}); headlines in a stable order.

    The headline is the ``representative`` of the runs sharing a ``Run.recipe``.
    """
    groups = {}
    for r in runs:
        groups.setdefault(r.recipe, []).append(r)
    heads = [representative(rs) for rs in groups.values()]
    return sorted(heads, key=lambda r: (r.setup, r.epochs, r.augment, r.onecycle, r.run_id)), groups
