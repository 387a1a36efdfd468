"""The shared training loop: SGD + OneCycle, logging, evaluation, checkpoints, interruption.

Every training script is a recipe plus ``engine.train(config)``:

    >>> train(recipes.config_for("large", epochs=2), script="train_large.py")

``train`` reads as set-up, resume, one epoch at a time, finish.  It prints
``[epoch, batch] loss: x.xxx`` every ``log_every`` mini-batches (batch counted
from 1), an epoch summary line, and at the end the per-class accuracy table.
Each run lives in ``<out>/<run-id>/``: ``run_log.json`` (rewritten after every
epoch), ``checkpoint.pt`` (every ``--checkpoint-every`` epochs, 1 but on CUDA, and after the
last, for ``--resume``) and
``weights.pt`` (the final ``state_dict``; with ``--ema`` also ``weights_ema.pt``, the
weight average that is evaluated).  On CPU, the same seed gives the same loss lines
and bit-identical weights, also across an interruption and resume.  The recipe options
(validation split, label smoothing, Nesterov, no decay on norms and biases, EMA,
Cutout, flip TTA) and the fast network's options (patch whitening, triangular schedule,
batch-norm learning-rate scale, lookahead, alternating flips, reflected translation,
translation TTA) are all off by default, and then change nothing that is computed.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the same loop
runs on every rank with the model in DistributedDataParallel: ``batch_size`` is
the global batch, each rank trains on its share of it, and rank 0 alone prints
and writes (``distributed.Ranks``).  The device, its seeding and precision come from
``compute``.
"""
import copy
import dataclasses
import gc
import hashlib
import os
import random
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import atomic
import data
import graphs
import hwdna
import monitor
import runs
from cli import EXIT_INTERRUPTED, config_problem
from compute import (PRECISIONS, Choice, autocast, choose, cpu_bf16_warning, cpu_settings, data_generator,
                     precision_name, refuse_emulated_resume, seed_everything, synchronize)
from distributed import Ranks, SharedError, check_batch_split, process_group, stdout_silenced, torchrun_env
from errors import UserError
from models import build_model, count_parameters, whitening_weights
import recipes
from recipes import Config

__all__ = ["Config", "EXIT_INTERRUPTED", "train", "train_step", "evaluate"]

# Config fields that define what a run computes: a resumed run may not change them.
FIXED_ON_RESUME = ("model", "batch_size", "lr", "max_lr", "weight_decay", "momentum",
                   "augment", "onecycle", "seed", "precision", "val", "val_seed", "subset", "label_smoothing",
                   "nesterov", "decay_norm_bias", "ema", "cutout", "tta", "recipe", "whiten",
                   "whiten_bias_epochs", "triangle", "bias_lr_scale", "lookahead", "alt_flip",
                   "crop_padding", "crop_reflect", "tta_translate", "dirac", "norm_scale", "logit_scale")
# Where and how a run continues may change on resume.  Those from "compile" on change the order
# of floating-point sums, so the resumed run no longer matches an uninterrupted one bit for bit.
CHANGEABLE_ON_RESUME = ("device", "log_every", "eval_every", "checkpoint_every", "data_dir", "download", "progress",
                        "tensorboard", "compile", "channels_last", "threads", "onednn", "cuda_graph", "deterministic")
FULL_TRAIN, FULL_TEST = 50_000, 10_000


# ---------------------------------------------------------------- interruption

class StopFlag:
    """SIGINT/SIGTERM set a flag checked after each batch; a second signal exits at once.
    Within ``at_once()`` (a single process's checkpoint load and set-up) the first signal raises
    KeyboardInterrupt.

    The second signal calls ``on_abort`` (which marks the run log) and ends the process with
    status 130 through ``os._exit``: no exception travels through whatever was running (a
    checkpoint being pickled, a C++ kernel), so the exit is the same wherever it lands.  Every
    file is written atomically, so stopping mid-write leaves the previous file intact; the
    temp file of a write in flight is removed first.
    """

    def __init__(self):
        self.signum = None
        self.on_abort = None
        self.raising = False
        self.unsaid = None       # the stop's note, when the signal landed inside a print

    def _handle(self, signum, frame):
        if self.raising and self.signum is None:
            # Before the run has a folder (data download and load, model, optimizer): nothing to
            # save, so the first signal ends it there, through the code's own clean-up.
            raise KeyboardInterrupt
        if self.signum is not None:
            try:
                # Past sys.stderr's buffer, which may be mid-write (and is never flushed after _exit).
                os.write(2, f"\n{signal.Signals(signum).name} again: stopping now\n".encode())
                atomic.discard_in_flight()
                if self.on_abort is not None:
                    self.on_abort()
            finally:
                os._exit(EXIT_INTERRUPTED)
        self.signum = signum
        note = f"\n{signal.Signals(signum).name}: stopping after this batch (send it again to stop at once)"
        try:
            print(note, flush=True)
        except RuntimeError:
            # The signal landed inside a print to the same stream (a loss line, the progress
            # bar), whose buffer refuses a reentrant write: the flag's next reader says it.
            self.unsaid = note

    @contextmanager
    def installed(self):
        if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                # After a stop the process is on its way out: a late second signal must not
                # raise into interpreter shutdown.
                signal.signal(s, signal.SIG_IGN if self.signum is not None else h)

    @contextmanager
    def at_once(self, enabled=True):
        """Within the block the first signal raises ``KeyboardInterrupt`` at once instead of
        setting the flag (the work there writes nothing that a stop would need)."""
        self.raising = enabled
        try:
            yield self
        finally:
            self.raising = False

    def __bool__(self):
        if self.unsaid is not None:
            note, self.unsaid = self.unsaid, None
            print(note, flush=True)
        return self.signum is not None


# ---------------------------------------------------------------- evaluation and reports

def tta_logits(model, x, tta=False, translate=False):
    """The logits (B, 10) that classify ``x`` (B, 3, H, W): the model's; with ``tta`` the sum of
    the image's and its mirror image's (same argmax as the mean); with ``translate`` as well,
    twice that plus the same for the image shifted one pixel up-left and one down-right (reflected
    borders): airbench's weights, 1/2 on the image and 1/4 on each shift."""
    def views(v):
        logits = model(v)
        return logits.float() + model(v.flip(3)).float() if tta else logits
    logits = views(x)
    if translate:
        padded = F.pad(x, (1,) * 4, mode="reflect")             # (B, 3, H+2, W+2)
        H, W = x.shape[-2:]
        logits = 2 * logits + views(padded[..., :H, :W]) + views(padded[..., 2:, 2:])
    return logits


