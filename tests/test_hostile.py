"""Hostile input: signals at every stage, full disks, crafted data and checkpoints, bad numbers.

Each case ends with exit status 2 (130 for a signal), one line on stderr and nothing
lost or half-written; a run stopped at any moment completes with ``--resume``.
"""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmark
import spawn
import train_small
import visualize_activations as va
from conftest import ROOT, run


def assert_error(code, err, pattern):
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), err


def only_run(out):
    dirs = [p for p in Path(out).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def no_temp_files(folder):
    return not [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def log_of(run_dir):
    return json.loads((run_dir / "run_log.json").read_text())


# ---------------------------------------------------------------- signals, in a child process

CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r})
import atomic, runs, train_small

def send(times, signum=signal.SIGTERM):
    for _ in range(times):
        os.kill(os.getpid(), signum)

real_save = atomic.torch_save
def torch_save(path, obj):
    {hook}
    return real_save(path, obj)
atomic.torch_save = torch_save
real_new = runs.new_run_dir
def new_run_dir(out, tag):
    folder = real_new(out, tag)
    {new_dir_hook}
    return folder
runs.new_run_dir = new_run_dir
raise SystemExit(train_small.main(sys.argv[1:]))
"""


def child(tmp_path, args, hook="pass", new_dir_hook="pass"):
    """Run train_small.py in a child whose checkpoint/weights writes call ``hook`` first."""
    code = CHILD.format(root=str(ROOT), hook=hook, new_dir_hook=new_dir_hook)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return spawn.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True,
                     text=True, env=env, timeout=300)


def resume(tmp_path, data_dir, run_dir, *extra):
    return spawn.run([sys.executable, str(ROOT / "train_small.py"), "--resume", str(run_dir),
                      "--data-dir", str(data_dir), "--device", "cpu", *extra], cwd=tmp_path,
                     capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
                     timeout=300)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """An uninterrupted 2-epoch run: the weights every stopped-and-resumed twin must reach."""
    tmp = tmp_path_factory.mktemp("ref")
    proc = spawn.run([sys.executable, str(ROOT / "train_small.py"), "--epochs", "2",
                      "--data-dir", str(tiny_data), "--out", "runs", "--device", "cpu"],
                     cwd=tmp, capture_output=True, text=True,
                     env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return log_of(only_run(tmp / "runs"))["results"]["weights_sha256"]


ARGS = ["--epochs", "2", "--out", "runs", "--device", "cpu"]


@pytest.mark.parametrize("hook", [
    # two signals while the final weights are written: exit at once, weights missing
    "if path.name == 'weights.pt': send(2)",
    # a burst of signals in the middle of a checkpoint save (epoch 1)
    "if path.name == 'checkpoint.pt' and obj['epoch'] == 1: send(3, signal.SIGINT)",
])
def test_signals_mid_write_leave_a_resumable_run(hook, tiny_data, tmp_path, reference):
    proc = child(tmp_path, ARGS + ["--data-dir", str(tiny_data)], hook=hook)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "terminate called" not in proc.stderr
    run_dir = only_run(tmp_path / "runs")
    assert no_temp_files(run_dir)
    assert log_of(run_dir)["status"] == "interrupted"
    assert not (run_dir / "weights.pt").exists()
    done = resume(tmp_path, tiny_data, run_dir)
    assert done.returncode == 0, done.stderr
    log = log_of(run_dir)
    assert log["status"] == "complete" and (run_dir / "weights.pt").is_file()
    assert log["results"]["weights_sha256"] == reference
    again = resume(tmp_path, tiny_data, run_dir)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_kill_at_the_weights_write_is_completed_by_resume(tiny_data, tmp_path, reference):
    """kill -9 (no handler runs) while weights.pt is written: the run log still says running."""
    proc = child(tmp_path, ARGS + ["--data-dir", str(tiny_data)],
                 hook="if path.name == 'weights.pt': os.kill(os.getpid(), signal.SIGKILL)")
    assert proc.returncode == -9
    run_dir = only_run(tmp_path / "runs")
    assert log_of(run_dir)["status"] == "running" and not (run_dir / "weights.pt").exists()
    done = resume(tmp_path, tiny_data, run_dir)
    assert done.returncode == 0, done.stderr
    assert log_of(run_dir)["results"]["weights_sha256"] == reference


def test_sigterm_as_the_run_folder_appears(tiny_data, tmp_path, reference):
    proc = child(tmp_path, ARGS + ["--data-dir", str(tiny_data)], new_dir_hook="send(1)")
    assert proc.returncode == 130 and "Traceback" not in proc.stderr
    assert f"resume with: python {ROOT / 'train_small.py'} --resume" in proc.stderr    # pasted from here
    run_dir = only_run(tmp_path / "runs")
    assert no_temp_files(run_dir) and log_of(run_dir)["status"] == "interrupted"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 0
    done = resume(tmp_path, tiny_data, run_dir)
    assert done.returncode == 0, done.stderr
    assert log_of(run_dir)["results"]["weights_sha256"] == reference


def test_resume_hint_of_a_stopped_extended_run_works(tiny_data, tmp_path):
    first = child(tmp_path, ["--epochs", "1", "--out", "mine", "--device", "cpu", "--data-dir", str(tiny_data)])
    assert first.returncode == 0, first.stderr
    run_dir = only_run(tmp_path / "mine")
    # extend to 3 epochs; a signal as epoch 2's checkpoint is saved stops it after epoch 2
    proc = child(tmp_path, ["--resume", str(run_dir), "--epochs", "3", "--data-dir", str(tiny_data)],
                 hook="if path.name == 'checkpoint.pt' and obj['epoch'] == 2: send(1)")
    assert proc.returncode == 130, proc.stderr
    hint = re.search(r"resume with: python (\S+) (.*)$", proc.stderr, re.M)
    assert hint and "--epochs 3" in hint.group(2)
    follow = spawn.run([sys.executable, hint.group(1), *hint.group(2).split(),          # as pasted here
                        "--data-dir", str(tiny_data)], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert follow.returncode == 0, follow.stderr
    log = log_of(run_dir)
    assert log["status"] == "complete" and log["results"]["epochs"] == 3 and len(log["history"]) == 3


def test_second_interrupt_exit_status_is_always_130(tiny_data, tmp_path):
    """The second signal ends the process through os._exit, wherever it lands."""
    hook = "if path.name == 'checkpoint.pt' and obj['epoch'] == 1: send(2, signal.SIGINT)"
    for i in range(3):
        (tmp_path / str(i)).mkdir()
        proc = child(tmp_path / str(i), ARGS + ["--data-dir", str(tiny_data)], hook=hook)
        assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
        assert no_temp_files(tmp_path / str(i))


def test_first_interrupt_during_the_download_stops_it_at_once(workdir, capsys, monkeypatch):
    """Set-up writes nothing a stop needs: the first Ctrl-C ends the download there, which
    removes what it fetched and the folder it made, and no run folder is created."""
    import signal
    import time

    import torchvision.datasets.utils as tv_utils
    from conftest import make_cifar

    def fetch(url, download_root, filename, md5):
        (Path(download_root) / filename).write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)                          # the fetch would go on; the signal ends it here
        make_cifar(download_root, n_train=20, n_test=10)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fetch)
    code, out, err = run(train_small, capsys, "--epochs", "1", "--data-dir", "new/data",
                         "--out", "runs", "--device", "cpu")
    assert code == 130, err
    assert "stopping after this batch" not in out
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert sorted(p.name for p in workdir.iterdir()) == []          # no data folder, no runs/


def test_first_interrupt_while_a_checkpoint_loads_stops_at_once(tiny_data, workdir, capsys, monkeypatch):
    """Reading the checkpoint to resume writes nothing: the first Ctrl-C ends it there and the
    run folder is left as it was."""
    import signal
    import time

    import engine
    code, _, err = run(train_small, capsys, "--epochs", "1", "--data-dir", str(tiny_data),
                       "--out", "runs", "--device", "cpu")
    assert code == 0, err
    run_dir = only_run(workdir / "runs")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    real_load = engine.load_checkpoint

    def slow_load(path):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)                          # the load would go on; the signal ends it here
        return real_load(path)
    monkeypatch.setattr(engine, "load_checkpoint", slow_load)
    code, out, err = run(train_small, capsys, "--resume", str(run_dir), "--epochs", "2",
                         "--data-dir", str(tiny_data), "--device", "cpu")
    assert code == 130, err
    assert "stopping after this batch" not in out
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_signal_inside_a_print_is_noted_after_it(monkeypatch):
    """A signal that lands while a loss line (or the progress bar) is being written: the
    stream's buffer refuses the handler's own print, so the stop's note waits for the flag's
    next reader instead of raising out of the print in progress."""
    import io
    import signal

    import engine

    class Raw(io.RawIOBase):
        def __init__(self):
            self.data, self.fire = bytearray(), True

        def writable(self):
            return True

        def write(self, b):
            if self.fire:                        # the handler runs here, inside the buffered write
                self.fire = False
                os.kill(os.getpid(), signal.SIGINT)
            self.data += bytes(b)
            return len(b)

    raw = Raw()
    stream = io.TextIOWrapper(io.BufferedWriter(raw), line_buffering=True)
    monkeypatch.setattr(sys, "stdout", stream)
    stop = engine.StopFlag()
    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with stop.installed():
            print("[1, 100] loss: 2.300", flush=True)
            assert stop                          # the flag is up, and its reader says why
    finally:                                     # a stopped flag leaves the signals ignored
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
    text = raw.data.decode()
    assert text.startswith("[1, 100] loss: 2.300\n"), text
    assert "SIGINT: stopping after this batch" in text and not stop.unsaid


# ---------------------------------------------------------------- full disk

def test_full_disk_inside_torch_save_is_one_line(tiny_data, workdir, capsys, monkeypatch):
    import atomic
    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            f.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4352 vs 4240")
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(atomic, "_nearly_full", lambda folder, margin=0: True)
    code, _, err = run(train_small, capsys, "--epochs", "2", "--data-dir", str(tiny_data),
                       "--out", "runs", "--device", "cpu")
    assert_error(code, err, r"cannot write .*checkpoint.pt \(No space left on device\); the checkpoint "
                            r"of epoch 0 is kept: free some disk space, then resume with: python "
                            rf"{re.escape(str(ROOT / 'train_small.py'))} --resume runs/")
    assert err.count("free some") == 1
    run_dir = only_run(workdir / "runs")
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 0
    assert no_temp_files(run_dir) and log_of(run_dir)["status"] == "interrupted"


def fill_disk_at(monkeypatch, nth, stays_full):
    """Every atomic write from the ``nth`` on (or only the ``nth``) fails as a full disk does:
    fsync of its temp file raises ENOSPC.  Returns the list of paths written, for counting."""
    import errno
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == nth or (stays_full and len(calls) > nth):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def follow(hint_line, capsys):
    """Run the command a one-line error ends with, in this process; (exit status, stdout, stderr)."""
    m = re.search(r"(?:resume with|start the run again): python (\S+) (.*)$", hint_line)
    assert m, hint_line
    script = {"train_small.py": train_small}[Path(m.group(1)).name]
    return run(script, capsys, *m.group(2).split())


@pytest.fixture(scope="module")
def one_epoch_reference(tiny_data, tmp_path_factory):
    """The weights of an uninterrupted one-epoch run (the runs below write 6 files: the checkpoints
    of epochs 0 and 1, three run logs, the weights)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("ref1"))
        assert train_small.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", "runs",
                                 "--device", "cpu"]) == 0
        return log_of(only_run("runs"))["results"]["weights_sha256"]


