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
warm-up steps on a side stream, as PyTorch's CUDA-graph notes describe) for the shape of
the first batch, and each step of that shape is then one copy of the batch and one
replay; an epoch's short last batch runs the same program eagerly, and ``describe``
counts those steps.  On other devices it runs eagerly, which
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
    fast = [flag for flag, on in (("--triangle", cfg.triangle), ("--lookahead", cfg.lookahead),
                                  ("--bias-lr-scale", cfg.bias_lr_scale != 1),
                                  ("--whiten-bias-epochs", cfg.whiten and cfg.whiten_bias_epochs)) if on]
    if fast:
        return f"the graph step has no {', '.join(fast)}"
    return ""


def onecycle(optimizer, max_lr, total_steps):
    """The OneCycle schedule of ``--onecycle``: 30% warm-up to ``max_lr``, cosine down.

    The one definition, for the plain step (``engine.make_schedule``) and for the table
    below, which must give the same values step for step.
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=0.3, anneal_strategy="cos")


def schedule_table(cfg, optimizer, schedule, total_steps, device, dtype=torch.float32):
    """(learning rates, momenta): ``dtype`` device tensors with the value of every step.

    With OneCycle, entry k is what the scheduler sets for step k (its ``last_epoch`` = k): its
    phases and end values come from a ``onecycle`` scheduler, and its cosine annealing is
    computed for every step at once in float64, as the scheduler computes each (so a long run's
    table costs a few tensor operations, not a Python loop).  Without OneCycle, one entry.
    """
    group = optimizer.param_groups[0]
    if schedule is None:
        lrs = torch.tensor([group["lr"]], dtype=torch.float64)
        moms = torch.tensor([group["momentum"]], dtype=torch.float64)
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
    return lrs.to(device=device, dtype=dtype), moms.to(device=device, dtype=dtype)


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
        # float32 unless the model is float64 (the float64 check of the captured step)
        self.float = torch.promote_types(torch.float32, next(model.parameters()).dtype)
        self.lrs, self.moms = schedule_table(cfg, optimizer, schedule, total, self.device, self.float)
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
        self.steps = 0               # every step this program trained
        self.warmed = 0              # eager warm-up steps of the program's shape, before capture
        self.replays = 0             # steps replayed from the graph
        self.other_shape_steps = 0   # steps on a batch of another shape, run eagerly

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
        """Train on (x, y).  The first batch fixes the program's shape: its buffers, warm-up and
        capture are of that shape, and a batch of another shape (an epoch's short last batch)
        runs the same program eagerly outside them, before capture as after."""
        if self.x is None:
            self.x = torch.empty_like(x)
            self.y = torch.empty_like(y)
            self.loss = torch.zeros((), dtype=self.float, device=self.device)
        if x.shape != self.x.shape or y.shape != self.y.shape:
            return self._eager_on(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        if not self.capture:
            self._eager()
        elif self.graph is None and self.warmed < WARMUP_STEPS:
            self._warm_up()
            self.warmed += 1
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
            self.replays += 1
        self.steps += 1
        # The step did the optimizer's work: tell the scheduler so (it warns when stepped
        # before any optimizer.step).
        self.optimizer._opt_called = True
        return self.loss.clone()

    def _eager_on(self, x, y):
        """One step on a batch of another shape, outside the graph (the graph's buffers untouched)."""
        keep = self.x, self.y, self.loss
        self.x, self.y, self.loss = x, y, torch.zeros_like(self.loss)
        try:
            self._eager()
            return self.loss.clone()
        finally:
            self.x, self.y, self.loss = keep
            self.steps += 1
            self.other_shape_steps += 1
            self.optimizer._opt_called = True

    def _warm_up(self):
        """An eager step on a side stream, as PyTorch's notes ask before capture."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self._eager()
        torch.cuda.current_stream(self.device).wait_stream(side)

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
        """For the run log: whether the step was captured, for which batch, and how many steps
        (since this process built the program) ran outside the graph for another shape."""
        rec = {"captured": self.graph is not None, "capture": self.capture, "warmup_steps": WARMUP_STEPS,
               "batch": None if self.x is None else len(self.x), "replays": self.replays,
               "other_shape_steps": self.other_shape_steps}
        if self.capture and self.other_shape_steps:
            rec["note"] = (f"{self.other_shape_steps} steps on batches of another size than "
                           f"{rec['batch']} (each epoch's short last batch) ran uncaptured")
        return rec
