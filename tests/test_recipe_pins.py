"""What the recipe computes, pinned against formulas written out here: the loss with label
smoothing, OneCycle's cosine schedule, the crop and flip of the augmentation, per-class accuracy,
and a OneCycle run of the wide LeNet stopped after its first epoch and resumed, bit for bit.

Each test checks a value the code computes against one the test computes another way, so a
one-line change to the recipe (a dropped argument, a linear anneal, a missing flip) fails here;
``tools/mutate.py`` applies such changes one at a time to check that it does.
"""
import json
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import data
import engine
import graphs
import monitor
import recipes
import train_large
from conftest import LOSS_LINE, make_cifar, run
from distributed import Ranks


# ---------------------------------------------------------------- the loss: label smoothing

@pytest.mark.parametrize("cuda_graph", [False, True])
def test_the_loops_loss_is_label_smoothed_cross_entropy(cuda_graph, tiny_data):
    """With a learning rate of 0 the weights stay put, so every logged loss is the smoothed
    cross-entropy of the same network on that batch, which the test recomputes."""
    cfg = recipes.config_for("small", batch_size=50, lr=0.0, augment=True, label_smoothing=0.2,
                             log_every=1, data_dir=str(tiny_data), device="cpu", cuda_graph=cuda_graph)
    cpu = torch.device("cpu")
    t = engine.set_up(cfg, "train_small.py", Ranks(cpu, devices=["cpu"]))
    assert t.use_graph is cuda_graph
    with torch.no_grad():
        t.model.fc3.weight.mul_(400)         # confident logits: smoothing changes the loss a lot
    t.progress = monitor.Progress(False, cfg.epochs, t.steps, cfg.batch_size)
    replay = torch.Generator().set_state(t.gen.get_state())
    losses, done = engine.train_one_epoch(t, 1, engine.StopFlag())
    assert done == 4 and len(losses) == 4
    with torch.no_grad():
        for loss, (x, y) in zip(losses, t.ds.train_batches(50, replay, augment=True)):
            logits = t.model(x)
            smoothed = F.cross_entropy(logits, y, label_smoothing=0.2)
            assert loss.item() == pytest.approx(smoothed.item(), abs=1e-5)
            assert abs(F.cross_entropy(logits, y).item() - smoothed.item()) > 0.1   # the test tells them apart
    assert [line[2] for line in t.loss_lines] == pytest.approx([l.item() for l in losses], abs=1e-6)


# ---------------------------------------------------------------- OneCycle: 30% warm-up, cosine down

def onecycle_lr(step, total, max_lr=0.1, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    """OneCycle's learning rate at ``step`` (the value set for it) of ``total``, written out:
    cosine from max_lr / 25 up to max_lr over the first 30% of the steps (the peak at step
    0.3 * total - 1), then cosine down to max_lr / 25 / 1e4 at the last step, as torch's
    OneCycleLR documents it with its defaults (div_factor 25, final_div_factor 1e4)."""
    start = max_lr / div_factor
    low = start / final_div_factor
    peak = pct_start * total - 1

    def cosine(a, b, pct):                     # a at pct 0, b at pct 1
        return b + (a - b) / 2 * (1 + math.cos(math.pi * pct))
    if step <= peak:
        return cosine(start, max_lr, step / peak)
    return cosine(max_lr, low, (step - peak) / (total - 1 - peak))


def test_onecycle_is_cosine_with_30_percent_warm_up_at_the_seeds_values():
    """The headline recipe: max_lr 0.1, 40 epochs of the wide LeNet's 782 batches of 64."""
    total = 40 * math.ceil(50_000 / 64)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    sched = graphs.onecycle(opt, 0.1, total)
    checks = {0: 0.1 / 25, total // 10: None, int(0.3 * total) - 1: 0.1, total // 2: None,
              int(0.475 * total): None, total - 1: 0.1 / 25 / 1e4}
    seen = {}
    for k in range(total):
        if k in checks:
            seen[k] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    for k, value in checks.items():
        expected = onecycle_lr(k, total)
        assert seen[k] == pytest.approx(expected, rel=1e-9, abs=1e-12), k
        if value is not None:
            assert expected == pytest.approx(value)
    # mid-anneal the cosine is well away from a straight line between the same ends
    k = int(0.475 * total)                    # a quarter of the way down
    linear = 0.1 + (0.1 / 25 / 1e4 - 0.1) * (k - (0.3 * total - 1)) / (total - 1 - (0.3 * total - 1))
    assert abs(seen[k] - linear) > 0.005


# ---------------------------------------------------------------- augmentation: crop offsets and flips

def coded_images(n):
    """(n, 3, 32, 32) uint8 images whose pixels say where they are: channel 0 holds the row + 1,
    channel 1 the column + 1 (never 0, the padding), channel 2 the image's index % 200 + 1."""
    rows = torch.arange(1, 33).view(32, 1).expand(32, 32)
    cols = torch.arange(1, 33).view(1, 32).expand(32, 32)
    x = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0], x[:, 1] = rows, cols
    x[:, 2] = (torch.arange(n) % 200 + 1).view(n, 1, 1)
    return x


