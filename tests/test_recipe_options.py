"""The recipe options: a validation split, label smoothing, Nesterov momentum, no weight
decay on batch-norm and bias parameters, a weight average (EMA), Cutout, flip TTA and --recipe.

Each is off by default, and a run with every option at its default computes what it did before
they existed; with them on, runs are recorded, reproducible and resume bit for bit.
"""
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import cli
import data
import engine
import models
import recipes
import runs
import train_large
import train_resnet
import train_small
from conftest import LOSS_LINE, run
from errors import UserError


def only_run(out):
    dirs = [p for p in Path(out).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0], json.loads((dirs[0] / "run_log.json").read_text())


def generator(seed=5):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- data: split and Cutout

def test_validation_split_is_seeded_apart_from_the_training_seed(tiny_data):
    held, kept = data.validation_split(200, 40, 0)
    assert len(held) == 40 and len(kept) == 160
    assert torch.equal(torch.cat([held, kept]).sort().values, torch.arange(200))     # disjoint, complete
    assert torch.equal(held, held.sort().values) and torch.equal(kept, kept.sort().values)
    torch.manual_seed(123)                                   # the training seed's streams play no part
    assert torch.equal(data.validation_split(200, 40, 0)[0], held)
    assert not torch.equal(data.validation_split(200, 40, 1)[0], held)
    with pytest.raises(UserError, match="--val 200 leaves no training images"):
        data.validation_split(200, 200, 0)

    folder = data.locate(tiny_data, False)
    whole = data.DeviceCIFAR10.load(folder, torch.device("cpu"))
    ds = data.DeviceCIFAR10.load(folder, torch.device("cpu"), val=40, val_seed=0)
    assert len(ds) == 160 and ds.num_batches(16) == 10
    assert torch.equal(ds.x_train, whole.x_train[kept]) and torch.equal(ds.y_train, whole.y_train[kept])
    assert torch.equal(ds.x_val, whole.x_train[held]) and torch.equal(ds.y_val, whole.y_train[held])
    # validation takes the test-time path: in order, normalised, no augmentation
    x, y = (torch.cat(t) for t in zip(*ds.eval_batches("val", batch_size=15)))
    assert torch.equal(x, ds.normalize(ds.x_val)) and torch.equal(y, ds.y_val)
    parts = [torch.cat([b[1] for b in ds.eval_batches("val", 15, r, 3)]) for r in range(3)]
    assert torch.equal(torch.cat(parts), ds.y_val)           # the ranks' slices make up the split
    # an epoch trains on the kept images only
    xe, ye = ds.epoch_tensors(generator(), augment=False)
    assert torch.equal(ye.sort().values, ds.y_train.sort().values) and len(xe) == 160


def test_cutout_square_is_placed_exactly_and_clipped_at_the_border():
    x = torch.full((4, 3, 32, 32), 200, dtype=torch.uint8)
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8)
    centres = torch.tensor([[0, 0], [16, 16], [31, 31], [16, 16]])
    out = data.cut_out(x[:3], centres[:3], 8, fill)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8 and (x == 200).all()   # a new tensor
    changed = (out != 200).all(1)                              # (3, 32, 32): every channel filled
    assert [int(c.sum()) for c in changed] == [4 * 4, 8 * 8, 5 * 5]
    assert changed[0, :4, :4].all() and changed[1, 12:20, 12:20].all() and changed[2, 27:, 27:].all()
    assert torch.equal(out[1, :, 12, 12], fill)
    odd = data.cut_out(x[3:], centres[3:], 5, fill)            # an odd side: centred on the pixel
    assert (odd[0, 0] != 200).nonzero().unique(dim=0).tolist() == [[r, c] for r in range(14, 19)
                                                                      for c in range(14, 19)]


