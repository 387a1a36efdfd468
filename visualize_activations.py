"""Feature maps of a trained CIFAR-10 network for one test image: one PNG per layer, an overview, a table.

    python visualize_activations.py                           # latest complete ResNet-18 run in runs/
    python visualize_activations.py --model large --class cat
    python visualize_activations.py --run 20261129-142840-small-e2 --index 7 --layers conv2
    python visualize_activations.py --untrained --layers conv1 layer4 --out maps   # a freshly initialised ResNet-18
    python visualize_activations.py --out activations --run RUN_ID    # rewrite the report's committed maps

Forward hooks on the named layers (``model.get_submodule(name)``) record each
layer's output during one eval-mode forward pass.  For ResNet-18, ``conv1`` is
the stem convolution before batch norm and ReLU, so it has few exact zeros;
``layer1``..``layer4`` end in a ReLU.  For the LeNets, ``conv1`` and ``conv2``
are the convolutions themselves: their outputs before ReLU and pooling.

Written into ``--out``, by default the run's own folder (``runs/RUN_ID/activations/``);
``--weights`` and ``--untrained`` need ``--out``.  The maps committed in ``activations/``
are the report's: only ``--out activations`` rewrites them.  Earlier files of the same
model in that folder are replaced: ``<model>_<layer>.png`` (the input image and every channel's map,
each map scaled to its own range), ``<model>_overview.png`` (every layer: first
eight channels and the channel mean) and ``<model>_stats.json`` (the printed
table, the image and where the weights came from).  Figures are drawn
off-screen with matplotlib's Agg renderer.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

import atomic
import data
import recipes
from compute import resolve_device
from errors import UserError
from trained import chosen_run, describe, load_run, named_weights, untrained_model

DEFAULT_MODEL = "resnet18"
OVERVIEW_CHANNELS = 8


def default_layers(model_name):
    """The layers shown unless --layers says otherwise (ResNet-18 leaves out the 4x4 layer4)."""
    return list(recipes.RECIPES[model_name].shown_layers)


# ---------------------------------------------------------------- weights

# ---------------------------------------------------------------- activations

def valid_layers(model):
    """The names --layers accepts, in one line: the top-level modules, and how to reach deeper ones."""
    names = ", ".join(name for name, _ in model.named_children())
    nested = next((n for n, _ in model.named_modules() if n.count(".") >= 2), None)
    return names + (f", or a module inside them by its dotted path, e.g. {nested}" if nested else "")


def capture(model, x, layers):
    """Run ``x`` through ``model`` in eval mode; return (logits, {layer: its output}).

    x: (B, 3, 32, 32) normalised.  Each output is detached and on ``x``'s device,
    e.g. (B, 64, 32, 32) for ResNet-18 ``layer1``.  Hooks are removed afterwards.
    """
    modules = {}
    for name in layers:
        try:
            modules[name] = model.get_submodule(name) if name else None
        except AttributeError:
            modules[name] = None
        if modules[name] is None or modules[name] is model:
            raise UserError(f"no layer {name!r} in {type(model).__name__}; choose from "
                            f"{valid_layers(model)}")
    acts, calls = {}, {name: 0 for name in layers}

    def hook(name):
        def record(module, inputs, output):
            calls[name] += 1
            acts[name] = output.detach() if isinstance(output, torch.Tensor) else None
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for name in layers:
        if calls[name] != 1:
            raise UserError(f"layer {name!r} runs {calls[name]} times in one forward pass; "
                            "choose a layer that runs once")
        if acts[name] is None:
            raise UserError(f"layer {name!r} does not return a single tensor; choose another layer")
    return logits, acts


def as_maps(t):
    """One image's activation as channel maps: (B, C, H, W) -> (C, H, W); (B, C) -> (C, 1, 1)."""
    t = t[0].float().cpu()
    if t.dim() == 0:
        return t.reshape(1, 1, 1)
    return t.reshape(t.shape[0], 1, 1) if t.dim() == 1 else t.reshape(t.shape[0], t.shape[1], -1)


def layer_stats(acts):
    """One row per layer: channels, resolution, mean activation and fraction of exact zeros."""
    rows = []
    for name, t in acts.items():
        maps = as_maps(t)                                        # (C, H, W) of the first image
        rows.append({"layer": name, "channels": maps.shape[0],
                     "resolution": f"{maps.shape[1]}x{maps.shape[2]}",
                     "mean": round(maps.double().mean().item(), 6),
                     "zeros": round((maps == 0).double().mean().item(), 6)})
    return rows


def format_table(rows):
    """The stats rows as a Markdown table (zeros as a percentage)."""
    w = max([5] + [len(r["layer"]) for r in rows])
    lines = [f"| {'Layer':<{w}} | Channels | Resolution | Mean activation | Zeros  |",
             f"|{'-' * (w + 2)}|----------|------------|-----------------|--------|"]
    for r in rows:
        lines.append(f"| {r['layer']:<{w}} | {r['channels']:>8} | {r['resolution']:<10} | "
                     f"{r['mean']:>15.4f} | {100 * r['zeros']:>5.1f}% |")
    return "\n".join(lines)


