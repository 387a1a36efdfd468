"""The recipes: every fact about each network that more than one entry point needs.

    >>> from recipes import RECIPES, config_for
    >>> config_for("large").batch_size
    64

One entry per model: its training defaults (over ``Config``), display name,
training script, the layers people look at, the results document's accuracy
rows (the seed's figures), and the option set of ``--recipe best`` (PROVISIONAL until an ablation
fixes it).  Training scripts, ``benchmark.py``, ``visualize_activations.py`` and
``report.py`` all read this module; it imports no torch, so the report stays light.
Adding a network is one builder in ``models.MODELS`` and one ``Recipe`` here.
"""
import dataclasses
from dataclasses import dataclass, field

from errors import UserError


@dataclass
class Config:
    """Everything a training run computes with; the run log records it in full."""
    model: str = "small"
    epochs: int = 2
    batch_size: int = 4
    lr: float = 0.001          # fixed learning rate (without OneCycle)
    max_lr: float = 0.1        # OneCycle peak (with OneCycle)
    weight_decay: float = 0.0
    momentum: float = 0.9
    augment: bool = False
    onecycle: bool = False
    seed: int = 1111
    device: str = "auto"       # as requested; the device used is recorded in the run log
    precision: str = "auto"
    channels_last: object = None  # channels-last memory format: None = auto (with auto's bf16 on a CPU)
    compile: bool = False
    deterministic: bool = True  # deterministic kernels where the backend has them (cuDNN: no autotuning)
    cuda_graph: object = None  # the step as one captured CUDA graph: None = auto (engine.GRAPH_BY_DEFAULT)
    threads: int = 0           # CPU threads for tensor ops; 0 = PyTorch's default
    onednn: bool = True        # CPU convolutions through oneDNN (else PyTorch's native kernels)
    log_every: int = 100
    eval_every: int = 1        # epochs between test (and validation) evaluations; 0 = the last only
    checkpoint_every: int = 0  # epochs between checkpoints; 0 = by device (CHECKPOINT_EVERY_BY_DEVICE)
    data_dir: str = "data"
    out: str = "runs"
    download: bool = True
    progress: object = None    # a progress bar: None = when stdout is a terminal
    tensorboard: bool = False  # TensorBoard scalars in the run folder
    # Recipe options; each default is the seed's recipe, so a run that sets none computes
    # exactly what it did before they existed.
    val: int = 0               # training images held out as a validation split
    val_seed: int = 0          # the split's own permutation seed, apart from ``seed``
    subset: int = 0            # train on this many training images, test on as many (a quick run); 0 = all
    label_smoothing: float = 0.0
    nesterov: bool = False
    decay_norm_bias: bool = True   # False: batch-norm and bias parameters get no weight decay
    ema: float = 0.0           # decay of the weights' moving average used for evaluation; 0 = off
    cutout: int = 0            # side in pixels of the square cut out of each training image; 0 = off
    tta: bool = False          # evaluate on the mean logits of each image and its mirror image
    recipe: str = "seed"       # "seed" or "best": which option set of ``Recipe`` the run started from
    # The fast network's options (airbench94's tricks); each default is off, so a run that sets
    # none computes exactly what it did before they existed.
    whiten: int = 0            # first training images whose 2x2 patches set the frozen whitening conv; 0 = off
    whiten_bias_epochs: int = 0  # epochs in which the whitening conv's bias trains (then frozen)
    triangle: bool = False     # lr: linear from 0.2 to 1 x max_lr over 23% of the steps, then down to 0.07 x
    bias_lr_scale: float = 1.0  # lr multiplier of batch-norm parameters (their lr x decay unchanged)
    lookahead: int = 0         # steps between lookahead pulls towards a slow weight average; 0 = off
    alt_flip: bool = False     # with augment: each image's flip drawn once, then reversed every epoch
    crop_padding: int = 4      # augment's random crop: pixels of padding on each side
    crop_reflect: bool = False  # ... padded with the mirrored border instead of zeros
    tta_translate: bool = False  # the final evaluation also on one-pixel shifts (airbench's TTA level 2)
    # The fast network's shape switches (models.ARCHITECTURE), at the network's own design; other
    # networks refuse a change.  For the ablation: each one off in turn.
    dirac: bool = True         # its convs start as the identity on their input channels
    norm_scale: bool = False   # its batch norms learn a scale too
    logit_scale: float = 1 / 9  # its logits are multiplied by this

    def architecture(self):
        """``models.build_model``'s shape switches for ``model`` (none but the fast network's); a
        switch changed for a network without it is a UserError."""
        own = ARCHITECTURE.get(self.model, ())
        changed = [k for k in SWITCHES if k not in own and getattr(self, k) != getattr(Config, k)]
        if changed:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise UserError(f"{flags}: model {self.model!r} has no such switch; drop it (the fast network has)")
        return {k: getattr(self, k) for k in own}


