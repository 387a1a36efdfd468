"""The device a run computes on: choose it, seed it, its precision, its CPU settings.

    >>> device, warning = resolve_device("auto")      # MPS, then CUDA, then the CPU
    >>> seed_everything(1111, device)

Nothing here reads data or builds a model; ``engine`` and ``benchmark`` call these for every run.
"""
import os
import platform
import random
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

import hwdna
from errors import UserError


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


def seed_everything(seed, device, deterministic=True):
    """Seed Python, numpy and torch; with ``deterministic``, ask for deterministic kernels where
    the backend has them, else let cuDNN autotune (benchmark mode) and pick any kernel."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA/MPS device
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
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
        if device.type == "cuda" and cuda_bf16_native():
            return torch.bfloat16
        return None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type == "cpu":
        raise UserError("--precision fp16 is for cuda and mps; on a CPU use bf16 or fp32")
    if precision == "bf16" and device.type == "mps":
        check_mps_bf16()
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def cuda_bf16_native():
    """Whether the CUDA GPU computes bf16 in hardware (Ampere and later).  PyTorch's default
    also counts emulated bf16, which pre-Ampere GPUs (V100, T4) run far slower than fp32."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


MPS_BF16_MACOS = 14          # bf16 on MPS (autocast among it) needs macOS 14 or later


def check_mps_bf16(mac_version=None):
    """Refuse bf16 on MPS under a macOS older than 14 (``mac_version``: platform.mac_ver()'s
    first field, read when None; an unreadable version passes)."""
    text = platform.mac_ver()[0] if mac_version is None else mac_version
    try:
        major = int(text.split(".")[0])
    except ValueError:
        return
    if major < MPS_BF16_MACOS:
        raise UserError(f"--precision bf16 on MPS needs macOS {MPS_BF16_MACOS} or later (this is macOS "
                        f"{text}); use --precision fp16 or fp32")


BF16_FLAGS = set(hwdna.BF16_FLAGS)
# The flags under which --precision auto trains in bf16 on a CPU: AMX and AVX512-BF16 (x86), where
# the measurement of recipes.Recipe.cpu_bf16 was taken.  Arm's bf16 is native too, but unmeasured.
AUTO_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_warning(dtype, device, cpuinfo=None):
    """A one-line warning when bf16 is to run on a CPU whose flags list no bf16 instructions:
    PyTorch then emulates it, many times slower than fp32.  None otherwise, and where the flags
    cannot be read (``cpuinfo``: the text of /proc/cpuinfo, read when None)."""
    if dtype is not torch.bfloat16 or device.type != "cpu":
        return None
    flags = hwdna.cpu_flags(cpuinfo)
    if flags is None or BF16_FLAGS & flags:
        return None
    return ("warning: this CPU has no bf16 instructions (avx512_bf16, amx_bf16), so --precision bf16 "
            "is emulated and runs many times slower than fp32, the CPU's default; `python benchmark.py "
            "precision --variants fp32,bf16` measures both")


@dataclass(frozen=True)
class Choice:
    """How a run computes: its autocast dtype (None = fp32), its memory format, and why."""
    dtype: object
    channels_last: bool
    reason: str


def choose(precision, channels_last, device, cpu_bf16=None, cpuinfo=None, ran=None):
    """The ``Choice`` of ``--precision`` and ``--channels-last`` (None = auto) on ``device``.

    ``precision`` auto on a CPU is bf16 autocast + channels-last where the CPU lists AMX or
    AVX512-BF16 flags and the model has a measured reason to (``cpu_bf16``: recipes.Recipe.cpu_bf16),
    fp32 elsewhere; on other devices it is ``amp_dtype``'s.  Channels-last, when not given, goes
    with auto's bf16 on a CPU.  ``ran``: the precision name a resumed run has computed in, which
    auto keeps.  ``cpuinfo``: the text of /proc/cpuinfo, read when None.
    """
    if precision != "auto":
        dtype, reason = amp_dtype(precision, device), f"--precision {precision}"
    elif ran is not None:
        dtype, reason = PRECISIONS[ran], f"auto: {ran}, as the run chose when it started"
    elif device.type != "cpu":
        dtype = amp_dtype("auto", device)
        reason = (f"auto: {precision_name(dtype)} on {device.type} "
                  "(bf16 where the GPU computes it in hardware, fp32 elsewhere)")
    else:
        dtype, reason = cpu_auto(cpu_bf16, cpuinfo)
    auto_cl = precision == "auto" and device.type == "cpu" and dtype is torch.bfloat16
    if channels_last is None:
        channels_last = auto_cl
        reason += "; channels-last with it" if auto_cl else ""
    else:
        reason += f"; --{'' if channels_last else 'no-'}channels-last"
    return Choice(dtype, channels_last, reason)


def cpu_auto(cpu_bf16, cpuinfo=None):
    """(dtype, why) of --precision auto on this CPU for a model whose measured reason to train in
    bf16 on a CPU with native bf16 is ``cpu_bf16`` (None: not measured)."""
    flags = hwdna.cpu_bf16_flags(cpuinfo)
    native = [f for f in flags or () if f in AUTO_BF16_FLAGS]
    if flags is None:
        return None, "auto: fp32, the CPU's flags cannot be read to find bf16 instructions"
    if not native:
        return None, ("auto: fp32, this CPU lists no amx_bf16 or avx512_bf16, so bf16 would be "
                      "emulated, many times slower")
    if cpu_bf16 is None:
        return None, (f"auto: fp32; this CPU has bf16 in hardware ({', '.join(native)}), but this model "
                      "has not been measured in bf16 on such a CPU")
    return torch.bfloat16, f"auto: bf16, this CPU has bf16 in hardware ({', '.join(native)}): {cpu_bf16}"


def refuse_emulated_resume(ran, device, previous, cpuinfo=None):
    """Refuse to resume a run that computes in bf16 (``ran``, its precision name) on a CPU that would
    emulate bf16, unless its log (``previous``, the run log or None) says it already ran so on a CPU."""
    if ran != "bf16" or device.type != "cpu":
        return
    flags = hwdna.cpu_bf16_flags(cpuinfo)
    if flags is None or flags:
        return
    hw = (previous or {}).get("hardware") or {}
    if (previous or {}).get("device") == "cpu" and hw.get("cpu_bf16_flags") == []:
        return                                     # started emulated by --precision bf16: its warning says so
    where = hw.get("chip") or "another machine"
    listed = ", ".join(hw.get("cpu_bf16_flags") or []) or "unrecorded"
    raise UserError(f"the run computes in bf16, which it did on {where} (bf16 flags: {listed}); this CPU "
                    "lists no amx_bf16, avx512_bf16 or bf16 and would emulate it, many times slower: "
                    "resume it on a CPU with bf16 in hardware or a GPU, or start a new run here")


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_name(dtype):
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


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