def pick_image(labels, index=None, class_name=None):
    """Test-set index: ``index`` as given, or the first image of ``class_name``."""
    n = len(labels)
    if class_name is not None:
        hits = np.flatnonzero(np.asarray(labels) == data.CLASSES.index(class_name))
        if hits.size == 0:
            raise UserError(f"the test set has no {class_name} image")
        return int(hits[0])
    index = 0 if index is None else index
    if not 0 <= index < n:
        raise UserError(f"--index {index} is outside the test set (0 to {n - 1})")
    return index


# ---------------------------------------------------------------- figures

def mosaic(maps, pad=1):
    """Tile (C, H, W) maps, each scaled to [0, 1] on its own, into one 2-D array; gaps are NaN.

    Columns are a power of two (64 maps: 8x8, 128: 16x8, 512: 32x16) so that a
    row starts at a round channel number.  Returns (array, columns).
    """
    c, h, w = maps.shape
    cols = 2 ** math.ceil(math.log2(math.sqrt(c))) if c > 1 else 1
    rows = math.ceil(c / cols)
    flat = maps.reshape(c, -1)
    lo, hi = flat.min(1).values, flat.max(1).values
    scaled = (maps - lo[:, None, None]) / (hi - lo).clamp_min(1e-12)[:, None, None]
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for i in range(c):
        r, k = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = scaled[i].numpy()
    return out, cols


def _caption(image):
    return (f"test image #{image['index']}\ntrue: {image['true']}\n"
            f"predicted: {image['predicted']} ({100 * image['confidence']:.0f}%)")


def layer_figure(model_name, row, maps, picture, image, source):
    """Input image beside a grid of every channel's map of one layer."""
    c, h, w = maps.shape
    tiles, cols = mosaic(maps)
    aspect = tiles.shape[1] / tiles.shape[0]
    fig = Figure(figsize=(12, max(4.0, 9.0 / aspect + 1.6)), dpi=120, layout="constrained")
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 4])
    ax = fig.add_subplot(gs[0])
    ax.imshow(picture, interpolation="nearest")
    ax.set_title(_caption(image), fontsize=10)
    ax.axis("off")
    ax = fig.add_subplot(gs[1])
    ax.imshow(tiles, cmap=colormaps["viridis"].with_extremes(bad="white"), interpolation="nearest")
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(math.ceil(c / cols))],
                  [str(r * cols) for r in range(math.ceil(c / cols))], fontsize=7)
    ax.set_xticks([k * (w + 1) + (w - 1) / 2 for k in range(cols)],
                  [f"+{k}" for k in range(cols)], fontsize=6 if cols > 16 else 8)
    ax.set_ylabel("first channel of the row")
    ax.set_title(f"{c} channels, each map scaled to its own range (dark = its minimum)", fontsize=10)
    fig.suptitle(f"{model_name} {row['layer']}: {c} channels at {h}x{w}  |  mean activation "
                 f"{row['mean']:.3f}, {100 * row['zeros']:.1f}% zeros  |  {source}", fontsize=12)
    return fig


def overview_figure(model_name, rows, acts, picture, image, source):
    """One row per layer: the first channels and the mean over all channels; the input at the left."""
    n = len(rows)
    ncols = OVERVIEW_CHANNELS + 1
    fig = Figure(figsize=(2.2 + 1.3 * ncols, 1.5 * n + 1.3), dpi=120, layout="constrained")
    gs = fig.add_gridspec(n, ncols + 1, width_ratios=[2] + [1] * ncols)
    ax = fig.add_subplot(gs[:min(n, 2), 0])
    ax.imshow(picture, interpolation="nearest")
    ax.set_title(_caption(image), fontsize=9)
    ax.axis("off")
    for i, row in enumerate(rows):
        maps = as_maps(acts[row["layer"]])
        shown = list(range(min(OVERVIEW_CHANNELS, maps.shape[0])))
        for j in range(ncols):
            ax = fig.add_subplot(gs[i, j + 1])
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(shown):
                ax.imshow(maps[j].numpy(), cmap="viridis", interpolation="nearest")
                title = f"ch {j}"
            elif j == ncols - 1:
                ax.imshow(maps.mean(0).numpy(), cmap="magma", interpolation="nearest")
                title = f"mean of {maps.shape[0]}"
            else:
                ax.axis("off")
                continue
            if i == 0 or j == ncols - 1:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{row['layer']}\n{row['channels']}x{row['resolution']}\n"
                              f"{100 * row['zeros']:.0f}% zeros", fontsize=8)
    fig.suptitle(f"{model_name} activations  |  {source}  |  each map scaled to its own range",
                 fontsize=11)
    return fig


# ---------------------------------------------------------------- command line

