"""Hardware DNA: describe the machine and software a run used.

    >>> hwdna.describe(torch.device("cpu"))["chip"]
    'Intel(R) Xeon(R) ...'

Floating-point sums are not associative, so the same seed on different
hardware or backends gives different weights; the fingerprint recorded with
every run says which machine produced which numbers.  A CPU's model name can
stand for several generations, so the fingerprint also holds its family, model
and stepping, and the instruction set PyTorch's kernels use on it.
"""
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def chip_name():
    """CPU/SoC model name: 'Apple M4 Max', 'Intel(R) Xeon(R) ...', or the platform's guess."""
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                 capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def first_processor(cpuinfo=None):
    """{field: value} of the first processor's block of ``cpuinfo`` (the text of /proc/cpuinfo, read
    when None), field names lower-case; {} where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        if not line.strip() and fields:                     # end of the first processor's block
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_model_id(cpuinfo=None):
    """x86 family, model and stepping ('family 25 model 1 stepping 1') of the first processor, or None.

    One model name ('AMD EPYC') can stand for several generations of a chip: this says which.
    """
    f = first_processor(cpuinfo)
    if not all(f.get(k) for k in ("cpu family", "model", "stepping")):
        return None
    return f"family {f['cpu family']} model {f['model']} stepping {f['stepping']}"


def cpu_flags(cpuinfo=None):
    """The CPU's feature flags (x86 "flags", Arm "Features") as a set, or None where not listed."""
    f = first_processor(cpuinfo)
    flags = f.get("flags", f.get("features"))
    return set(flags.split()) if flags is not None else None


# CPU flags of bf16 arithmetic in hardware: x86 (/proc/cpuinfo "flags") and Arm ("Features").
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def cpu_bf16_flags(cpuinfo=None):
    """The flags of bf16 arithmetic in hardware this CPU lists (sorted; [] = bf16 is emulated), or
    None where its flags cannot be read.  A run log keeps them, so a resume knows the CPU it ran on."""
    flags = cpu_flags(cpuinfo)
    return None if flags is None else sorted(set(BF16_FLAGS) & flags)


def cpu_capability():
    """The vector instruction set PyTorch's CPU kernels dispatch to ('AVX2', 'AVX512', ...), or None.

    Kernels for different instruction sets sum in a different order: same seed, other weights.
    """
    import torch
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None


def gpu_name(device):
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return chip_name()  # Apple GPUs are part of the SoC
    return None


LATEST_RUN_LOG = "run_log.json"     # the latest full-size run's log, at the project's top level


def git_commit():
    """The project's git commit and whether the tree had uncommitted changes, or None.

    Only when the project folder is itself a repository's top level: a copy of the project
    inside another repository has no commit of its own.  The top-level run_log.json is the
    latest run's output, not code: a run after another (a --seeds series) is not dirty by it.
    """
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
            return None
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                f":(exclude){LATEST_RUN_LOG}"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def describe(device):
    """The machine and software a run used."""
    import numpy
    import torch
    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = None
    return {
        "os": platform.system(),
        "os_release": platform.release(),
        "architecture": platform.machine(),
        "chip": chip_name(),
        "cpu_model_id": cpu_model_id(),
        "cpu_capability": cpu_capability(),
        "cpu_bf16_flags": cpu_bf16_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": tv,
        "numpy": numpy.__version__,
        "load_average": load_average(),
    }


def load_average():
    """1, 5 and 15-minute load averages: timings taken on a busy machine say so."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def cpu_clock(stat="/proc/stat"):
    """(wall seconds, CPU seconds the whole machine has spent busy, CPU seconds of this process and
    its finished children) now: two readings give ``other_cpus``.  None without /proc/stat."""
    try:
        with open(stat) as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    t = os.times()
    return (time.monotonic(), (user + nice + system + irq + softirq) / hz,
            t.user + t.system + t.children_user + t.children_system)


def other_cpus(since, until, own=None):
    """The CPUs other processes kept busy, on average, between two ``cpu_clock`` readings: the
    machine's busy CPU time less ``own`` CPU seconds (default: this process's, its threads and
    finished children), over the wall time between them.  None when either reading is missing."""
    if since is None or until is None or until[0] <= since[0]:
        return None
    other = (until[1] - since[1]) - (until[2] - since[2] if own is None else own)
    return round(max(other, 0.0) / (until[0] - since[0]), 2)


def relative(path):
    """``path`` relative to the current folder (the project root when run from there).

    Symbolic links are kept as given: ``data`` linked to another disk stays ``data``.
    """
    return os.path.relpath(os.path.abspath(path), os.path.abspath(os.getcwd()))


def recorded(path):
    """``path`` as a log records it: relative to the project when inside it, else its name only.

    Logs are committed: a folder outside the project (``~/.cache/cifar10``) is no business of
    theirs, and the dataset is identified by its content anyway.  Symbolic links are kept as
    given, as in ``relative``.
    """
    path = os.path.abspath(path)
    # The project may be reached through a link: also try the folder's real path, the name as given.
    for candidate in (path, os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))):
        if _inside(candidate, str(ROOT)):
            return os.path.relpath(candidate, ROOT)
    return os.path.basename(path)


def _inside(path, folder):
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:                          # another drive
        return False


def command_path(script):
    """How to name the project's ``script`` in a command pasted where the user stands: relative to
    the current folder when that is inside the project or holds it, else absolute."""
    target = str(ROOT / script)
    here = os.path.realpath(os.getcwd())
    if _inside(here, str(ROOT)) or _inside(str(ROOT), here):
        return os.path.relpath(target, here)
    return target


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
