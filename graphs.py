"""One training step as a single tensor program, captured as a CUDA graph on CUDA.

A step of ResNet-18 at batch 128 launches several hundred kernels; on a fast GPU the
host issuing them, not the GPU, sets the pace.  ``GraphStep`` writes the whole step —
forward, backward, SGD with momentum (Nesterov, weight decay per parameter group),
the schedule's learning rate and momentum for this step, and the weight average of
``--ema`` — as tensor operations on fixed buffers, with no host reads and no
Python-number hyperparameters that change between steps:

* the learning rate and momentum of every step come from a table on the device (the
  values ``torch.optim.lr_scheduler.OneCycleLR`` gives, computed once), indexed by a
  step counter on the device;
* the momentum buffers are the optimizer's own ``momentum_buffer`` tensors, so
  checkpoints, ``--resume`` and the run log see a plain ``torch.optim.SGD``;
* the batch is copied into static input buffers before each step.

On CUDA the program is captured once (``torch.cuda.CUDAGraph``, after a few eager
warm-up steps on a side stream, as PyTorch's CUDA-graph notes describe) and each step
is then one copy of the batch and one replay.  On other devices it runs eagerly, which
is how the tests check it against the plain path.  Not for fp16 (the gradient scaler
reads the host), DistributedDataParallel or ``--compile``: ``eligible`` says why not.
"""
import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F

WARMUP_STEPS = 3          # eager steps before capture (cuDNN/cuBLAS pick and cache their kernels)


def eligible(cfg, device, dtype, world):
    """'' when a run can take the graph step, else why not (for the run log)."""
    if dtype is torch.float16:
        return "fp16 needs the gradient scaler, which reads the host"
    if world > 1:
        return "DistributedDataParallel synchronises ranks in backward"
    if cfg.compile:
        return "--compile takes the step instead"
    return ""


