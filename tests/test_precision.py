"""Precision and memory-format flags reach the model: autocast dtypes, channels-last tensors, run logs."""
import dataclasses
import json

import pytest
import torch
from torch import nn

import compute
import data
import engine
import hwdna
import recipes
import train_large
from errors import UserError
from models import build_model

CPU = torch.device("cpu")


def layer_output_dtypes(model, x, dtype):
    """Output dtype of every conv and linear layer in one forward pass under compute.autocast."""
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, out.dtype))
             for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with compute.autocast(CPU, dtype):
        model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("model", ["small", "resnet18"])
@pytest.mark.parametrize("precision, expected, name", [
    ("bf16", torch.bfloat16, "bf16"),
    ("fp32", torch.float32, "fp32"),
    ("auto", torch.float32, "fp32"),          # auto is fp32 on a CPU
])
def test_precision_sets_the_dtype_of_conv_and_linear_outputs(model, precision, expected, name):
    dtype = compute.amp_dtype(precision, CPU)
    assert compute.precision_name(dtype) == name
    net = build_model(model)
    seen = layer_output_dtypes(net, torch.randn(2, 3, 32, 32), dtype)
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())
    assert len(seen) == n_layers > 0
    assert set(seen.values()) == {expected}


def test_fp16_on_cpu_is_a_one_line_user_error():
    with pytest.raises(UserError, match="fp16") as exc_info:
        compute.amp_dtype("fp16", CPU)
    assert "\n" not in str(exc_info.value)


def test_fp16_on_cpu_exits_2_from_the_command_line(tiny_data, workdir, capsys):
    argv = ["--precision", "fp16", "--device", "cpu", "--data-dir", str(tiny_data),
            "--out", str(workdir / "runs")]
    assert train_large.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --precision fp16") and err.count("\n") == 1
    assert not (workdir / "runs").exists()


def conv_weights_channels_last(model):
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs
    return [c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs]


def test_channels_last_model_weights():
    model = build_model("resnet18")
    assert not any(conv_weights_channels_last(model))            # the default: NCHW
    model = model.to(memory_format=torch.channels_last)
    assert all(conv_weights_channels_last(model))


