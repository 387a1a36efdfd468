"""Speed benchmarks: each comparison measured side by side in one process.

    python benchmark.py devices --model large     # training images/s per device, speed-up vs CPU
    python benchmark.py pipeline                  # our on-device input pipeline vs a DataLoader
    python benchmark.py overhead                  # training through the pipeline vs batches in memory
    python benchmark.py small                     # train_small.py's setting vs the tutorial's loop:
                                                  #   speed, then each net's test accuracy
    python benchmark.py precision                 # ResNet-18: fp32 vs bf16 autocast, channels-last
    python benchmark.py floor --device cuda       # time per step against the chip's FLOP floor
                                                  #   (fp32 on CUDA: the TF32 rate where cuDNN uses it)
    python benchmark.py floor --device cpu        #   on a CPU: at its fp32 and bf16 matrix rates
    python benchmark.py threads                   # each model: default threads vs 1, idle and with one
                                                  #   other process spinning a CPU
    python benchmark.py compile --steps 3         # ResNet-18: torch.compile vs eager, compile time, payback
    python benchmark.py flops                     # each network's training and forward FLOP per image
    python benchmark.py all                       # all but floor, threads, compile and flops

Every rate is taken after warm-up, with the device synchronised before each
reading of ``time.perf_counter``.  Each benchmark writes
``<out>/<timestamp>-bench-<name>/run_log.json``; the run ends with every ratio
next to its target.  The reference pipelines are what the results document
compares against: torchvision-style datasets (a PIL image per item, torchvision
transforms) through ``torch.utils.data.DataLoader``.
"""
import cli  # first, so that a Ctrl-C while torch loads ends quietly
cli.quiet_interrupt_while_loading()
import argparse
import itertools
import math
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch import nn

import compute
import data
import engine
import graphs
import hwdna
import recipes
import runs
from cli import Parser, nonnegative_int, positive_int
from models import build_model

BENCHMARKS = ("devices", "pipeline", "overhead", "small", "precision")   # "all"
EXTRA = ("floor", "threads", "compile", "flops")             # asked for by name
DEVICE_KINDS = ("cpu", "mps", "cuda")
DEFAULT_MODEL = {"devices": "large", "precision": "resnet18", "compile": "resnet18"}
# overhead: one epoch; small: --epochs; threads: THREAD_STEPS
DEFAULT_STEPS = {"devices": 100, "precision": 20, "floor": 20, "compile": 5, "threads": 20}
# threads: timed steps per model and cell, about as long for each (on 2 AVX2 cores: seconds).
THREAD_STEPS = {"small": 200, "large": 20, "resnet18": 2}
SPINNER_START_S = 0.5                               # the spinning process's start, before the clock runs
# On CUDA a step of ResNet-18 takes milliseconds: 20 steps would time about 50 ms.
CUDA_STEPS = {"precision": 300, "floor": 300}
FLOOR_MODELS = ("resnet18", "large")
MATMUL_SIDE = {"cpu": 1024, "mps": 4096, "cuda": 8192}   # a square product large enough to run at speed
PIPELINE_BATCH = 64
LOG_EVERY = recipes.Config.log_every                # the engine reads the loss every this many steps
# Precision variants: name -> (--precision value, channels-last, the one-program step of
# --cuda-graph (graphs.GraphStep: captured on CUDA, run without capture elsewhere)).
PLAIN_VARIANTS = {"fp32": ("fp32", False), "fp32-cl": ("fp32", True), "bf16": ("bf16", False),
                  "bf16-cl": ("bf16", True), "fp16": ("fp16", False), "fp16-cl": ("fp16", True)}
VARIANTS = {**{k: (*v, False) for k, v in PLAIN_VARIANTS.items()},
            **{f"{k}-graph": (*v, True) for k, v in PLAIN_VARIANTS.items() if v[0] != "fp16"}}
DEFAULT_VARIANTS = "fp32,fp32-cl,bf16,bf16-cl"
CUDA_VARIANTS = DEFAULT_VARIANTS + ",fp32-graph,fp32-cl-graph,bf16-graph,bf16-cl-graph"
TARGETS = {                                         # ratio -> (comparison, target)
    "pipeline_speedup": (">=", 20.0),
    "pipeline_overhead": ("<=", 1.03),
    "augment_cost": ("<=", 1.02),
    "small_speedup": (">=", 2.5),
}


# ---------------------------------------------------------------- measuring

class Clock:
    """Seconds between two readings of time.perf_counter, each after synchronising ``device``."""

    def __init__(self, device):
        self.device = device
        self.seconds = None

    def __enter__(self):
        compute.synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        compute.synchronize(self.device)
        self.seconds = time.perf_counter() - self.start


class Trainer:
    """One model and its SGD optimizer, stepped exactly as engine.train steps them."""

    def __init__(self, model, device, seed, lr=0.001, momentum=0.9, dtype=None, channels_last=False,
                 graph=False, compile=False):
        torch.manual_seed(seed)                     # every variant starts from the same weights
        self.model = build_model(model).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.device, self.dtype = device, dtype
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        self.graph = (graphs.GraphStep(self.model, self.optimizer, None, recipes.Config(lr=lr, momentum=momentum),
                                       dtype) if graph else None)
        # As engine.set_up compiles: the model's forward (and, through AOTAutograd, its backward).
        self.step_model = torch.compile(self.model) if compile else self.model

    def step(self, x, y):
        if self.graph is not None:
            return self.graph.step(x, y)
        return engine.train_step(self.step_model, self.optimizer, self.scaler, x, y, self.dtype)


def train_steps(trainer, batches, n, log_every=LOG_EVERY):
    """``n`` steps of the engine's loop: keep each loss on the device, read the mean every log_every.

    Returns the number of images trained on.
    """
    losses = []                                      # per-step 0-d losses, on the device
    images = 0
    for b in range(1, n + 1):
        x, y = next(batches)
        losses.append(trainer.step(x, y))
        images += len(y)
        if b % log_every == 0:
            torch.stack(losses[b - log_every:b]).float().mean().item()   # the engine's log line, unprinted
    return images


