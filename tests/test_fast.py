"""The fast network (airbench94's) and the loop options it trains with: its shape, the whitening
init, Dirac init, the triangular schedule, lookahead, alternating flips, reflected crops and
translation TTA; a rerun with one seed and an interrupted, resumed run are bit-identical."""
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import compute
import data
import engine
import evaluate
import export
import models
import predict
import recipes
import runs
import train_fast
import train_large
import trained
from conftest import LOSS_LINE, make_cifar, run


def only_run(out):
    dirs = [p for p in Path(out).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0], json.loads((dirs[0] / "run_log.json").read_text())


# ---------------------------------------------------------------- the network

def test_shapes_and_frozen_batch_norm_scale():
    m = models.build_model("fast")
    assert models.count_parameters(m) == 1_972_792
    seen = {}
    for name in ("whiten", "layer1", "layer2", "layer3"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, n=name: seen.__setitem__(n, o.shape))
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert seen == {"whiten": (2, 24, 31, 31), "layer1": (2, 64, 15, 15), "layer2": (2, 256, 7, 7),
                    "layer3": (2, 256, 3, 3)}
    norms = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert len(norms) == 6
    for norm in norms:
        assert not norm.weight.requires_grad and torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert norm.bias.requires_grad and norm.momentum == pytest.approx(0.4)
    assert m.fc.bias is None and m.scale == pytest.approx(1 / 9)


def test_convs_start_as_the_identity_on_their_input_channels():
    m = models.build_model("fast")
    for conv in (m.layer1.conv1, m.layer2.conv1, m.layer3.conv2):
        c = conv.in_channels
        x = torch.randn(1, c, 6, 6)
        assert torch.allclose(F.conv2d(x, conv.weight[:c], padding=1), x, atol=1e-6)
        if conv.out_channels > c:
            assert conv.weight[c:].abs().min() > 0           # the rest: PyTorch's random init


def test_logits_are_scaled_down():
    m = models.build_model("fast").eval()
    x = torch.randn(4, 3, 32, 32)
    features = {}
    m.fc.register_forward_hook(lambda mod, i, o: features.__setitem__("fc", o))
    assert torch.allclose(m(x), features["fc"] / 9)


def test_whitening_weights_decorrelate_patches():
    torch.manual_seed(0)
    # Images with strongly correlated channels and neighbouring pixels.
    base = torch.randn(64, 1, 33, 33)
    smooth = (base[..., :-1, :-1] + base[..., 1:, 1:]) / 2                  # (64, 1, 32, 32)
    images = torch.cat([smooth, 0.5 * smooth + 0.1 * torch.randn_like(smooth),
                        torch.randn_like(smooth)], 1)                       # (64, 3, 32, 32)
    w = models.whitening_weights(images, kernel=2, eps=0.0)
    assert w.shape == (24, 3, 2, 2)
    assert torch.equal(w[12:], -w[:12])
    out = F.conv2d(images, w[:12]).permute(1, 0, 2, 3).reshape(12, -1)     # (12, patches)
    covariance = out @ out.T / out.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)
    # Largest eigenvalue first: the first filter's input variance is the largest.
    norms = w[:12].flatten(1).norm(dim=1)
    assert norms[0] == norms.min()
    # eps damps the small directions: their outputs' variance falls below 1.
    damped = F.conv2d(images, models.whitening_weights(images, eps=1.0)[:12]).var()
    assert damped < 0.9


def test_a_run_sets_the_whitening_from_its_training_images(tiny_data):
    cfg = recipes.config_for("fast", whiten=50, data_dir=str(tiny_data), device="cpu")
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"))
    model = models.build_model("fast")
    engine.whiten(model, ds, cfg)
    expected = models.whitening_weights(ds.normalize(ds.x_train[:50]))
    assert torch.equal(model.whiten.weight, expected)
    assert not model.whiten.weight.requires_grad and torch.equal(model.whiten.bias, torch.zeros(24))


# ---------------------------------------------------------------- the loop options

def test_triangle_schedule():
    total = 100
    f = [engine.triangle_factor(k, total) for k in range(total)]
    assert f[0] == pytest.approx(0.2) and f[23] == pytest.approx(1.0) and max(f) == pytest.approx(1.0)
    assert f[-1] == pytest.approx(1 + (0.07 - 1) * 76 / 77)
    assert all(a < b for a, b in zip(f[:23], f[1:24])) and all(a > b for a, b in zip(f[23:], f[24:]))


