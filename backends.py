"""The same trained weights on two backends: how far their activations and predictions part.

    python backends.py                                     # newest complete run: CPU fp32 vs CPU bf16
    python backends.py --run 20261203-090000-small-e2 --backends cpu-fp32 cuda-fp32 cuda-bf16

The same seed on other hardware trains other weights, because floating-point sums are not
associative and each backend sums in its own order.  This measures that one step apart
from training: one set of weights, evaluated on every test image by each backend (a device
and its autocast precision).  The layers recorded are the model's feature layers
(``recipes``' ``feature_layers``, through the forward hooks of visualize_activations.py),
then the logits.  Per layer: the largest absolute difference from the first backend (the
reference) over the test set, the mean absolute difference, and the reference's largest
absolute activation for scale; and how many test images each backend classifies
differently from the reference.  Every backend gets the same fp32 input, normalised once
on the CPU; flip TTA is not applied (a feature map has none).

Writes ``--out/<time>-backends-<model>/run_log.json`` (kind "backends": the run and weights
digest measured, the machine, the dataset, the results), which results.md's Hardware DNA
section shows.  A backend that is not on this machine is an error, not skipped.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import copy
import sys
from pathlib import Path

import torch

import compute
import data
import hwdna
import recipes
import runs
from compare import LOGITS
from engine import weights_digest
from errors import UserError
from trained import add_source_flags, trained_model
from visualize_activations import capture

DEVICES = ("cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = [f"{d}-{p}" for d in DEVICES for p in PRECISIONS if (d, p) != ("cpu", "fp16")]
BATCH = 500                         # test images per forward pass, on every backend


def default_backends():
    """CPU fp32 (the reference), CPU bf16, and fp32 on each GPU this machine has."""
    return ["cpu-fp32", "cpu-bf16"] + [f"{d}-fp32" for d in ("cuda", "mps") if compute.available(d)]


def backend(name):
    """(torch.device, autocast dtype or None) of a backend name such as "cpu-bf16"."""
    kind, precision = name.split("-")
    if not compute.available(kind):
        raise UserError(f"backend {name}: no {kind} device on this machine; choose from "
                        + ", ".join(b for b in BACKENDS if compute.available(b.split('-')[0])))
    device = torch.device(kind)
    return device, compute.amp_dtype(precision, device)


class Spread:
    """One layer on one backend against the reference: the largest and the summed absolute difference."""

    def __init__(self):
        self.max = self.sum = 0.0
        self.count = 0

    def add(self, out, ref):
        diff = (out - ref).abs()
        self.max = max(self.max, diff.max().item())
        self.sum += diff.double().sum().item()
        self.count += diff.numel()

    def record(self):
        return {"max_abs_diff": self.max, "mean_abs_diff": self.sum / self.count if self.count else None}


def measure(model, names, x_test, y_test, layers, batch=BATCH):
    """Run the test set through ``model`` on each backend of ``names`` (the first is the reference).

    x_test: uint8 (N, 3, 32, 32); y_test: (N,).  Returns {"layers": [{"layer", "shape",
    "reference_max_abs"}], "backends": {name: {"accuracy", "predictions_differ", "layers":
    {layer: {"max_abs_diff", "mean_abs_diff"}}}}}; the reference's entry has no differences.
    """
    ref_name = names[0]
    where = {name: backend(name) for name in names}
    copies = {device: copy.deepcopy(model).to(device) for device, _ in where.values()}
    norm = data.DeviceCIFAR10(x_test[:0], y_test[:0], x_test, y_test, torch.device("cpu"))
    shown = layers + [LOGITS]
    spread = {name: {layer: Spread() for layer in shown} for name in names[1:]}
    ref_max, shapes = dict.fromkeys(shown, 0.0), {}
    correct, differ = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for start in range(0, len(y_test), batch):
        x = norm.normalize(norm.x_test[start:start + batch])              # (B, 3, 32, 32) fp32, CPU
        y = norm.y_test[start:start + batch]
        outs = {}
        for name, (device, dtype) in where.items():
            with compute.autocast(device, dtype):
                logits, acts = capture(copies[device], x.to(device), layers)
            outs[name] = {k: v.float().cpu() for k, v in acts.items()} | {LOGITS: logits.float().cpu()}
            correct[name] += int((outs[name][LOGITS].argmax(1) == y).sum())
        ref = outs[ref_name]
        pred = ref[LOGITS].argmax(1)
        for layer in shown:
            shapes[layer] = list(ref[layer].shape[1:])
            ref_max[layer] = max(ref_max[layer], ref[layer].abs().max().item())
        for name in names[1:]:
            differ[name] += int((outs[name][LOGITS].argmax(1) != pred).sum())
            for layer in shown:
                spread[name][layer].add(outs[name][layer], ref[layer])
    n = len(y_test)
    return {
        "layers": [{"layer": k, "shape": shapes[k], "reference_max_abs": ref_max[k]} for k in shown],
        "backends": {name: {"accuracy": round(100.0 * correct[name] / n, 2),
                            "predictions_differ": differ[name] if name != ref_name else 0,
                            "layers": {k: s.record() for k, s in spread[name].items()}
                            if name != ref_name else {}}
                     for name in names},
    }


def table(result, names):
    """The measurement as a plain-text table, one row per layer, then the predictions."""
    others = names[1:]
    lines = [f"{'layer':<8} {'shape':<12} {'max |' + names[0] + '|':>16} "
             + " ".join(f"{'max diff ' + o:>20} {'mean diff':>10}" for o in others)]
    for row in result["layers"]:
        k = row["layer"]
        cells = [f"{result['backends'][o]['layers'][k]['max_abs_diff']:>20.3g} "
                 f"{result['backends'][o]['layers'][k]['mean_abs_diff']:>10.3g}" for o in others]
        lines.append(f"{k:<8} {'x'.join(map(str, row['shape'])):<12} {row['reference_max_abs']:>16.4g} "
                     + " ".join(cells))
    for o in others:
        b, ref = result["backends"][o], result["backends"][names[0]]
        lines.append(f"{o}: {b['predictions_differ']} of {result['images']} test predictions differ from "
                     f"{names[0]}; accuracy {b['accuracy']:.2f}% against {ref['accuracy']:.2f}%")
    return "\n".join(lines)


def logged_digest(source):
    """The weights digest that ``source``'s run logged for the file measured, or None."""
    if not source["run"]:
        return None
    results = (runs.read_log(Path(source["weights"]).parent) or {}).get("results") or {}
    return results.get("weights_ema_sha256" if source["ema"] else "weights_sha256")


