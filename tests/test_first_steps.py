"""What a newcomer does first: a quick --subset run, evaluate.py, predict on a folder, hints that
work when pasted, and run logs that hold no path of the machine."""
import json
import os
import shlex
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import data
import engine
import evaluate
import hwdna
import predict
import runs
import train_small
from conftest import ROOT, run


def train(root, tiny_data, *flags):
    """A complete one-epoch tutorial-LeNet run in ``root``/runs (cwd: ``root``): its folder and log."""
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        code = train_small.main(["--epochs", "1", "--data-dir", str(tiny_data), "--no-download",
                                 "--out", "runs", "--device", "cpu", *flags])
    assert code == 0
    run_dir = sorted(p for p in runs_dir.iterdir() if p.is_dir())[-1]
    return SimpleNamespace(dir=run_dir, id=run_dir.name, runs=runs_dir,
                           log=json.loads((run_dir / "run_log.json").read_text()))


@pytest.fixture(scope="module")
def quick(tmp_path_factory, tiny_data):
    """A --subset 60 run with --ema and --tta: it evaluated its weight average with flip TTA, on
    60 of the 100 test images."""
    return train(tmp_path_factory.mktemp("quick"), tiny_data, "--subset", "60", "--ema", "0.9", "--tta")


# ---------------------------------------------------------------- --subset

def test_subset_trains_and_tests_on_n_seeded_images(quick, tiny_data):
    assert quick.id.endswith("-sub60-e1")
    assert quick.log["config"]["subset"] == 60
    assert (quick.log["dataset"]["train_images"], quick.log["dataset"]["test_images"]) == (60, 60)
    assert quick.log["results"]["total"] == 60
    # one epoch of 60 images at batch 4: 15 steps
    assert len(quick.log["loss_lines"]) == 0 and quick.log["history"][0]["epoch"] == 1
    # the same images for any training seed, in file order, and other images for another --val-seed
    a, b = data.subset(200, 60, 0), data.subset(200, 60, 0)
    assert torch.equal(a, b) and torch.equal(a, a.sort().values) and len(a.unique()) == 60
    assert not torch.equal(a, data.subset(200, 60, 1))
    assert torch.equal(data.subset(100, 500, 0), torch.arange(100))       # a test set smaller than N: all


def test_a_subset_run_is_never_full_size(tiny_data, workdir, capsys, monkeypatch):
    monkeypatch.setattr(hwdna, "ROOT", workdir)              # this folder plays the project
    monkeypatch.setattr(engine, "FULL_TRAIN", 200)           # ... and the tiny set the full data
    monkeypatch.setattr(engine, "FULL_TEST", 100)
    args = ["--epochs", "1", "--data-dir", str(tiny_data), "--device", "cpu", "--out", "runs"]
    assert run(train_small, capsys, *args, "--subset", "100")[0] == 0
    assert not (workdir / "run_log.json").exists()            # a quick run leaves the project's log alone
    (subset_log,) = [json.loads(p.read_text()) for p in (workdir / "runs").glob("*/run_log.json")]
    official = {**subset_log, "dataset": {**subset_log["dataset"], "official": True}}
    assert not runs.Run(official, workdir / "runs" / "x" / "run_log.json").full_official
    assert run(train_small, capsys, *args)[0] == 0           # the same run on everything: full size
    assert (workdir / "run_log.json").exists()


def test_subset_larger_than_the_training_set_is_one_line(tiny_data, workdir, capsys):
    code, out, err = run(train_small, capsys, "--epochs", "1", "--subset", "500", "--data-dir", str(tiny_data),
                         "--device", "cpu", "--out", "runs")
    assert code == 2 and err == "error: --subset 500 is more than the 200 training images; ask for fewer\n"
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


# ---------------------------------------------------------------- evaluate.py