def test_bias_lr_scale_groups_batch_norm_parameters():
    cfg = recipes.config_for("fast")
    model = models.build_model("fast")
    groups = engine.param_groups(model, cfg)
    norm_params = {id(p) for mod in model.modules() if isinstance(mod, nn.BatchNorm2d)
                   for p in mod.parameters()}
    assert {id(p) for p in groups[-1]["params"]} == norm_params
    assert groups[-1]["lr"] == 1.5 * 64 and groups[-1]["weight_decay"] == pytest.approx(cfg.weight_decay / 64)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # Off: the one group of before, every parameter in the model's order.
    large = models.build_model("large")
    groups = engine.param_groups(large, recipes.config_for("large"))
    assert not isinstance(groups[0] if isinstance(groups, list) else next(iter(groups)), dict)
    assert [id(p) for p in groups] == [id(p) for p in large.parameters()]


def test_lookahead_pulls_back_and_ends_on_the_average():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    look = engine.Lookahead(model, every=2, total=4)
    with torch.no_grad():
        model.weight.fill_(3.0)
    look.after_step(1)                                        # not a multiple of 2: nothing
    assert torch.equal(model.weight, torch.full((1, 2), 3.0))
    look.after_step(2)
    d = 0.95 ** 2 * (2 / 4) ** 3
    expected = 1.0 + (1 - d) * 2.0
    assert torch.allclose(model.weight, torch.full((1, 2), expected))
    assert torch.allclose(look.average.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(10.0)
    look.after_step(4)                                        # the last step: weights = average
    d = 0.95 ** 2
    assert torch.allclose(model.weight, torch.full((1, 2), expected + (1 - d) * (10.0 - expected)))


def test_alternating_flips_reverse_every_image_each_epoch(tiny_data):
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"))
    first = torch.randint(0, 2, (len(ds),), generator=torch.Generator().manual_seed(3)).bool()
    assert torch.equal(data.alternating_flips(first, 1), first)
    assert torch.equal(data.alternating_flips(first, 2), ~first)
    assert torch.equal(data.alternating_flips(first, 3), first)
    for epoch in (1, 2):
        g = torch.Generator().manual_seed(7)
        flips = data.alternating_flips(first, epoch)
        x, y = ds.epoch_tensors(g, True, padding=0, flips=flips)     # no shift: flips alone
        perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(7))
        want = torch.where(flips[perm].view(-1, 1, 1, 1), ds.x_train[perm].flip(-1), ds.x_train[perm])
        assert torch.equal(x, want) and torch.equal(y, ds.y_train[perm])


def test_reflected_crops():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    padded = data.reflect_pad(x, 2)
    assert torch.equal(padded, F.pad(x.float(), (2,) * 4, mode="reflect").to(torch.uint8))
    windows = data.crop_windows(x, 2, reflect=True)
    shifts = torch.tensor([[0, 4], [2, 1]])
    flips = torch.tensor([True, False])
    crops = data.take_crops(windows, torch.arange(2), shifts, flips, 2)
    assert torch.equal(crops[0], padded[0, :, 0:5, 4:9].flip(-1))
    assert torch.equal(crops[1], padded[1, :, 2:7, 1:6])


