"""compare.py: two runs' fingerprints and numbers, from logs the real training loop writes.

Tiny trainings of the tutorial LeNet make an identical pair, a resumed twin and a
different-seed pair; the committed logs of seed 1111 on two AMD EPYC machines make the
different-machine pair.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import compare
import report
import runs
import train_small
from conftest import ROOT

EPYC_A, EPYC_B = "20261130-031709-small-e2", "20261201-065416-small-e2"   # 55.97% and 55.87%


def _train(out, *args):
    before = set(out.iterdir()) if out.is_dir() else set()
    assert train_small.main(["--out", str(out), *args]) == 0
    (new,) = set(out.iterdir()) - before
    return new


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """{name: run folder}: two identical 2-epoch runs, a 1-epoch run resumed to 2, seed 1112."""
    out = tmp_path_factory.mktemp("compare") / "runs"
    base = ["--data-dir", str(tiny_data), "--device", "cpu", "--log-every", "10", "--no-progress"]
    found = {"a": _train(out, *base), "b": _train(out, *base),
             "seed": _train(out, *base, "--seed", "1112"), "resumed": _train(out, *base, "--epochs", "1")}
    assert train_small.main(["--resume", str(found["resumed"]), "--epochs", "2", *base]) == 0
    return found


def compared(capsys, a, b, *flags):
    code = compare.main([str(a), str(b), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def log(folder):
    return json.loads((Path(folder) / runs.LOG).read_text())


def write(folder, record):
    folder.mkdir(parents=True)
    (folder / runs.LOG).write_text(json.dumps(record))
    return folder


def test_identical_runs(trained, capsys):
    code, out, err = compared(capsys, trained["a"], trained["b"])
    assert code == 0, err
    assert "verdict: identical" in out
    code, out, _ = compared(capsys, trained["a"], trained["b"], "--json")
    cmp = json.loads(out)
    assert code == 0 and cmp["verdict"]["kind"] == "identical"
    n = cmp["numbers"]
    assert n["loss_lines"]["common"] == 10 and n["loss_lines"]["differ"] == 0
    assert [e["match"] for e in n["epoch_weights"]] == [True, True]
    assert n["final_weights"]["weights_sha256"]["equal"] is True
    assert [r for r in cmp["differs"] if r["part"] != "code"] == []


def test_resumed_twin_is_identical_and_says_it_was_resumed(trained, capsys):
    code, out, err = compared(capsys, trained["a"], trained["resumed"])
    assert code == 0, err
    assert "resumed: A never; B after epoch 1 (on cpu)" in out
    assert "verdict: identical" in out


def test_different_configuration_is_named_with_where_it_diverged(trained, capsys):
    code, out, _ = compared(capsys, trained["a"], trained["seed"], "--json")
    cmp = json.loads(out)
    assert code == 1
    assert cmp["verdict"]["kind"] == "configuration"
    assert cmp["verdict"]["text"] == "different configuration (seed); diverged at [1, 10]"
    assert [(r["field"], r["a"], r["b"]) for r in cmp["differs"] if r["part"] == "config"] == [
        ("seed", 1111, 1112)]


def test_two_amd_epyc_machines_name_the_first_diverging_loss_line(capsys):
    a, b = ROOT / "runs" / EPYC_A, ROOT / "runs" / EPYC_B
    code, out, _ = compared(capsys, a / runs.LOG, b)
    assert code == 1
    assert "first at [1, 1200]: 2.024488 vs 2.024490" in out
    assert "test accuracy  55.97% vs 55.87% (-0.10 points)" in out
    assert "verdict: same computation on different software and code (diverged at [1, 1200])" in out
    cmp = json.loads(compared(capsys, a, b, "--json")[1])
    assert cmp["numbers"]["loss_lines"]["first_difference"] == {"epoch": 1, "batch": 1200,
                                                              "a": 2.024488, "b": 2.02449}
    assert cmp["verdict"]["diverged_at"] == [1, 1200]
    unrecorded = {r["field"]: (r["a"], r["b"]) for r in cmp["unrecorded"]}
    assert unrecorded["CPU family and model"] == (None, "family 25 model 1 stepping 1")
    assert not [r for r in cmp["differs"] if r["part"] in compare.COMPUTATION_PARTS]
    plane = next(c for c in cmp["numbers"]["per_class"] if c["class"] == "plane")
    assert plane == {"class": "plane", "a": 40.5, "b": 35.8, "difference": -4.7}


def test_another_cpu_is_different_hardware(trained, capsys, tmp_path):
    other = log(trained["a"])                  # a's own log: the same code and tree state
    other["hardware"].update(chip="Other CPU", cpu_capability="AVX2" if other["hardware"]["cpu_capability"] == "AVX512"
                             else "AVX512")
    other["loss_lines"][3][2] += 0.001
    folder = write(tmp_path / "other", other)
    code, out, _ = compared(capsys, trained["a"], folder)
    assert code == 1
    assert ("verdict: same computation on different hardware (diverged at [1, 40]): CPU, "
            "instruction set differ") in out


def test_same_everything_but_the_numbers_is_not_reproducible(trained, capsys, tmp_path):
    twin = log(trained["a"])
    twin["results"]["weights_sha256"] = "0" * 64
    folder = write(tmp_path / "twin", twin)
    cmp = json.loads(compared(capsys, trained["a"], folder, "--json")[1])
    assert cmp["verdict"]["kind"] == "unexplained"
    assert cmp["verdict"]["text"].endswith("the final results differ: not reproducible")


def test_a_field_an_older_log_lacks_reads_at_its_default(trained, capsys, tmp_path):
    older = log(trained["b"])
    del older["config"]["nesterov"], older["config"]["cutout"]
    older = write(tmp_path / "older", older)
    cmp = json.loads(compared(capsys, trained["a"], older, "--json")[1])
    assert cmp["verdict"]["kind"] == "identical"
    assert {r["field"] for r in cmp["equal"] if r.get("assumed_default") == ["b"]} == {"nesterov", "cutout"}
    nesterov = log(trained["a"])
    nesterov["config"]["nesterov"] = True                 # on here, absent (so off) in the older log
    nesterov["results"]["weights_sha256"] = "0" * 64
    cmp = json.loads(compared(capsys, write(tmp_path / "nesterov", nesterov), older, "--json")[1])
    assert cmp["verdict"]["text"].startswith("different configuration (nesterov)")


def test_bookkeeping_fields_change_no_verdict(trained, capsys, tmp_path):
    moved = log(trained["b"])
    moved["config"].update(out="elsewhere", download=False)
    code, out, _ = compared(capsys, trained["a"], write(tmp_path / "moved", moved))
    assert code == 0
    assert re.search(r"changing no number: out \S+ vs elsewhere, download yes vs no\n", out)


def test_runs_are_named_by_id_folder_or_log(trained, capsys):
    folder = trained["a"]
    by_id = compared(capsys, folder.name, trained["b"].name, "--runs", str(folder.parent))
    by_log = compared(capsys, folder / runs.LOG, trained["b"])
    assert by_id[0] == by_log[0] == 0 and by_id[1] == by_log[1]


def _bench(tmp_path):
    return write(tmp_path / "bench", {"kind": "benchmark", "status": "complete", "run_id": "bench"})


def _typed_wrong(tmp_path, trained):
    rec = log(trained["a"])
    rec["loss_lines"] = "many"
    return write(tmp_path / "typed", rec)


def _corrupt(tmp_path, trained):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / runs.LOG).write_text('{"kind": "tra')
    return folder


@pytest.mark.parametrize("make, pattern", [
    (lambda tmp, tr: tmp / "nowhere", r"^error: no run '.*nowhere'"),
    (lambda tmp, tr: _bench(tmp), r"is a benchmark record, not a training run"),
    (_typed_wrong, r"loss_lines is \"many\", not what a run log holds"),
    (_corrupt, r"unreadable run log \(JSONDecodeError\)"),
])
def test_bad_input_is_one_line_and_exit_2(make, pattern, trained, capsys, tmp_path):
    code, out, err = compared(capsys, trained["a"], make(tmp_path, trained))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(pattern, lines[0]), lines[0]


def test_machine_pairs_pair_one_computation_across_environments(trained, tmp_path):
    other = log(trained["b"])
    other["run_id"] = "zz-other-machine"
    other["hardware"]["cpu_model_id"] = "family 6 model 143 stepping 8"
    write(tmp_path / "zz-other-machine", other)
    found = runs.load_runs(trained["a"].parent, print) + [runs.read_run(tmp_path / "zz-other-machine" / runs.LOG)]
    pairs = compare.machine_pairs(found)
    # a, b and the resumed run share one environment (its fastest run stands for it); seed 1112 has one
    assert [(p["a"]["run_id"] in {f.name for f in trained.values()}, p["b"]["run_id"]) for p in pairs] == [
        (True, "zz-other-machine")]
    assert pairs[0]["verdict"]["kind"] == "identical"      # the numbers are the same: only the id differs


def test_markdown_names_the_first_differing_loss_and_the_verdict():
    a, b = (runs.read_run(ROOT / "runs" / r / runs.LOG) for r in (EPYC_A, EPYC_B))
    md = compare.markdown(compare.compare_runs(a, b))
    assert f"| Field | `{EPYC_A}` | `{EPYC_B}` |" in md
    assert "| Loss [1, 1200] (first that differs) | 2.024488 | 2.024490 |" in md
    assert "| Test accuracy | 55.97% | 55.87% |" in md
    assert "**Verdict:** Same computation on different software and code (diverged at [1, 1200])" in md


def test_help_states_every_default(capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: runs)" in out and "(default: text)" in out


def test_compare_imports_no_torch():
    code = ("import sys, compare; compare.compare_runs; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_machine_pairs_finds_the_two_amd_epyc_runs_in_the_committed_logs():
    found = [runs.read_run(ROOT / "runs" / r / runs.LOG) for r in (EPYC_A, EPYC_B, "20261201-065531-small-e2")]
    (pair,) = compare.machine_pairs(found)          # B and its rerun (of a dirty tree) share one environment
    assert (pair["a"]["run_id"], pair["b"]["run_id"]) == (EPYC_A, EPYC_B)
    assert pair["verdict"]["diverged_at"] == [1, 1200]


def _backends_record(run_id, **changes):
    """A record of the form backends.py writes (tests/test_backends.py checks the real one against it)."""
    layer = {"max_abs_diff": 0.01, "mean_abs_diff": 0.001}
    rec = {"kind": "backends", "run_id": run_id, "status": "complete", "model": "small",
           "source": {"run": EPYC_B, "weights": "weights.pt", "weights_sha256": "8882605b2caf" + "0" * 52},
           "backends": ["cpu-fp32", "cpu-bf16"], "hardware": {}, "results": {
               "reference": "cpu-fp32", "images": 10000,
               "layers": [{"layer": "conv1", "shape": [6, 28, 28], "reference_max_abs": 3.5},
                          {"layer": "logits", "shape": [10], "reference_max_abs": 12.0}],
               "backends": {"cpu-fp32": {"accuracy": 55.87, "predictions_differ": 0, "layers": {}},
                            "cpu-bf16": {"accuracy": 55.8, "predictions_differ": 42,
                                         "layers": {"conv1": layer, "logits": layer}}}}}
    rec.update(changes)
    return rec


def test_results_md_shows_what_compare_prints(tmp_path):
    """The report's Hardware DNA and reproducibility verdicts come from compare.py's functions."""
    folder = tmp_path / "runs"
    for run_id in (EPYC_A, EPYC_B, "20261201-065531-small-e2"):
        write(folder / run_id, log(ROOT / "runs" / run_id))
    write(folder / "20261203-000000-backends-small", _backends_record("20261203-000000-backends-small"))
    write(folder / "20261203-000001-backends-small", _backends_record("20261203-000001-backends-small",
                                                                      backends=["cpu-fp32"]))
    out = tmp_path / "site" / "results.md"
    assert report.main(["--runs", str(folder), "--output", str(out), "--no-plots"]) == 0
    md, details = out.read_text(), (tmp_path / "site" / "results" / "details.md").read_text()
    a, b = (runs.read_run(folder / r / runs.LOG) for r in (EPYC_A, EPYC_B))
    table, verdict = compare.markdown(compare.compare_runs(a, b)).split("\n\n")
    hardware = md[md.index("## Hardware DNA"):md.index("## Activation Visualization")]
    assert f"`python compare.py {EPYC_A} {EPYC_B}`" in hardware and table not in hardware   # a line here
    assert verdict.removeprefix("**Verdict:** ").rstrip(".") in hardware
    assert table in details and " ".join(verdict.split()) in " ".join(details.split())      # the tables there
    intro, backends_table, finding = compare.backends_markdown(log(folder / "20261203-000000-backends-small"))
    assert backends_table in hardware and "42 of the 10,000 test images" in " ".join(hardware.split())
    assert "`20261203-000001-backends-small` (backends)" in details         # malformed: listed, not shown
    assert "identical: bit for bit" in details                              # EPYC_B and its rerun


@pytest.mark.parametrize("change, problem", [
    (dict(backends="cpu-fp32"), "backends is not a list"),
    (dict(source={"run": 3}), "source or model"),
    (dict(results={"images": 10, "layers": [], "backends": {}}), "results.layers"),
])
def test_backends_problem_names_what_is_not_as_written(change, problem):
    assert compare.backends_problem(_backends_record("x")) is None
    assert problem in compare.backends_problem(_backends_record("x", **change))