@pytest.mark.parametrize("stays_full", [False, True], ids=["one-write", "stays-full"])
@pytest.mark.parametrize("nth", [1, 2, 3, 4, 5, 6])
def test_a_disk_that_fills_at_any_write_leaves_a_run_the_printed_command_completes(
        nth, stays_full, tiny_data, workdir, capsys, monkeypatch, one_epoch_reference):
    args = ["--epochs", "1", "--data-dir", str(tiny_data), "--out", "runs", "--device", "cpu"]
    with monkeypatch.context() as mp:
        fill_disk_at(mp, nth, stays_full)
        code, _, err = run(train_small, capsys, *args)
    assert_error(code, err, r"cannot write \S+ \(No space left on device\); .* free some disk space, then "
                            r"(resume with|start the run again): python \S*train_small.py")
    assert err.count("free some") == 1
    folders = [p for p in (workdir / "runs").iterdir()] if (workdir / "runs").exists() else []
    if nth == 1:                 # not even epoch 0's checkpoint: nothing to resume, nothing left
        assert folders == [] and "start the run again" in err
    else:
        (run_dir,) = folders
        assert no_temp_files(run_dir) and (run_dir / "weights.pt").exists() == (nth == 6)
        if not stays_full:                    # the log fits where the failed write did not
            assert log_of(run_dir)["status"] == "interrupted"
    code, _, err = follow(err.strip(), capsys)                       # the disk has room again
    assert code == 0, err
    (run_dir,) = [p for p in (workdir / "runs").iterdir()]
    assert log_of(run_dir)["status"] == "complete" and no_temp_files(run_dir)
    assert log_of(run_dir)["results"]["weights_sha256"] == one_epoch_reference


