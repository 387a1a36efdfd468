"""benchmark.py: each benchmark runs on the tiny set and writes its record; bad input exits 2.

Rates and ratios are printed and recorded, never asserted: these tests check
that the measurements run and produce well-formed records, not how fast.
"""
import argparse
import json
import math
import re
import time
from pathlib import Path

import pytest
import torch

import benchmark
import compute
import data
import recipes
import train_small

TINY = ["--steps", "2", "--warmup", "1", "--ref-images", "64", "--num-workers", "0"]
RECORD_KEYS = {"kind", "benchmark", "run_id", "status", "model", "batch_size", "device", "settings",
               "hardware", "dataset", "git", "started", "finished", "results"}


def run(tiny_data, workdir, *argv):
    return benchmark.main([*argv, "--data-dir", str(tiny_data), "--out", str(workdir / "runs"), *TINY])


def records(workdir):
    """The run logs written under workdir/runs, by benchmark name."""
    found = [json.loads(p.read_text()) for p in sorted((workdir / "runs").glob("*/run_log.json"))]
    by_name = {r["benchmark"]: r for r in found}
    assert len(by_name) == len(found), "one record per benchmark"
    return by_name


def check_record(rec, name, tiny_data):
    assert RECORD_KEYS <= rec.keys()
    assert rec["kind"] == "benchmark" and rec["benchmark"] == name and rec["status"] == "complete"
    assert rec["run_id"].endswith(f"-bench-{name}")
    assert rec["hardware"]["torch"] and rec["hardware"]["cpu_count"]
    folder = tiny_data / data.FOLDER
    assert rec["dataset"]["id"] == data.fingerprint(folder, data.load_arrays(folder))["id"]
    assert rec["dataset"]["train_images"] == 200


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def rates(results):
    """Every number recorded under a key ending in _per_s, at any depth."""
    out = []
    for key, value in results.items():
        if isinstance(value, dict):
            out += rates(value)
        elif key.endswith("_per_s"):
            out.append(value)
    return out


def test_devices_measures_cpu_and_skips_missing_devices(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "devices", "--model", "small", "--devices", "mps,cuda") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["devices"]
    check_record(rec, "devices", tiny_data)
    assert rec["model"] == "small" and rec["batch_size"] == 4     # the model's training batch
    devices = rec["results"]["devices"]
    assert "cpu added" in out and "cpu" in devices                 # the baseline is always there
    assert devices["cpu"]["speedup_vs_cpu"] == 1.0
    for kind, entry in devices.items():
        assert set(entry) == {"images_per_s", "speedup_vs_cpu"}
        assert positive(entry["images_per_s"]) and positive(entry["speedup_vs_cpu"])
        assert entry["speedup_vs_cpu"] == pytest.approx(entry["images_per_s"] / devices["cpu"]["images_per_s"])
    for kind in ("mps", "cuda"):
        if not compute.available(kind):
            assert f"{kind}: not available here; skipped" in out
            assert kind not in devices and kind in rec["results"]["skipped"]


def test_pipeline_compares_one_epoch_with_the_reference(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "pipeline") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["pipeline"]
    check_record(rec, "pipeline", tiny_data)
    res = rec["results"]
    assert rec["batch_size"] == 64
    assert res["ours_images"] == 200                               # one whole epoch of the tiny set
    assert res["reference_images"] >= 64 and res["reference_images"] % 64 == 0
    assert all(positive(v) for v in rates(res)) and len(rates(res)) == 2
    assert res["speedup"] == pytest.approx(res["ours_images_per_s"] / res["reference_images_per_s"])
    assert res["speedup_target"] == ">= 20"
    assert "== summary" in out and "pipeline speed-up: " in out and "(target >= 20x" in out


def test_overhead_records_both_ratios(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "overhead") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["overhead"]
    check_record(rec, "overhead", tiny_data)
    res = rec["results"]
    assert rec["model"] == "large" and rec["batch_size"] == 64
    assert res["steps"] == 2 and res["steps_per_epoch"] == 4 and res["images"] == 128
    assert len(rates(res)) == 3 and all(positive(v) for v in rates(res))
    assert res["pipeline_overhead"] == pytest.approx(res["pipeline_s"] / res["memory_s"])
    assert res["augment_cost"] == pytest.approx(res["pipeline_s"] / res["no_augment_s"])
    assert res["pipeline_overhead_target"] == "<= 1.03" and res["augment_cost_target"] == "<= 1.02"
    assert "(target <= 1.03x" in out and "(target <= 1.02x" in out


