"""The command line of every entry point: validators, the shared flags, the training flags, one error path.

A training script is ``return cli.train_main("large", argv, __doc__, "train_large.py")``.
Bad input becomes ``error: <what>; <what to do>`` on stderr and exit status 2.
This module imports no torch, so ``--help`` and a bad flag answer at once.
"""
import argparse
import dataclasses
import json
import math
import os
import shlex
import signal
import statistics
import sys
from pathlib import Path

import hwdna
import recipes
from errors import UserError

EXIT_INTERRUPTED = 130
SEED_MAX = 2**32 - 1             # numpy's seeds are 32-bit
CPU_COUNT = os.cpu_count() or 1
DEVICES = ("auto", "mps", "cuda", "cpu")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage text."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def number(kind, what, low=None, high=None, above=None, below=None):
    """An argparse ``type``: parse ``kind``, finite, ``low <= value <= high``, ``above < value < below``."""
    def parse(text):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if (not math.isfinite(value) or (low is not None and value < low)
                or (high is not None and value > high) or (above is not None and value <= above)
                or (below is not None and value >= below)):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    parse.kind = kind                # what a value from elsewhere (a checkpoint) must be to be parsed
    return parse


positive_int = number(int, "a positive whole number", low=1)
# Far beyond any recipe (40 epochs); bounds the schedule a run builds for --onecycle.
EPOCHS_MAX = 1000
epoch_count = number(int, f"an epoch count from 1 to {EPOCHS_MAX}", low=1, high=EPOCHS_MAX)
nonnegative_int = number(int, "zero or a positive whole number", low=0)
positive_float = number(float, "a positive number", above=0)
nonnegative_float = number(float, "zero or a positive number", low=0)
seed_int = number(int, f"a seed from 0 to {SEED_MAX}", low=0, high=SEED_MAX)
smoothing = number(float, "a label smoothing from 0 to 1", low=0, high=1)
ema_decay = number(float, "0 (off) or a decay from 0 to below 1", low=0, below=1)
cutout_size = number(int, "a square side from 0 to 32 pixels", low=0, high=32)
crop_pad = number(int, "a padding from 0 to 16 pixels", low=0, high=16)


def seed_list(text):
    """--seeds: comma-separated seeds, each once, in the order given."""
    seeds = [seed_int(t.strip()) for t in text.split(",") if t.strip()]
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seed")
    return list(dict.fromkeys(seeds))
thread_count = number(int, f"a thread count from 0 to {CPU_COUNT} (this machine's CPUs)", low=0, high=CPU_COUNT)
worker_count = number(int, f"a worker count from 0 to {CPU_COUNT} (this machine's CPUs)", low=0, high=CPU_COUNT)


def _interrupted_while_loading(signum, frame):
    print("error: interrupted while starting; nothing was written", file=sys.stderr)
    raise SystemExit(EXIT_INTERRUPTED)


def quiet_interrupt_while_loading():
    """Until ``guarded`` runs, Ctrl-C exits with 130 and one line, not a traceback from inside an
    import (torch takes seconds to load).  Call it from a script's top, before heavy imports."""
    if __import__("threading").current_thread() is __import__("threading").main_thread():
        signal.signal(signal.SIGINT, _interrupted_while_loading)


