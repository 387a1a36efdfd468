"""Checkpoints, exact resume after a signal, and nothing lost or half-written on failure."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import atomic
import engine
import spawn
import train_large
import train_small
from conftest import LOSS_LINE, ROOT, make_cifar, run



def run_dir(out):
    dirs = [p for p in Path(out).iterdir() if p.is_dir()]
    assert len(dirs) == 1
    return dirs[0]


@pytest.fixture(scope="module")
def medium_data(tmp_path_factory):
    """Enough images (1,000) that an epoch of the tutorial LeNet at batch 4 outlasts a signal."""
    return make_cifar(tmp_path_factory.mktemp("cifar1k"), n_train=1000, n_test=100)


def _start(args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return spawn.Popen([sys.executable, str(ROOT / "train_small.py"), *args], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _interrupt_after(proc, marker, signum, times=1):
    """Read stdout until ``marker`` appears, then send ``signum`` ``times`` times."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            for _ in range(times):
                proc.send_signal(signum)
                time.sleep(0.01)
            break
    out, err = proc.communicate(timeout=120)
    return "".join(seen) + out, err


SIGNALLED = ["--epochs", "3", "--log-every", "25", "--device", "cpu"]


@pytest.fixture(scope="module")
def uninterrupted(medium_data, tmp_path_factory):
    """The run the signalled runs are held to, trained once: (its loss lines, its weights)."""
    cwd = tmp_path_factory.mktemp("ref")
    ref = spawn.run([sys.executable, str(ROOT / "train_small.py"), *SIGNALLED, "--data-dir", str(medium_data),
                     "--out", "ref"], cwd=cwd, capture_output=True, text=True,
                    env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert ref.returncode == 0, ref.stderr
    return LOSS_LINE.findall(ref.stdout), torch.load(run_dir(cwd / "ref") / "weights.pt", weights_only=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_then_resume_is_bit_identical(signum, medium_data, uninterrupted, tmp_path):
    common = [*SIGNALLED, "--data-dir", str(medium_data)]
    ref_lines, a = uninterrupted

    proc = _start(common + ["--out", "cut"], tmp_path)
    out, err = _interrupt_after(proc, "epoch 1/3:", signum)
    assert proc.returncode == 130, err
    assert f"resume with: python {ROOT / 'train_small.py'} --resume" in err
    cut = run_dir(tmp_path / "cut")
    log = json.loads((cut / "run_log.json").read_text())
    assert log["status"] == "interrupted"
    done = torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"]
    assert done in (1, 2)
    assert not (cut / "weights.pt").exists()

    resumed = spawn.run([sys.executable, str(ROOT / "train_small.py"), "--resume", cut.name,
                         "--out", "cut", "--data-dir", str(medium_data), "--device", "cpu"],
                        cwd=tmp_path, capture_output=True, text=True,
                        env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert resumed.returncode == 0, resumed.stderr
    after = LOSS_LINE.findall(resumed.stdout)
    assert after and after == [l for l in ref_lines if int(l[0]) > done]
    b = torch.load(cut / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    final = json.loads((cut / "run_log.json").read_text())
    assert final["status"] == "complete" and len(final["history"]) == 3
    assert [l[:2] for l in final["loss_lines"]] == [[int(e), int(b)] for e, b, _ in ref_lines]


def test_second_interrupt_exits_at_once_and_corrupts_nothing(medium_data, tmp_path):
    proc = _start(["--epochs", "3", "--data-dir", str(medium_data), "--out", "runs",
                   "--log-every", "25", "--device", "cpu"], tmp_path)
    out, err = _interrupt_after(proc, "epoch 1/3:", signal.SIGINT, times=2)
    assert proc.returncode == 130
    assert "Traceback" not in err
    cut = run_dir(tmp_path / "runs")
    # the first signal stops the run after epoch 1; the second may land while epoch 1 is being
    # saved: then epoch 0's checkpoint stands, whole
    ckpt = engine.load_checkpoint(cut / "checkpoint.pt")
    assert ckpt["epoch"] in (0, 1) and len(ckpt["history"]) == ckpt["epoch"]
    assert json.loads((cut / "run_log.json").read_text())["status"] == "interrupted"
    assert not list(cut.glob("*.tmp")) and not list(cut.glob(".*.tmp"))


def test_fixed_lr_run_can_be_extended_exactly(tiny_data, workdir, capsys):
    base = ["--data-dir", str(tiny_data), "--log-every", "10", "--device", "cpu"]
    assert run(train_small, capsys, "--epochs", "2", "--out", "short", *base)[0] == 0
    short = run_dir(workdir / "short")
    code, out, err = run(train_small, capsys, "--resume", str(short), "--epochs", "3", *base)
    assert code == 0, err
    assert run(train_small, capsys, "--epochs", "3", "--out", "long", *base)[0] == 0
    extended = json.loads((short / "run_log.json").read_text())
    a = extended["results"]
    b = json.loads((run_dir(workdir / "long") / "run_log.json").read_text())["results"]
    assert a["epochs"] == 3 and a["weights_sha256"] == b["weights_sha256"]
    assert [(r["after_epoch"], r["epochs_before"]) for r in extended["resumes"]] == [(2, 2)]


def assert_error(code, err, pattern):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), err


@pytest.fixture
def finished(tiny_data, workdir, capsys):
    args = ["--epochs", "1", "--onecycle", "--data-dir", str(tiny_data), "--out", "runs", "--device", "cpu"]
    assert run(train_small, capsys, *args)[0] == 0
    return run_dir(workdir / "runs")


@pytest.mark.parametrize("args, pattern", [
    (["--batch-size", "8"], r"--batch-size 8 differs from the run's 4"),
    (["--seed", "3"], r"--seed 3 differs from the run's 1111"),
    (["--epochs", "5"], r"OneCycle fixes the schedule to the run's 1 epochs"),
])
def test_resume_refuses_flags_that_change_the_run(args, pattern, finished, capsys):
    code, _, err = run(train_small, capsys, "--resume", finished.name, "--out", "runs", *args)
    assert_error(code, err, pattern)


def test_resume_a_finished_run_does_nothing(finished, capsys):
    before = (finished / "run_log.json").read_bytes()
    code, out, _ = run(train_small, capsys, "--resume", finished.name, "--out", "runs")
    assert code == 0 and "nothing to do" in out
    assert (finished / "run_log.json").read_bytes() == before


def test_resume_other_model_missing_or_truncated(finished, workdir, capsys):
    code, _, err = run(train_large, capsys, "--resume", finished.name, "--out", "runs")
    assert_error(code, err, r"run trained model 'small', not 'large'")
    code, _, err = run(train_small, capsys, "--resume", "no-such-run", "--out", "runs")
    assert_error(code, err, r"no run 'no-such-run' to resume")
    ckpt = finished / "checkpoint.pt"
    raw = ckpt.read_bytes()
    ckpt.write_bytes(raw[: len(raw) // 3])
    code, _, err = run(train_small, capsys, "--resume", finished.name, "--out", "runs")
    assert_error(code, err, r"checkpoint .* is truncated or corrupt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_crafted_checkpoint_cannot_run_code(workdir, capsys, monkeypatch):
    called = []
    folder = workdir / "runs" / "evil"
    folder.mkdir(parents=True)
    torch.save({"format": 1, "config": {}, "payload": _Evil()}, folder / "checkpoint.pt")
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd))
    code, _, err = run(train_small, capsys, "--resume", "evil", "--out", "runs")
    assert_error(code, err, r"truncated or corrupt")
    assert called == []


def test_full_disk_while_saving_keeps_the_last_checkpoint(tiny_data, workdir, capsys, monkeypatch):
    real_save = torch.save
    calls = []

    def save_then_fill_disk(obj, f, *a, **k):
        calls.append(1)
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", save_then_fill_disk)
    code, _, err = run(train_small, capsys, "--epochs", "3", "--data-dir", str(tiny_data),
                       "--out", "runs", "--device", "cpu")
    assert_error(code, err, r"cannot write .*checkpoint.pt \(No space left on device\)")
    folder = run_dir(workdir / "runs")
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_unwritable_run_folder_on_resume(tiny_data, workdir, capsys, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")
    base = ["--data-dir", str(tiny_data), "--out", "runs", "--device", "cpu"]
    assert run(train_small, capsys, "--epochs", "1", *base)[0] == 0        # a fixed rate: it can be extended
    folder = run_dir(workdir / "runs")
    before = {name: (folder / name).read_bytes() for name in ("checkpoint.pt", "run_log.json")}
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code, _, err = run(train_small, capsys, "--resume", folder.name, "--epochs", "2", *base)
    assert_error(code, err, r"^error: cannot write \S*run_log.json \(Permission denied\); "
                            r"choose a writable folder with --out$")
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_nan_loss_stops_with_the_batch_named(tiny_data, workdir, capsys):
    code, _, err = run(train_large, capsys, "--epochs", "2", "--lr", "1e12", "--batch-size", "10",
                       "--log-every", "4", "--data-dir", str(tiny_data), "--out", "runs", "--device", "cpu")
    # a resume keeps the rate, so the way on is a new run, not a flag --resume refuses
    assert_error(code, err, r"loss became (nan|inf) at \[1, \d+\]; .*marked failed \(a resume keeps "
                            r"its rate.*\): start a new run with a lower --lr$")
    folder = run_dir(workdir / "runs")
    assert json.loads((folder / "run_log.json").read_text())["status"] == "failed"
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["epoch"] == 0
    assert not (folder / "weights.pt").exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    atomic.write_json(target, {"a": 1})

    def broken(f):
        f.write(b"{half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(Exception, match="No space left"):
        atomic.write_with(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_resume_refuses_other_data(finished, workdir, capsys):
    other = make_cifar(workdir / "other", seed=1)
    code, _, err = run(train_small, capsys, "--resume", finished.name, "--out", "runs",
                       "--data-dir", str(other))
    assert_error(code, err, r"the run trained on dataset \w+, but .* holds \w+")