DEFAULT_SEED = Config.seed
# Each network's shape switches (Config fields passed to models.build_model).
ARCHITECTURE = {"fast": ("dirac", "norm_scale", "logit_scale")}
SWITCHES = tuple(dict.fromkeys(k for keys in ARCHITECTURE.values() for k in keys))


def variant_name(ema, tta, translate=False):
    """An evaluation variant's name: "model" or "ema" (the weight average), "+tta" with flip TTA,
    "+tta+translate" with flip TTA on the one-pixel shifts too (--tta-translate)."""
    return ("ema" if ema else "model") + ("+tta" if tta else "") + ("+translate" if tta and translate else "")


# --cuda-graph when not given, per device type.  Off until the H200 measurement
# (``benchmark.py precision --device cuda`` times the graph variants beside the plain ones)
# shows the captured step faster; MPS and CPU have no capture.
GRAPH_BY_DEFAULT = {"cuda": False, "mps": False, "cpu": False}


# --checkpoint-every when not given (0), per device type: every epoch where an epoch takes
# minutes; on CUDA an epoch of ResNet-18 takes seconds and a 90-135 MB checkpoint with fsync
# would be a large share of it.  The last epoch always writes one.
CHECKPOINT_EVERY_BY_DEVICE = {"cuda": 10, "mps": 1, "cpu": 1}


def checkpoint_every(cfg, device_type):
    return cfg.checkpoint_every or CHECKPOINT_EVERY_BY_DEVICE.get(device_type, 1)


def graph_default_text():
    on = [k for k, v in GRAPH_BY_DEFAULT.items() if v]
    return f"on for {', '.join(on)}" if on else "off on every device"
# The recipe options beyond the seed's recipe, and their seed values: a run with any other
# value is a variant of its recipe (an ablation row), not one of the seed's rows.
OPTIONS = {k: getattr(Config, k) for k in ("val", "label_smoothing", "nesterov", "decay_norm_bias",
                                          "ema", "cutout", "tta")}
RECIPE_NAMES = ("seed", "best")
# Weight decay when --weight-decay is not given: the seed's 5e-4 comes with OneCycle.
ONECYCLE_WEIGHT_DECAY = 5e-4


@dataclass(frozen=True)
class Target:
    """One of the seed's rows in results.md: a model, the flags that define it, and the seed's own
    figure, the bar this project's runs of that row are measured against."""
    name: str
    accuracy: float                 # the seed's figure, %
    flags: dict                     # config values a run must have, e.g. {"augment": True}
    epochs: int
    features: str
    shown: str = ""                 # the seed's figure as the seed reports it, when not one number


@dataclass(frozen=True)
class Recipe:
    model: str                      # key of models.MODELS
    name: str                       # display name
    script: str                     # the training script whose defaults these are
    summary: str                    # one line for --help and the report
    defaults: dict                  # Config fields this recipe sets
    feature_layers: tuple           # forward-hook names users look at
    shown_layers: tuple             # the ones visualize_activations.py draws by default
    targets: tuple = field(default=())
    # --recipe best: Config fields over ``defaults``; None = this model has no such set yet.
    best: dict = None
    # (test accuracy %, epochs) that --recipe best aims at: the mean over seeds on the full
    # training set of the official content.
    best_target: tuple = None
    # Why --precision auto trains this model in bf16 + channels-last on a CPU with bf16 in hardware
    # (AMX, AVX512-BF16): the measurement; None = fp32 there until such a measurement exists.
    cpu_bf16: str = None
    # A network with a recipe of its own: (the seed's figure it is measured against, %, as the seed
    # words it), its row at the end of results.md's summary; None = no such row.
    reference: tuple = None

    def config(self, **overrides):
        return dataclasses.replace(Config(), **{"model": self.model, **self.defaults, **overrides})

    def options(self, name):
        """The Config fields ``--recipe name`` sets over the defaults ("seed": none)."""
        if name == "seed":
            return {}
        if self.best is None:
            raise UserError(f"--recipe {name}: model {self.model!r} has no {name!r} recipe yet; "
                            "use --recipe seed and set the options one by one")
        return dict(self.best)

    def command(self, **flags):
        """The command line that trains this recipe with ``flags`` (only those off its defaults)."""
        return " ".join([f"python {self.script}", *self.flags(**flags)])

    def flags(self, **options):
        """The command-line flags that set ``options`` (only those off this recipe's defaults)."""
        cfg, out = self.config(), []
        for key, value in options.items():
            if getattr(cfg, key, None) == value:
                continue
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag if value else f"--no-{key.replace('_', '-')}")
            else:                       # 1.0 as 1, as a user types it (--logit-scale 1)
                out.append(f"{flag} {int(value) if isinstance(value, float) and value.is_integer() else value}")
        return out


