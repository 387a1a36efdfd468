"""Run folders and run logs: create, find, read and choose runs.

    >>> run_dir = new_run_dir("runs", "large-e20")        # runs/20261130-031709-large-e20/
    >>> latest_complete("runs", "resnet18")               # newest finished ResNet-18 run with weights

A run lives in ``<out>/<timestamp>-<tag>/``: ``run_log.json`` (the record),
``checkpoint.pt`` (after every epoch) and ``weights.pt`` (when complete).  The
timestamp sorts, so the last folder name is the newest run.
"""
import errno
import functools
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import atomic
import recipes
from errors import UserError

LOG = "run_log.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
WEIGHTS_EMA = "weights_ema.pt"       # with --ema: the weight average's state_dict, the one evaluated


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
            raise cannot_create(out, exc) from None
    raise UserError(f"no free run folder name for {base} in {out}; wait a second and start again")


def check_out(out):
    """Raise UserError now unless run folders can be created in ``out``: for work that makes its
    run folder only when it has a result.  Probes with a temporary folder in ``out``, or in its
    nearest existing parent when ``out`` is not there yet, removed at once."""
    probe = Path(out)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".probe-"))
    except OSError as exc:
        raise cannot_create(out, exc) from None


def cannot_create(out, exc):
    return UserError(f"cannot create a run folder in {out} ({exc.strerror}); choose a writable folder with --out")


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


def has_result(record, model=None):
    """A training run with final weights: complete, or an extension of a complete run that has
    not completed (its log keeps the results of the run it extends, whose ``weights.pt`` stays)."""
    return is_complete_training(record, model) or (
        isinstance(record, dict) and record.get("kind", "train") == "train"
        and isinstance(record.get("results"), dict) and (model is None or record.get("model") == model))