def pipeline_batches(ds, batch_size, generator, augment):
    """The training pipeline without end: epoch after epoch of DeviceCIFAR10.train_batches."""
    while True:
        yield from ds.train_batches(batch_size, generator, augment)


def loader_batches(loader, device):
    """A DataLoader without end, each batch copied to ``device`` as a training loop would."""
    while True:
        for x, y in loader:
            yield x.to(device), y.to(device)


class ReferenceCIFAR10(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10 over arrays already read: a PIL image per item.

    torchvision's class checks the official md5 sums and refuses any other copy;
    this one keeps its storage (a transposed (N, 32, 32, 3) uint8 view, labels as
    a list of ints) and its ``__getitem__``.
    """

    def __init__(self, images, labels, transform=None):
        self.data = images.transpose((0, 2, 3, 1))   # (N, 3, 32, 32) -> (N, 32, 32, 3), HWC
        self.targets = [int(v) for v in labels]
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = self.data[index], self.targets[index]
        img = Image.fromarray(img)
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def reference_loader(arrays, transform, batch_size, num_workers, seed):
    dataset = ReferenceCIFAR10(arrays[0], arrays[1], transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed))


def tutorial_test(net, arrays, transform, device, batch_size=4):
    """The tutorial's test loop: accuracy (%) of ``net`` on the test images, as its transform sees them."""
    dataset = ReferenceCIFAR10(arrays[2], arrays[3], transform)
    testloader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    correct = total = 0
    net.eval()
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images.to(device))
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted.cpu() == labels).sum().item()
    net.train()
    return round(100.0 * correct / total, 2)


def tutorial_loop(net, trainloader, device, steps):
    """The PyTorch CIFAR-10 tutorial's training loop, stopped after ``steps`` mini-batches.

    Returns the number of images trained on.
    """
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    done = images = 0
    while done < steps:                              # for epoch in range(2)
        running_loss = 0.0
        for i, batch in enumerate(trainloader, 0):
            inputs, labels = batch[0].to(device), batch[1].to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 2000 == 1999:                     # the tutorial prints running_loss / 2000 here
                running_loss = 0.0
            done += 1
            images += len(labels)
            if done == steps:
                break
    return images


# ---------------------------------------------------------------- reporting

class Ratio:
    """A measured ratio, and the target it is held to (if any)."""

    def __init__(self, label, value, key=None):
        self.label, self.value = label, value
        self.op, self.target = TARGETS.get(key, (None, None))

    def met(self):
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def line(self):
        v = self.value
        text = f"{self.label}: {v:.1f}x" if v >= 10 else f"{self.label}: {v:.2f}x" if v >= 2 \
            else f"{self.label}: {v:.3f}x"
        if self.op is not None:
            text += f" (target {self.op} {self.target:g}x: {'met' if self.met() else 'not met'})"
        return text


def target_text(key):
    op, target = TARGETS[key]
    return f"{op} {target:g}"


def rate_line(label, images, seconds, steps=None):
    per_step = f", {steps / seconds:,.2f} steps/s" if steps else ""
    return f"{label}: {images:,} images in {seconds:.2f} s = {images / seconds:,.0f} images/s{per_step}"


# ---------------------------------------------------------------- the benchmarks

class Session:
    """What every benchmark of one invocation shares: flags, the arrays, the dataset's identity."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.folder = data.locate(args.data_dir, allow_download=args.download)
        self.arrays = data.load_arrays(self.folder)   # x_train, y_train, x_test, y_test (numpy)
        self.dataset = data.fingerprint(self.folder, self.arrays) | {
            "folder": hwdna.recorded(self.folder), "train_images": len(self.arrays[1]),
            "test_images": len(self.arrays[3])}
        self.ratios = []
        self.load_start = self.clock = None

    def start(self):
        """The start of one benchmark: its time; the machine's load and CPU clock before its work."""
        self.load_start, self.clock = hwdna.load_average(), hwdna.cpu_clock()
        return hwdna.now()

    def add_ratio(self, ratio):
        """Keep ``ratio`` for the closing summary and print it now; return it."""
        self.ratios.append(ratio)
        print(ratio.line())
        return ratio

    def device_data(self, device, memory_format=torch.contiguous_format):
        return data.DeviceCIFAR10(*self.arrays, device, memory_format=memory_format)

    def record(self, name, started, model, batch_size, device, settings, results):
        run_dir = runs.new_run_dir(self.args.out, f"bench-{name}")
        other = hwdna.other_cpus(self.clock, hwdna.cpu_clock())
        hardware = hwdna.describe(device)
        # As in a training run's log: load_average before the benchmark, load_average_end after it;
        # other_cpus: the CPUs other processes kept busy meanwhile (None where it cannot be read).
        hardware["load_average_end"], hardware["load_average"] = hardware["load_average"], self.load_start
        hardware["other_cpus"] = other
        rec = {
            "kind": "benchmark", "benchmark": name, "run_id": run_dir.name, "status": "complete",
            "model": model, "batch_size": batch_size, "device": device.type,
            "settings": settings | {"deterministic": self.args.deterministic},
            "hardware": hardware, "dataset": self.dataset, "git": hwdna.git_commit(),
            "started": started, "finished": hwdna.now(), "results": results,
        }
        runs.write_log(run_dir, rec)
        print(f"record: {hwdna.relative(run_dir / 'run_log.json')}", flush=True)
        return rec