@pytest.mark.parametrize("nth", [3, 4, 6])
def test_a_full_disk_between_sparse_checkpoints_resumes_from_the_last_one(nth, tiny_data, workdir, capsys,
                                                                          monkeypatch, reference):
    """With --checkpoint-every 2 the writes are: checkpoint 0, log, epoch 1's log (no checkpoint),
    checkpoint 2, log, weights, log.  A full disk at epoch 1's log or epoch 2's checkpoint keeps
    checkpoint 0, and says so; the printed command trains on from there to the same weights."""
    args = ["--epochs", "2", "--checkpoint-every", "2", "--data-dir", str(tiny_data), "--out", "runs",
            "--device", "cpu"]
    with monkeypatch.context() as mp:
        fill_disk_at(mp, nth, True)
        code, _, err = run(train_small, capsys, *args)
    kept = 2 if nth == 6 else 0
    assert_error(code, err, rf"\(No space left on device\); the checkpoint of epoch {kept} is kept: free some "
                            r"disk space, then resume with: python \S*train_small.py --resume \S+ --epochs 2$")
    run_dir = only_run(workdir / "runs")
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == kept
    code, _, err = follow(err.strip(), capsys)
    assert code == 0, err
    assert log_of(run_dir)["status"] == "complete" and no_temp_files(run_dir)
    assert log_of(run_dir)["results"]["weights_sha256"] == reference


# ---------------------------------------------------------------- extending a complete run

def test_a_stopped_extension_keeps_the_complete_result_in_use(one_epoch, tiny_data, capsys, monkeypatch):
    """--resume with more --epochs, stopped by a signal or a full disk at any moment: the run log
    keeps the complete run's results, predict.py --run keeps classifying with its weights, and the
    printed command completes the extension."""
    import signal as sig

    import engine
    import predict
    from PIL import Image
    picture = one_epoch.parent.parent / "p.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(picture)
    flags = ["--run", one_epoch.name, "--runs", "runs", "--device", "cpu", "--json"]
    code, before, _ = run(predict, capsys, str(picture), *flags)
    assert code == 0
    complete = log_of(one_epoch)["results"]
    real_step = engine.train_step
    stops = [("a signal in epoch 2", lambda mp: mp.setattr(engine, "train_step", lambda *a: (
                 os.kill(os.getpid(), sig.SIGINT), real_step(*a))[1]), r"interrupted at \[2, 1\]"),
             ("a full disk at epoch 2's checkpoint", lambda mp: fill_disk_at(mp, 2, True), r"No space left"),
             ("a full disk at the weights", lambda mp: fill_disk_at(mp, 4, True), r"No space left")]
    handlers = sig.getsignal(sig.SIGINT), sig.getsignal(sig.SIGTERM)
    for name, stop, said in stops:
        with monkeypatch.context() as mp:
            stop(mp)
            try:
                code, _, err = run(train_small, capsys, "--resume", str(one_epoch), "--epochs", "2")
            finally:                             # a stopped run leaves the signals ignored
                sig.signal(sig.SIGINT, handlers[0])
                sig.signal(sig.SIGTERM, handlers[1])
        assert code in (2, 130) and re.search(said, err), (name, err)
        stopped = err
        log = log_of(one_epoch)
        assert log["status"] != "complete" and log["results"] == complete, name
        code, now, err = run(predict, capsys, str(picture), *flags)
        assert code == 0, (name, err)
        assert json.loads(now)["images"] == json.loads(before)["images"], name
    code, _, err = follow(re.search(r"resume with: .*$", stopped, re.M).group(0), capsys)
    assert code == 0, err
    log = log_of(one_epoch)
    assert log["status"] == "complete" and log["results"]["epochs"] == 2 and len(log["history"]) == 2


