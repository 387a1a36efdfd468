"""The one-program training step (graphs.GraphStep): on a CPU it runs without capture, so these
tests check its arithmetic against the plain step (torch.optim.SGD + OneCycleLR + WeightAverage)
and its wiring into the loop; the capture itself needs CUDA."""
import dataclasses
import json

import pytest
import torch

import engine
import graphs
import recipes
import train_large
from conftest import LOSS_LINE
from test_recipe_options import ProbeBN as Probe

STEPS = 12


def setup(cfg, seed=0, steps=STEPS):
    torch.manual_seed(seed)
    model = Probe()
    opt = torch.optim.SGD(engine.param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    sched = engine.make_schedule(cfg, opt, steps // cfg.epochs)
    ema = engine.WeightAverage(model, cfg.ema) if cfg.ema else None
    return model, opt, sched, ema


def batches(n=STEPS, batch=16):
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(batch, 3, 8, 8, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n)]


CONFIGS = {
    "onecycle, nesterov, no decay on norms, EMA, smoothing": recipes.Config(
        epochs=2, onecycle=True, max_lr=0.1, weight_decay=5e-4, nesterov=True, decay_norm_bias=False,
        ema=0.9, label_smoothing=0.1),
    "fixed rate, plain momentum": recipes.Config(epochs=2, lr=0.01, weight_decay=1e-3),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_program_computes_the_plain_step(name):
    cfg = CONFIGS[name]
    data = batches()
    plain = setup(cfg)
    prog = setup(cfg)
    step = graphs.GraphStep(prog[0], prog[1], prog[2], cfg, None, prog[3])
    assert step.capture is False                            # a CPU: no capture, the same program
    for x, y in data:
        a = engine.train_step(plain[0], plain[1], torch.amp.GradScaler("cpu", enabled=False), x, y,
                              None, cfg.label_smoothing)
        if plain[3] is not None:
            plain[3].update()
        b = step.step(x, y)
        for m in (plain, prog):
            if m[2] is not None:
                m[2].step()
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)
    for (k, v), w in zip(plain[0].state_dict().items(), prog[0].state_dict().values()):
        assert torch.allclose(v.float(), w.float(), rtol=1e-4, atol=1e-6), k
    if plain[3] is not None:
        for k, v in plain[3].model.state_dict().items():
            assert torch.allclose(v.float(), prog[3].model.state_dict()[k].float(), rtol=1e-4, atol=1e-6), k
    # the momentum buffers are the optimizer's own: a checkpoint holds them as a plain SGD's
    sa, sb = plain[1].state_dict(), prog[1].state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, st in sa["state"].items():
        assert torch.allclose(st["momentum_buffer"], sb["state"][i]["momentum_buffer"], rtol=1e-4, atol=1e-7)


def test_onecycle_is_the_recipes_schedule():
    """30% warm-up from max_lr / 25 to max_lr, cosine down to ~0; momentum 0.95 -> 0.85 -> 0.95."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    sched = graphs.onecycle(opt, 0.1, 100)
    lrs, moms = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    peak = max(range(100), key=lrs.__getitem__)
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[peak] == pytest.approx(0.1) and peak in (29, 30)
    assert lrs[-1] < 1e-5 and all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85) and moms[-1] == pytest.approx(0.95)


def test_schedule_table_is_onecycle_step_by_step():
    cfg = CONFIGS["onecycle, nesterov, no decay on norms, EMA, smoothing"]
    model, opt, sched, _ = setup(cfg)
    lrs, moms = graphs.schedule_table(cfg, opt, sched, STEPS, torch.device("cpu"))
    for k in range(STEPS):
        g = opt.param_groups[0]
        assert lrs[k].item() == pytest.approx(g["lr"], rel=1e-6) and moms[k].item() == pytest.approx(g["momentum"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[3] and lrs[-1] < lrs[0]            # warm-up, then down below the start


def test_a_program_built_after_a_resume_continues_the_schedule():
    cfg = CONFIGS["onecycle, nesterov, no decay on norms, EMA, smoothing"]
    data = batches()
    whole = setup(cfg)
    ws = graphs.GraphStep(*whole[:3], cfg, None, whole[3])
    for x, y in data:
        ws.step(x, y)
        whole[2].step()
    cut = setup(cfg)
    first = graphs.GraphStep(*cut[:3], cfg, None, cut[3])
    for x, y in data[:5]:
        first.step(x, y)
        cut[2].step()
    # a "resume": a fresh program over the same optimizer and scheduler, 5 steps in
    second = graphs.GraphStep(*cut[:3], cfg, None, cut[3])
    assert second.index.item() == 5
    for x, y in data[5:]:
        second.step(x, y)
        cut[2].step()
    for (k, v), w in zip(whole[0].state_dict().items(), cut[0].state_dict().values()):
        assert torch.equal(v, w), k


def test_a_short_batch_runs_outside_the_program_buffers():
    cfg = CONFIGS["fixed rate, plain momentum"]
    model, opt, sched, ema = setup(cfg)
    step = graphs.GraphStep(model, opt, sched, cfg, None, ema)
    (x, y), = batches(1)
    step.step(x, y)
    step.graph = object()                     # as if captured: a batch of another shape goes eagerly
    loss = step.step(x[:5], y[:5])
    assert loss.shape == () and step.x.shape[0] == 16 and step.steps == 2


@pytest.mark.parametrize("flags, why", [
    (["--compile"], "--cuda-graph: --compile takes the step instead; drop --cuda-graph"),
])
def test_graph_where_it_cannot_be_is_a_one_line_error(flags, why, tiny_data, tmp_path, capsys):
    code = train_large.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", str(tmp_path),
                             "--device", "cpu", "--cuda-graph", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {why}"
    assert not list(tmp_path.rglob("run_log.json"))


def test_eligibility_names_each_reason():
    cfg = recipes.Config()
    cpu = torch.device("cpu")
    assert graphs.eligible(cfg, cpu, None, 1) == ""
    assert "scaler" in graphs.eligible(cfg, cpu, torch.float16, 1)
    assert "DistributedDataParallel" in graphs.eligible(cfg, cpu, None, 2)
    assert "--compile" in graphs.eligible(dataclasses.replace(cfg, compile=True), cpu, None, 1)


def test_a_run_with_the_program_step_matches_the_plain_run(tiny_data, tmp_path, capsys):
    common = ["--epochs", "2", "--augment", "--onecycle", "--batch-size", "16", "--log-every", "3",
              "--nesterov", "--ema", "0.9", "--data-dir", str(tiny_data), "--device", "cpu"]
    logs, lines = [], []
    for name, extra in (("plain", []), ("graph", ["--cuda-graph"]), ("again", ["--cuda-graph"])):
        assert train_large.main([*common, *extra, "--out", str(tmp_path / name)]) == 0
        lines.append(LOSS_LINE.findall(capsys.readouterr().out))
        (path,) = (tmp_path / name).glob("*/run_log.json")
        logs.append(json.loads(path.read_text()))
    plain, graph, again = logs
    assert again["results"]["weights_sha256"] == graph["results"]["weights_sha256"]     # reproducible
    assert again["loss_lines"] == graph["loss_lines"]
    assert plain["step"]["path"] == "plain" and plain["step"]["note"] == "off by default on cpu"
    assert graph["step"]["path"] == "graph" and graph["step"]["captured"] is False
    assert graph["config"]["cuda_graph"] is True and len(lines[0]) == len(lines[1]) > 0
    for (e1, b1, l1), (e2, b2, l2) in zip(plain["loss_lines"], graph["loss_lines"]):
        assert (e1, b1) == (e2, b2) and l1 == pytest.approx(l2, abs=1e-4)
    assert graph["results"]["overall_accuracy"] == pytest.approx(plain["results"]["overall_accuracy"], abs=3)


def test_no_deterministic_is_recorded(tiny_data, tmp_path, capsys):
    try:
        assert train_large.main(["--epochs", "1", "--data-dir", str(tiny_data), "--out", str(tmp_path),
                                 "--device", "cpu", "--no-deterministic"]) == 0
        (path,) = tmp_path.glob("*/run_log.json")
        log = json.loads(path.read_text())
        assert log["config"]["deterministic"] is False
        assert log["step"]["deterministic_algorithms"] is False
    finally:
        torch.use_deterministic_algorithms(True, warn_only=True)


class FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay runs the captured program eagerly."""

    def __init__(self, step):
        self.step, self.shape = step, tuple(step.x.shape)

    def replay(self):
        self.step.replayed.append(tuple(self.step.x.shape))
        self.step._eager()


class FakeCapture(graphs.GraphStep):
    """GraphStep's capture path on a CPU: warm-up and capture without CUDA streams or graphs."""

    def __init__(self, *args):
        super().__init__(*args, capture=True)
        self.warm, self.replayed = [], []

    def _warm_up(self):
        self.warm.append(tuple(self.x.shape))
        self._eager()

    def _capture(self):
        self.graph = FakeGraph(self)


@pytest.mark.parametrize("full", [2, 3, 5])
def test_capture_is_of_a_full_batch_and_every_later_full_batch_replays(full):
    """Epochs of ``full`` full batches of 16 and a short one of 5: warm-up and capture take
    full batches only (even when an epoch has 3 or fewer), every full batch after capture
    replays, the short ones run eagerly, and describe() counts both."""
    cfg = dataclasses.replace(CONFIGS["onecycle, nesterov, no decay on norms, EMA, smoothing"], epochs=3)
    epochs = cfg.epochs
    data = [(x[:5], y[:5]) if i % (full + 1) == full else (x, y)
            for i, (x, y) in enumerate(batches((full + 1) * epochs))]
    plain, fake = setup(cfg, steps=len(data)), setup(cfg, steps=len(data))
    eager = graphs.GraphStep(*plain[:3], cfg, None, plain[3])
    step = FakeCapture(*fake[:3], cfg, None, fake[3])
    for x, y in data:
        a, b = eager.step(x, y), step.step(x, y)
        plain[2].step()
        fake[2].step()
        assert torch.equal(a, b)                          # the same program, whichever way it ran
    assert step.warm == [(16, 3, 8, 8)] * graphs.WARMUP_STEPS and step.graph.shape == (16, 3, 8, 8)
    assert step.replayed == [(16, 3, 8, 8)] * (full * epochs - graphs.WARMUP_STEPS)
    rec = step.describe()
    assert rec["captured"] is True and rec["batch"] == 16 and rec["other_shape_steps"] == epochs
    assert rec["replays"] == full * epochs - graphs.WARMUP_STEPS and "uncaptured" in rec["note"]
    assert eager.describe()["captured"] is False and "note" not in eager.describe()
    for v, w in zip(plain[0].state_dict().values(), fake[0].state_dict().values()):
        assert torch.equal(v, w)