def latest_complete(runs_dir, model):
    """The newest training run of ``model`` with its final weights (``has_result``), or None."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    for run_dir in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if has_result(read_log(run_dir), model) and (run_dir / WEIGHTS).is_file():
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
    if not has_result(record):
        raise UserError(f"run {cand.name} is {record.get('status')!r}, not complete, so it has no "
                        "final weights yet; pass its checkpoint with --weights "
                        f"{cand / CHECKPOINT} --model {record['model']} to see the last finished epoch")
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
# The official CIFAR-10's training and test images.
FULL_TRAIN, FULL_TEST = 50000, 10000
EVALUATION_OPTIONS = ("val", "ema", "tta", "tta_translate")   # options that change what is evaluated, not training
# CPUs that other processes keep busy, on average, while a timing is taken, that mark it as taken
# on a busy machine; in logs without that measure, the load above the CPU count that does (the
# run itself accounts for up to the CPU count).
BUSY_MARGIN = 0.5


def training_options(cfg):
    """{option: value} of ``cfg``'s options that change training, where they are off its model's
    recipe (a run's config, or a recipe's ``best`` with its "model")."""
    return {k: v for k, v in recipes.off_recipe(cfg).items() if k not in EVALUATION_OPTIONS}


def is_number(v):
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dict(v):
    return v if isinstance(v, dict) else {}


def _first(v):
    """The 1-minute load from a logged load average: a number, or a [1, 5, 15-minute] list."""
    if isinstance(v, list):
        v = v[0] if v else None
    return v if is_number(v) else None


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v):
    return isinstance(v, str)


def _bool(v):
    return isinstance(v, bool)


def _opt(check):
    return lambda v: v is None or check(v)


def _list_of(check):
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _accuracies(v):
    return isinstance(v, dict) and all(x is None or is_number(x) for x in v.values())


def _load(v):
    return v is None or is_number(v) or (isinstance(v, list) and all(is_number(x) for x in v))


def _loss_line(v):
    return isinstance(v, list) and len(v) == 3 and _int(v[0]) and _int(v[1]) and is_number(v[2])


# The type of every field a report reads, where a log has it: a log with another type is skipped.
FIELDS = {
    "": {"kind": _str, "status": _str, "run_id": _str, "model": _opt(_str), "seed": _opt(_int),
         "device": _opt(_str),
         "precision": _opt(_str), "params": _opt(_int), "config": lambda v: isinstance(v, dict),
         "hardware": lambda v: isinstance(v, dict), "dataset": lambda v: isinstance(v, dict),
         "results": _opt(lambda v: isinstance(v, dict)), "history": _list_of(lambda h: isinstance(h, dict)),
         "loss_lines": _list_of(_loss_line), "resumes": _list_of(lambda r: isinstance(r, dict)),
         "git": _opt(lambda v: isinstance(v, dict)), "started": _opt(_str), "finished": _opt(_str)},
    "config": {"model": _str, "epochs": _int, "batch_size": _int, "lr": is_number, "max_lr": is_number,
               "weight_decay": is_number, "momentum": is_number, "augment": _bool, "onecycle": _bool,
               "seed": _int, "precision": _str, "channels_last": _opt(_bool), "compile": _bool,
               "threads": _int, "onednn": _bool, "val": _int, "val_seed": _int,
               "label_smoothing": is_number, "nesterov": _bool, "decay_norm_bias": _bool,
               "ema": is_number, "cutout": _int, "tta": _bool, "recipe": _str},
    "hardware": {"cpu_count": _opt(_int), "torch_threads": _opt(_int), "load_average": _load,
                 "load_average_end": _load, "chip": _opt(_str), "cpu_model_id": _opt(_str),
                 "cpu_capability": _opt(_str), "other_cpus": _opt(is_number)},
    "dataset": {"id": _str, "official": _opt(_bool), "train_images": _int, "test_images": _int,
                "val_images": _int, "content_sha256": _str},
    "results": {"overall_accuracy": is_number, "train_time_s": is_number, "final_loss": is_number,
                "epochs": _int, "per_class": _accuracies, "weights_sha256": _opt(_str),
                "total": _int, "correct": _int, "val_accuracy": _opt(is_number),
                "weights_ema_sha256": _opt(_str)},
    "history": {"epoch": _int, "test_accuracy": _opt(is_number), "val_accuracy": _opt(is_number),
                "train_loss": is_number,                                  # None: not evaluated (--eval-every)
                "per_class": _opt(_accuracies), "epoch_time_s": is_number, "eval_time_s": is_number,
                "train_time_s": is_number, "weights_sha256": _opt(_str), "load_average": _load,
                "other_cpus": _opt(is_number)},
    "resumes": {"after_epoch": _int, "epochs_before": _int, "device": _str},
}


def item_problem(where, part):
    """The first field of ``part`` (a dict at ``where`` of a run log: "", "config", "history", ...)
    whose type no run log of this project writes, or None."""
    for key, ok in FIELDS[where].items():
        if key in part and not ok(part[key]):
            return f"{where + '.' if where else ''}{key} is {_shown(part[key])}"
    return None


def _shown(v):
    """The start of ``v`` as JSON, for a message (its type's name when it has no JSON form)."""
    try:
        return json.dumps(v)[:40]
    except (TypeError, ValueError, RecursionError):
        return type(v).__name__


def is_loss_line(v):
    """[epoch, batch, loss]: two whole numbers and a finite number."""
    return _loss_line(v)


def log_problem(rec):
    """The first field of ``rec`` whose type no run log of this project writes, or None."""
    check = item_problem
    problem = check("", rec)
    if rec.get("kind", "train") != "train":       # benchmarks: their own results and settings
        return problem or (check("hardware", rec["hardware"]) if isinstance(rec.get("hardware"), dict)
                           else None)
    for where in ("config", "hardware", "dataset", "results"):
        problem = problem or (check(where, rec[where]) if isinstance(rec.get(where), dict) else None)
    for where in ("history", "resumes"):
        for item in rec.get(where) or []:
            problem = problem or check(where, item)
    return problem


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
        """The CPU's name, with its generation and kernels' instruction set where the log has them:
        runs on one name but another generation or instruction set need not reproduce each other."""
        name = str(self.hw.get("chip") or "unknown chip")
        model_id = self.hw.get("cpu_model_id")
        detail = [model_id.split(" stepping")[0]] if model_id else []
        detail += [self.hw["cpu_capability"]] if self.hw.get("cpu_capability") else []
        return f"{name} ({', '.join(detail)})" if detail else name

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
                str(c.get("onednn", True)) if self.device == "cpu" else "", self.data_key, self.options)

    @property
    def options(self):
        """The options that leave the model's recipe (``recipes.off_recipe``), as text."""
        return ", ".join(f"{k} {v}" for k, v in recipes.off_recipe(self.cfg).items())

    @property
    def val(self):
        """Training images held out for validation (``--val``); 0 for none."""
        v = self.cfg.get("val")
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    @property
    def ablation_base(self):
        """What a run computes but for its training options, evaluation and seed: the runs an
        ablation compares share it (same model, epochs, rates, schedule, split, device, data)."""
        c = self.cfg
        schedule = () if recipes.own_recipe(self.model) else (self.augment, self.onecycle)   # else options
        return (self.model, self.epochs, str(self.batch_size), str(c.get("lr")), str(c.get("max_lr")),
                str(c.get("weight_decay")), str(c.get("momentum")), *schedule,
                self.precision, self.device, self.data_key, self.val, str(c.get("val_seed")))

    @property
    def configuration(self):
        """What a run computes but for its seed: runs with equal keys are samples of one configuration.

        Model, epochs, batch size, learning rates, weight decay, momentum, augmentation, schedule,
        precision, device type and dataset, and the flags that choose kernels (threads, oneDNN,
        channels-last, compile).  Not the machine: seeds run on two machines pool.
        """
        c = self.cfg
        return (self.model, self.epochs, str(self.batch_size), str(c.get("lr")), str(c.get("max_lr")),
                str(c.get("weight_decay")), str(c.get("momentum")), self.augment, self.onecycle,
                self.precision, self.device, self.data_key, str(c.get("threads") or 0),
                str(c.get("onednn", True)), str(bool(c.get("channels_last"))), str(bool(c.get("compile"))),
                self.options)

    # -- data
    @property
    def data_key(self):
        """The dataset's identity: "official" for the official content (or files), else its digest or id."""
        if self.dataset.get("official") is True:
            return "official"
        return str(self.dataset.get("content_sha256") or self.dataset.get("id") or "unknown")

    @property
    def full_official(self):
        """Trained and tested on the whole official CIFAR-10: 50,000 / 10,000 images of its content."""
        d = self.dataset
        return (d.get("official") is True and d.get("train_images") == FULL_TRAIN
                and d.get("test_images") == FULL_TEST)

    @property
    def ablation(self):
        """A run of the recipe ablation: the official content and test set, the training set less --val."""
        d = self.dataset
        return (self.val > 0 and d.get("official") is True and d.get("test_images") == FULL_TEST
                and d.get("train_images") == FULL_TRAIN - self.val)

    @property
    def empty_classes(self):
        """Classes with no test image (their row of the confusion matrix sums to 0)."""
        conf, names = self.results.get("confusion"), list(_dict(self.results.get("per_class")))
        if not isinstance(conf, list) or len(conf) != len(names):
            return set()
        return {c for c, row in zip(names, conf) if isinstance(row, list) and not any(row)}

    # -- timing
    def busy(self, epoch=None):
        """Whether the first ``epoch`` epochs (default: all) were timed on a busy machine.

        Busy: other processes kept ``BUSY_MARGIN`` CPUs or more busy, on average over those epochs'
        training time (``other_cpus`` of each epoch).  Logs without it for every one of those
        epochs: the mean of the 1-minute load averages logged after each epoch (older logs: the
        larger of the run's start and end loads) exceeds the CPU count + ``BUSY_MARGIN``, the run
        itself accounting for up to the CPU count.  None when the log cannot tell.
        """
        epochs = self.history[:epoch]
        others = [(h.get("other_cpus"), h.get("epoch_time_s")) for h in epochs]
        if others and all(is_number(v) and is_number(s) for v, s in others):
            seconds = sum(s for _, s in others)
            mean = sum(v * s for v, s in others) / seconds if seconds > 0 else others[-1][0]
            return mean >= BUSY_MARGIN
        cpus = self.hw.get("cpu_count")
        if not is_number(cpus):
            return None
        loads = [_first(h.get("load_average")) for h in epochs]
        loads = [v for v in loads if v is not None]
        if not loads:
            loads = [v for v in (_first(self.hw.get("load_average")), _first(self.hw.get("load_average_end")))
                     if v is not None]
            if not loads:
                return None
            return max(loads) > cpus + BUSY_MARGIN
        return sum(loads) / len(loads) > cpus + BUSY_MARGIN

    def epoch_busy(self, h):
        """Whether the epoch of history entry ``h`` trained on a busy machine: other processes kept
        ``BUSY_MARGIN`` CPUs or more busy (its ``other_cpus``); logs without that: its 1-minute load
        average exceeded the CPU count + ``BUSY_MARGIN``; logs without a load per epoch: the larger
        of the run's start and end loads did.  None when the log cannot tell."""
        if is_number(h.get("other_cpus")):
            return h["other_cpus"] >= BUSY_MARGIN
        cpus = self.hw.get("cpu_count")
        loads = [_first(h.get("load_average"))]
        if loads[0] is None:
            loads = [v for v in (_first(self.hw.get("load_average")), _first(self.hw.get("load_average_end")))
                     if v is not None]
        if not is_number(cpus) or not loads:
            return None
        return max(loads) > cpus + BUSY_MARGIN

    @functools.cached_property
    def epoch_seconds(self):
        """(seconds, busy): the median training time of the epochs judged idle (``epoch_busy``), or of
        every epoch and busy=True when none was; (None, None) when an epoch's time is not logged."""
        times = [(h.get("epoch_time_s"), self.epoch_busy(h)) for h in self.history]
        if not times or not all(is_number(t) for t, _ in times):
            return None, None
        idle = [t for t, busy in times if not busy]
        return (statistics.median(idle), False) if idle else (statistics.median([t for t, _ in times]), True)

    @property
    def idle_epochs(self):
        """(epochs judged idle, epochs logged)."""
        return sum(not self.epoch_busy(h) for h in self.history), len(self.history)

    # -- results
    @property
    def complete(self):
        return (self.kind == "train" and self.status == "complete"
                and isinstance(self.results.get("overall_accuracy"), (int, float)))

    @property
    def accuracy(self):
        return self.results.get("overall_accuracy")

    @property
    def evaluations(self):
        """{variant: {"val": %, "test": %}}: the results' evaluation variants ("model", "ema",
        "model+tta", "ema+tta", and with --tta-translate "model+tta+translate", "ema+tta+translate");
        a log without them gives its headline figures under the variant its flags chose.  A
        --tta-translate log from before the shifted views had variants of their own named them
        "+tta": they are read as "+tta+translate".  Entries that are not two numbers are left out."""
        ev = self.results.get("evaluations")
        ok = {k: {"val": v["val"], "test": v["test"]} for k, v in ev.items()
              if isinstance(v, dict) and is_number(v.get("val")) and is_number(v.get("test"))
              } if isinstance(ev, dict) else {}
        translate = bool(self.cfg.get("tta_translate"))
        if ok:
            if translate and not any(k.endswith("+translate") for k in ok):
                ok = {(k + "+translate" if k.endswith("+tta") else k): v for k, v in ok.items()}
            return ok
        headline = recipes.variant_name(self.cfg.get("ema"), self.cfg.get("tta"), translate)
        val = self.results.get("val_accuracy")
        return {headline: {"val": val, "test": self.accuracy}} if is_number(val) and is_number(self.accuracy) else {}

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

    def other_cpus(self):
        """A benchmark record's CPUs kept busy by other processes while it ran, or None (not logged)."""
        v = self.hw.get("other_cpus")
        return v if is_number(v) else None

    def bench_busy(self):
        """Whether other processes kept ``BUSY_MARGIN`` CPUs or more busy while a benchmark ran."""
        v = self.other_cpus()
        return v is not None and v >= BUSY_MARGIN

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
        """The median idle epoch (``Run.epoch_seconds``) times the epochs; older logs: as logged."""
        per, _ = self.run.epoch_seconds
        return per * self.epoch if per is not None and self.epoch > 0 else self.logged_time

    @property
    def logged_time(self):
        """The training time the log gives up to this epoch, busy epochs and all."""
        if not self.derived and "train_time_s" in self.run.results:
            return self.run.results["train_time_s"]
        if "train_time_s" in self._hist:
            return self._hist["train_time_s"]
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
        """{class: accuracy %}; None for a class with no test image (older logs wrote 0.0)."""
        pc = self._hist.get("per_class") if self.derived else self.run.results.get("per_class")
        empty = self.run.empty_classes
        return {c: None if c in empty or not is_number(v) else v
                for c, v in pc.items()} if isinstance(pc, dict) else {}

    @property
    def busy(self):
        per, busy = self.run.epoch_seconds
        return busy if per is not None else self.run.busy(self.epoch)

    @property
    def seed(self):
        return self.run.seed


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
            runs.append(read_run(path))
        except BadLog as exc:
            warn(f"warning: skipping {path}: {exc}")
    return sorted(runs, key=lambda r: (r.run_id, str(r.path)))