def bench_devices(s):
    """Training images/s of one model through the real pipeline on each device; speed-up vs CPU."""
    a = s.args
    model = a.model or DEFAULT_MODEL["devices"]
    cfg = recipes.config_for(model)
    batch = a.batch_size or cfg.batch_size
    steps = a.steps or DEFAULT_STEPS["devices"]
    kinds = list(a.devices)
    if "cpu" not in kinds:
        print("note: cpu added to --devices; it is the baseline of every speed-up")
        kinds.insert(0, "cpu")
    started = s.start()
    print(f"== devices: {model}, batch {batch}, {steps} steps after {a.warmup} warm-up, fp32, augmented",
          flush=True)
    rates, skipped = {}, {}
    for kind in DEVICE_KINDS:
        if kind not in kinds:
            continue
        if not compute.available(kind):
            print(f"{kind}: not available here; skipped")
            skipped[kind] = "not available"
            continue
        device = torch.device(kind)
        compute.seed_everything(a.seed, device, a.deterministic)
        ds = s.device_data(device)
        trainer = Trainer(model, device, a.seed)
        batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), augment=True)
        with compute.cpu_settings(cfg.threads, cfg.onednn):       # as the model's script trains
            train_steps(trainer, batches, a.warmup)
            with Clock(device) as clock:
                images = train_steps(trainer, batches, steps)
        rates[kind] = images / clock.seconds
        print(rate_line(kind, images, clock.seconds, steps), flush=True)
        del ds, trainer, batches                    # free this device's memory before the next
    devices = {k: {"images_per_s": r, "speedup_vs_cpu": r / rates["cpu"]} for k, r in rates.items()}
    for k, v in devices.items():
        if k != "cpu":
            s.ratios.append(Ratio(f"{k} vs cpu ({model}, batch {batch})", v["speedup_vs_cpu"]))
            print(s.ratios[-1].line())
    best = next((k for k in ("cuda", "mps") if k in rates), "cpu")
    s.record("devices", started, model, batch, torch.device(best),
             {"steps": steps, "warmup": a.warmup, "devices": kinds, "precision": "fp32",
              "augment": True, "seed": a.seed},
             {"devices": devices, "skipped": skipped, "steps": steps})


def bench_pipeline(s):
    """The input pipeline alone: our on-device epoch vs the DataLoader reference, same images."""
    from torchvision import transforms
    a, device, batch = s.args, s.device, PIPELINE_BATCH
    started = s.start()
    print(f"== pipeline: crop + flip + normalise, batch {batch}, on {device}; reference with "
          f"{a.num_workers} workers", flush=True)
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    gen = compute.data_generator(a.seed)
    for _ in itertools.islice(ds.train_batches(batch, gen, augment=True), max(a.warmup, 1)):
        pass                                        # warm-up: builds one epoch, a few batches
    with Clock(device) as ours:
        ours_images = sum(len(y) for _, y in ds.train_batches(batch, gen, augment=True))
    print(rate_line("ours (DeviceCIFAR10, one epoch)", ours_images, ours.seconds), flush=True)

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(data.MEAN, data.STD)])
    loader = reference_loader(s.arrays, transform, batch, a.num_workers, a.seed)
    batches = loader_batches(loader, device)
    for _ in range(a.warmup):
        next(batches)
    # The workers may already hold a few prefetched batches (2 each); over 10,000 images
    # that flatters the reference by a few per cent, never the other way.
    ref_images = 0
    with Clock(device) as ref:
        while ref_images < a.ref_images:
            ref_images += len(next(batches)[1])
    del batches                                     # stops the workers
    print(rate_line(f"reference (DataLoader, {a.num_workers} workers)", ref_images, ref.seconds),
          flush=True)

    ours_rate, ref_rate = ours_images / ours.seconds, ref_images / ref.seconds
    ratio = s.add_ratio(Ratio("pipeline speed-up", ours_rate / ref_rate, "pipeline_speedup"))
    s.record("pipeline", started, None, batch, device,
             {"warmup_batches": a.warmup, "num_workers": a.num_workers, "ref_images": a.ref_images,
              "seed": a.seed},
             {"ours_images": ours_images, "ours_s": ours.seconds, "ours_images_per_s": ours_rate,
              "reference_images": ref_images, "reference_s": ref.seconds,
              "reference_images_per_s": ref_rate, "speedup": ratio.value,
              "speedup_target": target_text("pipeline_speedup")})


def bench_overhead(s):
    """The wide LeNet's steps through the real pipeline vs on batches already in memory."""
    a, device = s.args, s.device
    model, batch = "large", recipes.config_for("large").batch_size
    started = s.start()
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    per_epoch = ds.num_batches(batch)
    steps = a.steps or per_epoch
    print(f"== overhead: {model}, batch {batch}, {steps} steps ({steps / per_epoch:.2f} epochs) after "
          f"{a.warmup} warm-up, interleaved in segments of {LOG_EVERY} steps, best of {a.repeats}, "
          f"on {device}", flush=True)
    # The augmented pipeline's own batches, built before any clock runs: the in-memory run trains
    # on the very same data (the same arithmetic, so the same speed of it) with no data work left.
    pool = list(itertools.islice(ds.train_batches(batch, compute.data_generator(a.seed), True),
                                 min(steps, per_epoch)))
    # Each timed pipeline run starts an epoch; charge only the fraction of its preparation it uses.
    prep = {}
    for augment in (True, False):
        times = []
        for _ in range(2):
            with Clock(device) as c:
                ds.epoch_tensors(compute.data_generator(a.seed), augment)
            times.append(c.seconds)
        prep[augment] = min(times)
    unused = math.ceil(steps / per_epoch) - steps / per_epoch

    def run(sources):
        """``steps`` steps of each source, interleaved in segments of LOG_EVERY steps in rotating
        order, so that a machine getting faster or slower meanwhile hits every source alike."""
        trainers, batches, seconds = {}, {}, dict.fromkeys(sources, 0.0)
        for source in sources:
            trainers[source] = Trainer(model, device, a.seed)
            train_steps(trainers[source], itertools.cycle(pool), a.warmup)
            batches[source] = (itertools.cycle(pool) if source == "memory" else
                               pipeline_batches(ds, batch, compute.data_generator(a.seed),
                                                augment=source == "augment"))
        for i, done in enumerate(range(0, steps, LOG_EVERY)):
            n = min(LOG_EVERY, steps - done)
            for source in sources[i % len(sources):] + sources[:i % len(sources)]:
                with Clock(device) as c:
                    train_steps(trainers[source], batches[source], n)
                seconds[source] += c.seconds
        for source in sources:
            if source != "memory":
                seconds[source] -= prep[source == "augment"] * unused
        return seconds

    best = {"augment": math.inf, "plain": math.inf, "memory": math.inf}
    for _ in range(a.repeats):
        for source, seconds in run(list(best)).items():
            best[source] = min(best[source], seconds)
    images = sum(len(y) for _, y in itertools.islice(itertools.cycle(pool), steps))
    labels = {"augment": "pipeline, augmented", "plain": "pipeline, no augmentation",
              "memory": "batches in memory"}
    for source, seconds in best.items():
        print(rate_line(labels[source], images, seconds, steps), flush=True)
    print(f"epoch preparation: {prep[True]:.3f} s augmented, {prep[False]:.3f} s plain "
          f"({per_epoch} steps per epoch)")
    overhead = Ratio("pipeline overhead (augmented pipeline / in memory)",
                     best["augment"] / best["memory"], "pipeline_overhead")
    augment = Ratio("augmentation cost (augmented / not)", best["augment"] / best["plain"], "augment_cost")
    for ratio in (overhead, augment):
        s.add_ratio(ratio)
    s.record("overhead", started, model, batch, device,
             {"steps": steps, "warmup": a.warmup, "repeats": a.repeats, "seed": a.seed},
             {"steps": steps, "steps_per_epoch": per_epoch, "images": images,
              "pipeline_s": best["augment"], "no_augment_s": best["plain"], "memory_s": best["memory"],
              "pipeline_images_per_s": images / best["augment"],
              "no_augment_images_per_s": images / best["plain"],
              "memory_images_per_s": images / best["memory"],
              "epoch_prep_s": prep[True], "epoch_prep_no_augment_s": prep[False],
              "pipeline_overhead": overhead.value,
              "pipeline_overhead_target": target_text("pipeline_overhead"),
              "augment_cost": augment.value, "augment_cost_target": target_text("augment_cost")})