def test_translation_tta_weights_the_shifted_views():
    model = nn.Sequential(nn.Conv2d(3, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(4, 3, 8, 8)
    p = F.pad(x, (1,) * 4, mode="reflect")
    both = lambda v: model(v) + model(v.flip(3))                          # noqa: E731
    want = 2 * both(x) + both(p[..., :8, :8]) + both(p[..., 2:, 2:])
    assert torch.allclose(engine.tta_logits(model, x, tta=True, translate=True), want)
    assert torch.equal(engine.tta_logits(model, x, tta=True), both(x))
    assert torch.equal(engine.tta_logits(model, x), model(x))


# ---------------------------------------------------------------- whole runs

# 5 steps an epoch, so lookahead (every 5 steps) pulls in both epochs.
FAST_TINY = ["--epochs", "2", "--batch-size", "10", "--whiten", "50", "--whiten-bias-epochs", "1",
             "--log-every", "1", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory):
    """50 training and 20 test images: a whole run of the 2 M-parameter network in seconds."""
    return make_cifar(tmp_path_factory.mktemp("cifar50"), n_train=50, n_test=20)


def test_rerun_and_resume_are_bit_identical(mini_data, workdir, capsys, monkeypatch):
    common = [*FAST_TINY, "--data-dir", str(mini_data)]
    code, out, err = run(train_fast, capsys, *common, "--out", "ref")
    assert code == 0, err
    ref_dir, ref = only_run(workdir / "ref")
    assert ref["model"] == "fast" and ref["params"] == 1_972_792 and ref["status"] == "complete"
    cfg = ref["config"]
    assert (cfg["triangle"], cfg["lookahead"], cfg["alt_flip"], cfg["crop_padding"], cfg["crop_reflect"],
            cfg["tta_translate"], cfg["bias_lr_scale"]) == (True, 5, True, 2, True, True, 64.0)
    assert ref["history"][0]["lr"] != ref["history"][1]["lr"]           # the schedule moves
    ref_lines = LOSS_LINE.findall(out)
    assert len(ref_lines) == 10

    end_of_epoch = engine.end_of_epoch

    def stop_after_first(t, epoch, *args):
        result = end_of_epoch(t, epoch, *args)
        if epoch == 1:
            raise KeyboardInterrupt
        return result
    monkeypatch.setattr(engine, "end_of_epoch", stop_after_first)
    code, out, _ = run(train_fast, capsys, *common, "--out", "cut")
    assert code == 130
    assert LOSS_LINE.findall(out) == ref_lines[:5]                      # the rerun: same losses
    monkeypatch.setattr(engine, "end_of_epoch", end_of_epoch)
    cut_dir, _ = only_run(workdir / "cut")
    code, out, err = run(train_fast, capsys, "--resume", str(cut_dir), "--data-dir", str(mini_data),
                         "--device", "cpu", "--log-every", "1")
    assert code == 0, err
    assert LOSS_LINE.findall(out) == ref_lines[5:]
    resumed = json.loads((cut_dir / "run_log.json").read_text())
    assert resumed["results"]["weights_sha256"] == ref["results"]["weights_sha256"]
    assert resumed["results"]["overall_accuracy"] == ref["results"]["overall_accuracy"]
    state = torch.load(ref_dir / "weights.pt", map_location="cpu", weights_only=True)
    models.build_model("fast").load_state_dict(state)


@pytest.mark.skipif(compute.choose("auto", None, torch.device("cpu"), recipes.RECIPES["fast"].cpu_bf16).dtype
                    is not torch.bfloat16, reason="bf16 is emulated on this CPU (no amx_bf16 or avx512_bf16)")
def test_a_bf16_rerun_on_a_cpu_with_bf16_in_hardware_is_bit_identical(mini_data, workdir, capsys):
    """bf16 autocast on a CPU that computes it (what --precision auto picks there) reruns exactly too."""
    common = [*FAST_TINY, "--epochs", "1", "--data-dir", str(mini_data), "--precision", "bf16", "--eval-every", "0"]
    logs, lines = [], []
    for out in ("a", "b"):
        code, text, err = run(train_fast, capsys, *common, "--out", out)
        assert code == 0, err
        logs.append(only_run(workdir / out)[1])
        lines.append(LOSS_LINE.findall(text))
    assert logs[0]["precision"] == "bf16" and len(lines[0]) == 5 and lines[0] == lines[1]
    assert logs[0]["results"]["weights_sha256"] == logs[1]["results"]["weights_sha256"]


def test_evaluating_the_last_epoch_only_trains_the_same_and_records_the_rest_as_not_evaluated(
        mini_data, workdir, capsys):
    """--eval-every 0 (an ablation run's evaluation at its end only) leaves training bit for bit as it
    was; the epochs before the last record no accuracy, and the run log still reads and reports."""
    common = [*FAST_TINY, "--epochs", "3", "--data-dir", str(mini_data), "--val", "10"]
    outs = {}
    for every in ("1", "0"):
        code, outs[every], err = run(train_fast, capsys, *common, "--out", f"every{every}", "--eval-every", every)
        assert code == 0, err
    (_, each), (run_dir, last) = only_run(workdir / "every1"), only_run(workdir / "every0")
    assert LOSS_LINE.findall(outs["0"]) == LOSS_LINE.findall(outs["1"])
    assert [h["weights_sha256"] for h in last["history"]] == [h["weights_sha256"] for h in each["history"]]
    for key in ("weights_sha256", "overall_accuracy", "val_accuracy", "per_class", "evaluations"):
        assert last["results"][key] == each["results"][key], key
    assert [h["test_accuracy"] is None for h in last["history"]] == [True, True, False]
    assert [h["val_accuracy"] is None and h["per_class"] is None for h in last["history"]] == [True, True, False]
    assert all(h["test_accuracy"] is not None for h in each["history"])
    epochs = re.findall(r"^epoch \d/3: .*$", outs["0"], re.M)
    assert "test accuracy" not in epochs[0] and "eval time" not in epochs[0]
    assert "test accuracy" in epochs[2] and "val accuracy" in epochs[2] and "eval time" in epochs[2]
    assert runs.log_problem(last) is None and runs.read_run(run_dir / runs.LOG).complete


def test_translation_tta_changes_only_the_last_evaluation_and_the_recipes_run_logs_it_both_ways(
        mini_data, workdir, capsys):
    """--no-tta-translate trains bit for bit as the recipe does; a recipe run with --val records its
    final weights evaluated without TTA, with flips ("model+tta": what --no-tta-translate reports)
    and with flips on shifted views too ("model+tta+translate": its headline), so the ablation's
    rows --no-tta and --no-tta-translate need no training of their own."""
    common = [*FAST_TINY, "--epochs", "2", "--data-dir", str(mini_data), "--val", "10", "--eval-every", "0"]
    logs, lines = {}, {}
    for name, flag in (("recipe", "--tta-translate"), ("flips", "--no-tta-translate")):
        code, out, err = run(train_fast, capsys, *common, flag, "--out", name)
        assert code == 0, err
        logs[name] = only_run(workdir / name)[1]["results"]
        lines[name] = LOSS_LINE.findall(out)
    recipe, flips = logs["recipe"], logs["flips"]
    assert lines["recipe"] == lines["flips"] and recipe["weights_sha256"] == flips["weights_sha256"]
    assert sorted(recipe["evaluations"]) == ["model", "model+tta", "model+tta+translate"]
    assert sorted(flips["evaluations"]) == ["model", "model+tta"]
    assert recipe["evaluations"]["model+tta+translate"] == {"val": recipe["val_accuracy"],
                                                            "test": recipe["overall_accuracy"]}
    assert recipe["evaluations"]["model+tta"] == flips["evaluations"]["model+tta"] == {
        "val": flips["val_accuracy"], "test": flips["overall_accuracy"]}
    assert recipe["evaluations"]["model"] == flips["evaluations"]["model"]


def test_the_tools_classify_a_fast_run_as_it_evaluated(mini_data, workdir, capsys, monkeypatch):
    """evaluate.py, predict.py and export.py take a run's translation TTA as they take its flips:
    evaluate.py gives the accuracy the run logged, predict.py the weighted mean of the views."""
    code, _, err = run(train_fast, capsys, *FAST_TINY, "--data-dir", str(mini_data), "--out", "runs")
    assert code == 0, err
    run_dir, log = only_run(workdir / "runs")
    seen, real = [], engine.evaluate

    def spy(*a, **k):
        seen.append((k.get("tta"), k.get("translate")))
        return real(*a, **k)
    monkeypatch.setattr(engine, "evaluate", spy)
    code, out, err = run(evaluate, capsys, "--run", run_dir.name, "--data-dir", str(mini_data), "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"fast (run {run_dir.name}, flip and translation TTA) on cpu, {log['precision']}"
    res = log["results"]
    assert lines[1] == f"Accuracy of the network on the {res['total']} test images: {res['overall_accuracy']:.2f} %"
    assert seen == [(True, True)]
    args = predict.build_parser().parse_args(["x.png", "--run", run_dir.name])
    _, model, source = trained.trained_model(args, torch.device("cpu"))
    assert (source["tta"], source["translate"]) == (True, True)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        def views(v):
            return (model(v) + model(v.flip(3))) / 2
        padded = F.pad(x, (1,) * 4, mode="reflect")
        want = torch.softmax(views(x) / 2 + views(padded[..., :32, :32]) / 4 + views(padded[..., 2:, 2:]) / 4, 1)
    assert torch.allclose(predict.classify(model, x, True, True), want, atol=1e-6)
    assert not torch.allclose(predict.classify(model, x, True), want, atol=1e-4)
    meta = export.manifest("fast", source, "digest", {"dynamic": True})
    assert meta["flip_tta"] and meta["translate_tta"] and "x[..., 2:, 2:]" in meta["translate_tta_how"]


def test_no_tta_evaluates_no_shifted_views_either(mini_data, workdir, capsys, monkeypatch):
    """--no-tta turns translation TTA off too: the run's accuracy is the plain network's."""
    common = [*FAST_TINY, "--data-dir", str(mini_data), "--val", "10", "--eval-every", "0"]
    seen, real = [], engine.evaluate

    def spy(model, ds, dtype=None, ranks=None, split="test", tta=False, translate=False):
        seen.append((split, tta, translate))
        return real(model, ds, dtype, ranks, split, tta, translate)
    monkeypatch.setattr(engine, "evaluate", spy)
    code, _, err = run(train_fast, capsys, *common, "--no-tta", "--out", "runs")
    assert code == 0, err
    # the run's own evaluation first, then the others its evaluations list; no shifts without flips
    assert seen == [(split, tta, translate) for tta, translate in ((False, False), (True, False), (True, True))
                    for split in ("test", "val")]
    _, log = only_run(workdir / "runs")
    res = log["results"]
    assert log["config"]["tta_translate"] and not log["config"]["tta"]
    assert sorted(res["evaluations"]) == ["model", "model+tta", "model+tta+translate"]
    assert res["evaluations"]["model"] == {"val": res["val_accuracy"], "test": res["overall_accuracy"]}
    code, _, err = run(train_fast, capsys, *common, "--out", "recipe")
    assert code == 0, err
    _, recipe = only_run(workdir / "recipe")
    assert recipe["results"]["weights_sha256"] == res["weights_sha256"]
    assert recipe["results"]["evaluations"] == res["evaluations"]


def test_options_off_leave_a_run_unchanged(tiny_data, workdir, capsys):
    """The fast options at their defaults are the wide LeNet's run of before: off means absent."""
    common = ["--epochs", "1", "--batch-size", "50", "--augment", "--data-dir", str(tiny_data), "--threads", "1",
              "--device", "cpu"]
    assert run(train_large, capsys, *common, "--out", "a")[0] == 0
    assert run(train_large, capsys, *common, "--out", "b", "--crop-padding", "4", "--no-alt-flip",
               "--bias-lr-scale", "1", "--lookahead", "0", "--no-triangle")[0] == 0
    assert run(train_large, capsys, *common, "--out", "c", "--crop-padding", "3")[0] == 0
    digest = {k: only_run(workdir / k)[1]["results"]["weights_sha256"] for k in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]


@pytest.mark.parametrize("args, pattern", [
    (["--model", "large", "--whiten", "10"], r"--whiten: model 'large' has no whitening layer"),
    (["--onecycle"], r"--triangle and --onecycle are two schedules"),
    (["--no-augment"], r"--alt-flip alternates --augment's flips"),
    (["--crop-padding", "20"], r"--crop-padding: 20 is not a padding from 0 to 16 pixels"),
])
def test_bad_combinations_get_one_line(args, pattern, tiny_data, workdir, capsys):
    code, _, err = run(train_fast, capsys, *args, "--data-dir", str(tiny_data), "--device", "cpu",
                       "--out", "runs")
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), err
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_shape_switches_change_only_what_they_name():
    torch.manual_seed(0)
    own = models.build_model("fast", **recipes.config_for("fast").architecture())
    conv = own.layer2.conv1.weight                                   # (256, 64, 3, 3)
    assert torch.equal(conv[:64, :, 1, 1], torch.eye(64)) and not own.layer1.norm1.weight.requires_grad
    torch.manual_seed(0)
    plain = models.build_model("fast", dirac=False, norm_scale=True, logit_scale=1.0)
    assert not torch.equal(plain.layer2.conv1.weight[:64, :, 1, 1], torch.eye(64))
    assert all(m.weight.requires_grad for m in plain.modules() if isinstance(m, models.ScaleFreeBatchNorm))
    x = torch.randn(2, 3, 32, 32)
    plain.load_state_dict(own.state_dict())                          # same parameters, logits x 9
    own.eval(), plain.eval()
    assert torch.allclose(plain(x), own(x) * 9, atol=1e-5)
    assert sum(p.numel() for p in plain.parameters()) == 1_972_792


def test_shape_switches_are_refused_for_a_network_without_them(tiny_data, capsys):
    code = train_large.main(["--no-dirac", "--logit-scale", "1", "--data-dir", str(tiny_data), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        "error: --dirac, --logit-scale: model 'large' has no such switch; drop it (the fast network has)"]