def test_weights_an_unfinished_extension_rewrote_are_not_passed_off_as_the_complete_ones(
        one_epoch, tiny_data, capsys):
    """Killed between writing the extension's weights and its complete log: the log's results
    are the earlier run's, the weights are not, and predict.py says how to complete it."""
    import predict
    log = log_of(one_epoch)
    log["status"] = "running"
    (one_epoch / "run_log.json").write_text(json.dumps(log))
    state = torch.load(one_epoch / "weights.pt", weights_only=True)
    state["fc3.bias"] = state["fc3.bias"] + 1
    torch.save(state, one_epoch / "weights.pt")
    code, _, err = run(predict, capsys, str(one_epoch / "weights.pt"), "--run", one_epoch.name,
                       "--runs", "runs", "--device", "cpu")
    assert_error(code, err, r"its extension wrote \S+weights.pt but did not complete; complete it with: "
                            r"python \S*train_small.py --resume \S+ --epochs 1$")

# ---------------------------------------------------------------- crafted data

def _write_batches(folder, train, test):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(train, f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(test, f, protocol=2)


GOOD = {"data": np.zeros((10, 3072), np.uint8), "labels": list(range(10))}


@pytest.mark.parametrize("train, test, pattern", [
    ({"data": GOOD["data"], "labels": ["cat"] * 10}, GOOD, r"labels that are not whole numbers"),
    ({"data": GOOD["data"], "labels": [None] * 10}, GOOD, r"labels that are not whole numbers"),
    ({"data": GOOD["data"], "labels": [float("nan")] * 10}, GOOD, r"labels that are not whole numbers"),
    ({"data": GOOD["data"], "labels": [1.0] * 10}, GOOD, r"labels that are not whole numbers"),
    ({"data": GOOD["data"], "labels": [2**70] * 10}, GOOD,
     r"has 10 labels outside 0-9, the first 1180591620717411303424 \(image 0\)"),
    ({"data": GOOD["data"], "labels": [0, 1, 2, 10, 4, 5, 6, 7, 8, 9]}, GOOD,
     r"has 1 labels outside 0-9, the first 10 \(image 3\)"),
    ({"data": GOOD["data"], "labels": [-1] * 10}, GOOD, r"has 10 labels outside 0-9, the first -1 \(image 0\)"),
    ({"data": GOOD["data"], "labels": list(range(9))}, GOOD, r"has 9 labels for 10 images; "),
    ({"data": GOOD["data"], "labels": list(range(10)) + [11]}, GOOD, r"has 11 labels for 10 images; "),
    ({"data": [[0] * 3072, [0] * 5], "labels": [0, 1]}, GOOD, r"ragged|shape"),
    ({"data": np.zeros((0, 3072), np.uint8), "labels": []}, GOOD, r"the train files .* hold no images"),
    (GOOD, {"data": np.zeros((0, 3072), np.uint8), "labels": []}, r"the test files .* hold no images"),
])
def test_bad_data_contents(train, test, pattern, workdir, capsys):
    _write_batches(workdir / "bad" / "cifar-10-batches-py", train, test)
    for script, args in ((train_small, ["--epochs", "1", "--out", "runs", "--no-download"]),
                         (va, ["--untrained", "--model", "small", "--out", "maps", "--no-download"]),
                         (benchmark, ["pipeline", "--out", "runs", "--no-download"])):
        code, _, err = run(script, capsys, *args, "--data-dir", str(workdir / "bad"), "--device", "cpu")
        assert_error(code, err, pattern)
        assert "Traceback" not in err
    assert not (workdir / "runs").exists() and not (workdir / "maps").exists()


def test_a_folder_in_place_of_a_batch_file_is_named_as_such(workdir, capsys):
    folder = workdir / "bad" / "cifar-10-batches-py"
    _write_batches(folder, GOOD, GOOD)
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").mkdir()
    code, _, err = run(train_small, capsys, "--epochs", "1", "--data-dir", str(workdir / "bad"),
                       "--no-download", "--device", "cpu")
    assert_error(code, err, r"data_batch_3 is a folder, not a batch file: delete it")


def _doubling(depth, row=3072):
    """Lists of lists that double at every level: ``depth`` small lists hold 2**depth rows."""
    rows = [0] * row
    for _ in range(depth):
        rows = [rows, rows]
    return {"data": rows, "labels": [0]}


def _self_referencing_list():
    rows = [[0] * 3072]
    rows.append(rows)
    return {"data": rows, "labels": [0]}


def _self_referencing_dict():
    entry = {"labels": [0]}
    entry["data"] = entry
    return entry


def _shared_rows(n):
    row = [0] * 3072
    return {"data": [row] * n, "labels": [0] * n}


@pytest.mark.parametrize("entry", [_doubling(30), _doubling(20, row=8), _doubling(40, row=1),
                                   _self_referencing_list(), _self_referencing_dict(),
                                   _shared_rows(3), _shared_rows(5000)],
                         ids=["double-30", "double-20", "double-40", "self-list", "self-dict",
                              "shared-3", "shared-5000"])
def test_a_pickle_that_would_build_more_than_it_holds_is_refused_before_it_is_built(entry, tmp_path):
    """A few kilobytes of memo references could stand for 2^30 rows: the loader answers at once."""
    folder = tmp_path / "cifar-10-batches-py"
    _write_batches(folder, GOOD, GOOD)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump(entry, f, protocol=2)
    assert (folder / "data_batch_2").stat().st_size < 40_000
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cli, data; "
            "raise SystemExit(cli.guarded(lambda: data.load_arrays(sys.argv[1]) and 0))")
    proc = spawn.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=60)
    assert_error(proc.returncode, proc.stderr, r"data_batch_2 is not a CIFAR-10 batch: its pickle asks for "
                                               r"more \(refusing a container referenced twice")