def test_a_record_logs_the_load_before_and_after_and_what_else_ran(tiny_data, workdir, monkeypatch, capsys):
    loads = iter([[0.25, 0.5, 0.75], [2.5, 1.5, 1.0]])              # before the benchmark, then after
    monkeypatch.setattr(benchmark.hwdna, "load_average", lambda: next(loads))
    clocks = iter([(10.0, 100.0, 1.0), (20.0, 130.0, 21.0)])          # 30 CPU s busy, 20 of them its own
    monkeypatch.setattr(benchmark.hwdna, "cpu_clock", lambda: next(clocks))
    assert run(tiny_data, workdir, "overhead") == 0
    hw = records(workdir)["overhead"]["hardware"]
    assert (hw["load_average"], hw["load_average_end"]) == ([0.25, 0.5, 0.75], [2.5, 1.5, 1.0])
    assert hw["other_cpus"] == 1.0


def test_small_runs_both_loops_for_the_same_steps(tiny_data, workdir):
    assert run(tiny_data, workdir, "small") == 0
    rec = records(workdir)["small"]
    check_record(rec, "small", tiny_data)
    res = rec["results"]
    assert rec["model"] == "small" and rec["batch_size"] == 4
    assert res["steps"] == 2 and res["images"] == 8
    assert len(rates(res)) == 4 and all(positive(v) for v in rates(res))
    assert res["speedup"] == pytest.approx(res["ours_images_per_s"] / res["tutorial_images_per_s"])
    assert res["speedup_target"] == ">= 2.5"
    assert res["trained_steps"] == 3                                # 1 warm-up step + 2 timed
    for key in ("ours_accuracy", "tutorial_accuracy"):             # 100 test images: whole percents
        assert 0 <= res[key] <= 100 and res[key] == int(res[key])
    assert re.fullmatch(r"[0-9a-f]{64}", res["ours_weights_sha256"])


def test_small_without_warmup_trains_train_smalls_net_and_tests_both(tiny_data, workdir, capsys):
    flags = ["--epochs", "1", "--seed", "7", "--data-dir", str(tiny_data), "--device", "cpu"]
    assert benchmark.main(["small", "--warmup", "0", "--num-workers", "0", "--out", str(workdir / "runs"),
                           *flags]) == 0
    out = capsys.readouterr().out
    res = records(workdir)["small"]["results"]
    assert res["trained_steps"] == 50 and res["steps"] == 50      # 200 images at batch 4: one epoch
    assert (f"test accuracy after 1.00 epochs: ours {res['ours_accuracy']:.2f}%, tutorial "
            f"{res['tutorial_accuracy']:.2f}%") in out
    assert train_small.main([*flags, "--out", str(workdir / "small")]) == 0
    (log,) = (workdir / "small").glob("*/run_log.json")
    small = json.loads(log.read_text())["results"]
    assert small["weights_sha256"] == res["ours_weights_sha256"]   # the same computation
    assert small["overall_accuracy"] == res["ours_accuracy"]


def test_precision_measures_each_variant(tiny_data, workdir, capsys):
    # fp32-graph: the step of --cuda-graph, run without capture on a CPU
    assert run(tiny_data, workdir, "precision", "--variants", "fp32,bf16-cl,fp32-graph",
               "--batch-size", "4") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["precision"]
    check_record(rec, "precision", tiny_data)
    res = rec["results"]
    assert rec["model"] == "resnet18" and rec["batch_size"] == 4
    assert res["baseline"] == "fp32"
    assert rec["settings"]["variants"] == {
        "fp32": {"precision": "fp32", "channels_last": False, "graph": False},
        "bf16-cl": {"precision": "bf16", "channels_last": True, "graph": False},
        "fp32-graph": {"precision": "fp32", "channels_last": False, "graph": True}}
    assert len(rates(res)) == 6 and all(positive(v) for v in rates(res))
    for name in ("bf16_cl", "fp32_graph"):
        assert res[f"{name}_vs_fp32"] == pytest.approx(res[f"{name}_steps_per_s"] / res["fp32_steps_per_s"])
    assert "fp32_vs_fp32" not in res
    assert "resnet18 bf16-cl vs fp32: " in out


