"""Precision and memory-format flags reach the model: autocast dtypes, channels-last tensors, run logs."""
import json

import pytest
import torch
from torch import nn

import compute
import data
import engine
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
def test_train_large_trains_and_records_the_precision(tiny_data, workdir, monkeypatch,
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
    argv = [*flags, "--epochs", "1", "--data-dir", str(tiny_data), "--out", str(workdir / "runs"),
            "--log-every", "5", "--device", "cpu"]
    assert train_large.main(argv) == 0
    assert len(seen) == 4                                         # 200 images, batch 64
    expected = {"input_cl": channels_last, "weight_cl": channels_last, "conv1": dtype, "fc1": dtype}
    assert all(s == expected for s in seen)
    (log_path,) = (workdir / "runs").glob("*/run_log.json")
    log = json.loads(log_path.read_text())
    assert log["status"] == "complete"
    assert log["precision"] == precision and log["config"]["precision"] == precision
    assert log["config"]["channels_last"] is channels_last


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