def test_the_official_files_load_as_before(tiny_data):
    """The bounded unpickler reads what Python's own reads (the pickles of the test data here;
    the official files the same way, checked by hand: 6 files, equal arrays and lists)."""
    import data
    for name in data.TRAIN_FILES + data.TEST_FILES:
        raw = (tiny_data / "cifar-10-batches-py" / name).read_bytes()
        ours, theirs = data.safe_unpickle(raw), pickle.loads(raw, encoding="latin1")
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


# ---------------------------------------------------------------- crafted checkpoints

@pytest.fixture
def one_epoch(tiny_data, workdir, capsys):
    assert run(train_small, capsys, "--epochs", "1", "--data-dir", str(tiny_data), "--out", "runs",
               "--device", "cpu")[0] == 0
    return only_run(workdir / "runs")


@pytest.mark.parametrize("change", [
    lambda c: c.update(config=None),
    lambda c: c.pop("epoch"),
    lambda c: c["config"].update(colour="red"),
    lambda c: c.update(model={k: torch.zeros(1) for k in c["model"]}),
    lambda c: c.update(epoch="one"),
])
def test_crafted_checkpoints_are_refused(change, one_epoch, tiny_data, capsys):
    path = one_epoch / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    code, _, err = run(train_small, capsys, "--resume", str(one_epoch), "--epochs", "2",
                       "--data-dir", str(tiny_data))
    assert_error(code, err, r"not a checkpoint of this (project's runs|run)")


BAD_CONFIG = {
    "batch_size": [0, -4, "4", 4.0, True, None], "lr": [-1.0, 0, float("nan"), "0.001", None],
    "epochs": ["3", 0, 10**9, 2.5], "precision": ["fp8", 16], "seed": [-5, 2**40, 1.5],
    "data_dir": [5, None], "out": [["runs"]], "cutout": [1000, -1], "device": ["tpu"],
    "model": ["nope", 3], "momentum": [-0.5, float("inf")], "weight_decay": [-1e-4, None],
    "val": [-3, "5000"], "val_seed": [-1], "label_smoothing": [2.0, -0.1], "ema": [1.0, -0.5],
    "threads": [-1, "2"], "log_every": [0], "augment": ["yes", 1], "cuda_graph": ["auto"],
    "recipe": ["fastest"], "max_lr": [0.0], "subset": [-1, "2000"], "checkpoint_every": [-2, 1.0],
    "whiten": [-1], "crop_padding": [99], "bias_lr_scale": [0.0], "triangle": ["on"], "lookahead": [-1],
    "alt_flip": [2],
}