def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(p, "evaluate")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, metavar="BACKEND",
                   help=f"device-precision pairs, the first the reference; of {', '.join(BACKENDS)} "
                        "(default: cpu-fp32 cpu-bf16, and cuda-fp32 and mps-fp32 where present)")
    cli.add_data_flags(p.add_argument)
    p.add_argument("--out", default="runs", help="folder for the record's run folder (default: runs)")
    return p


def run(args):
    names = list(dict.fromkeys(args.backends or default_backends()))
    if len(names) < 2:
        raise UserError("--backends needs two different backends: the reference and one to compare")
    for name in names:
        backend(name)                                        # a missing device: said before any work
    runs.check_out(args.out)
    started, clock = hwdna.now(), hwdna.cpu_clock()
    model_name, model, source = trained_model(args, torch.device("cpu"))
    folder = data.locate(args.data_dir, args.download)
    arrays = data.load_arrays(folder)
    layers = list(recipes.RECIPES[model_name].feature_layers)
    digest = weights_digest(model)
    logged = logged_digest(source)
    if logged is not None and logged != digest:
        print(f"warning: {source['weights']} is not the weights run {source['run']} logged "
              f"(sha256 {digest[:12]}… against {logged[:12]}…); measuring the file", file=sys.stderr)
    print(f"{model_name} ({'run ' + source['run'] if source['run'] else source['weights']}, weights sha256 "
          f"{digest[:12]}…) on {len(arrays[3]):,} test images; reference {names[0]}", flush=True)
    result = measure(model, names, arrays[2], arrays[3], layers)
    result |= {"reference": names[0], "images": len(arrays[3])}
    print(table(result, names))
    gpus = [d for d, _ in map(backend, names) if d.type != "cpu"]
    hardware = hwdna.describe(gpus[0] if gpus else torch.device("cpu"))
    hardware["other_cpus"] = hwdna.other_cpus(clock, hwdna.cpu_clock())
    run_dir = runs.new_run_dir(args.out, f"backends-{model_name}")
    runs.write_log(run_dir, {
        "kind": "backends", "run_id": run_dir.name, "status": "complete", "model": model_name,
        "source": {"run": source["run"], "weights": Path(source["weights"]).name, "weights_sha256": digest,
                   "run_log_weights_sha256": logged, "ema": source["ema"], "tta_not_applied": source["tta"]},
        "backends": names, "layers": layers, "batch": BATCH,
        "hardware": hardware, "dataset": data.fingerprint(folder, arrays) | {
            "folder": hwdna.relative(folder), "train_images": len(arrays[1]), "test_images": len(arrays[3])},
        "git": hwdna.git_commit(), "started": started, "finished": hwdna.now(), "results": result,
    })
    print(f"record: {hwdna.relative(run_dir / runs.LOG)}")
    return 0


def main(argv=None):
    return cli.guarded(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
