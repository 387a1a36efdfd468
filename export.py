"""Export a trained network as a self-contained program: a torch.export ``.pt2`` and a JSON of what it expects.

    python export.py --run 20261129-142840-small-e2     # exports/20261129-142840-small-e2/model.{pt2,json}
    python export.py --model resnet18                   # the newest complete ResNet-18 run in runs/
    python export.py --weights my_weights.pt --model large --out /tmp/exports

Writes ``<out>/<run-id>/model.pt2`` (``<out>/<model>-<digest>/`` for
``--weights``: the first 12 hex digits of the weights' sha256) and, last,
``model.json``: the class names in output order, the mean and std, the input
shape and value range, the model, the run, the weights' sha256 (as in the run
log), whether they are the run's weight average (``--ema``: what it evaluated), whether
the run used flip TTA (``--tta``; ``flip_tta_how`` then says how), and the torch version.  Both are written atomically.

Loading needs torch and nothing of this repository:

    program = torch.export.load("model.pt2").module()
    logits = program((x_uint8.float() / 255 - mean) / std)   # (N, 3, 32, 32) RGB -> (N, 10)

The program is traced on the CPU in eval mode (batch norm uses its running
statistics) with a dynamic batch of 1 to 4096 images; a network that cannot be
exported with a dynamic batch is exported for batches of exactly one, and the
JSON says so.  It computes logits; softmax gives probabilities.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import io
import sys
from pathlib import Path

import torch

import atomic
import data
import predict
import trained
from engine import weights_digest

PROGRAM, MANIFEST = "model.pt2", "model.json"
MAX_BATCH = 4096
# Traced with two images: an example batch of one would let export specialise the batch to 1.
EXAMPLE_BATCH = 2
VALUE_RANGE = "uint8 pixels scaled to [0,1], then normalised: (x / 255 - mean) / std per channel"


def export_program(model):
    """(torch.export.ExportedProgram of ``model`` in eval mode, the batch it accepts as a dict)."""
    model = model.eval()
    example = torch.zeros(EXAMPLE_BATCH, 3, predict.SIZE, predict.SIZE)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        return program, {"dynamic": True, "min": 1, "max": MAX_BATCH}
    except Exception as exc:  # torch.export's many error types all mean the same here: trace it fixed
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    program = torch.export.export(model, (example[:1],))
    return program, {"dynamic": False, "size": 1, "reason": f"dynamic batch failed: {reason}"}


def manifest(model_name, source, digest, batch):
    """The JSON beside the program: everything a user of the .pt2 needs to feed it and read it."""
    n = "N" if batch["dynamic"] else batch["size"]
    return {
        "kind": "export", "program": PROGRAM, "format": "torch.export ExportedProgram (.pt2)",
        "model": model_name, "run_id": source["run"], "weights": source["weights"],
        "weights_sha256": digest, "weight_average": source["ema"],
        "flip_tta": bool(source["tta"]),
        **({"flip_tta_how": "the run's accuracy classified each image by the mean logits of the image and "
                            "its mirror image (x.flip(3)); run the program on both to classify the same way"}
           if source["tta"] else {}),
        "translate_tta": bool(source.get("translate")),
        **({"translate_tta_how": "and of both shifted one pixel up-left and down-right (reflect-pad by 1, take "
                                 "x[..., :32, :32] and x[..., 2:, 2:]), each with its mirror image: weight 1/2 on "
                                 "the image's mean, 1/4 on each shift's"}
           if source.get("translate") else {}),
        "classes": list(data.CLASSES),
        "mean": list(data.MEAN), "std": list(data.STD),
        "input_shape": [n, 3, predict.SIZE, predict.SIZE], "input_dtype": "float32",
        "input_layout": "RGB, channels first",
        "value_range": VALUE_RANGE, "batch": batch,
        "output": f"logits ({n}, {len(data.CLASSES)}) in the order of classes; softmax gives probabilities",
        "load": f'torch.export.load("{PROGRAM}").module()',
        "torch_version": torch.__version__,
    }


def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    trained.add_source_flags(p, "export")
    p.add_argument("--out", default="exports",
                   help="folder of exports: <out>/<run-id>/model.pt2 and model.json (default: exports)")
    return p


def run_export(args):
    device = torch.device("cpu")          # a program traced on a GPU would hold GPU weights
    model_name, model, source = trained.trained_model(args, device)
    digest = weights_digest(model)
    folder = Path(args.out) / (source["run"] or f"{model_name}-{digest[:12]}")
    program, batch = export_program(model)
    if not batch["dynamic"]:
        print(f"warning: {model_name} could not be exported with a dynamic batch ({batch['reason']}); "
              "exported for batches of 1", file=sys.stderr)
    # Serialised in memory first: torch's archive writer, failing on a full disk, throws again as
    # it is destroyed, which aborts the process (exit 134).  A failed plain write is one line.
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic.write_bytes(folder / PROGRAM, buffer.getbuffer())
    atomic.write_json(folder / MANIFEST, manifest(model_name, source, digest, batch))   # last: marks it whole
    shape = f"batch 1 to {MAX_BATCH}" if batch["dynamic"] else "batch 1 only"
    print(f"{model_name} ({trained.describe(source)}) exported: {folder / PROGRAM} ({shape}), "
          f"{folder / MANIFEST}")
    return 0


def main(argv=None):
    return cli.guarded(lambda: run_export(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
