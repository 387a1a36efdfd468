"""tools/gpu_check.py, the one command for a CUDA machine: its dry run on the CPU, so it cannot rot."""
import json
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch

import recipes
from tools import gpu_check

CHECKS = ["versions", "nvidia-smi", "data", "program-f64", "capture-f64", "capture-sync", "capture-losses",
          "precision", "precision-nondet", "floor-fp32", "floor-auto", "defaults", "fastest", "resume"]
CUDA_ONLY = {"nvidia-smi", "capture-f64", "capture-sync", "capture-losses"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run of a machine without CUDA")
def test_the_dry_run_runs_every_check_and_skips_the_cuda_ones(tiny_data, tmp_path, capsys, monkeypatch):
    # the floor's matrix products at side 128: an emulated bf16 product of side 1024 takes seconds
    monkeypatch.setitem(gpu_check.benchmark.MATMUL_SIDE, "cpu", 128)
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


# ---------------------------------------------------------------- --part fast

FAST_CHECKS = ["versions", "nvidia-smi", "data", "fast-seeds", "fast-rerun",
               *(gpu_check.ablation_name(o) for o in recipes.FAST_ABLATION)]


def summary_of(out):
    return {line.split()[0]: line for line in (out / "summary.txt").read_text().splitlines()}


def test_the_ablation_rows_are_the_readmes():
    """README's loop and gpu_check run the one list, recipes.FAST_ABLATION."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("\n## The fast network (train_fast.py)\n")[1].split("\n## ")[0]
    loop = re.search(r"for option in (.*?); do", section, re.S).group(1)
    assert tuple(re.findall(r'"([^"]*)"', loop)) == recipes.FAST_ABLATION
    assert len(recipes.FAST_ABLATION) == 11 and recipes.FAST_ABLATION[0] == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run of a machine without CUDA")
def test_the_fast_part_dry_run_trains_every_row(tiny_data, tmp_path):
    out = tmp_path / "check"
    assert gpu_check.main([str(out), "--dry-run", "--part", "fast", "--data-dir", str(tiny_data)]) == 0
    summary = summary_of(out)
    assert list(summary) == FAST_CHECKS
    assert all(line.split()[1] == ("skipped" if name == "nvidia-smi" else "ok") for name, line in summary.items())

    def logs(name):
        return [json.loads(p.read_text()) for p in sorted((out / "runs" / name).glob("*/run_log.json"))]
    seeds = logs("fast-seeds")
    assert sorted(r["seed"] for r in seeds) == [1111, 1112]
    acc = [r["results"]["overall_accuracy"] for r in seeds]
    train = statistics.fmean(r["results"]["train_time_s"] for r in seeds)
    assert f"test {statistics.fmean(acc):.2f} ± {statistics.stdev(acc):.2f}% over 2 seeds, " \
           f"training {train:.1f}s a run" in summary["fast-seeds"]
    (rerun,) = logs("fast-rerun")
    first = next(r for r in seeds if r["seed"] == 1111)
    assert rerun["seed"] == 1111 and rerun["results"]["weights_sha256"] == first["results"]["weights_sha256"]
    assert f"{first['results']['weights_sha256'][:12]}: equal;" in summary["fast-rerun"]
    for option in recipes.FAST_ABLATION:
        name = gpu_check.ablation_name(option)
        (log,) = logs(name)
        assert log["status"] == "complete" and log["config"]["val"] == 5, name
        assert f"val {log['results']['val_accuracy']:.2f}% over 1 seed" in summary[name]
        assert (out / "logs" / f"{name}.txt").read_text().startswith("argv: ")
    config = {gpu_check.ablation_name(o): logs(gpu_check.ablation_name(o))[0]["config"]
              for o in recipes.FAST_ABLATION}
    assert config["abl-recipe"]["whiten"] == 10 and config["abl-whiten-0"]["whiten"] == 0
    assert (config["abl-no-triangle-onecycle"]["triangle"], config["abl-no-triangle-onecycle"]["onecycle"]) == \
           (False, True)
    assert config["abl-recipe"]["tta_translate"] and sorted(logs("abl-recipe")[0]["results"]["evaluations"]) == [
        "model", "model+tta", "model+tta+translate"]       # the rows --no-tta and --no-tta-translate


@pytest.mark.parametrize("differ", [False, True])
def test_the_budget_skips_the_checks_that_would_end_past_it(differ, tiny_data, tmp_path, capsys, monkeypatch):
    """Stand-in trainings of 10 s each on a stand-in clock: with --budget-s 65, the two seeds (20 s),
    the rerun and three rows run, the rest say 'skipped: budget'; what finished is kept.  A rerun
    whose weights differ fails on a CPU."""
    now = [0.0]
    monkeypatch.setattr(gpu_check.Budget, "clock", staticmethod(lambda: now[0]))

    def train(argv):
        out, seeds = Path(argv[argv.index("--out") + 1]), argv[argv.index("--seeds") + 1].split(",")
        val = "--val" in argv
        for seed in map(int, seeds):
            now[0] += 10
            sha = f"{seed:064d}" if not (differ and "rerun" in out.name) else "f" * 64
            results = {"overall_accuracy": 90.0 + seed - 1111, "train_time_s": 8.0 + seed - 1111,
                       "wall_time_s": 9.0, "weights_sha256": sha,
                       "val_accuracy": (80.0 if out.name == "abl-recipe" else 79.0) if val else None}
            record = {"seed": seed, "precision": "bf16", "dataset": {"official": True}, "results": results}
            (out / f"run-{seed}").mkdir(parents=True)
            (out / f"run-{seed}" / "run_log.json").write_text(json.dumps(record))
        print("UserWarning: max_pool2d_backward_cuda does not have a deterministic implementation, but you set",
              file=sys.stderr)
        return 0
    monkeypatch.setattr(gpu_check.train_fast, "main", train)
    out = tmp_path / "check"
    code = gpu_check.main([str(out), "--dry-run", "--part", "fast", "--data-dir", str(tiny_data),
                           "--budget-s", "65"])
    assert code == (1 if differ else 0)
    summary = summary_of(out)
    assert list(summary) == FAST_CHECKS
    ran = ["fast-seeds", "fast-rerun", "abl-recipe", "abl-whiten-0", "abl-no-dirac"]
    late = FAST_CHECKS[FAST_CHECKS.index("abl-no-dirac") + 1:]
    assert "test 90.50 ± 0.71% over 2 seeds, training 8.5s a run (wall 9.0s), bf16, official data" in \
           summary["fast-seeds"]
    assert summary["abl-recipe"].endswith("the recipe: val 80.00% over 1 seed")
    assert summary["abl-no-dirac"].endswith("--no-dirac: val 79.00% over 1 seed, -1.00 against the recipe")
    rerun = summary["fast-rerun"].split()
    if differ:
        assert rerun[1] == "FAIL" and "DIFFERENT (test 90.00% / 90.00%)" in summary["fast-rerun"]
    else:
        assert rerun[1] == "ok" and summary["fast-rerun"].endswith(
            ": equal; no deterministic kernel: max_pool2d_backward_cuda")
    for name in late:
        assert summary[name].split()[1] == "skipped", name
        assert "skipped: budget (1 run of about 10s, 5s left of --budget-s 65)" in summary[name], name
    assert sorted(p.parent.parent.name for p in (out / "runs").glob("*/*/run_log.json")) == \
           sorted(["fast-seeds", *ran])
    assert capsys.readouterr().out.rstrip().endswith(f"{len(late)} skipped: budget")