def test_cutout_draws_come_after_crop_and_flip_and_change_nothing_else(tiny_data):
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"))
    n = len(ds)
    # the fill is the mean pixel: normalisation makes it (almost) 0, as Cutout on normalised images
    assert ds.normalize(ds._fill.view(1, 3, 1, 1)).abs().max() < 0.005
    for augment in (False, True):                           # the augmented epoch last: kept below
        x0, y0 = ds.epoch_tensors(generator(), augment)
        x1, y1 = ds.epoch_tensors(generator(), augment, cutout=8)
        g = generator()                                       # replay: order, crops, flips, centres
        torch.randperm(n, generator=g)
        if augment:
            torch.randint(0, 9, (n, 2), generator=g)
            torch.randint(0, 2, (n,), generator=g)
        centres = torch.randint(0, 32, (n, 2), generator=g)
        assert torch.equal(y1, y0)
        assert torch.equal(x1, data.cut_out(x0, centres, 8, ds._fill))
        assert (x1 != x0).any()
    # one rank's share of an augmented epoch with Cutout is its places of the whole epoch
    positions = data.share_positions(n, 24, 1, 2)
    xs, ys = ds.epoch_tensors(generator(), True, positions, cutout=8)
    assert torch.equal(xs, x1[positions]) and torch.equal(ys, y1[positions])
    # and the generator moved on by the same draws on every rank
    g1, g2 = generator(), generator()
    ds.epoch_tensors(g1, True, cutout=8)
    ds.epoch_tensors(g2, True, positions, cutout=8)
    assert torch.equal(g1.get_state(), g2.get_state())


# ---------------------------------------------------------------- engine: EMA, param groups, TTA

def test_weight_average_moves_every_float_and_copies_the_step_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = engine.WeightAverage(model, 0.9)
    assert not any(p.requires_grad for p in ema.model.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()
    model(torch.randn(8, 4))                                  # running statistics and the count move
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    assert not torch.equal(before["1.running_mean"], model.state_dict()["1.running_mean"])
    ema.update()
    now = model.state_dict()
    for key, value in ema.model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.9 * before[key] + 0.1 * now[key], atol=1e-6), key
        else:
            assert torch.equal(value, now[key]), key           # num_batches_tracked
    assert int(ema.model.state_dict()["1.num_batches_tracked"]) == 1


def test_no_decay_norm_bias_puts_every_norm_and_bias_parameter_in_a_group_without_decay():
    model = models.build_model("resnet18")
    on = engine.param_groups(model, recipes.Config(decay_norm_bias=True))
    assert list(on) == list(model.parameters())
    groups = engine.param_groups(model, recipes.Config(decay_norm_bias=False))
    exempt = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    exempt |= {id(p) for name, p in model.named_parameters() if name.endswith(".bias")}
    assert {id(p) for p in groups[1]["params"]} == exempt and groups[1]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=0.1, weight_decay=5e-4, nesterov=True, momentum=0.9)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [5e-4, 0.0]


def test_tta_classifies_by_the_image_and_its_mirror(tiny_data):
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"), val=50)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    for split, (x, y) in (("test", (ds.x_test, ds.y_test)), ("val", (ds.x_val, ds.y_val))):
        x = ds.normalize(x)
        with torch.no_grad():
            plain, both = model(x).argmax(1), (model(x) + model(x.flip(3))).argmax(1)
        assert not torch.equal(plain, both)                   # this model tells the two apart
        for tta, pred in ((False, plain), (True, both)):
            result = engine.evaluate(model, ds, split=split, tta=tta)
            assert result["total"] == len(y) and result["correct"] == int((pred == y).sum())
            confusion = torch.zeros(10, 10, dtype=torch.int64).index_put_((y, pred), torch.tensor(1),
                                                                          accumulate=True)
            assert result["confusion"] == confusion.tolist()


# ---------------------------------------------------------------- command line

def test_help_states_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit):
        train_large.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("and train on the rest; the split is a permutation seeded by --val-seed alone",
                   "label smoothing of the cross-entropy loss (default: 0.0)",
                   "Nesterov momentum (default: off)", "exempts them (default: on)",
                   "go to weights_ema.pt; 0 = off (default: 0)", "8-16 is usual; 0 = off (default: 0)",
                   "mirror image (default: off)",
                   "best = chosen on the validation split, three seeds per option: label_smoothing=0.2, "
                   "nesterov=True, tta=True", "(default: seed)", "validation split's permutation (default: 0)"):
        assert phrase in text, phrase
    with pytest.raises(SystemExit):
        train_resnet.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "best = PROVISIONAL, not yet chosen by an ablation" in text and "cutout=8" in text


