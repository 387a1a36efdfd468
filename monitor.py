"""What a run shows while it trains: a progress bar on a terminal, and TensorBoard if asked.

    >>> progress = Progress(enabled=None, epochs=40, steps=391, batch_size=128)  # None: a terminal?
    >>> with progress.epoch(1):
    ...     progress.step()
    ...     progress.write("[1, 100] loss: 2.100")

On a terminal each epoch gets a tqdm bar (steps done of the epoch's total, steps/s,
images/s, the epoch's ETA and the whole run's); the loss lines print above it.  In a log
file or a pipe nothing but the stable lines is printed, exactly as without this module.
``Board`` writes TensorBoard scalars into the run folder: the train loss, learning rate and
test accuracy per epoch, the per-class accuracy at the end, and the hyperparameters.
"""
import shutil
import sys
import time
from contextlib import contextmanager

from errors import UserError


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _live_bar(tqdm, progress):
    """A tqdm class whose postfix (images/s, loss, the run's ETA) is recomputed at every redraw
    from tqdm's own smoothed step rate, so images/s is always steps/s times the batch."""
    class LiveBar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            rate = d["rate"]
            if rate is None and d["elapsed"]:                     # before tqdm's first smoothing
                rate = (d["n"] - d["initial"]) / d["elapsed"]
            d["postfix"] = progress.figures(d["n"], rate or 0.0)
            return d
    return LiveBar


class Progress:
    """A tqdm bar per epoch when ``enabled`` (None: when stdout is a terminal)."""

    def __init__(self, enabled, epochs, steps, batch_size, stream=None):
        self.stream = stream or sys.stdout
        if enabled is None:
            enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = bool(enabled)
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.bar = None
        self.loss = None                            # the last logged mean loss
        self.epoch_times = []                       # seconds per finished epoch, this session

    @contextmanager
    def epoch(self, epoch):
        if not self.enabled:
            yield self
            return
        from tqdm import tqdm
        start = time.perf_counter()
        self.current = epoch
        # shutil reads $COLUMNS/$LINES, then the terminal; one that reports no size gets 100x24
        # (tqdm would then draw nothing).
        size = shutil.get_terminal_size(fallback=(100, 24))
        self.bar = _live_bar(tqdm, self)(
            total=self.steps, desc=f"epoch {epoch}/{self.epochs}", unit="step", file=self.stream,
            ncols=size.columns or 100, nrows=size.lines or 24, leave=False, mininterval=0.5)
        try:
            yield self
        finally:
            self.bar.close()
            self.bar = None
            self.epoch_times.append(time.perf_counter() - start)

    def step(self):
        if self.bar is not None:
            self.bar.update()

    def figures(self, done, rate):
        """The bar's postfix after ``done`` steps of this epoch at ``rate`` steps/s (tqdm's smoothed
        rate): images/s, the last logged loss, the whole run's ETA."""
        left_here = (self.steps - done) / rate if rate else 0.0
        per_epoch = (sum(self.epoch_times) / len(self.epoch_times) if self.epoch_times
                     else (self.steps / rate if rate else 0.0))
        left = left_here + per_epoch * (self.epochs - self.current)
        loss = f"loss {self.loss:.3f}, " if self.loss is not None else ""
        return f"{rate * self.batch_size:,.0f} img/s, {loss}run ETA {_clock(left)}"

    def note(self, loss):
        """Keep the mean loss of the last logging interval for the bar to show."""
        self.loss = loss

    def write(self, line):
        """Print a line: above the bar when there is one, else plainly."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


class Board:
    """TensorBoard scalars in ``<run folder>/tensorboard`` (needs the tensorboard package)."""

    def __init__(self, folder):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package; install it with: "
                            "pip install tensorboard (or drop --tensorboard)") from None
        self.writer = SummaryWriter(log_dir=str(folder))

    def epoch(self, entry):
        e = entry["epoch"]
        self.writer.add_scalar("loss/train", entry["train_loss"], e)
        self.writer.add_scalar("lr", entry["lr"], e)
        if entry.get("test_accuracy") is not None:                # not evaluated: --eval-every
            self.writer.add_scalar("accuracy/test", entry["test_accuracy"], e)
        if entry.get("val_accuracy") is not None:
            self.writer.add_scalar("accuracy/val", entry["val_accuracy"], e)
        self.writer.flush()

    def finish(self, cfg, result, epochs):
        for name, acc in result["per_class"].items():
            if acc is not None:
                self.writer.add_scalar(f"per_class/{name}", acc, epochs)
        hparams = {k: v for k, v in vars(cfg).items() if isinstance(v, (int, float, str, bool))}
        self.writer.add_hparams(hparams, {"hparam/test_accuracy": result["overall_accuracy"]},
                                run_name=".")
        self.close()

    def close(self):
        self.writer.close()


class NoBoard:
    """Stands in for ``Board`` when --tensorboard is off."""

    def epoch(self, entry):
        pass

    def finish(self, cfg, result, epochs):
        pass

    def close(self):
        pass
