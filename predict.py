"""Classify your own pictures with a trained CIFAR-10 run: the top classes and their probabilities.

    python predict.py cat.jpg truck.png                     # the newest complete run in runs/
    python predict.py photo.jpg --model resnet18 --top 5    # the newest complete ResNet-18 run
    python predict.py photo.jpg --run 20261129-142840-small-e2 --json
    python predict.py photo.jpg --weights my_weights.pt --model large
    python predict.py photos/ --recursive                   # every image in a folder and its subfolders

Each image (PNG, JPEG or any other format Pillow reads, any size) is turned
upright by its EXIF orientation, converted to RGB and resized to 32x32 with
Pillow's bilinear filter (antialiased when shrinking), then normalised exactly
as training normalises (``data.DeviceCIFAR10.normalize``: pixels scaled to
[0, 1], minus ``data.MEAN``, over ``data.STD``).  A CIFAR-10 network sees
32x32 pictures of one centred object, so a photo cropped around its subject
is classified best.  A run trained with ``--ema`` classifies with its weight
average and one with ``--tta`` by the mean logits of each image and its mirror
image (with ``--tta-translate`` weighted 1/2, plus 1/4 each for both shifted one
pixel up-left and down-right): the way the run measured its accuracy.

A folder stands for the image files in it (by the extensions Pillow knows), in
name order; ``--recursive`` takes its subfolders' too.

Output: a line naming the model, the run, its test accuracy and what it trained
on (a run of a few images or epochs shows as such), then one line per image,
``cat.jpg: cat 62.1%, dog 20.3%, frog 5.0%``; with ``--json``, one JSON
document instead.  A file that cannot be read gets ``error: cannot read FILE
(...)`` on stderr, the other images are still classified, and the exit status
is 2 at the end (0 when every image was classified).
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import json
import os
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import data
from compute import resolve_device
from trained import add_source_flags, describe, measured, trained_model

SIZE = 32                                   # CIFAR-10 images are 32x32
MAX_TOP = len(data.CLASSES)
CHUNK = data.EVAL_BATCH                     # images per forward pass


# ---------------------------------------------------------------- images

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def load_image(path):
    """An image file as uint8 (3, 32, 32) RGB, the layout of CIFAR-10's own images.

    Raises OSError (missing, unreadable, not an image), ValueError (not a regular file, pixels
    with no fixed range) or Pillow's DecompressionBombError/Warning (more pixels than
    ``Image.MAX_IMAGE_PIXELS``, refused before decoding); ``read_images`` turns them into one line each.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):          # a FIFO would block the open
        raise ValueError("not a regular file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            fmt = img.format
            img = ImageOps.exif_transpose(img)             # photos stored sideways come out upright
            img = as_rgb(img, fmt).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()   # (3, 32, 32)


def as_rgb(img, fmt=None):
    """``img`` (read from a file of format ``fmt``) as 8-bit RGB.  16-bit greyscale is scaled
    from 0-65535 (Pillow's own conversion would clip it to 255: white); 32-bit integer and float
    pixels have no fixed range, so they are refused rather than guessed."""
    if img.mode in SIXTEEN_BIT or (img.mode == "I" and fmt == "PNG"):   # older Pillow: PNG's 16 bits as "I"
        grey = np.asarray(img).astype(np.float64) * (255 / 65535)
        return Image.fromarray(grey.round().astype(np.uint8)).convert("RGB")
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise ValueError(f"{kind} pixels have no fixed range; save it with 8 or 16 bits per channel")
    return img.convert("RGB")


def image_extensions():
    """The file name endings Pillow reads (".png", ".jpg", ...), lower case."""
    return {ext.lower() for ext in Image.registered_extensions()}


def image_files(paths, recursive=False):
    """(files to classify, {folder: why nothing in it was}): each path as given, and for a folder its
    image files (by extension) in name order, with ``recursive`` its subfolders' too."""
    extensions = image_extensions()
    files, empty = [], {}
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        found, subfolders = [], False
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            subfolders = subfolders or bool(dirs)
            found += [os.path.join(folder, n) for n in sorted(names)
                      if os.path.splitext(n)[1].lower() in extensions
                      and os.path.isfile(os.path.join(folder, n))]
            if not recursive:
                break
        files += found
        if not found:
            more = "; --recursive looks in its subfolders" if subfolders and not recursive else ""
            empty[path] = f"a folder with no image files{more}"
            print(f"error: nothing to classify in {path} ({empty[path]})", file=sys.stderr)
    return files, empty


def why_unreadable(exc):
    """The reason a file could not be read, in a few words."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image file Pillow can read"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror                                 # "No such file or directory", ...
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_images(paths):
    """(uint8 (B, 3, 32, 32) of the readable files, their paths, {path: reason} of the others)."""
    images, read, failed = [], [], {}
    for path in paths:
        try:
            images.append(load_image(path))
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            # Pillow reports some corrupt files as SyntaxError or EOFError.
            failed[path] = why_unreadable(exc)
            print(f"error: cannot read {path} ({failed[path]})", file=sys.stderr)
            continue
        read.append(path)
    batch = torch.stack(images) if images else torch.zeros(0, 3, SIZE, SIZE, dtype=torch.uint8)
    return batch, read, failed


def normalize(images, device):
    """uint8 (B, 3, 32, 32) -> float32 (B, 3, 32, 32) on ``device``, by training's own normalisation."""
    empty_x, empty_y = np.zeros((0, 3, SIZE, SIZE), np.uint8), np.zeros(0, np.int64)
    pipeline = data.DeviceCIFAR10(empty_x, empty_y, empty_x, empty_y, device)
    return pipeline.normalize(images.to(device))


# ---------------------------------------------------------------- the trained model

# ---------------------------------------------------------------- classification

def classify(model, x, tta=False, translate=False):
    """Class probabilities float32 (B, 10) of normalised images ``x`` (B, 3, 32, 32); with ``tta``
    the softmax of the mean logits of each image and its mirror image, with ``translate`` also of
    both shifted one pixel (weights 1/2, 1/4, 1/4): as the run evaluated (``engine.tta_logits``)."""
    from engine import tta_probabilities
    with torch.no_grad():
        return tta_probabilities(model, x, tta, translate)


def predict(model, images, device, tta=False, translate=False):
    """Probabilities (B, 10) on the CPU of uint8 images (B, 3, 32, 32), ``CHUNK`` images per pass."""
    parts = [classify(model, normalize(images[s:s + CHUNK], device), tta, translate).cpu()
             for s in range(0, len(images), CHUNK)]
    return torch.cat(parts) if parts else torch.zeros(0, len(data.CLASSES))


def top_classes(probs, k):
    """[(class name, probability)] of the ``k`` likeliest classes, likeliest first, of one image."""
    p, i = probs.topk(k)
    return [(data.CLASSES[int(c)], float(v)) for v, c in zip(p, i)]


def format_line(path, top):
    return f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in top)