def test_all_writes_one_record_per_benchmark(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "all", "--model", "small", "--batch-size", "4",
               "--variants", "fp32,bf16") == 0
    out = capsys.readouterr().out
    recs = records(workdir)
    assert set(recs) == set(benchmark.BENCHMARKS)
    for name, rec in recs.items():
        check_record(rec, name, tiny_data)
        assert rates(rec["results"]) and all(positive(v) for v in rates(rec["results"]))
    summary = [line for line in out.split("== summary\n", 1)[1].splitlines()
               if " vs cpu " not in line]                    # accelerators, where there are any
    assert [line.split(":")[0] for line in summary] == [
        "pipeline speed-up", "pipeline overhead (augmented pipeline / in memory)",
        "augmentation cost (augmented / not)", "small LeNet speed-up (ours / tutorial)",
        "small bf16 vs fp32"]


@pytest.mark.parametrize("argv", [
    [],
    ["nonsense"],
    ["pipeline", "--steps", "0"],
    ["pipeline", "--warmup", "-1"],
    ["pipeline", "--num-workers", "two"],
    ["devices", "--devices", "cpu,tpu"],
    ["devices", "--model", "vgg"],
    ["precision", "--variants", "fp64"],
    ["precision", "--variants", "fp16", "--device", "cpu"],   # fp16 autocast is for cuda and mps
])
def test_bad_flags_exit_2_with_one_line(tiny_data, workdir, capsys, argv):
    assert benchmark.main([*argv, "--data-dir", str(tiny_data), "--out", str(workdir / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("out", ["blocker/runs", "blocker"])
def test_unwritable_out_stops_before_any_work(tiny_data, workdir, capsys, out):
    (workdir / "blocker").write_text("a file, not a folder")
    assert benchmark.main(["small", "--data-dir", str(tiny_data), "--out", str(workdir / out), *TINY]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                       # nothing measured
    assert re.fullmatch(r"error: cannot create a run folder in .*blocker.* choose a writable folder "
                        r"with --out\n", captured.err)
    assert sorted(p.name for p in workdir.iterdir()) == ["blocker"]


def test_missing_data_is_the_data_modules_error(workdir, capsys):
    (workdir / "empty").mkdir()
    argv = ["pipeline", "--data-dir", str(workdir / "empty"), "--no-download", "--out", str(workdir / "runs")]
    assert benchmark.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 not found in") and err.count("\n") == 1


def test_help_states_every_default(capsys):
    parser = benchmark.build_parser()
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS and action.dest != "help":
            assert "(default: " in action.help, action.dest
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--help"])
    assert exit_info.value.code == 0
    assert "--ref-images" in capsys.readouterr().out


def test_floor_compares_each_step_with_its_flop_floor(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "floor", "--model", "large", "--device", "cpu") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["floor"]
    check_record(rec, "floor", tiny_data)
    res = rec["results"]["large"]
    # the wide LeNet's step at batch 64: conv and linear layers, forward and backward
    from torch.utils.flop_counter import FlopCounterMode
    from models import build_model
    model = build_model("large")
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(64, 3, 32, 32)).sum().backward()
    assert res["flops_per_step"] == counter.get_total_flops()
    assert res["floor_seconds"] == pytest.approx(res["flops_per_step"] / rec["results"]["matrix_flop_per_s"])
    assert res["ratio_to_floor"] == pytest.approx(res["seconds_per_step"] / res["floor_seconds"])
    assert re.search(r"large: [\d.,]+ GFLOP per step of 64, .* the floor", out)


def test_floor_on_a_cpu_holds_the_step_to_its_fp32_and_bf16_matrix_rates(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "floor", "--model", "large", "--device", "cpu") == 0
    out = capsys.readouterr().out
    results = records(workdir)["floor"]["results"]
    rates = results["cpu_matrix_flop_per_s"]
    assert set(rates) == {"fp32", "bf16"} and all(positive(v) for v in rates.values())
    res = results["large"]
    for name, floor in res["cpu_floors"].items():
        assert floor["floor_seconds"] == pytest.approx(res["flops_per_step"] / rates[name])
        assert floor["ratio_to_floor"] == pytest.approx(res["seconds_per_step"] / floor["floor_seconds"])
        assert f"large fp32 step time / floor at the CPU's {name} matrix rate: " in out
    assert "the CPU's matrix products: fp32 " in out


def test_floors_arithmetic():
    # 2 GFLOP per step at 100 and 400 GFLOP/s: floors of 20 and 5 ms; a 50 ms step is 2.5x and 10x them.
    f = benchmark.floors(2e9, 0.05, {"fp32": 100e9, "bf16": 400e9})
    assert f["fp32"]["floor_seconds"] == pytest.approx(0.02) and f["fp32"]["ratio_to_floor"] == pytest.approx(2.5)
    assert f["bf16"]["floor_seconds"] == pytest.approx(0.005) and f["bf16"]["ratio_to_floor"] == pytest.approx(10)
    assert f["bf16"]["matrix_flop_per_s"] == 400e9


def test_threads_records_each_models_four_cells_side_by_side(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "threads", "--model", "small") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["threads"]
    check_record(rec, "threads", tiny_data)
    res = rec["results"]
    default = res["default_threads"]
    assert default == torch.get_num_threads()
    small = res["small"]
    assert small["batch_size"] == 4 and small["steps"] == 2
    assert small["recipe_threads"] == recipes.config_for("small").threads
    assert set(small["cells"]) == {"default_idle", "default_busy", "1_idle", "1_busy"}
    for name, cell in small["cells"].items():
        assert cell["threads"] == (1 if name.startswith("1_") else default)
        assert cell["spinner"] is name.endswith("_busy")
        assert cell["images"] == 8 and positive(cell["images_per_s"])
        assert cell["images_per_s"] == pytest.approx(cell["images"] / cell["seconds"])
        assert cell["other_cpus"] is None or cell["other_cpus"] >= 0
    rate = {k: v["images_per_s"] for k, v in small["cells"].items()}
    assert small["default_busy_vs_idle"] == pytest.approx(rate["default_busy"] / rate["default_idle"])
    assert small["1_busy_vs_idle"] == pytest.approx(rate["1_busy"] / rate["1_idle"])
    assert small["one_vs_default_busy"] == pytest.approx(rate["1_busy"] / rate["default_busy"])
    assert small["one_vs_default_idle"] == pytest.approx(rate["1_idle"] / rate["default_idle"])
    assert re.search(rf"small 1 thread vs {default} threads, busy: [\d.]+x", out)


def test_the_spinner_keeps_a_cpu_busy_and_is_gone_after():
    with benchmark.spinning(True) as spinner:
        pid = spinner.process.pid
        before = spinner.cpu_seconds()
        t = time.monotonic()
        while time.monotonic() - t < 0.5:
            pass
        assert spinner.cpu_seconds() > before                        # it runs
    assert spinner.process.poll() is not None                         # and is gone
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_compile_payback_arithmetic():
    # first compiled step 65 s against 5 s eager steps: 60 s of compiling; 4 s compiled steps gain 1 s each
    p = benchmark.compile_payback(65.0, 5.0, 4.0, 15_640)
    assert p == {"compile_s": 60.0, "payback_steps": 60.0, "run_steps": 15_640, "pays": True}
    assert benchmark.compile_payback(65.0, 5.0, 4.999, 15_640)["pays"] is False          # 60,000 steps
    slower = benchmark.compile_payback(65.0, 5.0, 5.5, 15_640)
    assert slower["payback_steps"] is None and slower["pays"] is False


def test_flops_counts_each_network_per_image_as_the_layer_formulas_give(tiny_data, workdir, capsys):
    assert run(tiny_data, workdir, "flops", "--device", "cpu") == 0
    out = capsys.readouterr().out
    rec = records(workdir)["flops"]
    check_record(rec, "flops", tiny_data)
    res = rec["results"]
    assert set(res) == set(recipes.RECIPES)
    # The tutorial LeNet, by hand (2 FLOP per multiply-add): conv1 2*6*28*28*75, conv2 2*16*10*10*150,
    # fc 2*(400*120 + 120*84 + 84*10).  A training step is the forward, the weights' gradients (as much
    # again) and the inputs' gradients of every layer but the first (the images need none).
    forward = 2 * (6 * 28 * 28 * 75 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    conv1 = 2 * 6 * 28 * 28 * 75
    assert res["small"]["forward_flop_per_image"] == forward == 1_303_440
    assert res["small"]["train_flop_per_image"] == 3 * forward - conv1
    assert res["small"]["params"] == 62_006 and res["resnet18"]["params"] == 11_173_962
    # ResNet-18 needs about 21x the wide LeNet's compute per image, the fast network about 5x
    assert 20 < res["resnet18"]["train_flop_per_image"] / res["large"]["train_flop_per_image"] < 25
    assert 4 < res["fast"]["train_flop_per_image"] / res["large"]["train_flop_per_image"] < 6
    assert re.search(r"fast: [\d.]+ GFLOP per training image \(forward and backward\)", out)