class BadLog(ValueError):
    """A file that is not a run log this project writes; the message says why."""


def read_run(path):
    """The run log at ``path`` as a ``Run``; ``BadLog`` when it cannot be read or a field has a
    type no run log of this project writes (``log_problem``)."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:     # RecursionError: nesting
        raise BadLog(f"unreadable run log ({type(exc).__name__})") from None
    if not isinstance(rec, dict):
        raise BadLog("not a run log (a JSON object was expected)")
    problem = log_problem(rec)
    if problem:
        raise BadLog(f"{problem}, not what a run log holds")
    return Run(rec, Path(path))


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
    longer = [r for r in runs if not r.onecycle and r.epochs > epoch and len(r.history) >= epoch
              and is_number(r.history[epoch - 1].get("test_accuracy"))]     # evaluated after that epoch
    return latest(longer).at(epoch) if longer else None


@dataclass(frozen=True)
class Sample:
    """One configuration after one epoch count, over seeds: one ``Cell`` per seed.

    A rerun with a seed already in the sample reproduces it and adds nothing, so each seed
    counts once (its ``representative`` run).  Reads like a ``Cell``: the accuracy, loss and
    per-class figures are means over the seeds, the time over the seeds timed on an idle
    machine (over all of them, and ``busy``, when none was); ``accuracy_std`` is the sample standard
    deviation (ddof=1), None for one seed.  Seeds may have run on several machines; the time
    is then one machine's (``timed_runs``).
    """

    cells: tuple

    @property
    def n(self):
        return len(self.cells)

    @property
    def run(self):
        return self.cells[0].run

    @property
    def runs(self):
        return [c.run for c in self.cells]

    @functools.cached_property
    def _timed(self):
        """The cells whose time counts: those timed on an idle machine, else all of them; of those,
        the ones on one machine (the one with the most such seeds; the first among equals), since
        one recipe takes different times on different machines."""
        cells = [c for c in self.cells if not c.busy] or list(self.cells)
        return max(group(cells, lambda c: c.run.chip).values(), key=len)

    @property
    def timed_runs(self):
        """The runs behind ``time``: one machine's."""
        return [c.run for c in self._timed]

    @property
    def busy(self):
        """Whether the time is a busy machine's: only when no seed was timed on an idle one."""
        return all(c.busy for c in self.cells)

    @property
    def whole_run_time(self):
        """(time, busy, runs) by the earlier whole-run rule, superseded by the per-epoch one: the mean
        logged time of the seeds whose run, up to this epoch, was judged idle as a whole (``Run.busy``),
        else of every seed, on one machine (the one with the most such seeds)."""
        cells = [c for c in self.cells if not c.run.busy(c.epoch)] or list(self.cells)
        cells = max(group(cells, lambda c: c.run.chip).values(), key=len)
        return (_mean([c.logged_time for c in cells]), all(c.run.busy(c.epoch) for c in self.cells),
                [c.run for c in cells])

    @property
    def accuracy(self):
        return _mean([c.accuracy for c in self.cells])

    @property
    def accuracy_std(self):
        return sample_std([c.accuracy for c in self.cells])

    @property
    def time(self):
        return _mean([c.time for c in self._timed])

    @property
    def final_loss(self):
        return _mean([c.final_loss for c in self.cells])

    @property
    def per_class(self):
        pcs = [c.per_class for c in self.cells]
        return {k: _mean([p.get(k) for p in pcs]) for k in pcs[0]}