def bench_small(s):
    """train_small.py's setting through our loop vs the PyTorch tutorial's DataLoader loop."""
    from torchvision import transforms
    a, device = s.args, s.device
    cfg = recipes.config_for("small")
    model, batch = cfg.model, cfg.batch_size
    lr, momentum = cfg.lr, cfg.momentum
    started = s.start()
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    per_epoch = ds.num_batches(batch)
    steps = a.steps or a.epochs * per_epoch
    threads, onednn = cfg.threads, cfg.onednn
    default_threads, default_onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    ours_threads = threads or default_threads
    print(f"== small: {model}, batch {batch}, {steps:,} steps ({steps / per_epoch:.2f} epochs) after "
          f"{a.warmup} warm-up, on {device}; ours as train_small.py runs it ({ours_threads} threads, "
          f"oneDNN {'on' if onednn else 'off'}), the tutorial as PyTorch runs it ({default_threads} "
          f"threads, oneDNN {'on' if default_onednn else 'off'}) with {a.num_workers} workers", flush=True)

    with compute.cpu_settings(threads, onednn):
        trainer = Trainer(model, device, a.seed, lr=lr, momentum=momentum)
        train_steps(trainer, pipeline_batches(ds, batch, compute.data_generator(a.seed + 1),
                                              cfg.augment), a.warmup)
        with Clock(device) as ours:                 # a fresh stream: epoch preparation included
            images = train_steps(trainer, pipeline_batches(ds, batch, compute.data_generator(a.seed),
                                                           cfg.augment), steps)
    print(rate_line("ours (DeviceCIFAR10 + engine step)", images, ours.seconds, steps), flush=True)

    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    trainloader = reference_loader(s.arrays, transform, batch, a.num_workers, a.seed)
    torch.manual_seed(a.seed)
    net = build_model(model).to(device)
    tutorial_loop(net, trainloader, device, a.warmup)
    with Clock(device) as tut:                      # worker start-up each epoch, as the tutorial pays it
        tut_images = tutorial_loop(net, trainloader, device, steps)
    print(rate_line(f"tutorial (DataLoader, {a.num_workers} workers)", tut_images, tut.seconds, steps),
          flush=True)

    # Each net on the test images, evaluated the way its own loop would: ours on the device
    # dataset, the tutorial's through its test loader and transform.
    with compute.cpu_settings(threads, onednn):
        ours_accuracy = engine.evaluate(trainer.model, ds)["overall_accuracy"]
    ours_weights = engine.weights_digest(trainer.model)   # with --warmup 0: train_small.py's weights
    tut_accuracy = tutorial_test(net, s.arrays, transform, device, batch)
    trained = f"{steps / per_epoch:.2f} epochs" + (f" + {a.warmup} warm-up steps" if a.warmup else "")
    print(f"test accuracy after {trained}: ours {ours_accuracy:.2f}%, tutorial {tut_accuracy:.2f}% "
          f"({ours_accuracy - tut_accuracy:+.2f} points)", flush=True)

    ours_rate, tut_rate = images / ours.seconds, tut_images / tut.seconds
    ratio = s.add_ratio(Ratio("small LeNet speed-up (ours / tutorial)", ours_rate / tut_rate,
                              "small_speedup"))
    s.record("small", started, model, batch, device,
             {"steps": steps, "warmup": a.warmup, "epochs": a.epochs if not a.steps else None,
              "num_workers": a.num_workers, "lr": lr, "momentum": momentum, "seed": a.seed,
              "ours_threads": ours_threads, "ours_onednn": onednn,
              "tutorial_threads": default_threads, "tutorial_onednn": default_onednn},
             {"steps": steps, "epochs": steps / per_epoch, "images": images,
              "ours_s": ours.seconds, "ours_images_per_s": ours_rate,
              "ours_steps_per_s": steps / ours.seconds,
              "tutorial_s": tut.seconds, "tutorial_images_per_s": tut_rate,
              "tutorial_steps_per_s": steps / tut.seconds,
              "speedup": ratio.value, "speedup_target": target_text("small_speedup"),
              "trained_steps": a.warmup + steps, "ours_accuracy": ours_accuracy,
              "ours_weights_sha256": ours_weights, "tutorial_accuracy": tut_accuracy})