def recover(img):
    """(dy, dx, flipped) of one augmented coded image: the offset of its 32x32 window in the image
    padded by 4 (0-8 each way), read from the pixels; dx of a mirrored image is that of the window
    it mirrors."""
    codes = img[1, 16][img[1, 16] > 0]                     # row 16 is inside the image at every dy
    flipped = bool(codes[0] > codes[1])                    # its column codes run backwards
    plain = img.flip(-1) if flipped else img
    r, c = (plain[0] > 0).nonzero()[0].tolist()            # a pixel of the image, not the padding
    return int(plain[0, r, c]) - 1 - r + 4, int(plain[1, r, c]) - 1 - c + 4, flipped


def test_crops_cover_every_offset_and_half_the_images_flip():
    n = 1800
    x = coded_images(n)
    labels = torch.arange(n) % 10
    ds = data.DeviceCIFAR10(x.numpy(), labels.numpy(), x[:10].numpy(), labels[:10].numpy(), "cpu")
    out, y = ds.epoch_tensors(torch.Generator().manual_seed(1), augment=True)
    padded = F.pad(x, (4,) * 4)
    dys, dxs, flips = [], [], []
    for img, label in zip(out, y):
        dy, dx, flipped = recover(img)
        # its label travelled with it, and it is exactly that window of its image
        index = int(img[2].max()) - 1                      # images with one code are alike
        assert int(label) == index % 10
        window = padded[index, :, dy:dy + 32, dx:dx + 32]
        assert torch.equal(img, window.flip(-1) if flipped else window)
        dys.append(dy)
        dxs.append(dx)
        flips.append(flipped)
    for axis in (dys, dxs):
        counts = torch.bincount(torch.tensor(axis), minlength=9)
        assert len(counts) == 9 and counts.min() > n / 9 * 0.7 and counts.max() < n / 9 * 1.3, counts
        assert sum(axis) / n == pytest.approx(4, abs=0.25)      # centred: no bias up or left
    assert 0.45 < sum(flips) / n < 0.55


def test_mirrored_crops_are_the_crops_mirrored():
    """A flip mirrors the window at the drawn offset (not the window at the mirrored offset)."""
    x = coded_images(9)
    shifts = torch.tensor([[dy, dx] for dy, dx in zip(range(9), (0, 1, 2, 3, 5, 6, 7, 8, 4))])
    plain = data.random_crop_flip(x, shifts, torch.zeros(9, dtype=torch.bool))
    assert torch.equal(data.random_crop_flip(x, shifts, torch.ones(9, dtype=torch.bool)), plain.flip(-1))
    assert [list(recover(img)[:2]) for img in plain] == shifts.tolist()


# ---------------------------------------------------------------- evaluation: per-class accuracy

class Oracle(nn.Module):
    """Predicts the class written in the image: every pixel of channel 0 holds 20 * class + 5."""

    def forward(self, x):                                   # (B, 3, 32, 32) normalised
        pixel = (x[:, 0, 0, 0] * data.STD[0] + data.MEAN[0]) * 255
        return F.one_hot(torch.div(pixel.round(), 20, rounding_mode="floor").long(), 10).float()


# (true class, predicted class) of each test image; truck has no image but is predicted once.
PAIRS = ([(0, 0)] * 3 + [(0, 1)] + [(1, 1), (1, 2), (1, 2)] + [(2, 2)] * 2 + [(3, 5)] + [(4, 4)] * 2
         + [(4, 3)] + [(5, 5), (5, 3)] + [(6, 6)] + [(7, 7)] * 5 + [(7, 9)] + [(8, 0)])
# diagonal / row sum, by hand
PER_CLASS = {"plane": 75.0, "car": 33.33, "bird": 100.0, "cat": 0.0, "deer": 66.67, "dog": 50.0,
             "frog": 100.0, "horse": 83.33, "ship": 0.0, "truck": None}


