"""visualize_activations.py: hooks, statistics, figures, and the command line on tiny data."""
import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import data
import visualize_activations as va
from conftest import ROOT
from errors import UserError
from models import build_model
from recipes import RECIPES


def run_main(capsys, *argv):
    code = va.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fake_run(runs, run_id, model_name, status="complete", seed=0, weights=True):
    """A run folder as training leaves it: run_log.json and weights.pt of ``model_name``."""
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run_log.json").write_text(json.dumps(
        {"kind": "train", "run_id": run_id, "status": status, "model": model_name,
         "config": {"model": model_name, "data_dir": "data"}}))
    if weights:
        torch.manual_seed(seed)
        torch.save(build_model(model_name).state_dict(), run_dir / "weights.pt")
    return run_dir


# ---------------------------------------------------------------- hooks

def test_capture_resnet18_shapes_and_hooks_removed():
    model = build_model("resnet18")
    logits, acts = va.capture(model, torch.randn(1, 3, 32, 32), list(RECIPES["resnet18"].feature_layers))
    assert logits.shape == (1, 10)
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        "conv1": (1, 64, 32, 32), "layer1": (1, 64, 32, 32), "layer2": (1, 128, 16, 16),
        "layer3": (1, 256, 8, 8), "layer4": (1, 512, 4, 4)}
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training  # eval mode only for the pass


@pytest.mark.parametrize("name, c1, c2", [("small", 6, 16), ("large", 64, 128)])
def test_capture_lenet_shapes_are_the_conv_outputs(name, c1, c2):
    model = build_model(name)
    x = torch.randn(2, 3, 32, 32)
    _, acts = va.capture(model, x, ["conv1", "conv2"])
    assert acts["conv1"].shape == (2, c1, 28, 28)
    assert acts["conv2"].shape == (2, c2, 10, 10)
    # the hook sees the convolution's own output: before ReLU, so it has negative values
    assert torch.equal(acts["conv1"], model.conv1(x).detach())
    assert (acts["conv1"] < 0).any()


def test_capture_uses_eval_mode_batch_norm():
    model = build_model("resnet18")
    model.bn1.running_mean.fill_(5.0)        # only eval-mode batch norm reads the running stats
    x = torch.randn(1, 3, 32, 32)
    _, acts = va.capture(model, x, ["bn1"])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(acts["bn1"], model.bn1(model.conv1(x)))


def test_unknown_layer_lists_valid_names():
    with pytest.raises(UserError) as exc:
        va.capture(build_model("resnet18"), torch.randn(1, 3, 32, 32), ["layer9"])
    msg = str(exc.value)
    assert "layer9" in msg and "\n" not in msg
    for name in ("conv1", "layer1", "layer4", "fc"):
        assert name in msg


def test_layer_run_twice_is_refused():
    # LeNet applies its one ``pool`` module after both convolutions
    with pytest.raises(UserError, match="runs 2 times"):
        va.capture(build_model("small"), torch.randn(1, 3, 32, 32), ["pool"])


# ---------------------------------------------------------------- statistics

def test_layer_stats_known_tensor():
    t = torch.zeros(1, 2, 2, 5)                          # 20 values
    t[0, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])  # 5 non-zeros, sum 15
    t[0, 1, 1, :3] = torch.tensor([-1.0, 1e-30, 6.0])    # 3 more: tiny and negative are not zeros
    acts = {"a": t, "b": torch.full((1, 3), 2.0)}
    rows = va.layer_stats(acts)
    assert rows[0] == {"layer": "a", "channels": 2, "resolution": "2x5",
                       "mean": pytest.approx(20.0 / 20), "zeros": pytest.approx(12 / 20)}
    assert rows[1] == {"layer": "b", "channels": 3, "resolution": "1x1",
                       "mean": pytest.approx(2.0), "zeros": 0.0}
    table = va.format_table(rows)
    assert "| a " in table and "60.0%" in table and "1.0000" in table and "2x5" in table


def test_layer_stats_uses_the_first_image_only():
    t = torch.cat([torch.zeros(1, 4, 3, 3), torch.ones(1, 4, 3, 3)])
    assert va.layer_stats({"x": t})[0]["zeros"] == 1.0


def test_mosaic_tiles_every_channel_scaled_to_its_range():
    maps = torch.arange(6 * 2 * 2, dtype=torch.float32).reshape(6, 2, 2)
    tiles, cols = va.mosaic(maps)
    assert cols == 4 and tiles.shape == (2 * 3 - 1, 4 * 3 - 1)
    assert np.nanmin(tiles) == 0 and np.nanmax(tiles) == 1
    np.testing.assert_allclose(tiles[3:5, 3:5], [[0, 1 / 3], [2 / 3, 1]])  # channel 5
    assert np.isnan(tiles[3:5, 6:]).all()                                # empty slots


