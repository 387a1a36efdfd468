"""The device a run computes on: choose it, seed it, its precision, its CPU settings.

    >>> device, warning = resolve_device("auto")      # MPS, then CUDA, then the CPU
    >>> seed_everything(1111, device)

Nothing here reads data or builds a model; ``engine`` and ``benchmark`` call these for every run.
"""
import os
import platform
import random
from contextlib import contextmanager, nullcontext

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


# CPU flags of bf16 arithmetic in hardware: x86 (/proc/cpuinfo "flags") and Arm ("Features").
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


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