@pytest.mark.parametrize("tta", [False, True])
def test_per_class_accuracy_is_the_diagonal_over_the_row_sum(tta):
    true = torch.tensor([t for t, _ in PAIRS])
    x = torch.full((len(PAIRS), 3, 32, 32), 0, dtype=torch.uint8)
    x[:, 0] = torch.tensor([20 * p + 5 for _, p in PAIRS], dtype=torch.uint8).view(-1, 1, 1)
    ds = data.DeviceCIFAR10(x[:0].numpy(), true[:0].numpy(), x.numpy(), true.numpy(), "cpu")
    result = engine.evaluate(Oracle(), ds, tta=tta)
    assert result["per_class"] == PER_CLASS
    assert (result["correct"], result["total"], result["overall_accuracy"]) == (15, 23, 65.22)
    confusion = [[0] * 10 for _ in range(10)]
    for t, p in PAIRS:
        confusion[t][p] += 1
    assert result["confusion"] == confusion
    rows = engine.class_table(result["per_class"]).splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["bird", "frog", "horse", "plane", "deer", "dog",
                                                       "car", "cat", "ship", "truck"]
    assert rows[-1] == "| truck | n/a      |"


# ---------------------------------------------------------------- OneCycle: stopped and resumed

def stopped_after_first_epoch(monkeypatch):
    """Make the next run stop after epoch 1 as a Ctrl-C then would: a real SIGINT to this process."""
    real = engine.end_of_epoch

    def end_then_signal(t, epoch, *args, **kwargs):
        out = real(t, epoch, *args, **kwargs)
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out
    monkeypatch.setattr(engine, "end_of_epoch", end_then_signal)


def resumed_matches_uninterrupted(script, args, data_dir, workdir, capsys, monkeypatch):
    """Train ``args`` whole, then stopped after epoch 1 and resumed: return the two run logs after
    checking that the resumed run prints and records the same loss lines and weights."""
    common = [*args, "--data-dir", str(data_dir), "--device", "cpu"]
    code, out, err = run(script, capsys, *common, "--out", "whole")
    assert code == 0, err
    whole_lines = LOSS_LINE.findall(out)
    (whole,) = (workdir / "whole").glob("*/run_log.json")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with monkeypatch.context() as m:
            stopped_after_first_epoch(m)
            code, out, err = run(script, capsys, *common, "--out", "cut")
    finally:
        for s, h in handlers.items():                       # a stopped run leaves both ignored
            signal.signal(s, h)
    assert code == 130 and "interrupted after epoch 1" in err, err
    (cut,) = (workdir / "cut").glob("*/run_log.json")
    assert torch.load(cut.parent / "checkpoint.pt", weights_only=True)["epoch"] == 1
    code, out, err = run(script, capsys, "--resume", cut.parent.name, "--out", "cut",
                         "--data-dir", str(data_dir), "--device", "cpu")
    assert code == 0, err
    assert f"resuming {cut.parent.name} after epoch 1" in out
    assert LOSS_LINE.findall(out) == [l for l in whole_lines if l[0] != "1"] != []
    a, b = (json.loads(p.read_text()) for p in (whole, cut))
    assert b["status"] == "complete" and b["resumes"][0]["after_epoch"] == 1
    assert b["loss_lines"] == a["loss_lines"]
    assert [(h["lr"], h["weights_sha256"]) for h in b["history"]] == [
        (h["lr"], h["weights_sha256"]) for h in a["history"]]
    assert b["results"]["weights_sha256"] == a["results"]["weights_sha256"]
    return a, b


def test_a_onecycle_run_of_the_wide_lenet_resumes_bit_for_bit(tmp_path, workdir, capsys, monkeypatch):
    """The headline recipe (augmentation + OneCycle) on 64 images at batch 16: 4 steps an epoch."""
    cifar = make_cifar(tmp_path / "cifar64", n_train=64, n_test=20)
    args = ["--epochs", "2", "--augment", "--onecycle", "--batch-size", "16", "--log-every", "2"]
    whole, _ = resumed_matches_uninterrupted(train_large, args, cifar, workdir, capsys, monkeypatch)
    # the schedule spans the run: after epoch 1, the rate of step 4 of 8
    assert whole["history"][0]["lr"] == pytest.approx(onecycle_lr(4, 8), rel=1e-9)


# ---------------------------------------------------------------- run logs: a timing taken on a busy machine

def test_busy_is_the_other_cpus_weighted_by_epoch_time(tmp_path):
    """Busy when other processes kept 0.5 CPUs or more busy on average over the training time."""
    import runs

    def run_of(*epochs):
        return runs.Run({"run_id": "r", "hardware": {"cpu_count": 2}, "history": [
            {"other_cpus": other, "epoch_time_s": seconds} for other, seconds in epochs]}, tmp_path / "r")
    light = run_of((0.9, 10.0), (0.3, 30.0))               # (9 + 9) / 40 = 0.45; unweighted 0.6
    assert light.busy() is False and light.busy(1) is True
    assert run_of((0.9, 30.0), (0.3, 10.0)).busy() is True   # (27 + 3) / 40 = 0.75
    assert run_of((0.5, 10.0)).busy() is True and run_of((0.49, 10.0)).busy() is False