def bench_precision(s):
    """Training steps/s under each precision and memory format; speed-ups against the first."""
    a, device = s.args, s.device
    model = a.model or DEFAULT_MODEL["precision"]
    batch = a.batch_size or recipes.config_for(model).batch_size
    steps = a.steps or default_steps("precision", device)
    started = s.start()
    print(f"== precision: {model}, batch {batch}, {steps} steps after {a.warmup} warm-up, "
          f"augmented, on {device}", flush=True)
    compute.seed_everything(a.seed, device, a.deterministic)
    variants = {}
    for name in a.variants:
        precision, channels_last, graph = VARIANTS[name]
        dtype = compute.amp_dtype(precision, device)
        ds = s.device_data(device, torch.channels_last if channels_last else torch.contiguous_format)
        trainer = Trainer(model, device, a.seed, dtype=dtype, channels_last=channels_last, graph=graph)
        batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), augment=True)
        train_steps(trainer, batches, a.warmup)
        with Clock(device) as c:
            images = train_steps(trainer, batches, steps)
        variants[name] = (steps / c.seconds, images / c.seconds)
        print(rate_line(f"{name:<8}", images, c.seconds, steps), flush=True)
        del trainer, batches
    base = a.variants[0]
    results = {"baseline": base, "steps": steps}
    for name, (step_rate, image_rate) in variants.items():   # flat: <variant>_steps_per_s, ...
        key = name.replace("-", "_")
        results[f"{key}_steps_per_s"] = step_rate
        results[f"{key}_images_per_s"] = image_rate
    for name, (step_rate, _) in variants.items():
        if name != base:
            ratio = s.add_ratio(Ratio(f"{model} {name} vs {base}", step_rate / variants[base][0]))
            results[f"{name.replace('-', '_')}_vs_{base.replace('-', '_')}"] = ratio.value
    s.record("precision", started, model, batch, device,
             {"steps": steps, "warmup": a.warmup, "augment": True, "seed": a.seed,
              "variants": {n: {"precision": VARIANTS[n][0], "channels_last": VARIANTS[n][1],
                               "graph": VARIANTS[n][2]}
                           for n in a.variants}},
             results)


def default_steps(name, device):
    return (CUDA_STEPS if device.type == "cuda" else DEFAULT_STEPS)[name]


def matrix_precision(device, dtype):
    """The arithmetic of the training step's convolutions and matrix products: "bf16" or "fp16"
    under autocast; without it on CUDA "tf32" when cuDNN or cuBLAS may round fp32 operands to
    TF32 (cuDNN's default), else "fp32"."""
    if dtype is not None:
        return compute.precision_name(dtype)
    if device.type == "cuda" and (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32):
        return "tf32"
    return "fp32"


@contextmanager
def tf32_matmuls(on):
    """Matrix products in TF32 within the block when ``on``; the setting restored afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = on or before
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def matrix_rate(device, dtype, repeats=5, tf32=False):
    """FLOP/s of a large square matrix product in ``dtype`` on ``device``: the fastest of ``repeats``;
    with ``tf32``, an fp32 product in TF32, as cuDNN runs fp32 convolutions by default."""
    with tf32_matmuls(tf32):
        return _matrix_rate(device, dtype, repeats)


def _matrix_rate(device, dtype, repeats):
    n = MATMUL_SIDE[device.type]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):                                            # warm-up: kernels chosen, clocks up
        a @ b
    best = math.inf
    for _ in range(repeats):
        with Clock(device) as c:
            a @ b
        best = min(best, c.seconds)
    return 2 * n ** 3 / best


def cpu_matrix_rates(device):
    """{precision: FLOP/s} of the CPU's large fp32 and bf16 matrix products (bf16 runs in hardware
    where the CPU has AMX or AVX512-BF16, emulated elsewhere): the rates a CPU step is held to."""
    return {"fp32": matrix_rate(device, torch.float32), "bf16": matrix_rate(device, torch.bfloat16)}


def floors(flops, seconds_per_step, rates):
    """{precision: the step's floor}: ``flops`` at each matrix rate of ``rates`` ({precision: FLOP/s})
    in seconds, and ``seconds_per_step`` as a multiple of it (1.0 = at the floor)."""
    return {name: {"matrix_flop_per_s": rate, "floor_seconds": flops / rate,
                   "ratio_to_floor": seconds_per_step * rate / flops} for name, rate in rates.items()}


def step_flops(trainer, x, y):
    """FLOPs of one training step (forward and backward) as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        trainer.step(x, y)
    return counter.get_total_flops()


def bench_floor(s):
    """Time per training step against its floor: the step's FLOPs at the chip's matrix-product rate."""
    a, device = s.args, s.device
    dtype = compute.amp_dtype(a.precision, device)
    matrix = matrix_precision(device, dtype)           # the rate the steps' convolutions can reach
    rate = matrix_rate(device, dtype or torch.float32, tf32=matrix == "tf32")
    started = s.start()
    steps = a.steps or default_steps("floor", device)
    kind = compute.precision_name(dtype)
    print(f"== floor: {steps} steps after {a.warmup} warm-up, augmented, on {device}, {kind}; "
          f"matrix product ({MATMUL_SIDE[device.type]}^2, {matrix}): {rate / 1e12:,.3f} TFLOP/s", flush=True)
    cpu_rates = cpu_matrix_rates(device) if device.type == "cpu" else None
    if cpu_rates:
        emulated = "" if hwdna.cpu_bf16_flags() else " (emulated: no bf16 flags)"
        print(f"the CPU's matrix products: fp32 {cpu_rates['fp32'] / 1e9:,.1f} GFLOP/s, "
              f"bf16 {cpu_rates['bf16'] / 1e9:,.1f} GFLOP/s{emulated}", flush=True)
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    results = {"matrix_flop_per_s": rate, "precision": kind, "matrix_precision": matrix, "steps": steps}
    if cpu_rates:
        results["cpu_matrix_flop_per_s"] = cpu_rates
    for model in ([a.model] if a.model else FLOOR_MODELS):
        batch = a.batch_size or recipes.config_for(model).batch_size
        trainer = Trainer(model, device, a.seed, dtype=dtype)
        batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), augment=True)
        train_steps(trainer, batches, a.warmup)
        x, y = next(batches)                 # may be an epoch's last, shorter batch: scale to ``batch``
        flops = step_flops(trainer, x, y) * batch / len(y)
        with Clock(device) as c:
            train_steps(trainer, batches, steps)
        per_step = c.seconds / steps
        floor = flops / rate
        ratio = s.add_ratio(Ratio(f"{model} step time / FLOP floor (batch {batch})", per_step / floor))
        print(f"{model}: {flops / 1e9:,.2f} GFLOP per step of {batch}, {per_step * 1e3:,.2f} ms per step, "
              f"floor {floor * 1e3:,.3f} ms: {ratio.value:,.1f}x the floor "
              f"({flops / per_step / 1e12:,.3f} TFLOP/s achieved)", flush=True)
        results[model] = {"batch_size": batch, "flops_per_step": flops, "seconds_per_step": per_step,
                          "floor_seconds": floor, "ratio_to_floor": ratio.value,
                          "images_per_s": batch / per_step}
        if cpu_rates:                        # the same step against the CPU's fp32 and bf16 rates
            results[model]["cpu_floors"] = cpu_floors = floors(flops, per_step, cpu_rates)
            for name, f in cpu_floors.items():
                s.add_ratio(Ratio(f"{model} {kind} step time / floor at the CPU's {name} matrix rate",
                                  f["ratio_to_floor"]))
        del trainer
        if device.type == "cuda":            # the same steps captured: what the host no longer adds
            graphed = Trainer(model, device, a.seed, dtype=dtype, graph=True)
            train_steps(graphed, batches, a.warmup + graphs.WARMUP_STEPS + 1)
            with Clock(device) as c:
                train_steps(graphed, batches, steps)
            g_step = c.seconds / steps
            g_ratio = s.add_ratio(Ratio(f"{model} captured step time / FLOP floor (batch {batch})", g_step / floor))
            print(f"{model} captured: {g_step * 1e3:,.2f} ms per step: {g_ratio.value:,.1f}x the floor, "
                  f"{per_step / g_step:,.2f}x the plain step", flush=True)
            results[model] |= {"graph_seconds_per_step": g_step, "graph_ratio_to_floor": g_ratio.value,
                               "graph_images_per_s": batch / g_step, "graph_speedup": per_step / g_step}
            del graphed
        del batches
    s.record("floor", started, a.model or ",".join(FLOOR_MODELS), a.batch_size, device,
             {"steps": steps, "warmup": a.warmup, "augment": True, "seed": a.seed, "precision": kind,
              "matrix_side": MATMUL_SIDE[device.type]}, results)


