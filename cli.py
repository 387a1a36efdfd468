"""The command line shared by the training scripts: one parent parser, one error path.

A training script is its defaults plus ``return cli.main(DEFAULTS, argv, __doc__, script)``.
Bad input becomes ``error: <what> ; <what to do>`` on stderr and exit status 2.
"""
import argparse
import dataclasses
import os
import sys

import torch

import engine
from errors import UserError
from models import MODELS


def _typed(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    return parse


positive_int = _typed(int, lambda v: v > 0, "a positive whole number")
nonnegative_int = _typed(int, lambda v: v >= 0, "zero or a positive whole number")
positive_float = _typed(float, lambda v: v > 0, "a positive number")
nonnegative_float = _typed(float, lambda v: v >= 0, "zero or a positive number")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage text."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def build_parser(defaults, description, prog=None):
    d = dataclasses.asdict(engine.Config()) | defaults
    p = Parser(prog=prog, description=description,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", choices=sorted(MODELS), default=d["model"], help=f"network (default: {d['model']})")
    a("--epochs", type=positive_int, default=d["epochs"], help=f"training epochs (default: {d['epochs']})")
    a("--batch-size", type=positive_int, default=d["batch_size"],
      help=f"mini-batch size (default: {d['batch_size']})")
    a("--lr", type=positive_float, default=d["lr"],
      help=f"fixed learning rate, used without OneCycle (default: {d['lr']})")
    a("--max-lr", type=positive_float, default=d["max_lr"],
      help=f"OneCycle peak learning rate (default: {d['max_lr']})")
    a("--weight-decay", type=nonnegative_float, default=None,
      help="L2 weight decay (default: 5e-4 with OneCycle, 0 without)")
    a("--momentum", type=nonnegative_float, default=d["momentum"],
      help=f"SGD momentum (default: {d['momentum']})")
    a("--augment", action=argparse.BooleanOptionalAction, default=d["augment"],
      help=f"random crop 32 (padding 4) + horizontal flip (default: {'on' if d['augment'] else 'off'})")
    a("--onecycle", action=argparse.BooleanOptionalAction, default=d["onecycle"],
      help="OneCycleLR per batch: 30%% warm-up to --max-lr, cosine down "
           f"(default: {'on' if d['onecycle'] else 'off'})")
    a("--device", choices=["auto", "mps", "cuda", "cpu"], default="auto",
      help="auto = MPS, then CUDA, then CPU; a missing device falls back with a warning (default: auto)")
    a("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=d["precision"],
      help="autocast precision; auto = bf16 on CUDA where supported, fp32 elsewhere (default: auto)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=d["channels_last"],
      help=f"channels-last memory format (default: {'on' if d['channels_last'] else 'off'})")
    a("--compile", action=argparse.BooleanOptionalAction, default=d["compile"],
      help=f"torch.compile the model (default: {'on' if d['compile'] else 'off'})")
    a("--threads", type=nonnegative_int, default=d["threads"],
      help="CPU threads for tensor ops; 0 = PyTorch's default, "
           f"{torch.get_num_threads()} here (default: {d['threads']})")
    a("--onednn", action=argparse.BooleanOptionalAction, default=d["onednn"],
      help="CPU convolutions through oneDNN; --no-onednn uses PyTorch's native kernels, faster for "
           f"tiny convolutions at tiny batches (default: {'on' if d['onednn'] else 'off'})")
    a("--seed", type=int, default=d["seed"], help=f"random seed (default: {d['seed']})")
    default_data = os.environ.get("CIFAR10_DIR", "data")
    a("--data-dir", default=default_data,
      help=f"folder holding cifar-10-batches-py, or where to download it "
           f"(default: $CIFAR10_DIR or ./data; now: {default_data})")
    a("--download", action=argparse.BooleanOptionalAction, default=True,
      help="download CIFAR-10 when it is missing (default: on)")
    a("--out", default=d["out"], help=f"folder of run folders (default: {d['out']})")
    a("--log-every", type=positive_int, default=d["log_every"],
      help=f"print the mean loss every N mini-batches (default: {d['log_every']})")
    a("--resume", metavar="RUN", help="continue a run: its id in --out, its folder or its checkpoint")
    return p


def explicit_flags(parser, argv):
    """Names of the options given on the command line (not left at their defaults)."""
    shadow = argparse.Namespace()
    for action in parser._actions:
        if action.dest != "help":
            setattr(shadow, action.dest, argparse.SUPPRESS)
    saved = {a.dest: a.default for a in parser._actions}
    try:
        for a in parser._actions:
            a.default = argparse.SUPPRESS
        given = parser.parse_args(argv, namespace=argparse.Namespace())
    finally:
        for a in parser._actions:
            a.default = saved[a.dest]
    return set(vars(given))


def config_from_args(args):
    wd = args.weight_decay if args.weight_decay is not None else (5e-4 if args.onecycle else 0.0)
    return engine.Config(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         max_lr=args.max_lr, weight_decay=wd, momentum=args.momentum,
                         augment=args.augment, onecycle=args.onecycle, seed=args.seed,
                         device=args.device, precision=args.precision,
                         channels_last=args.channels_last, compile=args.compile, threads=args.threads,
                         onednn=args.onednn,
                         log_every=args.log_every, data_dir=args.data_dir, out=args.out,
                         download=args.download)


def main(defaults, argv, description, script):
    """Parse ``argv`` over the script's ``defaults`` and train; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(defaults, description, prog=script)
        args = parser.parse_args(argv)
        explicit = explicit_flags(parser, argv)
        if "weight_decay" in explicit:
            explicit.add("weight_decay")
        return engine.train(config_from_args(args), script=script, resume=args.resume,
                            explicit=explicit)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; every file already written (checkpoints, run logs) is intact",
              file=sys.stderr)
        return engine.EXIT_INTERRUPTED