# ResNet-18's ``--recipe best`` is PROVISIONAL, not yet chosen by an ablation: every recipe
# option at a value published CIFAR-10 recipes use (label smoothing 0.1, Nesterov, no weight
# decay on batch-norm and bias parameters, EMA 0.999, Cutout 8 px, flip TTA), switched on
# together.  Its ablation on the validation split (README "Recipe options") needs a GPU.
PROVISIONAL_BEST = dict(label_smoothing=0.1, nesterov=True, decay_norm_bias=False, ema=0.999,
                        cutout=8, tta=True)
# The wide LeNet's ``--recipe best``, chosen on the validation split (40 epochs, --val 5000,
# seeds 1111-1113) one change at a time: a change joins when its validation gain over the recipe
# before it, paired by seed, exceeds that recipe's standard deviation over the seeds.  The
# measured gains are in results.md "Recipe Ablation" (generated from the run logs) and the steps
# in README "Recipe options".
LARGE_BEST = dict(label_smoothing=0.2, nesterov=True, tta=True)
# The tutorial LeNet's, chosen the same way (2 epochs, --val 5000, seeds 1111-1113): at its fixed
# learning rate and batch 4 the last weights are noisy, and their average (EMA 0.999) gains most.
SMALL_BEST = dict(label_smoothing=0.1, ema=0.999, tta=True)
# The seed's rows of the wide LeNet: its recipe without, then with augmentation (a fixed rate).
PLAIN, AUGMENTED = {"augment": False, "onecycle": False}, {"augment": True, "onecycle": False}
BEST_NOTES = {"small": "chosen on the validation split, three seeds per option",
              "large": "chosen on the validation split, three seeds per option",
              "resnet18": "PROVISIONAL, not yet chosen by an ablation"}
# The fast network's training, airbench94's hyperparameters translated to this loop.  airbench
# sums the loss over the batch and writes lr and weight decay per 1,024 examples, decoupled from
# Nesterov momentum 0.85: lr 11.5 / (1024 (1 + 1/0.15)) on the summed loss is 1.5 on the mean
# loss at batch 1,024, and its weight decay 0.0153 (same units) is 0.0153 / 11.5 of that lr.
# It trains 9.9 epochs; here 10 (the schedule spans all of them).
FAST_DEFAULTS = dict(
    epochs=10, batch_size=1024, max_lr=1.5, weight_decay=0.0153 / 11.5, momentum=0.85, nesterov=True,
    label_smoothing=0.2, triangle=True, bias_lr_scale=64.0, lookahead=5, whiten=5000,
    whiten_bias_epochs=3, augment=True, crop_padding=2, crop_reflect=True, alt_flip=True, tta=True,
    tta_translate=True, channels_last=True, log_every=10)   # 49 steps an epoch: a loss line every 10

