"""report.py: results.md, results/details.md and plots from run logs written into a temporary folder.

The logs are made from one log that the real training loop writes (``template``): ``make_log``
changes only fields that log has, so a change of the run-log format in engine.py breaks these
tests instead of passing unnoticed.
"""
import copy
import dataclasses
import hashlib
import json
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402

import ablation  # noqa: E402
import data  # noqa: E402
import recipes  # noqa: E402
import plots  # noqa: E402
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
        times = epoch_time if isinstance(epoch_time, list) else [epoch_time] * epochs
        history, lines = [], []
        for e in range(1, done + 1):
            acc = round(acc0 + acc_step * e, 2)
            for b in range(1, 8):
                lines.append([e, 100 * b, round(loss0 - 0.01 * (7 * (e - 1) + b), 6)])
            h = copy.deepcopy(template["history"][0])
            put(h, epoch=e, train_loss=round(loss0 - 0.01 * (7 * (e - 1) + 4), 6), test_accuracy=acc,
                per_class={c: round(acc + o, 1) for c, o in zip(CLASSES, offsets)}, lr=0.001,
                epoch_time_s=times[e - 1], eval_time_s=0.5, train_time_s=round(sum(times[:e]), 3),
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


ROOT = report.Path(report.__file__).resolve().parent


def details_of(out):
    return (out.parent / "results" / "details.md").read_text(encoding="utf-8")


def render(tmp_path, logs, plots=False):
    """Write ``logs`` into ``tmp_path/runs``; return (results.md, details.md) as report.py writes them."""
    runs = write_logs(tmp_path / "runs", logs)
    runs.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs), "--output", str(out)] + ([] if plots else ["--no-plots"])) == 0
    return out.read_text(encoding="utf-8"), details_of(out)


def flat(text):
    """``text`` with its line breaks and runs of spaces as one space: prose is wrapped."""
    return " ".join(text.split())


def summary_row(md, name, epochs):
    rows = [r for r in tables(section(md, "Summary"))[0] if r[0] == name and r[1] == str(epochs)]
    assert len(rows) == 1, (name, epochs, tables(section(md, "Summary"))[0])
    return rows[0]


# ---------------------------------------------------------------- the committed documents