class Spinner:
    """Another process keeping one CPU busy (a Python loop), as a user's other work does: its own
    CPU seconds are read from /proc, so ``other_cpus`` can leave them out."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def cpu_seconds(self):
        """CPU seconds the spinner has used so far (0.0 where /proc cannot be read)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime
        except (OSError, ValueError, IndexError, AttributeError):
            return 0.0

    def stop(self):
        self.process.kill()
        self.process.wait()


@contextmanager
def spinning(on):
    """A ``Spinner`` for the block when ``on`` (started and given a moment to run), else None."""
    spinner = Spinner() if on else None
    try:
        if spinner is not None:
            time.sleep(SPINNER_START_S)
        yield spinner
    finally:
        if spinner is not None:
            spinner.stop()


def timed_steps(trainer, batches, warmup, steps, device, spinner=None):
    """(seconds of ``steps`` steps after ``warmup``, images, the CPUs other processes kept busy
    meanwhile: neither this process nor ``spinner``)."""
    train_steps(trainer, batches, warmup)
    before, spun = hwdna.cpu_clock(), spinner.cpu_seconds() if spinner else 0.0
    with Clock(device) as c:
        images = train_steps(trainer, batches, steps)
    after = hwdna.cpu_clock()
    own = None
    if before is not None and after is not None:
        own = after[2] - before[2] + ((spinner.cpu_seconds() - spun) if spinner else 0.0)
    return c.seconds, images, hwdna.other_cpus(before, after, own)


def thread_cells(rates):
    """The ratios of one model's thread measurements, ``rates``: {(threads label, load): images/s}
    with threads "default" and "1", load "idle" and "busy".  busy/idle per thread count: 1.0 = the
    other process costs nothing; one thread against the default, idle and busy."""
    out = {}
    for threads in ("default", "1"):
        out[f"{threads}_busy_vs_idle"] = rates[(threads, "busy")] / rates[(threads, "idle")]
    for load in ("idle", "busy"):
        out[f"one_vs_default_{load}"] = rates[("1", load)] / rates[("default", load)]
    return out


def bench_threads(s):
    """Each model's training step with PyTorch's default thread count and with one thread, with the
    machine as it is ("idle": no process of ours besides) and with one other process spinning a CPU
    ("busy"), side by side in one run."""
    a, device = s.args, torch.device("cpu")
    models = [a.model] if a.model else list(recipes.RECIPES)
    default = torch.get_num_threads()
    started = s.start()
    print(f"== threads: {', '.join(models)} on the CPU; PyTorch's default of {default} threads vs 1, "
          f"idle and with one other process spinning a CPU; {a.warmup} warm-up steps each", flush=True)
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    results = {"default_threads": default}
    for model in models:
        cfg = recipes.config_for(model)
        batch = a.batch_size or cfg.batch_size
        steps = a.steps or THREAD_STEPS.get(model, DEFAULT_STEPS["threads"])
        rates, cells = {}, {}
        for threads, load in itertools.product(("default", "1"), ("idle", "busy")):
            with compute.cpu_settings(0 if threads == "default" else 1, cfg.onednn), spinning(load == "busy") as sp:
                trainer = Trainer(model, device, a.seed, lr=cfg.lr, momentum=cfg.momentum)
                batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), cfg.augment)
                seconds, images, other = timed_steps(trainer, batches, a.warmup, steps, device, sp)
            rates[(threads, load)] = images / seconds
            cells[f"{threads}_{load}"] = {"threads": default if threads == "default" else 1, "spinner": load == "busy",
                                          "seconds": seconds, "images": images,
                                          "images_per_s": images / seconds, "other_cpus": other}
            del trainer, batches
        ratios = thread_cells(rates)
        results[model] = {"batch_size": batch, "steps": steps, "recipe_threads": cfg.threads,
                          "cells": cells} | ratios
        print(f"{model} (batch {batch}, {steps} steps; images/s, other CPUs busy besides ours in brackets):",
              flush=True)
        for threads in ("default", "1"):
            idle, busy = cells[f"{threads}_idle"], cells[f"{threads}_busy"]
            label = f"{default} threads (default)" if threads == "default" else "1 thread"
            print(f"  {label:<22} idle {idle['images_per_s']:>9,.1f} [{_cpus(idle['other_cpus'])}]   "
                  f"busy {busy['images_per_s']:>9,.1f} [{_cpus(busy['other_cpus'])}]   "
                  f"busy/idle {ratios[threads + '_busy_vs_idle']:.2f}x", flush=True)
        for load in ("idle", "busy"):
            s.add_ratio(Ratio(f"{model} 1 thread vs {default} threads, {load}", ratios[f"one_vs_default_{load}"]))
    s.record("threads", started, a.model or ",".join(models), a.batch_size, device,
             {"warmup": a.warmup, "steps": a.steps, "seed": a.seed, "default_threads": default,
              "spinner": "one other process running a Python loop"}, results)


