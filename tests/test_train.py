"""End-to-end runs of the training scripts on the tiny synthetic set, and their bad-input errors."""
import json
import re

import pytest
import torch

import compute
import data
import engine
import recipes
import train_large
import train_resnet
import train_small
from conftest import LOSS_LINE, run
from models import build_model



def only_run(out_dir):
    runs = sorted(p for p in out_dir.iterdir() if p.is_dir())
    assert len(runs) == 1
    return runs[0], json.loads((runs[0] / "run_log.json").read_text())


@pytest.mark.parametrize("script, model, extra, cifar", [
    (train_small, "small", ["--epochs", "1"], "tiny_data"),
    (train_large, "large", ["--epochs", "2", "--augment", "--onecycle", "--batch-size", "32"], "tiny_data"),
    (train_resnet, "resnet18", ["--epochs", "1", "--batch-size", "32"], "micro_data"),   # 2 steps, 20 tests
])
def test_script_runs_end_to_end(script, model, extra, cifar, workdir, capsys, request):
    cifar = request.getfixturevalue(cifar)
    x_train, _, x_test, _ = data.load_arrays(cifar / data.FOLDER)
    train_images, test_images = len(x_train), len(x_test)
    code, out, err = run(script, capsys, *extra, "--data-dir", str(cifar), "--out", "runs",
                         "--log-every", "1", "--device", "cpu")
    assert code == 0, err
    run_dir, log = only_run(workdir / "runs")
    assert log["status"] == "complete" and log["model"] == model and log["kind"] == "train"
    assert log["params"] == sum(p.numel() for p in build_model(model).parameters())
    auto = compute.choose("auto", None, torch.device("cpu"), recipes.recipe(model).cpu_bf16).dtype
    assert log["device"] == "cpu" and log["seed"] == 1111      # fp32, or bf16 on a CPU that computes it
    assert log["precision"] == compute.precision_name(auto)
    res = log["results"]
    # the accuracies are the confusion matrix's: diagonal over all, and over each row
    conf = res["confusion"]
    assert res["total"] == sum(map(sum, conf)) == test_images and res["train_time_s"] > 0
    assert res["correct"] == sum(conf[i][i] for i in range(10))
    assert res["overall_accuracy"] == round(100 * res["correct"] / test_images, 2)
    assert res["per_class"] == {c: round(100 * conf[i][i] / sum(conf[i]), 2) if sum(conf[i]) else None
                                for i, c in enumerate(("plane", "car", "bird", "cat", "deer", "dog", "frog",
                                                       "horse", "ship", "truck"))}
    assert f"Accuracy of the network on the {test_images} test images: {res['overall_accuracy']:.2f} %" in out
    assert len(log["history"]) == log["config"]["epochs"] and log["history"][-1]["epoch"] == res["epochs"]
    for key in ("os", "architecture", "chip", "torch", "python"):
        assert log["hardware"][key]
    assert log["hardware"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "cpu_model_id" in log["hardware"]
    assert log["dataset"]["official"] is False and log["dataset"]["train_images"] == train_images
    assert not log["dataset"]["folder"].startswith("/") and not log["config"]["out"].startswith("/")
    # a run writes only inside --out; weights load with map_location
    assert [p.name for p in workdir.iterdir()] == ["runs"]
    state = torch.load(run_dir / "weights.pt", map_location="cpu", weights_only=True)
    net = build_model(model)
    net.load_state_dict(state)
    if model != "resnet18":                  # the accuracy is that of the weights written (cheap here)
        ds = data.DeviceCIFAR10.load(data.locate(cifar, False), torch.device("cpu"))
        assert engine.evaluate(net, ds)["confusion"] == conf
    # one loss line per logged batch, then the table of ten classes, best first
    lines = LOSS_LINE.findall(out)
    assert lines and lines[0][:2] == ("1", "1")
    assert [tuple(map(str, l[:2])) for l in log["loss_lines"]] == [l[:2] for l in lines]
    table = re.findall(r"^\| (\w+) +\| +([\d.]+)% +\|$", out, re.M)
    assert len(table) == 10
    accs = [float(a) for _, a in table]
    assert accs == sorted(accs, reverse=True)


def test_only_full_size_runs_in_the_projects_runs_refresh_its_run_log(tiny_data, workdir, capsys,
                                                                     monkeypatch):
    import engine
    import hwdna
    monkeypatch.setattr(hwdna, "ROOT", workdir)              # this folder plays the project
    args = ["--epochs", "1", "--data-dir", str(tiny_data), "--device", "cpu"]
    assert run(train_small, capsys, *args, "--out", "runs")[0] == 0
    assert not (workdir / "run_log.json").exists()            # 200 images: a quick test run
    monkeypatch.setattr(engine, "FULL_TRAIN", 200)
    monkeypatch.setattr(engine, "FULL_TEST", 100)
    assert run(train_small, capsys, *args, "--out", "elsewhere/runs")[0] == 0
    assert not (workdir / "run_log.json").exists() and not (workdir / "elsewhere" / "run_log.json").exists()
    assert run(train_small, capsys, *args, "--out", "runs")[0] == 0
    newest = sorted((workdir / "runs").iterdir())[-1]
    assert json.loads((workdir / "run_log.json").read_text())["run_id"] == newest.name


def test_defaults_are_the_documented_recipes(capsys):
    with pytest.raises(SystemExit):
        train_resnet.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 40)" in text and "(default: 128)" in text and "(default: on)" in text
    with pytest.raises(SystemExit):
        train_small.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 4)" in text and "(default: 2)" in text and "(default: 0.001)" in text
    assert "(default: 1111)" in text and "(default: auto)" in text and "(default: runs)" in text