def layer_names(text):
    """--layers items: names separated by spaces or commas; an empty item is an error."""
    names = [n for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no layer")
    return [n.strip() for n in names]


def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   parents=[cli.shared_parent(seed_help="initialisation seed for --untrained")])
    a = p.add_argument
    a("--model", choices=list(recipes.RECIPES), default=None,
      help=f"network (default: {DEFAULT_MODEL}; with --run, the run's model)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", metavar="RUN_ID",
                     help="a training run's id in --runs, or its folder "
                          "(default: the latest complete run of --model in --runs)")
    src.add_argument("--weights", metavar="PATH",
                     help="a weights.pt (or checkpoint.pt) of --model (default: none; see --run)")
    src.add_argument("--untrained", action="store_true",
                     help="show a freshly initialised network, seeded with --seed (default: off)")
    a("--runs", default="runs", help="folder of training runs (default: runs)")
    a("--layers", nargs="+", metavar="NAME", type=layer_names,
      help="layers to show, by module name, e.g. conv1 layer4 or layer2.1.conv1 (default: "
           + "; ".join(f"{m}: {' '.join(default_layers(m))}" for m in recipes.RECIPES) + ")")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--index", type=int, default=None,
                      help="test image index (default: 0)")
    pick.add_argument("--class", dest="class_name", choices=data.CLASSES,
                      help="use the first test image of this class instead (default: none)")
    a("--out", default=None,
      help="folder for the PNGs and stats; activations/ holds the report's maps (default: the run's "
           "folder's activations/; --weights and --untrained need --out)")
    return p


def resolve_weights(args, device):
    """(model name, network on ``device``, description of where the weights came from, the run's
    folder or None)."""
    if args.untrained:
        model_name = args.model or DEFAULT_MODEL
        return model_name, untrained_model(model_name, args.seed, device), f"untrained, seed {args.seed}", None
    if args.weights is not None:
        model_name, model = named_weights(args.model, args.weights, device)
        return model_name, model, f"weights {args.weights}", None
    model_name = args.model if args.run is not None else args.model or DEFAULT_MODEL
    run_dir, model_name = chosen_run(args.run, args.runs, model_name, others="--run, --weights, or --untrained")
    return model_name, *from_run(model_name, run_dir, device), run_dir


def out_folder(args, run_dir):
    """Where the figures go: --out, else the run's own ``activations/`` (never the report's maps
    in the project's ``activations/`` unless --out names it)."""
    if args.out is not None:
        return Path(args.out)
    if run_dir is None:
        flag = "--untrained" if args.untrained else "--weights"
        raise UserError(f"{flag}: say where the maps go with --out FOLDER "
                        "(--out activations rewrites the report's maps)")
    return Path(run_dir) / "activations"


def from_run(model_name, run_dir, device):
    """(network, description) of a complete run: the weights its accuracy measured.  Flip TTA is
    no part of a feature map, so the description leaves it out."""
    model, source = load_run(model_name, run_dir, device)
    return model, describe(source | {"tta": False})


def visualize(args):
    device, warning = resolve_device(args.device)
    if warning:
        print(warning, file=sys.stderr)
    model_name, model, source, run_dir = resolve_weights(args, device)
    out = out_folder(args, run_dir)
    layers = list(dict.fromkeys(n for names in (args.layers or [default_layers(model_name)])
                                for n in names))

    x_train, y_train, x_test, y_test = data.load_arrays(data.locate(args.data_dir, args.download))
    index = pick_image(y_test, args.index, args.class_name)
    ds = data.DeviceCIFAR10(x_train[:0], y_train[:0], x_test[index:index + 1],
                            y_test[index:index + 1], device)
    logits, acts = capture(model, ds.normalize(ds.x_test), layers)
    probs = torch.softmax(logits[0].float(), 0).cpu()
    pred = int(probs.argmax())
    image = {"index": index, "true": data.CLASSES[int(y_test[index])],
             "predicted": data.CLASSES[pred], "confidence": round(float(probs[pred]), 4)}
    picture = x_test[index].transpose(1, 2, 0)               # (32, 32, 3) uint8

    rows = layer_stats(acts)
    print(f"{model_name} ({source}) on {device}; {_caption(image).replace(chr(10), ', ')}")
    print(format_table(rows))

    written = []
    for row in rows:
        path = out / f"{model_name}_{row['layer']}.png"
        atomic.save_figure(path, layer_figure(model_name, row, as_maps(acts[row["layer"]]),
                                              picture, image, source))
        written.append(path)
    path = out / f"{model_name}_overview.png"
    atomic.save_figure(path, overview_figure(model_name, rows, acts, picture, image, source))
    written.append(path)
    path = out / f"{model_name}_stats.json"
    atomic.write_json(path, {"kind": "activations", "model": model_name, "source": source,
                             "device": device.type, "image": image, "layers": rows,
                             "figures": [p.name for p in written]})
    written.append(path)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def main(argv=None):
    return cli.guarded(lambda: visualize(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