def _cpus(value):
    return "?" if value is None else f"{value:.2f}"


def bench_compile(s):
    """A model's training step compiled by torch.compile (inductor) against the eager step: the
    compile time, the time per step after it, and the steps a run needs to pay the compile back."""
    a, device = s.args, s.device
    model = a.model or DEFAULT_MODEL["compile"]
    cfg = recipes.config_for(model)
    batch = a.batch_size or cfg.batch_size
    steps = a.steps or DEFAULT_STEPS["compile"]
    run_steps = cfg.epochs * math.ceil(engine.FULL_TRAIN / cfg.batch_size)   # the recipe's run, full set
    started = s.start()
    print(f"== compile: {model}, batch {batch}, {steps} steps after {a.warmup} warm-up, on {device}, "
          f"eager vs torch.compile (inductor); the recipe's run is {run_steps:,} steps", flush=True)
    compute.seed_everything(a.seed, device, a.deterministic)
    ds = s.device_data(device)
    with compute.cpu_settings(cfg.threads, cfg.onednn):
        eager = Trainer(model, device, a.seed, lr=cfg.lr, momentum=cfg.momentum)
        batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), augment=True)
        eager_s, images, eager_other = timed_steps(eager, batches, a.warmup, steps, device)
        print(rate_line("eager   ", images, eager_s, steps), flush=True)
        del eager, batches
        compiled = Trainer(model, device, a.seed, lr=cfg.lr, momentum=cfg.momentum, compile=True)
        batches = pipeline_batches(ds, batch, compute.data_generator(a.seed), augment=True)
        with Clock(device) as first:                 # compiles the forward and the backward
            train_steps(compiled, batches, 1)
        compiled_s, images, compiled_other = timed_steps(compiled, batches, a.warmup, steps, device)
        print(rate_line("compiled", images, compiled_s, steps), flush=True)
    payback = compile_payback(first.seconds, eager_s / steps, compiled_s / steps, run_steps)
    print(f"compile: first step {first.seconds:,.1f} s ({payback['compile_s']:,.1f} s beyond an eager step); "
          + (f"pays back after {payback['payback_steps']:,.0f} steps" if payback["payback_steps"] is not None
             else "the compiled step is no faster: never pays back")
          + f"; over the recipe's {run_steps:,} steps it {'pays' if payback['pays'] else 'does not pay'}",
          flush=True)
    s.add_ratio(Ratio(f"{model} compiled step vs eager (speed)", eager_s / compiled_s))
    s.record("compile", started, model, batch, device,
             {"steps": steps, "warmup": a.warmup, "augment": True, "seed": a.seed, "threads": cfg.threads,
              "backend": "inductor"},
             {"eager_seconds_per_step": eager_s / steps, "eager_images_per_s": images / eager_s,
              "compiled_seconds_per_step": compiled_s / steps, "compiled_images_per_s": images / compiled_s,
              "first_compiled_step_s": first.seconds, "speedup": eager_s / compiled_s,
              "eager_other_cpus": eager_other, "compiled_other_cpus": compiled_other} | payback)


FLOP_BATCH = 8                                      # images counted per network: FLOPs scale with the batch


