"""Shared test fixtures: tiny synthetic CIFAR-10 in the real on-disk pickle layout."""
import pickle
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(min(2, torch.get_num_threads()))


def make_cifar(root, n_train=200, n_test=100, seed=0):
    """Write ``root/cifar-10-batches-py`` like the official release, with random images.

    Each class gets a different mean colour so that a network can learn something.
    Returns ``root``.
    """
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n, label):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        base = rng.randint(0, 256, size=(n, 3072))
        tint = (labels[:, None] * 25).repeat(3072, 1)
        data = ((base // 2 + tint // 2) % 256).astype(np.uint8)
        return {"batch_label": label, "data": data, "labels": [int(v) for v in labels],
                "filenames": [f"img_{i}.png" for i in range(n)]}

    per = n_train // 5
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per, f"training batch {i} of 5"), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, "testing batch 1 of 1"), f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"],
                     "num_cases_per_batch": per, "num_vis": 3072}, f, protocol=2)
    return Path(root)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A read-only-by-convention tiny dataset shared by the whole session (200 train, 100 test)."""
    return make_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(autouse=True)
def signals_restored():
    """A run stopped in-process leaves SIGINT and SIGTERM ignored (``engine.StopFlag``, on its way
    out); put them back, or every process started later (tests/spawn.py's helper) inherits that."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a temporary folder so nothing lands in the working tree."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# One printed loss line: "[epoch, batch] loss: x.xxx".
LOSS_LINE = re.compile(r"^\[(\d+), (\d+)\] loss: (\d+\.\d{3})$", re.M)


def run(script, capsys, *args):
    """``script.main(args)`` in-process: (exit status, stdout, stderr)."""
    code = script.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