def guarded(work, interrupted="interrupted"):
    """``work()``'s exit status; a ``UserError`` becomes one line on stderr and status 2,
    Ctrl-C status 130 with ``interrupted`` said: the one error path of every entry point."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return work()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"error: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def on_off(flag):
    return "on" if flag else "off"


def default_data_dir():
    return os.environ.get("CIFAR10_DIR", "data")


def _adder(parser, suppress):
    """``parser.add_argument`` that drops every default when ``suppress`` (see ``given_flags``)."""
    def add(*flags, default=None, **kw):
        if not suppress:
            kw["default"] = default
        return parser.add_argument(*flags, **kw)
    return add


def shared_parent(seed_help="random seed", device_help=None, suppress=False):
    """The flags every entry point that touches data shares: device, seed, data folder, download."""
    p = argparse.ArgumentParser(add_help=False,
                                argument_default=argparse.SUPPRESS if suppress else None)
    a = _adder(p, suppress)
    a("--device", choices=DEVICES, default="auto",
      help=device_help or "auto = MPS, then CUDA, then CPU; a missing device falls back with a "
                          "warning (default: auto)")
    a("--seed", type=seed_int, default=recipes.DEFAULT_SEED,
      help=f"{seed_help} (default: {recipes.DEFAULT_SEED})")
    add_data_flags(a)
    return p


def add_data_flags(add):
    """--data-dir and --download through ``add`` (a parser's ``add_argument`` or an ``_adder``)."""
    data_dir = default_data_dir()
    add("--data-dir", default=data_dir,
        help=f"folder holding cifar-10-batches-py, or where to download it "
             f"(default: $CIFAR10_DIR or ./data; now: {data_dir})")
    add("--download", action=argparse.BooleanOptionalAction, default=True,
        help="download CIFAR-10 when it is missing (default: on)")


def build_training_parser(model, description=None, prog=None, suppress=False):
    """The training flags over ``model``'s recipe defaults.

    With ``suppress``, no flag has a default, so parsing yields only the flags given.
    """
    d = recipes.config_for(model)
    p = Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
               parents=[shared_parent(suppress=suppress)],
               argument_default=argparse.SUPPRESS if suppress else None)
    a = _adder(p, suppress)

    a("--model", choices=sorted(recipes.RECIPES), default=d.model,
      help=f"network; another model's recipe defaults apply (default: {d.model})")
    a("--epochs", type=epoch_count, default=d.epochs, help=f"training epochs (default: {d.epochs})")
    a("--batch-size", type=positive_int, default=d.batch_size,
      help="mini-batch size; under torchrun the global batch, split evenly across the processes, "
           f"so the learning rate needs no change (default: {d.batch_size})")
    a("--lr", type=positive_float, default=d.lr,
      help=f"fixed learning rate, used without OneCycle (default: {d.lr})")
    a("--max-lr", type=positive_float, default=d.max_lr,
      help=f"peak learning rate of OneCycle or --triangle (default: {d.max_lr})")
    a("--weight-decay", type=nonnegative_float, default=None,
      help="L2 weight decay (default: " + (f"{d.weight_decay:g}" if "weight_decay" in recipes.recipe(model).defaults
                                           else f"{recipes.ONECYCLE_WEIGHT_DECAY:g} with OneCycle, 0 without")
           + ")")
    a("--momentum", type=nonnegative_float, default=d.momentum,
      help=f"SGD momentum (default: {d.momentum})")
    a("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
      help=f"random crop 32 (padding 4) + horizontal flip (default: {on_off(d.augment)})")
    a("--onecycle", action=argparse.BooleanOptionalAction, default=d.onecycle,
      help="OneCycleLR per batch: 30%% warm-up to --max-lr, cosine down "
           f"(default: {on_off(d.onecycle)})")
    a("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=d.precision,
      help="autocast precision; auto = bf16 on CUDA where supported; on a CPU with bf16 in hardware "
           "(amx_bf16, avx512_bf16) bf16 + channels-last for "
           + (f"{d.model} ({recipes.recipe(d.model).cpu_bf16})" if recipes.recipe(d.model).cpu_bf16
              else f"models measured faster so; {d.model} stays fp32, unmeasured there")
           + f"; fp32 elsewhere; the run log's precision_choice says what auto chose and why (default: {d.precision})")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last,
      help="channels-last memory format (default: auto = on where --precision auto chose bf16 on a CPU)")
    a("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
      help=f"torch.compile the model (default: {on_off(d.compile)})")
    a("--deterministic", action=argparse.BooleanOptionalAction, default=d.deterministic,
      help="deterministic kernels where the backend has them; --no-deterministic lets cuDNN "
           f"autotune its convolutions (faster on CUDA, no longer rerun-exact) (default: {on_off(d.deterministic)})")
    a("--cuda-graph", action=argparse.BooleanOptionalAction, default=d.cuda_graph,
      help="the whole training step (forward, backward, SGD, learning rate, EMA) as one CUDA graph, "
           "replayed each step; on another device the same step runs without capture. Not with "
           f"fp16, torchrun or --compile (default: auto = {recipes.graph_default_text()})")
    a("--threads", type=thread_count, default=d.threads,
      help=f"CPU threads for tensor ops; 0 = PyTorch's default (default: {d.threads})")
    a("--onednn", action=argparse.BooleanOptionalAction, default=d.onednn,
      help="CPU convolutions through oneDNN; --no-onednn uses PyTorch's native kernels, faster for "
           f"tiny convolutions at tiny batches (default: {on_off(d.onednn)})")
    a("--out", default=d.out, help=f"folder of run folders (default: {d.out})")
    a("--progress", action=argparse.BooleanOptionalAction, default=d.progress,
      help="a progress bar per epoch (steps, images/s, ETA); the loss lines print either way "
           "(default: on when stdout is a terminal)")
    a("--tensorboard", action=argparse.BooleanOptionalAction, default=d.tensorboard,
      help="write loss, learning rate and accuracy for TensorBoard into the run folder's "
           f"tensorboard/ (needs: pip install tensorboard) (default: {on_off(d.tensorboard)})")
    a("--log-every", type=positive_int, default=d.log_every,
      help=f"print the mean loss every N mini-batches (default: {d.log_every})")
    a("--eval-every", type=nonnegative_int, default=d.eval_every, metavar="N",
      help="evaluate the test set (and the validation split) every N epochs and after the last; 0 = "
           "after the last only, which saves the watched epochs' evaluations (a fast network's ablation "
           f"run: about a seventh of its time); training is the same either way (default: {d.eval_every})")
    a("--subset", type=nonnegative_int, default=d.subset, metavar="N",
      help="a quick run: train on N training images and test on N test images (at most all), each a "
           "choice seeded by --val-seed; such a run stays out of results.md's tables and leaves "
           f"the top-level run_log.json alone; 0 = all (default: {d.subset})")
    every = ", ".join(f"{k} {v}" for k, v in recipes.CHECKPOINT_EVERY_BY_DEVICE.items())
    a("--checkpoint-every", type=nonnegative_int, default=d.checkpoint_every,
      help="write checkpoint.pt (and the weights' sha256 into the epoch's record) every N epochs and "
           "after the last; a resume continues from the last checkpoint; 0 = by device: "
           f"{every} (default: {d.checkpoint_every})")
    add_recipe_options(p, d, suppress)
    add_fast_options(p, d, suppress)
    a("--seeds", type=seed_list, metavar="S1,S2,...",
      help="train the recipe once per seed, one run folder each, then print the test accuracy's "
           "mean ± std (default: one run, with --seed)")
    a("--resume", metavar="RUN", help="continue a run: its id in --out, its folder or its checkpoint")
    return p