def test_channels_last_batches(tiny_data):
    folder = data.locate(tiny_data, allow_download=False)
    ds = data.DeviceCIFAR10.load(folder, CPU)
    gen = compute.data_generator(0)
    x, _ = next(ds.train_batches(8, gen, augment=True))
    assert x.shape == (8, 3, 32, 32) and not x.is_contiguous(memory_format=torch.channels_last)
    ds = data.DeviceCIFAR10.load(folder, CPU, memory_format=torch.channels_last)
    for augment in (True, False):
        x, _ = next(ds.train_batches(8, gen, augment=augment))
        assert x.shape == (8, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(ds.test_batches())
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("flags, precision, dtype, channels_last", [
    (["--precision", "bf16", "--channels-last"], "bf16", torch.bfloat16, True),
    (["--precision", "fp32"], "fp32", torch.float32, False),
])
def test_train_large_trains_and_records_the_precision(micro_data, workdir, monkeypatch,
                                                      flags, precision, dtype, channels_last):
    seen = []   # one dict per training forward pass
    build = engine.build_model
    cl = torch.channels_last

    def conv1_hook(module, inputs, out):
        if module.training:
            seen.append({"input_cl": inputs[0].is_contiguous(memory_format=cl),
                         "weight_cl": module.weight.is_contiguous(memory_format=cl), "conv1": out.dtype})

    def fc1_hook(module, inputs, out):
        if module.training:
            seen[-1]["fc1"] = out.dtype

    def hooked(name):
        model = build(name)
        model.conv1.register_forward_hook(conv1_hook)
        model.fc1.register_forward_hook(fc1_hook)
        return model

    monkeypatch.setattr(engine, "build_model", hooked)
    argv = [*flags, "--epochs", "1", "--batch-size", "16", "--data-dir", str(micro_data),
            "--out", str(workdir / "runs"), "--log-every", "5", "--device", "cpu"]
    assert train_large.main(argv) == 0
    assert len(seen) == 4                                         # 60 images, batch 16
    expected = {"input_cl": channels_last, "weight_cl": channels_last, "conv1": dtype, "fc1": dtype}
    assert all(s == expected for s in seen)
    (log_path,) = (workdir / "runs").glob("*/run_log.json")
    log = json.loads(log_path.read_text())
    assert log["status"] == "complete"
    assert log["precision"] == precision and log["config"]["precision"] == precision
    assert log["precision_choice"]["channels_last"] is channels_last
    assert log["config"]["channels_last"] is (True if "--channels-last" in flags else None)   # None: auto


def test_threads_flag_reaches_torch_and_the_run_log_then_is_restored(tiny_data, workdir, monkeypatch):
    before = torch.get_num_threads()
    seen = []
    build = engine.build_model

    def recording(name):
        seen.append(torch.get_num_threads())
        return build(name)

    monkeypatch.setattr(engine, "build_model", recording)
    argv = ["--threads", "1", "--epochs", "1", "--data-dir", str(tiny_data),
            "--out", str(workdir / "runs"), "--log-every", "5", "--device", "cpu"]
    assert train_large.main(argv) == 0
    assert seen == [1] and torch.get_num_threads() == before
    (log_path,) = (workdir / "runs").glob("*/run_log.json")
    log = json.loads(log_path.read_text())
    assert log["config"]["threads"] == 1 and log["hardware"]["torch_threads"] == 1


def test_bf16_on_a_cpu_without_bf16_instructions_warns():
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
    warning = compute.cpu_bf16_warning(torch.bfloat16, CPU, x86)
    assert warning.startswith("warning: this CPU has no bf16 instructions") and "\n" not in warning
    assert compute.cpu_bf16_warning(torch.bfloat16, CPU, x86.replace("fma", "fma avx512_bf16")) is None
    assert compute.cpu_bf16_warning(torch.bfloat16, CPU, "Features\t: fp asimd bf16 i8mm\n") is None   # Arm
    assert compute.cpu_bf16_warning(torch.bfloat16, CPU, "model name\t: unknown\n") is None    # no flags: silent
    assert compute.cpu_bf16_warning(None, CPU, x86) is None                                    # fp32
    assert compute.cpu_bf16_warning(torch.bfloat16, torch.device("cuda"), x86) is None


# /proc/cpuinfo of three CPUs, as far as the choice reads it: one processor block each.
AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
AMX = AVX2.replace("fma", "fma avx512f avx512_bf16 amx_bf16 amx_tile")
AVX512_BF16 = AVX2.replace("fma", "fma avx512f avx512_bf16")
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n\n"
RESNET_BF16 = recipes.RECIPES["resnet18"].cpu_bf16


@pytest.mark.parametrize("cpuinfo, cpu_bf16, dtype, channels_last, why", [
    (AMX, RESNET_BF16, torch.bfloat16, True, "amx_bf16, avx512_bf16"),
    (AVX512_BF16, RESNET_BF16, torch.bfloat16, True, "(avx512_bf16)"),
    (AMX, None, None, False, "has not been measured"),               # the LeNets: unmeasured there
    (AVX2, RESNET_BF16, None, False, "would be emulated"),
    (ARM, RESNET_BF16, None, False, "would be emulated"),            # native, but unmeasured: fp32
    ("model name\t: unknown\n", RESNET_BF16, None, False, "cannot be read"),
])
def test_auto_on_a_cpu_is_bf16_channels_last_only_with_bf16_in_hardware_and_a_measurement(
        cpuinfo, cpu_bf16, dtype, channels_last, why):
    choice = compute.choose("auto", None, CPU, cpu_bf16, cpuinfo)
    assert (choice.dtype, choice.channels_last) == (dtype, channels_last)
    assert choice.reason.startswith(f"auto: {compute.precision_name(dtype)}") and why in choice.reason
    if dtype is not None:
        assert RESNET_BF16 in choice.reason and choice.reason.endswith("; channels-last with it")


def test_auto_per_model_comes_from_the_recipes():
    assert recipes.RECIPES["resnet18"].cpu_bf16 and recipes.RECIPES["fast"].cpu_bf16
    assert recipes.RECIPES["small"].cpu_bf16 is None and recipes.RECIPES["large"].cpu_bf16 is None


@pytest.mark.parametrize("precision, channels_last, ran, dtype, expected_cl", [
    ("auto", False, None, torch.bfloat16, False),        # --no-channels-last wins over auto
    ("auto", True, None, torch.bfloat16, True),
    ("fp32", None, None, None, False),                   # channels-last goes with auto's bf16 only
    ("bf16", None, None, torch.bfloat16, False),
    ("auto", None, "fp32", None, False),                 # a resumed auto run keeps what it chose
])
def test_explicit_flags_and_a_resumed_runs_precision_win_over_auto(precision, channels_last, ran, dtype,
                                                                  expected_cl):
    choice = compute.choose(precision, channels_last, CPU, RESNET_BF16, AMX, ran=ran)
    assert (choice.dtype, choice.channels_last) == (dtype, expected_cl)


def test_auto_on_cuda_is_not_the_cpus_choice():
    choice = compute.choose("auto", None, torch.device("cuda"), RESNET_BF16, AMX)
    assert choice.channels_last is False and choice.reason.startswith("auto: ")


@pytest.mark.parametrize("ran, previous, cpuinfo, refused", [
    ("bf16", {"device": "cpu", "hardware": {"chip": "Xeon", "cpu_bf16_flags": ["amx_bf16"]}}, AVX2, True),
    ("bf16", {"device": "cuda", "hardware": {"cpu_bf16_flags": []}}, AVX2, True),
    ("bf16", {"device": "cpu", "hardware": {}}, AVX2, True),             # a log from before the flags
    ("bf16", {"device": "cpu", "hardware": {"cpu_bf16_flags": ["amx_bf16"]}}, AMX, False),
    ("bf16", {"device": "cpu", "hardware": {"cpu_bf16_flags": ["amx_bf16"]}}, ARM, False),
    ("bf16", {"device": "cpu", "hardware": {"cpu_bf16_flags": []}}, AVX2, False),   # it started emulated
    ("fp32", {"device": "cpu", "hardware": {"cpu_bf16_flags": ["amx_bf16"]}}, AVX2, False),
])
def test_a_bf16_run_is_not_resumed_where_bf16_is_emulated(ran, previous, cpuinfo, refused):
    if not refused:
        compute.refuse_emulated_resume(ran, CPU, previous, cpuinfo)
        return
    with pytest.raises(UserError) as exc:
        compute.refuse_emulated_resume(ran, CPU, previous, cpuinfo)
    assert "computes in bf16" in str(exc.value) and "emulate" in str(exc.value) and "\n" not in str(exc.value)


def crafted_cpu(monkeypatch, cpuinfo):
    """Make this process read ``cpuinfo`` as its /proc/cpuinfo."""
    read = hwdna.first_processor
    monkeypatch.setattr(hwdna, "first_processor", lambda text=None: read(cpuinfo if text is None else text))


def test_auto_bf16_run_logs_its_choice_and_refuses_to_resume_on_an_emulating_cpu(
        micro_data, workdir, monkeypatch, capsys):
    crafted_cpu(monkeypatch, AMX)
    monkeypatch.setattr(recipes, "RECIPES", recipes.RECIPES | {
        "large": dataclasses.replace(recipes.RECIPES["large"], cpu_bf16="measured so, say")})
    base = ["--data-dir", str(micro_data), "--out", "runs", "--device", "cpu", "--log-every", "5"]
    assert train_large.main(["--epochs", "1", *base]) == 0
    (run_dir,) = (workdir / "runs").iterdir()
    log = json.loads((run_dir / "run_log.json").read_text())
    assert log["precision"] == "bf16" and log["config"]["precision"] == "auto"
    assert log["hardware"]["cpu_bf16_flags"] == ["amx_bf16", "avx512_bf16"]
    choice = log["precision_choice"]
    assert choice["channels_last"] is True and "amx_bf16" in choice["reason"] and "measured so" in choice["reason"]

    crafted_cpu(monkeypatch, AVX2)
    capsys.readouterr()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir())
    assert train_large.main(["--resume", run_dir.name, "--epochs", "2", *base]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run computes in bf16") and "emulate" in err and err.count("\n") == 1
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir()) == before   # nothing written

    crafted_cpu(monkeypatch, AMX)                        # back on a CPU with bf16: it continues in bf16
    assert train_large.main(["--resume", run_dir.name, "--epochs", "2", *base]) == 0
    log = json.loads((run_dir / "run_log.json").read_text())
    assert log["status"] == "complete" and len(log["history"]) == 2 and log["precision"] == "bf16"


def test_an_auto_fp32_run_stays_fp32_when_resumed_on_a_cpu_with_bf16(micro_data, workdir, monkeypatch):
    crafted_cpu(monkeypatch, AVX2)
    monkeypatch.setattr(recipes, "RECIPES", recipes.RECIPES | {
        "large": dataclasses.replace(recipes.RECIPES["large"], cpu_bf16="measured so, say")})
    base = ["--data-dir", str(micro_data), "--out", "runs", "--device", "cpu", "--log-every", "5"]
    assert train_large.main(["--epochs", "1", *base]) == 0
    (run_dir,) = (workdir / "runs").iterdir()
    assert json.loads((run_dir / "run_log.json").read_text())["precision"] == "fp32"
    crafted_cpu(monkeypatch, AMX)
    assert train_large.main(["--resume", run_dir.name, "--epochs", "2", *base]) == 0
    log = json.loads((run_dir / "run_log.json").read_text())
    assert log["precision"] == "fp32" and log["precision_choice"]["channels_last"] is False
    assert log["precision_choice"]["reason"].startswith("auto: fp32, as the run chose")
