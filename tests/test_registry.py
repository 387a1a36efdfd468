"""One registry: a model added to models.MODELS and recipes.RECIPES reaches every entry point."""
import json
import re

import pytest
import torch
from torch import nn

import benchmark
import data
import export
import models
import predict
import recipes
import report
import train_large
import visualize_activations as va
from conftest import run


class Probe(nn.Module):
    """A network no entry point has heard of: one conv, global pooling, ``fc``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):                                     # (B, 3, 32, 32)
        x = torch.relu(self.conv1(x)).mean((2, 3))            # (B, 8)
        return self.fc(x)


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(models.MODELS, "probe", Probe)
    monkeypatch.setitem(recipes.RECIPES, "probe", recipes.Recipe(
        model="probe", name="Probe CNN", script="train_large.py", summary="a one-conv probe",
        defaults=dict(epochs=1, batch_size=20, lr=0.01), feature_layers=("conv1",),
        shown_layers=("conv1",),
        targets=(recipes.Target("Probe CNN", 10, {}, 1, "one conv"),)))


def test_a_new_recipe_reaches_every_entry_point(probe, tiny_data, workdir, capsys):
    common = ["--data-dir", str(tiny_data), "--device", "cpu"]
    code, out, err = run(train_large, capsys, "--model", "probe", "--out", "runs", *common)
    assert code == 0, err
    run_dir = next((workdir / "runs").iterdir())
    log = json.loads((run_dir / "run_log.json").read_text())
    assert log["model"] == "probe" and log["config"]["batch_size"] == 20   # the recipe's defaults

    code, _, err = run(va, capsys, "--model", "probe", "--runs", "runs", "--out", "maps", *common)
    assert code == 0, err
    assert (workdir / "maps" / "probe_conv1.png").is_file()

    code, _, err = run(benchmark, capsys, "devices", "--model", "probe", "--devices", "cpu",
                       "--steps", "2", "--warmup", "1", "--out", "bench", *common)
    assert code == 0, err
    (bench,) = (workdir / "bench").glob("*/run_log.json")
    bench = json.loads(bench.read_text())
    assert (bench["benchmark"], bench["model"], bench["batch_size"]) == ("devices", "probe", 20)   # its recipe's batch
    assert bench["results"]["steps"] == 2 and bench["results"]["devices"]["cpu"]["images_per_s"] > 0

    image = workdir / "maps" / "probe_conv1.png"
    code, out, err = run(predict, capsys, str(image), "--model", "probe", "--runs", "runs", "--device", "cpu")
    assert code == 0, err
    head, line = out.splitlines()
    # the newest probe run's weights, named with its accuracy and its data
    assert head.startswith(f"probe (run {run_dir.name}) on cpu: ") and "test accuracy on 100 images" in head
    top = re.fullmatch(re.escape(str(image)) + r": (\w+) ([\d.]+)%, (\w+) ([\d.]+)%, (\w+) ([\d.]+)%", line)
    names, shares = top.groups()[::2], [float(v) for v in top.groups()[1::2]]
    assert len(set(names)) == 3 and set(names) <= set(data.CLASSES) and shares == sorted(shares, reverse=True)

    code, _, err = run(export, capsys, "--run", run_dir.name, "--runs", "runs", "--out", "exports")
    assert code == 0, err
    manifest = json.loads((workdir / "exports" / run_dir.name / "model.json").read_text())
    assert (manifest["model"], manifest["run_id"]) == ("probe", run_dir.name)
    assert manifest["weights_sha256"] == log["results"]["weights_sha256"]
    program = torch.export.load(workdir / "exports" / run_dir.name / "model.pt2").module()
    net = Probe()
    net.load_state_dict(torch.load(run_dir / "weights.pt", weights_only=True))
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(program(x), net.eval()(x), atol=1e-5)        # the run's network, exported

    code, _, err = run(report, capsys, "--runs", "runs", "--output", "doc/results.md", "--no-plots")
    assert code == 0, err
    assert run_dir.name in (workdir / "doc" / "results" / "details.md").read_text()        # the run index