def test_committed_logs_regenerate_both_documents_byte_for_byte():
    runs_ = runs.load_runs(ROOT / "runs", lambda msg: pytest.fail(msg))
    rep = report.Report(runs_, ROOT, ROOT / "results", "runs")
    md = report.render(rep, report.RESULTS, "Training Results")
    assert md == (ROOT / "results.md").read_text(encoding="utf-8"), "run python report.py and commit"
    assert report.render(rep, report.DETAILS, "Training Results: Details") == (
        ROOT / "results" / "details.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    assert len(lines) <= 400 and max(len(line) for line in lines) <= 300
    head = "\n".join(lines[:60])                    # the first screen: the seed's figures beside ours
    for name, epochs, seed in [("Small LeNet-style CNN", 2, "54%"), ("Large LeNet-style CNN", 20, "71–72%"),
                               ("Large LeNet-style CNN + augmentation", 40, "78%"),
                               ("Large LeNet-style CNN + augmentation + OneCycleLR", 40, "85%"),
                               ("ResNet-18", 40, "92%")]:
        assert f"| {name} | {epochs} | {seed} |" in head
    assert md.count("**Reading the tables.**") == 1 and md.count("sample standard deviation") == 1
    for png in re.findall(r"\]\(((?:results|activations)/[^)]+\.png)\)", md):
        assert (ROOT / png).is_file(), png


# ---------------------------------------------------------------- the summary

def test_summary_sets_each_row_against_the_seeds_figure(full):
    md = full["md"]
    assert md.index("## Summary") < 200                            # the first thing under the title
    assert summary_row(md, "Small LeNet-style CNN", 2)[2:7] == [
        "54%", "54.00% (n=1)", "+0.00 points", "60.00s on Test A", "r1"]
    # epoch 10 of the 20-epoch fixed-rate run stands for the 10-epoch row, and says so
    assert summary_row(md, "Large LeNet-style CNN", 10)[2:7] == [
        "63%", "55.00% (n=1)", "-8.00 points", "310.00s on Test A", "r5 @ epoch 10"]
    assert summary_row(md, "Large LeNet-style CNN", 20)[2:4] == ["71–72%", "75.00% (n=1)"]
    assert summary_row(md, "Large LeNet-style CNN", 20)[4] == "+3.00 points"        # against the higher
    assert summary_row(md, "Large LeNet-style CNN + augmentation + OneCycleLR", 40)[2:5] == [
        "85%", "85.00% (n=1)", "+0.00 points"]
    assert summary_row(md, "ResNet-18", 40)[2:4] == ["92%", "not measured yet"]
    assert summary_row(md, "Large LeNet-style CNN, `--recipe best`", 40)[2:4] == ["target 87%", "not measured yet"]
    assert "`python train_resnet.py --epochs 40`" in section(md, "Summary")
    assert "running" not in section(md, "Summary")


def test_several_seeds_read_as_mean_and_sample_std_and_a_rerun_counts_once(make_log, tmp_path):
    logs = [make_log(f"20261201-10000{i}-small-e2", model="small", seed=1111 + i, acc0=acc0)
            for i, acc0 in enumerate([50.0, 51.0, 53.0])]
    logs.append(make_log("20261201-110000-small-e2", model="small", seed=1111, acc0=50.0, epoch_time=29.0))
    md, details = render(tmp_path, logs)
    assert summary_row(md, "Small LeNet-style CNN", 2)[3:7] == [
        "55.33 ± 1.53% (n=3)", "+1.33 points", "59.33s on Test A", "r2–r4"]
    assert md.count("mean ± sample standard deviation") == 1
    configs = tables(section(details, "Configurations"))[0]
    assert row(configs, "c1")[3:] == ["55.33 ± 1.53% (n=3)", "59.33s on Test A", "2.160", "1111, 1112, 1113",
                                      "r2–r4", "4"]


# ---------------------------------------------------------------- timing

def test_a_runs_time_is_its_median_idle_epoch_times_its_epochs(make_log, tmp_path):
    # two CPUs; epochs 1-2 shared the machine (other processes kept a CPU busy), epochs 3-6 did not
    log = make_log("20261201-100000-large-e6", epochs=6, cpus=2, epoch_time=[100.0, 90.0, 30.0, 31.0, 29.0, 30.0],
                   other_cpus=[1.0, 0.9, 0.0, 0.1, 0.0, 0.0])
    run = runs.Run(log, tmp_path / "run_log.json")
    assert run.epoch_seconds == (30.0, False) and run.idle_epochs == (4, 6)
    assert run.at().time == 180.0 and run.at(3).time == 90.0 and not run.at().busy
    # every epoch busy: the median of them all, marked busy
    busy = runs.Run(make_log("20261201-110000-large-e3", epochs=3, cpus=2, epoch_time=[50.0, 70.0, 40.0],
                             other_cpus=0.6), tmp_path / "run_log.json")
    assert busy.epoch_seconds == (50.0, True) and busy.at().time == 150.0 and busy.at().busy
    # logs without other_cpus: the load after each epoch against the CPU count + 0.5
    loads = runs.Run(make_log("20261201-120000-large-e2", cpus=2, epoch_time=[10.0, 20.0], epoch_load=2.6),
                     tmp_path / "run_log.json")
    assert loads.epoch_busy(loads.history[0]) is True and loads.epoch_seconds == (15.0, True)
    other = make_log("20261201-130000-large-aug-onecycle-e40", epochs=40, augment=True, onecycle=True, cpus=2,
                     other_cpus=1.0)
    log["git"], other["git"] = {"commit": "0123456789abcdef", "dirty": False}, {"commit": "fedcba98765", "dirty": True}
    md, details = render(tmp_path, [log, other])
    index = tables(section(details, "Run Index"))[0]
    assert row(index, "r1")[12:15] == ["310.00s", "180.00s", "4/6"]              # logged, idle-epoch time
    assert (row(index, "r1")[-1], row(index, "r2")[-1]) == ("`0123456`", "`fedcba9`+")      # the code it ran
    assert summary_row(md, "Large LeNet-style CNN + augmentation + OneCycleLR", 40)[5] == "1200.00s† on Test A"
    assert "idle unless other processes kept 0.5 CPUs or more busy during it" in flat(md)


def test_machines_of_one_name_read_apart_and_times_compare_on_one_machine_only(make_log, tmp_path):
    cyc = dict(epochs=40, augment=True, onecycle=True, acc_step=1.0)
    logs = [make_log("20261201-090000-large-aug-e40", epochs=40, augment=True, acc0=40.0, acc_step=1.0,
                     cpu_id="family 25 model 1 stepping 1", capability="AVX2", epoch_time=90.0),
            make_log("20261201-100000-large-aug-onecycle-e40", seed=1111, acc0=44.0, **cyc),
            make_log("20261201-110000-large-aug-onecycle-e40", seed=1112, acc0=45.0, **cyc),
            make_log("20261201-120000-large-aug-onecycle-e40", seed=1113, acc0=49.0, epoch_time=90.0,
                     cpu_id="family 25 model 1 stepping 1", capability="AVX2", **cyc)]
    md, details = render(tmp_path, logs)
    hw = tables(section(md, "Hardware DNA"))[0]
    assert [r[0] for r in hw[1:]] == ["Test A", "Test B"] and row(hw, "Test A")[1] == row(hw, "Test B")[1]
    text = section(md, "Learning Rate Scheduling (40 Epochs)")
    # one configuration, one figure: every seed pools; each time names its machine
    assert row(tables(text)[0], "**Overall Accuracy**")[1:] == ["80.00% (n=1)", "86.00 ± 2.65% (n=3)"]
    assert row(tables(text)[0], "**Time**")[1:] == ["3600.00s on Test A", "1200.00s on Test B"]
    assert "OneCycleLR against Fixed LR: +6.00 points, final loss" in flat(text) and "time ×" not in text
    assert summary_row(md, "Large LeNet-style CNN + augmentation + OneCycleLR", 40)[3] == "86.00 ± 2.65% (n=3)"
    logs[0]["hardware"].update(cpu_model_id=None, cpu_capability=None)         # now both on Test B
    md, _ = render(tmp_path / "same", logs)
    assert "time ×0.33 on Test" in flat(section(md, "Learning Rate Scheduling (40 Epochs)"))


def test_one_computation_on_two_machines_is_a_verdict_line_here_and_compare_py_tables_in_details(make_log, tmp_path):
    logs = [make_log("20261201-090000-small-e2"),
            make_log("20261201-100000-small-e2", cpu_id="family 25 model 1 stepping 1", capability="AVX2")]
    md, details = render(tmp_path, logs)
    text = section(md, "Same Computation, Two Machines")
    (line,) = tables(text)[0][1:]
    assert line[:2] == ["Test A against Test B",
                        "`python compare.py 20261201-090000-small-e2 20261201-100000-small-e2`"]
    assert line[2].startswith("Identical: every number both runs record is equal")
    assert "results/details.md#same-computation-two-machines" in text and "**Verdict:**" not in md
    full_text = section(details, "Same Computation, Two Machines")
    assert "| Field | `20261201-090000-small-e2` | `20261201-100000-small-e2` |" in full_text
    assert "**Verdict:** Identical" in full_text
    md, details = render(tmp_path / "one", logs[:1])
    assert "Same Computation" not in md and "Same Computation" not in details


def test_an_epoch_not_evaluated_stands_for_no_row_and_leaves_no_gap_in_a_curve(make_log, tmp_path):
    logs = [make_log("20261201-090000-large-e20", epochs=20)]
    for h in logs[0]["history"][:19]:
        h.update(test_accuracy=None, val_accuracy=None, per_class=None)      # --eval-every 0
    md, details = render(tmp_path, logs)
    assert summary_row(md, "Large LeNet-style CNN", 10)[3] == "not measured yet"
    assert summary_row(md, "Large LeNet-style CNN", 20)[3] == "75.00% (n=1)"         # 35 + 20 x 2
    assert plots.mean_band([[1.0, None, 3.0], [3.0, 4.0, 5.0, 6.0]]) == ([1, 3], [2.0, 4.0], [2 ** 0.5] * 2)


def test_prose_never_wraps_to_a_line_that_starts_a_table_row():
    line = "Run `python x.py [" + " | ".join(f"--option-{i}" for i in range(60)) + "]`, then `python report.py`."
    for shift in range(12):                          # every place a wrap could fall
        lines = report.fill("x" * shift + " " + line).splitlines()
        assert len(lines) > 2 and not any(x.startswith("|") for x in lines)
        assert max(map(len, lines)) <= report.WRAP and " ".join(lines) == "x" * shift + " " + line


def test_the_compute_plots_labels_do_not_overlap_where_points_crowd():
    points = [("Net A", f"{k} ep aug", 0.30 + 0.002 * k, 10.0 + 0.1 * k, "M", 72.0 + 0.3 * k) for k in range(4)]
    points += [("Net B", "far", 1e-3, 0.3, "M", 45.0), ("Net B", "far", 1.0, 60.0, "M", 95.0)]   # the axes' span
    fig = plots.draw_compute(points, "crowded")
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == 6
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), [b.bounds for b in boxes]
    plots._pyplot().close(fig)


# ---------------------------------------------------------------- the seed's sections