def add_recipe_options(p, d, suppress):
    """The recipe options (validation split, regularisers, TTA) as a group of ``p``; ``d`` is the
    model's default Config."""
    g = p.add_argument_group("recipe options (each default is the seed's recipe)")
    a = _adder(g, suppress)
    best = recipes.recipe(d.model).best
    a("--recipe", choices=recipes.RECIPE_NAMES, default=d.recipe,
      help="seed = the seed's recipe, every option below at its default; best = "
           + (f"{recipes.BEST_NOTES.get(d.model, 'not chosen by an ablation')}: "
              + ", ".join(f"{k}={v}" for k, v in best.items()) if best else "none for this model")
           + f"; flags given explicitly override it (default: {d.recipe})")
    a("--val", type=nonnegative_int, default=d.val, metavar="N",
      help="hold out N training images as a validation split (5000 is usual) and train on the "
           "rest; the split is a permutation seeded by --val-seed alone, so every --seed holds "
           f"out the same images (default: {d.val})")
    a("--val-seed", type=seed_int, default=d.val_seed,
      help=f"seed of the validation split's permutation (default: {d.val_seed})")
    a("--label-smoothing", type=smoothing, default=d.label_smoothing, metavar="X",
      help=f"label smoothing of the cross-entropy loss (default: {d.label_smoothing})")
    a("--nesterov", action=argparse.BooleanOptionalAction, default=d.nesterov,
      help=f"Nesterov momentum (default: {on_off(d.nesterov)})")
    a("--decay-norm-bias", action=argparse.BooleanOptionalAction, default=d.decay_norm_bias,
      help="weight decay on batch-norm and bias parameters too; --no-decay-norm-bias exempts "
           f"them (default: {on_off(d.decay_norm_bias)})")
    a("--ema", type=ema_decay, default=d.ema, metavar="DECAY",
      help="evaluate an exponential moving average of the weights (parameters and batch-norm "
           "statistics), updated after every step with this decay, e.g. 0.999; its weights "
           f"go to weights_ema.pt; 0 = off (default: {d.ema:g})")
    a("--cutout", type=cutout_size, default=d.cutout, metavar="PX",
      help="cut a PX x PX square (the mean pixel, 0 after normalisation) at a random centre out "
           f"of every training image, after crop and flip; 8-16 is usual; 0 = off (default: {d.cutout})")
    a("--tta", action=argparse.BooleanOptionalAction, default=d.tta,
      help="evaluate on the mean logits of each image and its mirror image "
           f"(default: {on_off(d.tta)})")