def test_evaluate_gives_the_runs_own_accuracy_and_table(quick, tiny_data, workdir, capsys):
    code, out, err = run(evaluate, capsys, "--run", quick.id, "--runs", str(quick.runs),
                         "--data-dir", str(tiny_data), "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"small (run {quick.id}, its weight average, flip TTA) on cpu, fp32"
    results = quick.log["results"]
    assert lines[1] == f"Accuracy of the network on the 60 test images: {results['overall_accuracy']:.2f} %"
    assert "\n".join(lines[2:14]) == engine.class_table(results["per_class"])
    assert lines[-1] == f"the run logged {results['overall_accuracy']:.2f} % on cpu (fp32)"
    assert sorted(workdir.iterdir()) == []                    # writes nothing


def test_evaluate_uses_the_weights_the_run_evaluated(quick, tiny_data, workdir, capsys, monkeypatch):
    seen = []
    real = engine.evaluate

    def spy(model, ds, dtype=None, ranks=None, split="test", tta=False, translate=False):
        seen.append((engine.weights_digest(model), len(ds.y_test), tta, translate))
        return real(model, ds, dtype, ranks, split, tta, translate)
    monkeypatch.setattr(engine, "evaluate", spy)
    assert run(evaluate, capsys, "--run", str(quick.dir), "--data-dir", str(tiny_data), "--device", "cpu")[0] == 0
    assert seen == [(quick.log["results"]["weights_ema_sha256"], 60, True, False)]


def test_evaluate_on_other_data_warns(quick, tmp_path, workdir, capsys):
    from conftest import make_cifar
    other = make_cifar(tmp_path / "other", seed=5)
    code, out, err = run(evaluate, capsys, "--run", str(quick.dir), "--data-dir", str(other), "--device", "cpu")
    assert code == 0 and err.startswith(f"warning: the run trained on dataset {quick.log['dataset']['id']}, but ")


# ---------------------------------------------------------------- predict.py

@pytest.fixture
def photos(tmp_path):
    """A folder of two PNGs, a JPEG in a subfolder, and a text file."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    rng = np.random.RandomState(3)
    for path in (folder / "b.png", folder / "a.PNG", folder / "more" / "c.jpg"):
        Image.fromarray(rng.randint(0, 256, (40, 40, 3), dtype=np.uint8)).save(path, format="PNG" if
                                                                              path.suffix != ".jpg" else "JPEG")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def test_predict_on_a_folder_classifies_its_images(quick, photos, workdir, capsys):
    flags = ["--runs", str(quick.runs), "--device", "cpu"]
    code, out, err = run(predict, capsys, str(photos), *flags)
    assert code == 0, err
    header, *lines = out.splitlines()
    acc = quick.log["results"]["overall_accuracy"]
    assert header == (f"small (run {quick.id}, its weight average, flip TTA) on cpu: {acc:.2f}% test accuracy "
                      f"on 60 images, trained on 60 images of {quick.log['dataset']['source']}")
    assert [line.rpartition(": ")[0] for line in lines] == [str(photos / "a.PNG"), str(photos / "b.png")]
    code, out, err = run(predict, capsys, str(photos), "--recursive", *flags)
    assert code == 0, err
    assert [line.rpartition(": ")[0] for line in out.splitlines()[1:]] == [
        str(photos / "a.PNG"), str(photos / "b.png"), str(photos / "more" / "c.jpg")]


def test_predict_on_a_folder_without_images_says_so(quick, photos, workdir, capsys):
    for f in photos.glob("*.*"):
        f.unlink()
    code, out, err = run(predict, capsys, str(photos), "--runs", str(quick.runs), "--device", "cpu", "--json")
    assert code == 2
    assert err == (f"error: nothing to classify in {photos} (a folder with no image files; "
                   "--recursive looks in its subfolders)\n")
    assert json.loads(out)["images"] == [{"file": str(photos),
                                          "error": "a folder with no image files; --recursive looks in its subfolders"}]


def test_predicts_hint_for_an_interrupted_run_works_when_pasted(quick, photos, tmp_path, workdir, capsys):
    runs_dir = tmp_path / "runs"
    stopped = runs_dir / quick.id
    shutil.copytree(quick.dir, stopped)
    # stopped before it ever completed: no results (a stopped extension keeps its complete results)
    (stopped / "run_log.json").write_text(json.dumps({**quick.log, "status": "interrupted", "results": None}))
    code, _, err = run(predict, capsys, str(photos), "--run", quick.id, "--runs", str(runs_dir))
    assert code == 2
    hint = err.split("pass its checkpoint with ", 1)[1].split(" to see", 1)[0]
    assert hint == f"--weights {stopped / 'checkpoint.pt'} --model small"
    code, out, err = run(predict, capsys, str(photos), *shlex.split(hint), "--device", "cpu")
    assert code == 0, err
    assert out.splitlines()[0] == f"small (weights {stopped / 'checkpoint.pt'}) on cpu"
    # a checkpoint names its network: --model may be left out
    code, out, err = run(predict, capsys, str(photos), "--weights", str(stopped / "checkpoint.pt"), "--device", "cpu")
    assert code == 0 and out.splitlines()[0].startswith("small (weights "), err


# ---------------------------------------------------------------- paths

def test_a_run_from_another_folder_records_no_path_of_the_machine(tiny_data, workdir, capsys):
    code, out, err = run(train_small, capsys, "--epochs", "1", "--data-dir", str(tiny_data), "--device", "cpu",
                         "--out", "runs")
    assert code == 0, err
    (log_path,) = (workdir / "runs").glob("*/run_log.json")
    log = json.loads(log_path.read_text())
    # the data folder lies outside the project: its name alone
    assert log["config"]["data_dir"] == tiny_data.name
    assert log["dataset"]["folder"] == "cifar-10-batches-py"
    assert str(tiny_data.parent) not in log_path.read_text()
    assert log["config"]["out"] == "runs"


def test_recorded_paths_are_the_projects_own_from_any_folder(workdir):
    assert hwdna.recorded(ROOT / "data") == "data"
    assert hwdna.recorded(ROOT / "runs" / "x") == os.path.join("runs", "x")
    assert hwdna.recorded(workdir / "cifar") == "cifar"


def test_script_paths_in_hints_work_from_where_the_user_stands(workdir, monkeypatch):
    # outside the project: absolute
    assert hwdna.command_path("train_small.py") == str(ROOT / "train_small.py")
    monkeypatch.chdir(ROOT)
    assert hwdna.command_path("train_small.py") == "train_small.py"
    monkeypatch.chdir(ROOT / "tests")
    assert hwdna.command_path("train_small.py") == os.path.join("..", "train_small.py")
    monkeypatch.chdir(ROOT.parent)
    assert hwdna.command_path("train_small.py") == os.path.join(ROOT.name, "train_small.py")
