import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import data
from conftest import make_cifar
from errors import UserError


def test_loads_tiny_set_in_official_layout(tiny_data):
    folder = data.locate(tiny_data, allow_download=False)
    xtr, ytr, xte, yte = data.load_arrays(folder)
    assert xtr.shape == (200, 3, 32, 32) and xtr.dtype == np.uint8
    assert xte.shape == (100, 3, 32, 32) and yte.shape == (100,)
    assert set(np.unique(ytr)) == set(range(10))
    # planar RGB rows: first 1024 values of a row are the red plane
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert np.array_equal(xtr[0, 0].reshape(-1), raw["data"][0, :1024])
    fp = data.fingerprint(folder, data.load_arrays(folder))
    assert fp["official"] is False and len(fp["md5"]) == 6 and len(fp["id"]) == 16


def test_locate_accepts_the_batches_folder_itself(tiny_data):
    folder = tiny_data / data.FOLDER
    assert data.locate(folder, allow_download=False) == folder


def test_missing_data_without_network(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(data, "download", offline)
    with pytest.raises(UserError, match="download failed.*--data-dir"):
        data.locate(tmp_path / "nothing")
    with pytest.raises(UserError, match="not found"):
        data.locate(tmp_path / "nothing", allow_download=False)


def fake_fetch(monkeypatch, fail=None):
    """torchvision's download as ``data.download`` calls it: writes the archive, then unpacks
    a tiny set; with ``fail``, stops with that exception after a partial archive."""
    import torchvision.datasets.utils as tv_utils

    def fetch(url, download_root, filename, md5):
        (Path(download_root) / filename).write_bytes(b"partial")
        if fail is not None:
            raise fail
        make_cifar(download_root, n_train=20, n_test=10)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fetch)


def test_download_puts_the_unpacked_folder_in_place_and_nothing_else(tmp_path, monkeypatch):
    fake_fetch(monkeypatch)
    folder = data.locate(tmp_path / "new" / "data")
    assert folder == tmp_path / "new" / "data" / data.FOLDER
    assert [p.name for p in folder.parent.iterdir()] == [data.FOLDER]     # no archive, no staging
    assert data.load_arrays(folder)[0].shape == (20, 3, 32, 32)


@pytest.mark.parametrize("fail", [OSError("[Errno 28] No space left on device"), KeyboardInterrupt()])
def test_a_failed_download_leaves_nothing_behind(tmp_path, monkeypatch, fail):
    fake_fetch(monkeypatch, fail)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    for target in (tmp_path / "a" / "b", tmp_path / "kept"):
        with pytest.raises(UserError if isinstance(fail, OSError) else KeyboardInterrupt):
            data.locate(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]         # a/b created, then removed
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]


def test_the_download_staging_folder_is_a_write_in_flight(tmp_path, monkeypatch):
    import atomic
    seen = []

    def fetch(url, download_root, filename, md5):
        staging = Path(download_root)
        (staging / filename).write_bytes(b"partial")
        atomic.discard_in_flight()          # what a second Ctrl-C does before its immediate exit
        seen.append((staging.parent, staging.exists()))
        raise KeyboardInterrupt
    import torchvision.datasets.utils as tv_utils
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fetch)
    (tmp_path / "data").mkdir()
    with pytest.raises(KeyboardInterrupt):
        data.locate(tmp_path / "data")
    assert seen == [(tmp_path / "data", False)]
    assert list((tmp_path / "data").iterdir()) == []


def _dataset(tiny_data, device="cpu"):
    return data.DeviceCIFAR10.load(data.locate(tiny_data, False), torch.device(device))


def test_crop_pads_with_black_and_keeps_shape():
    x = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [8, 8]])                 # top-left and bottom-right corners
    out = data.random_crop_flip(x, shifts, torch.tensor([False, False]))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()
    assert (out[0, :, 4:, 4:] == 200).all()
    assert (out[1, :, -4:, :] == 0).all() and (out[1, :, :28, :28] == 200).all()


def test_flip_and_centre_crop_are_exact():
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((3, 2), 4)
    assert torch.equal(data.random_crop_flip(x, centre, torch.zeros(3, dtype=torch.bool)), x)
    assert torch.equal(data.random_crop_flip(x, centre, torch.ones(3, dtype=torch.bool)), x.flip(3))
    # shift right by one: column j of the crop is column j-1 of the image
    out = data.random_crop_flip(x, torch.tensor([[4, 3]] * 3), torch.zeros(3, dtype=torch.bool))
    assert torch.equal(out[..., 1:], x[..., :-1]) and (out[..., 0] == 0).all()


def test_augmentation_keeps_labels_varies_by_epoch_and_repeats_by_seed(tiny_data):
    ds = _dataset(tiny_data)
    g = torch.Generator().manual_seed(5)
    x1, y1 = ds.epoch_tensors(g, augment=True)
    x2, y2 = ds.epoch_tensors(g, augment=True)
    assert x1.shape == ds.x_train.shape and x1.dtype == torch.uint8
    assert not torch.equal(x1, x2)                           # new crops/flips/order each epoch
    # labels travel with their images: the un-augmented epoch is a permutation of the data
    xp, yp = ds.epoch_tensors(torch.Generator().manual_seed(5), augment=False)
    lookup = {bytes(img.numpy()): int(lbl) for img, lbl in zip(ds.x_train, ds.y_train)}
    assert all(lookup[bytes(img.numpy())] == int(lbl) for img, lbl in zip(xp, yp))
    assert torch.equal(torch.sort(yp).values, torch.sort(ds.y_train).values)
    # same seed, same epochs
    g2 = torch.Generator().manual_seed(5)
    x1b, y1b = ds.epoch_tensors(g2, augment=True)
    assert torch.equal(x1, x1b) and torch.equal(y1, y1b)
    assert torch.equal(y1, yp)                               # order drawn first, as without augmentation
    # most augmented images differ from the plain ones, but they are crops/flips of them
    assert (x1 != xp).flatten(1).any(1).float().mean() > 0.5


