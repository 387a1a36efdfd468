"""report.py: results.md and plots from run logs written into a temporary folder.

The logs are made from one log that the real training loop writes (``template``): ``make_log``
changes only fields that log has, so a change of the run-log format in engine.py breaks these
tests instead of passing unnoticed.
"""
import copy
import dataclasses
import hashlib
import json
import os
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402

import data  # noqa: E402
import recipes  # noqa: E402
import report  # noqa: E402
import runs  # noqa: E402
import train_large  # noqa: E402

CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BASE_OFFSETS = [5.0, 9.0, -8.0, -12.0, -3.0, -6.0, 7.0, 3.0, 10.0, -5.0]
AUG_OFFSETS = [2.0, 11.0, -1.0, -9.0, 4.0, 1.0, 8.0, -4.0, 12.0, -6.0]
CHIP = "Test Chip 9000"
PARAMS = {"small": 62006, "large": 1982602, "resnet18": 11173962}
JPEG_ID = "d32df6ea6c2fcfbc"          # the md5-based id of the JPEG copy in logs before content digests
JPEG_NAME = data.KNOWN_FILE_IDS[JPEG_ID]
JPEG_CONTENT = next(k for k, v in data.KNOWN_CONTENT.items() if v == JPEG_NAME)
OFFICIAL_NAME = data.KNOWN_CONTENT[data.OFFICIAL_CONTENT]
DATASETS = {        # dataset fingerprints as the loop writes them; "tiny": the template's own
    "official": dict(content=data.OFFICIAL_CONTENT, official=True, files_id="0f0f0f0f0f0f0f0f"),
    "jpeg": dict(content=JPEG_CONTENT, official=False, files_id="1e1e1e1e1e1e1e1e"),
    "unknown": dict(content="ab" * 32, official=False, files_id="2d2d2d2d2d2d2d2d"),
}


@pytest.fixture(scope="module")
def template(tiny_data, tmp_path_factory):
    """The run log of one real epoch of train_large.py on the tiny set."""
    out = tmp_path_factory.mktemp("template") / "runs"
    assert train_large.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", str(out),
                             "--device", "cpu", "--log-every", "1"]) == 0
    (path,) = out.glob("*/run_log.json")
    log = json.loads(path.read_text())
    assert log["status"] == "complete" and log["history"] and log["loss_lines"] and log["results"]
    return log


def put(record, **fields):
    """Set ``fields`` of ``record``; each must be a field the training loop writes."""
    for key, value in fields.items():
        assert key in record, f"the run log has no field {key!r}: did its format change?"
        record[key] = value


def fake_sha(*parts):
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@pytest.fixture(scope="module")
def make_log(template):
    """``make_log(run_id, ...)``: the real log, changed into the run these arguments describe."""
    def make(run_id, model="large", epochs=2, augment=False, onecycle=False, device="cpu",
             precision="fp32", seed=1111, status="complete", acc0=35.0, acc_step=2.0,
             epoch_time=30.0, loss0=2.3, offsets=BASE_OFFSETS, sha="a" * 64, chip=CHIP, tweak=None,
             load=(1.0, 1.0), epoch_load=1.0, cpus=8, dataset="official", cpu_id=None, capability=None,
             other_cpus=None):
        """7 loss lines per epoch, history, results, on ``dataset`` (a key of DATASETS or "tiny").

        Test accuracy after epoch e is ``acc0 + acc_step * e``; class i adds ``offsets[i]``;
        cumulative training time is ``epoch_time * e``; the loss line [e, 100 b] reads
        ``loss0 - 0.01 * (7 (e - 1) + b)``.
        """
        log = copy.deepcopy(template)
        done = epochs if status == "complete" else epochs // 2
        history, lines = [], []
        for e in range(1, done + 1):
            acc = round(acc0 + acc_step * e, 2)
            for b in range(1, 8):
                lines.append([e, 100 * b, round(loss0 - 0.01 * (7 * (e - 1) + b), 6)])
            h = copy.deepcopy(template["history"][0])
            put(h, epoch=e, train_loss=round(loss0 - 0.01 * (7 * (e - 1) + 4), 6), test_accuracy=acc,
                per_class={c: round(acc + o, 1) for c, o in zip(CLASSES, offsets)}, lr=0.001,
                epoch_time_s=epoch_time, eval_time_s=0.5, train_time_s=round(epoch_time * e, 3),
                weights_sha256=sha if e == epochs else fake_sha(sha, e), load_average=[epoch_load, 1.0, 1.0],
                other_cpus=other_cpus[e - 1] if isinstance(other_cpus, list) else other_cpus)
            history.append(h)
        if tweak:                                   # {(epoch, batch): loss}: a run that diverged
            lines = [[e, b, tweak.get((e, b), v)] for e, b, v in lines]
        results = None
        if status == "complete":
            last = history[-1]
            confusion = [[0] * 10 for _ in range(10)]
            for i, c in enumerate(CLASSES):
                right = int(round(last["per_class"][c] * 10))
                confusion[i][i] = right
                confusion[i][(i + 1) % 10] = 1000 - right
            results = copy.deepcopy(template["results"])
            put(results, overall_accuracy=last["test_accuracy"], correct=0, total=10000,
                per_class=last["per_class"], confusion=confusion, train_time_s=last["train_time_s"],
                final_loss=lines[-1][2], epochs=epochs, weights_sha256=sha)
        recipe = recipes.config_for(model)
        put(log["config"], model=model, epochs=epochs, batch_size=recipe.batch_size, lr=0.001,
            max_lr=0.1, weight_decay=5e-4 if onecycle else 0.0, momentum=0.9, augment=augment,
            onecycle=onecycle, seed=seed, device=device, precision="auto", threads=0, onednn=True)
        put(log["hardware"], os="Linux", os_release="6.1", architecture="x86_64", chip=chip,
            cpu_model_id=cpu_id, cpu_capability=capability, cpu_count=cpus, torch_threads=cpus,
            gpu="Test GPU 80GB" if device == "cuda" else None,
            python="3.11.7", torch="2.9.0", torchvision="0.24.0", numpy="2.1.0",
            load_average=[load[0], 1.0, 1.0], load_average_end=[load[1], 1.0, 1.0])
        if dataset != "tiny":
            d = DATASETS[dataset]
            put(log["dataset"], id=d["content"][:16], content_sha256=d["content"], official=d["official"],
                official_files=False, files_id=d["files_id"],
                source=data.describe_dataset(d["content"], d["official"]), train_images=50000,
                test_images=10000, folder="data/cifar-10-batches-py")
        put(log, run_id=run_id, status=status, script=recipes.recipe(model).script, model=model,
            params=PARAMS.get(model, 1000), seed=seed, device=device, device_requested=device,
            precision=precision, results=results, history=history, loss_lines=lines)
        return log
    return make


def write_logs(runs_dir, logs):
    for log in logs:
        folder = runs_dir / log["run_id"]
        folder.mkdir(parents=True)
        (folder / "run_log.json").write_text(json.dumps(log))
    return runs_dir


def full_set(make_log):
    return {
        "small": make_log("20261201-100000-small-e2", model="small", acc0=50.0),
        "cpu2a": make_log("20261201-110000-large-e2"),
        "cpu2b": make_log("20261201-120000-large-e2"),
        "cuda2": make_log("20261201-130000-large-e2", device="cuda", precision="fp32", epoch_time=5.0,
                          sha="b" * 64, load=(0.5, 3.25)),
        "e20": make_log("20261201-140000-large-e20", epochs=20, epoch_time=31.0),
        "aug40": make_log("20261201-150000-large-aug-e40", epochs=40, augment=True, acc0=40.0,
                          acc_step=1.0, offsets=AUG_OFFSETS),
        "cyc40": make_log("20261201-160000-large-aug-onecycle-e40", epochs=40, augment=True,
                          onecycle=True, acc0=45.0, acc_step=1.0, offsets=AUG_OFFSETS[::-1]),
        "resnet2": make_log("20261201-170000-resnet18-e2", model="resnet18", acc0=40.0, acc_step=5.0),
        "running": make_log("20261201-180000-resnet18-e40", model="resnet18", epochs=40,
                            status="running", acc0=90.0),
    }