def _mean(values):
    """The mean of ``values``; None when one is missing."""
    if not values or not all(is_number(v) for v in values):
        return None
    return sum(values) / len(values)


def sample_std(values):
    """The sample standard deviation of ``values``; None for fewer than two or when one is missing."""
    if len(values) < 2 or not all(is_number(v) for v in values):
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def group(items, key):
    """{key(item): [items]}, keys in the order they first come."""
    out = {}
    for x in items:
        out.setdefault(key(x), []).append(x)
    return out


def by_seed(runs):
    """{seed: its runs}, seeds in order."""
    return group(sorted(runs, key=lambda r: (str(r.seed), r.run_id)), lambda r: r.seed)


def sample(runs):
    """The ``Sample`` of runs of one configuration (each seed's representative), or None."""
    cells = [representative(rs).at() for rs in by_seed(runs).values()]
    return Sample(tuple(cells)) if cells else None


def resolve_sample(runs, epoch):
    """``resolve`` for each seed of ``runs``: the figures after ``epoch`` epochs over seeds, or None."""
    cells = [resolve(rs, epoch) for rs in by_seed(runs).values()]
    cells = tuple(c for c in cells if c is not None)
    return Sample(cells) if cells else None


def configurations(runs):
    """One ``Sample`` per ``Run.configuration`` of ``runs``, in a stable order."""
    samples = [sample(rs) for rs in group(runs, lambda r: r.configuration).values()]
    return sorted(samples, key=lambda s: (s.run.setup[:4], s.run.epochs, s.run.augment, s.run.onecycle,
                                          s.run.configuration, s.run.run_id))
