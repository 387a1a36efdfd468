"""The CUDA and MPS paths, checked on a CPU: the choices they make (bf16, TF32 floors, macOS), with
torch's device queries replaced where the machine has no such device."""
import pytest
import torch

import compute
from errors import UserError

CUDA, MPS = torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_takes_bf16_on_cuda_only_where_the_gpu_computes_it(native, expected, monkeypatch):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native or including_emulation              # a pre-Ampere GPU emulates bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert compute.amp_dtype("auto", CUDA) is expected
    assert asked == [False]


@pytest.mark.parametrize("version, refused", [("13.6.1", True), ("12.7", True), ("14.0", False),
                                              ("15.2", False), ("", False)])
def test_bf16_on_mps_needs_macos_14(version, refused, monkeypatch):
    monkeypatch.setattr(compute.platform, "mac_ver", lambda: (version, ("", "", ""), "arm64"))
    if refused:
        with pytest.raises(UserError, match="macOS 14") as exc_info:
            compute.amp_dtype("bf16", MPS)
        assert "\n" not in str(exc_info.value) and version in str(exc_info.value)
    else:
        assert compute.amp_dtype("bf16", MPS) is torch.bfloat16
    assert compute.amp_dtype("fp16", MPS) is torch.float16              # fp16 is not refused


@pytest.mark.parametrize("cudnn, matmul, expected", [(True, False, "tf32"), (False, True, "tf32"),
                                                     (False, False, "fp32")])
def test_the_fp32_floor_on_cuda_is_at_the_tf32_rate_when_convolutions_use_it(cudnn, matmul, expected,
                                                                             monkeypatch):
    import benchmark
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul
    try:
        floor_precision(benchmark, expected, matmul, monkeypatch)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def floor_precision(benchmark, expected, matmul, monkeypatch):
    assert benchmark.matrix_precision(CUDA, None) == expected
    assert benchmark.matrix_precision(CUDA, torch.bfloat16) == "bf16"
    assert benchmark.matrix_precision(torch.device("cpu"), None) == "fp32"
    seen = []
    monkeypatch.setattr(benchmark, "_matrix_rate",
                        lambda *a: seen.append(torch.backends.cuda.matmul.allow_tf32) or 1.0)
    benchmark.matrix_rate(CUDA, torch.float32, tf32=expected == "tf32")
    assert seen == [expected == "tf32" or matmul] and torch.backends.cuda.matmul.allow_tf32 == matmul


def test_cuda_benchmarks_time_hundreds_of_steps_and_the_cpu_stays_cheap():
    import benchmark
    cpu = torch.device("cpu")
    assert benchmark.default_steps("floor", CUDA) >= 300 and benchmark.default_steps("precision", CUDA) >= 300
    assert benchmark.default_steps("floor", cpu) <= 20 and benchmark.default_steps("precision", cpu) <= 20


# ---------------------------------------------------------------- checkpoints every N epochs

def test_cuda_checkpoints_every_10_epochs_and_other_devices_every_epoch():
    import recipes
    cfg = recipes.Config()
    assert recipes.checkpoint_every(cfg, "cuda") == 10
    assert recipes.checkpoint_every(cfg, "cpu") == recipes.checkpoint_every(cfg, "mps") == 1
    assert recipes.checkpoint_every(recipes.Config(checkpoint_every=3), "cuda") == 3


def _train(tiny_data, out, *extra):
    import train_large
    return train_large.main(["--epochs", "3", "--checkpoint-every", "2", "--log-every", "1",
                             "--data-dir", str(tiny_data), "--device", "cpu", "--out", str(out), *extra])


