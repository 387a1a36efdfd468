"""Evaluate a trained run on the test set, without training: its accuracy and the per-class table.

    python evaluate.py                                   # the newest complete run in runs/
    python evaluate.py --run 20261129-142840-small-e2
    python evaluate.py --weights runs/RUN_ID/checkpoint.pt --device cuda

A run is evaluated the way it measured its accuracy: its weight average with
``--ema``, flip TTA with ``--tta`` (on shifted views too with ``--tta-translate``),
its validation split with ``--val``, its test images with ``--subset``, in its
precision on the device it trained on.
The loop's own evaluation (``engine.evaluate``) and the tools' own loader
(``trained.py``) do the work, so on the same data and device the accuracy is
the one the run logged; a dataset other than the run's is named in a warning.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import sys
from pathlib import Path

import data
import runs
import trained
from compute import amp_dtype, precision_name, resolve_device


def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    trained.add_source_flags(p, "evaluate")
    p.add_argument("--device", choices=cli.DEVICES, default="auto",
                   help="auto = MPS, then CUDA, then CPU; a missing device falls back with a "
                        "warning (default: auto)")
    cli.add_data_flags(p.add_argument)
    return p


def run_evaluate(args):
    device, warning = resolve_device(args.device)
    if warning:
        print(warning, file=sys.stderr)
    model_name, model, source = trained.trained_model(args, device)
    # A run's weights lie in its folder; a weights file of its own has no log.
    record = (runs.read_log(Path(source["weights"]).parent) if source["run"] else None) or {}
    cfg = record.get("config") if isinstance(record.get("config"), dict) else {}
    arrays = data.load_arrays(data.locate(args.data_dir, args.download))
    ds = data.DeviceCIFAR10(*arrays, device, val=cfg.get("val") or 0, val_seed=cfg.get("val_seed") or 0,
                            subset_size=cfg.get("subset") or 0)
    logged = (record.get("dataset") or {}).get("id")
    here = data.content_digest(*arrays)[:16]
    if logged and logged != here:
        print(f"warning: the run trained on dataset {logged}, but {args.data_dir} holds {here}: "
              "the accuracy is not the run's", file=sys.stderr)
    same_device = record.get("device") == device.type
    dtype = amp_dtype(record.get("precision", "auto") if same_device else "auto", device)

    import engine                                            # the loop's own evaluation
    how = dict(tta=source["tta"], translate=source["translate"])
    result = engine.evaluate(model, ds, dtype, **how)
    val = engine.evaluate(model, ds, dtype, split="val", **how) if cfg.get("val") else None
    print(f"{model_name} ({trained.describe(source)}) on {device}, {precision_name(dtype)}")
    print(f"Accuracy of the network on the {result['total']} test images: {result['overall_accuracy']:.2f} %")
    if val is not None:
        print(f"Accuracy on the {val['total']} validation images: {val['overall_accuracy']:.2f} %")
    print(engine.class_table(result["per_class"]))
    said = (record.get("results") or {}).get("overall_accuracy")
    if isinstance(said, (int, float)):
        print(f"the run logged {said:.2f} % on {record.get('device')} ({record.get('precision')})")
    return 0


def main(argv=None):
    return cli.guarded(lambda: run_evaluate(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
