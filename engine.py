"""The shared training loop: device, seeding, SGD + OneCycle, logging, evaluation, checkpoints.

Every training script is a set of defaults plus ``engine.train(config)``:

    >>> train(Config(model="large", epochs=2, batch_size=64), script="train_large.py")

Prints ``[epoch, batch] loss: x.xxx`` every ``log_every`` mini-batches (batch
counted from 1), an epoch summary line, and at the end the per-class accuracy
table.  Each run lives in ``<out>/<run-id>/``: ``run_log.json`` (rewritten
after every epoch), ``checkpoint.pt`` (after every epoch, for ``--resume``)
and ``weights.pt`` (the final ``state_dict``).  A completed run also refreshes
the top-level ``run_log.json``.  On CPU, the same seed gives the same loss lines
and bit-identical weights, also across an interruption and resume.
"""
import dataclasses
import hashlib
import os
import random
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import atomic
import data
import hwdna
from errors import UserError
from models import build_model, count_parameters

EXIT_INTERRUPTED = 130
# Config fields that define what a run computes: a resumed run may not change them.
FIXED_ON_RESUME = ("model", "batch_size", "lr", "max_lr", "weight_decay", "momentum",
                   "augment", "onecycle", "seed", "precision")


@dataclass
class Config:
    model: str = "small"
    epochs: int = 2
    batch_size: int = 4
    lr: float = 0.001          # fixed learning rate (without OneCycle)
    max_lr: float = 0.1        # OneCycle peak (with OneCycle)
    weight_decay: float = 0.0
    momentum: float = 0.9
    augment: bool = False
    onecycle: bool = False
    seed: int = 1111
    device: str = "auto"       # as requested; the device used is recorded in the run log
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    threads: int = 0           # CPU threads for tensor ops; 0 = PyTorch's default
    onednn: bool = True        # CPU convolutions through oneDNN (else PyTorch's native kernels)
    log_every: int = 100
    data_dir: str = "data"
    out: str = "runs"
    download: bool = True


# ---------------------------------------------------------------- device and seeds

def available(kind):
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "cuda":
        return torch.cuda.is_available()
    return kind == "cpu"


def resolve_device(name):
    """'auto' -> MPS, CUDA, CPU (first available).  A missing device falls back with a warning."""
    order = ["mps", "cuda", "cpu"]
    if name not in order + ["auto"]:
        raise UserError(f"unknown device {name!r}; choose auto, mps, cuda or cpu")
    if name != "auto" and available(name):
        return torch.device(name), None
    chosen = next(k for k in order if available(k))
    warning = None if name == "auto" else f"warning: device {name!r} is not available here; using {chosen}"
    return torch.device(chosen), warning


