"""Several processes of one run under torchrun: each rank's device, the process group, collectives.

    torchrun --standalone --nproc_per_node 2 train_small.py

``engine.train`` asks ``process_group`` for this process's ``Ranks``; without torchrun that is
rank 0 of 1, and every collective is the identity.
"""
import dataclasses
import os
import sys
from contextlib import contextmanager, redirect_stdout

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import hwdna
from compute import resolve_device
from errors import UserError


class SharedError(UserError):
    """A UserError that every rank raises together: rank 0 says it, the other ranks exit quietly."""


def torchrun_env():
    """(rank, world size, local rank, processes on this machine) as torchrun sets them, or None."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    return (int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])))


def check_batch_split(batch_size, world):
    """``batch_size`` is the global batch under torchrun: every rank takes an equal share."""
    if batch_size % world:
        raise SharedError(f"--batch-size {batch_size} does not split evenly across {world} processes; "
                          f"under torchrun it is the global batch: choose a multiple of {world}")


def rank_device(name, local_rank):
    """The device of local rank ``local_rank`` under torchrun: cuda:LOCAL_RANK, or the CPU.

    No fallback here: every rank has to train on the kind of device the others use.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "mps":
        raise SharedError("MPS has no distributed backend; under torchrun use --device cuda or cpu")
    if name == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if local_rank >= count:
        raise UserError(f"local rank {local_rank} has no CUDA GPU (this machine has {count}); start at "
                        f"most {count} processes per machine (--nproc_per_node) or use --device cpu")
    return torch.device("cuda", local_rank)


@dataclasses.dataclass
class Ranks:
    """This process's place among the processes of one run: rank 0 of 1 without torchrun.

    Under torchrun every rank runs the whole loop; these collectives keep the ranks in step
    (NCCL on CUDA, Gloo on the CPU; the stop flag and Python objects always travel over Gloo,
    so no host read waits on the GPU).  Without torchrun each is the identity, so a plain run
    computes exactly what it did before.
    """
    device: torch.device
    rank: int = 0
    world: int = 1
    local_world: int = 1
    backend: str = None              # "nccl" or "gloo" under torchrun; None for a plain run
    devices: list = None             # every rank's device, in rank order
    control: object = None           # Gloo process group for host-side agreement (None: the default)

    @property
    def launched(self):
        return self.backend is not None

    @property
    def main(self):
        return self.rank == 0

    @property
    def launcher(self):
        """How to start this run again, for the resume hint."""
        if not self.launched:
            return "python"
        if self.world == self.local_world:
            return f"torchrun --standalone --nproc_per_node {self.local_world}"
        return (f"torchrun --nnodes {self.world // self.local_world} --nproc_per_node {self.local_world} "
                "--rdzv-backend c10d --rdzv-endpoint HOST:PORT")

    def record(self):
        return {"world_size": self.world, "backend": self.backend, "devices": self.devices}

    def mean(self, x):
        """The mean of tensor ``x`` over the ranks (``x`` itself without torchrun)."""
        if not self.launched:
            return x
        x = x.float().clone()
        dist.all_reduce(x)                                     # SUM; NCCL alone has AVG
        return x / self.world

    def sum(self, x):
        """Sum tensor ``x`` over the ranks, in place."""
        if self.launched:
            dist.all_reduce(x)
        return x

    def any(self, flag):
        """Whether ``flag`` is true on any rank: the same answer on every rank."""
        if not self.launched:
            return bool(flag)
        t = torch.tensor([int(bool(flag))], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def other_cpus(self, since, until):
        """The CPUs processes other than this run kept busy between two ``hwdna.cpu_clock`` readings
        of every rank: the machine's busy CPU time less the CPU time of all the run's ranks.  None
        when a reading is missing or the ranks span several machines.  Every rank must call it."""
        if not self.launched:
            return hwdna.other_cpus(since, until)
        if self.world != self.local_world:
            return None
        missing = since is None or until is None
        t = torch.tensor([0.0 if missing else until[2] - since[2], float(missing)], dtype=torch.float64)
        dist.all_reduce(t, group=self.control)
        if t[1].item():
            return None
        return hwdna.other_cpus(since, until, own=t[0].item())

    def on_main(self, fn):
        """``fn()`` on rank 0 and its result on every rank; a UserError of it is raised on every rank."""
        if not self.launched:
            return fn()
        box = [None, None]                                     # [result, error message]
        if self.main:
            try:
                box[0] = fn()
            except UserError as exc:
                box[1] = str(exc)
        dist.broadcast_object_list(box, src=0, group=self.control)
        if box[1] is not None:
            raise SharedError(box[1])
        return box[0]

    def broadcast_buffers(self, model):
        """Rank 0's buffers on every rank.  Batch-norm statistics on the CPU come from each rank's
        own share in the last forward pass; this way every rank evaluates the model rank 0 saves."""
        if self.launched:
            for b in model.buffers():
                dist.broadcast(b, src=0)

    def parallel(self, model):
        """``model`` in DistributedDataParallel under torchrun, else ``model`` itself."""
        if not self.launched:
            return model
        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)


@contextmanager
def process_group(device_name, launch=None):
    """This process's ``Ranks``.  ``launch`` is ``torchrun_env()``; under torchrun the process group
    lives for the block: one rank per process on cuda:LOCAL_RANK (NCCL) or the CPU (Gloo)."""
    if launch is None:
        device, warning = resolve_device(device_name)
        if warning:
            print(warning, file=sys.stderr)
        yield Ranks(device, devices=[str(device)])
        return
    rank, world, local_rank, local_world = launch
    device = rank_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        control = dist.new_group(backend="gloo") if backend == "nccl" else None
        devices = [None] * world
        dist.all_gather_object(devices, str(device), group=control)
        yield Ranks(device, rank, world, local_world, backend, devices, control)
        # Every rank here before any tears its connections down: a rank that destroys the group
        # while a peer still talks to it can abort at exit ("terminate called ...").
        dist.barrier(group=control)
    finally:
        dist.destroy_process_group()


@contextmanager
def stdout_silenced(silent):
    """Send stdout to the null device in the block when ``silent``: only rank 0 prints."""
    if not silent:
        yield
        return
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        yield
