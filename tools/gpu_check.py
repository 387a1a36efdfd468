"""One command for the next CUDA machine: check the captured step and measure the CUDA path.

    python tools/gpu_check.py gpu-check-out                  # a CUDA machine: under 8 minutes on an H200
    python tools/gpu_check.py gpu-check-fast --part fast     # the fast network: about 9 minutes at most
    python tools/gpu_check.py OUT --data-dir DIR --dry-run   # anywhere: tiny sizes, CUDA-only checks skipped

It needs no network.  The data folder (``--data-dir``, default ``data``) is used when it holds
``cifar-10-batches-py``; otherwise it is built from ``.cifar/part-*`` with ``.cifar/make_cifar10.py``
(how the exact data reaches a GPU machine: ../shared/README.md).  Checks, in order:

  versions        python, torch, CUDA, cuDNN, the GPU; ``nvidia-smi`` into OUT/nvidia-smi.txt
  data            the data folder, and whether its content is the official CIFAR-10
  program-f64     float64: the plain step and the one-program step (graphs.GraphStep, uncaptured) agree
  capture-f64     float64: the captured step equals both (within 1e-9), epochs of 3 full batches and a
                  short one, the short batch run uncaptured
  capture-sync    no host synchronisation in the replayed steps and the short batch
                  (torch.cuda.set_sync_debug_mode("error"))
  capture-losses  fp32: the first replayed losses equal the uncaptured program's
  precision       benchmark.py precision, every variant (-graph among them), deterministic on
  precision-nondet  the same, --no-deterministic
  floor-fp32, floor-auto   benchmark.py floor
  defaults        train_resnet.py for 2 epochs with its default flags
  fastest         ResNet-18 for 40 epochs with the fastest variant of the precision benchmarks
  resume          one run of 2 epochs against 1 epoch + --resume: the same weights sha256

``--part fast`` (instead of the checks from program-f64 on) measures the fast network, train_fast.py
at its recipe, after versions and data:

  fast-seeds      the full training set, seeds 1111-1115: test accuracy mean ± sample std, mean
                  training time (``train_time_s``)
  fast-rerun      seed 1111 again: its weights sha256 against the first run's.  Expected equal:
                  deterministic mode is the default (deterministic cuDNN, no autotuning,
                  ``torch.use_deterministic_algorithms`` with warn_only: a kernel without a
                  deterministic version warns and runs; the line names such kernels).  On CUDA a
                  difference is reported (DIFFERENT), not failed: whether same-seed CUDA runs match is the open
                  question this answers; on a CPU, where the project promises it, it fails.
  abl-*           the ablation, recipes.FAST_ABLATION: one line per row (abl-recipe, abl-whiten-0, ...),
                  seeds 1111-1113 with --val 5000, its mean validation accuracy and its change
                  against abl-recipe's
A time guard keeps the part within one device call: a check starts only when its runs, each as long
as the slowest so far, end within ``--budget-s`` seconds of the start; the others say ``skipped:
budget``, and everything finished (summary.txt, every run log) stays.

Every run log goes under OUT/runs, every command's output into OUT/logs/NAME.txt, and one line per
check (name, ok / FAIL / skipped, seconds, what it found) into OUT/summary.txt and the terminal.
Exit status 1 when a check failed.  The test suite runs the dry run, so this script cannot rot.
"""
import argparse
import contextlib
import dataclasses
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import benchmark  # noqa: E402
import compute  # noqa: E402
import data  # noqa: E402
import engine  # noqa: E402
import graphs  # noqa: E402
import recipes  # noqa: E402
import train_fast  # noqa: E402
import train_resnet  # noqa: E402
from errors import UserError  # noqa: E402
from models import build_model  # noqa: E402

NO_CUDA = "skipped: no CUDA"
BUDGET = "skipped: budget"
TOLERANCE_F64 = 1e-9
BUDGET_S = 500          # --part fast within about 9 minutes of a 10-minute device call, with the start
NO_DETERMINISTIC = re.compile(r"(\w+) does not have a deterministic implementation")  # torch's warn_only warning