def seed_everything(seed, device):
    """Seed Python, numpy and torch; ask for deterministic kernels where the backend has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA/MPS device
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor's memory with NaN, a check against
    # kernels that read memory they never wrote; it costs about 5% of a batch-4 step.
    torch.utils.deterministic.fill_uninitialized_memory = False


def data_generator(seed):
    """CPU generator for data order and augmentation, apart from the model's init stream."""
    return torch.Generator().manual_seed(seed + 1)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def amp_dtype(precision, device):
    """Autocast dtype for ``precision`` on ``device``; None means plain fp32."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type == "cpu":
        raise UserError("--precision fp16 is for cuda and mps; on a CPU use bf16 or fp32")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_name(dtype):
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# ---------------------------------------------------------------- interruption

class StopFlag:
    """SIGINT/SIGTERM set a flag checked after each batch; a second signal stops at once."""

    def __init__(self):
        self.signum = None

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this batch "
              "(send it again to stop at once)", flush=True)

    @contextmanager
    def installed(self):
        if sys.platform == "win32" or not _main_thread():
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

    def __bool__(self):
        return self.signum is not None


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------- evaluation and reports

@torch.no_grad()
def evaluate(model, ds, dtype=None):
    """Accuracy on the test set: overall %, per-class %, and the 10x10 confusion matrix."""
    model.eval()
    n = len(data.CLASSES)
    confusion = torch.zeros(n * n, dtype=torch.int64, device=ds.device)
    for x, y in ds.test_batches():
        with autocast(ds.device, dtype):
            pred = model(x).argmax(1)
        confusion += torch.bincount(y * n + pred, minlength=n * n)
    confusion = confusion.view(n, n).cpu()                 # rows: true class, cols: predicted
    totals = confusion.sum(1)
    per_class = {c: round(100.0 * confusion[i, i].item() / max(totals[i].item(), 1), 2)
                 for i, c in enumerate(data.CLASSES)}
    correct = int(confusion.diag().sum())
    total = int(totals.sum())
    return {"overall_accuracy": round(100.0 * correct / max(total, 1), 2), "correct": correct,
            "total": total, "per_class": per_class, "confusion": confusion.tolist()}


def class_table(per_class):
    """The per-class accuracy table, best class first (the results document's format)."""
    rows = ["| Class | Accuracy |", "|-------|----------|"]
    for c, acc in sorted(per_class.items(), key=lambda kv: (-kv[1], data.CLASSES.index(kv[0]))):
        rows.append(f"| {c:<5} | {acc:.1f}%{'':<3} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- checkpoints

def weights_digest(model):
    """sha256 over every tensor of the state_dict, in order: equal digests mean identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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


def find_checkpoint(resume, out):
    """``resume`` is a run id in ``out``, a run folder, or a checkpoint file."""
    for cand in (Path(resume), Path(out) / resume):
        if cand.is_file():
            return cand
        if (cand / "checkpoint.pt").is_file():
            return cand / "checkpoint.pt"
    raise UserError(f"no run {resume!r} to resume: no checkpoint.pt in {Path(out) / resume} "
                    f"(list the runs with: ls {out})")


def load_checkpoint(path):
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); "
                        "start a new run") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != 1 or "config" not in ckpt:
        raise UserError(f"{path} is not a checkpoint of this project; start a new run")
    return ckpt


def resumed_config(ckpt, cfg, explicit):
    """The checkpoint's config, with the flags a resume may change taken from ``cfg``."""
    saved = Config(**ckpt["config"])
    if cfg.model != saved.model:
        raise UserError(f"run trained model {saved.model!r}, not {cfg.model!r}; "
                        f"resume it with train script of {saved.model!r}")
    for key in FIXED_ON_RESUME:
        if key in explicit and getattr(cfg, key) != getattr(saved, key):
            raise UserError(f"--{key.replace('_', '-')} {getattr(cfg, key)} differs from the run's "
                            f"{getattr(saved, key)}; a resumed run keeps it (drop the flag)")
    done = ckpt["epoch"]
    epochs = saved.epochs
    if "epochs" in explicit and cfg.epochs != saved.epochs:
        if saved.onecycle:
            raise UserError(f"OneCycle fixes the schedule to the run's {saved.epochs} epochs; "
                            "drop --epochs or start a new run")
        if cfg.epochs < done:
            raise UserError(f"the run has already trained {done} epochs; --epochs must be at least that")
        epochs = cfg.epochs
    # Where and how the run continues may change when asked: device, logging, compile, memory
    # format, CPU threads and kernels (changing the last three changes the floating-point sums, so
    # the resumed run no longer matches an uninterrupted one bit for bit).
    keep = {k: getattr(cfg, k) for k in ("device", "log_every", "compile", "channels_last", "threads",
                                         "onednn", "data_dir", "download") if k in explicit}
    return dataclasses.replace(saved, epochs=epochs, **keep)


# ---------------------------------------------------------------- the loop

def train_step(model, optimizer, scaler, x, y, dtype=None):
    """One SGD step on batch (x, y) under autocast ``dtype``; returns the loss, still on the device."""
    with autocast(x.device, dtype):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler.is_enabled():                  # fp16: scaled loss, skipped steps on overflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:                                    # at batch 4 every Python call shows in the step rate
        loss.backward()
        optimizer.step()
    return loss.detach()


def make_schedule(cfg, optimizer, steps_per_epoch):
    if not cfg.onecycle:
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.max_lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.3, anneal_strategy="cos")


def run_tag(cfg):
    return cfg.model + ("-aug" if cfg.augment else "") + ("-onecycle" if cfg.onecycle else "") + f"-e{cfg.epochs}"


@contextmanager
def cpu_settings(threads=0, onednn=True):
    """Run the block with ``threads`` intra-op CPU threads (0: PyTorch's setting) and CPU
    convolutions through oneDNN or not; restore both afterwards.

    oneDNN pays a fixed cost per convolution call that dominates for the tutorial LeNet at
    batch 4 (6 and 16 channels); PyTorch's native convolution is faster there. Both settings
    change the order of floating-point sums, so a run records them in its config.
    """
    before = torch.get_num_threads(), torch.backends.mkldnn.enabled
    if threads:
        torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = onednn
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.backends.mkldnn.enabled = before[1]


def train(cfg, script="train.py", resume=None, explicit=()):
    """Train (or resume) one run; return the exit status (0 done, 130 interrupted)."""
    ckpt = ckpt_path = None
    if resume is not None:
        ckpt_path = find_checkpoint(resume, cfg.out)
        ckpt = load_checkpoint(ckpt_path)
        cfg = resumed_config(ckpt, cfg, explicit)
    with cpu_settings(cfg.threads, cfg.onednn):
        return _train(cfg, script, ckpt, ckpt_path)


def _train(cfg, script, ckpt, ckpt_path):
    device, warning = resolve_device(cfg.device)
    if warning:
        print(warning, file=sys.stderr)
    dtype = amp_dtype(cfg.precision, device)
    seed_everything(cfg.seed, device)

    folder = data.locate(cfg.data_dir, allow_download=cfg.download)
    arrays = data.load_arrays(folder)
    ds = data.DeviceCIFAR10(*arrays, device)
    dataset_info = data.fingerprint(folder, arrays)
    dataset_info.update(folder=hwdna.relative(folder), train_images=len(ds),
                        test_images=len(ds.y_test))
    if cfg.channels_last:
        ds.memory_format = torch.channels_last

    model = build_model(cfg.model).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    steps = ds.num_batches(cfg.batch_size)
    schedule = make_schedule(cfg, optimizer, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    gen = data_generator(cfg.seed)

    if ckpt is None:
        run_dir = hwdna.new_run_dir(cfg.out, run_tag(cfg))
        history, loss_lines, start_epoch, started, resumes = [], [], 1, hwdna.now(), []
    else:
        run_dir = ckpt_path.parent
        if ckpt.get("dataset_id") not in (None, dataset_info["id"], dataset_info["files_id"]):
            raise UserError(f"the run trained on dataset {ckpt['dataset_id']}, but {folder} holds "
                            f"{dataset_info['id']}; resume it with its own --data-dir")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"], gen, device)
        history, loss_lines = ckpt["history"], ckpt["loss_lines"]
        start_epoch, started = ckpt["epoch"] + 1, ckpt["started"]
        resumes = ckpt.get("resumes", []) + [{"after_epoch": ckpt["epoch"], "at": hwdna.now(),
                                              "device": device.type,
                                              "epochs_before": ckpt["config"]["epochs"]}]
        print(f"resuming {run_dir.name} after epoch {ckpt['epoch']} on {device}")
    step_model = torch.compile(model) if cfg.compile else model

    record = {
        "kind": "train", "run_id": run_dir.name, "status": "running", "script": script, "model": cfg.model,
        "params": count_parameters(model), "seed": cfg.seed, "device": device.type,
        "device_requested": cfg.device, "precision": precision_name(dtype),
        "config": dataclasses.asdict(cfg) | {"data_dir": hwdna.relative(cfg.data_dir),
                                             "out": hwdna.relative(cfg.out)},
        "hardware": hwdna.describe(device), "dataset": dataset_info, "git": hwdna.git_commit(),
        "started": started, "finished": None, "results": None, "history": history,
        "loss_lines": loss_lines, "resumes": resumes,
    }

    def save_checkpoint(epoch):
        atomic.torch_save(run_dir / "checkpoint.pt", {
            "format": 1, "config": dataclasses.asdict(cfg), "epoch": epoch, "started": started,
            "dataset_id": dataset_info["id"], "resumes": resumes,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict() if schedule is not None else None,
            "scaler": scaler.state_dict(), "rng": rng_state(gen, device),
            "history": history, "loss_lines": loss_lines})

    if start_epoch > cfg.epochs:
        print(f"run {run_dir.name} already has all {cfg.epochs} epochs; nothing to do")
        return 0
    if ckpt is None:
        save_checkpoint(0)
    hwdna.write_run_log(run_dir, record)
    print(f"run {run_dir.name}: {cfg.model} ({record['params']:,} parameters) on {device}, "
          f"{record['precision']}, {cfg.epochs} epochs, batch {cfg.batch_size}, seed {cfg.seed}, "
          f"{len(ds):,} training images", flush=True)

    stop = StopFlag()
    resume_hint = f"resume with: python {script} --resume {run_dir.name}" + (
        f" --out {record['config']['out']}" if Path(cfg.out) != Path("runs") else "")
    with stop.installed():
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            losses = []                                   # per-batch 0-d losses, kept on the device
            b = 0
            for b, (x, y) in enumerate(ds.train_batches(cfg.batch_size, gen, cfg.augment), 1):
                losses.append(train_step(step_model, optimizer, scaler, x, y, dtype))
                if schedule is not None:
                    schedule.step()
                if b % cfg.log_every == 0 or b == steps:
                    start = (b - 1) // cfg.log_every * cfg.log_every
                    window = torch.stack(losses[start:b])     # this logging interval's losses
                    mean = window.float().mean().item()
                    if not np.isfinite(mean):
                        bad = int(torch.nonzero(~torch.isfinite(window))[0])
                        record["status"] = "failed"
                        hwdna.write_run_log(run_dir, record)
                        raise UserError(f"loss became {window[bad].item()} at [{epoch}, {start + bad + 1}]; "
                                        f"the checkpoint of epoch {epoch - 1} in {hwdna.relative(run_dir)} "
                                        "is kept; try a lower --lr or --max-lr")
                    if b % cfg.log_every == 0:
                        print(f"[{epoch}, {b}] loss: {mean:.3f}", flush=True)
                        loss_lines.append([epoch, b, round(mean, 6)])
                if stop:
                    break
            synchronize(device)
            train_time = time.perf_counter() - t0
            if stop:
                record["status"] = "interrupted"
                hwdna.write_run_log(run_dir, record)
                print(f"interrupted at [{epoch}, {b}]; the checkpoint holds epoch {epoch - 1}; "
                      f"{resume_hint}", file=sys.stderr)
                return EXIT_INTERRUPTED
            t1 = time.perf_counter()
            result = evaluate(model, ds, dtype)
            eval_time = time.perf_counter() - t1
            history.append({
                "epoch": epoch, "train_loss": round(torch.stack(losses).float().mean().item(), 6),
                "test_accuracy": result["overall_accuracy"], "per_class": result["per_class"],
                "lr": optimizer.param_groups[0]["lr"], "epoch_time_s": round(train_time, 3),
                "eval_time_s": round(eval_time, 3),
                "train_time_s": round(sum(h["epoch_time_s"] for h in history) + train_time, 3),
                "weights_sha256": weights_digest(model),
            })
            print(f"epoch {epoch}/{cfg.epochs}: train loss {history[-1]['train_loss']:.3f}, "
                  f"test accuracy {result['overall_accuracy']:.2f}%, "
                  f"train time {train_time:.1f}s, eval time {eval_time:.1f}s", flush=True)
            save_checkpoint(epoch)
            hwdna.write_run_log(run_dir, record)
            if stop and epoch < cfg.epochs:
                record["status"] = "interrupted"
                hwdna.write_run_log(run_dir, record)
                print(f"interrupted after epoch {epoch}; {resume_hint}", file=sys.stderr)
                return EXIT_INTERRUPTED

    atomic.torch_save(run_dir / "weights.pt", model.state_dict())
    total_train = history[-1]["train_time_s"]
    record["hardware"]["load_average_end"] = hwdna.load_average()
    record.update(status="complete", finished=hwdna.now(), results={
        **result, "train_time_s": total_train,
        "final_loss": loss_lines[-1][2] if loss_lines else history[-1]["train_loss"],
        "epochs": cfg.epochs, "weights_sha256": weights_digest(model),
    })
    hwdna.write_run_log(run_dir, record, refresh_top=True)
    print(f"Accuracy of the network on the {result['total']} test images: "
          f"{result['overall_accuracy']:.2f} %")
    print(class_table(result["per_class"]))
    print(f"Training time: {total_train:.2f}s on {device} ({record['precision']}); "
          f"run log: {hwdna.relative(run_dir / 'run_log.json')}")
    return 0