def config(model, argv):
    args = cli.build_training_parser(model).parse_args(argv)
    return cli.config_from_args(cli.apply_recipe(args, cli.given_flags(model, argv)))


def test_recipe_best_sets_its_options_under_the_flags_given():
    seed = config("large", [])
    assert seed == recipes.config_for("large", weight_decay=0.0) and seed.recipe == "seed"
    best = config("large", ["--recipe", "best", "--label-smoothing", "0.3", "--no-tta"])
    assert best.recipe == "best" and best.label_smoothing == 0.3 and best.tta is False   # the flags win
    for key, value in recipes.RECIPES["large"].best.items():
        if key not in ("label_smoothing", "tta"):
            assert getattr(best, key) == value, key
    assert best.augment and best.onecycle and best.weight_decay == recipes.ONECYCLE_WEIGHT_DECAY
    resnet = config("resnet18", ["--recipe", "best"])
    assert resnet.ema == 0.999 and resnet.label_smoothing == 0.1 and resnet.val == 0
    assert "PROVISIONAL" in Path(recipes.__file__).read_text()


def test_a_recipes_flags_read_as_typed_and_parse_back_to_the_options():
    fast = recipes.RECIPES["fast"]
    options = dict(logit_scale=1.0, label_smoothing=0.0, nesterov=False, weight_decay=5e-4, lookahead=0)
    flags = fast.flags(**options)
    assert flags == ["--logit-scale 1", "--label-smoothing 0", "--no-nesterov", "--weight-decay 0.0005",
                     "--lookahead 0"]
    parsed = config("fast", " ".join(flags).split())
    assert {k: getattr(parsed, k) for k in options} == options


@pytest.mark.parametrize("args, pattern", [
    (["--ema", "1"], r"--ema: 1 is not 0 \(off\) or a decay from 0 to below 1"),
    (["--cutout", "33"], r"--cutout: 33 is not a square side from 0 to 32 pixels"),
    (["--label-smoothing", "1.5"], r"--label-smoothing: 1.5 is not a label smoothing from 0 to 1"),
    (["--val", "-1"], r"--val: -1 is not zero or a positive whole number"),
    (["--recipe", "fast"], r"--recipe: invalid choice: 'fast'"),
    (["--nesterov", "--momentum", "0"], r"--nesterov needs momentum"),
    (["--val", "200"], r"--val 200 leaves no training images: the training files hold 200"),
])
def test_bad_option_values_are_one_line_errors(args, pattern, tiny_data, workdir, capsys):
    code, _, err = run(train_small, capsys, *args, "--data-dir", str(tiny_data), "--out", "runs",
                       "--device", "cpu")
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert not list(workdir.rglob("run_log.json"))


def test_recipe_best_of_a_model_without_one_is_a_one_line_error(tiny_data, workdir, capsys, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "small", dataclasses.replace(recipes.RECIPES["small"], best=None))
    code, _, err = run(train_small, capsys, "--recipe", "best", "--data-dir", str(tiny_data), "--out", "runs",
                       "--device", "cpu")
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and lines == ["error: --recipe best: model 'small' has no 'best' recipe yet; "
                                   "use --recipe seed and set the options one by one"], err
    assert not list(workdir.rglob("run_log.json"))


# ---------------------------------------------------------------- whole runs