@pytest.fixture(scope="module")
def saved_checkpoint(tiny_data, tmp_path_factory):
    """A one-epoch run's checkpoint, as a dict, for crafting."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("ckpt"))
        assert train_small.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", "runs",
                                 "--device", "cpu"]) == 0
        return torch.load(only_run("runs") / "checkpoint.pt", weights_only=True)


def crafted(ckpt, change, folder):
    """``change`` applied to a copy of ``ckpt``, saved as ``folder``/checkpoint.pt."""
    import copy
    ckpt = copy.deepcopy(ckpt)
    change(ckpt)
    folder.mkdir(exist_ok=True)
    torch.save(ckpt, folder / "checkpoint.pt")
    return folder / "checkpoint.pt"


def refused(path):
    import engine
    from errors import UserError
    with pytest.raises(UserError) as info:
        engine.load_checkpoint(path)
    return str(info.value)


@pytest.mark.parametrize("field, value", [(f, v) for f, vs in BAD_CONFIG.items() for v in vs])
def test_a_checkpoints_config_passes_the_command_lines_validators(field, value, saved_checkpoint, tmp_path):
    path = crafted(saved_checkpoint, lambda c: c["config"].update({field: value}), tmp_path / "run")
    assert re.search(rf"is not a checkpoint of this project's runs \(config: {field} .*\); start a new run$",
                     refused(path))


def _history_entry(c):
    return dict(c["history"][0])


@pytest.mark.parametrize("name, change", [
    ("epoch beyond the run", lambda c: c.update(epoch=99)),
    ("negative epoch", lambda c: c.update(epoch=-1)),
    ("epoch as a bool", lambda c: c.update(epoch=True)),
    ("history of text", lambda c: c.update(history=["x", 1])),
    ("history short of the epoch", lambda c: c.update(history=[])),
    ("history without times", lambda c: c.update(history=[{"epoch": 1}])),
    ("history of another epoch", lambda c: c.update(history=[{**_history_entry(c), "epoch": 2}])),
    ("history loss as text", lambda c: c.update(history=[{**_history_entry(c), "train_loss": "low"}])),
    ("loss line of text", lambda c: c.update(loss_lines=["x"])),
    ("loss line of a later epoch", lambda c: c.update(loss_lines=[[5, 1, 1.0]])),
    ("loss line without a loss", lambda c: c.update(loss_lines=[[1, 1, None]])),
    ("resumes of text", lambda c: c.update(resumes="oops")),
    ("resumes of numbers", lambda c: c.update(resumes=[1])),
    ("resume with text epochs", lambda c: c.update(resumes=[{"after_epoch": "one"}])),
    ("dataset id a number", lambda c: c.update(dataset_id=5)),
    ("started a number", lambda c: c.update(started=5)),
])
def test_a_checkpoints_fields_are_checked_before_a_resume_reads_them(name, change, saved_checkpoint, tmp_path):
    assert re.search(r"is not a checkpoint of this project's runs \(.+\); start a new run$",
                     refused(crafted(saved_checkpoint, change, tmp_path / "run")))


@pytest.mark.parametrize("change, pattern", [
    (lambda c: c["config"].update(batch_size=0), r"\(config: batch_size 0 is not a positive whole number\)"),
    (lambda c: c.update(loss_lines=["x"]), r"\(loss_lines are not \[epoch, batch, loss\]"),
    (lambda c: c.update(epoch=99), r"\(epoch 99 is not within the run's 1 epochs\)"),
    (lambda c: c.update(optimizer={"state": 5, "param_groups": 7}), r"does not fit this run's model or settings"),
    (lambda c: c.update(rng={"torch": 5}), r"does not fit this run's model or settings"),
])
def test_a_crafted_checkpoint_ends_a_resume_with_one_line(change, pattern, saved_checkpoint, tiny_data,
                                                          workdir, capsys):
    folder = workdir / "runs" / "crafted"
    folder.parent.mkdir()
    crafted(saved_checkpoint, change, folder)
    code, _, err = run(train_small, capsys, "--resume", str(folder), "--epochs", "2")
    assert_error(code, err, pattern)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]


def test_a_resume_removes_the_temp_files_a_killed_write_left(one_epoch, tiny_data, capsys):
    """SIGKILL mid-write leaves ``.checkpoint.pt.XXXX.tmp`` and the like: the next resume removes them."""
    left = [one_epoch / f".{name}.abc123.tmp" for name in
            ("checkpoint.pt", "weights.pt", "weights_ema.pt", "run_log.json")]
    for f in left:
        f.write_bytes(b"half a file")
    (one_epoch / "notes.tmp").write_text("the user's own")
    code, _, err = run(train_small, capsys, "--resume", str(one_epoch), "--epochs", "2")
    assert code == 0, err
    assert not any(f.exists() for f in left) and (one_epoch / "notes.tmp").exists()


# ---------------------------------------------------------------- numbers and misleading output

@pytest.mark.parametrize("argv, pattern", [
    (["--untrained", "--seed", "999999999999999999999999"], r"--seed: .* is not a seed"),
    (["--untrained", "--layers", ""], r"--layers: '' names no layer"),
])
def test_visualize_bad_numbers(argv, pattern, tiny_data, workdir, capsys):
    code, _, err = run(va, capsys, *argv, "--data-dir", str(tiny_data))
    assert_error(code, err, pattern)


@pytest.mark.parametrize("flag, value, pattern", [
    ("--epochs", "1e9", r"--epochs: '1e9' is not a whole number"),
    ("--batch-size", "1.5", r"--batch-size: '1.5' is not a whole number"),
    ("--epochs", "99999999999999999999999", r"--epochs: 99999999999999999999999 is not an epoch count from 1 to 1000"),
    ("--epochs", "1001", r"--epochs: 1001 is not an epoch count from 1 to 1000"),
    ("--lr", "fast", r"--lr: 'fast' is not a number"),
])
def test_numbers_say_what_they_must_be(flag, value, pattern, workdir, capsys):
    code, _, err = run(train_small, capsys, flag, value, "--no-download", "--data-dir", "none")
    assert_error(code, err, pattern)


def test_the_onecycle_table_of_the_graph_step_is_computed_at_once(monkeypatch):
    """--cuda-graph's table of every step's rate: tensor operations, not a scheduler stepped once
    per step in Python (a million epochs were a list that outlasted Ctrl-C)."""
    import graphs
    import recipes
    steps = []
    real = torch.optim.lr_scheduler.OneCycleLR.step
    monkeypatch.setattr(torch.optim.lr_scheduler.OneCycleLR, "step",
                        lambda self, *a: (steps.append(1), real(self, *a))[1])
    cfg = recipes.config_for("large", onecycle=True)
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    lrs, moms = graphs.schedule_table(cfg, opt, graphs.onecycle(opt, cfg.max_lr, 200_000), 200_000,
                                      torch.device("cpu"))
    assert len(steps) <= 2 and lrs.shape == moms.shape == (200_000,)      # the schedulers' own first steps
    assert lrs[59_999].item() == pytest.approx(cfg.max_lr) and lrs[0].item() == pytest.approx(cfg.max_lr / 25)
    assert moms[59_999].item() == pytest.approx(0.85) and lrs[-1].item() < 1e-6


def test_benchmark_worker_count_is_bounded(tiny_data, workdir, capsys):
    code, _, err = run(benchmark, capsys, "pipeline", "--num-workers", "100000000",
                       "--data-dir", str(tiny_data))
    assert_error(code, err, r"--num-workers: 100000000 is not a worker count from 0 to \d+")


def test_visualize_run_with_other_models_weights_names_a_way_that_works(one_epoch, tiny_data, capsys):
    other = {k: v for k, v in __import__("models").build_model("large").state_dict().items()}
    torch.save(other, one_epoch / "weights.pt")
    code, _, err = run(va, capsys, "--run", str(one_epoch), "--data-dir", str(tiny_data))
    assert_error(code, err, r"they are large weights, not the run's; pass them with --weights \S+ --model large")


def test_git_commit_only_from_the_projects_own_repository(tmp_path, monkeypatch):
    import hwdna
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = tmp_path / "outer"
    (top / "copy").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    subprocess.run(["git", "-C", str(top), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    monkeypatch.setattr(hwdna, "ROOT", top / "copy")      # a copy of the project inside another repo
    assert hwdna.git_commit() is None
    monkeypatch.setattr(hwdna, "ROOT", top)
    assert hwdna.git_commit()["commit"]


def test_the_latest_run_log_does_not_make_the_code_dirty(tmp_path, monkeypatch):
    """A --seeds series rewrites the top-level run_log.json after each run: the next run's code is
    still the commit's.  A changed code file, or a run_log.json in a subfolder, is dirty."""
    import hwdna
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = tmp_path / "project"
    (top / "sub").mkdir(parents=True)
    for name in ("run_log.json", "engine.py", "sub/run_log.json"):
        (top / name).write_text("0\n")
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    subprocess.run(["git", "-C", str(top), "add", "."], check=True)
    subprocess.run(["git", "-C", str(top), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"],
                   check=True)
    monkeypatch.setattr(hwdna, "ROOT", top)
    (top / "run_log.json").write_text("1\n")
    assert hwdna.git_commit()["dirty"] is False
    for name in ("engine.py", "sub/run_log.json"):
        (top / name).write_text("1\n")
        assert hwdna.git_commit()["dirty"] is True, name
        subprocess.run(["git", "-C", str(top), "checkout", "-q", "--", name], check=True)


# ---------------------------------------------------------------- report

@pytest.mark.parametrize("path, value", [
    (("config", "epochs"), "two"), (("results", "train_time_s"), "slow"), (("resumes",), "x"),
    (("history",), [{"epoch": "a"}]), (("loss_lines",), [["a", "b", "c"]]),
    (("dataset", "train_images"), None), (("results", "per_class"), {"cat": "high"}),
])
def test_report_skips_a_badly_typed_log_with_a_warning(path, value, one_epoch, workdir, capsys):
    import report
    bad = one_epoch.parent / "bad"
    shutil.copytree(one_epoch, bad)
    rec = log_of(bad)
    part = rec
    for key in path[:-1]:
        part = part[key]
    part[path[-1]] = value
    (bad / "run_log.json").write_text(json.dumps(rec))
    code, out, err = run(report, capsys, "--runs", "runs", "--output", "doc/results.md")
    assert code == 0 and "Traceback" not in err
    assert re.search(rf"warning: skipping \S*bad/run_log.json: {'.'.join(path)}", err), err
    text = (workdir / "doc" / "results" / "details.md").read_text()        # the run index
    assert one_epoch.name in text and "`bad`" not in text


def test_report_bounds_and_flags(one_epoch, workdir, capsys):
    import report
    code, _, err = run(report, capsys, "--runs", "runs", "--dpi", "100000")
    assert_error(code, err, r"--dpi: 100000 is not a resolution from 10 to 600")
    (workdir / "afile").write_text("x")
    code, _, err = run(report, capsys, "--runs", "runs", "--output", "afile/results.md")
    assert code == 2 and "--out " not in err and "--output" in err


# ---------------------------------------------------------------- predict.py and export.py on odd files

@pytest.fixture
def weights_flags(saved_checkpoint, tmp_path):
    torch.save(saved_checkpoint["model"], tmp_path / "w.pt")
    return ["--weights", str(tmp_path / "w.pt"), "--model", "small", "--device", "cpu"]


def _errors(err):
    return [l for l in err.splitlines() if l.strip()]


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("high", [65535, 40000, 1000])
def test_a_16_bit_image_is_scaled_not_clipped(high, suffix, tmp_path):
    import predict
    from PIL import Image
    grey = np.linspace(0, high, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / f"g.{suffix}")
    assert Image.open(tmp_path / f"g.{suffix}").mode.startswith("I")
    got = predict.load_image(tmp_path / f"g.{suffix}")
    want = np.round(grey.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert all(np.array_equal(got[c].numpy(), want) for c in range(3))


@pytest.mark.parametrize("pixels, kind", [
    (np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), "floating-point"),
    (np.full((32, 32), 0.25, np.float32), "floating-point"),
    (np.arange(32 * 32, dtype=np.int32).reshape(32, 32) * 1000, "32-bit integer"),
])
def test_pixels_without_a_fixed_range_are_refused_not_guessed(pixels, kind, weights_flags, pictures_dir, capsys):
    import predict
    from PIL import Image
    odd = pictures_dir / "odd.tif"
    Image.fromarray(pixels).save(odd)
    code, out, err = run(predict, capsys, str(odd), str(pictures_dir / "ok.png"), *weights_flags)
    assert code == 2 and _errors(err) == [f"error: cannot read {odd} ({kind} pixels have no fixed range; "
                                          "save it with 8 or 16 bits per channel)"], err
    assert "ok.png: " in out


@pytest.fixture
def pictures_dir(tmp_path):
    from PIL import Image
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "ok.png")
    return tmp_path