def test_batches_are_normalised_and_cover_the_epoch(tiny_data):
    ds = _dataset(tiny_data)
    batches = list(ds.train_batches(64, torch.Generator().manual_seed(0), augment=False))
    assert [len(y) for _, y in batches] == [64, 64, 64, 8]
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32
    raw = ds.x_train.float() / 255
    mean = torch.tensor(data.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data.STD).view(1, 3, 1, 1)
    expected = ((raw - mean) / std)
    assert torch.allclose(x.mean(), expected.mean(), atol=1e-4)
    xt = torch.cat([b[0] for b in ds.test_batches(30)])
    assert torch.allclose(xt, (ds.x_test.float() / 255 - mean) / std, atol=1e-5)


@pytest.mark.parametrize("augment", [False, True])
def test_block_normalisation_gives_the_per_batch_values(tiny_data, monkeypatch, augment):
    ds = _dataset(tiny_data)
    runs = {}
    for block in (4, 48, 2048):          # one batch per call, blocks ending mid-epoch, the default
        monkeypatch.setattr(ds, "NORMALIZE_IMAGES", block)
        runs[block] = list(ds.train_batches(4, torch.Generator().manual_seed(0), augment))
    for block in (48, 2048):
        assert len(runs[block]) == len(runs[4]) == 50
        for (x, y), (x1, y1) in zip(runs[block], runs[4]):
            assert torch.equal(x, x1) and torch.equal(y, y1)


def _write(folder, name, obj):
    with open(folder / name, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def test_truncated_batch_file(tmp_path):
    folder = make_cifar(tmp_path) / data.FOLDER
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="data_batch_3 is truncated or corrupt"):
        data.load_arrays(folder)


def test_wrong_shape_batch_file(tmp_path):
    folder = make_cifar(tmp_path) / data.FOLDER
    _write(folder, "test_batch", {"data": np.zeros((10, 1000), np.uint8), "labels": [0] * 10})
    with pytest.raises(UserError, match=r"test_batch holds images of shape \(10, 1000\)"):
        data.load_arrays(folder)


def test_missing_batch_file(tmp_path):
    folder = make_cifar(tmp_path) / data.FOLDER
    (folder / "data_batch_5").unlink()
    with pytest.raises(UserError, match="data_batch_5 is missing"):
        data.load_arrays(folder)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_crafted_pickle_cannot_run_code(tmp_path, monkeypatch):
    folder = make_cifar(tmp_path) / data.FOLDER
    _write(folder, "data_batch_2", {"data": _Evil(), "labels": []})
    called = []
    import os
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd))
    with pytest.raises(UserError, match="refusing to load (posix|os|nt).system"):
        data.load_arrays(folder)
    assert called == []
    # the real layout itself is admitted
    ok = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2], "filenames": ["a", "b"]})
    assert data.safe_unpickle(ok)["labels"] == [1, 2]


def test_dataset_identity_is_its_content(tiny_data, tmp_path, monkeypatch):
    folder = data.locate(tiny_data, allow_download=False)
    arrays = data.load_arrays(folder)
    fp = data.fingerprint(folder, arrays)
    assert fp["content_sha256"] == data.content_digest(*arrays) and fp["id"] == fp["content_sha256"][:16]
    assert fp["official"] is False and fp["official_files"] is False
    assert fp["source"].startswith("a CIFAR-10-format dataset of unknown origin (id ")
    # the same pixels and labels pickled another way (protocol, filenames): the same content
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in data.TRAIN_FILES + data.TEST_FILES:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        entry["filenames"] = ["x"] * len(entry["labels"])
        entry["data"] = entry["data"].copy()
        with open(copy / name, "wb") as f:
            pickle.dump(entry, f, protocol=4)
    again = data.fingerprint(copy, data.load_arrays(copy))
    assert again["content_sha256"] == fp["content_sha256"] and again["md5"] != fp["md5"]
    # one changed pixel is another dataset
    changed = [a.copy() for a in arrays]
    changed[0][0, 0, 0, 0] ^= 1
    assert data.content_digest(*changed) != fp["content_sha256"]
    # content equal to the official release's makes it official, and named so
    monkeypatch.setattr(data, "OFFICIAL_CONTENT", fp["content_sha256"])
    monkeypatch.setitem(data.KNOWN_CONTENT, fp["content_sha256"], "official CIFAR-10")
    official = data.fingerprint(folder, arrays)
    assert official["official"] is True and official["official_files"] is False
    assert official["source"] == "official CIFAR-10"
    assert data.describe_dataset(file_id="d32df6ea6c2fcfbc").startswith("lossy JPEG")