def tta_probabilities(model, x, tta=False, translate=False):
    """Class probabilities float32 (B, 10): the softmax of ``tta_logits`` over its views' total
    weight, the weighted mean of the views' logits."""
    total = (2 if tta else 1) * (4 if translate else 1)
    return torch.softmax(tta_logits(model, x, tta, translate).float() / total, dim=1)


@torch.no_grad()
def evaluate(model, ds, dtype=None, ranks=None, split="test", tta=False, translate=False):
    """Accuracy on ``split`` ("test", or "val" for the validation split): overall %, per-class %
    (None for a class with no image), and the 10x10 confusion matrix.  With ``tta`` each image
    is classified by the mean of its logits and its mirror image's, with ``translate`` also by
    its one-pixel shifts (``tta_logits``).  With ``ranks`` of a torchrun launch, each rank counts
    its share of the images and every rank returns the sum."""
    model.eval()
    rank, world = (ranks.rank, ranks.world) if ranks is not None else (0, 1)
    if ranks is not None:
        ranks.broadcast_buffers(model)
    n = len(data.CLASSES)
    confusion = torch.zeros(n * n, dtype=torch.int64, device=ds.device)
    for x, y in ds.eval_batches(split, rank=rank, world=world):
        with autocast(ds.device, dtype):
            pred = tta_logits(model, x, tta, translate).argmax(1)        # (B,)
        # One-hot counts (B, 100) summed: exact, and made of ops every backend has (torch.bincount's
        # support on MPS is unverified here).
        cells = y * n + pred                                    # (B,)
        confusion += (cells[:, None] == torch.arange(n * n, device=cells.device)).sum(0)
    if ranks is not None:
        ranks.sum(confusion)
    confusion = confusion.view(n, n).cpu()                 # rows: true class, cols: predicted
    totals = confusion.sum(1)
    per_class = {c: round(100.0 * confusion[i, i].item() / totals[i].item(), 2) if totals[i] else None
                 for i, c in enumerate(data.CLASSES)}
    correct = int(confusion.diag().sum())
    total = int(totals.sum())
    return {"overall_accuracy": round(100.0 * correct / total, 2), "correct": correct,
            "total": total, "per_class": per_class, "confusion": confusion.tolist()}