def config_problem(values):
    """Why ``values`` (``recipes.Config`` fields, as a checkpoint holds them) are not what the
    command line could have given, or None: every value passes its flag's own validator."""
    model = values.get("model", recipes.Config.model)
    if not isinstance(model, str) or model not in recipes.RECIPES:
        return f"model {repr(model)[:20]} is none of {', '.join(recipes.RECIPES)}"
    for action in build_training_parser(model)._actions:
        if action.dest in values:
            problem = _value_problem(action, values[action.dest])
            if problem:
                return f"{action.dest} {repr(values[action.dest])[:20]} is {problem}"
    return None


def _value_problem(action, value):
    if isinstance(action, argparse.BooleanOptionalAction):
        return None if isinstance(value, bool) or (value is None and action.default is None) else "not on or off"
    if action.choices is not None:
        return None if isinstance(value, str) and value in action.choices else f"not one of {list(action.choices)}"
    kind = getattr(action.type, "kind", None)
    if kind is None:
        return None if isinstance(value, str) else "not text"
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        return "not a whole number" if kind is int else "not a number"
    # Another machine's thread count is sound here too: only the type is checked.
    check = nonnegative_int if action.dest == "threads" else action.type
    try:
        check(repr(value))
    except argparse.ArgumentTypeError as exc:
        return str(exc).split(" is ", 1)[-1]
    return None


def add_fast_options(p, d, suppress):
    """The fast network's options (airbench94's tricks) as a group of ``p``; ``d`` is the model's
    default Config."""
    g = p.add_argument_group("fast-network options (airbench94's; off unless the model's recipe sets them)")
    a = _adder(g, suppress)
    a("--whiten", type=nonnegative_int, default=d.whiten, metavar="N",
      help="set the network's 2x2 whitening conv from the patch covariance of the first N training "
           f"images and freeze its weight (the fast network); 0 = off (default: {d.whiten})")
    a("--whiten-bias-epochs", type=nonnegative_int, default=d.whiten_bias_epochs, metavar="E",
      help=f"with --whiten, epochs in which the whitening conv's bias trains (default: {d.whiten_bias_epochs})")
    a("--triangle", action=argparse.BooleanOptionalAction, default=d.triangle,
      help="learning rate per batch: linear from 0.2 to 1 x --max-lr over the first 23%% of the "
           f"steps, then linear down to 0.07 x (default: {on_off(d.triangle)})")
    a("--bias-lr-scale", type=positive_float, default=d.bias_lr_scale, metavar="S",
      help="learning rate x S for batch-norm parameters, their weight decay / S "
           f"(default: {d.bias_lr_scale:g})")
    a("--lookahead", type=nonnegative_int, default=d.lookahead, metavar="K",
      help="every K steps pull the weights back to a slow average of them (decay 0.95^K x "
           f"(progress)^3), and end on it; 0 = off (default: {d.lookahead})")
    a("--alt-flip", action=argparse.BooleanOptionalAction, default=d.alt_flip,
      help="with --augment, each image's flip is drawn once and reversed every epoch "
           f"(default: {on_off(d.alt_flip)})")
    a("--crop-padding", type=crop_pad, default=d.crop_padding, metavar="PX",
      help=f"--augment's random crop pads each side by PX pixels (default: {d.crop_padding})")
    a("--crop-reflect", action=argparse.BooleanOptionalAction, default=d.crop_reflect,
      help=f"pad with the mirrored border instead of zeros (default: {on_off(d.crop_reflect)})")
    a("--tta-translate", action=argparse.BooleanOptionalAction, default=d.tta_translate,
      help="with --tta, the final evaluation also classifies each image shifted one pixel up-left and "
           f"down-right, weight 1/4 each (default: {on_off(d.tta_translate)})")
    a("--dirac", action=argparse.BooleanOptionalAction, default=d.dirac,
      help="the fast network's convs start as the identity on their input channels; --no-dirac: "
           f"PyTorch's default init (default: {on_off(d.dirac)})")
    a("--norm-scale", action=argparse.BooleanOptionalAction, default=d.norm_scale,
      help=f"the fast network's batch norms learn a scale too (default: {on_off(d.norm_scale)})")
    a("--logit-scale", type=positive_float, default=d.logit_scale, metavar="X",
      help=f"the fast network's logits are multiplied by X; 1 = unscaled (default: {d.logit_scale:.4g})")


def apply_recipe(args, given):
    """Set ``--recipe``'s options on ``args``, except those given as flags."""
    for key, value in recipes.recipe(args.model).options(args.recipe).items():
        if key not in given:
            setattr(args, key, value)
    return args


def given_flags(model, argv):
    """Names (``dest``) of the options given on the command line, not left at their defaults."""
    return set(vars(build_training_parser(model, suppress=True).parse_args(argv)))