def test_options_at_their_defaults_change_nothing(micro_data, workdir, capsys):
    args = ["--epochs", "1", "--augment", "--onecycle", "--batch-size", "16", "--log-every", "2",
            "--data-dir", str(micro_data), "--device", "cpu"]
    defaults = ["--recipe", "seed", "--val", "0", "--val-seed", "0", "--label-smoothing", "0",
                "--no-nesterov", "--decay-norm-bias", "--ema", "0", "--cutout", "0", "--no-tta"]
    outs, logs = [], []
    for name, extra in (("plain", []), ("explicit", defaults)):
        code, out, err = run(train_large, capsys, *args, *extra, "--out", name)
        assert code == 0, err
        outs.append(LOSS_LINE.findall(out))
        logs.append(only_run(workdir / name))
    assert len(outs[0]) == 2 and outs[0] == outs[1]            # 4 batches, every 2nd logged
    assert logs[0][1]["results"]["weights_sha256"] == logs[1][1]["results"]["weights_sha256"]
    assert logs[0][1]["config"] == logs[1][1]["config"] | {"out": "plain"}
    for run_dir, log in logs:
        assert not (run_dir / runs.WEIGHTS_EMA).exists() and log["results"]["val_accuracy"] is None
        assert log["dataset"]["val_images"] == 0 and runs.log_problem(log) is None
        assert log["results"]["evaluations"] is None                 # no split: no ablation figures


