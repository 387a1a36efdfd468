"""tools/gpu_check.py, the one command for a CUDA machine: its dry run on the CPU, so it cannot rot."""
import json

import pytest
import torch

from tools import gpu_check

CHECKS = ["versions", "nvidia-smi", "data", "program-f64", "capture-f64", "capture-sync", "capture-losses",
          "precision", "precision-nondet", "floor-fp32", "floor-auto", "defaults", "fastest", "resume"]
CUDA_ONLY = {"nvidia-smi", "capture-f64", "capture-sync", "capture-losses"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run of a machine without CUDA")
def test_the_dry_run_runs_every_check_and_skips_the_cuda_ones(tiny_data, tmp_path, capsys):
    out = tmp_path / "check"
    assert gpu_check.main([str(out), "--dry-run", "--data-dir", str(tiny_data)]) == 0
    lines = (out / "summary.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == CHECKS
    for line in lines:
        name, status = line.split()[:2]
        if name in CUDA_ONLY:
            assert status == "skipped" and line.endswith("skipped: no CUDA"), line
        else:
            assert status == "ok", line
    assert capsys.readouterr().out.count("skipped: no CUDA") == len(CUDA_ONLY)
    summary = dict(line.split(None, 1) for line in lines)
    assert "differ by at most" in summary["program-f64"]
    assert summary["resume"].endswith(": equal")
    for name in ("precision", "precision-nondet", "floor-fp32", "defaults", "fastest", "resume-whole"):
        (log,) = (out / "runs" / name).glob("*/run_log.json")
        assert json.loads(log.read_text())["status"] == "complete", name
        assert (out / "logs" / f"{name}.txt").read_text().startswith("argv: ")
    assert json.loads(next((out / "runs" / "defaults").glob("*/run_log.json")).read_text())["results"]["epochs"] == 1


def test_without_cuda_the_full_run_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([str(tmp_path / "check")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no CUDA here") and err.count("\n") == 1
    assert not (tmp_path / "check").exists()


def test_the_fastest_variant_gives_its_training_flags():
    def rec(det, rates):
        variants = {n: {"precision": n.split("-")[0], "channels_last": "-cl" in n, "graph": "graph" in n}
                    for n in rates}
        return {"settings": {"deterministic": det, "variants": variants},
                "results": {f"{n.replace('-', '_')}_images_per_s": r for n, r in rates.items()}}
    records = [rec(True, {"fp32": 10.0, "bf16-cl-graph": 30.0}), rec(False, {"fp32": 12.0, "bf16-graph": 31.0})]
    flags, name, rate = gpu_check.fastest_flags(records)
    assert flags == ["--precision", "bf16", "--no-channels-last", "--cuda-graph", "--no-deterministic"]
    assert name == "bf16-graph, deterministic off" and rate == 31.0
    flags, name, _ = gpu_check.fastest_flags(records[:1])
    assert flags == ["--precision", "bf16", "--channels-last", "--cuda-graph", "--deterministic"]
    assert gpu_check.fastest_flags([]) is None