RECIPES = {
    "small": Recipe(
        model="small", name="Small LeNet-style CNN", script="train_small.py",
        summary="the PyTorch-tutorial LeNet (conv 3->6->16, fc 400->120->84->10)",
        # --no-onednn: at batch 4 oneDNN's fixed cost per convolution call outweighs the arithmetic.
        # --threads 1: its arithmetic is too small to share across cores, and a second thread
        # waits on a CPU another process holds (benchmark.py threads: busy, 2 threads run tens of
        # times slower than 1).
        defaults=dict(epochs=2, batch_size=4, lr=0.001, augment=False, onecycle=False, onednn=False,
                      threads=1),
        feature_layers=("conv1", "conv2"), shown_layers=("conv1", "conv2"),
        targets=(Target("Small LeNet-style CNN", 54, {}, 2, "Original tutorial architecture (conv 3→6→16)"),),
        # 56%: what the tutorial LeNet at 2 epochs is asked to reach on the official content.
        best=SMALL_BEST, best_target=(56.0, 2)),
    "large": Recipe(
        model="large", name="Large LeNet-style CNN", script="train_large.py",
        summary="the wide LeNet (conv 3->64->128, fc 3200->512->256->10)",
        defaults=dict(epochs=2, batch_size=64, lr=0.001, augment=False, onecycle=False),
        feature_layers=("conv1", "conv2"), shown_layers=("conv1", "conv2"),
        targets=(
            *(Target("Large LeNet-style CNN", acc, PLAIN, k, "Wider conv layers (64, 128), fixed LR", shown)
              for acc, k, shown in ((39, 2, ""), (63, 10, ""), (72, 20, "71–72%"))),
            *(Target("Large LeNet-style CNN + augmentation", acc, AUGMENTED, k, "+ random crop and horizontal flip")
              for acc, k in ((70, 20), (78, 40))),
            Target("Large LeNet-style CNN + augmentation + OneCycleLR", 85,
                   {"augment": True, "onecycle": True}, 40, "+ OneCycleLR, weight decay"),
        ),
        best=LARGE_BEST | dict(augment=True, onecycle=True), best_target=(87.0, 40)),
    "resnet18": Recipe(
        model="resnet18", name="ResNet-18", script="train_resnet.py",
        summary="the CIFAR ResNet-18 (3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2])",
        defaults=dict(epochs=40, batch_size=128, max_lr=0.1, augment=True, onecycle=True),
        feature_layers=("conv1", "layer1", "layer2", "layer3", "layer4"),
        shown_layers=("conv1", "layer1", "layer2", "layer3"),
        targets=(Target("ResNet-18", 92, {}, 40, "Residual connections, 3x3 stem for 32x32, no max-pool"),),
        best=PROVISIONAL_BEST, best_target=(94.5, 40),
        # benchmark.py precision --device cpu --steps 4 --warmup 1 on a 2-core Xeon with AMX: fp32
        # 63 images/s, bf16 + channels-last 210.  The LeNets have no such measurement: fp32.
        cpu_bf16="ResNet-18 trained 3.3x fp32's images/s in bf16 + channels-last on a 2-core Xeon with AMX"),
    "fast": Recipe(
        model="fast", name="airbench94 network", script="train_fast.py",
        summary="airbench94's net (2x2 patch whitening, conv groups 64/256/256, GELU, logits x 1/9)",
        defaults=FAST_DEFAULTS,
        feature_layers=("whiten", "layer1", "layer2", "layer3"),
        shown_layers=("whiten", "layer1", "layer2", "layer3"),
        reference=(94.0, "94% in 3.29 s"),      # the seed's sources: arXiv 2404.00498, on an A100
        # On a 2-core AMD EPYC with avx512_bf16: benchmark.py precision --model fast --steps 10, fp32 +
        # channels-last 171 images/s, bf16 + channels-last 377; whole runs' median epochs 449 images/s in
        # bf16 (93.87%, seed 1111) against 256 in fp32 (the --no-dirac ablation run).
        cpu_bf16="airbench94's network trained 1.7x fp32's images/s in bf16 on a 2-core AMD EPYC with "
                 "avx512_bf16, both channels-last"),
}


def recipe(model):
    """The recipe of ``model``; a model with no recipe of its own trains on the base Config."""
    if model in RECIPES:
        return RECIPES[model]
    return Recipe(model=model, name=model, script="train_small.py", summary=model,
                  defaults={}, feature_layers=(), shown_layers=())


def config_for(model, **overrides):
    return recipe(model).config(**overrides)


# The fast network's options and shape switches.  With OPTIONS, a run's value off its model's
# recipe makes the run a variant of that recipe (an ablation row), never a sample of it.
FAST_OPTIONS = ("whiten", "whiten_bias_epochs", "triangle", "bias_lr_scale", "lookahead", "alt_flip",
                "crop_padding", "crop_reflect", "tta_translate", *ARCHITECTURE["fast"])

# The fast network's ablation on the validation split: its recipe, then each trick off in turn, as
# train_fast.py flags, each row over 3 seeds with --val 5000 (README, "The fast network";
# tools/gpu_check.py --part fast runs it).  The rows --no-tta and --no-tta-translate train nothing
# of their own: the recipe's runs evaluate their final weights those ways too (engine.evaluations).
FAST_ABLATION = ("", "--whiten 0", "--no-dirac", "--norm-scale", "--logit-scale 1", "--label-smoothing 0",
                 "--no-nesterov", "--no-triangle --onecycle", "--bias-lr-scale 1", "--lookahead 0",
                 "--no-alt-flip")


# A network with a recipe of its own (no seed's rows, like the fast network): its ablation turns its
# tricks off one at a time, so its augmentation and schedule are options there too, not what the
# ablation's runs share.
OWN_SCHEDULE = ("augment", "onecycle")


def own_recipe(model):
    """Whether ``model``'s recipe is its own: a registered network with none of the seed's rows."""
    return model in RECIPES and not RECIPES[model].targets


def off_recipe(cfg):
    """{option: value} of a run's config (a dict) where it leaves its model's recipe, over OPTIONS and
    FAST_OPTIONS; an option the log lacks (it predates the option) counts as the recipe's."""
    model = cfg.get("model")
    base = config_for(model) if model in RECIPES else Config()
    return {k: cfg[k] for k in (*OPTIONS, *FAST_OPTIONS) if k in cfg and cfg[k] != getattr(base, k)}


def targets():
    """Every (recipe, target) pair, in registry order."""
    return [(r, t) for r in RECIPES.values() for t in r.targets]
