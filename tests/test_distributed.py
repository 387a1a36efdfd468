"""DistributedDataParallel under torchrun: two CPU processes with Gloo on tiny data.

Each launch is a real ``torchrun --standalone --nproc_per_node 2`` (about 10 s here, most of it
starting Python and torch three times), so the file launches three: one run, a second run with
the same seed stopped by SIGTERM to rank 1, and that run resumed under torchrun.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import data
import train_small
from conftest import LOSS_LINE, ROOT, make_cifar, run
from models import build_model

# 400 images at global batch 8: 50 steps an epoch, 150 in all.  One thread per process, as
# torchrun's ranks run here (OMP_NUM_THREADS=1); two would fight the ranks for the CPUs.
ARGS = ["--device", "cpu", "--epochs", "3", "--batch-size", "8", "--augment", "--log-every", "10",
        "--threads", "1"]
# Two ranks average the gradients of their halves of each global batch; one process takes the
# gradient of the whole batch: the same terms summed in another order, so float32 rounding
# (eps 6e-8) differs a little at every step.  After these 150 steps the weights (|w| < 0.5)
# differ by 1-2 units in the last place (about 1e-8); 1e-6 leaves 50x room.  A real mistake
# moves them by far more: one process on a rank's share alone (batch 4) ends 0.1 away (checked
# below).  Rounding differences stay this small only while they flip no max-pool or ReLU
# decision; at --lr 0.01 one flip in these 150 steps grows them to 2e-4, as much as running one
# process on 1 thread instead of 2 does, so the comparison keeps the recipe's rate and length.
WEIGHT_TOL = 1e-6
LOSS_TOL = 1e-5                     # logged losses are rounded to 6 decimals


def torchrun(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", str(ROOT / "train_small.py"), *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def only_run(out):
    dirs = list(Path(out).iterdir())
    assert len(dirs) == 1 and dirs[0].is_dir()
    return dirs[0], json.loads((dirs[0] / "run_log.json").read_text())


def weights(run_dir):
    return torch.load(run_dir / "weights.pt", map_location="cpu", weights_only=True)


def max_difference(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def cifar400(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar400"), n_train=400, n_test=100)


@pytest.fixture(scope="module")
def two_ranks(cifar400, tmp_path_factory):
    """One finished two-process run: (stdout, its folder, its run log)."""
    cwd = tmp_path_factory.mktemp("ddp")
    proc = torchrun([*ARGS, "--data-dir", str(cifar400), "--out", "runs"], cwd)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return (out, *only_run(cwd / "runs"))


def test_two_ranks_write_one_run_that_matches_one_process(two_ranks, cifar400, workdir, capsys):
    out, run_dir, log = two_ranks
    assert log["status"] == "complete"
    assert log["distributed"] == {"world_size": 2, "backend": "gloo", "devices": ["cpu", "cpu"]}
    res = log["results"]
    assert res["total"] == 100 and sum(map(sum, res["confusion"])) == 100   # each image counted once
    # rank 0 alone prints: every loss line once, one final table
    assert [[int(e), int(b)] for e, b, _ in LOSS_LINE.findall(out)] == [l[:2] for l in log["loss_lines"]]
    assert out.count("Accuracy of the network") == 1
    assert all(isinstance(h["other_cpus"], float) and h["other_cpus"] >= 0 for h in log["history"])
    two = weights(run_dir)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert list(two) == list(ckpt) == list(build_model("small").state_dict())   # no "module." keys

    code, _, err = run(train_small, capsys, *ARGS, "--data-dir", str(cifar400), "--out", "one")
    assert code == 0, err
    one_dir, one_log = only_run(workdir / "one")
    assert one_log["distributed"] == {"world_size": 1, "backend": None, "devices": ["cpu"]}
    assert [l[:2] for l in one_log["loss_lines"]] == [l[:2] for l in log["loss_lines"]]
    assert max(abs(a[2] - b[2]) for a, b in zip(one_log["loss_lines"], log["loss_lines"])) <= LOSS_TOL
    assert max_difference(two, weights(one_dir)) <= WEIGHT_TOL

    # the tolerance tells a wrong split apart: one process training on a rank's share alone
    share = [a if a != "8" else "4" for a in ARGS]
    assert run(train_small, capsys, *share, "--data-dir", str(cifar400), "--out", "share")[0] == 0
    assert max_difference(two, weights(only_run(workdir / "share")[0])) > 100 * WEIGHT_TOL


def rank_pid(agent, rank):
    """The pid of ``rank`` among the workers torchrun (pid ``agent``) started."""
    children = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no rank {rank} among {children}")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds rank 1 through /proc")
def test_sigterm_to_rank_1_stops_both_and_the_resumed_run_is_identical(two_ranks, cifar400, tmp_path):
    _, _, ref = two_ranks
    proc = torchrun([*ARGS, "--data-dir", str(cifar400), "--out", "runs"], tmp_path)
    for line in proc.stdout:
        if line.startswith("[1, 10] loss"):                 # early: well before the run can end
            os.kill(rank_pid(proc.pid, 1), signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert err.count("interrupted ") == 1                    # rank 0 says it, and no project traceback
    assert not any(f"{m}.py" in err for m in ("engine", "distributed", "compute", "cli")), err
    assert (f"resume with: torchrun --standalone --nproc_per_node 2 {ROOT / 'train_small.py'} --resume runs/"
            in err)
    cut, log = only_run(tmp_path / "runs")
    assert log["status"] == "interrupted" and not (cut / "weights.pt").exists()
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] in (0, 1, 2)

    resumed = torchrun(["--device", "cpu", "--resume", cut.name, "--out", "runs",
                        "--data-dir", str(cifar400)], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    final = json.loads((cut / "run_log.json").read_text())
    assert final["status"] == "complete" and final["resumes"][0]["world_size"] == 2
    # the same seed on two ranks again: bit for bit the first run, across the stop and resume
    assert final["results"]["weights_sha256"] == ref["results"]["weights_sha256"]
    assert final["loss_lines"] == ref["loss_lines"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds rank 1 through /proc")
def test_sigkill_of_rank_1_ends_rank_0_with_one_line_and_its_resume_completes(two_ranks, cifar400, tmp_path):
    """A rank killed outright (no handler runs) breaks rank 0's next collective: rank 0 says so in
    one line with the resume command, instead of Gloo's traceback.  torchrun's own report of the
    failed rank follows; that is torchrun's."""
    _, _, ref = two_ranks
    proc = torchrun([*ARGS, "--data-dir", str(cifar400), "--out", "runs"], tmp_path)
    for line in proc.stdout:
        if line.startswith("[1, 10] loss"):
            os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    said = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(said) == 1 and said[0].startswith("error: another process of this run stopped ("), err
    assert "[rank0]" not in err and not any(f"{m}.py" in err for m in ("engine", "distributed", "cli")), err
    hint = said[0].split("resume with: ", 1)[1].split()
    assert hint[:4] == ["torchrun", "--standalone", "--nproc_per_node", "2"], said
    cut, log = only_run(tmp_path / "runs")
    assert log["status"] == "interrupted" and not (cut / "weights.pt").exists()
    resumed = torchrun(hint[5:] + ["--data-dir", str(cifar400)], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    final = json.loads((cut / "run_log.json").read_text())
    assert final["status"] == "complete"
    assert final["results"]["weights_sha256"] == ref["results"]["weights_sha256"]


@pytest.mark.parametrize("world, batch", [(2, 24), (3, 24), (4, 24)])
def test_the_ranks_shares_make_up_each_global_batch(tiny_data, world, batch):
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"))
    gens = [torch.Generator().manual_seed(3) for _ in range(world + 1)]
    for _ in range(2):                                       # the generators stay in step
        whole = list(ds.train_batches(batch, gens[0], True))
        shares = [list(ds.train_batches(batch, gens[r + 1], True, r, world)) for r in range(world)]
        assert all(len(s) == len(whole) == ds.num_batches(batch, world) for s in shares)
        for k, (x, y) in enumerate(whole):                   # 200 = 8 x 24 + 8: the last batch has 8
            xs, ys = torch.cat([s[k][0] for s in shares]), torch.cat([s[k][1] for s in shares])
            assert len(ys) == len(y) - len(y) % world        # world 3: 2 of the last 8 sit out
            assert torch.equal(xs, x[:len(xs)]) and torch.equal(ys, y[:len(ys)])


def test_other_processes_cpu_leaves_out_every_rank_of_the_run(monkeypatch):
    import distributed
    sibling = {"cpu": 5.0, "missing": 0.0}                   # what rank 1 adds to the all-reduce

    def all_reduce(t, group=None):
        t += torch.tensor([sibling["cpu"], sibling["missing"]], dtype=t.dtype)
    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    ranks = distributed.Ranks(torch.device("cpu"), rank=0, world=2, local_world=2, backend="gloo")
    since, until = (100.0, 50.0, 2.0), (110.0, 80.0, 12.0)
    # 10 s: the machine busy 30 CPU seconds, 10 of them rank 0's and 5 rank 1's: 1.5 CPUs others'
    assert ranks.other_cpus(since, until) == 1.5
    assert distributed.Ranks(torch.device("cpu")).other_cpus(since, until) == 2.0     # no torchrun: alone
    sibling["missing"] = 1.0                                 # rank 1 could not read /proc/stat
    assert ranks.other_cpus(since, until) is None
    # ranks on several machines: one machine's /proc/stat cannot tell
    assert distributed.Ranks(torch.device("cpu"), world=4, local_world=2, backend="gloo").other_cpus(
        since, until) is None


def test_the_ranks_split_the_test_set(tiny_data):
    ds = data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device("cpu"))
    whole = list(ds.test_batches(30))
    parts = [list(ds.test_batches(30, r, 3)) for r in range(3)]
    for i in (0, 1):
        assert torch.equal(torch.cat([b[i] for p in parts for b in p]), torch.cat([b[i] for b in whole]))


@pytest.mark.parametrize("rank", ["0", "1"])
def test_batch_that_does_not_split_is_one_error_from_rank_0(rank, tiny_data, workdir, capsys, monkeypatch):
    for key, value in {"RANK": rank, "WORLD_SIZE": "2", "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    code, out, err = run(train_small, capsys, "--batch-size", "7", "--data-dir", str(tiny_data),
                         "--device", "cpu")
    assert code == 2 and not (workdir / "runs").exists()
    if rank == "0":
        assert err == ("error: --batch-size 7 does not split evenly across 2 processes; under torchrun "
                       "it is the global batch: choose a multiple of 2\n")
    else:
        assert (out, err) == ("", "")


def test_help_says_the_batch_is_global_under_torchrun(capsys):
    with pytest.raises(SystemExit):
        train_small.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "under torchrun the global batch, split evenly across the processes" in text
