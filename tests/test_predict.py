"""predict.py and export.py on one tiny trained run: images to classes, and the exported program."""
import json
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import data
import export
import predict
import train_small
import visualize_activations
from conftest import ROOT, run
from engine import weights_digest
from trained import load_weights, trained_model

# One printed prediction: "path: name 12.3%, name 4.5%, ...".
ENTRY = re.compile(r"^(\w+) (\d+\.\d)%$")


def one_run(root, tiny_data, weights, *flags):
    """A complete one-epoch LeNet run on the tiny data in ``root``/runs, and the network in its
    ``weights`` file in eval mode."""
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        code = train_small.main(["--epochs", "1", "--data-dir", str(tiny_data), "--no-download", *flags,
                                 "--out", str(runs_dir), "--device", "cpu"])
    assert code == 0
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return SimpleNamespace(runs=runs_dir, run_dir=run_dir, id=run_dir.name,
                           model=load_weights("small", run_dir / weights, "cpu").eval(),
                           flags=["--run", run_dir.name, "--runs", str(runs_dir), "--device", "cpu"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """One complete one-epoch LeNet run on the tiny data, and its network in eval mode."""
    return one_run(tmp_path_factory.mktemp("trained"), tiny_data, "weights.pt")


@pytest.fixture
def pictures(tmp_path):
    """A 50x40 PNG and a 64x48 JPEG of random colours, and a 32x32 greyscale PNG."""
    rng = np.random.RandomState(7)
    png, jpg, grey = tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "c.png"
    Image.fromarray(rng.randint(0, 256, (40, 50, 3), dtype=np.uint8)).save(png)
    Image.fromarray(rng.randint(0, 256, (48, 64, 3), dtype=np.uint8)).save(jpg, quality=90)
    Image.fromarray(rng.randint(0, 256, (32, 32), dtype=np.uint8), mode="L").save(grey)
    return SimpleNamespace(png=png, jpg=jpg, grey=grey)


def reference_input(path):
    """``path`` preprocessed by hand: Pillow bilinear to 32x32, (x/255 - mean)/std, (1, 3, 32, 32)."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
    x = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor(data.MEAN).view(1, 3, 1, 1)) / torch.tensor(data.STD).view(1, 3, 1, 1)


def reference_probs(model, path):
    """Softmax of ``model`` on ``path`` preprocessed by hand."""
    with torch.no_grad():
        return torch.softmax(model(reference_input(path)), 1)[0]


def parse_line(line):
    path, _, rest = line.rpartition(": ")
    entries = [ENTRY.match(e) for e in rest.split(", ")]
    assert all(entries), line
    return path, [(m.group(1), float(m.group(2))) for m in entries]


# ---------------------------------------------------------------- preprocessing

def test_load_image_is_rgb_32x32_uint8_and_keeps_a_32x32_picture(pictures):
    for path in (pictures.png, pictures.jpg, pictures.grey):
        x = predict.load_image(path)
        assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    grey = predict.load_image(pictures.grey)
    assert torch.equal(grey, torch.from_numpy(np.array(Image.open(pictures.grey)))[None].expand(3, 32, 32))


def test_normalize_is_trainings_normalisation(pictures):
    x = torch.stack([predict.load_image(pictures.png), predict.load_image(pictures.jpg)])
    got = predict.normalize(x, torch.device("cpu"))
    want = (x.float() / 255 - torch.tensor(data.MEAN).view(1, 3, 1, 1)) / torch.tensor(data.STD).view(1, 3, 1, 1)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 32, 32)
    assert torch.allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------- predict.py

def test_predict_prints_top3_per_image(trained, pictures, workdir, capsys):
    before = sorted(workdir.iterdir())
    code, out, err = run(predict, capsys, str(pictures.png), str(pictures.jpg), *trained.flags)
    assert code == 0 and err == ""
    header, *lines = out.splitlines()
    log = json.loads((trained.run_dir / "run_log.json").read_text())
    # the run, its accuracy and what it trained on, before any answer is read
    assert header == (f"small (run {trained.id}) on cpu: {log['results']['overall_accuracy']:.2f}% test accuracy "
                      f"on 100 images, trained on 200 images of {log['dataset']['source']}")
    assert [parse_line(line)[0] for line in lines] == [str(pictures.png), str(pictures.jpg)]
    for line in lines:
        top = parse_line(line)[1]
        names, percents = [n for n, _ in top], [p for _, p in top]
        assert len(top) == 3 and len(set(names)) == 3 and set(names) <= set(data.CLASSES)
        assert percents == sorted(percents, reverse=True) and sum(percents) <= 100.2
    assert sorted(workdir.iterdir()) == before                   # writes nothing


def test_predict_json_matches_the_runs_model(trained, pictures, workdir, capsys):
    code, out, _ = run(predict, capsys, str(pictures.png), str(pictures.jpg), str(pictures.grey),
                       "--json", *trained.flags)
    assert code == 0
    doc = json.loads(out)
    assert (doc["model"], doc["run"], doc["device"]) == ("small", trained.id, "cpu")
    assert doc["weights"] == str(trained.run_dir / "weights.pt")
    assert [i["file"] for i in doc["images"]] == [str(pictures.png), str(pictures.jpg), str(pictures.grey)]
    for image in doc["images"]:
        top = image["top"]
        probs = [t["probability"] for t in top]
        assert len(top) == 3 and {t["class"] for t in top} <= set(data.CLASSES)
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        # the same numbers as the run's network on the same picture, preprocessed by hand
        want = reference_probs(trained.model, image["file"])
        for t in top:
            assert t["probability"] == pytest.approx(want[data.CLASSES.index(t["class"])].item(), abs=1e-5)
        assert top[0]["class"] == data.CLASSES[int(want.argmax())]


def test_predict_top_10_is_the_whole_distribution(trained, pictures, workdir, capsys):
    code, out, _ = run(predict, capsys, str(pictures.jpg), "--json", "--top", "10", *trained.flags)
    assert code == 0
    top = json.loads(out)["images"][0]["top"]
    assert sorted(t["class"] for t in top) == sorted(data.CLASSES)
    assert sum(t["probability"] for t in top) == pytest.approx(1, abs=1e-5)


def test_unreadable_files_are_named_and_the_rest_classified(trained, pictures, tmp_path, workdir, capsys):
    broken, missing = tmp_path / "broken.png", tmp_path / "missing.jpg"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    code, out, err = run(predict, capsys, str(broken), str(pictures.png), str(missing), *trained.flags)
    assert code == 2
    assert err.splitlines() == [f"error: cannot read {broken} (not an image file Pillow can read)",
                                f"error: cannot read {missing} (No such file or directory)"]
    assert [parse_line(line)[0] for line in out.splitlines()[1:]] == [str(pictures.png)]

    code, out, err = run(predict, capsys, str(broken), str(pictures.png), "--json", *trained.flags)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    bad, good = json.loads(out)["images"]
    assert bad == {"file": str(broken), "error": "not an image file Pillow can read"}
    assert good["file"] == str(pictures.png) and len(good["top"]) == 3


def test_default_is_the_newest_complete_run(trained, pictures, tmp_path, workdir, capsys):
    runs_dir = tmp_path / "runs"
    older, newer = runs_dir / "20000101-000000-small-e1", runs_dir / "29991231-000000-small-e1"
    shutil.copytree(trained.run_dir, older)
    shutil.copytree(trained.run_dir, newer)
    log = json.loads((newer / "run_log.json").read_text())
    # a run in progress that never completed (an extension of a complete one keeps its results)
    (newer / "run_log.json").write_text(json.dumps({**log, "status": "running", "results": None}))
    code, out, _ = run(predict, capsys, str(pictures.png), "--runs", str(runs_dir), "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["run"] == older.name

    code, out, err = run(predict, capsys, str(pictures.png), "--runs", str(runs_dir), "--model", "large")
    assert code == 2 and out == ""
    assert err == (f"error: no complete large run with weights in {runs_dir}; train one with: "
                   f"python {ROOT / 'train_large.py'} --out {runs_dir} (or pass --run or --weights)\n")


def test_weights_with_model(trained, pictures, workdir, capsys):
    code, out, _ = run(predict, capsys, str(pictures.png), "--weights", str(trained.run_dir / "weights.pt"),
                       "--model", "small", "--device", "cpu", "--top", "1")
    assert code == 0
    header, line = out.splitlines()
    assert header == f"small (weights {trained.run_dir / 'weights.pt'}) on cpu"
    assert len(parse_line(line)[1]) == 1


@pytest.mark.parametrize("args, message", [
    (["--top", "0"], "argument --top: 0 is not a whole number from 1 to 10"),
    (["--top", "11"], "argument --top: 11 is not a whole number from 1 to 10"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--run", "x", "--weights", "y"], "not allowed with argument"),
    (["--weights", "w.pt"], "no weights file w.pt"),
    (["--weights", "w.pt", "--model", "small"], "no weights file w.pt"),
    (["--run", "nope"], "no run 'nope' in"),
    (["--run", "RUN", "--model", "large"], "trained small, not large; drop --model"),
])
def test_bad_input_is_one_line_exit_2(trained, pictures, workdir, capsys, args, message):
    args = [a.replace("RUN", trained.id) for a in args]
    code, out, err = run(predict, capsys, str(pictures.png), "--runs", str(trained.runs), *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# ---------------------------------------------------------------- export.py

@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    assert export.main(["--run", trained.id, "--runs", str(trained.runs), "--out", str(out)]) == 0
    return out / trained.id


def test_export_writes_the_program_and_its_json(trained, exported):
    assert sorted(p.name for p in exported.iterdir()) == ["model.json", "model.pt2"]   # no temp files
    meta = json.loads((exported / "model.json").read_text())
    log = json.loads((trained.run_dir / "run_log.json").read_text())
    assert meta["classes"] == list(data.CLASSES)
    assert meta["mean"] == list(data.MEAN) and meta["std"] == list(data.STD)
    assert meta["input_shape"] == ["N", 3, 32, 32]
    assert meta["batch"] == {"dynamic": True, "min": 1, "max": 4096}
    assert meta["value_range"].startswith("uint8 pixels scaled to [0,1], then normalised")
    assert (meta["model"], meta["run_id"]) == ("small", trained.id)
    assert meta["weights_sha256"] == log["results"]["weights_sha256"]
    assert meta["flip_tta"] is False and "flip_tta_how" not in meta        # a boolean, never null
    assert meta["torch_version"] == torch.__version__


@pytest.mark.parametrize("batch", [1, 5])
def test_exported_program_gives_the_runs_logits(trained, exported, batch):
    program = torch.export.load(exported / "model.pt2").module()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        got, want = program(x), trained.model(x)
    assert got.shape == (batch, 10)
    assert torch.allclose(got, want, atol=1e-5)


def test_exported_program_loads_without_this_repo(trained, exported, tmp_path):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.save((x, trained.model(x)), tmp_path / "io.pt")
    script = ("import importlib.util, sys, torch\n"
              "assert not any(importlib.util.find_spec(m) for m in ('models', 'predict', 'engine')), sys.path\n"
              "program = torch.export.load(sys.argv[1]).module()\n"
              "x, want = torch.load(sys.argv[2])\n"
              "assert torch.allclose(program(x), want, atol=1e-5)\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-I", "-c", script, str(exported / "model.pt2"), str(tmp_path / "io.pt")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_export_falls_back_to_a_fixed_batch_and_says_so(trained, tmp_path, monkeypatch, capsys):
    real = torch.export.export

    def no_dynamic(model, args, dynamic_shapes=None, **kw):
        if dynamic_shapes is not None:
            raise RuntimeError("dynamic shapes unsupported here\nmore detail")
        return real(model, args, **kw)

    monkeypatch.setattr(torch.export, "export", no_dynamic)
    weights = trained.run_dir / "weights.pt"
    code, out, err = run(export, capsys, "--weights", str(weights), "--model", "small", "--out", str(tmp_path))
    assert code == 0
    assert err.startswith("warning: small could not be exported with a dynamic batch") and err.count("\n") == 1
    (folder,) = tmp_path.iterdir()
    meta = json.loads((folder / "model.json").read_text())
    assert folder.name == f"small-{meta['weights_sha256'][:12]}"
    assert (meta["run_id"], meta["weights"]) == (None, str(weights))
    assert meta["input_shape"] == [1, 3, 32, 32]
    assert meta["batch"] == {"dynamic": False, "size": 1,
                             "reason": "dynamic batch failed: dynamic shapes unsupported here"}
    program = torch.export.load(folder / "model.pt2").module()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program(x), trained.model(x), atol=1e-5)


def test_export_without_a_run_is_one_line_exit_2(tmp_path, capsys):
    code, out, err = run(export, capsys, "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "x"))
    assert code == 2 and out == ""
    assert err.startswith("error: no complete run with weights in") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_trained_model_is_in_eval_mode(trained):
    args = predict.build_parser().parse_args(["x.png", *trained.flags])
    name, model, source = trained_model(args, torch.device("cpu"))
    assert name == "small" and not model.training
    assert source.items() >= {"run": trained.id, "weights": str(trained.run_dir / "weights.pt"), "ema": False,
                              "tta": False, "train_images": 200, "test_images": 100}.items()


# ---------------------------------------------------------------- a run that evaluated otherwise

@pytest.fixture(scope="module")
def averaged(tmp_path_factory, tiny_data):
    """A one-epoch run with --ema 0.9 --tta: its accuracy measured the weight average with flip TTA."""
    return one_run(tmp_path_factory.mktemp("averaged"), tiny_data, "weights_ema.pt", "--ema", "0.9", "--tta")


def test_a_run_with_ema_and_tta_is_used_as_it_was_evaluated(averaged, pictures, workdir, capsys):
    args = predict.build_parser().parse_args(["x.png", *averaged.flags])
    _, model, source = trained_model(args, torch.device("cpu"))
    assert source.items() >= {"run": averaged.id, "weights": str(averaged.run_dir / "weights_ema.pt"),
                              "ema": True, "tta": True}.items()
    log = json.loads((averaged.run_dir / "run_log.json").read_text())
    assert weights_digest(model) == log["results"]["weights_ema_sha256"] != log["results"]["weights_sha256"]
    code, out, err = run(predict, capsys, str(pictures.png), str(pictures.jpg), "--json", "--top", "10",
                         *averaged.flags)
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["ema"], doc["tta"]) == (True, True)
    for image in doc["images"]:
        # the softmax of the mean logits of the picture and its mirror image, by the weight average
        x = reference_input(image["file"])
        with torch.no_grad():
            want = torch.softmax((averaged.model(x) + averaged.model(x.flip(3))) / 2, 1)[0]
            plain = torch.softmax(averaged.model(x), 1)[0]
        got = torch.tensor([next(t["probability"] for t in image["top"] if t["class"] == c) for c in data.CLASSES])
        assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-5)
    code, out, _ = run(predict, capsys, str(pictures.png), *averaged.flags)
    assert out.splitlines()[0].startswith(f"small (run {averaged.id}, its weight average, flip TTA) on cpu: ")


def test_export_of_a_run_with_ema_and_tta_says_so(averaged, tmp_path):
    assert export.main(["--run", averaged.id, "--runs", str(averaged.runs), "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / averaged.id / "model.json").read_text())
    log = json.loads((averaged.run_dir / "run_log.json").read_text())
    assert meta["weight_average"] is True and meta["weights_sha256"] == log["results"]["weights_ema_sha256"]
    assert meta["flip_tta"] is True and "mirror image" in meta["flip_tta_how"]
    program = torch.export.load(tmp_path / averaged.id / "model.pt2").module()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program(x), averaged.model(x), atol=1e-5)


def test_activations_of_a_run_with_ema_are_the_weight_averages(averaged):
    args = visualize_activations.build_parser().parse_args(["--run", averaged.id, "--runs", str(averaged.runs)])
    name, model, described, run_dir = visualize_activations.resolve_weights(args, torch.device("cpu"))
    assert run_dir == averaged.run_dir
    log = json.loads((averaged.run_dir / "run_log.json").read_text())
    assert name == "small" and weights_digest(model) == log["results"]["weights_ema_sha256"]
    assert described == f"run {averaged.id}, its weight average"


def test_a_run_whose_weight_average_is_gone_uses_its_final_weights_and_says_so(averaged, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    shutil.copytree(averaged.run_dir, runs_dir / averaged.id)
    (runs_dir / averaged.id / "weights_ema.pt").unlink()
    args = predict.build_parser().parse_args(["x.png", "--run", averaged.id, "--runs", str(runs_dir)])
    _, model, source = trained_model(args, torch.device("cpu"))
    log = json.loads((averaged.run_dir / "run_log.json").read_text())
    assert weights_digest(model) == log["results"]["weights_sha256"] and source["ema"] is False
    err = capsys.readouterr().err
    assert err == (f"warning: run {averaged.id} evaluated its weight average, but weights_ema.pt is missing; "
                   "using weights.pt, the final weights\n")