def section(md, heading):
    """The text under ``heading`` (any level) up to the next heading of the same or higher level."""
    m = re.search(rf"^(#+) {re.escape(heading)}\n", md, re.M)
    assert m, f"no heading {heading!r}"
    level = len(m.group(1))
    rest = md[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


def tables(text):
    """Every markdown table in ``text`` as a list of rows (lists of cell strings), header first."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|[-|]+\|", line):
                current.append([c.strip() for c in line.strip("|").split(" | ")])
        elif current:
            found.append(current)
            current = []
    return found


def row(tbl, first):
    matches = [r for r in tbl if r[0] == first]
    assert len(matches) == 1, (first, tbl)
    return matches[0]


@pytest.fixture(scope="module")
def full(tmp_path_factory, make_log):
    root = tmp_path_factory.mktemp("report")
    logs = full_set(make_log)
    write_logs(root / "runs", logs.values())
    out = root / "site" / "results.md"
    assert report.main(["--runs", str(root / "runs"), "--output", str(out)]) == 0
    return {"root": root, "logs": logs, "out": out, "md": out.read_text(encoding="utf-8")}


def test_sections_in_the_seed_order(full):
    headings = re.findall(r"^## (.+)$", full["md"], re.M)
    expected = ["Table of Contents", "Data", "Small LeNet-style CNN (62,006 params)",
                "Large LeNet-style CNN (1,982,602 params)", "Reproducibility", "Data Augmentation",
                "Learning Rate Scheduling (40 Epochs)", "Acceptable Accuracy Targets",
                "Epoch Training and Diminishing Returns", "ResNet-18 (11,173,962 params)",
                "Architecture Comparison", "Recipe Ablation (Validation Split)",
                "Seed's Recipe vs the Best Recipe", "Hardware DNA",
                "Activation Visualization", "Plots", "Run Index"]
    assert headings == expected
    for h in ["Device Comparison (2 Epochs)", "Training Progression", "Per-Class Accuracy by Epoch"]:
        assert f"\n### {h}\n" in full["md"]
    assert "[Reproducibility](#reproducibility)" in full["md"]


def test_per_model_numbers_match_the_logs(full):
    small = full["logs"]["small"]["results"]
    text = section(full["md"], "Small LeNet-style CNN (62,006 params)")
    summary = tables(text)[0]
    assert row(summary, "CPU, 2 Epochs")[4:8] == ["54.00%", "60.00s", "2.160", "`20261201-100000-small-e2`"]
    classes = tables(section(full["md"], "CPU, 2 Epochs"))[0][1:]
    best_first = sorted(small["per_class"].items(), key=lambda kv: -kv[1])
    assert classes == [[c, f"{v:.1f}%"] for c, v in best_first]
    assert classes[0] == ["ship", "64.0%"]
    datasets = tables(section(full["md"], "Data"))[0]
    assert row(datasets, OFFICIAL_NAME)[1:] == [f"`{data.OFFICIAL_CONTENT[:16]}`", "yes",
                                                "data/cifar-10-batches-py", "50000 / 10000", "9", "8 of 9"]


def test_device_comparison_computes_speedup(full):
    tbl = tables(section(full["md"], "Device Comparison (2 Epochs)"))[0]
    assert row(tbl, "CPU") == ["CPU", "60.00s", "39.00%", "1.0x (baseline)", "1.00 → 1.00",
                              "`20261201-120000-large-e2`"]
    assert row(tbl, "CUDA") == ["CUDA", "10.00s", "39.00%", "**6.0x faster**", "0.50 → 3.25",
                                "`20261201-130000-large-e2`"]


def test_progression_prefers_real_runs_and_reads_history_for_the_rest(full):
    text = section(full["md"], "Training Progression")
    tbl = tables(text)[0]
    assert tbl[0] == ["Metric", "2 Epochs", "10 Epochs", "20 Epochs"]
    # 2 epochs: the most recent real 2-epoch CPU run (not epoch 2 of the 20-epoch run, which took 62s)
    assert row(tbl, "**Time**") == ["**Time**", "60.00s", "310.00s", "620.00s"]
    assert row(tbl, "**Overall Accuracy**") == ["**Overall Accuracy**", "39.00%", "55.00%", "75.00%"]
    # last loss line of epoch 10: 2.3 - 0.01 * 70; of epoch 20: 2.3 - 0.01 * 140
    assert row(tbl, "**Final Loss**") == ["**Final Loss**", "2.160", "1.600", "0.900"]
    assert row(tbl, "Run") == ["Run", "`20261201-120000-large-e2`", "`20261201-140000-large-e20` @ epoch 10",
                               "`20261201-140000-large-e20`"]
    assert "same computation as a k-epoch run" in text
    by_epoch = tables(section(full["md"], "Per-Class Accuracy by Epoch"))[0]
    e20 = full["logs"]["e20"]["history"]
    assert row(by_epoch, "cat") == ["cat", f"{e20[9]['per_class']['cat']:.1f}%", f"{e20[19]['per_class']['cat']:.1f}%"]


def test_reproducibility_match_column(full):
    text = section(full["md"], "Reproducibility")
    tbl = tables(text)[0]
    assert tbl[0] == ["Metric", "Run 1", "Run 2", "Match"]
    assert row(tbl, "Loss [1, 100]") == ["Loss [1, 100]", "2.290", "2.290", "✓"]
    assert row(tbl, "Loss [2, 700]") == ["Loss [2, 700]", "2.160", "2.160", "✓"]
    assert row(tbl, "Final weights sha256")[-1] == "✓"
    assert "Run 1 = `20261201-110000-large-e2`, Run 2 = `20261201-120000-large-e2`" in text
    assert "reproduce bit for bit" in text
    assert "20261201-130000" not in text          # the CUDA run is another device, not a repeat


def test_reproducibility_mismatch_is_a_cross(make_log, tmp_path):
    logs = [make_log("20261201-110000-large-e2"),
            make_log("20261201-120000-large-e2", sha="c" * 64, tweak={(1, 700): 2.2301, (2, 700): 2.1612})]
    write_logs(tmp_path / "runs", logs)
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out), "--no-plots"]) == 0
    tbl = tables(section(out.read_text(), "Reproducibility"))[0]
    assert row(tbl, "Loss [1, 100]")[-1] == "✓"
    assert row(tbl, "Loss [1, 700]") == ["Loss [1, 700]", "2.230000", "2.230100", "✗"]
    assert row(tbl, "Loss [2, 700]") == ["Loss [2, 700]", "2.160", "2.161", "✗"]
    assert row(tbl, "**Overall Accuracy**")[-1] == "✓"
    assert row(tbl, "Final weights sha256")[-1] == "✗"
    assert "differ in Loss [1, 700], Loss [2, 700], Final weights sha256" in out.read_text()


def test_reproducibility_of_runs_with_ema_compares_the_weight_average(make_log, tmp_path):
    logs = [make_log(f"20261201-1{i}0000-small-e2", model="small") for i in (1, 2)]
    for log, ema_sha in zip(logs, ["d" * 64, "e" * 64]):
        log["config"].update(ema=0.999)
        log["results"]["weights_ema_sha256"] = ema_sha
    write_logs(tmp_path / "runs", logs)
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out), "--no-plots"]) == 0
    tbl = tables(section(out.read_text(), "Reproducibility"))[0]
    assert row(tbl, "Final weights sha256")[-1] == "✓"
    assert row(tbl, "Weight average (EMA) sha256") == ["Weight average (EMA) sha256", "`dddddddddddd…`",
                                                       "`eeeeeeeeeeee…`", "✗"]
    assert "differ in Weight average (EMA) sha256" in out.read_text()


def test_augmentation_compares_at_equal_epochs_only(full):
    text = section(full["md"], "Data Augmentation")
    tbl = tables(text)[0]
    assert tbl[0][1:] == ["No Aug (20 epochs)", "With Aug (20 epochs)", "No Aug (40 epochs)", "With Aug (40 epochs)"]
    assert row(tbl, "**Overall Accuracy**") == ["**Overall Accuracy**", "75.00%", "60.00%", "not measured",
                                                "80.00%"]
    assert row(tbl, "Run") == ["Run", "`20261201-140000-large-e20`", "`20261201-150000-large-aug-e40` @ epoch 20",
                               "—", "`20261201-150000-large-aug-e40`"]
    # the 40-epoch augmentation run is never set against the 20-epoch run without it
    assert ("**Key findings:** at 20 epochs, 60.00% with augmentation against 75.00% without "
            "(-15.00 points).") in text
    assert "80.00% with augmentation" not in text
    assert "`python train_large.py --epochs 40`" in text          # what fills the missing column
    per_class = tables(section(full["md"], "Per-Class Accuracy Comparison"))[0]
    assert per_class[0] == ["Class", "No Aug (20 ep)", "Aug (20 ep)", "Δ"]
    no_aug = full["logs"]["e20"]["results"]["per_class"]
    aug20 = full["logs"]["aug40"]["history"][19]["per_class"]
    for c in CLASSES:
        assert row(per_class, c)[-1].strip("*") == f"{aug20[c] - no_aug[c]:+.1f}", c
    assert row(per_class, "bird") == ["bird", "67.0%", "59.0%", "-8.0"]
    assert "Both at 20 epochs." in full["md"]


def test_scheduling_delta(full):
    text = section(full["md"], "Learning Rate Scheduling (40 Epochs)")
    tbl = tables(text)[0]
    assert row(tbl, "**Overall Accuracy**") == ["**Overall Accuracy**", "80.00%", "85.00%", "+5.00 points"]
    assert "max_lr=0.1" in text and "(0.0005)" in text
    per_class = tables(section(full["md"], "Per-Class Accuracy Comparison (Fixed LR vs OneCycleLR)"))[0]
    fixed = full["logs"]["aug40"]["results"]["per_class"]
    cyc = full["logs"]["cyc40"]["results"]["per_class"]
    for c in CLASSES:
        assert row(per_class, c)[-1].strip("*") == f"{cyc[c] - fixed[c]:+.1f}", c


def test_targets_and_resnet(full):
    tbl = tables(section(full["md"], "Acceptable Accuracy Targets"))[0]
    assert tbl[0] == ["Model", "Target Accuracy", "Epochs", "Accuracy", "Status", "Runs"]
    assert row(tbl, "Small LeNet-style CNN")[1:] == ["≥50%", "2", "54.00%", "✓ Achieved",
                                                     "`20261201-100000-small-e2`"]
    assert row(tbl, "Large LeNet-style CNN")[2:5] == ["20", "75.00%", "✓ Achieved"]
    assert row(tbl, "Large LeNet-style CNN + augmentation + OneCycleLR")[2:5] == ["40", "85.00%", "✓ Achieved"]
    # the seed's ResNet-18 row is 40 epochs: a 2-epoch run is not that row, and the running
    # 40-epoch ResNet logs 90%+ per epoch but is not complete: not used
    assert row(tbl, "ResNet-18")[1:] == ["≥90%", "40", "—", "not measured", "—"]
    resnet = section(full["md"], "ResNet-18 (11,173,962 params)")
    assert "40-epoch recipe has not been measured yet" in resnet
    assert "`python train_resnet.py --epochs 40`" in resnet
    # a 2-epoch ResNet-18 is never set against a 40-epoch LeNet
    comp = section(full["md"], "Comparison vs Large LeNet-style CNN + OneCycleLR")
    assert not tables(comp) and "improved" not in comp and "waits for equal epochs" in comp
    assert "`python train_large.py --epochs 2 --augment --onecycle`" in comp
    index = tables(section(full["md"], "Run Index"))[0]
    assert row(index, "`20261201-180000-resnet18-e40`")[-2:] == ["running (epoch 20/40)", "no: not complete"]
    assert row(index, "`20261201-170000-resnet18-e2`")[-1] == "yes"
    assert len(index) == 1 + len(full["logs"])


def test_plots_written_and_linked(full):
    md, site = full["md"], full["out"].parent
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = sorted(p.split("/")[-1] for p in links)
    assert names == ["confusion_large.png", "confusion_resnet18.png", "confusion_small.png",
                     "curves_large.png", "curves_resnet18.png", "curves_small.png", "per_class.png"]
    for link in links:
        assert link.startswith("results/")
        img = mpimg.imread(site / link)
        assert img.shape[0] >= 300 and img.shape[1] >= 400, (link, img.shape)
        assert img[..., :3].std() > 0.01                  # not a blank canvas


def test_running_twice_gives_the_same_file(full):
    out = full["out"]
    assert report.main(["--runs", str(full["root"] / "runs"), "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == full["md"]


def test_no_runs_says_not_measured_with_commands(tmp_path):
    (tmp_path / "runs").mkdir()
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out)]) == 0
    md = out.read_text()
    assert md.count("*Not measured yet.*") >= 12
    for heading, command in [("Small LeNet-style CNN", "python train_small.py"),
                             ("Device Comparison (2 Epochs)", "python train_large.py --epochs 2 --device cpu"),
                             ("Training Progression", "python train_large.py --epochs 20"),
                             ("Reproducibility", "python train_large.py --epochs 2"),
                             ("Data Augmentation", "python train_large.py --epochs 40 --augment"),
                             ("Learning Rate Scheduling (40 Epochs)",
                              "python train_large.py --epochs 40 --augment --onecycle"),
                             ("ResNet-18", "python train_resnet.py --epochs 40"),
                             ("Activation Visualization", "python visualize_activations.py --out activations")]:
        text = section(md, heading)
        assert "Not measured yet" in text and f"`{command}`" in text, heading
    assert not (tmp_path / "results").exists()


def test_corrupt_log_is_skipped_with_a_warning(make_log, tmp_path, capsys):
    runs = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small", acc0=50.0)])
    (runs / "broken").mkdir()
    (runs / "broken" / "run_log.json").write_text('{"run_id": "broken", "status": "comp')
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out), "--no-plots"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipping") and "broken" in err[0]
    assert "54.00%" in out.read_text() and "broken" not in out.read_text()


def test_benchmarks_and_unknown_kinds(tmp_path):
    bench = {"kind": "benchmark", "benchmark": "devices", "run_id": "20261201-090000-bench-devices",
             "model": "large", "batch_size": 64, "device": "cuda", "hardware": {"chip": CHIP, "os": "Linux"},
             "results": {"devices": {"cuda": {"images_per_s": 25000.0, "speedup_vs_cpu": 99.0},
                                     "cpu": {"images_per_s": 1000.0, "speedup_vs_cpu": 1.0}},
                         "skipped": {"mps": "not available"}, "steps": 50, "extra": {"nested": [1, 2]}}}
    pipeline = {"kind": "benchmark", "benchmark": "pipeline", "run_id": "20261201-091000-bench-pipeline",
                "model": None, "batch_size": 64, "device": "cuda", "hardware": {"chip": CHIP},
                "results": {"ours_images_per_s": 123456.789, "ref_images_per_s": 2345.0}}
    other = {"kind": "sweep", "run_id": "20261201-080000-sweep", "whatever": [1]}
    runs = write_logs(tmp_path / "runs", [bench, pipeline, other])
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out), "--no-plots"]) == 0
    text = section(out.read_text(), "Device Comparison (2 Epochs)")
    tbl = [t for t in tables(text) if t[0][0] == "Device"][0]
    assert row(tbl, "CPU") == ["CPU", "1,000.0", "1.0x"]
    assert row(tbl, "CUDA") == ["CUDA", "25,000.0", "25.0x"]      # computed from images/s
    assert row(tbl, "MPS") == ["MPS", "skipped (not available)", "—"]
    assert "`20261201-090000-bench-devices`" in text and "| steps | 50 |" in text
    assert "pipeline" not in text
    others = section(out.read_text(), "Other Benchmark Results")
    assert "| ours_images_per_s | 1.235e+05 |" in others and "`20261201-091000-bench-pipeline`" in others
    assert "`20261201-080000-sweep` (sweep)" in out.read_text()
    # what else used the machine while the benchmark ran, where the record has it; † when others kept
    # half a CPU or more busy
    assert ("(run `20261201-091000-bench-pipeline`, cuda, Test Chip 9000, other processes' CPU use not "
            "recorded)") in others
    assert "Measured on a busy machine" not in out.read_text()
    idle = dict(pipeline, run_id="20261201-092000-bench-pipeline", hardware={"chip": CHIP, "other_cpus": 0.03})
    busy = dict(bench, run_id="20261201-093000-bench-devices", hardware={"chip": CHIP, "other_cpus": 0.5})
    runs = write_logs(tmp_path / "runs2", [bench, pipeline, idle, busy])
    assert report.main(["--runs", str(runs), "--output", str(out), "--no-plots"]) == 0
    md = out.read_text()
    assert "(run `20261201-092000-bench-pipeline`, cuda, Test Chip 9000, other processes 0.03 CPUs):" in md
    assert "(run `20261201-093000-bench-devices`, other processes 0.50 CPUs†)" in md
    assert md.count("† Measured on a busy machine: other processes kept 0.5 CPUs or more busy") == 1


def test_activation_pngs_are_linked(make_log, tmp_path):
    runs = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small")])
    (tmp_path / "activations").mkdir()
    for name in ["resnet18_layer1.png", "resnet18_conv1.png"]:
        mpimg.imsave(tmp_path / "activations" / name, [[0.0, 1.0], [1.0, 0.0]])
    (tmp_path / "activations" / "resnet18_stats.json").write_text(json.dumps({
        "kind": "activations", "model": "resnet18", "source": "run x", "device": "cpu",
        "image": {"index": 3, "true": "cat", "predicted": "dog"},
        "layers": [{"layer": "layer1", "channels": 64, "resolution": "32x32", "mean": 0.5, "zeros": 0.4567}]}))
    (tmp_path / "activations" / "broken_stats.json").write_text("{")
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out), "--no-plots"]) == 0
    text = section(out.read_text(), "Activation Visualization")
    assert re.findall(r"\]\((activations/[^)]+)\)", text) == ["activations/resnet18_conv1.png",
                                                              "activations/resnet18_layer1.png"]
    assert row(tables(text)[0], "layer1") == ["layer1", "64", "32x32", "0.500", "45.7%"]


def test_unwritable_output_is_a_one_line_error(make_log, tmp_path, capsys):
    runs = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small")])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    assert report.main(["--runs", str(runs), "--output", str(blocker / "results.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and "--output" in err[0]


def test_missing_runs_folder_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "nope"), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no runs folder")
    assert not out.exists()


def test_help_states_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        report.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())     # argparse wraps lines
    assert "(default: runs)" in out and "(default: results.md)" in out and "results/ beside --output" in out


def test_resumed_run_against_its_uninterrupted_twin(make_log, tmp_path):
    ref = make_log("20261201-140000-large-e20", epochs=20)
    for h in ref["history"]:
        h["weights_sha256"] = f"{h['epoch']:02d}" * 32
    good = make_log("20261201-150000-large-e3", epochs=3, sha="03" * 32)
    good["resumes"] = [{"after_epoch": 1, "at": "2026-12-01T15:05:00+0000", "device": "cpu"}]
    bad = make_log("20261201-160000-large-e3", epochs=3, sha="ff" * 32, tweak={(2, 300): 9.0})
    bad["resumes"] = [{"after_epoch": 1, "at": "2026-12-01T16:05:00+0000", "device": "cpu"}]
    write_logs(tmp_path / "runs", [ref, good, bad])
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out), "--no-plots"]) == 0
    text = section(out.read_text(), "Interrupted and Resumed")
    first, second = tables(text)
    assert "`20261201-140000-large-e20` @ epoch 3" in first[0][2]
    assert row(first, "Loss lines after the resume") == ["Loss lines after the resume", "14 lines",
                                                          "14 lines", "✓"]
    assert row(first, "Accuracy after epoch 3")[-1] == "✓"
    assert row(first, "Weights sha256 after epoch 3")[-1] == "✓"
    assert row(second, "Loss lines after the resume")[-1] == "✗"
    assert row(second, "Weights sha256 after epoch 3")[-1] == "✗"


def test_shorter_runs_against_the_same_epochs_of_a_longer_run(make_log, tmp_path):
    ref = make_log("20261201-140000-large-e20", epochs=20)
    for h in ref["history"]:
        h["weights_sha256"] = f"{h['epoch']:02d}" * 32
    good = make_log("20261201-150000-large-e3", epochs=3, sha="03" * 32)
    bad = make_log("20261201-160000-large-e3", epochs=3, sha="ff" * 32, tweak={(2, 300): 9.0})
    older = make_log("20261201-170000-large-e2", epochs=2, sha="02" * 32)
    older["results"].pop("weights_sha256")                 # a log from before the digest
    cyc = make_log("20261201-180000-large-onecycle-e3", epochs=3, onecycle=True, sha="03" * 32)
    cyc_ref = make_log("20261201-190000-large-onecycle-e20", epochs=20, onecycle=True)
    md = render(tmp_path, [ref, good, bad, older, cyc, cyc_ref])
    text = section(md, "Longer Runs Against Shorter Ones")
    rows = tables(text)[0]
    pairs = {(r[0].strip("`"), r[1].split("`")[1]): [r[3], r[4], r[5], r[6]] for r in rows[1:]}
    e20 = "20261201-140000-large-e20"
    # every fixed-rate run against each longer one of the same computation; OneCycle runs: no prefix
    assert sorted(pairs) == sorted([("20261201-150000-large-e3", e20), ("20261201-160000-large-e3", e20),
                                    ("20261201-170000-large-e2", e20),
                                    ("20261201-170000-large-e2", "20261201-150000-large-e3"),
                                    ("20261201-170000-large-e2", "20261201-160000-large-e3")])
    assert pairs["20261201-150000-large-e3", e20] == [
        "21 lines / 21 lines", "41.00% / 41.00%", "`030303030303…` / `030303030303…`", "✓"]
    assert pairs["20261201-160000-large-e3", e20][-1] == "✗"
    assert pairs["20261201-170000-large-e2", e20][-2:] == ["not recorded / `020202020202…`", "not recorded"]
    assert "**Result:** 2 of 5 pairs differ." in text  # the bad run: with e20 and with the e2 run


def test_extended_run_is_named_so(make_log, tmp_path):
    run = make_log("20261201-140000-large-e40", epochs=40)
    run["resumes"] = [{"after_epoch": 20, "at": "2026-12-01T15:05:00+0000", "device": "cpu",
                       "epochs_before": 20}]
    write_logs(tmp_path / "runs", [run])
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out), "--no-plots"]) == 0
    text = section(out.read_text(), "Interrupted and Resumed")
    assert "`20261201-140000-large-e40`: extended from 20 to 40 epochs" in text
    assert "No uninterrupted run of the same computation to compare with yet." in text


def test_cpu_kernel_settings_label_runs_and_split_reproducibility_groups(make_log, tmp_path):
    """Runs differing only in oneDNN on/off compute different sums: not one reproducibility group."""
    onednn = make_log("20261201-140000-small-e2", model="small", sha="01" * 32)
    native = [make_log(f"20261201-15000{i}-small-e2", model="small", sha="02" * 32) for i in (0, 1)]
    for r in native:
        r["config"]["onednn"] = False
    write_logs(tmp_path / "runs", [onednn, *native])
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(tmp_path / "runs"), "--output", str(out), "--no-plots"]) == 0
    text = section(out.read_text(), "Reproducibility")
    assert "CPU, 2 Epochs, oneDNN off" in text
    assert text.count("### ") == 1 and "20261201-140000" not in text   # the oneDNN run has no twin
    assert row(tables(text)[0], "Final weights sha256")[-1] == "✓"


def test_one_chip_name_of_two_generations_is_two_machines(make_log, tmp_path):
    """Same seed, same name, another generation or instruction set: other sums, not a twin."""
    logs = [make_log("20261201-140000-small-e2", model="small", sha="01" * 32),     # an older log
            make_log("20261201-150000-small-e2", model="small", sha="02" * 32,
                     cpu_id="family 25 model 1 stepping 1", capability="AVX2"),
            make_log("20261201-160000-small-e2", model="small", sha="03" * 32,
                     cpu_id="family 25 model 17 stepping 1", capability="AVX512")]
    md = render(tmp_path, logs)
    assert section(md, "Reproducibility").count("### ") == 0                # no same-seed pair
    hardware = section(md, "Hardware DNA")
    assert re.findall(r"^### (.*)$", hardware, re.M) == [
        f"{CHIP} (Linux x86_64)", f"{CHIP} (family 25 model 1, AVX2) (Linux x86_64)",
        f"{CHIP} (family 25 model 17, AVX512) (Linux x86_64)"]
    assert "| CPU family and model | not recorded (older logs) |" in hardware
    assert "| CPU family and model | family 25 model 17 stepping 1 |" in hardware
    assert "| CPU kernels' instruction set | AVX2 |" in hardware


def test_cpu_model_id_reads_the_first_processor():
    import hwdna
    info = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
            "model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 6\n")
    assert hwdna.cpu_model_id(info) == "family 25 model 1 stepping 1"
    assert hwdna.cpu_model_id("processor\t: 0\nmodel name\t: Apple M4\n") is None   # no x86 fields


def test_other_cpus_is_the_machines_busy_time_less_the_processs_own(tmp_path):
    import hwdna
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 5 5 3 0 0\ncpu0 50 0 25 400 5 2 3 1 0 0\n")
    wall, busy, own = hwdna.cpu_clock(stat)
    assert busy == pytest.approx(160 / os.sysconf("SC_CLK_TCK")) and own >= 0       # iowait and steal not busy
    assert hwdna.cpu_clock(tmp_path / "missing") is None
    # 10 s of wall time: the machine was busy 25 CPU seconds, 8 of them this process's: 1.7 CPUs others'
    assert hwdna.other_cpus((100.0, 50.0, 2.0), (110.0, 75.0, 10.0)) == 1.7
    assert hwdna.other_cpus((100.0, 50.0, 2.0), (110.0, 55.0, 10.0)) == 0.0     # tick rounding: never below 0
    assert hwdna.other_cpus(None, (110.0, 75.0, 10.0)) is None


def test_a_model_added_to_the_recipes_appears_with_no_other_edit(make_log, tmp_path, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "mini", recipes.Recipe(
        model="mini", name="Mini CNN", script="train_mini.py", summary="a two-layer CNN",
        defaults=dict(epochs=3, batch_size=32), feature_layers=("conv1",), shown_layers=("conv1",),
        targets=(recipes.Target("Mini CNN", 60, {}, 5, "Two conv layers"),)))
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert report.main(["--runs", str(empty / "runs"), "--output", str(empty / "results.md")]) == 0
    text = section((empty / "results.md").read_text(), "Mini CNN")
    assert "A two-layer CNN." in text and "`python train_mini.py --epochs 5`" in text

    short = make_log("20261201-100000-mini-e3", model="mini", epochs=3)
    runs = write_logs(tmp_path / "runs", [short])
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out)]) == 0
    md = out.read_text()
    assert "## Mini CNN (1,000 params)" in md
    assert "the 5-epoch recipe has not been measured yet" in section(md, "Mini CNN (1,000 params)")
    assert row(tables(section(md, "Acceptable Accuracy Targets"))[0], "Mini CNN")[1:] == [
        "≥60%", "5", "—", "not measured", "—"]

    write_logs(runs, [make_log("20261201-110000-mini-e5", model="mini", epochs=5)])
    assert report.main(["--runs", str(runs), "--output", str(out)]) == 0
    md = out.read_text()
    assert row(tables(section(md, "Acceptable Accuracy Targets"))[0], "Mini CNN")[1:] == [
        "≥60%", "5", "45.00%", "✗ 15.00 points below", "`20261201-110000-mini-e5`"]
    assert row(tables(section(md, "Architecture Comparison"))[0], "Mini CNN")[1:4] == ["1,000", "5", "45.00%"]
    assert "CPU, 3 Epochs" in md and "CPU, 5 Epochs" in md and "batch 32" not in md   # the recipe's batch
    assert "results/curves_mini.png" in md and (tmp_path / "results" / "curves_mini.png").is_file()


def render(tmp_path, logs, plots=False):
    """Write ``logs`` into ``tmp_path/runs`` and return the results.md that report.py writes."""
    runs = write_logs(tmp_path / "runs", logs)
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out)] + ([] if plots else ["--no-plots"])) == 0
    return out.read_text()


def older(log, *fields):
    """``log`` as a log written before the loop recorded ``fields``."""
    if "content" in fields:             # dataset id = a digest of the files' md5 sums
        for key in ("content_sha256", "official_files", "files_id"):
            del log["dataset"][key]
    if "load" in fields:                # no 1-minute load after each epoch
        for h in log["history"]:
            del h["load_average"]
    if "sha" in fields:                 # no weights hash
        del log["results"]["weights_sha256"]
        for h in log["history"]:
            del h["weights_sha256"]
    return log


def test_datasets_are_named_by_their_content(make_log, tmp_path):
    old_jpeg = older(make_log("20261201-120000-small-e2", model="small"), "content")
    old_jpeg["dataset"].update(id=JPEG_ID, official=False, source="not the official files")
    old_other = older(make_log("20261201-150000-small-e2", model="small"), "content")
    old_other["dataset"].update(id="0123456789abcdef", official=False, source="not the official files")
    md = render(tmp_path, [make_log("20261201-100000-small-e2", model="small"),
                           make_log("20261201-110000-small-e2", model="small", dataset="jpeg"), old_jpeg,
                           make_log("20261201-130000-small-e2", model="small", dataset="unknown"),
                           make_log("20261201-140000-small-e2", model="small", dataset="tiny"), old_other])
    rows = tables(section(md, "Data"))[0]
    assert row(rows, OFFICIAL_NAME)[1:3] == [f"`{data.OFFICIAL_CONTENT[:16]}`", "yes"]
    # the JPEG copy, from its content digest and from the md5-based id of older logs: one dataset
    assert row(rows, JPEG_NAME)[1:3] == [f"`{JPEG_CONTENT[:16]}`, `{JPEG_ID}`", "no"]
    assert row(rows, JPEG_NAME)[-2:] == ["2", "no"]
    unknown = [r for r in rows[1:] if "unknown origin" in r[0]]
    assert sorted(r[0] for r in unknown) == sorted(
        f"a CIFAR-10-format dataset of unknown origin (id {i})"
        for i in ("0123456789abcdef", "ab" * 8, make_log("x", dataset="tiny")["dataset"]["id"]))
    assert sum("JPEG" in r[0] for r in rows[1:]) == 1           # never "JPEG" by guess
    assert [r[4] for r in unknown if "0123" in r[0] or "abab" in r[0]] == ["50000 / 10000"] * 2
    assert row(rows, OFFICIAL_NAME)[-1] == "1 of 1"


def test_other_data_never_enters_the_main_tables(make_log, tmp_path):
    official = make_log("20261201-100000-large-e20", epochs=20)                        # 75%
    others = {"jpeg": make_log("20261201-110000-large-e20", epochs=20, acc0=55.0, dataset="jpeg"),
              "tiny": make_log("20261201-120000-large-e20", epochs=20, acc0=59.0, dataset="tiny"),
              "unknown": make_log("20261201-130000-large-e20", epochs=20, acc0=50.0, dataset="unknown"),
              "tiny_small": make_log("20261201-140000-small-e2", model="small", acc0=80.0, dataset="tiny")}
    md = render(tmp_path, [official, *others.values()], plots=True)
    main, rest = md.split("## Runs on Other Data\n")
    for log in others.values():
        assert log["run_id"] not in main.split("## Table of Contents")[1], log["run_id"]
    assert row(tables(section(md, "Acceptable Accuracy Targets"))[0], "Large LeNet-style CNN")[3:] == [
        "75.00%", "✓ Achieved", "`20261201-100000-large-e20`"]
    assert "*Not measured yet.* Run `python train_small.py`" in section(md, "Small LeNet-style CNN (62,006 params)")
    assert "1 complete run" not in md and "4 complete run(s) on other data" in md
    other = section(md, "Runs on Other Data")
    tiny_name = f"a CIFAR-10-format dataset of unknown origin (id {others['tiny']['dataset']['id']})"
    tiny = tables(section(other, f"{tiny_name} (200 / 100 images)"))[0]
    assert [r[0] for r in tiny[1:]] == ["Small LeNet-style CNN", "Large LeNet-style CNN"]
    assert row(tables(section(other, f"{JPEG_NAME} (50000 / 10000 images)"))[0],
               "Large LeNet-style CNN")[3] == "95.00%"
    index = tables(section(md, "Run Index"))[0]
    assert row(index, "`20261201-100000-large-e20`")[-1] == "yes"
    assert row(index, "`20261201-110000-large-e20`")[-1] == "no: not the official images"
    assert row(index, "`20261201-120000-large-e20`")[-1] == "no: 200 / 100 images, not the full set"
    assert "20261201-110000" not in section(md, "Plots")


def test_several_seeds_read_as_mean_and_std(make_log, tmp_path):
    cyc = dict(epochs=40, augment=True, onecycle=True, acc_step=1.0)
    logs = [make_log(f"20261201-1{i}0000-large-aug-onecycle-e40", seed=seed, acc0=acc0, epoch_time=30.0 + i, **cyc)
            for i, (seed, acc0) in enumerate([(1111, 44.70), (1112, 44.91), (1113, 45.12)])]
    # a rerun of seed 1111 reproduces it: not a fourth sample
    logs.append(make_log("20261201-140000-large-aug-onecycle-e40", seed=1111, acc0=44.70, epoch_time=40.0, **cyc))
    logs.append(make_log("20261201-150000-large-aug-e40", epochs=40, augment=True, acc0=40.0, acc_step=1.0))
    md = render(tmp_path, logs)
    seeds = "`20261201-100000-large-aug-onecycle-e40`, `20261201-110000-large-aug-onecycle-e40`, " \
            "`20261201-120000-large-aug-onecycle-e40`"
    headline = row(tables(section(md, "Acceptable Accuracy Targets"))[0],
                   "Large LeNet-style CNN + augmentation + OneCycleLR")
    assert headline[1:] == ["≥85%", "40", "84.91 ± 0.21% (n=3)", "✗ 0.09 points below", seeds]
    assert row(tables(section(md, "Acceptable Accuracy Targets"))[0],
               "Large LeNet-style CNN + augmentation")[3] == "80.00%"               # one seed: no ± and no n
    configs = tables(section(md, "Large LeNet-style CNN (1,982,602 params)"))[1]
    assert row(configs, "CPU, 40 Epochs, augmentation, OneCycleLR")[4:] == [
        "84.91 ± 0.21% (n=3)", "1240.00s", "-0.500", seeds, "4"]
    schedule = section(md, "Learning Rate Scheduling (40 Epochs)")
    assert row(tables(schedule)[0], "**Overall Accuracy**") == [
        "**Overall Accuracy**", "80.00%", "84.91 ± 0.21% (n=3)", "+4.91 points"]
    assert "mean ± sample standard deviation" in schedule
    per_class = tables(section(md, "CPU, 40 Epochs, augmentation, OneCycleLR"))[0]
    assert row(per_class, "ship") == ["ship", f"{84.91 + 10:.1f}%"]                  # the mean over seeds


def test_a_class_without_test_images_reads_na(make_log, tmp_path):
    new = make_log("20261201-100000-small-e2", model="small")
    new["results"]["per_class"]["cat"] = None          # the loop writes null for a class with no image
    new["results"]["confusion"][3] = [0] * 10
    for h in new["history"]:
        h["per_class"]["cat"] = None
    old = make_log("20261201-110000-large-e20", epochs=20)  # older logs wrote 0.0
    old["results"]["per_class"]["cat"] = 0.0
    old["results"]["confusion"][3] = [0] * 10
    for h in old["history"]:
        h["per_class"]["cat"] = 0.0
    md = render(tmp_path, [new, old], plots=True)
    small = tables(section(md, "CPU, 2 Epochs"))[0]
    assert small[-1] == ["cat", "n/a"]                                               # listed last
    assert tables(section(md, "CPU, 20 Epochs"))[0][-1] == ["cat", "n/a"]
    assert row(tables(section(md, "Per-Class Accuracy by Epoch"))[0], "cat") == ["cat", "n/a", "n/a"]
    assert not re.search(r"\| 0\.0% \|", md)


def test_resnet_is_compared_with_the_lenet_at_equal_epochs(make_log, tmp_path):
    cyc40 = make_log("20261201-160000-large-aug-onecycle-e40", epochs=40, augment=True, onecycle=True,
                     acc0=45.0, acc_step=1.0, offsets=AUG_OFFSETS)
    res40 = make_log("20261201-170000-resnet18-e40", model="resnet18", epochs=40, acc0=50.0, acc_step=1.0)
    res2 = make_log("20261201-180000-resnet18-e2", model="resnet18", acc0=80.0, acc_step=5.0)  # 90% in 2
    md = render(tmp_path, [cyc40, res40, res2], plots=True)
    comp = section(md, "Comparison vs Large LeNet-style CNN + OneCycleLR")
    assert "Both at 40 epochs" in comp and "`20261201-170000-resnet18-e40`" in comp
    assert "20261201-180000" not in comp
    assert tables(comp)[0][0] == ["Class", "Large CNN (85.00%)", "ResNet-18 (90.00%)", "Δ"]
    assert row(tables(section(md, "Acceptable Accuracy Targets"))[0], "ResNet-18")[2:5] == [
        "40", "90.00%", "✓ Achieved"]
    arch = tables(section(md, "Architecture Comparison"))[0]
    assert arch[0][:4] == ["Model", "Params", "Epochs", "Accuracy"]
    assert row(arch, "ResNet-18")[2:4] == ["40", "90.00%"]
    plots = section(md, "Per-Class Accuracy of the Target Rows")
    assert "ResNet-18 (40 epochs) `20261201-170000-resnet18-e40`" in plots and "20261201-180000" not in plots


def test_epoch_series_leaves_augmentation_out(full):
    text = section(full["md"], "Epoch Training and Diminishing Returns")
    tbl = tables(text)[0]
    assert [r[0] for r in tbl[1:]] == ["2", "10", "20"]
    assert row(tbl, "20")[1:3] == ["75.00%", "+20.00 points"]
    assert "aug" not in " ".join(" ".join(r) for r in tbl)


def test_a_hash_missing_from_an_older_log_reads_not_recorded(make_log, tmp_path):
    old = older(make_log("20261201-110000-large-e20", epochs=20), "sha")
    new = make_log("20261201-120000-large-e20", epochs=20)
    resumed = make_log("20261201-130000-large-e3", epochs=3, sha="03" * 32)
    resumed["resumes"] = [{"after_epoch": 1, "at": "2026-12-01T13:05:00+0000", "device": "cpu",
                           "epochs_before": 3}]
    md = render(tmp_path, [old, new])
    text = section(md, "Large LeNet-style CNN, CPU, 20 Epochs, seed 1111")
    assert row(tables(text)[0], "Final weights sha256") == [
        "Final weights sha256", "not recorded", "`aaaaaaaaaaaa…`", "not recorded"]
    assert "differ" not in text and "not recorded by every run (an older log): Final weights sha256" in text
    md = render(tmp_path / "resumed", [old, resumed])
    resume = tables(section(md, "Interrupted and Resumed"))[0]
    assert row(resume, "Weights sha256 after epoch 3")[1:] == ["`030303030303…`", "not recorded", "not recorded"]


def test_timings_on_a_busy_machine_are_marked(make_log, tmp_path):
    logs = {  # two CPUs: busy above a load of 2.5
        # high load at start and end, but the per-epoch loads of a newer log decide: not busy
        "calm": make_log("20261201-100000-small-e2", model="small", cpus=2, epoch_load=2.4, load=(9.0, 9.0)),
        "busy": make_log("20261201-110000-large-e2", cpus=2, epoch_load=2.6),
        "old_busy": older(make_log("20261201-120000-large-e20", epochs=20, cpus=2, load=(1.0, 3.0)), "load"),
        "old_calm": older(make_log("20261201-130000-resnet18-e2", model="resnet18", cpus=2, load=(2.0, 2.4)),
                          "load"),
    }
    md = render(tmp_path, logs.values())
    hw = section(md, "Test Chip 9000 (Linux x86_64)")
    times = {r[0]: r[6] for r in tables(hw)[1][1:]}
    assert times == {"`20261201-100000-small-e2`": "60.00s", "`20261201-110000-large-e2`": "60.00s†",
                     "`20261201-120000-large-e20`": "600.00s†", "`20261201-130000-resnet18-e2`": "60.00s"}
    assert "† Timed on a busy machine" in hw
    progression = tables(section(md, "Training Progression"))[0]
    assert row(progression, "**Time**") == ["**Time**", "60.00s†", "300.00s†", "600.00s†"]
    assert "† Timed on a busy machine" in section(md, "Training Progression")
    assert "†" not in section(md, "Small LeNet-style CNN (62,006 params)")


def test_other_processes_cpu_over_the_epochs_decides_busy_before_the_load(make_log, template, tmp_path):
    # the loop logs, after each epoch, the CPUs other processes kept busy while it trained
    assert all(isinstance(h["other_cpus"], float) and h["other_cpus"] >= 0 for h in template["history"])
    logs = [  # two CPUs
        # a load of 9 (the run's own threads count in it), yet other processes took 0.1 CPUs: not busy
        make_log("20261201-100000-small-e2", model="small", cpus=2, epoch_load=9.0, other_cpus=0.1),
        # a calm load, yet other processes took 0.6 CPUs: busy
        make_log("20261201-110000-large-e2", cpus=2, epoch_load=1.0, other_cpus=0.6),
        # weighted by the epochs' training time (30 s each): (0.2 + 0.8) / 2 = 0.5, busy
        make_log("20261201-120000-resnet18-e2", model="resnet18", cpus=2, other_cpus=[0.2, 0.8]),
        # an epoch without the measure (resumed from an older log): the load decides, calm
        make_log("20261201-130000-large-e20", epochs=20, cpus=2, other_cpus=[None] + [0.9] * 19),
    ]
    md = render(tmp_path, logs)
    times = {r[0]: r[6] for r in tables(section(md, "Test Chip 9000 (Linux x86_64)"))[1][1:]}
    assert times == {"`20261201-100000-small-e2`": "60.00s", "`20261201-110000-large-e2`": "60.00s†",
                     "`20261201-120000-resnet18-e2`": "60.00s†", "`20261201-130000-large-e20`": "600.00s"}
    assert "other processes kept 0.5 CPUs or more busy, on average over the run's training time" in md
    # epoch k of a longer run is judged on its first k epochs
    resnet = runs.Run(logs[2], tmp_path / "run_log.json")
    assert resnet.busy(1) is False and resnet.busy() is True


def test_a_sample_is_timed_by_its_seeds_on_an_idle_machine(make_log, tmp_path):
    small = dict(model="small", cpus=2)
    logs = [make_log("20261201-100000-small-e2", seed=1111, epoch_time=10.0, **small),
            make_log("20261201-110000-small-e2", seed=1112, epoch_time=12.0, **small),
            make_log("20261201-120000-small-e2", seed=1113, epoch_time=60.0, epoch_load=4.0, **small),
            # every seed busy: the mean of all, marked
            make_log("20261201-130000-large-e2", seed=1111, epoch_time=40.0, epoch_load=4.0, cpus=2),
            make_log("20261201-140000-large-e2", seed=1112, epoch_time=50.0, epoch_load=4.0, cpus=2)]
    md = render(tmp_path, logs)
    small_row = tables(section(md, "Small LeNet-style CNN (62,006 params)"))[0][1]
    assert small_row[4].endswith("(n=3)") and small_row[5] == "22.00s"      # (20 + 24) / 2, the busy seed left out
    large_row = tables(section(md, "Large LeNet-style CNN (1,982,602 params)"))[1][1]
    assert large_row[5] == "90.00s†"
    assert "of all, marked †, when none was" in md


def test_seeds_on_two_machines_pool_their_accuracy_and_the_time_names_its_machine(make_log, tmp_path):
    logs = [make_log("20261201-100000-large-e2", seed=1111, epoch_time=30.0, acc0=35.0),
            make_log("20261201-110000-large-e2", seed=1112, epoch_time=31.0, acc0=36.0),
            make_log("20261201-120000-large-e2", seed=1113, epoch_time=90.0, acc0=37.0, chip="Slow Chip")]
    md = render(tmp_path, logs)
    rows = tables(section(md, "Large LeNet-style CNN (1,982,602 params)"))[1]
    assert rows[1][0] == "CPU, 2 Epochs, Test Chip 9000 + Slow Chip"
    # one recipe takes different times on different machines: the machine with the most seeds
    assert rows[1][4:6] == ["40.00 ± 1.00% (n=3)", "61.00s (Test Chip 9000, 2 of 3 seeds)"]
    assert "the time names the machine it was taken on" in md
    # seeds timed on a busy machine give way to an idle one, whichever machine that is
    for log in logs[:2]:
        for h in log["history"]:
            h["other_cpus"] = 1.0
    rows = tables(section(render(tmp_path / "busy", logs), "Large LeNet-style CNN (1,982,602 params)"))[1]
    assert rows[1][5] == "180.00s (Slow Chip, 1 of 3 seeds)"


def test_a_comparison_of_one_machine_says_so_where_the_targets_pool_machines(make_log, tmp_path):
    cyc = dict(epochs=40, augment=True, onecycle=True, acc_step=1.0)
    logs = [make_log("20261201-090000-large-aug-e40", epochs=40, augment=True, acc0=40.0, acc_step=1.0),
            make_log("20261201-100000-large-aug-onecycle-e40", seed=1111, acc0=44.0, **cyc),
            make_log("20261201-110000-large-aug-onecycle-e40", seed=1112, acc0=45.0, **cyc),
            make_log("20261201-120000-large-aug-onecycle-e40", seed=1113, acc0=49.0, chip="Slow Chip", **cyc)]
    md = render(tmp_path, logs)
    targets = row(tables(section(md, "Acceptable Accuracy Targets"))[0],
                  "Large LeNet-style CNN + augmentation + OneCycleLR")
    assert targets[3] == "86.00 ± 2.65% (n=3)"                   # pooled over both machines
    text = section(md, "Learning Rate Scheduling (40 Epochs)")
    assert row(tables(text)[0], "**Overall Accuracy**")[2] == "84.50 ± 0.71% (n=2)"   # one machine's
    assert "Both on Test Chip 9000." in text
    assert "every column here comes from one machine and setup" in text
    assert "seeds run on several machines pool their accuracy" not in text


def test_recipe_options_make_a_variant_not_a_seed_row(make_log, tmp_path):
    cyc = dict(epochs=40, augment=True, onecycle=True, acc_step=1.0)
    plain = make_log("20261201-100000-large-aug-onecycle-e40", acc0=44.0, **cyc)
    cut = make_log("20261201-110000-large-aug-onecycle-e40", acc0=46.0, **cyc)
    cut["config"].update(cutout=8, tta=True)
    md = render(tmp_path, [plain, cut])
    headline = row(tables(section(md, "Acceptable Accuracy Targets"))[0],
                   "Large LeNet-style CNN + augmentation + OneCycleLR")
    assert headline[3] == "84.00%" and "110000" not in " ".join(headline)
    configs = tables(section(md, "Large LeNet-style CNN (1,982,602 params)"))[1]
    assert row(configs, "CPU, 40 Epochs, augmentation, OneCycleLR, Cutout 8 px, flip TTA")[4] == "86.00%"


def ablation_log(make_log, run_id, seed, val_acc, test_acc, options=(), variants=None):
    """A 40-epoch wide-LeNet run on the official content less a 5,000-image validation split."""
    log = make_log(run_id, epochs=40, augment=True, onecycle=True, acc_step=1.0, seed=seed,
                   acc0=test_acc - 40)
    log["config"].update(val=5000, val_seed=0, ema=0.999, tta=True, **dict(options))
    log["dataset"]["train_images"] = 45000
    log["results"].update(val_accuracy=val_acc, evaluations=variants or {
        "model": {"val": val_acc, "test": test_acc}, "model+tta": {"val": val_acc + 1, "test": test_acc + 1},
        "ema": {"val": val_acc + 0.5, "test": test_acc + 0.5},
        "ema+tta": {"val": val_acc + 1.5, "test": test_acc + 1.5}})
    return log


def test_ablation_rows_compare_each_option_on_validation(make_log, tmp_path, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "large", dataclasses.replace(
        recipes.RECIPES["large"], best=dict(label_smoothing=0.1, tta=True, augment=True, onecycle=True)))
    logs = [ablation_log(make_log, f"20261201-10000{i}-large-aug-onecycle-e40-val5000", 1111 + i, v, t)
            for i, (v, t) in enumerate([(80.0, 79.0), (81.0, 80.0), (82.0, 81.0)])]
    logs.append(ablation_log(make_log, "20261201-110000-large-aug-onecycle-e40-val5000", 1111, 83.0, 82.5,
                             options={"label_smoothing": 0.1}))
    # an older log without evaluations: its headline figures under the variant its flags chose
    old = ablation_log(make_log, "20261201-120000-large-aug-onecycle-e40-val5000", 1111, 79.0, 78.0,
                       options={"cutout": 8})
    del old["results"]["evaluations"]
    md = render(tmp_path, logs + [old, make_log("20261201-130000-large-e2")])
    ablation = section(md, "Recipe Ablation (Validation Split)")
    rows = tables(ablation)[0]
    assert [r[0] for r in rows[1:]] == [
        "seed's recipe", "+ EMA 0.999", "+ flip TTA",
        "**+ EMA 0.999 + flip TTA**",                  # bold: the highest among the rows with three seeds
        "+ Cutout 8 px + EMA 0.999 + flip TTA", "+ label smoothing 0.1", "+ label smoothing 0.1 + EMA 0.999",
        "+ label smoothing 0.1 + flip TTA (`--recipe best`)",          # what the named recipe runs
        "+ label smoothing 0.1 + EMA 0.999 + flip TTA"]                  # the highest, but on one seed
    assert row(rows, "seed's recipe")[1:5] == ["81.00 ± 1.00% (n=3)", "—", "80.00 ± 1.00% (n=3)", "—"]
    assert row(rows, "+ flip TTA")[1:5] == ["82.00 ± 1.00% (n=3)", "+1.00 points",
                                            "81.00 ± 1.00% (n=3)", "+1.00 points"]
    # Δ pairs each seed with itself: label smoothing ran seed 1111 only, so against seed 1111's 80/79
    assert row(rows, "+ label smoothing 0.1")[1:] == [
        "83.00%", "+3.00 points", "82.50%", "+3.50 points", "`20261201-110000-large-aug-onecycle-e40-val5000`"]
    assert row(rows, "+ Cutout 8 px + EMA 0.999 + flip TTA")[1:3] == ["79.00%", "-1.00 points"]
    assert "Trained on 45,000 images; validation on the 5,000 held out" in ablation
    # ablation runs stay out of the main tables and of Other Data; the index says where they are
    assert "Runs on Other Data" not in md
    assert "20261201-1000" not in section(md, "Acceptable Accuracy Targets")
    index = tables(section(md, "Run Index"))[0]
    assert row(index, "`20261201-110000-large-aug-onecycle-e40-val5000`")[-1] == (
        "no: 5,000 images held out for validation: in Recipe Ablation")


def test_ablation_change_pairs_seeds_and_says_when_it_cannot():
    base = report.AblationRow("seed's recipe", {1111: (80.0, 79.0), 1112: (82.0, 81.0)}, ())
    one = report.AblationRow("+ x", {1112: (82.5, 81.5)}, ())            # seed 1112 against itself
    assert report.paired_change(one, base, 0) == (0.5, True)
    assert report.paired_change(one, base, 1) == (0.5, True)
    other = report.AblationRow("+ y", {1119: (83.0, 82.0)}, ())          # no seed in common
    assert report.paired_change(other, base, 0) == (2.0, False)
    table = report.ablation_table([base, one, other])
    assert "| + y | 83.00% | +2.00 points ‡ |" in table and "| + x | 82.50% | +0.50 points |" in table


def test_ablation_bold_ranks_only_rows_with_the_most_seeds():
    # one lucky seed does not outrank a mean over three; among equals the highest mean wins
    base = report.AblationRow("seed's recipe", {1111: (80.0, 79.0), 1112: (81.0, 80.0), 1113: (82.0, 81.0)}, ())
    three = report.AblationRow("+ x", {1111: (83.0, 82.0), 1112: (84.0, 83.0), 1113: (82.0, 81.0)}, ())
    one = report.AblationRow("+ y", {1111: (90.0, 89.0)}, ())
    table = report.ablation_table([base, three, one])
    assert "| **+ x** | 83.00 ± 1.00% (n=3) |" in table and "| + y | 90.00% |" in table
    assert table.count("**") == 2


def test_best_recipe_row_is_the_named_recipe_in_ablation_terms():
    # training options off the seed's recipe, then how the recipe evaluates (EMA, flip TTA)
    resnet = recipes.RECIPES["resnet18"].best
    assert report.best_recipe_row("resnet18") == (
        tuple(sorted(((k, resnet[k]) for k in ("cutout", "decay_norm_bias", "label_smoothing", "nesterov")),
                     key=str)), "ema+tta")
    assert report.best_recipe_row("small") == ((("label_smoothing", 0.1),), "ema+tta")
    assert report.best_recipe_row("nonesuch") is None               # no named better recipe


def test_no_ablation_runs_says_how_to_run_them(make_log, tmp_path):
    md = render(tmp_path, [make_log("20261201-130000-large-e2")])
    ablation = section(md, "Recipe Ablation (Validation Split)")
    for model, command in [("Small LeNet-style CNN", "python train_small.py"),
                           ("Large LeNet-style CNN", "python train_large.py --augment --onecycle --epochs 40"),
                           ("ResNet-18", "python train_resnet.py --epochs 40")]:
        assert f"### {model}\n\n*Not measured yet.* Run `{command} --val 5000" in ablation
    # a model with ablation runs shows them; the others still say how to fill their parts
    log = ablation_log(make_log, "20261201-140000-large-aug-onecycle-e40-val5000", 1111, 80.0, 79.0)
    ablation = section(render(tmp_path / "one", [log]), "Recipe Ablation (Validation Split)")
    assert tables(ablation)[0][1][0] == "seed's recipe" and ablation.count("Not measured yet") == 2
    assert "`python train_resnet.py --epochs 40" in ablation


def test_best_recipe_stands_beside_the_seed_recipe_with_its_target(make_log, tmp_path):
    best = recipes.RECIPES["large"].best
    logs = [make_log("20261201-100000-large-aug-onecycle-e40", epochs=40, augment=True, onecycle=True,
                     acc_step=1.0, acc0=44.5)]
    for i, (seed, acc0) in enumerate([(1111, 47.5), (1112, 46.5)]):
        log = make_log(f"20261201-11000{i}-large-aug-onecycle-best-e40", epochs=40, augment=True,
                       onecycle=True, acc_step=1.0, acc0=acc0, seed=seed)
        log["config"].update(best, recipe="best")
        logs.append(log)
    # a run of an earlier, larger option set under the name "best" is not this recipe: a row of its own
    older = make_log("20261201-120000-large-aug-onecycle-best-e40", epochs=40, augment=True, onecycle=True,
                     acc_step=1.0, acc0=50.0)
    older["config"].update(best, recipe="best", cutout=8)
    md = render(tmp_path, logs + [older])
    rows = tables(section(md, "Seed's Recipe vs the Best Recipe"))[0]
    large = [r for r in rows[1:] if r[0] == "Large LeNet-style CNN"]
    options = ", ".join(["Cutout 8 px"] + [report.option_text(k, v) for k, v in sorted(best.items())
                                           if k in recipes.OPTIONS and k != "tta"] + ["flip TTA"])
    assert [r[1:6] for r in large] == [
        ["seed's recipe", "40", "84.50%", "≥87%", "2.50 points below on 1 of the 3 seeds the target asks for"],
        ["`--recipe best`", "40", "87.00 ± 0.71% (n=2)", "≥87%", "above on 2 of the 3 seeds the target asks for"],
        [options, "40", "90.00%", "—", "—"]]
    assert "with other options than it sets now" in md
    now = options.removeprefix("Cutout 8 px, ")
    assert "`--recipe best` sets: Small LeNet-style CNN: " in md
    assert f"; Large LeNet-style CNN: augmentation, OneCycleLR, {now};" in md
    assert "python train_large.py --recipe best --epochs 40 --seeds 1111,1112,1113" in md
    logs.append(make_log("20261201-110002-large-aug-onecycle-best-e40", epochs=40, augment=True, onecycle=True,
                         acc_step=1.0, acc0=47.0, seed=1113))
    logs[-1]["config"].update(best, recipe="best")
    md = render(tmp_path / "three", logs + [older])
    rows = tables(section(md, "Seed's Recipe vs the Best Recipe"))[0]
    assert [r[3:6] for r in rows[1:] if r[1] == "`--recipe best`" and r[0] == "Large LeNet-style CNN"][0] == [
        "87.00 ± 0.50% (n=3)", "≥87%", "✓ Achieved"]
    # the best recipe's runs are never one of the seed's rows
    assert "87.00" not in section(md, "Acceptable Accuracy Targets")
    assert "python train_resnet.py --recipe best --epochs 40" in section(md, "Seed's Recipe vs the Best Recipe")


def test_tutorial_lenet_best_recipe_row_has_its_target(make_log, tmp_path):
    best = recipes.RECIPES["small"].best
    logs = [make_log(f"20261201-10000{i}-small-e2", model="small", seed=1111 + i, acc0=50.16 + i)
            for i in range(3)]
    for i, acc0 in enumerate([58.0, 60.0, 59.0]):
        log = make_log(f"20261201-11000{i}-small-best-e2", model="small", seed=1111 + i, acc0=acc0)
        log["config"].update(best, recipe="best")
        logs.append(log)
    md = render(tmp_path, logs)
    rows = [r for r in tables(section(md, "Seed's Recipe vs the Best Recipe"))[0][1:]
            if r[0] == "Small LeNet-style CNN"]
    # the seed's recipe stands against the same target: by how much it falls short
    assert [r[1:6] for r in rows] == [["seed's recipe", "2", "55.16 ± 1.00% (n=3)", "≥56%", "✗ 0.84 points below"],
                                      ["`--recipe best`", "2", "63.00 ± 1.00% (n=3)", "≥56%", "✓ Achieved"]]
    assert "Small LeNet-style CNN: label smoothing 0.1, EMA 0.999 + flip TTA" in md
    # the best recipe's runs are a configuration of their own, never the seed's row
    assert "63.00" not in section(md, "Acceptable Accuracy Targets")


@pytest.fixture(scope="module")
def bench_small_log(tiny_data, tmp_path_factory):
    """The record of one real ``benchmark.py small --warmup 0`` on the tiny set."""
    import benchmark
    out = tmp_path_factory.mktemp("bench") / "runs"
    assert benchmark.main(["small", "--warmup", "0", "--epochs", "1", "--num-workers", "0", "--device", "cpu",
                           "--data-dir", str(tiny_data), "--out", str(out)]) == 0
    (path,) = out.glob("*/run_log.json")
    return json.loads(path.read_text())


def test_tutorial_loop_accuracy_over_seeds(bench_small_log, make_log, tmp_path):
    def make(run_id, seed, ours, tut, warmup=0, epochs=2, dataset="official", sha=None):
        log = copy.deepcopy(bench_small_log)
        put(log, run_id=run_id)
        put(log["hardware"], chip=CHIP, cpu_model_id=None, cpu_capability=None)
        put(log["settings"], seed=seed, warmup=warmup, epochs=epochs)
        put(log["results"], ours_accuracy=ours, tutorial_accuracy=tut, ours_weights_sha256=sha)
        d = DATASETS[dataset]
        put(log["dataset"], id=d["content"][:16], content_sha256=d["content"], official=d["official"],
            train_images=50000, test_images=10000)
        return log
    logs = [make("20261201-100000-bench-small", 1111, 50.0, 40.0),      # replaced by its rerun
            make("20261201-100100-bench-small", 1111, 55.0, 56.0),
            make("20261201-100200-bench-small", 1112, 54.0, 55.0, sha="1" * 64),
            make("20261201-100300-bench-small", 1113, 56.0, 54.0, sha="2" * 64),
            make("20261201-100400-bench-small", 1114, 99.0, 99.0, warmup=5),       # not whole epochs
            make("20261201-100500-bench-small", 1115, 99.0, 99.0, epochs=None),    # --steps
            make("20261201-100600-bench-small", 1116, 99.0, 99.0, dataset="jpeg")]
    settings = bench_small_log["settings"]
    trained = []                    # train_small.py: 1111 on another machine, 1112 and 1113 on this one
    for run_id, seed, sha, chip in (("20261201-085900-small-e2", 1111, "0" * 64, "Other Chip"),
                                    ("20261201-090000-small-e2", 1112, "1" * 64, CHIP),
                                    ("20261201-090100-small-e2", 1113, "3" * 64, CHIP)):
        log = make_log(run_id, model="small", seed=seed, sha=sha, chip=chip)
        put(log["config"], onednn=settings["ours_onednn"])
        put(log["hardware"], torch_threads=settings["ours_threads"])
        trained.append(log)
    md = render(tmp_path, logs + trained)
    hardware, hw = md.split("\n")[2], bench_small_log["hardware"]         # the benchmarks' machine too
    assert hardware.startswith("> **Hardware:** Other Chip (")
    assert f"{CHIP} ({hw['os']} {hw['architecture']}, {hw['cpu_count']} CPUs)" in hardware
    text = section(md, "Against the Tutorial's Own Loop")
    means, seeds = tables(text)
    assert means[1] == [CHIP, "2", "55.00 ± 1.00% (n=3)", "55.00 ± 1.00% (n=3)", "+0.00 points",
                        "`20261201-100100-bench-small`, `20261201-100200-bench-small`, "
                        "`20261201-100300-bench-small`"]
    assert [r[2:] for r in seeds[1:]] == [
        ["1111", "55.00%", "56.00%", "no such run"],
        ["1112", "54.00%", "55.00%", "same weights (`20261201-090000-small-e2`)"],
        ["1113", "56.00%", "54.00%", "other weights (`20261201-090100-small-e2`)"]]
    assert "99.00%" not in text
    empty = section(render(tmp_path / "none", logs[4:]), "Against the Tutorial's Own Loop")
    assert "python benchmark.py small --warmup 0" in empty and not tables(empty)