def onecycle(optimizer, max_lr, total_steps):
    """The OneCycle schedule of ``--onecycle``: 30% warm-up to ``max_lr``, cosine down.

    The one definition, for the plain step (``engine.make_schedule``) and for the table
    below, which must give the same values step for step.
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=0.3, anneal_strategy="cos")


def schedule_table(cfg, optimizer, schedule, total_steps, device):
    """(learning rates, momenta): float32 device tensors with the value of every step.

    With OneCycle, entry k is what the scheduler sets for step k (its ``last_epoch`` = k): its
    phases and end values come from a ``onecycle`` scheduler, and its cosine annealing is
    computed for every step at once in float64, as the scheduler computes each (so a long run's
    table costs a few tensor operations, not a Python loop).  Without OneCycle, one entry.
    """
    group = optimizer.param_groups[0]
    if schedule is None:
        lrs, moms = torch.tensor([group["lr"]]), torch.tensor([group["momentum"]])
    else:
        probe = torch.optim.SGD([torch.zeros(1)], lr=cfg.max_lr, momentum=cfg.momentum)
        sched = onecycle(probe, cfg.max_lr, total_steps)
        ends = probe.param_groups[0]
        step = torch.arange(total_steps, dtype=torch.float64)
        lrs, moms = torch.zeros_like(step), torch.zeros_like(step)
        start, taken = 0.0, torch.zeros(total_steps, dtype=torch.bool)
        for i, phase in enumerate(sched._schedule_phases):
            end = phase["end_step"]
            here = ~taken & ((step <= end) | (i == len(sched._schedule_phases) - 1))
            pct = (step[here] - start) / (end - start)
            cos_out = torch.cos(math.pi * pct) + 1            # OneCycleLR._annealing_cos, per step
            for out, first, last in ((lrs, "start_lr", "end_lr"), (moms, "start_momentum", "end_momentum")):
                a, b = ends[phase[first]], ends[phase[last]]
                out[here] = b + (a - b) / 2.0 * cos_out
            taken |= here
            start = end
    return (lrs.to(device=device, dtype=torch.float32), moms.to(device=device, dtype=torch.float32))


class GraphStep:
    """The training step of ``model`` + ``optimizer`` (+ ``schedule``, ``ema``) as one program.

    ``step(x, y)`` trains on one batch and returns its loss (a device tensor); the caller
    still steps the Python scheduler, whose state the checkpoints keep.
    """

    def __init__(self, model, optimizer, schedule, cfg, dtype, ema=None, capture=None):
        self.model, self.optimizer, self.cfg, self.dtype, self.ema = model, optimizer, cfg, dtype, ema
        self.device = next(model.parameters()).device
        self.capture = self.device.type == "cuda" if capture is None else capture
        total = schedule.total_steps if schedule is not None else 1
        self.lrs, self.moms = schedule_table(cfg, optimizer, schedule, total, self.device)
        start = schedule.last_epoch if schedule is not None else 0
        self.index = torch.tensor([start], dtype=torch.int64, device=self.device)
        self.scheduled = schedule is not None
        self.groups = []
        for g in optimizer.param_groups:
            params = [p for p in g["params"] if p.requires_grad]
            bufs = []
            for p in params:
                state = optimizer.state[p]
                if "momentum_buffer" not in state or state["momentum_buffer"] is None:
                    # A zero buffer makes the first step's m * 0 + g = g: torch's SGD starts its buffer at g.
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
            self.groups.append((params, bufs, g["weight_decay"], g["nesterov"], g["dampening"]))
        if any(d != 0 for *_, d in self.groups):
            raise ValueError("GraphStep implements SGD without dampening")
        self.x = self.y = self.loss = None
        self.graph = None
        self.steps = 0

    def _program(self):
        """Forward, backward, SGD, EMA: every operand a tensor that lives across steps."""
        cast = (torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)
                if self.dtype is not None else nullcontext())   # no weight-cast cache across replays
        with cast:
            loss = F.cross_entropy(self.model(self.x), self.y, label_smoothing=self.cfg.label_smoothing)
        loss.backward()
        lr = torch.index_select(self.lrs, 0, self.index).view(())      # 0-dim device tensors
        mom = torch.index_select(self.moms, 0, self.index).view(())
        with torch.no_grad():
            for params, bufs, wd, nesterov, _ in self.groups:
                grads = [p.grad for p in params]
                if wd:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                torch._foreach_mul_(bufs, mom)
                torch._foreach_add_(bufs, grads)
                if nesterov:
                    update = torch._foreach_add(grads, torch._foreach_mul(bufs, mom))
                else:
                    update = bufs
                torch._foreach_sub_(params, torch._foreach_mul(update, lr))
            if self.scheduled:
                self.index.add_(1)
            if self.ema is not None:
                self.ema.update()
            self.loss.copy_(loss.detach())

    def _eager(self):
        for params, *_ in self.groups:
            for p in params:
                p.grad = None
        self._program()

    def step(self, x, y):
        if self.x is None or x.shape != self.x.shape:
            if self.graph is not None:           # a short last batch: run it eagerly
                return self._eager_on(x, y)
            self.x = torch.empty_like(x)
            self.y = torch.empty_like(y)
            self.loss = torch.zeros((), dtype=torch.float32, device=self.device)
        self.x.copy_(x)
        self.y.copy_(y)
        if not self.capture:
            self._eager()
        elif self.graph is None and self.steps < WARMUP_STEPS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._eager()
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
        self.steps += 1
        # The step did the optimizer's work: tell the scheduler so (it warns when stepped
        # before any optimizer.step).
        self.optimizer._opt_called = True
        return self.loss.clone()

    def _eager_on(self, x, y):
        """One step on a batch of another shape, outside the graph (the graph's buffers untouched)."""
        keep = self.x, self.y, self.loss
        self.x, self.y, self.loss = x, y, torch.zeros((), dtype=torch.float32, device=self.device)
        try:
            self._eager()
            return self.loss.clone()
        finally:
            self.x, self.y, self.loss = keep
            self.steps += 1
            self.optimizer._opt_called = True

    def _capture(self):
        for params, *_ in self.groups:
            for p in params:
                p.grad = None                # backward in the graph writes the gradients afresh
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._program()
        self.graph = graph

    def describe(self):
        return {"captured": self.graph is not None, "capture": self.capture, "warmup_steps": WARMUP_STEPS}