def _log(out):
    import json
    (path,) = out.glob("*/run_log.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("where", ["during", "after"])
def test_a_resume_continues_from_the_last_checkpoint(where, tiny_data, tmp_path, monkeypatch, capsys):
    import signal
    import engine
    assert _train(tiny_data, tmp_path / "whole") == 0
    whole = _log(tmp_path / "whole")
    # the digest is taken where a checkpoint is written: epoch 2 and the last
    assert [h["weights_sha256"] is not None for h in whole["history"]] == [False, True, True]
    assert whole["results"]["wall_time_s"] >= whole["results"]["train_time_s"] > 0
    assert "wall time" in capsys.readouterr().out

    flags, real = [], engine.StopFlag
    monkeypatch.setattr(engine, "StopFlag", lambda: flags.append(real()) or flags[-1])
    if where == "during":                     # a signal in epoch 3: the checkpoint holds epoch 2
        train_one_epoch = engine.train_one_epoch

        def stopping(t, epoch, stop):
            if epoch == 3:
                stop.signum = signal.SIGINT
            return train_one_epoch(t, epoch, stop)
        monkeypatch.setattr(engine, "train_one_epoch", stopping)
        kept = 2
    else:                                     # a signal after epoch 1: that epoch is saved then
        end_of_epoch = engine.end_of_epoch

        def stopping(t, epoch, *args):
            out = end_of_epoch(t, epoch, *args)
            if epoch == 1:
                flags[-1].signum = signal.SIGINT
            return out
        monkeypatch.setattr(engine, "end_of_epoch", stopping)
        kept = 1
    assert _train(tiny_data, tmp_path / "cut") == 130
    assert f"the checkpoint holds epoch {kept}" in capsys.readouterr().err or where == "after"
    (ckpt,) = (tmp_path / "cut").glob("*/checkpoint.pt")
    assert torch.load(ckpt, weights_only=True)["epoch"] == kept
    monkeypatch.undo()
    assert _train(tiny_data, tmp_path / "cut", "--resume", ckpt.parent.name) == 0
    resumed = _log(tmp_path / "cut")
    assert f"resuming {ckpt.parent.name} after epoch {kept}" in capsys.readouterr().out
    assert resumed["results"]["weights_sha256"] == whole["results"]["weights_sha256"]
    assert resumed["loss_lines"] == whole["loss_lines"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]


# ---------------------------------------------------------------- MPS, checked on a CPU

def test_the_gather_crops_equal_the_window_crops():
    import data
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (37, 3, 32, 32), generator=g, dtype=torch.uint8)
    index = torch.randperm(37, generator=g)
    shifts = torch.randint(0, 9, (37, 2), generator=g)
    flips = torch.randint(0, 2, (37,), generator=g).bool()
    want = data.take_crops(data.crop_windows(x), index, shifts, flips)
    got = data.gather_crops(torch.nn.functional.pad(x, (4,) * 4), index, shifts, flips, chunk=8)
    assert got.shape == (37, 3, 32, 32) and torch.equal(got, want)
    assert flips.any() and not flips.all() and shifts.unique().numel() > 1    # both paths of the where


def test_an_epoch_cropped_by_gathers_is_the_windows_epoch(tiny_data, monkeypatch):
    import compute
    import data
    ds = data.DeviceCIFAR10.load(tiny_data / data.FOLDER, "cpu")
    want = ds.epoch_tensors(compute.data_generator(1), augment=True)
    monkeypatch.setattr(data.DeviceCIFAR10, "GATHER_CROPS", {"cpu"})
    ds = data.DeviceCIFAR10.load(tiny_data / data.FOLDER, "cpu")
    got = ds.epoch_tensors(compute.data_generator(1), augment=True)
    assert [w.shape for w in ds._windows.values()] == [(200, 3, 40, 40)]   # one padded copy, no window view
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_evaluation_counts_without_bincount(tiny_data, monkeypatch):
    import data
    import engine
    from models import build_model
    torch.manual_seed(0)
    ds = data.DeviceCIFAR10.load(tiny_data / data.FOLDER, "cpu")
    model = build_model("small")
    want = engine.evaluate(model, ds)

    def absent(*args, **kwargs):
        raise NotImplementedError("bincount")
    monkeypatch.setattr(torch, "bincount", absent)
    got = engine.evaluate(model, ds)
    assert got == want and sum(map(sum, got["confusion"])) == 100
    pred = torch.cat([model(x).argmax(1) for x, _ in ds.eval_batches()])
    assert got["correct"] == int((pred == ds.y_test).sum())
