"""A trained network from a run folder or a weights file, for the tools that use one.

    >>> model_name, model, source = trained_model(args, torch.device("cpu"))   # after add_source_flags

``visualize_activations.py``, ``predict.py`` and ``export.py`` pick their
network the same way: ``--run`` (a complete run), ``--weights`` with ``--model``,
or by default the newest complete run in ``--runs``.  From a run they take the
weights its accuracy was measured on: with ``--ema`` the weight average
(``weights_ema.pt``), else the final weights (``weights.pt``); ``source["tta"]``
says whether the run classified each image with its mirror image (``--tta``), and
``source["translate"]`` whether also with both shifted one pixel (``--tta-translate``).
"""
import sys
import warnings
from pathlib import Path

import torch

import hwdna
import recipes
import runs
from errors import UserError
from models import MODELS, build_model


def _fits(model, state):
    """Whether ``state`` has exactly the parameter names and shapes of ``model``."""
    own = model.state_dict()
    return own.keys() == state.keys() and all(
        isinstance(state[k], torch.Tensor) and own[k].shape == state[k].shape for k in own)


def read_weights(path, device):
    """(state_dict in ``path``, the model a training checkpoint names or None): a weights.pt, or a
    run's checkpoint.pt, whose weights are those of its last finished epoch."""
    path = Path(path)
    try:
        with warnings.catch_warnings():      # torch's warning about a plain pickle: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no weights file {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; pass its weights.pt or checkpoint.pt, or the run with --run") from None
    except Exception as exc:  # truncated zip, not a torch file, pickle refused by weights_only
        raise UserError(f"{path} is truncated or not a weights file ({type(exc).__name__}); "
                        "train the model again or pass another file") from None
    named = None
    if isinstance(state, dict) and state.get("format") == 1 and "model" in state:
        config = state.get("config")
        named = config.get("model") if isinstance(config, dict) else None
        state = state["model"]
    return state, named if named in MODELS else None


def load_weights(model_name, path, device, from_run=False):
    """``model_name``'s network with the state_dict in ``path`` (or a checkpoint's), on ``device``."""
    return named_weights(model_name, path, device, from_run)[1]


def named_weights(model_name, path, device, from_run=False):
    """(model name, network on ``device``) of the state_dict in ``path`` (or a checkpoint's).

    ``model_name`` None: the model a checkpoint names, else the one model the weights fit.
    ``from_run``: the model was named by a run's log, so --model is no way out of a mismatch.
    """
    path = Path(path)
    state, named = read_weights(path, device)
    if model_name is None:
        fitting = [m for m in MODELS if isinstance(state, dict) and _fits(build_model(m), state)]
        model_name = named or (fitting[0] if len(fitting) == 1 else None)
        if model_name is None and fitting:
            raise UserError(f"{path} fits several networks ({', '.join(fitting)}); pass --model")
        if model_name is None:
            raise UserError(f"{path} holds no network's weights: they fit none of the models "
                            f"({', '.join(MODELS)})")
    model = build_model(model_name)
    if not isinstance(state, dict) or not _fits(model, state):
        others = [m for m in MODELS if m != model_name and isinstance(state, dict)
                  and _fits(build_model(m), state)]
        if others and from_run:
            hint = (f"they are {others[0]} weights, not the run's; pass them with "
                    f"--weights {path} --model {others[0]}")
        elif others:
            hint = f"they are {others[0]} weights; pass --model {others[0]}"
        else:
            hint = f"they fit none of the models ({', '.join(MODELS)})"
        raise UserError(f"{path} does not hold {model_name} weights: {hint}")
    model.load_state_dict(state)
    return model_name, model.to(device)


def untrained_model(model_name, seed, device):
    """A freshly initialised network, the same for the same seed; the global RNG is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(model_name)
    return model.to(device)


def add_source_flags(p, purpose):
    """--run | --weights, --model and --runs: which trained network ``purpose`` uses."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", metavar="RUN_ID",
                     help="a complete training run's id in --runs, or its folder (default: the newest "
                          "complete run in --runs, of --model when given, else of any model)")
    src.add_argument("--weights", metavar="PATH",
                     help="a weights.pt, or a run's checkpoint.pt (its last finished epoch); the network "
                          "is the checkpoint's, or the one model the weights fit, unless --model says "
                          "(default: none; see --run)")
    p.add_argument("--model", choices=list(recipes.RECIPES), default=None,
                   help=f"network to {purpose}: with --weights, the one they belong to (found out when not "
                        "given); otherwise restricts the choice of run (default: the run's model)")
    p.add_argument("--runs", default="runs", help="folder of training runs (default: runs)")


def run_weights(run_dir):
    """(weights file, weight average?, flip TTA?, on shifted views too?) of a complete run: what its
    accuracy measured.

    A run of ``--ema`` whose weight average is gone falls back to its final weights, with a warning.
    """
    run_dir = Path(run_dir)
    cfg = (runs.read_log(run_dir) or {}).get("config")
    cfg = cfg if isinstance(cfg, dict) else {}
    ema = bool(cfg.get("ema"))
    if ema and not (run_dir / runs.WEIGHTS_EMA).is_file():
        print(f"warning: run {run_dir.name} evaluated its weight average, but {runs.WEIGHTS_EMA} is missing; "
              f"using {runs.WEIGHTS}, the final weights", file=sys.stderr)
        ema = False
    tta = bool(cfg.get("tta"))
    return run_dir / (runs.WEIGHTS_EMA if ema else runs.WEIGHTS), ema, tta, tta and bool(cfg.get("tta_translate"))