def chosen_model(default_model, argv):
    """The ``--model`` of ``argv`` (checked later by the full parser), else the script's own."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=default_model)
    model = pre.parse_known_args(argv)[0].model
    return model if model in recipes.RECIPES else default_model


def config_from_args(args):
    wd = args.weight_decay
    if wd is None:
        wd = recipes.recipe(args.model).defaults.get(
            "weight_decay", recipes.ONECYCLE_WEIGHT_DECAY if args.onecycle else 0.0)
    fields = {f.name for f in dataclasses.fields(recipes.Config)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    return recipes.Config(**{**values, "weight_decay": wd})


def train_seeds(engine, cfg, seeds, script, given, argv=()):
    """One run per seed, one after another; print each run's accuracy, then mean ± std.  A series
    that stops says which seeds it has not run and the command that runs them (``argv`` is the
    series' own command line)."""
    quiet = os.environ.get("RANK", "0") != "0"        # under torchrun, rank 0 speaks for all

    def say(line):
        if not quiet:
            print(line, flush=True)

    accuracies = []
    for seed in seeds:
        say(f"== seed {seed} ({len(accuracies) + 1} of {len(seeds)})")
        out = Path(cfg.out)
        before = set(out.iterdir()) if out.is_dir() else set()
        try:
            code = engine.train(dataclasses.replace(cfg, seed=seed), script=script, explicit=given)
        except engine.NotStarted as exc:         # no run of this seed: it is among those to run
            raise UserError(f"{exc}: {command(script, with_seeds(argv, seeds[len(accuracies):]))}") from None
        except UserError as exc:
            raise UserError(f"{exc}{series_stop(script, argv, seeds, accuracies)}") from None
        if code:
            if not quiet:
                print(series_stop(script, argv, seeds, accuracies).lstrip("; "), file=sys.stderr)
            return code
        new = [p for p in (set(out.iterdir()) - before) if (p / "run_log.json").is_file()]
        record = json.loads(new[0].joinpath("run_log.json").read_text()) if len(new) == 1 else {}
        accuracies.append((seed, (record.get("results") or {}).get("overall_accuracy"), new[0].name))
    values = [a for _, a, _ in accuracies if a is not None]
    for seed, acc, run_id in accuracies:
        say(f"seed {seed}: test accuracy {acc:.2f}% ({run_id})")
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    say(f"test accuracy over {len(values)} seeds: {mean:.2f}{spread}% (mean ± sample std)")
    return 0


def with_seeds(argv, seeds):
    """``argv`` with its ``--seeds`` replaced by ``seeds``."""
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--seeds="):
            skip = False
            continue
        skip = arg == "--seeds"
        if not skip:
            out.append(arg)
    return [*out, "--seeds", ",".join(map(str, seeds))]


def series_stop(script, argv, seeds, accuracies):
    """What a --seeds series that stopped at its current seed leaves to do, for its last line."""
    current, rest = seeds[len(accuracies)], seeds[len(accuracies) + 1:]
    done = f" after runs {', '.join(run for *_, run in accuracies)}" if accuracies else ""
    then = (f"; then run the seeds not started with: {command(script, with_seeds(argv, rest))}" if rest
            else "")
    return (f"; the --seeds series stopped at seed {current} ({len(accuracies) + 1} of {len(seeds)}){done}, "
            f"so no mean over its seeds was printed: complete seed {current}'s run as said{then}")


def command(script, argv):
    """The command line that runs ``script`` with ``argv``, as a user would type it where they stand."""
    return shlex.join(["python", hwdna.command_path(script), *argv])


def train_main(model, argv, description, script):
    """Parse ``argv`` over ``model``'s recipe and train; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def work():
        chosen = chosen_model(model, argv)
        args = build_training_parser(chosen, description, prog=script).parse_args(argv)
        given = given_flags(chosen, argv)
        apply_recipe(args, given)
        config_from_args(args).architecture()   # a shape switch the network lacks: refused first
        import engine                       # torch: only once the command line is sound
        if args.seeds is None:
            try:
                return engine.train(config_from_args(args), script=script, resume=args.resume,
                                    explicit=given)
            except engine.NotStarted as exc:
                raise UserError(f"{exc}: {command(script, argv)}") from None
        if args.resume is not None or "seed" in given:
            raise UserError("--seeds starts one new run per seed; drop --resume and --seed "
                            "(resume a stopped run of the series by its own id)")
        return train_seeds(engine, config_from_args(args), args.seeds, script, given, argv)
    return guarded(work, "interrupted; every file already written (checkpoints, run logs) is intact")