def class_table(per_class):
    """The per-class accuracy table, best class first (the results document's format)."""
    rows = ["| Class | Accuracy |", "|-------|----------|"]
    order = sorted(per_class.items(), key=lambda kv: (kv[1] is None, -(kv[1] or 0),
                                                      data.CLASSES.index(kv[0])))
    for c, acc in order:
        rows.append(f"| {c:<5} | {'n/a' if acc is None else f'{acc:.1f}%':<8} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- checkpoints

def weights_digest(model):
    """sha256 over every tensor of the state_dict, in order: equal digests mean identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class WeightAverage:
    """An exponential moving average of a model's weights, for evaluation (``--ema DECAY``).

    After every optimizer step, each floating-point tensor of the state_dict (parameters and
    batch-norm running statistics) moves ``1 - decay`` of the way to the trained model's;
    integer buffers (batch-norm's step count) are copied.  The average starts as a copy of the
    initial weights and has no bias correction: after k steps their share is decay**k (0.999:
    5% after 3,000 steps; an epoch of ResNet-18 at batch 128 is 391 steps).  Every rank
    updates its own copy from the same weights, so the ranks agree; its state_dict goes into
    each checkpoint, so a resumed run continues the same average.
    """

    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
        self._floats = ([a for a, b in pairs if a.is_floating_point()],
                        [b for a, b in pairs if b.is_floating_point()])
        self._others = [(a, b) for a, b in pairs if not a.is_floating_point()]

    @torch.no_grad()
    def update(self):
        average, current = self._floats
        torch._foreach_lerp_(average, current, 1.0 - self.decay)
        for a, b in self._others:
            a.copy_(b)


class Lookahead:
    """airbench's lookahead: every ``every`` steps the weights are pulled back to a slow average.

    At step s of ``total`` (s a multiple of ``every``) the average moves ``1 - decay`` of the way to
    the trained weights, decay = 0.95**every * (s / total)**3, and the weights are set to it: early
    on the average follows the weights closely, towards the end it holds them back more and more.
    After the last step the weights become the average.  Floating-point tensors of the state_dict
    (parameters and batch-norm statistics) take part; its state goes into each checkpoint.
    """

    BASE = 0.95                    # the per-step decay airbench's schedule starts from

    def __init__(self, model, every, total):
        self.every, self.total = every, total
        self.average = copy.deepcopy(model).requires_grad_(False)
        pairs = list(zip(self.average.state_dict().values(), model.state_dict().values()))
        self._pairs = ([a for a, b in pairs if a.is_floating_point()],
                       [b for a, b in pairs if b.is_floating_point()])

    def decay(self, step):
        return self.BASE ** self.every * (step / self.total) ** 3

    @torch.no_grad()
    def after_step(self, step):
        """Call after optimizer step ``step`` (from 1)."""
        average, current = self._pairs
        if step % self.every == 0:
            torch._foreach_lerp_(average, current, 1.0 - self.decay(step))
            torch._foreach_copy_(current, average)
        if step == self.total:
            torch._foreach_copy_(current, average)


def rng_state(gen, device):
    state = {"torch": torch.get_rng_state(), "data": gen.get_state(),
             "numpy": _numpy_state(), "python": _python_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state, gen, device):
    torch.set_rng_state(state["torch"])
    gen.set_state(state["data"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def _numpy_state():
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _python_state():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


CHECKPOINT_KEYS = {"config": dict, "epoch": int, "started": str, "model": dict, "optimizer": dict,
                   "rng": dict, "history": list, "loss_lines": list}
# What a resume reads of each epoch's record (its time, the run's time so far, the loss).
HISTORY_NEEDS = ("epoch", "train_loss", "epoch_time_s", "train_time_s")


def load_checkpoint(path):
    """The checkpoint at ``path``, checked for every key a resume reads."""
    try:
        with warnings.catch_warnings():      # torch's warning about a plain pickle: the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); "
                        "start a new run") from None
    problem = checkpoint_problem(ckpt)
    if problem:
        raise UserError(f"{path} is not a checkpoint of this project's runs ({problem}); start a new run")
    ckpt["config"] = Config(**ckpt["config"])
    return ckpt


def checkpoint_problem(ckpt):
    """Why ``ckpt`` is not a checkpoint this loop wrote, or None.  Its config passes the command
    line's own validators, its epoch lies within the run, and its history, loss lines and resumes
    have the types the run log's readers check (``runs.FIELDS``)."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != 1:
        return "no format 1"
    for key, kind in CHECKPOINT_KEYS.items():
        if not isinstance(ckpt.get(key), kind) or isinstance(ckpt.get(key), bool):
            return f"{key} is not a {kind.__name__}"
    fields = {f.name for f in dataclasses.fields(Config)}
    if not set(ckpt["config"]) <= fields:
        return f"config has unknown fields {sorted(map(str, set(ckpt['config']) - fields))[:3]}"
    problem = config_problem(ckpt["config"])
    if problem:
        return f"config: {problem}"
    done, epochs = ckpt["epoch"], ckpt["config"].get("epochs", Config.epochs)
    if not 0 <= done <= epochs:
        return f"epoch {done} is not within the run's {epochs} epochs"
    history = ckpt["history"]
    if len(history) != done or any(not isinstance(h, dict) or h.get("epoch") != i + 1
                                   or any(k not in h for k in HISTORY_NEEDS)
                                   or runs.item_problem("history", h) for i, h in enumerate(history)):
        return f"history does not hold epochs 1 to {done}"
    lines = ckpt["loss_lines"]
    if any(not runs.is_loss_line(x) or not 1 <= x[0] <= done for x in lines):
        return f"loss_lines are not [epoch, batch, loss] of epochs 1 to {done}"
    resumes = ckpt.get("resumes", [])
    if not isinstance(resumes, list) or any(not isinstance(r, dict) or runs.item_problem("resumes", r)
                                            for r in resumes):
        return "resumes is not a list of resumes"
    if not isinstance(ckpt.get("dataset_id"), (str, type(None))):
        return "dataset_id is not text"
    return None


def resumed_config(ckpt, cfg, explicit):
    """The checkpoint's config, with the flags a resume may change taken from ``cfg``."""
    saved = ckpt["config"]
    if cfg.model != saved.model:
        raise UserError(f"run trained model {saved.model!r}, not {cfg.model!r}; "
                        f"resume it with --model {saved.model} or its own training script")
    for key in FIXED_ON_RESUME:
        if key in explicit and getattr(cfg, key) != getattr(saved, key):
            raise UserError(f"--{key.replace('_', '-')} {getattr(cfg, key)} differs from the run's "
                            f"{getattr(saved, key)}; a resumed run keeps it (drop the flag)")
    done = ckpt["epoch"]
    epochs = saved.epochs
    if "epochs" in explicit and cfg.epochs != saved.epochs:
        spans = [n for n, on in (("--triangle", saved.triangle), ("--lookahead", saved.lookahead)) if on]
        if spans:
            raise UserError(f"{' and '.join(spans)} span the run's {saved.epochs} epochs; "
                            "drop --epochs or start a new run")
        if saved.onecycle:
            raise UserError(f"OneCycle fixes the schedule to the run's {saved.epochs} epochs; "
                            "drop --epochs or start a new run")
        if cfg.epochs < done:
            raise UserError(f"the run has already trained {done} epochs; --epochs must be at least that")
        epochs = cfg.epochs
    keep = {k: getattr(cfg, k) for k in CHANGEABLE_ON_RESUME if k in explicit}
    return dataclasses.replace(saved, epochs=epochs, **keep)


# ---------------------------------------------------------------- one step, one epoch

def train_step(model, optimizer, scaler, x, y, dtype=None, label_smoothing=0.0):
    """One SGD step on batch (x, y) under autocast ``dtype``; returns the loss, still on the device."""
    with autocast(x.device, dtype):
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    if scaler.is_enabled():                  # fp16: scaled loss, skipped steps on overflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:                                    # at batch 4 every Python call shows in the step rate
        loss.backward()
        optimizer.step()
    return loss.detach()


# --triangle: airbench's schedule, as fractions of --max-lr.
TRIANGLE_START, TRIANGLE_PEAK_AT, TRIANGLE_END = 0.2, 0.23, 0.07


def triangle_factor(step, total):
    """The learning rate of step ``step`` (from 0) of ``total``, as a fraction of the peak: linear
    from TRIANGLE_START up to 1 over the first TRIANGLE_PEAK_AT of the steps, then linear down to
    TRIANGLE_END at the last."""
    up = int(total * TRIANGLE_PEAK_AT)
    if step < up:
        return TRIANGLE_START + (1 - TRIANGLE_START) * step / up
    return 1 + (TRIANGLE_END - 1) * (step - up) / (total - up)


def make_schedule(cfg, optimizer, steps_per_epoch):
    total = cfg.epochs * steps_per_epoch
    if cfg.triangle:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: triangle_factor(step, total))
    if not cfg.onecycle:
        return None
    return graphs.onecycle(optimizer, cfg.max_lr, total)


def run_tag(cfg):
    return (cfg.model + ("-aug" if cfg.augment else "") + ("-onecycle" if cfg.onecycle else "")
            + ("-best" if cfg.recipe == "best" else "") + (f"-val{cfg.val}" if cfg.val else "")
            + (f"-sub{cfg.subset}" if cfg.subset else "")
            + f"-e{cfg.epochs}")


class NotStarted(UserError):
    """A new run that could not write its first checkpoint: there is nothing to resume."""


class DivergedError(Exception):
    """The loss became NaN or infinite at (epoch, batch)."""

    def __init__(self, value, epoch, batch):
        super().__init__(f"loss became {value} at [{epoch}, {batch}]")
        self.epoch = epoch


def train_one_epoch(t, epoch, stop):
    """Train ``t`` (a ``Training``) for one epoch, or until ``stop``; return (losses, batches done).

    Losses stay on the device; one host read per logging interval, for the printed line.
    Under torchrun each rank trains on its share of every global batch, and the logged
    losses are the mean over the ranks: the loss of the global batch.
    """
    cfg, ranks = t.cfg, t.ranks
    t.model.train()
    if cfg.whiten:                               # its bias trains for the first epochs only
        t.model.whiten.bias.requires_grad_(epoch <= cfg.whiten_bias_epochs)
    losses, b = [], 0
    flips = data.alternating_flips(t.first_flips, epoch) if t.first_flips is not None else None
    batches = t.ds.train_batches(cfg.batch_size, t.gen, cfg.augment, ranks.rank, ranks.world, cfg.cutout,
                                 cfg.crop_padding, cfg.crop_reflect, flips)
    if t.use_graph and t.graph is None:        # after any resume: it reads the optimizer's buffers
        t.graph = graphs.GraphStep(t.model, t.optimizer, t.schedule, cfg, t.dtype, t.ema)
    for b, (x, y) in enumerate(batches, 1):
        if t.graph is not None:                  # forward, backward, SGD, EMA: one replay
            losses.append(t.graph.step(x, y))
        else:
            losses.append(train_step(t.step_model, t.optimizer, t.scaler, x, y, t.dtype, cfg.label_smoothing))
            if t.ema is not None:
                t.ema.update()
            if t.lookahead is not None:
                t.lookahead.after_step((epoch - 1) * t.steps + b)
        if t.schedule is not None:
            t.schedule.step()
        t.progress.step()
        if b % cfg.log_every == 0 or b == t.steps:
            start = (b - 1) // cfg.log_every * cfg.log_every
            window = ranks.mean(torch.stack(losses[start:b]))  # this logging interval's losses
            mean = window.float().mean().item()
            if not np.isfinite(mean):
                bad = int(torch.nonzero(~torch.isfinite(window))[0])
                raise DivergedError(window[bad].item(), epoch, start + bad + 1)
            t.progress.note(mean)
            if b % cfg.log_every == 0:
                t.progress.write(f"[{epoch}, {b}] loss: {mean:.3f}")
                t.loss_lines.append([epoch, b, round(mean, 6)])
        if ranks.any(stop):                      # a signal to any rank stops them all here
            break
    synchronize(t.device)
    return losses, b


# ---------------------------------------------------------------- a run, from set-up to finish

@dataclasses.dataclass
class Training:
    """Everything one run holds: config, device, data, model, optimizer, run folder and record."""
    cfg: Config
    script: str
    device: torch.device
    dtype: object
    ds: data.DeviceCIFAR10
    dataset: dict
    model: torch.nn.Module
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object
    scaler: torch.amp.GradScaler
    gen: torch.Generator
    steps: int
    ranks: Ranks
    ema: WeightAverage = None                          # with --ema: the weights evaluated
    lookahead: Lookahead = None                        # with --lookahead
    first_flips: torch.Tensor = None                   # with --alt-flip: each image's flip in epoch 1
    use_graph: bool = False                            # the step as one program (graphs.GraphStep)
    graph_note: str = ""                               # why the plain step, when a graph was not taken
    graph: graphs.GraphStep = None                     # built at the first step, after any resume
    choice: Choice = None                              # precision and memory format, and why
    run_dir: Path = None
    started: str = None
    history: list = dataclasses.field(default_factory=list)
    loss_lines: list = dataclasses.field(default_factory=list)
    resumes: list = dataclasses.field(default_factory=list)
    done: int = 0                                      # epochs finished
    checkpointed: int = None                           # the epoch checkpoint.pt holds (None: none yet)
    completed: dict = None                             # an extended run's results before the extension
    began: float = 0.0                                 # time.perf_counter() at the start of train()
    record: dict = None
    progress: monitor.Progress = None
    board: object = None

    @property
    def evaluated(self):
        """The model whose accuracy is reported: the weight average with --ema, else the model."""
        return self.ema.model if self.ema is not None else self.model

    @property
    def resume_hint(self):
        # --epochs: an extended run stopped before its first new epoch still has the old count
        # in its checkpoint.
        spans = self.cfg.onecycle or self.cfg.triangle or self.cfg.lookahead   # fixed epochs
        epochs = "" if spans else f" --epochs {self.cfg.epochs}"
        return (f"resume with: {self.ranks.launcher} {hwdna.command_path(self.script)} "
                f"--resume {hwdna.relative(self.run_dir)}{epochs}")

    def save_checkpoint(self):
        """Write ``checkpoint.pt`` (rank 0 only: every rank holds the same state)."""
        if not self.ranks.main:
            return
        with self.writes():
            atomic.torch_save(self.run_dir / runs.CHECKPOINT, {
                "format": 1, "config": dataclasses.asdict(self.cfg), "epoch": self.done,
                "started": self.started, "dataset_id": self.dataset["id"], "resumes": self.resumes,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict() if self.schedule is not None else None,
                "scaler": self.scaler.state_dict(), "rng": rng_state(self.gen, self.device),
                "ema": self.ema.model.state_dict() if self.ema is not None else None,
                "lookahead": self.lookahead.average.state_dict() if self.lookahead is not None else None,
                "history": self.history, "loss_lines": self.loss_lines})
        self.checkpointed = self.done

    def checkpoint_due(self, epoch):
        """Whether ``epoch`` writes a checkpoint: every --checkpoint-every epochs, and the last."""
        return epoch % recipes.checkpoint_every(self.cfg, self.device.type) == 0 or epoch == self.cfg.epochs

    def write_log(self, status):
        self.record["status"] = status
        if self.ranks.main:
            with self.writes():
                runs.write_log(self.run_dir, self.record)

    @contextmanager
    def writes(self):
        """A write into the run folder that fails for a full disk ends the run with one line that
        says what is kept and the command that goes on from there (other failures, such as a folder
        that cannot be written, keep their own advice)."""
        try:
            yield
        except atomic.WriteError as exc:
            if not exc.full:
                raise
            raise self.write_failed(exc) from None

    def write_failed(self, exc):
        what = f"cannot write {hwdna.relative(exc.path)} ({exc.reason})"
        if self.checkpointed is None:
            # Not even epoch 0's checkpoint: no run to resume.  The folder holds nothing of it.
            for leftover in self.run_dir.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
            try:
                self.run_dir.rmdir()
                gone = f"the run folder {hwdna.relative(self.run_dir)} is removed"
            except OSError:
                gone = f"nothing in {hwdna.relative(self.run_dir)} can be resumed"
            return NotStarted(f"{what}; no epoch was trained and {gone}: free some disk space, "
                              "then start the run again")
        if self.record is not None:
            self.record["status"] = "interrupted"
            try:                 # a small file may still fit where the checkpoint did not
                runs.write_log(self.run_dir, self.record)
            except UserError:
                pass             # the log stays "running"; the resume below rewrites it either way
        return UserError(f"{what}; the checkpoint of epoch {self.checkpointed} is kept: free some disk "
                         f"space, then {self.resume_hint}")

    def save(self):
        """After an epoch: the checkpoint, then the run log."""
        self.save_checkpoint()
        self.write_log("running")

    def is_complete(self):
        """A resumed run that already has every epoch, its final run log and its weights."""
        return (self.done >= self.cfg.epochs and runs.is_complete_training(runs.read_log(self.run_dir))
                and (self.run_dir / runs.WEIGHTS).is_file())


def set_up(cfg, script, ranks, previous=None):
    """Device, seeds, data, model, optimizer and schedule of a run, before any epoch.

    Every rank seeds alike, so all start from the same weights and draw the same epochs.
    ``previous``: the run log of the run being resumed (None for a new run or an unreadable log).
    """
    device = ranks.device
    ran = (previous or {}).get("precision")
    ran = ran if ran in PRECISIONS else None
    choice = choose(cfg.precision, cfg.channels_last, device, recipes.recipe(cfg.model).cpu_bf16,
                    ran=ran if cfg.precision == "auto" else None)
    dtype = choice.dtype
    if previous is not None:
        refuse_emulated_resume(precision_name(dtype), device, previous)
    slow = cpu_bf16_warning(dtype, device)
    if slow and ranks.rank == 0:
        print(slow, file=sys.stderr, flush=True)
    if cfg.nesterov and cfg.momentum <= 0:
        raise UserError("--nesterov needs momentum: give --momentum above 0 or drop --nesterov")
    if cfg.triangle and cfg.onecycle:
        raise UserError("--triangle and --onecycle are two schedules; choose one")
    if cfg.alt_flip and not cfg.augment:
        raise UserError("--alt-flip alternates --augment's flips; add --augment or drop --alt-flip")
    seed_everything(cfg.seed, device, cfg.deterministic)

    folder = data.locate(cfg.data_dir, allow_download=cfg.download)
    arrays = data.load_arrays(folder)
    memory_format = torch.channels_last if choice.channels_last else torch.contiguous_format
    ds = data.DeviceCIFAR10(*arrays, device, memory_format=memory_format, val=cfg.val, val_seed=cfg.val_seed,
                            subset_size=cfg.subset)
    # train_images: the images the run trains on (the files' training images less --val's).
    dataset = data.fingerprint(folder, arrays) | {
        "folder": hwdna.recorded(folder), "train_images": len(ds), "test_images": len(ds.y_test),
        "val_images": len(ds.y_val)}

    model = build_model(cfg.model, **cfg.architecture()).to(device, memory_format=memory_format)
    if cfg.whiten:
        whiten(model, ds, cfg)
    if ranks.world > 1 and device.type == "cuda":
        # Batch norm over the global batch, as one process computes it (GPUs only in PyTorch;
        # on the CPU each rank normalises its own share).  Same state_dict keys.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    lr = base_lr(cfg)
    optimizer = torch.optim.SGD(param_groups(model, cfg), lr=lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    steps = ds.num_batches(cfg.batch_size, ranks.world)
    step_model = ranks.parallel(model)      # DDP averages the ranks' gradients in backward
    use_graph, graph_note = graph_choice(cfg, device, dtype, ranks.world)
    gen = data_generator(cfg.seed)
    # --alt-flip: every image's flip in epoch 1, the generator's first draw (a resume draws it
    # again from the fresh generator, then restores the generator's state).
    first_flips = torch.randint(0, 2, (len(ds),), generator=gen).bool() if cfg.alt_flip else None
    return Training(
        cfg=cfg, script=script, device=device, dtype=dtype, ds=ds, dataset=dataset, model=model,
        step_model=torch.compile(step_model) if cfg.compile else step_model, optimizer=optimizer,
        schedule=make_schedule(cfg, optimizer, steps),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype is torch.float16),
        gen=gen, steps=steps, ranks=ranks,
        ema=WeightAverage(model, cfg.ema) if cfg.ema else None, use_graph=use_graph, graph_note=graph_note,
        choice=choice, lookahead=Lookahead(model, cfg.lookahead, cfg.epochs * steps) if cfg.lookahead else None,
        first_flips=first_flips)


def whiten(model, ds, cfg):
    """--whiten N: set ``model.whiten``'s weight to whiten the 2x2 patches of the first N training
    images (``models.whitening_weights``, computed on the CPU, so alike on every device) and
    freeze it; its bias starts at zero and trains for --whiten-bias-epochs."""
    layer = getattr(model, "whiten", None)
    if not isinstance(layer, torch.nn.Conv2d):
        raise UserError(f"--whiten: model {cfg.model!r} has no whitening layer; drop --whiten "
                        "(the fast network has one)")
    images = ds.normalize(ds.x_train[:cfg.whiten]).float().cpu().contiguous()   # (N, 3, 32, 32)
    weights = whitening_weights(images, layer.kernel_size[0])
    with torch.no_grad():
        layer.weight.copy_(weights)
        if layer.bias is not None:
            layer.bias.zero_()
    layer.weight.requires_grad_(False)


def graph_choice(cfg, device, dtype, world):
    """(take the one-program step?, why not): --cuda-graph, else the device's default."""
    why_not = graphs.eligible(cfg, device, dtype, world)
    if cfg.cuda_graph is None:
        wanted = recipes.GRAPH_BY_DEFAULT.get(device.type, False)
        return wanted and not why_not, why_not if wanted else "off by default on " + device.type
    if cfg.cuda_graph and why_not:
        raise UserError(f"--cuda-graph: {why_not}; drop --cuda-graph")
    return cfg.cuda_graph, "" if cfg.cuda_graph else "--no-cuda-graph"


def step_record(t):
    """How the steps ran, for the run log: the path, whether it was captured, and the kernels' settings."""
    rec = {"path": "plain", "note": t.graph_note}
    if t.use_graph:
        rec = {"path": "graph", "note": ""} | (t.graph.describe() if t.graph is not None else {})
    elif t.cfg.compile:
        rec["path"] = "compiled"
    if t.device.type == "cuda":
        rec["cudnn"] = {"benchmark": torch.backends.cudnn.benchmark,
                        "deterministic": torch.backends.cudnn.deterministic}
    rec["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
    return rec


def base_lr(cfg):
    """The optimizer's learning rate before any schedule: --triangle's peak, which its schedule
    scales, else --lr (OneCycle sets its own)."""
    return cfg.max_lr if cfg.triangle else cfg.lr


def param_groups(model, cfg):
    """The optimizer's parameters: one group, or with ``--no-decay-norm-bias`` two, the second
    (batch-norm weights and biases, every bias: the tensors of one dimension) without weight decay.
    With ``--bias-lr-scale S`` the batch-norm parameters form a last group of their own at
    ``base_lr`` times S and weight decay divided by S, so the decay each step applies (lr x decay)
    stays."""
    params = list(model.parameters())
    norms = []
    if cfg.bias_lr_scale != 1:
        norms = [p for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 for p in m.parameters()]
        params = [p for p in params if all(p is not q for q in norms)]
    if cfg.decay_norm_bias:
        groups = [{"params": params}]
    else:
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if not norms:
        return groups[0]["params"] if cfg.decay_norm_bias else groups
    decay = cfg.weight_decay if cfg.decay_norm_bias else 0.0
    return [g for g in groups if g["params"]] + [
        {"params": norms, "lr": base_lr(cfg) * cfg.bias_lr_scale, "weight_decay": decay / cfg.bias_lr_scale}]


def start_new(t):
    """Create the run folder (rank 0) and tell every rank its name."""
    def create():
        t.run_dir = runs.new_run_dir(t.cfg.out, run_tag(t.cfg))
        t.started = hwdna.now()
        t.save_checkpoint()                              # epoch 0: a stop at once can resume
        return t.run_dir.name, t.started
    name, t.started = t.ranks.on_main(create)
    t.checkpointed = 0                                   # on every rank: they branch on it alike
    t.run_dir = Path(t.cfg.out) / name


def restore(t, ckpt, ckpt_path):
    """Load a checkpoint's model, optimizer, schedule, random states and history into ``t``."""
    t.run_dir = ckpt_path.parent
    if ckpt.get("dataset_id") not in (None, t.dataset["id"], t.dataset["files_id"]):
        raise UserError(f"the run trained on dataset {ckpt['dataset_id']}, but "
                        f"{t.dataset['folder']} holds {t.dataset['id']}; resume it with its own --data-dir")
    try:
        t.model.load_state_dict(ckpt["model"])
        t.optimizer.load_state_dict(ckpt["optimizer"])
        if t.schedule is not None:
            t.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            t.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"], t.gen, t.device)
        if t.ema is not None:
            t.ema.model.load_state_dict(ckpt["ema"] or {})
        if t.lookahead is not None:
            t.lookahead.average.load_state_dict(ckpt["lookahead"] or {})
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError):
        raise UserError(f"{ckpt_path} does not fit this run's model or settings; "
                        "it is not a checkpoint of this run: start a new run") from None
    t.history, t.loss_lines, t.done, t.started = ckpt["history"], ckpt["loss_lines"], ckpt["epoch"], ckpt["started"]
    t.checkpointed = t.done
    t.completed = completed_results(t.run_dir)
    t.resumes = ckpt.get("resumes", []) + [{"after_epoch": t.done, "at": hwdna.now(),
                                            "device": t.device.type, "world_size": t.ranks.world,
                                            "epochs_before": ckpt["config"].epochs}]


def completed_results(run_dir):
    """The results of a run's last completion while it is extended (or None): its log's results
    and ``weights.pt`` stay until the extension completes, for ``predict.py --run`` and the like."""
    record = runs.read_log(run_dir)
    if (record is None or not isinstance(record.get("results"), dict) or runs.log_problem(record)
            or not (run_dir / runs.WEIGHTS).is_file()):
        return None
    return record["results"]


def discard_temp_files(run_dir):
    """Remove what writes of a killed process left behind (``.checkpoint.pt.*.tmp``, ...)."""
    for name in (runs.CHECKPOINT, runs.WEIGHTS, runs.WEIGHTS_EMA, runs.LOG):
        for leftover in atomic.temp_files(run_dir, name):
            leftover.unlink(missing_ok=True)


def new_record(t):
    cfg = t.cfg
    return {
        "kind": "train", "run_id": t.run_dir.name, "status": "running", "script": t.script,
        "model": cfg.model, "params": count_parameters(t.model), "seed": cfg.seed,
        "device": t.device.type, "device_requested": cfg.device, "precision": precision_name(t.dtype),
        "precision_choice": {"requested": cfg.precision, "precision": precision_name(t.dtype),
                             "channels_last": t.choice.channels_last, "reason": t.choice.reason},
        "distributed": t.ranks.record(),
        "config": dataclasses.asdict(cfg) | {"data_dir": hwdna.recorded(cfg.data_dir),
                                             "out": hwdna.recorded(cfg.out)},
        "hardware": hwdna.describe(t.device), "dataset": t.dataset, "git": hwdna.git_commit(),
        "started": t.started, "finished": None, "results": t.completed, "history": t.history,
        "loss_lines": t.loss_lines, "resumes": t.resumes, "step": step_record(t),
    }


def assess(t, final=True):
    """(test result, validation result or None) of the evaluated model, as ``evaluate`` returns them.
    --tta-translate's shifted views count in the ``final`` evaluation only (the run's result): they
    triple its cost, and the epochs before the last are watched, not reported.  They shift flip
    TTA's views: with --no-tta there are none."""
    if t.ema is not None:
        t.ranks.broadcast_buffers(t.model)       # as evaluating the model itself would
    tta, translate = final_views(t.cfg)
    translate = translate and final
    result = evaluate(t.evaluated, t.ds, t.dtype, t.ranks, tta=tta, translate=translate)
    val = (evaluate(t.evaluated, t.ds, t.dtype, t.ranks, "val", tta, translate)
           if t.cfg.val else None)
    return result, val


def final_views(cfg):
    """(flip TTA, translations) of a run's final evaluation: --tta-translate shifts flip TTA's views,
    so with --no-tta there are none to shift."""
    return bool(cfg.tta), bool(cfg.tta and cfg.tta_translate)


def overall(result):
    return result["overall_accuracy"] if result is not None else None


def evaluations(t, result, val):
    """{variant: {"val": %, "test": %}} for every evaluation of the final weights that needs no
    training: the model and (with --ema) its weight average, each without and with flip TTA, and
    with --tta-translate also with flip TTA on the shifted views ("+tta+translate").

    Only runs with a validation split (--val) compute them: they are the ablation's runs, and
    one training run then answers "+ EMA", "+ flip TTA", "+ translations" and their sums.  The
    variant the run's flags ask for is the run's headline accuracy, already measured; the others
    cost one evaluation each of the test and validation images (two with flip TTA, six with
    the shifts too)."""
    if not t.cfg.val:
        return None
    models = {False: t.model} | ({True: t.ema.model} if t.ema is not None else {})
    ways = ((False, False), (True, False)) + (((True, True),) if t.cfg.tta_translate else ())
    own = (t.ema is not None, *final_views(t.cfg))
    out = {}
    for ema, model in models.items():
        for tta, translate in ways:
            if (ema, tta, translate) == own:
                test, v = result, val
            else:
                test = evaluate(model, t.ds, t.dtype, t.ranks, tta=tta, translate=translate)
                v = evaluate(model, t.ds, t.dtype, t.ranks, "val", tta, translate)
            out[recipes.variant_name(ema, tta, translate)] = {"val": overall(v), "test": overall(test)}
    return out


def end_of_epoch(t, epoch, losses, train_time, other_cpus=None):
    """Evaluate (every --eval-every epochs and after the last), record the epoch, print its line, save
    the checkpoint and the run log.  ``other_cpus``: the CPUs other processes kept busy while the
    epoch trained.  An epoch not evaluated records its accuracies as None."""
    t1 = time.perf_counter()
    final = epoch == t.cfg.epochs
    due = final or (t.cfg.eval_every and epoch % t.cfg.eval_every == 0)
    result, val = assess(t, final=final) if due else (None, None)
    eval_time = time.perf_counter() - t1
    train_loss = t.ranks.mean(torch.stack(losses).float().mean()).item()
    t.history.append({
        "epoch": epoch, "train_loss": round(train_loss, 6),
        "test_accuracy": overall(result), "val_accuracy": overall(val),
        "per_class": result["per_class"] if result is not None else None,
        "lr": t.optimizer.param_groups[0]["lr"], "epoch_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "train_time_s": round(sum(h["epoch_time_s"] for h in t.history) + train_time, 3),
        # Only with a checkpoint: on a GPU, 45 MB of weights to the host each epoch is not free.
        "weights_sha256": weights_digest(t.model) if t.checkpoint_due(epoch) else None,
        "load_average": hwdna.load_average(),
        "other_cpus": other_cpus,
    })
    t.ranks.on_main(lambda: t.board.epoch(t.history[-1]))
    test_part = f"test accuracy {result['overall_accuracy']:.2f}%, " if result is not None else ""
    val_part = f"val accuracy {val['overall_accuracy']:.2f}%, " if val is not None else ""
    eval_part = f", eval time {eval_time:.1f}s" if result is not None else ""
    print(f"epoch {epoch}/{t.cfg.epochs}: train loss {t.history[-1]['train_loss']:.3f}, {test_part}{val_part}"
          f"train time {train_time:.1f}s{eval_part}", flush=True)
    t.done = epoch
    t.record["step"] = step_record(t)
    if t.checkpoint_due(epoch):
        t.ranks.on_main(t.save)
        t.checkpointed = epoch                   # on every rank: they branch on it alike
    else:
        t.ranks.on_main(lambda: t.write_log("running"))
    return result, val


def refreshes_top_level(t):
    """Only a full-size run in the project's own ``runs/`` refreshes the project's ``run_log.json``."""
    return (Path(t.cfg.out).resolve() == hwdna.ROOT / "runs"
            and t.dataset["train_images"] == FULL_TRAIN and t.dataset["test_images"] == FULL_TEST)


def finish(t, result, val):
    """Write the weights and the final run log (rank 0); print the accuracy and the per-class table."""
    total_train = t.history[-1]["train_time_s"]
    variants = evaluations(t, result, val)        # every rank: evaluating is collective
    wall = round(time.perf_counter() - t.began, 3)

    def write():
        with t.writes():
            write_files()

    def write_files():
        if t.ema is not None:                    # before weights.pt, which marks the run complete
            atomic.torch_save(t.run_dir / runs.WEIGHTS_EMA, t.ema.model.state_dict())
        atomic.torch_save(t.run_dir / runs.WEIGHTS, t.model.state_dict())   # never DDP's module. keys
        t.record["hardware"]["load_average_end"] = hwdna.load_average()
        t.record.update(finished=hwdna.now(), results={
            **result, "val_accuracy": overall(val), "train_time_s": total_train,
            "final_loss": t.loss_lines[-1][2] if t.loss_lines else t.history[-1]["train_loss"],
            "epochs": t.cfg.epochs, "weights_sha256": weights_digest(t.model),
            "wall_time_s": wall,
            "weights_ema_sha256": weights_digest(t.ema.model) if t.ema is not None else None,
            "evaluations": variants,
        })
        t.write_log("complete")
        if refreshes_top_level(t):
            try:
                atomic.write_json(hwdna.ROOT / runs.LOG, t.record)
            except atomic.WriteError as exc:
                log = hwdna.relative(t.run_dir / runs.LOG)
                fix = "free some disk space" if exc.full else "make it writable"
                raise UserError(f"cannot write {hwdna.relative(exc.path)} ({exc.reason}); run "
                                f"{t.run_dir.name} is complete and {log} says so: {fix}, "
                                f"then copy {log} over it") from None
        t.board.finish(t.cfg, result, t.cfg.epochs)
    t.ranks.on_main(write)
    print(f"Accuracy of the network on the {result['total']} test images: "
          f"{result['overall_accuracy']:.2f} %")
    if val is not None:
        print(f"Accuracy on the {val['total']} validation images: {val['overall_accuracy']:.2f} %")
    for name, acc in (variants or {}).items():
        print(f"evaluation {name}: val {acc['val']:.2f}%, test {acc['test']:.2f}%")
    print(class_table(result["per_class"]))
    print(f"Training time: {total_train:.2f}s on {t.device} ({t.record['precision']}), wall time "
          f"{wall:.2f}s; run log: {hwdna.relative(t.run_dir / runs.LOG)}")


def train(cfg, script="train.py", resume=None, explicit=()):
    """Train (or resume) one run; return the exit status (0 done, 130 interrupted).

    Under torchrun every rank calls this: every rank loads the checkpoint it resumes.
    """
    began = time.perf_counter()               # the run's wall time counts from here
    stop = StopFlag()
    launch = torchrun_env()
    rank, world = (launch[0], launch[1]) if launch else (0, 1)
    # From the start: no signal finds the run half-made.  Only rank 0 prints.
    with stop.installed(), stdout_silenced(rank != 0):
        try:
            ckpt = ckpt_path = None
            if resume is not None:
                with stop.at_once(launch is None):     # reading writes nothing: stop at once
                    ckpt_path = runs.find_checkpoint(resume, cfg.out)
                    ckpt = load_checkpoint(ckpt_path)
                    cfg = resumed_config(ckpt, cfg, explicit)
            check_batch_split(cfg.batch_size, world)
            with process_group(cfg.device, launch) as ranks, cpu_settings(cfg.threads, cfg.onednn):
                try:
                    return _run(cfg, script, ckpt, ckpt_path, stop, ranks, began)
                finally:
                    # The run (its DistributedDataParallel model among it) goes before the process
                    # group does: a DDP reducer outliving its group can abort the process at exit.
                    stop.on_abort = None
                    gc.collect()
        except SharedError as exc:
            if rank != 0:                    # rank 0 says it
                return exc.exit_code
            raise


def _run(cfg, script, ckpt, ckpt_path, stop, ranks, began):
    # A single process stops set-up (a download among it) at the first signal.  Under torchrun
    # the ranks meet in set-up's collectives, so there the flag waits for the first batch.
    previous = runs.read_log(ckpt_path.parent) if ckpt_path is not None else None
    with stop.at_once(not ranks.launched):
        t = set_up(cfg, script, ranks, previous)
    t.began = began
    with peers_watched(t):
        return _train(t, cfg, ckpt, ckpt_path, stop, ranks)


def lost_peer(exc):
    """Whether ``exc`` is a collective failing because another rank is gone (killed, out of memory)."""
    text = str(exc)
    return isinstance(exc, torch.distributed.DistError) or any(
        s in text for s in ("Connection reset", "Connection closed", "Broken pipe", "gloo", "NCCL"))


@contextmanager
def peers_watched(t):
    """Under torchrun, a rank that dies breaks the others' next collective: they end with one line
    (rank 0's) and status 2 instead of the backend's traceback, the checkpoint kept."""
    try:
        yield
    except RuntimeError as exc:
        if not (t.ranks.launched and lost_peer(exc)):
            raise
        if t.ranks.main and t.record is not None:
            t.record["status"] = "interrupted"
            try:                     # no collectives now: rank 0 writes on its own
                runs.write_log(t.run_dir, t.record)
            except UserError:
                pass
        reason = str(exc).split("] ", 1)[-1].split(". ")[0][:120]
        kept = (f"the checkpoint of epoch {t.checkpointed} in {hwdna.relative(t.run_dir)} is kept: {t.resume_hint}"
                if t.checkpointed is not None else "no checkpoint was written: start the run again")
        raise SharedError(f"another process of this run stopped ({reason}); {kept}") from None


def _train(t, cfg, ckpt, ckpt_path, stop, ranks):
    if ckpt is None:
        start_new(t)
    else:
        restore(t, ckpt, ckpt_path)
        ranks.on_main(lambda: discard_temp_files(t.run_dir))
        if ranks.on_main(t.is_complete):
            print(f"run {t.run_dir.name} already has all {cfg.epochs} epochs; nothing to do")
            return 0
        print(f"resuming {t.run_dir.name} after epoch {t.done} on {t.device}")
    t.record = new_record(t)
    t.progress = monitor.Progress(cfg.progress if ranks.main else False, cfg.epochs, t.steps,
                                  cfg.batch_size)
    t.board = (monitor.Board(t.run_dir / "tensorboard") if cfg.tensorboard and ranks.main
               else monitor.NoBoard())
    stop.on_abort = lambda: t.write_log("interrupted")
    ranks.on_main(lambda: t.write_log("running"))
    if ranks.any(stop):
        return _interrupted(t, f"before epoch {t.done + 1}")
    shares = (f" ({cfg.batch_size // ranks.world} per process x {ranks.world}, {ranks.backend})"
              if ranks.launched else "")
    held = f" ({len(t.ds.y_val):,} held out for validation)" if cfg.val else ""
    print(f"run {t.run_dir.name}: {cfg.model} ({t.record['params']:,} parameters) on {t.device}, "
          f"{t.record['precision']}, {cfg.epochs} epochs, batch {cfg.batch_size}{shares}, seed {cfg.seed}, "
          f"{len(t.ds):,} training images{held}", flush=True)

    result = None
    for epoch in range(t.done + 1, cfg.epochs + 1):
        t0, clock = time.perf_counter(), hwdna.cpu_clock()
        try:
            with t.progress.epoch(epoch):
                losses, b = train_one_epoch(t, epoch, stop)
        except DivergedError as exc:             # every rank sees the same (averaged) losses
            ranks.on_main(lambda: t.write_log("failed"))
            rate = "--max-lr" if cfg.onecycle or cfg.triangle else "--lr"
            raise SharedError(f"{exc}; run {hwdna.relative(t.run_dir)} is marked failed (a resume keeps "
                              f"its rate, so it would diverge again): start a new run with a lower {rate}") from None
        if ranks.any(stop):
            return _interrupted(t, f"at [{epoch}, {b}]; the checkpoint holds epoch {t.checkpointed}")
        train_time, others = time.perf_counter() - t0, ranks.other_cpus(clock, hwdna.cpu_clock())
        result, val = end_of_epoch(t, epoch, losses, train_time, others)
        if epoch < cfg.epochs and ranks.any(stop):
            if t.checkpointed < epoch:          # keep the finished epoch for the resume
                ranks.on_main(t.save)
                t.checkpointed = epoch
            return _interrupted(t, f"after epoch {epoch}")
    if result is None:                      # resumed after the last epoch: finish what was left
        result, val = assess(t)
    finish(t, result, val)
    return 0


def _interrupted(t, where):
    def say():
        t.write_log("interrupted")
        t.board.close()
        print(f"interrupted {where}; {t.resume_hint}", file=sys.stderr)
    t.ranks.on_main(say)                     # no rank leaves before rank 0 has written its log
    return EXIT_INTERRUPTED