def test_same_seed_same_losses_and_weights_on_cpu(micro_data, workdir, capsys):
    args = ["--epochs", "2", "--augment", "--onecycle", "--batch-size", "16", "--log-every", "2",
            "--data-dir", str(micro_data), "--device", "cpu"]
    outs, logs = [], []
    for name in ("a", "b"):
        code, out, err = run(train_large, capsys, *args, "--out", name)
        assert code == 0, err
        outs.append(LOSS_LINE.findall(out))
        logs.append(only_run(workdir / name))
    assert len(outs[0]) == 4 and outs[0] == outs[1]            # 4 batches an epoch, every 2nd logged
    wa = torch.load(logs[0][0] / "weights.pt", weights_only=True)
    wb = torch.load(logs[1][0] / "weights.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert logs[0][1]["results"]["weights_sha256"] == logs[1][1]["results"]["weights_sha256"]
    # another seed gives other numbers
    code, out, _ = run(train_large, capsys, *args, "--out", "c", "--seed", "7")
    assert code == 0 and LOSS_LINE.findall(out) != outs[0]


def test_missing_device_falls_back_with_a_warning(tiny_data, workdir, capsys):
    import compute
    missing = next((d for d in ("mps", "cuda") if not compute.available(d)), None)
    if missing is None:
        pytest.skip("every device is present")
    code, out, err = run(train_small, capsys, "--epochs", "1", "--device", missing,
                         "--data-dir", str(tiny_data), "--out", "runs")
    assert code == 0
    assert err.strip().startswith(f"warning: device {missing!r} is not available")
    log = only_run(workdir / "runs")[1]
    assert log["device_requested"] == missing and log["device"] != missing


def assert_one_line_error(code, err, pattern, workdir):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err
    assert not list(workdir.rglob("run_log.json"))


@pytest.mark.parametrize("args, pattern", [
    (["--epochs", "0"], r"--epochs: 0 is not an epoch count from 1 to 1000"),
    (["--batch-size", "-4"], r"--batch-size: -4 is not a positive"),
    (["--lr", "abc"], r"--lr: 'abc' is not a number"),
    (["--threads", "-1"], r"--threads: -1 is not a thread count from 0 to \d+"),
    (["--threads", "99999999999999999999"], r"--threads: 99999999999999999999 is not a thread count"),
    (["--seed", "-5"], r"--seed: -5 is not a seed from 0 to 4294967295"),
    (["--seed", "4294967296"], r"--seed: 4294967296 is not a seed"),
    (["--lr", "nan"], r"--lr: nan is not a positive number"),
    (["--max-lr", "inf"], r"--max-lr: inf is not a positive number"),
    (["--model", "vgg"], r"--model: invalid choice: 'vgg'"),
    (["--device", "tpu"], r"--device: invalid choice: 'tpu'"),
    (["--precision", "fp16", "--device", "cpu"], r"fp16 is for cuda and mps"),
    (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
])
def test_bad_flags(args, pattern, tiny_data, workdir, capsys):
    code, _, err = run(train_small, capsys, *args, "--data-dir", str(tiny_data), "--out", "runs")
    assert_one_line_error(code, err, pattern, workdir)


def test_no_data_and_no_network(workdir, capsys, monkeypatch):
    import data

    def offline(root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")
    monkeypatch.setattr(data, "download", offline)
    code, out, err = run(train_small, capsys, "--data-dir", str(workdir / "nowhere"), "--out", "runs")
    assert_one_line_error(code, err, r"CIFAR-10 not found .* download failed .*--data-dir", workdir)


def test_corrupt_data(workdir, capsys):
    from conftest import make_cifar
    folder = make_cifar(workdir / "d") / "cifar-10-batches-py"
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[:1000])
    code, _, err = run(train_small, capsys, "--data-dir", str(workdir / "d"), "--out", "runs")
    assert_one_line_error(code, err, r"test_batch is truncated or corrupt", workdir)


def test_unwritable_output_folder(tiny_data, workdir, capsys):
    (workdir / "blocker").write_text("a file, not a folder")
    code, _, err = run(train_small, capsys, "--epochs", "1", "--data-dir", str(tiny_data),
                       "--out", str(workdir / "blocker" / "runs"))
    assert_one_line_error(code, err, r"cannot create a run folder in .*--out", workdir)


def test_seeds_trains_one_run_per_seed_and_prints_mean_and_std(tiny_data, workdir, capsys):
    code, out, err = run(train_small, capsys, "--epochs", "1", "--seeds", "5,6,5", "--data-dir",
                         str(tiny_data), "--out", "runs", "--device", "cpu")
    assert code == 0, err
    logs = [json.loads((d / "run_log.json").read_text()) for d in sorted((workdir / "runs").iterdir())]
    assert sorted(l["seed"] for l in logs) == [5, 6]
    accs = {l["seed"]: l["results"]["overall_accuracy"] for l in logs}
    mean = sum(accs.values()) / 2
    std = (sum((a - mean) ** 2 for a in accs.values())) ** 0.5      # sample std of two values
    assert f"test accuracy over 2 seeds: {mean:.2f} ± {std:.2f}%" in out
    code, _, err = run(train_small, capsys, "--seeds", "1,2", "--seed", "3", "--data-dir", str(tiny_data))
    assert code == 2 and "drop --resume and --seed" in err


def _script_output(args, cwd, tty):
    """stdout of train_small.py run with ``args``, through a pseudo-terminal or a pipe."""
    import os
    import pty
    import subprocess
    import sys

    import spawn
    from conftest import ROOT
    cmd = [sys.executable, str(ROOT / "train_small.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120")
    if not tty:
        proc = spawn.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
        return proc.returncode, proc.stdout
    leader, follower = pty.openpty()
    proc = spawn.Popen(cmd, cwd=cwd, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                                   # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_plain_lines_in_a_pipe(tiny_data, tmp_path):
    args = ["--epochs", "2", "--log-every", "10", "--data-dir", str(tiny_data), "--device", "cpu"]
    code, piped = _script_output(args + ["--out", "a"], tmp_path, tty=False)
    assert code == 0
    assert "\r" not in piped and "img/s" not in piped and "step/s" not in piped
    code, shown = _script_output(args + ["--out", "b"], tmp_path, tty=True)
    assert code == 0
    assert "\r" in shown and re.search(r"epoch 1/2: .*\| *\d+/50 \[", shown)
    assert "img/s" in shown and "run ETA" in shown
    # the stable lines are the same either way (on a terminal, what is left after the bar's \r)
    lines = "\n".join(l.rsplit("\r", 1)[-1] for l in shown.replace("\r\n", "\n").split("\n"))
    assert LOSS_LINE.findall(piped) == LOSS_LINE.findall(lines)
    code, forced = _script_output(args + ["--out", "c", "--progress"], tmp_path, tty=False)
    assert code == 0 and "img/s" in forced
    code, quiet = _script_output(args + ["--out", "d", "--no-progress"], tmp_path, tty=True)
    assert code == 0 and "img/s" not in quiet and LOSS_LINE.findall(quiet.replace("\r\n", "\n"))


def test_tensorboard_writes_an_event_file_in_the_run_folder(tiny_data, workdir, capsys, monkeypatch):
    pytest.importorskip("tensorboard")
    code, _, err = run(train_small, capsys, "--epochs", "2", "--tensorboard", "--data-dir", str(tiny_data),
                       "--out", "runs", "--device", "cpu")
    assert code == 0, err
    run_dir, log = only_run(workdir / "runs")
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [e.value for e in acc.Scalars(tag)]
    assert scalars["accuracy/test"] == pytest.approx([h["test_accuracy"] for h in log["history"]])
    assert len(scalars["loss/train"]) == 2 and len(scalars["lr"]) == 2
    assert "per_class/cat" in scalars and "hparam/test_accuracy" in scalars
    # without the package: one line saying what to install
    import builtins
    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    code, _, err = run(train_small, capsys, "--epochs", "1", "--tensorboard", "--data-dir", str(tiny_data),
                       "--out", "runs2", "--device", "cpu")
    assert code == 2 and err.strip() == ("error: --tensorboard needs the tensorboard package; install it "
                                         "with: pip install tensorboard (or drop --tensorboard)")