def forward_flops(model, x):
    """FLOPs of one forward pass of ``model`` in evaluation mode, as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train()
    return counter.get_total_flops()


def bench_flops(s):
    """Each network's compute per image, counted by torch.utils.flop_counter on one augmented batch:
    a training step (forward and backward) and an evaluation pass (forward).  A run's training
    compute is the first times its images times its epochs; report.py plots accuracy against it."""
    a, device = s.args, s.device
    models = [a.model] if a.model else list(recipes.RECIPES)
    started = s.start()
    print(f"== flops: {', '.join(models)}; counted on {FLOP_BATCH} augmented images by "
          "torch.utils.flop_counter.FlopCounterMode (convolutions and matrix products)", flush=True)
    ds = s.device_data(device)
    results = {}
    for model in models:
        trainer = Trainer(model, device, a.seed)
        x, y = next(pipeline_batches(ds, FLOP_BATCH, compute.data_generator(a.seed), augment=True))
        train = step_flops(trainer, x, y) / len(y)
        forward = forward_flops(trainer.model, x) / len(y)
        epoch = train * engine.FULL_TRAIN
        results[model] = {"train_flop_per_image": train, "forward_flop_per_image": forward,
                          "params": sum(p.numel() for p in trainer.model.parameters())}
        print(f"{model}: {train / 1e9:,.4f} GFLOP per training image (forward and backward), "
              f"{forward / 1e9:,.4f} GFLOP per forward pass; {epoch / 1e15:,.4f} PFLOP per epoch of "
              f"{engine.FULL_TRAIN:,} images", flush=True)
        del trainer
    s.record("flops", started, ",".join(models), FLOP_BATCH, device,
             {"images_counted": FLOP_BATCH, "augment": True, "seed": a.seed,
              "counter": "torch.utils.flop_counter.FlopCounterMode"}, results)


def compile_payback(first_step_s, eager_step_s, compiled_step_s, run_steps):
    """What compiling costs and gains over a run of ``run_steps`` steps: the compile time (the first
    compiled step less an eager one), the steps after which the faster steps have paid it back
    (None when the compiled step is no faster), and whether the run is that long."""
    compile_s = max(first_step_s - eager_step_s, 0.0)
    gain = eager_step_s - compiled_step_s
    steps = compile_s / gain if gain > 0 else None
    return {"compile_s": compile_s, "payback_steps": steps, "run_steps": run_steps,
            "pays": steps is not None and steps < run_steps}


RUN = {"floor": bench_floor, "devices": bench_devices, "pipeline": bench_pipeline, "overhead": bench_overhead,
       "small": bench_small, "precision": bench_precision, "threads": bench_threads, "compile": bench_compile,
       "flops": bench_flops}


# ---------------------------------------------------------------- command line

def _names(allowed):
    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"{', '.join(bad) or repr(text)} is not one of {', '.join(allowed)} (comma-separated)")
        return list(dict.fromkeys(names))
    return parse


def build_parser():
    p = Parser(prog="benchmark.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               parents=[cli.shared_parent(device_help="device of pipeline, overhead, small and precision; "
                                                      "auto = MPS, then CUDA, then CPU (default: auto)")])
    a = p.add_argument
    small = recipes.config_for("small")
    a("benchmark", nargs="+", choices=BENCHMARKS + EXTRA + ("all",),
      help="what to measure; several run in the order given, all = " + ", ".join(BENCHMARKS))
    a("--devices", type=_names(DEVICE_KINDS), default=list(DEVICE_KINDS),
      help="devices benchmark: devices to compare, comma-separated; unavailable ones are skipped "
           f"and cpu, the baseline, is always measured (default: {','.join(DEVICE_KINDS)})")
    a("--model", choices=sorted(recipes.RECIPES), default=None,
      help="network of the devices, precision, compile, floor and threads benchmarks "
           f"(default: {DEFAULT_MODEL['devices']} for devices, {DEFAULT_MODEL['precision']} for precision, "
           f"{DEFAULT_MODEL['compile']} for compile, {' and '.join(FLOOR_MODELS)} for floor, every model "
           "for threads, every model for flops)")
    batches = ", ".join(f"{m} {r.config().batch_size}" for m, r in recipes.RECIPES.items())
    a("--batch-size", type=positive_int, default=None,
      help="mini-batch of the devices and precision benchmarks (default: the model's training "
           f"batch: {batches}); pipeline and overhead use {PIPELINE_BATCH}, small uses "
           f"{small.batch_size}")
    a("--steps", type=positive_int, default=None,
      help=f"timed training steps (default: devices {DEFAULT_STEPS['devices']}, overhead one epoch "
           f"(782 at batch 64), small --epochs epochs (12,500 steps each), precision "
           f"{DEFAULT_STEPS['precision']}, floor {DEFAULT_STEPS['floor']}, compile {DEFAULT_STEPS['compile']}, "
           "threads " + ", ".join(f"{m} {n}" for m, n in THREAD_STEPS.items()) + " per cell; on CUDA precision "
           f"{CUDA_STEPS['precision']} and floor {CUDA_STEPS['floor']}); pipeline always "
           "times one epoch")
    a("--warmup", type=nonnegative_int, default=5,
      help="untimed steps (pipeline: batches) before each timed run; small --warmup 0 trains each net "
           "exactly --epochs, as train_small.py does, before their test accuracies (default: 5)")
    a("--epochs", type=positive_int, default=small.epochs,
      help="small benchmark: epochs of train_small.py's setting, unless --steps is given "
           f"(default: {small.epochs})")
    a("--ref-images", type=positive_int, default=10000,
      help="pipeline benchmark: images the reference DataLoader delivers in the timed run (default: 10000)")
    a("--num-workers", type=cli.worker_count, default=min(2, cli.CPU_COUNT),
      help="DataLoader worker processes of the reference pipelines (pipeline, small), at most "
           f"this machine's {cli.CPU_COUNT} CPUs (default: {min(2, cli.CPU_COUNT)})")
    a("--repeats", type=positive_int, default=1,
      help="overhead benchmark: passes over the three variants (interleaved in segments), the fastest kept "
           "(default: 1)")
    a("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
      help="floor benchmark: autocast precision of the steps and the matrix product; auto = bf16 on "
           "CUDA where supported, fp32 elsewhere (default: auto)")
    a("--variants", type=_names(tuple(VARIANTS)), default=None,
      help="precision benchmark: comma-separated, the first is the baseline; -cl = channels-last; "
           "-graph = the step of --cuda-graph (captured on CUDA only); fp16 only on cuda and mps "
           f"(default: {DEFAULT_VARIANTS}; on CUDA {CUDA_VARIANTS})")
    a("--deterministic", action=argparse.BooleanOptionalAction, default=True,
      help="deterministic kernels, as training runs by default; --no-deterministic lets cuDNN autotune "
           "(default: on)")
    a("--out", default="runs", help="folder of run folders; one per benchmark (default: runs)")
    return p


def selected(names):
    """Benchmarks to run, in the order given, 'all' expanded, each once."""
    out = []
    for n in names:
        out.extend(BENCHMARKS if n == "all" else [n])
    return list(dict.fromkeys(out))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)

    def work():
        args = build_parser().parse_args(argv)
        names = selected(args.benchmark)
        device, warning = compute.resolve_device(args.device)
        if warning and set(names) - {"devices"}:
            print(warning, file=sys.stderr)
        if args.variants is None:
            args.variants = (CUDA_VARIANTS if device.type == "cuda" else DEFAULT_VARIANTS).split(",")
        if "precision" in names:
            for name in args.variants:
                compute.amp_dtype(VARIANTS[name][0], device)   # fp16 on a CPU: say so before any work
        runs.check_out(args.out)                    # records are written at the end: fail first
        session = Session(args, device)
        for name in names:
            RUN[name](session)
        if session.ratios:
            print("== summary")
            for ratio in session.ratios:
                print(ratio.line())
        return 0
    return cli.guarded(work, "interrupted; records of finished benchmarks are kept")


if __name__ == "__main__":
    raise SystemExit(main())