def test_comparisons_read_at_equal_epochs_from_one_loader(full):
    md = full["md"]
    progression = tables(section(md, "Training Progression"))[0]
    assert row(progression, "**Overall Accuracy**")[1:] == ["39.00% (n=1)", "55.00% (n=1)", "75.00% (n=1)",
                                                            "not measured yet"]
    assert row(progression, "Runs")[1:4] == ["r4", "r5 @ epoch 10", "r5"]
    aug = section(md, "Data Augmentation")
    assert row(tables(aug)[0], "**Overall Accuracy**")[1:] == ["75.00% (n=1)", "60.00% (n=1)",
                                                               "not measured yet", "80.00% (n=1)"]
    assert "With Aug (20 epochs) against No Aug (20 epochs): -15.00 points" in flat(aug)
    assert "With Aug (40 epochs) against No Aug (40" not in aug                  # no pair without both
    per_class = tables(section(md, "Large LeNet-style CNN (1,982,602 params)"))[1]
    assert per_class[0][:3] == ["Class", "2 ep", "10 ep"] and "Δ OneCycle" in per_class[0]
    cars = row(per_class, "car")
    i = per_class[0].index("Δ OneCycle")
    # OneCycle's car (45 + 40 + AUG_OFFSETS[::-1][1]) against augmentation's (40 + 40 + AUG_OFFSETS[1])
    assert cars[i] == report.delta((85.0 + AUG_OFFSETS[::-1][1]) - (80.0 + AUG_OFFSETS[1]))


def test_reproducibility_compares_the_seeds_loss_lines_and_weights(make_log, tmp_path):
    same = [make_log(f"20261201-1{i}0000-large-e20", epochs=20) for i in range(2)]
    diverged = [make_log("20261201-120000-small-e2", model="small"),
                make_log("20261201-130000-small-e2", model="small", tweak={(2, 700): 9.0}, sha="c" * 64)]
    ema = [make_log(f"20261201-1{i}0000-large-e3", epochs=3) for i in (4, 5)]
    for log, sha in zip(ema, ("e", "f")):
        log["config"]["ema"] = 0.999
        log["results"]["weights_ema_sha256"] = sha * 64
    md, details = render(tmp_path, same + diverged + ema)
    head = tables(section(md, "Reproducibility"))[0]
    assert [r[0] for r in head[1:4]] == ["Loss [1, 100]", "Loss [10, 700]", "Loss [20, 700]"]   # the seed's rows
    assert all(r[-1] == "✓" for r in head[1:])
    assert "Of 3 groups of reruns (same configuration, seed and machine), 1 reproduce bit for bit" in flat(md)
    text = section(details, "Reproducibility")
    small = tables(text)[0]
    assert row(small, "Loss [2, 700]")[1:] == ["2.160", "9.000", "✗"]
    assert row(small, "Final weights sha256")[-1] == "✗" and "the runs differ" in text
    assert row(tables(text)[2], "Weight average (EMA) sha256")[-1] == "✗"


def test_resumed_and_shorter_runs_against_their_uninterrupted_twins(make_log, tmp_path):
    long_ = make_log("20261201-100000-large-e20", epochs=20)
    short = make_log("20261201-110000-large-e2", sha=runs.Run(long_, tmp_path).history[1]["weights_sha256"])
    resumed = make_log("20261201-120000-large-e3", epochs=3, sha=long_["history"][2]["weights_sha256"])
    resumed["resumes"] = [{"after_epoch": 1, "epochs_before": 3, "device": "cpu"}]
    extended = make_log("20261201-130000-large-aug-e40", epochs=40, augment=True, acc_step=1.0)
    extended["resumes"] = [{"after_epoch": 20, "epochs_before": 20, "device": "cpu"}]
    md, details = render(tmp_path, [long_, short, resumed, extended])
    table_ = tables(section(details, "Runs Against Their Twins"))[0]
    assert row(table_, "r2")[1] == "shorter run" and row(table_, "r2")[3] == "r1 @ epoch 2"
    assert row(table_, "r2")[-1] == "✓"
    assert row(table_, "r3")[1:2] + row(table_, "r3")[3:] == [
        "stopped after epoch 1 of 3, resumed", "r1 @ epoch 3", "14 lines / 14 lines", "41.00% / 41.00%",
        f"{report.sha_text(long_['history'][2]['weights_sha256'])} / "
        f"{report.sha_text(long_['history'][2]['weights_sha256'])}", "✓"]
    assert row(table_, "r4")[1] == "extended from 20 to 40 epochs by --resume"
    # a cited run that was extended says so where it is cited
    assert "r4 (extended from 20 to 40 epochs by --resume)" in summary_row(
        md, "Large LeNet-style CNN + augmentation", 40)[6]


# ---------------------------------------------------------------- bad logs (issue 35, item 8)

@pytest.mark.parametrize("text", ["[" * 200_000, '{"run_id": ' + "[" * 200_000, '{"a": ' * 100_000 + "1"])
def test_a_log_nested_too_deep_is_skipped_with_a_warning(text, make_log, tmp_path, capsys):
    runs_dir = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small", acc0=50.0)])
    (runs_dir / "deep").mkdir()
    (runs_dir / "deep" / "run_log.json").write_text(text)
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs_dir), "--output", str(out), "--no-plots"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipping") and "deep" in err[0]
    assert "54.00% (n=1)" in out.read_text()


def empty_history(log, epochs=None):
    """``log`` with no epochs logged (and ``epochs`` epochs in its config and results, when given)."""
    log["history"], log["loss_lines"] = [], []
    if epochs is not None:
        log["config"]["epochs"] = log["results"]["epochs"] = epochs
    return log


@pytest.mark.parametrize("case", ["zero epochs beside no history", "zero epochs beside a longer run",
                                  "resumed against a twin without history", "resumed without history",
                                  "no history beside a longer run"])
def test_logs_of_valid_types_without_epochs_do_not_break_the_report(case, make_log, tmp_path, capsys):
    def run(i, empty=False, epochs=None, resumed=False, **kw):
        log = make_log(f"20261201-1{i}0000-large-e2", **kw)
        if empty:
            empty_history(log, epochs)
        if resumed:
            log["resumes"] = [{"after_epoch": 1, "epochs_before": 2, "device": "cpu"}]
        return log
    logs = {"zero epochs beside no history": [run(0, True, 0), run(1, True)],            # IndexError before
            "zero epochs beside a longer run": [run(0, True, 0), run(1, epochs=20)],
            "resumed against a twin without history": [run(0, True), run(1, resumed=True)],   # IndexError before
            "resumed without history": [run(0, True), run(1, True, resumed=True)],         # IndexError before
            "no history beside a longer run": [run(0, True), run(1, True, epochs=20)]}[case]
    md, details = render(tmp_path, logs)
    assert "Traceback" not in capsys.readouterr().err
    assert "20261201-100000-large-e2" in section(details, "Run Index")