def test_a_fifo_or_device_among_the_images_is_named_and_the_rest_classified(weights_flags, pictures_dir, capsys):
    """A FIFO (or a device) given as an image would block the open: one line each, the rest
    classified; a FIFO inside a folder given is passed over, also without blocking."""
    import signal as sig

    import predict

    def late(signum, frame):
        raise TimeoutError("predict.py blocked on the FIFO")
    os.mkfifo(pictures_dir / "pipe.png")
    album = pictures_dir / "album"
    album.mkdir()
    os.mkfifo(album / "pipe2.png")
    shutil.copy(pictures_dir / "ok.png", album / "ok2.png")
    old = sig.signal(sig.SIGALRM, late)
    sig.alarm(30)
    try:
        code, out, err = run(predict, capsys, str(pictures_dir / "pipe.png"), "/dev/zero", str(album),
                             str(pictures_dir / "ok.png"), *weights_flags)
    finally:
        sig.alarm(0)
        sig.signal(sig.SIGALRM, old)
    assert code == 2 and len(_errors(err)) == 2, err
    assert all(re.fullmatch(r"error: cannot read \S+(pipe.png|zero) \(not a regular file\)", l) for l in _errors(err))
    assert "ok.png: " in out and "ok2.png: " in out


@pytest.mark.parametrize("side", [34, 40, 46])
def test_an_image_beyond_the_pixel_limit_is_one_line_before_it_is_decoded(side, weights_flags, pictures_dir,
                                                                         capsys, monkeypatch):
    """Pillow warns (two lines) between its limit and twice it, and decodes the whole image;
    here the limit is 1,100 pixels so that a small picture stands for a 12000x12000 one."""
    import predict
    from PIL import Image
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(pictures_dir / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1100)
    code, out, err = run(predict, capsys, str(pictures_dir / "big.png"), str(pictures_dir / "ok.png"),
                         *weights_flags)
    assert code == 2 and len(_errors(err)) == 1, err
    assert re.fullmatch(r"error: cannot read \S+big.png \(Image size \(\d+ pixels\) exceeds limit .*\)",
                        _errors(err)[0])
    assert "ok.png: " in out


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_plain_pickle_as_weights_or_checkpoint_is_one_line(protocol, pictures_dir, workdir):
    """In a child: torch's warning about the pickle goes to stderr there (pytest records warnings)."""
    path = workdir / "plain.pt"
    path.write_bytes(pickle.dumps({"fc3.bias": [0.0] * 10}, protocol=protocol))
    for args, pattern in ((["predict.py", str(pictures_dir / "ok.png"), "--weights", str(path), "--model",
                            "small", "--device", "cpu"], r"plain.pt is truncated or not a weights file \(\w+Error\)"),
                          (["train_small.py", "--resume", str(path)],
                           r"checkpoint \S+plain.pt is truncated or corrupt \(\w+Error\)")):
        proc = spawn.run([sys.executable, str(ROOT / args[0]), *args[1:]], capture_output=True, text=True,
                         timeout=300, cwd=workdir)
        assert_error(proc.returncode, proc.stderr, pattern)