@dataclasses.dataclass
class Sizes:
    """How big each check is: the real sizes, or the dry run's."""
    model: str = "resnet18"          # of the benchmarks and trainings
    batch: list = dataclasses.field(default_factory=list)   # extra training flags
    bench: list = dataclasses.field(default_factory=lambda: ["--steps", "300"])
    variants: str = benchmark.CUDA_VARIANTS
    capture_model: str = "resnet18"
    capture_batch: int = 32
    defaults_epochs: int = 2
    fastest_epochs: int = 40
    # --part fast: train_fast.py's seeds on the full training set, and the ablation's
    fast_seeds: tuple = tuple(recipes.DEFAULT_SEED + i for i in range(5))       # 1111..1115
    ablation_seeds: tuple = tuple(recipes.DEFAULT_SEED + i for i in range(3))   # 1111..1113
    val: int = 5000
    fast: list = dataclasses.field(default_factory=list)                        # extra training flags


FULL = Sizes()
DRY = Sizes(model="small", batch=["--batch-size", "50", "--log-every", "2"],
            bench=["--steps", "2", "--warmup", "1", "--batch-size", "8"], variants="fp32,fp32-graph",
            capture_model="small", capture_batch=8, defaults_epochs=1, fastest_epochs=2,
            fast_seeds=FULL.fast_seeds[:2], ablation_seeds=FULL.ablation_seeds[:1], val=5,
            fast=["--subset", "10", "--epochs", "1", "--batch-size", "10", "--whiten", "10",
                  "--whiten-bias-epochs", "1", "--log-every", "1"])


class Check:
    """One check's line: ``ok``, ``fail`` or ``skip`` with what it found."""

    def __init__(self, name):
        self.name, self.status, self.detail, self.seconds = name, "ok", "", 0.0

    def fail(self, detail):
        self.status, self.detail = "FAIL", detail

    def skip(self, detail=NO_CUDA):
        self.status, self.detail = "skipped", detail

    def line(self, width=17):
        return f"{self.name:<{width}} {self.status:<8} {self.seconds:7.1f}s  {self.detail}".rstrip()


class Session:
    """The output folder, the checks done so far and what later checks need from earlier ones."""

    def __init__(self, out, sizes, data_dir):
        self.out, self.sizes, self.data_dir = Path(out), sizes, Path(data_dir)
        self.runs, self.logs = self.out / "runs", self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.checks = []
        self.width = 17                          # of the names in summary.txt
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.have_data = False

    @contextlib.contextmanager
    def check(self, name):
        c = Check(name)
        t0 = time.perf_counter()
        try:
            yield c
        except Exception as exc:                 # a check that breaks is a FAIL line, and the rest run
            c.fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        finally:
            if self.cuda:
                torch.cuda.set_sync_debug_mode(0)
            c.seconds = time.perf_counter() - t0
            self.checks.append(c)
            print(c.line(self.width), flush=True)
            (self.out / "summary.txt").write_text("".join(x.line(self.width) + "\n" for x in self.checks))

    def command(self, name, main, argv):
        """``main(argv)`` in this process, its output into logs/NAME.txt; its exit status."""
        with open(self.logs / f"{name}.txt", "w") as f, contextlib.redirect_stdout(f), \
                contextlib.redirect_stderr(f):
            print("argv:", " ".join(argv), flush=True)
            return main(argv)

    def records(self, name):
        """The run logs under OUT/runs/NAME (one command's), oldest first."""
        return [json.loads(p.read_text()) for p in sorted((self.runs / name).glob("*/run_log.json"))]


# ---------------------------------------------------------------- versions and data