def test_a_corrupt_log_is_skipped_with_a_warning(make_log, tmp_path, capsys):
    runs_dir = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small", acc0=50.0)])
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "run_log.json").write_text('{"run_id": "broken", "status": "comp')
    out = tmp_path / "results.md"
    assert report.main(["--runs", str(runs_dir), "--output", str(out), "--no-plots"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipping") and "broken" in err[0]
    assert "54.00%" in out.read_text() and "broken" not in out.read_text() + details_of(out)


# ---------------------------------------------------------------- what goes where

def test_other_data_and_ablation_runs_stay_out_of_results_md(make_log, tmp_path):
    jpeg = make_log("20261201-100000-small-e2", model="small", dataset="jpeg", acc0=60.0)
    val = make_log("20261201-110000-small-e2", model="small", acc0=61.0)
    val["config"].update(val=5000, val_seed=0)
    val["dataset"]["train_images"] = 45000
    md, details = render(tmp_path, [jpeg, val, make_log("20261201-120000-small-e2", model="small", acc0=50.0)])
    assert "64.00" not in md and "65.00" not in md and summary_row(md, "Small LeNet-style CNN", 2)[3] == "54.00% (n=1)"
    assert "64.00% (n=1)" in section(details, "Runs on Other Data")
    index = tables(section(details, "Run Index"))[0]
    assert row(index, "r1")[17] == "no: not the official images"
    assert row(index, "r2")[17] == "no: 5,000 images held out for validation: in Recipe Ablation"
    assert row(tables(section(details, "Data"))[0], JPEG_NAME)[2] == "no"


def test_a_model_added_to_the_recipes_appears_with_no_other_edit(make_log, tmp_path, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "mini", recipes.Recipe(
        model="mini", name="Mini CNN", script="train_mini.py", summary="a two-layer CNN",
        defaults=dict(epochs=3, batch_size=32), feature_layers=("conv1",), shown_layers=("conv1",),
        targets=(recipes.Target("Mini CNN", 60, {}, 5, "Two conv layers"),)))
    md, _ = render(tmp_path / "empty", [])
    assert summary_row(md, "Mini CNN", 5)[2:4] == ["60%", "not measured yet"]
    assert "`python train_mini.py --epochs 5`" in flat(md) and "A two-layer CNN." in section(md, "Mini CNN")
    logs = [make_log("20261201-100000-mini-e3", model="mini", epochs=3),
            make_log("20261201-110000-mini-e5", model="mini", epochs=5)]
    md, details = render(tmp_path, logs, plots=True)
    assert summary_row(md, "Mini CNN", 5)[2:5] == ["60%", "45.00% (n=1)", "-15.00 points"]
    assert "## Mini CNN (1,000 params)" in md and "CPU, 3 Epochs" in details and "batch 32" not in details
    assert row(tables(section(md, "Architecture Comparison"))[0], "Mini CNN")[1:3] == [
        "1,000", "45.00% (n=1), 5 ep, 150.00s on Test A"]
    assert "results/curves_mini.png" in md and (tmp_path / "results" / "curves_mini.png").is_file()


def test_no_runs_writes_both_documents_with_the_commands_to_fill_them(tmp_path):
    md, details = render(tmp_path, [], plots=True)
    assert md.count("not measured yet") >= 8
    for command in ["python train_small.py --epochs 2", "python train_large.py --epochs 20",
                    "python train_large.py --epochs 40 --augment", "python train_resnet.py --epochs 40",
                    "python visualize_activations.py --out activations"]:
        assert f"`{command}" in md, command
    assert "python train_large.py --augment --onecycle --epochs 40 --val 5000" in details
    assert not list((tmp_path / "results").glob("*.png"))


def test_running_twice_gives_the_same_files(full):
    out = full["out"]
    before = details_of(out)
    pngs = {p.name: p.read_bytes() for p in (out.parent / "results").glob("*.png")}
    assert report.main(["--runs", str(full["root"] / "runs"), "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == full["md"] and details_of(out) == before
    assert {p.name: p.read_bytes() for p in (out.parent / "results").glob("*.png")} == pngs


def test_plots_are_written_linked_and_drawn(full):
    site = full["out"].parent
    links = re.findall(r"\]\((results/[^)]+\.png)\)", full["md"])
    assert {"results/curves_small.png", "results/curves_large.png", "results/per_class.png",
            "results/confusion_large.png"} <= set(links)
    for link in links:
        img = mpimg.imread(site / link)
        assert img.shape[0] >= 300 and img.shape[1] >= 400, (link, img.shape)
        assert img[..., :3].std() > 0.01                  # not a blank canvas


def test_activation_pngs_and_stats_are_shown(make_log, tmp_path):
    (tmp_path / "activations").mkdir()
    for name in ["resnet18_layer1.png", "resnet18_overview.png"]:
        mpimg.imsave(tmp_path / "activations" / name, [[0.0, 1.0], [1.0, 0.0]])
    (tmp_path / "activations" / "resnet18_stats.json").write_text(json.dumps({
        "kind": "activations", "model": "resnet18", "source": "run x", "device": "cpu",
        "image": {"index": 3, "true": "cat", "predicted": "dog"},
        "layers": [{"layer": "layer1", "channels": 64, "resolution": "32x32", "mean": 0.5, "zeros": 0.4567}]}))
    (tmp_path / "activations" / "broken_stats.json").write_text("{")
    md, details = render(tmp_path, [make_log("20261201-100000-small-e2", model="small")])
    text = section(md, "Activation Visualization")
    assert re.findall(r"\]\((activations/[^)]+)\)", text) == ["activations/resnet18_overview.png"]
    assert row(tables(text)[0], "layer1") == ["layer1", "64", "32x32", "0.500", "45.7%"]
    assert re.findall(r"\]\((\.\./activations/[^)]+)\)", details) == [
        "../activations/resnet18_layer1.png", "../activations/resnet18_overview.png"]


def test_benchmarks_compute_speedup_from_images_per_second(tmp_path):
    bench = {"kind": "benchmark", "benchmark": "devices", "run_id": "20261201-090000-bench-devices",
             "model": "large", "batch_size": 64, "device": "cuda", "hardware": {"chip": CHIP, "other_cpus": 0.7},
             "results": {"devices": {"cuda": {"images_per_s": 25000.0, "speedup_vs_cpu": 99.0},
                                     "cpu": {"images_per_s": 1000.0, "speedup_vs_cpu": 1.0}},
                         "skipped": {"mps": "not available"}, "steps": 50}}
    pipeline = {"kind": "benchmark", "benchmark": "pipeline", "run_id": "20261201-091000-bench-pipeline",
                "model": None, "batch_size": 64, "device": "cpu", "hardware": {"chip": CHIP},
                "results": {"ours_images_per_s": 123456.789}}
    floor = {"kind": "benchmark", "benchmark": "floor", "run_id": "20261201-092000-bench-floor",
             "model": "resnet18,large", "device": "cpu", "hardware": {"chip": CHIP}, "results": {"steps": 2}}
    _, details = render(tmp_path, [bench, pipeline, floor, {"kind": "sweep", "run_id": "20261201-080000-sweep"}])
    text = section(details, "Benchmarks")
    assert re.search(r"\*\*floor\*\* \(b\d+, models resnet18, large, cpu, ", text)
    assert re.search(r"\*\*pipeline\*\* \(b\d+, model —, cpu, ", text)
    tbl = tables(text)[0]
    assert row(tbl, "CUDA") == ["CUDA", "25,000.0", "25.0x"] and row(tbl, "MPS")[1] == "skipped (not available)"
    assert "other processes 0.70 CPUs†" in text and "| ours_images_per_s | 1.235e+05 |" in text
    assert "`20261201-080000-sweep` (sweep)" in details


def test_unwritable_output_is_a_one_line_error(make_log, tmp_path, capsys):
    runs_dir = write_logs(tmp_path / "runs", [make_log("20261201-100000-small-e2", model="small")])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    assert report.main(["--runs", str(runs_dir), "--output", str(blocker / "results.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and "--output" in err[0]
    assert report.main(["--runs", str(tmp_path / "nope"), "--output", str(tmp_path / "r.md")]) == 2
    assert capsys.readouterr().err.startswith("error: no runs folder") and not (tmp_path / "r.md").exists()


def test_help_states_defaults(capsys):
    with pytest.raises(SystemExit):
        report.main(["--help"])
    out = flat(capsys.readouterr().out)
    assert "(default: runs)" in out and "(default: results.md)" in out and "results/ beside --output" in out


# ---------------------------------------------------------------- the recipe ablation

def ablation_log(make_log, run_id, seed, val_acc, test_acc, options=(), variants=None):
    """A 40-epoch wide-LeNet run on the official content less a 5,000-image validation split."""
    log = make_log(run_id, epochs=40, augment=True, onecycle=True, acc_step=1.0, seed=seed, acc0=test_acc - 40)
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
    old = ablation_log(make_log, "20261201-120000-large-aug-onecycle-e40-val5000", 1111, 79.0, 78.0,
                       options={"cutout": 8})
    del old["results"]["evaluations"]     # an older log: its headline figures under the variant its flags chose
    md, details = render(tmp_path, logs + [old])
    rows = tables(section(details, "Recipe Ablation"))[0]
    assert [r[0] for r in rows[1:]] == [
        "seed's recipe", "+ EMA 0.999", "+ flip TTA", "**+ EMA 0.999 + flip TTA**",
        "+ Cutout 8 px + EMA 0.999 + flip TTA", "+ label smoothing 0.1", "+ label smoothing 0.1 + EMA 0.999",
        "+ label smoothing 0.1 + flip TTA (`--recipe best`)", "+ label smoothing 0.1 + EMA 0.999 + flip TTA"]
    assert row(rows, "seed's recipe")[1:5] == ["81.00 ± 1.00% (n=3)", "—", "80.00 ± 1.00% (n=3)", "—"]
    # Δ pairs each seed with itself: label smoothing ran seed 1111 only, so against seed 1111's 80/79
    assert row(rows, "+ label smoothing 0.1")[1:] == ["83.00% (n=1)", "+3.00 points", "82.50% (n=1)", "+3.50 points",
                                                         "r4"]
    assert row(rows, "+ Cutout 8 px + EMA 0.999 + flip TTA")[1:3] == ["79.00% (n=1)", "-1.00 points"]
    assert row(tables(section(md, "Recipe Ablation (Validation Split)"))[0], "Large LeNet-style CNN")[2:] == [
        "1", "+4.00 points", "+4.50 points"]
    assert "ResNet-18\n\nRun `python train_resnet.py --epochs 40 --val 5000" in section(details, "Recipe Ablation")


def fast_ablation_log(make_log, run_id, seed, val_acc, test_acc, change=(), old=False):
    """A 10-epoch run of the fast network's recipe with ``change`` on a 5,000-image validation split:
    flip TTA adds 0.3 points to both accuracies, flip TTA on the shifted views too (the recipe's
    evaluation) 0.5.  ``old``: a log from before the shifted views had variants of their own, which
    named the run's own TTA "model+tta"."""
    d = recipes.config_for("fast")
    log = make_log(run_id, model="fast", epochs=10, augment=True, acc_step=0.1, seed=seed, acc0=test_acc - 1.0)
    log["config"].update({k: getattr(d, k) for k in ("lr", "max_lr", "weight_decay", "momentum", *recipes.OPTIONS,
                                                     *recipes.FAST_OPTIONS)} | dict(change), val=5000, val_seed=0)
    log["dataset"]["train_images"] = 45000
    translate = log["config"]["tta_translate"]
    tta = val_acc + (0.5 if translate else 0.3), test_acc + (0.5 if translate else 0.3)
    evaluations = {"model": {"val": val_acc, "test": test_acc}, "model+tta": {"val": tta[0], "test": tta[1]}}
    if translate and not old:
        evaluations = {"model": {"val": val_acc, "test": test_acc},
                       "model+tta": {"val": val_acc + 0.3, "test": test_acc + 0.3},
                       "model+tta+translate": {"val": tta[0], "test": tta[1]}}
    log["results"].update(val_accuracy=tta[0], evaluations=evaluations)
    return log


def test_the_fast_networks_ablation_turns_each_trick_off_against_its_whole_recipe(make_log, tmp_path):
    """The fast network has no seed's rows: its rows are the flags that turn a trick off, each against
    the whole recipe (evaluated as the recipe evaluates), and results.md shows them all.  The recipe's
    runs give --no-tta and --no-tta-translate (evaluations of their weights); a --no-tta-translate run
    trains as the recipe does and joins its runs."""
    changes = {"": {}, "--whiten 0": {"whiten": 0}, "--no-dirac": {"dirac": False},
               "--no-triangle --onecycle": {"triangle": False, "onecycle": True}}
    logs = []
    for i, (flags, change) in enumerate(changes.items()):
        for j, seed in enumerate((1111, 1112, 1113)):
            logs.append(fast_ablation_log(make_log, f"20261201-1{i}000{j}-fast-aug-e10-val5000", seed,
                                          92.0 - i + j, 91.0 - i + j, change, old=not flags and seed == 1113))
    md, details = render(tmp_path, logs)
    rows = tables(section(details, "Recipe Ablation"))[0]
    assert [r[0] for r in rows[1:]] == [       # the recipe, then the largest loss of val accuracy first
        "**the recipe**", "`--onecycle --no-triangle`", "`--no-dirac`", "`--whiten 0`", "`--no-tta`",
        "`--no-tta-translate`"]
    assert row(rows, "**the recipe**")[1:5] == ["93.50 ± 1.00% (n=3)", "—", "92.50 ± 1.00% (n=3)", "—"]
    assert row(rows, "`--no-tta`")[1:5] == ["93.00 ± 1.00% (n=3)", "-0.50 points", "92.00 ± 1.00% (n=3)",
                                            "-0.50 points"]
    # seed 1113's older log names its flips-and-shifts evaluation "model+tta": the recipe's, not flips only
    assert row(rows, "`--no-tta-translate`")[1:5] == ["92.80 ± 0.71% (n=2)", "-0.20 points",
                                                      "91.80 ± 0.71% (n=2)", "-0.20 points"]
    assert row(rows, "`--whiten 0`")[2] == "-1.00 points"
    assert row(rows, "`--onecycle --no-triangle`")[2] == "-3.00 points"
    assert "12 of the ablation's 33 runs so far (11 rows that train, seeds 1111,1112,1113)" in md
    summary = tables(section(md, "Recipe Ablation (Validation Split)"))
    assert [r[0] for r in summary[-1]] == [r[0] for r in rows]
    assert "airbench94 network" in section(md, "Recipe Ablation (Validation Split)")

    # a --no-tta-translate run of seed 1113 trains as the recipe does: its flips fill the row's gap,
    # it adds no row of its own and no training to the count
    logs.append(fast_ablation_log(make_log, "20261201-190000-fast-aug-e10-val5000", 1113, 94.0, 93.0,
                                  {"tta_translate": False}))
    md, details = render(tmp_path / "more", logs)
    rows = tables(section(details, "Recipe Ablation"))[0]
    assert [r[0] for r in rows[1:]][-3:] == ["`--whiten 0`", "`--no-tta`", "`--no-tta-translate`"]
    assert row(rows, "`--no-tta-translate`")[1:3] == ["93.30 ± 1.00% (n=3)", "-0.20 points"]
    assert "12 of the ablation's 33 runs so far (11 rows that train" in md


def test_the_fast_networks_ablation_says_which_row_stalled_at_chance(make_log, tmp_path):
    """A row tens of points below the others: results.md says its training loss sat at chance, and when."""
    logs = [fast_ablation_log(make_log, "20261201-100000-fast-aug-e10-val5000", 1111, 92.0, 91.0),
            fast_ablation_log(make_log, "20261201-110000-fast-aug-e10-val5000", 1111, 48.0, 47.0,
                              {"logit_scale": 1.0}),
            fast_ablation_log(make_log, "20261201-120000-fast-aug-e10-val5000", 1111, 91.0, 90.0, {"whiten": 0})]
    for h in logs[1]["history"][:6]:
        h["train_loss"] = 2.29
    md, _ = render(tmp_path, logs)
    text = flat(section(md, "airbench94 network: each trick off"))
    assert ("Training stalled at chance (loss within 0.1 of ln 10 = 2.30) at the recipe's learning rates: "
            "`--logit-scale 1`, epochs 1–6 of 10 (r2).") in text
    assert "--whiten 0`, epochs" not in text
    logs[1]["history"][3]["train_loss"] = 1.9
    md, _ = render(tmp_path / "gap", logs)
    part = section(md, "airbench94 network: each trick off")
    assert "`--logit-scale 1`, epochs 1, 2, 3, 5, 6 of 10 (r2)." in flat(part)
    md, _ = render(tmp_path / "none", [logs[0], logs[2]])
    assert "stalled" not in md


@pytest.mark.parametrize("seeds, left", [
    ((1111,), "1 of the ablation's 4 runs so far (2 rows that train, seeds 1111,1112)"), ((1111, 1112), None)])
def test_the_fast_networks_ablation_counts_the_runs_it_still_lacks(make_log, tmp_path, monkeypatch, seeds, left):
    monkeypatch.setattr(report, "OWN_ABLATIONS", {"fast": ("", "--whiten 0")})
    monkeypatch.setattr(report, "BEST_SEEDS", 2)
    monkeypatch.setattr(report, "SEEDS_ARG", "1111,1112")
    logs = [fast_ablation_log(make_log, f"20261201-1{i}000{j}-fast-aug-e10-val5000", seed, 92.0, 91.0, change)
            for i, change in enumerate([{}, {"whiten": 0}]) for j, seed in enumerate(seeds)]
    logs = logs[:-1] if left else logs                          # one seed: the --whiten 0 row not run yet
    md, _ = render(tmp_path, logs)
    part = section(md, "airbench94 network: each trick off")
    text = flat(part)
    assert "on Test A; Δ against the whole recipe, paired by seed, the largest loss first:" in text
    if left:
        assert row(tables(part)[0], "**the recipe**")[1] == "92.50% (n=1)"
        assert f"{left}. Run `python train_fast.py --val 5000 --eval-every 0 --seeds " in text
    else:
        assert "runs so far" not in text


def test_ablation_change_pairs_seeds_and_says_when_it_cannot():
    base = ablation.AblationRow("seed's recipe", {1111: (80.0, 79.0), 1112: (82.0, 81.0)}, ())
    one = ablation.AblationRow("+ x", {1112: (82.5, 81.5)}, ())            # seed 1112 against itself
    assert ablation.paired_change(one, base, 0) == (0.5, True)
    other = ablation.AblationRow("+ y", {1119: (83.0, 82.0)}, ())          # no seed in common
    assert ablation.paired_change(other, base, 0) == (2.0, False)


def test_best_recipe_row_is_the_named_recipe_in_ablation_terms():
    resnet = recipes.RECIPES["resnet18"].best
    assert ablation.best_recipe_row("resnet18") == (
        tuple(sorted(((k, resnet[k]) for k in ("cutout", "decay_norm_bias", "label_smoothing", "nesterov")),
                     key=str)), "ema+tta")
    assert ablation.best_recipe_row("small") == ((("label_smoothing", 0.1),), "ema+tta")
    assert ablation.best_recipe_row("nonesuch") is None


def test_best_recipe_rows_keep_their_target_and_never_count_as_the_seeds_row(make_log, tmp_path):
    best = recipes.RECIPES["small"].best
    logs = [make_log(f"20261201-10000{i}-small-e2", model="small", seed=1111 + i, acc0=50.16 + i) for i in range(3)]
    for i, acc0 in enumerate([58.0, 60.0]):
        log = make_log(f"20261201-11000{i}-small-best-e2", model="small", seed=1111 + i, acc0=acc0)
        log["config"].update(best, recipe="best")
        logs.append(log)
    md, _ = render(tmp_path, logs)
    assert summary_row(md, "Small LeNet-style CNN", 2)[3:5] == ["55.16 ± 1.00% (n=3)", "+1.16 points"]
    assert summary_row(md, "Small LeNet-style CNN, `--recipe best`", 2)[2:5] == [
        "target 56%", "63.00 ± 1.41% (n=2) (2 of the 3 seeds the target asks)", "+7.00 points"]
    text = section(md, "Small LeNet-style CNN: Seed's Recipe vs `--recipe best`")
    assert "`--recipe best` against seed's recipe: +7.84 points" in flat(text)


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
    def make(run_id, seed, ours, tut, warmup=0, epochs=2, sha=None):
        log = copy.deepcopy(bench_small_log)
        put(log, run_id=run_id)
        put(log["hardware"], chip=CHIP, cpu_model_id=None, cpu_capability=None)
        put(log["settings"], seed=seed, warmup=warmup, epochs=epochs)
        put(log["results"], ours_accuracy=ours, tutorial_accuracy=tut, ours_weights_sha256=sha)
        d = DATASETS["official"]
        put(log["dataset"], id=d["content"][:16], content_sha256=d["content"], official=d["official"],
            train_images=50000, test_images=10000)
        return log
    logs = [make("20261201-100000-bench-small", 1111, 50.0, 40.0),      # replaced by its rerun
            make("20261201-100100-bench-small", 1111, 55.0, 56.0),
            make("20261201-100200-bench-small", 1112, 54.0, 55.0, sha="1" * 64),
            make("20261201-100300-bench-small", 1113, 56.0, 54.0, sha="2" * 64),
            make("20261201-100400-bench-small", 1114, 99.0, 99.0, warmup=5)]       # not whole epochs
    settings = bench_small_log["settings"]
    trained = []
    for run_id, seed, sha in (("20261201-090000-small-e2", 1112, "1" * 64),
                              ("20261201-090100-small-e2", 1113, "3" * 64)):
        log = make_log(run_id, model="small", seed=seed, sha=sha)
        put(log["config"], onednn=settings["ours_onednn"])
        put(log["hardware"], torch_threads=settings["ours_threads"])
        trained.append(log)
    md, details = render(tmp_path, logs + trained)
    means = tables(section(md, "Small LeNet-style CNN (62,006 params)"))[-1]
    assert means[1][1:] == ["2", "55.00 ± 1.00% (n=3)", "55.00 ± 1.00% (n=3)", "+0.00 points"]
    seeds = tables(section(details, "Against the Tutorial's Own Loop"))[0]
    assert [r[2:6] for r in seeds[1:]] == [["1111", "55.00%", "56.00%", "no such run"],
                                           ["1112", "54.00%", "55.00%", "same weights (r1)"],
                                           ["1113", "56.00%", "54.00%", "other weights (r2)"]]
    assert "99.00%" not in md + details.split("## Benchmarks")[0]


def test_superseded_figures_stay_in_details_each_labelled(make_log, tmp_path):
    """An earlier document's figures are kept apart from results.md's: the superseded targets, the
    scheduling comparison on one machine (fewer seeds than the summary pools) and the whole-run rule's
    times beside the per-epoch rule's."""
    def cycle(run_id, seed, acc0, chip=CHIP, **kw):
        return make_log(run_id, epochs=40, augment=True, onecycle=True, acc_step=1.0, seed=seed, acc0=acc0,
                        chip=chip, **kw)
    logs = [make_log("20261201-150000-large-aug-e40", epochs=40, augment=True, acc0=40.0, acc_step=1.0),
            # epoch 1 busy and twice as slow: the run as a whole passes as idle (60 of 1,230 CPU-seconds)
            cycle("20261201-160000-large-aug-onecycle-e40", 1111, 44.0, epoch_time=[60.0] + [30.0] * 39,
                  other_cpus=[1.0] + [0.0] * 39),
            cycle("20261201-170000-large-aug-onecycle-e40", 1112, 46.0),
            cycle("20261201-180000-large-aug-onecycle-e40", 1113, 48.0, chip="Other Chip 2")]
    md, details = render(tmp_path, logs)
    assert summary_row(md, "Large LeNet-style CNN + augmentation + OneCycleLR", 40)[3] == "86.00 ± 2.00% (n=3)"
    assert "Superseded" not in md
    text = section(details, "Superseded Figures")
    targets = tables(section(text, "Superseded Target Set"))[0]
    assert ["≥85%", "Acceptable Accuracy Targets", "86.00 ± 2.00% (n=3)", "✓ achieved"] in [r[2:] for r in targets]
    assert ["≥87%", "`--recipe best`'s target, applied to the seed's recipe", "86.00 ± 2.00% (n=3)",
            "✗ 1.00 points below"] in [r[2:] for r in targets]
    one = section(text, "Learning Rate Scheduling on Test A Alone (2 Seeds, n Differs From the Summary)")
    assert row(tables(one)[0], "**Overall Accuracy**")[1:] == ["80.00% (n=1)", "85.00 ± 1.41% (n=2)"]
    times = tables(section(text, "Times by the Whole-Run Rule (See the Per-Epoch Rule)"))[0]
    cyc = next(r for r in times if r[2].endswith("augmentation, OneCycleLR"))
    # per-epoch rule: the median idle epoch (30 s) × 40 on each seed; whole-run rule: as logged, 1,230 and 1,200 s
    assert cyc[3:] == ["1200.00s on Test A", "1215.00s on Test A", "r2–r3"]


def test_a_network_without_seed_rows_is_measured_at_its_own_recipe(make_log, tmp_path):
    """The fast network has no row of the seed's: the Architecture Comparison takes its runs at its own
    recipe (its options on), and a run off that recipe does not stand for it."""
    d = recipes.config_for("fast")
    logs = []
    # the recipe; label smoothing off; the recipe with one of the fast network's own switches off
    for i, (acc0, change) in enumerate([(90.0, {}), (98.0, {"label_smoothing": 0.0}), (97.0, {"lookahead": 0}),
                                        (96.0, {"dirac": False})]):
        log = make_log(f"20261201-10000{i}-fast-aug-e10", model="fast", epochs=10, augment=True, acc0=acc0,
                       acc_step=0.1)
        log["config"].update({k: getattr(d, k) for k in ("lr", "max_lr", "weight_decay", "momentum",
                                                         *recipes.OPTIONS, *recipes.FAST_OPTIONS)} | change)
        logs.append(log)
    loaded = [runs.Run(log, tmp_path / "run_log.json") for log in logs]
    assert [runs.training_options(r.cfg) for r in loaded] == [{}, {"label_smoothing": 0.0}, {"lookahead": 0},
                                                              {"dirac": False}]
    assert len({r.configuration for r in loaded}) == 4
    md, _ = render(tmp_path, logs)
    assert row(tables(section(md, "Architecture Comparison"))[0], "airbench94 network")[2] == \
        "91.00% (n=1), 10 ep, 300.00s on Test A"
    # the summary's last row: the recipe against the figure the seed cites for it
    assert summary_row(md, "airbench94 network, its own recipe", 10)[2:7] == [
        "94% in 3.29 s", "91.00% (n=1)", "-3.00 points", "300.00s on Test A", "r1"]
    longer = fast_recipe_log(make_log, "20261201-200000-fast-aug-e20", epochs=20, acc0=95.0)
    md, _ = render(tmp_path / "longer", logs + [longer])          # the row is the recipe's 10 epochs
    assert summary_row(md, "airbench94 network, its own recipe", 10)[3] == "91.00% (n=1)"
    assert tables(section(md, "Summary"))[0][-1][0] == "airbench94 network, its own recipe"
    assert "the figure the seed cites for it" in flat(section(md, "Summary"))
    md, _ = render(tmp_path / "none", logs[1:])                  # no run at the recipe: not measured yet
    assert summary_row(md, "airbench94 network, its own recipe", 10)[3] == "not measured yet"
    assert "`python train_fast.py --seeds 1111,1112,1113`" in section(md, "Summary")


def fast_recipe_log(make_log, run_id, **kw):
    """A fast-network run at its own recipe (``make_log``'s keywords otherwise)."""
    d = recipes.config_for("fast")
    log = make_log(run_id, model="fast", augment=True, acc_step=0.1, **{"epochs": 10} | kw)
    log["config"].update({k: getattr(d, k) for k in ("lr", "max_lr", "weight_decay", "momentum",
                                                     *recipes.OPTIONS, *recipes.FAST_OPTIONS)})
    return log


def test_a_mean_over_more_seeds_is_not_outranked_by_a_luckier_configuration_over_fewer(make_log, tmp_path):
    """Among a network's configurations, a summary row takes the one over the most seeds: one bf16 run
    that happened to score higher does not stand for the network in place of three fp32 seeds."""
    logs = [fast_recipe_log(make_log, f"20261201-1{i}0000-fast-aug-e10", seed=seed, acc0=90.0 + 0.2 * i)
            for i, seed in enumerate((1111, 1112, 1113))]
    logs.append(fast_recipe_log(make_log, "20261201-200000-fast-aug-e10", seed=1111, acc0=95.0, precision="bf16"))
    md, _ = render(tmp_path, logs)
    assert summary_row(md, "airbench94 network, its own recipe", 10)[3] == "91.20 ± 0.20% (n=3)"
    assert row(tables(section(md, "Architecture Comparison"))[0], "airbench94 network")[2].startswith(
        "91.20 ± 0.20% (n=3), 10 ep")
    text = flat(section(md, f"airbench94 network ({PARAMS.get('fast', 1000):,} params)"))
    assert "Configuration over the most seeds: 91.20 ± 0.20% (n=3), " in text
    assert "Other configurations: 96.00% (n=1), " in text
    md, _ = render(tmp_path / "one", logs[:1] + logs[3:])         # one seed each: the more accurate
    assert summary_row(md, "airbench94 network, its own recipe", 10)[3] == "96.00% (n=1)"


@pytest.mark.parametrize("second_sha, said", [("b" * 64, "the same loss lines, accuracy and final weights "
                                                         "(sha256 `bbbbbbbbbbbb…`)"),
                                              ("c" * 64, "they differ")])
def test_a_networks_section_says_whether_its_same_seed_rerun_matched(make_log, tmp_path, second_sha, said):
    logs = [fast_recipe_log(make_log, "20261201-100000-fast-aug-e10", seed=1111, acc0=90.0, sha="b" * 64),
            fast_recipe_log(make_log, "20261201-110000-fast-aug-e10", seed=1112, acc0=91.0, sha="d" * 64),
            fast_recipe_log(make_log, "20261201-120000-fast-aug-e10", seed=1111, acc0=90.0, sha=second_sha)]
    md, _ = render(tmp_path, logs)
    text = flat(section(md, f"airbench94 network ({logs[0]['params']:,} params)"))
    assert f"Run again with the same seed: seed 1111 on Test A, r1, r3: {said} ([every group]" in text
    assert "seed 1112" not in text


def test_a_network_without_a_rerun_says_nothing_of_one(make_log, tmp_path):
    md, _ = render(tmp_path, [fast_recipe_log(make_log, "20261201-100000-fast-aug-e10", acc0=90.0)])
    assert "Run again" not in section(md, f"airbench94 network ({PARAMS.get('fast', 1000):,} params)")


def test_accuracy_against_compute_takes_each_network_s_flop_per_image_times_images_and_epochs(make_log, tmp_path):
    d = recipes.config_for("fast")
    fast = make_log("20261201-100000-fast-aug-e10", model="fast", epochs=10, augment=True, acc0=90.0, acc_step=0.1)
    fast["config"].update({k: getattr(d, k) for k in ("lr", "max_lr", "weight_decay", "momentum", *recipes.OPTIONS,
                                                      *recipes.FAST_OPTIONS)})
    small = make_log("20261201-090000-small-e2", model="small", epochs=2, epoch_time=60.0)
    flops = {"kind": "benchmark", "benchmark": "flops", "run_id": "20261201-080000-bench-flops", "status": "complete",
             "model": "small,fast", "batch_size": 8, "device": "cpu", "hardware": {"chip": CHIP},
             "results": {"small": {"train_flop_per_image": 3e6}, "fast": {"train_flop_per_image": 7e8}}}
    runs_dir = write_logs(tmp_path / "runs", [fast, small, flops])
    rep = report.Report(runs.load_runs(runs_dir, pytest.fail), tmp_path, tmp_path / "results", "runs")
    points = {p[0]: p[1:] for p in report.compute_points(rep)}
    images = fast["dataset"]["train_images"]
    # (label, PFLOP, minutes, machine, accuracy): minutes by the per-epoch rule, 10 x 30 s and 2 x 60 s
    assert points["airbench94 network"] == ("10 ep", 7e8 * images * 10 / 1e15, 5.0, "Test A", 91.0)
    assert points["Small LeNet-style CNN"] == ("2 ep", 3e6 * small["dataset"]["train_images"] * 2 / 1e15, 2.0,
                                               "Test A", 39.0)
    md, _ = render(tmp_path / "doc", [fast, small, flops], plots=True)
    text = section(md, "Architecture Comparison")
    assert "counted by torch.utils.flop_counter, b1" in text and "([plot](results/compute.png))" in text
    assert "![accuracy against compute and time](results/compute.png)" in md
    assert mpimg.imread(tmp_path / "doc" / "results" / "compute.png").shape[:2] == (460, 1000)