EXPORT_ON_A_FULL_DISK = """
import errno, os, sys
sys.path.insert(0, {root!r})
import atomic
limit, which = int(sys.argv[1]), sys.argv[2]
real_fdopen = os.fdopen

class Full:
    def __init__(self, f):
        self.f, self.n = f, 0
    def write(self, b):
        self.n += len(b)
        if self.n > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(b)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

real_mkstemp = atomic.tempfile.mkstemp
def mkstemp(prefix="", **kw):
    fd, name = real_mkstemp(prefix=prefix, **kw)
    full.append(which in prefix)
    return fd, name
full = []
atomic.tempfile.mkstemp = mkstemp
atomic.os.fdopen = lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)) if full[-1] else real_fdopen(fd, *a, **k)
import export
raise SystemExit(export.main(sys.argv[3:]))
"""


@pytest.mark.parametrize("which, limit", [("model.pt2", 0), ("model.pt2", 1000), ("model.pt2", 100_000),
                                          ("model.json", 0), ("model.json", 100)])
def test_export_on_a_full_disk_is_one_line_and_exit_2(which, limit, weights_flags, tmp_path):
    code = EXPORT_ON_A_FULL_DISK.format(root=str(ROOT))
    flags = [*weights_flags[:-2], "--out", str(tmp_path / "ex")]          # export.py has no --device
    proc = spawn.run([sys.executable, "-c", code, str(limit), which, *flags],
                     capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert_error(proc.returncode, proc.stderr,
                 rf"cannot write \S+{which} \(No space left on device\); free some disk space")
    assert no_temp_files(tmp_path / "ex") and not list((tmp_path / "ex").rglob("model.json"))


# ---------------------------------------------------------------- a --seeds series that stops

def test_a_stopped_series_names_the_seeds_left_and_the_commands_finish_it(tiny_data, workdir, capsys, monkeypatch):
    import signal as sig

    import engine
    steps, real_step = [], engine.train_step

    def step(*a):
        steps.append(1)
        if len(steps) == 60:                  # in the second seed's run (50 steps a run)
            os.kill(os.getpid(), sig.SIGINT)
        return real_step(*a)
    monkeypatch.setattr(engine, "train_step", step)
    handlers = sig.getsignal(sig.SIGINT), sig.getsignal(sig.SIGTERM)
    try:
        code, _, err = run(train_small, capsys, "--epochs", "1", "--seeds", "7,8,9", "--data-dir", str(tiny_data),
                           "--out", "runs", "--device", "cpu")
    finally:
        sig.signal(sig.SIGINT, handlers[0])
        sig.signal(sig.SIGTERM, handlers[1])
    monkeypatch.setattr(engine, "train_step", real_step)
    assert code == 130, err
    first = log_of(sorted((workdir / "runs").iterdir())[0])["run_id"]
    said = re.search(r"the --seeds series stopped at seed 8 \(2 of 3\) after runs (\S+), so no mean over its "
                     r"seeds was printed: complete seed 8's run as said; then run the seeds not started with: "
                     r"(python .*)$", err, re.M)
    assert said and said.group(1) == first, err
    assert said.group(2).endswith("--seeds 9") and "--seeds 7,8,9" not in said.group(2)
    code, _, e = follow(re.search(r"resume with: .*$", err, re.M).group(0), capsys)
    assert code == 0, e
    code, out, e = run(train_small, capsys, *said.group(2).split()[2:])
    assert code == 0, e
    logs = [log_of(d) for d in (workdir / "runs").iterdir()]
    assert sorted((l["seed"], l["status"]) for l in logs) == [(7, "complete"), (8, "complete"), (9, "complete")]