def test_pick_image():
    labels = np.array([3, 1, 3, 5])
    assert va.pick_image(labels, class_name="cat") == 0
    assert va.pick_image(labels, class_name="dog") == 3
    assert va.pick_image(labels, index=2) == 2
    assert va.pick_image(labels) == 0
    for bad in (4, -1):
        with pytest.raises(UserError, match="outside the test set"):
            va.pick_image(labels, index=bad)
    with pytest.raises(UserError, match="no frog"):
        va.pick_image(labels, class_name="frog")


# ---------------------------------------------------------------- command line

def test_untrained_resnet18_end_to_end(tiny_data, workdir, capsys):
    code, out, err = run_main(capsys, "--untrained", "--data-dir", tiny_data, "--device", "cpu",
                              "--out", "activations")
    assert code == 0, err
    folder = workdir / "activations"
    for layer in ("conv1", "layer1", "layer2", "layer3"):
        img = imread(folder / f"resnet18_{layer}.png")
        assert img.shape[0] > 300 and img.shape[1] > 600 and img.std() > 0.05
        assert f"| {layer} " in out
    assert not (folder / "resnet18_layer4.png").exists()
    overview = imread(folder / "resnet18_overview.png")
    assert overview.shape[0] > 400 and overview.shape[1] > 800
    stats = json.loads((folder / "resnet18_stats.json").read_text())
    assert stats["source"] == "untrained, seed 1111"
    assert [(r["layer"], r["channels"], r["resolution"]) for r in stats["layers"]] == [
        ("conv1", 64, "32x32"), ("layer1", 64, "32x32"), ("layer2", 128, "16x16"),
        ("layer3", 256, "8x8")]
    # stage outputs end in a ReLU: exact zeros and no negative mean
    assert all(r["zeros"] > 0.05 and r["mean"] > 0 for r in stats["layers"][1:])
    assert stats["image"]["index"] == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        stats["figures"] + ["resnet18_stats.json"])


def test_untrained_is_seeded(tiny_data, workdir, capsys):
    means = []
    for seed in (1, 1, 2):
        code, _, err = run_main(capsys, "--untrained", "--model", "small", "--seed", seed,
                                "--data-dir", tiny_data, "--out", "a")
        assert code == 0, err
        means.append(json.loads((workdir / "a" / "small_stats.json").read_text())["layers"][1]["mean"])
    assert means[0] == means[1] != means[2]


