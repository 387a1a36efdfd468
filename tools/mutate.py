"""Mutation testing by hand: apply one small bug at a time to a copy of the tree and check that the tests fail.

    python tools/mutate.py                   # every mutant; prints killed / SURVIVED per mutant
    python tools/mutate.py --list            # the mutants and the tests each one runs
    python tools/mutate.py flip-never shifts-halved --no-baseline

Each mutant is one textual change to one module (``engine.py``, ``data.py``, ``graphs.py``,
``runs.py``) and the pytest selection that should catch it.  The tree (tracked and
untracked, not ignored, files) is copied once into a temporary folder; each mutant is applied
there alone, its selection runs with ``-x``, and the file is put back.  A mutant is killed when
pytest fails, SURVIVED when it passes, and STALE when its text is no longer found exactly once
(the code moved on: update the mutant).  First, unless ``--no-baseline``, the selections run on
the unmutated copy, which must pass.  Exit status: 0 when every mutant was killed, 1 otherwise.
Not part of the suite (it reruns tests once per mutant): run it after changing what a run computes.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = "tests/test_recipe_pins.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str                  # module, relative to the project's root
    old: str                   # text that must occur exactly once
    new: str
    tests: tuple               # pytest arguments: files, node ids, -k expressions


MUTANTS = (
    # The five bugs of issue #40: each passed the whole suite before tests/test_recipe_pins.py.
    Mutant("smoothing-dropped", "engine.py",
           "train_step(t.step_model, t.optimizer, t.scaler, x, y, t.dtype, cfg.label_smoothing)",
           "train_step(t.step_model, t.optimizer, t.scaler, x, y, t.dtype, 0.0)", (PINS, "-k", "loss")),
    Mutant("onecycle-linear", "graphs.py", 'anneal_strategy="cos"', 'anneal_strategy="linear"',
           (PINS, "-k", "onecycle")),
    Mutant("flip-never", "data.py", "flips = torch.randint(0, 2, (n,), generator=generator).bool()",
           "flips = torch.randint(0, 2, (n,), generator=generator).bool() & False",
           (PINS, "-k", "crops")),
    Mutant("shifts-halved", "data.py", "shifts = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)",
           "shifts = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator) // 2", (PINS, "-k", "crops")),
    Mutant("resume-skips-schedule", "engine.py", 't.schedule.load_state_dict(ckpt["scheduler"])', "pass",
           (PINS, "-k", "resumes")),
    # More of what a run computes.
    Mutant("onecycle-warm-up-25", "graphs.py", "pct_start=0.3", "pct_start=0.25", (PINS, "-k", "onecycle")),
    Mutant("schedule-too-long", "engine.py", "cfg.epochs * steps_per_epoch", "(cfg.epochs + 1) * steps_per_epoch",
           (PINS, "-k", "resumes")),
    Mutant("per-class-over-column", "engine.py", "totals = confusion.sum(1)", "totals = confusion.sum(0)",
           (PINS, "-k", "per_class")),
    Mutant("tta-no-mirror", "engine.py", "logits.float() + model(v.flip(3)).float()",
           "logits.float() + model(v).float()", ("tests/test_recipe_options.py", "-k", "tta")),
    Mutant("ema-wrong-way", "engine.py", "torch._foreach_lerp_(average, current, 1.0 - self.decay)",
           "torch._foreach_lerp_(average, current, self.decay)",
           ("tests/test_recipe_options.py", "-k", "weight_average")),
    Mutant("nesterov-dropped", "engine.py", "weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)",
           "weight_decay=cfg.weight_decay, nesterov=False)", ("tests/test_recipe_options.py", "-k", "options_on")),
    Mutant("data-order-not-restored", "engine.py", 'gen.set_state(state["data"])', "pass",
           (PINS, "-k", "resumes")),
    Mutant("mirrored-crop-offset", "data.py", "dx = torch.where(flips, 2 * padding - shifts[:, 1], shifts[:, 1])",
           "dx = shifts[:, 1]", (PINS, "-k", "crops")),
    Mutant("normalise-sign", "data.py", "self._shift = -mean / std", "self._shift = mean / std",
           ("tests/test_data.py", "-k", "normalised")),
    Mutant("cutout-off-centre", "data.py", "top, left = (centres - size // 2).unbind(1)",
           "top, left = (centres - size // 2 + 1).unbind(1)", ("tests/test_recipe_options.py", "-k", "cutout")),
    Mutant("graph-no-weight-decay", "graphs.py", "grads = torch._foreach_add(grads, params, alpha=wd)",
           "grads = list(grads)", ("tests/test_graphs.py", "-k", "plain_step")),
    Mutant("graph-schedule-stalls", "graphs.py", "self.index.add_(1)", "self.index.add_(0)",
           ("tests/test_graphs.py", "-k", "plain_step")),
    Mutant("complete-means-not-failed", "runs.py", 'record.get("status") == "complete"',
           'record.get("status") != "failed"', ("tests/test_visualize.py", "-k", "latest_complete")),
    Mutant("oldest-run-chosen", "runs.py",
           "for run_dir in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):",
           "for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):",
           ("tests/test_visualize.py", "-k", "latest_complete")),
    Mutant("busy-margin-ignored", "runs.py", "return mean >= BUSY_MARGIN", "return False",
           (PINS, "-k", "busy")),
    Mutant("busy-unweighted", "runs.py", "mean = sum(v * s for v, s in others) / seconds",
           "mean = sum(v for v, s in others) / len(others)", (PINS, "-k", "busy")),
)


def copy_tree(dest):
    """The project's tracked and untracked, not ignored, files, copied under ``dest``."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def pytest(tree, tests, timeout):
    """(passed?, seconds, last line of pytest's output) of ``tests`` run in ``tree``."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=tree, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, f"timed out after {timeout} s"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode == 5:
        raise SystemExit(f"error: pytest {' '.join(tests)} selects no test; fix the mutant's selection")
    return proc.returncode == 0, time.perf_counter() - start, lines[-1] if lines else proc.stderr.strip()[-200:]


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/mutate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="MUTANT", help="mutants to apply (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing (default: off)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip running the selections on the unmutated tree first (default: run them)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per pytest run (default: 900)")
    args = p.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        p.error(f"unknown mutant {', '.join(unknown)}; see --list")
    chosen = [known[n] for n in args.names] or list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.name:<26} {m.path:<10} {' '.join(m.tests)}")
        return 0
    survived = 0
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if args.baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                ok, secs, last = pytest(tree, tests, args.timeout)
                if not ok:
                    print(f"error: the unmutated tree fails {' '.join(tests)} ({last}); fix that first")
                    return 1
            print("baseline: every selection passes on the unmutated tree", flush=True)
        for m in chosen:
            target = tree / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                print(f"STALE     {m.name:<26} its text occurs {original.count(m.old)} times in {m.path}")
                survived += 1
                continue
            target.write_text(original.replace(m.old, m.new))
            try:
                ok, secs, last = pytest(tree, m.tests, args.timeout)
            finally:
                target.write_text(original)
            survived += ok
            print(f"{'SURVIVED' if ok else 'killed':<9} {m.name:<26} {m.path:<10} {secs:5.0f} s  {last}",
                  flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutants killed")
    return 0 if survived == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