def check_versions(s):
    with s.check("versions") as c:
        lines = [f"python {platform.python_version()}", f"torch {torch.__version__}",
                 f"CUDA {torch.version.cuda}", f"cuDNN {torch.backends.cudnn.version()}"]
        if s.cuda:
            lines.append(f"GPU {torch.cuda.get_device_name(0)}")
        (s.out / "versions.txt").write_text("\n".join(lines) + "\n")
        c.detail = ", ".join(lines)
    with s.check("nvidia-smi") as c:
        if not s.cuda:
            c.skip()
        elif shutil.which("nvidia-smi") is None:
            c.fail("nvidia-smi not found")
        else:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60)
            (s.out / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
            c.detail = "nvidia-smi.txt"


def build_data(data_dir):
    """The data folder: as given, or built from .cifar/part-* (the exact copy in parts)."""
    try:
        return data.locate(data_dir, allow_download=False)
    except UserError:
        cache = ROOT / ".cifar"
        parts = sorted(cache.glob("part-*"))
        if not parts or not (cache / "make_cifar10.py").is_file():
            raise
    whole = cache / "all.tgz"
    with open(whole, "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    subprocess.run([sys.executable, str(cache / "make_cifar10.py"), str(data_dir), "--tgz", str(whole)],
                   check=True, capture_output=True, timeout=300)
    return data.locate(data_dir, allow_download=False)


def check_data(s):
    with s.check("data") as c:
        folder = build_data(s.data_dir)
        arrays = data.load_arrays(folder)
        digest = data.content_digest(*arrays)
        s.have_data = True
        c.detail = f"{len(arrays[1]):,} + {len(arrays[3]):,} images, {data.describe_dataset(digest)}"
        if digest != data.OFFICIAL_CONTENT:
            c.detail += " (not the official content: no run here counts for results.md)"


# ---------------------------------------------------------------- the captured step

def capture_config(sizes):
    """Every branch of the program: OneCycle, weight decay off for norms and biases, Nesterov, EMA."""
    return dataclasses.replace(recipes.config_for(sizes.capture_model), epochs=2, onecycle=True,
                               weight_decay=5e-4, nesterov=True, decay_norm_bias=False, ema=0.9,
                               label_smoothing=0.1)


def capture_batches(device, batch, dtype, epochs=2, full=3):
    """``epochs`` epochs of ``full`` full batches and one short one, made before any check runs
    (a copy from the host inside a checked step would be a synchronisation of its own)."""
    g = torch.Generator().manual_seed(5)
    out = []
    for _ in range(epochs):
        for n in [batch] * full + [batch // 2 + 1]:
            x = torch.randn(n, 3, 32, 32, generator=g, dtype=torch.float64).to(device, dtype)
            out.append((x, torch.randint(0, 10, (n,), generator=g).to(device)))
    return out


def stepper(kind, cfg, device, dtype, steps):
    """A fresh model from seed 0 and how it takes a step: 'plain' (engine.train_step + the
    scheduler), 'program' (GraphStep uncaptured) or 'captured'."""
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device, dtype)
    optimizer = torch.optim.SGD(engine.param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    schedule = graphs.onecycle(optimizer, cfg.max_lr, steps)
    ema = engine.WeightAverage(model, cfg.ema)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    program = None if kind == "plain" else graphs.GraphStep(model, optimizer, schedule, cfg, None, ema,
                                                           capture=kind == "captured")

    def step(x, y):
        if program is None:
            loss = engine.train_step(model, optimizer, scaler, x, y, None, cfg.label_smoothing)
            ema.update()
        else:
            loss = program.step(x, y)
        schedule.step()
        return loss
    return model, ema, program, step


def max_difference(a, b):
    return max((x.double() - y.double()).abs().max().item()
               for x, y in zip(a.state_dict().values(), b.state_dict().values()) if x.is_floating_point())


def check_capture(s):
    cfg, device = capture_config(s.sizes), s.device
    compute.seed_everything(0, device, deterministic=True)
    batches = capture_batches(device, s.sizes.capture_batch, torch.float64)
    models = {}
    with s.check("program-f64") as c:
        for kind in ("plain", "program"):
            model, ema, _, step = stepper(kind, cfg, device, torch.float64, len(batches))
            for x, y in batches:
                step(x, y)
            models[kind] = (model, ema)
        d = max(max_difference(models["plain"][0], models["program"][0]),
                max_difference(models["plain"][1].model, models["program"][1].model))
        c.detail = f"{device}: weights and EMA differ by at most {d:.1e} (limit {TOLERANCE_F64:g})"
        if not d <= TOLERANCE_F64:
            c.fail(c.detail)
    captured = {}
    with s.check("capture-f64") as c:
        if not s.cuda:
            c.skip()
        else:
            model, ema, program, step = stepper("captured", cfg, device, torch.float64, len(batches))
            try:
                for x, y in batches:
                    if program.graph is not None:    # from the first step after capture: no host reads
                        torch.cuda.set_sync_debug_mode("error")
                    step(x, y)
            except RuntimeError as exc:
                captured["sync"] = str(exc).splitlines()[0]
                raise
            finally:
                torch.cuda.set_sync_debug_mode(0)
            torch.cuda.synchronize()
            captured["record"] = rec = program.describe()
            d = max(max_difference(model, models["program"][0]),
                    max_difference(ema.model, models["program"][1].model))
            c.detail = f"captured = program within {d:.1e}; {json.dumps(rec)}"
            if not (d <= TOLERANCE_F64 and rec["captured"] and rec["batch"] == s.sizes.capture_batch
                    and rec["other_shape_steps"] == 2):
                c.fail(c.detail)
    with s.check("capture-sync") as c:
        if not s.cuda:
            c.skip()
        elif "sync" in captured:
            c.fail(captured["sync"])
        elif "record" not in captured:
            c.fail("capture-f64 did not finish")
        else:
            rec = captured["record"]
            c.detail = (f"{rec['replays']} replayed steps and {rec['other_shape_steps']} short batches "
                        "under set_sync_debug_mode('error')")
    with s.check("capture-losses") as c:
        if not s.cuda:
            c.skip()
            return
        fp32 = capture_batches(device, s.sizes.capture_batch, torch.float32)
        losses = {}
        for kind in ("program", "captured"):
            *_, step = stepper(kind, cfg, device, torch.float32, len(fp32))
            losses[kind] = torch.stack([step(x, y) for x, y in fp32]).cpu()
        first = slice(graphs.WARMUP_STEPS, len(fp32))
        same = torch.equal(losses["program"][first], losses["captured"][first])
        d = (losses["program"] - losses["captured"]).abs().max().item()
        c.detail = f"steps {graphs.WARMUP_STEPS + 1}-{len(fp32)}: " + ("equal" if same else f"differ by {d:.1e}")
        if not same:
            c.fail(c.detail)


# ---------------------------------------------------------------- benchmarks and trainings

def check_benchmarks(s):
    common = ["--device", s.device.type, "--data-dir", str(s.data_dir), "--no-download",
              "--model", s.sizes.model, *s.sizes.bench]
    for name, flags in (("precision", ["--variants", s.sizes.variants]),
                        ("precision-nondet", ["--variants", s.sizes.variants, "--no-deterministic"])):
        with s.check(name) as c:
            code = s.command(name, benchmark.main, ["precision", *common, "--out", str(s.runs / name), *flags])
            if code:
                c.fail(f"exit {code}; logs/{name}.txt")
                continue
            res = s.records(name)[-1]["results"]
            rates = {v: res[f"{v.replace('-', '_')}_images_per_s"] for v in s.sizes.variants.split(",")}
            c.detail = ", ".join(f"{v} {r:,.0f}" for v, r in rates.items()) + " images/s"
    for name, precision in (("floor-fp32", "fp32"), ("floor-auto", "auto")):
        with s.check(name) as c:
            argv = ["floor", *common, "--out", str(s.runs / name), "--precision", precision]
            code = s.command(name, benchmark.main, argv)
            if code:
                c.fail(f"exit {code}; logs/{name}.txt")
                continue
            res = s.records(name)[-1]["results"]
            step = res[s.sizes.model]
            c.detail = (f"{res['matrix_precision']} {res['matrix_flop_per_s'] / 1e12:.3g} TFLOP/s, "
                        f"{step['ratio_to_floor']:,.1f}x the floor")
            if "graph_ratio_to_floor" in step:
                c.detail += f", captured {step['graph_ratio_to_floor']:,.1f}x"


def fastest_flags(records):
    """The training flags of the fastest variant over precision benchmark records (deterministic on
    and off), and its name: (flags, 'variant, deterministic on/off', images/s)."""
    best = None
    for rec in records:
        det = rec["settings"]["deterministic"]
        for name, v in rec["settings"]["variants"].items():
            rate = rec["results"][f"{name.replace('-', '_')}_images_per_s"]
            if best is None or rate > best[2]:
                flags = ["--precision", v["precision"],
                         "--channels-last" if v["channels_last"] else "--no-channels-last",
                         "--cuda-graph" if v["graph"] else "--no-cuda-graph",
                         "--deterministic" if det else "--no-deterministic"]
                best = (flags, f"{name}, deterministic {'on' if det else 'off'}", rate)
    return best


def train(s, name, flags):
    """train_resnet.py with ``flags`` into OUT/runs/NAME: (exit status, its run log or None)."""
    out = s.runs / name
    argv = ["--device", s.device.type, "--data-dir", str(s.data_dir), "--no-download", "--out", str(out),
            "--no-progress", "--model", s.sizes.model, *s.sizes.batch, *flags]
    code = s.command(name, train_resnet.main, argv)
    logs = sorted(out.glob("*/run_log.json"))
    return code, json.loads(logs[-1].read_text()) if logs else None


def training_line(log):
    r = log["results"]
    return (f"{r['overall_accuracy']:.2f}%, training {r['train_time_s']:.1f}s, wall {r['wall_time_s']:.1f}s, "
            f"{log['precision']}, step {log['step']['path']}")


def check_trainings(s):
    with s.check("defaults") as c:
        code, log = train(s, "defaults", ["--epochs", str(s.sizes.defaults_epochs)])
        if code or log is None:
            c.fail(f"exit {code}; logs/defaults.txt")
        else:
            c.detail = training_line(log)
    fastest = fastest_flags(s.records("precision") + s.records("precision-nondet"))
    with s.check("fastest") as c:
        if fastest is None:
            c.fail("no precision benchmark to choose from")
        else:
            code, log = train(s, "fastest", ["--epochs", str(s.sizes.fastest_epochs), *fastest[0]])
            if code or log is None:
                c.fail(f"exit {code}; logs/fastest.txt")
            else:
                c.detail = (f"{fastest[1]}: {training_line(log)} (goal: training at most 60 s), "
                            f"{'official' if log['dataset']['official'] else 'NOT official'} data")
    with s.check("resume") as c:
        flags = (fastest[0][:-1] if fastest else []) + ["--deterministic", "--no-onecycle", "--checkpoint-every", "1"]
        code, whole = train(s, "resume-whole", ["--epochs", "2", *flags])
        code_cut, _ = train(s, "resume-cut", ["--epochs", "1", *flags])
        run = next((s.runs / "resume-cut").glob("*/run_log.json")).parent
        code_rest, cut = train(s, "resume-cut", ["--epochs", "2", "--resume", str(run)])
        if code or code_cut or code_rest:
            c.fail(f"exit {code}, {code_cut}, {code_rest}; logs/resume-*.txt")
        else:
            a, b = whole["results"]["weights_sha256"], cut["results"]["weights_sha256"]
            c.detail = f"2 epochs {a[:12]}, 1 + resume 1 {b[:12]}: " + ("equal" if a == b else "DIFFERENT")
            if a != b:
                c.fail(c.detail)


# ---------------------------------------------------------------- the fast network (--part fast)

class Budget:
    """--budget-s: a check starts only when its runs, each as long as the slowest run so far, end
    within the seconds left."""
    clock = staticmethod(time.monotonic)

    def __init__(self, seconds):
        self.seconds, self.start, self.per_run = seconds, self.clock(), 0.0

    def left(self):
        return self.seconds - (self.clock() - self.start)

    def refuses(self, c, runs):
        """True, with ``c`` skipped, when ``runs`` more runs would end past the budget."""
        if runs * self.per_run <= self.left():
            return False
        c.skip(f"{BUDGET} ({runs} run{'s' * (runs > 1)} of about {self.per_run:.0f}s, {max(self.left(), 0):.0f}s left "
               f"of --budget-s {self.seconds:g})")
        return True

    @contextlib.contextmanager
    def timing(self, runs):
        t0 = self.clock()
        yield
        self.per_run = max(self.per_run, (self.clock() - t0) / runs)


def train_fast_runs(s, budget, name, seeds, flags=()):
    """train_fast.py over ``seeds`` into OUT/runs/NAME, timed by ``budget``: (exit status, run logs)."""
    argv = ["--device", s.device.type, "--data-dir", str(s.data_dir), "--no-download", "--out", str(s.runs / name),
            "--no-progress", *s.sizes.fast, *flags, "--seeds", ",".join(map(str, seeds))]
    with budget.timing(len(seeds)):
        code = s.command(name, train_fast.main, argv)
    return code, s.records(name)


def spread(values):
    """'mean ± sample std' of percentages (the mean alone for one value)."""
    return f"{statistics.fmean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def ablation_name(option):
    """A row's check and folder name: abl-recipe, abl-whiten-0, abl-no-triangle-onecycle, ..."""
    return "abl-" + ("-".join(a.lstrip("-") for a in option.split()) or "recipe")


def undeterministic(s, *names):
    """The kernels that warned of having no deterministic implementation in logs/NAME.txt."""
    found = {m for n in names for m in NO_DETERMINISTIC.findall((s.logs / f"{n}.txt").read_text())}
    return ", ".join(sorted(found)) or "none"


def check_fast(s, budget):
    seeds, n = s.sizes.fast_seeds, len(s.sizes.ablation_seeds)
    first = None
    with s.check("fast-seeds") as c:
        if not budget.refuses(c, len(seeds)):
            code, logs = train_fast_runs(s, budget, "fast-seeds", seeds)
            if code or len(logs) != len(seeds):
                c.fail(f"exit {code}, {len(logs)} of {len(seeds)} run logs; logs/fast-seeds.txt")
            else:
                first = next(r for r in logs if r["seed"] == seeds[0])
                res = [r["results"] for r in logs]
                c.detail = (f"test {spread([r['overall_accuracy'] for r in res])}% over {len(seeds)} seeds, "
                            f"training {statistics.fmean(r['train_time_s'] for r in res):.1f}s a run "
                            f"(wall {statistics.fmean(r['wall_time_s'] for r in res):.1f}s), {first['precision']}, "
                            f"{'official' if first['dataset']['official'] else 'NOT official'} data")
    with s.check("fast-rerun") as c:
        if not budget.refuses(c, 1):
            if first is None:
                c.skip(f"skipped: fast-seeds gave no run of seed {seeds[0]}")
            else:
                code, logs = train_fast_runs(s, budget, "fast-rerun", seeds[:1])
                if code or len(logs) != 1:
                    c.fail(f"exit {code}; logs/fast-rerun.txt")
                else:
                    a, b = first["results"], logs[0]["results"]
                    same = a["weights_sha256"] == b["weights_sha256"]
                    c.detail = (f"seed {seeds[0]} again: weights sha256 {a['weights_sha256'][:12]} / "
                                f"{b['weights_sha256'][:12]}: " + ("equal" if same else
                                f"DIFFERENT (test {a['overall_accuracy']:.2f}% / {b['overall_accuracy']:.2f}%)")
                                + f"; no deterministic kernel: {undeterministic(s, 'fast-seeds', 'fast-rerun')}")
                    if not same and not s.cuda:
                        c.fail(c.detail)
    base = None
    for option in recipes.FAST_ABLATION:
        name = ablation_name(option)
        with s.check(name) as c:
            if budget.refuses(c, n):
                continue
            flags = ["--val", str(s.sizes.val), *option.split()]
            code, logs = train_fast_runs(s, budget, name, s.sizes.ablation_seeds, flags)
            if code or len(logs) != n:
                c.fail(f"exit {code}, {len(logs)} of {n} run logs; logs/{name}.txt")
                continue
            val = [r["results"]["val_accuracy"] for r in logs]
            c.detail = f"{option or 'the recipe'}: val {spread(val)}% over {n} seed{'s' * (n > 1)}"
            if not option:
                base = statistics.fmean(val)
            elif base is not None:
                c.detail += f", {statistics.fmean(val) - base:+.2f} against the recipe"


# ---------------------------------------------------------------- command line

def build_parser():
    p = argparse.ArgumentParser(prog="tools/gpu_check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder: summary.txt, logs/, runs/ (created)")
    p.add_argument("--data-dir", default="data",
                   help="CIFAR-10 folder; built from .cifar/part-* when it has none (default: data)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes, for a machine without CUDA or a quick try (default: off)")
    p.add_argument("--part", choices=("resnet", "fast"), default="resnet",
                   help="resnet: the captured step, the benchmarks and ResNet-18's trainings; fast: "
                        "train_fast.py's seeds, a rerun and its ablation (default: resnet)")
    p.add_argument("--budget-s", type=float, default=BUDGET_S, metavar="S",
                   help="--part fast: seconds from the start within which every started check must end "
                        "(by the slowest run so far); a check that would not is skipped: budget "
                        f"(default: {BUDGET_S})")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA here; pass --dry-run for the tiny run without it", file=sys.stderr)
        return 2
    budget = Budget(args.budget_s)
    s = Session(args.out, DRY if args.dry_run else FULL, args.data_dir)
    if args.part == "fast":
        s.width = max(len(ablation_name(o)) for o in recipes.FAST_ABLATION)
    t0 = time.perf_counter()
    print(f"gpu_check: {'dry run' if args.dry_run else 'full'}, part {args.part}, on {s.device}, into {args.out}",
          flush=True)
    threads = torch.get_num_threads()
    if args.dry_run:
        torch.set_num_threads(1)         # the tiny sizes' fastest, and immune to a busy machine
    try:
        check_versions(s)
        check_data(s)
        if args.part == "fast":
            if s.have_data:
                check_fast(s, budget)
        else:
            check_capture(s)
            if s.have_data:
                check_benchmarks(s)
                check_trainings(s)
    finally:
        torch.set_num_threads(threads)
    failed = [c.name for c in s.checks if c.status == "FAIL"]
    late = sum(c.detail.startswith(BUDGET) for c in s.checks)
    print(f"gpu_check: {len(s.checks)} checks in {time.perf_counter() - t0:.0f}s, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
          f"{f', {late} {BUDGET}' if late else ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