def trained_model(args, device):
    """(model name, network on ``device`` in eval mode, source: where its weights came from and how
    its run evaluated them; see ``load_run``)."""
    if args.weights is not None:
        model_name, model = named_weights(args.model, args.weights, device)
        return model_name, model.eval(), {"run": None, "weights": str(args.weights), "ema": False,
                                          "tta": False, "translate": False}
    run_dir, model_name = chosen_run(args.run, args.runs, args.model)
    return (model_name, *load_run(model_name, run_dir, device))


def chosen_run(run, runs_dir, model=None, others="--run or --weights"):
    """(run folder, model name) of ``run`` (an id in ``runs_dir`` or a folder), which must have trained
    ``model`` when given; without ``run``, the newest complete run in ``runs_dir`` (of ``model``
    when given).  ``others`` names the flags a user could pass instead, for the error."""
    if run is not None:
        run_dir, model_name = runs.find_complete(run, runs_dir, recipes.RECIPES)
        if model is not None and model != model_name:
            raise UserError(f"run {run_dir.name} trained {model_name}, not {model}; drop --model")
        return run_dir, model_name
    run_dir = runs.latest_complete(runs_dir, model)
    if run_dir is None:
        which = f"{model} " if model else ""
        raise UserError(f"no complete {which}run with weights in {runs_dir}; train one with: "
                        f"{train_hint(model or 'small', runs_dir)} (or pass {others})")
    return runs.find_complete(str(run_dir), runs_dir, recipes.RECIPES)


# A short training run that goes through the whole path (train, evaluate, save), for a first look.
QUICK_FLAGS = "--epochs 1 --subset 2000"
QUICK_EPOCHS = 2                 # the tutorial LeNet's recipe: a minute or two on a CPU as it is


def train_hint(model, runs_dir):
    """The command that trains ``model`` into ``runs_dir``, pasted where the user stands; for a
    recipe of more than ``QUICK_EPOCHS`` epochs (minutes to hours on a CPU), also a quick one."""
    recipe = recipes.RECIPES[model]
    out = "" if Path(runs_dir) == Path("runs") else f" --out {runs_dir}"
    full = f"python {hwdna.command_path(recipe.script)}{out}"
    if recipe.config().epochs <= QUICK_EPOCHS:
        return full
    return f"{full} ({recipe.config().epochs} epochs), or a quick one to look at: {full} {QUICK_FLAGS}"


def load_run(model_name, run_dir, device):
    """(network in eval mode, source) of a complete run: the weights its accuracy measured.

    source: "run" (id), "weights" (path), "ema", "tta" and "translate" (how the run evaluated), and what the
    run measured and trained on: "test_accuracy" (%), "test_images", "train_images", "dataset".
    A run being extended (``runs.has_result``) still holds the weights of its last completion;
    they are checked against its log's digest, since the extension rewrites them as it completes,
    and "epochs" says how many epochs they trained.
    """
    path, ema, tta, translate = run_weights(run_dir)
    model = load_weights(model_name, path, device, from_run=True)
    record = runs.read_log(run_dir) or {}
    results = record.get("results") if isinstance(record.get("results"), dict) else {}
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    source = {"run": run_dir.name, "weights": str(path), "ema": ema, "tta": tta, "translate": translate,
              "test_accuracy": results.get("overall_accuracy"), "test_images": results.get("total"),
              "train_images": dataset.get("train_images"), "dataset": dataset.get("source")}
    if not runs.is_complete_training(record):
        from engine import weights_digest
        cfg = record.get("config") or {}
        if weights_digest(model) != results.get("weights_ema_sha256" if ema else "weights_sha256"):
            epochs = "" if cfg.get("onecycle") else f" --epochs {cfg.get('epochs')}"
            script = hwdna.command_path(str(record.get("script")))
            raise UserError(f"run {run_dir.name} is {record.get('status')!r}: its extension wrote {path} "
                            f"but did not complete; complete it with: python {script} "
                            f"--resume {hwdna.relative(run_dir)}{epochs}")
        source["epochs"] = results.get("epochs")
    return model.eval(), source


def describe(source):
    """"run RUN_ID", with how that run evaluated ("its weight average", "flip TTA"), or "weights PATH"."""
    if not source["run"]:
        return f"weights {source['weights']}"
    tta = "flip and translation TTA" if source.get("translate") else "flip TTA"
    how = [x for x, on in (("its weight average", source.get("ema")), (tta, source.get("tta")),
                           (f"as complete after {source.get('epochs')} epochs, before its unfinished "
                            "extension", source.get("epochs"))) if on]
    return f"run {source['run']}" + "".join(f", {x}" for x in how)


def measured(source):
    """What the source's run measured and trained on, in words ("" for a weights file): so a run
    trained on a few images is seen for what it is before its answers are read."""
    acc, tested, trained = (source.get(k) for k in ("test_accuracy", "test_images", "train_images"))
    if not isinstance(acc, (int, float)):
        return ""
    parts = [f"{acc:.2f}% test accuracy" + (f" on {tested:,} images" if isinstance(tested, int) else "")]
    if isinstance(trained, int):
        parts.append(f"trained on {trained:,} images" + (f" of {source['dataset']}" if source.get("dataset") else ""))
    return ", ".join(parts)
