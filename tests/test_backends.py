"""backends.py: one trained network on CPU fp32 and CPU bf16, per-layer differences and predictions."""
import json
import re

import pytest
import torch

import backends
import compare
import compute
import data
import engine
import runs
import train_small
from models import build_model


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("backends") / "runs"
    assert train_small.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", str(out),
                             "--device", "cpu", "--no-progress"]) == 0
    (folder,) = out.iterdir()
    return folder


def test_record_names_the_weights_and_every_feature_layer(trained_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "records"
    assert backends.main(["--run", str(trained_run), "--data-dir", str(tiny_data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (path,) = out.glob(f"*-backends-small/{runs.LOG}")
    rec = json.loads(path.read_text())
    log = json.loads((trained_run / runs.LOG).read_text())
    assert rec["kind"] == "backends" and rec["model"] == "small" and rec["backends"] == ["cpu-fp32", "cpu-bf16"]
    assert rec["source"]["run"] == trained_run.name
    src = rec["source"]
    assert src["weights_sha256"] == log["results"]["weights_sha256"] == src["run_log_weights_sha256"]
    res = rec["results"]
    assert [r["layer"] for r in res["layers"]] == ["conv1", "conv2", "logits"]
    assert [r["shape"] for r in res["layers"]] == [[6, 28, 28], [16, 10, 10], [10]]
    # the reference is the run's own evaluation: the same accuracy
    assert res["backends"]["cpu-fp32"]["accuracy"] == log["results"]["overall_accuracy"]
    bf16 = res["backends"]["cpu-bf16"]
    for row in res["layers"]:
        spread = bf16["layers"][row["layer"]]
        # bf16 keeps 8 bits of mantissa: differences are there, and small against the activations
        assert 0 < spread["mean_abs_diff"] <= spread["max_abs_diff"] < 0.25 * row["reference_max_abs"]
    assert 0 <= bf16["predictions_differ"] <= res["images"] == 100
    assert runs.log_problem(rec) is None and compare.backends_problem(rec) is None
    assert re.search(r"^conv1 +6x28x28 ", printed, re.M)
    assert f"cpu-bf16: {bf16['predictions_differ']} of 100 test predictions differ from cpu-fp32" in printed
    intro, tbl, finding = compare.backends_markdown(rec)
    assert f"run `{trained_run.name}`" in intro and src["weights_sha256"][:12] in intro
    lines = tbl.splitlines()
    assert lines[0] == ("| Layer | Shape | Largest absolute activation (cpu-fp32) | Max abs difference (cpu-bf16) "
                        "| Mean abs difference (cpu-bf16) |")
    conv1 = bf16["layers"]["conv1"]
    assert lines[2] == (f"| `conv1` | 6x28x28 | {res['layers'][0]['reference_max_abs']:.3g} | "
                        f"{conv1['max_abs_diff']:.3g} | {conv1['mean_abs_diff']:.3g} |")
    assert f"| Test predictions that differ |  |  | {bf16['predictions_differ']} of 100 |  |" in tbl
    assert finding.startswith(f"On cpu-bf16, the same weights classify {bf16['predictions_differ']} of the 100")


def test_measure_counts_every_differing_prediction():
    """The differing predictions are those of plain forward passes in fp32 and under bf16
    autocast, image by image (an untrained network's logits lie close, so some differ)."""
    torch.manual_seed(0)
    model = build_model("small").eval()
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8).numpy()
    y = torch.randint(0, 10, (40,)).numpy()
    result = backends.measure(model, ["cpu-fp32", "cpu-bf16"], x, y, ["conv1"], batch=16)
    ds = data.DeviceCIFAR10(x[:0], y[:0], x, y, torch.device("cpu"))
    xs = ds.normalize(ds.x_test)
    with torch.no_grad():
        fp32 = model(xs).argmax(1)
        with compute.autocast(torch.device("cpu"), torch.bfloat16):
            bf16 = model(xs).float().argmax(1)
    assert result["backends"]["cpu-bf16"]["predictions_differ"] == int((fp32 != bf16).sum()) > 0
    assert result["backends"]["cpu-fp32"]["accuracy"] == round(100.0 * int((fp32 == ds.y_test).sum()) / 40, 2)
    assert result["backends"]["cpu-fp32"]["layers"] == {}


@pytest.mark.parametrize("flags, pattern", [
    (["--backends", "cpu-fp32"], r"needs two different backends"),
    (["--backends", "cpu-fp32", "cpu-fp32"], r"needs two different backends"),
    (["--backends", "cpu-fp16"], r"invalid choice: 'cpu-fp16'"),
])
def test_bad_backends_are_one_line(flags, pattern, trained_run, tiny_data, tmp_path, capsys):
    code = backends.main(["--run", str(trained_run), "--data-dir", str(tiny_data), "--out", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(compute.available("cuda"), reason="this machine has CUDA")
def test_a_missing_device_is_an_error_not_a_skip(trained_run, tiny_data, tmp_path, capsys):
    code = backends.main(["--run", str(trained_run), "--data-dir", str(tiny_data), "--out", str(tmp_path),
                          "--backends", "cpu-fp32", "cuda-fp32"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: backend cuda-fp32: no cuda device on this machine")


def test_weights_digest_is_the_engines():
    model = build_model("small")
    assert backends.weights_digest is engine.weights_digest
    assert len(backends.weights_digest(model)) == 64


def test_help_states_every_default(capsys):
    with pytest.raises(SystemExit) as exc:
        backends.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split()).replace("- ", "-")      # argparse wraps at hyphens
    assert "(default: cpu-fp32 cpu-bf16, and cuda-fp32 and mps-fp32 where present)" in out
    assert "(default: runs)" in out