def test_untrained_model_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a = va.untrained_model("small", 5, "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    b = va.untrained_model("small", 5, "cpu")
    assert torch.equal(a.conv1.weight, b.conv1.weight)


def test_no_weights_names_the_training_command(tiny_data, workdir, capsys):
    fake_run(workdir / "runs", "20260101-000000-small-e2", "small")   # other model
    fake_run(workdir / "runs", "20260102-000000-resnet18-e2", "resnet18", status="running")
    code, out, err = run_main(capsys, "--data-dir", tiny_data)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    script = ROOT / "train_resnet.py"          # named as it is pasted from here
    assert err == ("error: no complete resnet18 run with weights in runs; train one with: "
                   f"python {script} (40 epochs), or a quick one to look at: python {script} --epochs 1 "
                   "--subset 2000 (or pass --run, --weights, or --untrained)\n")
    assert not (workdir / "activations").exists()
    code, _, err = run_main(capsys, "--model", "large", "--runs", "elsewhere", "--data-dir", tiny_data)
    assert code == 2 and f"python {ROOT / 'train_large.py'} --out elsewhere" in err


def test_run_id_uses_that_runs_weights_and_model(tiny_data, workdir, capsys):
    run_dir = fake_run(workdir / "runs", "20260101-000000-small-e2", "small", seed=3)
    code, out, err = run_main(capsys, "--run", run_dir.name, "--data-dir", tiny_data, "--class", "cat")
    assert code == 0, err
    assert "run 20260101-000000-small-e2" in out
    assert not (workdir / "activations").exists()             # the maps go with their run
    assert {p.name for p in (run_dir / "activations").glob("*.png")} == {
        "small_conv1.png", "small_conv2.png", "small_overview.png"}
    # the figures' numbers come from the run's weights, not a fresh network
    x_test, y_test = data.load_arrays(tiny_data / "cifar-10-batches-py")[2:]
    index = int(np.flatnonzero(y_test == data.CLASSES.index("cat"))[0])
    ds = data.DeviceCIFAR10(x_test[:0], y_test[:0], x_test[index:index + 1],
                            y_test[index:index + 1], "cpu")
    model = build_model("small")
    model.load_state_dict(torch.load(run_dir / "weights.pt", weights_only=True))
    _, acts = va.capture(model, ds.normalize(ds.x_test), ["conv1", "conv2"])
    stats = json.loads((run_dir / "activations" / "small_stats.json").read_text())
    assert stats["layers"] == va.layer_stats(acts)
    assert stats["image"]["index"] == index and stats["image"]["true"] == "cat"


def test_default_is_the_latest_complete_run_of_the_model(tiny_data, workdir, capsys):
    runs = workdir / "runs"
    fake_run(runs, "20260101-000000-small-e2", "small")
    fake_run(runs, "20260103-000000-small-e2", "small", weights=False)           # weights lost
    fake_run(runs, "20260104-000000-small-e2", "small", status="interrupted")
    fake_run(runs, "20260105-000000-large-e2", "large")
    fake_run(runs, "20260102-000000-small-e2", "small")
    code, out, err = run_main(capsys, "--model", "small", "--data-dir", tiny_data, "--layers", "conv2")
    assert code == 0, err
    assert "run 20260102-000000-small-e2" in out
    maps = runs / "20260102-000000-small-e2" / "activations"
    assert [p.name for p in maps.glob("*.png")] != []
    assert not (maps / "small_conv1.png").exists()


def test_run_errors_are_one_line(tiny_data, workdir, capsys):
    runs = workdir / "runs"
    fake_run(runs, "20260101-000000-small-e2", "small", status="running")
    fake_run(runs, "20260102-000000-large-e2", "large")
    cases = [
        (["--run", "nope"], "no run 'nope'"),
        (["--run", "20260101-000000-small-e2"], "not complete"),
        (["--run", "20260102-000000-large-e2", "--model", "small"], "trained large, not small"),
        (["--run", "20260102-000000-large-e2", "--index", "100"], "outside the test set (0 to 99)"),
        (["--untrained", "--model", "small", "--layers", "conv3"], "choose from conv1, pool, conv2"),
        (["--untrained", "--index", "x"], "invalid int value"),
        (["--untrained", "--class", "cow"], "invalid choice"),
    ]
    for argv, expected in cases:
        code, _, err = run_main(capsys, *argv, "--data-dir", tiny_data, "--out", "maps")
        assert code == 2, argv
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, (argv, err)


def test_wrong_or_corrupt_weights(tiny_data, workdir, capsys):
    torch.save(build_model("large").state_dict(), workdir / "large.pt")
    code, _, err = run_main(capsys, "--weights", "large.pt", "--model", "small", "--data-dir", tiny_data,
                            "--out", "maps")
    assert code == 2 and err.count("\n") == 1
    assert "does not hold small weights" in err and "--model large" in err
    (workdir / "bad.pt").write_bytes(b"not a torch file")
    code, _, err = run_main(capsys, "--weights", "bad.pt", "--model", "small", "--data-dir", tiny_data,
                            "--out", "maps")
    assert code == 2 and "bad.pt is truncated or not a weights file" in err
    torch.save({"fc.weight": torch.zeros(2)}, workdir / "odd.pt")
    code, _, err = run_main(capsys, "--weights", "odd.pt", "--data-dir", tiny_data, "--out", "maps")
    assert code == 2 and "fit none of the models" in err
    code, _, err = run_main(capsys, "--weights", "large.pt", "--model", "large", "--data-dir", tiny_data,
                            "--layers", "conv1", "--out", "maps")
    assert code == 0, err
    stats = json.loads((workdir / "maps" / "large_stats.json").read_text())
    assert [(r["layer"], r["channels"]) for r in stats["layers"]] == [("conv1", 64)]
    code, _, err = run_main(capsys, "--weights", "large.pt", "--data-dir", tiny_data, "--layers", "conv1")
    assert code == 2 and err == ("error: --weights: say where the maps go with --out FOLDER "
                                 "(--out activations rewrites the report's maps)\n")


def test_checkpoint_is_accepted_as_weights(tiny_data, workdir, capsys):
    torch.manual_seed(3)
    model = build_model("small")
    torch.save({"format": 1, "config": {}, "model": model.state_dict()}, workdir / "checkpoint.pt")
    code, _, err = run_main(capsys, "--weights", "checkpoint.pt", "--model", "small",
                            "--data-dir", tiny_data, "--layers", "conv1", "--out", "maps")
    assert code == 0, err
    # the figures' numbers are the checkpoint's network's on test image 0
    x_test, y_test = data.load_arrays(tiny_data / "cifar-10-batches-py")[2:]
    ds = data.DeviceCIFAR10(x_test[:0], y_test[:0], x_test[:1], y_test[:1], "cpu")
    _, acts = va.capture(model, ds.normalize(ds.x_test), ["conv1"])
    stats = json.loads((workdir / "maps" / "small_stats.json").read_text())
    assert stats["layers"] == va.layer_stats(acts) and stats["image"]["index"] == 0


def test_unwritable_out(tiny_data, workdir, capsys):
    (workdir / "file").write_text("")
    code, _, err = run_main(capsys, "--untrained", "--model", "small", "--data-dir", tiny_data,
                            "--out", "file/sub")
    assert code == 2 and err.startswith("error: cannot write") and err.count("\n") == 1


def test_missing_device_falls_back_with_a_warning(tiny_data, workdir, capsys):
    wanted = next((d for d in ("mps", "cuda") if va.resolve_device(d)[1] is not None), None)
    if wanted is None:
        pytest.skip("both mps and cuda are present")
    code, out, err = run_main(capsys, "--untrained", "--model", "small", "--device", wanted,
                              "--data-dir", tiny_data, "--layers", "conv1", "--out", "maps")
    assert code == 0
    assert f"device {wanted!r} is not available" in err


def test_help_states_every_default():
    parser = va.build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert "default" in action.help, action.dest