# ---------------------------------------------------------------- command line

def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files to classify, or folders of them")
    p.add_argument("--recursive", "-r", action="store_true",
                   help="with a folder, classify the images in its subfolders too (default: off)")
    add_source_flags(p, "classify with")
    p.add_argument("--device", choices=cli.DEVICES, default="auto",
                   help="auto = MPS, then CUDA, then CPU; a missing device falls back with a "
                        "warning (default: auto)")
    p.add_argument("--top", type=cli.number(int, f"a whole number from 1 to {MAX_TOP}", low=1, high=MAX_TOP),
                   default=3, help=f"classes shown per image, 1 to {MAX_TOP} (default: 3)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (model, run, and per image its top classes with "
                        "probabilities, or its error) instead of lines (default: off)")
    return p


def run_predict(args):
    device, warning = resolve_device(args.device)
    if warning:
        print(warning, file=sys.stderr)
    model_name, model, source = trained_model(args, device)
    paths, failed_folders = image_files(args.images, args.recursive)
    images, read, failed = read_images(paths)
    failed |= failed_folders
    probs = predict(model, images, device, source["tta"], source["translate"])
    tops = dict(zip(read, (top_classes(p, args.top) for p in probs)))
    if args.json:
        doc = {"kind": "predictions", "model": model_name, **source, "device": device.type,
               "images": [{"file": path, "error": failed[path]} if path in failed else
                          {"file": path, "top": [{"class": name, "probability": p} for name, p in tops[path]]}
                          for path in [*paths, *failed_folders]]}
        print(json.dumps(doc, indent=2))
    else:
        what = measured(source)
        print(f"{model_name} ({describe(source)}) on {device.type}" + (f": {what}" if what else ""))
        for path in read:
            print(format_line(path, tops[path]))
    return 2 if failed else 0


def main(argv=None):
    return cli.guarded(lambda: run_predict(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