class ProbeBN(nn.Module):
    """A tiny network with batch norm and biases: conv, batch norm, global pooling, ``fc``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):                                     # (B, 3, 32, 32)
        x = torch.relu(self.bn1(self.conv1(x))).mean((2, 3))  # (B, 8)
        return self.fc(x)


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(models.MODELS, "probe", ProbeBN)
    monkeypatch.setitem(recipes.RECIPES, "probe", recipes.Recipe(
        model="probe", name="Probe CNN", script="train_large.py", summary="a batch-norm probe",
        defaults=dict(epochs=2, batch_size=20, lr=0.05), feature_layers=("conv1",),
        shown_layers=("conv1",)))


OPTIONS = ["--augment", "--cutout", "8", "--ema", "0.9", "--label-smoothing", "0.1", "--nesterov",
           "--no-decay-norm-bias", "--weight-decay", "5e-4", "--tta", "--val", "40"]


def test_options_on_are_recorded_evaluated_and_resume_bit_for_bit(probe, tiny_data, workdir, capsys):
    common = ["--model", "probe", "--log-every", "2", "--data-dir", str(tiny_data), "--device", "cpu"]
    code, out, err = run(train_large, capsys, *common, *OPTIONS, "--out", "ref")
    assert code == 0, err
    ref_dir, ref = only_run(workdir / "ref")
    cfg = ref["config"]
    assert (cfg["cutout"], cfg["ema"], cfg["label_smoothing"], cfg["nesterov"], cfg["decay_norm_bias"],
            cfg["tta"], cfg["val"], cfg["val_seed"], cfg["recipe"]) == (8, 0.9, 0.1, True, False, True,
                                                                       40, 0, "seed")
    assert ref["dataset"]["train_images"] == 160 and ref["dataset"]["val_images"] == 40
    assert runs.log_problem(ref) is None
    assert runs.log_problem(ref | {"history": [ref["history"][0] | {"val_accuracy": "high"}]})
    # the epoch line and the history carry the validation accuracy next to the test accuracy
    lines = re.findall(r"^epoch \d/2: .*test accuracy ([\d.]+)%, val accuracy ([\d.]+)%", out, re.M)
    assert [(float(t), float(v)) for t, v in lines] == [(h["test_accuracy"], h["val_accuracy"])
                                                        for h in ref["history"]]
    res = ref["results"]
    assert f"Accuracy on the 40 validation images: {res['val_accuracy']:.2f} %" in out
    # the optimizer: Nesterov, and no weight decay for batch norm and biases
    groups = torch.load(ref_dir / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [(g["nesterov"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (True, 5e-4, 2), (True, 0.0, 4)]       # conv1.weight, fc.weight | 2 biases, bn1.weight, bn1.bias
    # what is evaluated is the weight average, with TTA; weights.pt stays the trained model
    trained = torch.load(ref_dir / runs.WEIGHTS, weights_only=True)
    average = torch.load(ref_dir / runs.WEIGHTS_EMA, weights_only=True)
    assert not torch.equal(trained["bn1.running_mean"], average["bn1.running_mean"])
    model = ProbeBN()
    model.load_state_dict(average)
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"), val=40)
    assert engine.evaluate(model, ds, tta=True)["overall_accuracy"] == res["overall_accuracy"]
    assert engine.evaluate(model, ds, split="val", tta=True)["overall_accuracy"] == res["val_accuracy"]
    assert res["weights_ema_sha256"] == engine.weights_digest(model)
    # with --val, every evaluation of the final weights that needs no training is recorded too
    ev = res["evaluations"]
    assert ev["ema+tta"] == {"val": res["val_accuracy"], "test": res["overall_accuracy"]}
    assert ev["ema"]["test"] == engine.evaluate(model, ds)["overall_accuracy"]
    model.load_state_dict(trained)
    for tta, name in ((False, "model"), (True, "model+tta")):
        assert ev[name] == {"val": engine.evaluate(model, ds, split="val", tta=tta)["overall_accuracy"],
                            "test": engine.evaluate(model, ds, tta=tta)["overall_accuracy"]}, name
    assert sorted(ev) == ["ema", "ema+tta", "model", "model+tta"]
    assert f"evaluation model+tta: val {ev['model+tta']['val']:.2f}%, test" in out

    # one epoch, then --resume --epochs 2: the 2-epoch run bit for bit (a fixed rate extends exactly)
    code, _, err = run(train_large, capsys, *common, *OPTIONS, "--epochs", "1", "--out", "cut")
    assert code == 0, err
    cut_dir, _ = only_run(workdir / "cut")
    resume = ["--model", "probe", "--resume", cut_dir.name, "--out", "cut", "--data-dir", str(tiny_data),
              "--device", "cpu"]
    code, _, err = run(train_large, capsys, *resume, "--epochs", "2")
    assert code == 0, err
    resumed = json.loads((cut_dir / "run_log.json").read_text())
    assert resumed["resumes"][0]["after_epoch"] == 1 and resumed["status"] == "complete"
    assert resumed["loss_lines"] == ref["loss_lines"]
    for key in ("weights_sha256", "weights_ema_sha256", "overall_accuracy", "val_accuracy"):
        assert resumed["results"][key] == res[key], key
    assert [(h["test_accuracy"], h["val_accuracy"]) for h in resumed["history"]] == [
        (h["test_accuracy"], h["val_accuracy"]) for h in ref["history"]]
    ema_cut = torch.load(cut_dir / runs.WEIGHTS_EMA, weights_only=True)
    assert all(torch.equal(ema_cut[k], average[k]) for k in average)
    # a resumed run keeps its options
    code, _, err = run(train_large, capsys, *resume, "--cutout", "4")
    assert code == 2 and "--cutout 4 differs from the run's 8; a resumed run keeps it" in err


def test_two_ranks_with_the_options_on_match_one_process(tiny_data, workdir, capsys):
    """Under torchrun (two CPU processes, Gloo) every option is rank-agnostic: the same split on every
    rank, Cutout drawn for the whole epoch, the weight average updated on each rank, TTA in the
    evaluation whose counts are summed.  Tolerances as in test_distributed.py; 200 images, 80 of them
    for validation: 15 steps."""
    from test_distributed import WEIGHT_TOL, max_difference, torchrun, weights
    args = ["--device", "cpu", "--epochs", "1", "--batch-size", "8", "--augment", "--log-every", "5",
            "--threads", "1", "--cutout", "8", "--ema", "0.9", "--val", "80", "--label-smoothing", "0.1",
            "--nesterov", "--tta"]
    proc = torchrun([*args, "--data-dir", str(tiny_data), "--out", "two"], workdir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    two_dir, two = only_run(workdir / "two")
    assert two["distributed"]["world_size"] == 2 and two["dataset"]["val_images"] == 80
    assert out.count("Accuracy on the 80 validation images") == 1
    code, _, err = run(train_small, capsys, *args, "--data-dir", str(tiny_data), "--out", "one")
    assert code == 0, err
    one_dir, one = only_run(workdir / "one")
    assert [l[:2] for l in one["loss_lines"]] == [l[:2] for l in two["loss_lines"]]
    assert max_difference(weights(two_dir), weights(one_dir)) <= WEIGHT_TOL
    average = [torch.load(d / runs.WEIGHTS_EMA, weights_only=True) for d in (two_dir, one_dir)]
    assert max_difference(*average) <= WEIGHT_TOL
    assert two["results"]["val_accuracy"] == one["results"]["val_accuracy"]
