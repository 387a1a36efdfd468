"""CIFAR-10 from its on-disk pickles to normalised batches on the training device.

    >>> ds = DeviceCIFAR10.load("data", torch.device("cpu"))
    >>> for x, y in ds.train_batches(64, generator, augment=True): ...

The folder ``cifar-10-batches-py`` (the official python layout) is looked for
under the data folder; when it is missing, the official archive is fetched
with torchvision's checksummed download.  The pickles are read with a
restricted unpickler that admits only what CIFAR-10 files hold, so a crafted
batch file cannot run code.  All 60,000 images stay on the device as uint8;
shuffling, random crop (32, padding 4), horizontal flip and Cutout are batched
tensor operations there, drawn from a seeded CPU generator so that the data order
is the same on every device.  Under torchrun every rank draws the same epoch and
takes its share of each global batch (``train_batches(..., rank, world)``).  A
validation split (``val``) is held out of the training images by a permutation of
its own seed, the same on every rank and for every training seed.
"""
import hashlib
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

import atomic
from errors import UserError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and standard deviation of the official training images,
# pixel values scaled to [0, 1].
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
EVAL_BATCH = 500
# On a CPU, evaluation at batch 128 keeps each layer's output in cache: the wide LeNet's
# 10,000 test images took 2.5 s against 4.8 s at 500 (2-core EPYC).
EVAL_BATCH_BY_DEVICE = {"cpu": 128}


class _CifarUnpickler(pickle._Unpickler):
    """Unpickler that builds only numpy arrays/dtypes and plain Python containers, and no more
    than the file holds.

    Python's own unpickler (``pickle._Unpickler``), so that three ways a few bytes could build
    far more are refused before they build it: a container referenced a second time (a list
    holding itself, or lists of lists that double at every level: 2^30 rows from 30 of them),
    ``bytes(n)`` and an array of more bytes than the whole file.  A CIFAR-10 batch holds each
    container once.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
        ("__builtin__", "bytes"), ("builtins", "bytes"),  # ... and empty bytes
    }
    CONTAINERS = (list, dict, tuple, set, frozenset)
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, raw):
        super().__init__(io.BytesIO(raw), encoding="latin1")
        self.limit = len(raw)                   # bytes: no value built may hold more

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        found = super().find_class(module, name)
        if name == "bytes":
            return self._bytes
        if name == "_reconstruct":
            return lambda cls, shape, dtype: found(cls, self._small(shape), dtype)
        return found

    def _bytes(self, *args):
        if args and not isinstance(args[0], (str, bytes, bytearray)):
            raise pickle.UnpicklingError("refusing bytes() of a size")
        return bytes(*args)

    def _small(self, shape):
        count = 1
        for n in (shape if isinstance(shape, tuple) else (shape,)):
            count *= n if isinstance(n, int) and n >= 0 else self.limit + 1
        if count > self.limit:
            raise pickle.UnpicklingError(f"refusing an array of {count} elements in a file of {self.limit} bytes")
        return shape

    def _once(self, value):
        if isinstance(value, self.CONTAINERS):
            raise pickle.UnpicklingError("refusing a container referenced twice (a CIFAR-10 batch "
                                         "holds each once)")
        return value

    def load_get(self):
        self.append(self._once(self.memo[int(self.readline()[:-1])]))

    def load_binget(self):
        self.append(self._once(self.memo[self.read(1)[0]]))

    def load_long_binget(self):
        self.append(self._once(self.memo[int.from_bytes(self.read(4), "little")]))

    def load_dup(self):
        self.append(self._once(self.stack[-1]))

    dispatch[pickle.GET[0]] = load_get
    dispatch[pickle.BINGET[0]] = load_binget
    dispatch[pickle.LONG_BINGET[0]] = load_long_binget
    dispatch[pickle.DUP[0]] = load_dup


def safe_unpickle(raw):
    """Unpickle CIFAR-10 bytes (latin1, as torchvision does) admitting only numpy and builtins."""
    return _CifarUnpickler(raw).load()


def download(root):
    """Fetch and unpack the official archive into ``root``/cifar-10-batches-py (torchvision
    checks its md5).

    The archive is fetched and unpacked in a temporary folder inside ``root``, and the unpacked
    folder is renamed into place only when complete: a download that fails or is interrupted
    leaves no partial archive or folder behind (a second Ctrl-C included: the staging folder is
    a write in flight), and no folder that this call created.
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive
    root = Path(root)
    created = [p for p in (root, *root.parents) if not p.exists()]    # deepest first
    root.mkdir(parents=True, exist_ok=True)
    try:
        with atomic.staging_folder(root, ".cifar10-download-") as staging:   # the archive goes with it
            download_and_extract_archive(CIFAR10.url, str(staging), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
            os.replace(staging / FOLDER, root / FOLDER)
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def locate(data_dir, allow_download=True):
    """Return the ``cifar-10-batches-py`` folder under ``data_dir``, downloading it if allowed."""
    data_dir = Path(data_dir)
    for cand in (data_dir / FOLDER, data_dir):
        if (cand / TEST_FILES[0]).is_file() or (cand / TRAIN_FILES[0]).is_file():
            return cand
    hint = (f"put the official {FOLDER} folder under {data_dir} "
            "or pass --data-dir DIR (or set CIFAR10_DIR)")
    if not allow_download:
        raise UserError(f"CIFAR-10 not found in {data_dir}; {hint}")
    print(f"CIFAR-10 not found in {data_dir}; downloading the official archive")
    try:
        download(data_dir)
    except Exception as exc:  # network, disk or checksum: all end the same way for the user
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"CIFAR-10 not found in {data_dir} and the download failed "
                        f"({reason}); connect to the internet or {hint}") from None
    return data_dir / FOLDER


def _read_batch(path):
    """Read one batch file: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    fix = "delete it and download again, or regenerate the folder"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the CIFAR-10 folder is incomplete: {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a batch file: {fix}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}); check its permissions") from None
    try:
        entry = safe_unpickle(raw)
    except pickle.UnpicklingError as exc:
        if not str(exc).startswith("refusing"):
            raise UserError(f"{path} is truncated or corrupt (UnpicklingError: {exc}); {fix}") from None
        raise UserError(f"{path} is not a CIFAR-10 batch: its pickle asks for more ({exc}); {fix}") from None
    except Exception as exc:
        raise UserError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(entry, dict) or "data" not in entry or not ({"labels", "fine_labels"} & entry.keys()):
        raise UserError(f"{path} is not a CIFAR-10 batch (no 'data'/'labels'); {fix}")
    try:
        data = np.asarray(entry["data"])
        raw_labels = np.asarray(entry.get("labels", entry.get("fine_labels")))
    except (ValueError, TypeError):                      # ragged lists
        raise UserError(f"{path} holds ragged images or labels; {fix}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path} holds images of shape {data.shape} and type {data.dtype}, "
                        f"expected (N, 3072) uint8; {fix}")
    whole = raw_labels.dtype.kind in "iu" or (raw_labels.dtype == object and all(
        isinstance(v, int) and not isinstance(v, bool) for v in raw_labels.flat))  # beyond int64
    if raw_labels.ndim != 1 or (raw_labels.size and not whole):
        raise UserError(f"{path} has labels that are not whole numbers "
                        f"(type {raw_labels.dtype}, shape {raw_labels.shape}); {fix}")
    if raw_labels.shape != (data.shape[0],):
        raise UserError(f"{path} has {raw_labels.size} labels for {data.shape[0]} images; {fix}")
    outside = [i for i, v in enumerate(raw_labels.tolist()) if not 0 <= v <= 9]
    if outside:
        raise UserError(f"{path} has {len(outside)} labels outside 0-9, the first "
                        f"{str(raw_labels[outside[0]])[:24]} (image {outside[0]}); {fix}")
    labels = raw_labels.astype(np.int64)
    return data.reshape(-1, 3, 32, 32), labels


def load_arrays(folder):
    """Read every batch file of ``folder``: (x_train, y_train, x_test, y_test) as numpy arrays."""
    folder = Path(folder)
    parts = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        batches = [_read_batch(folder / n) for n in names]
        parts[split] = (np.concatenate([b[0] for b in batches]),
                        np.concatenate([b[1] for b in batches]))
        if not len(parts[split][1]):
            raise UserError(f"the {split} files in {folder} hold no images; "
                            "regenerate the folder or point --data-dir at a complete copy")
    return (*parts["train"], *parts["test"])


# sha256 of the decoded dataset (``content_digest``) for the copies this project knows.
OFFICIAL_CONTENT = "32e5966899bde482c0ef7d076bf69809b4b1488c806f657a814cfca4646ec493"
KNOWN_CONTENT = {
    OFFICIAL_CONTENT: "official CIFAR-10",
    "30d6a8fae029940320b23d05f794aa0c82855f2b66804ed158e4921f882802e5":
        "lossy JPEG (quality 75) re-encoding of CIFAR-10",
}
# Dataset ids of run logs written before the content digest existed (md5 of the files).
KNOWN_FILE_IDS = {"d32df6ea6c2fcfbc": KNOWN_CONTENT[
    "30d6a8fae029940320b23d05f794aa0c82855f2b66804ed158e4921f882802e5"]}


def content_digest(x_train, y_train, x_test, y_test):
    """sha256 of the decoded dataset: train images, train labels, test images, test labels, in order.

    Images as uint8 bytes in (N, 3, 32, 32) order, labels as one byte each; independent of how
    the files were pickled (their ``filenames`` or protocol), so two copies with the same
    pixels and labels in the same order share a digest.
    """
    h = hashlib.sha256()
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        h.update(np.asarray(labels).astype(np.uint8).tobytes())
    return h.hexdigest()


def describe_dataset(content=None, official=None, file_id=None):
    """What a dataset is, in words, from its fingerprint's fields (older logs lack ``content``)."""
    if content in KNOWN_CONTENT:
        return KNOWN_CONTENT[content]
    if official:
        return "official CIFAR-10"
    if file_id in KNOWN_FILE_IDS:
        return KNOWN_FILE_IDS[file_id]
    ident = (content or file_id or "unknown")[:16]
    return f"a CIFAR-10-format dataset of unknown origin (id {ident})"


def fingerprint(folder, arrays):
    """Identify a dataset by its content (``arrays`` as from ``load_arrays``) and by its files.

    ``official`` is true when the decoded content equals the official release's, or when every
    file's md5 matches torchvision's list of the official files.
    """
    from torchvision.datasets import CIFAR10
    official_md5 = dict(CIFAR10.train_list + CIFAR10.test_list)
    folder = Path(folder)
    md5 = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in TRAIN_FILES + TEST_FILES}
    files_id = hashlib.sha256("".join(f"{n}:{h}\n" for n, h in md5.items()).encode()).hexdigest()
    content = content_digest(*arrays)
    official_files = all(official_md5.get(n) == h for n, h in md5.items())
    official = content == OFFICIAL_CONTENT or official_files
    return {
        "id": content[:16],
        "official": official,
        "source": describe_dataset(content, official),
        "content_sha256": content,
        "official_files": official_files,
        "files_id": files_id[:16],
        "md5": md5,
    }


def reflect_pad(x, padding):
    """``x`` (..., H, W) padded by ``padding`` pixels on each side with its mirrored border
    (the edge row itself not repeated), as ``F.pad(mode="reflect")``, for any dtype."""
    def index(n):                                                    # e.g. n=4, p=2: 2 1 0 1 2 3 2 1
        i = torch.arange(-padding, n + padding, device=x.device).abs()
        return torch.where(i >= n, 2 * (n - 1) - i, i)
    return x[..., index(x.shape[-2]), :][..., index(x.shape[-1])]


def crop_windows(x, padding=4, reflect=False):
    """Every crop of a padded copy of ``x`` and of its mirror image, as a view.

    x: (N, C, H, W) uint8.  Returns (2, N, C, 2p+1, 2p+1, H, W): [flip, n, c, dy, dx] is
    the H x W window at offset (dy, dx) of image n, mirrored when flip is 1.  Zero
    padding equals torchvision's RandomCrop(padding=4) on raw pixels (black borders);
    ``reflect`` pads with the mirrored border instead (airbench's random translation).
    Costs two padded copies of the data; the windows themselves are not copied.
    """
    H, W = x.shape[-2:]
    padded = reflect_pad(x, padding) if reflect else torch.nn.functional.pad(x, (padding,) * 4)
    both = torch.stack([padded, padded.flip(-1)])                    # (2, N, C, H+2p, W+2p)
    return both.unfold(3, H, 1).unfold(4, W, 1)                      # (2, N, C, 2p+1, 2p+1, H, W)


def take_crops(windows, index, shifts, flips, padding=4):
    """Images ``index`` cropped at ``shifts`` (N, 2) = (dy, dx) and mirrored where ``flips``.

    One indexing pass: the order, the crop and the flip cost a single copy.  A
    mirrored crop at dx is the unmirrored crop at 2p - dx, mirrored.
    """
    dx = torch.where(flips, 2 * padding - shifts[:, 1], shifts[:, 1])
    return windows[flips.long(), index, :, shifts[:, 0], dx]         # (N, C, H, W)


def gather_crops(padded, index, shifts, flips, padding=4, chunk=1024):
    """``take_crops`` without the 7-D window view: the same pixels, indexed out of the padded
    images ``padded`` (N, C, H+2p, W+2p) ``chunk`` images at a time.

    For backends where a gather through the 7-D strided view of ``crop_windows`` (two padded
    copies, 480 MB for CIFAR-10's training images) is unproven (MPS): it holds one padded copy
    and indexes with tensors of at most (chunk, C, H, W).  A mirrored crop at dx takes
    columns dx + W - 1 - w.
    """
    C, Hp, Wp = padded.shape[1:]
    H, W = Hp - 2 * padding, Wp - 2 * padding
    device = padded.device
    h, w, c = (torch.arange(k, device=device) for k in (H, W, C))
    parts = []
    for s in range(0, len(index), chunk):
        n, (dy, dx), f = index[s:s + chunk], shifts[s:s + chunk].unbind(1), flips[s:s + chunk]
        rows = dy[:, None] + h                                              # (n, H)
        cols = dx[:, None] + torch.where(f[:, None], W - 1 - w, w)          # (n, W)
        parts.append(padded[n[:, None, None, None], c[None, :, None, None],
                            rows[:, None, :, None], cols[:, None, None, :]])  # (n, C, H, W)
    return torch.cat(parts) if parts else padded[:0, :, :H, :W]


def random_crop_flip(x, shifts, flips, padding=4):
    """Crop each image of x (B, C, H, W) uint8 at its own offset and mirror it where asked."""
    index = torch.arange(len(x), device=x.device)
    return take_crops(crop_windows(x, padding), index, shifts, flips, padding)


def cut_out(x, centres, size, fill):
    """``x`` with a ``size`` x ``size`` square of each image, centred at its ``centres``, set to ``fill``.

    x: (N, C, H, W) uint8; centres: (N, 2) int64 = (row, column), each in [0, H) x [0, W); fill:
    (C,) uint8.  The square spans rows ``cy - size // 2`` to ``cy - size // 2 + size - 1`` (the
    same for columns) and is clipped at the border, as in DeVries & Taylor's Cutout, whose
    centres may lie anywhere in the image.  Returns a new tensor.
    """
    H, W = x.shape[-2:]
    top, left = (centres - size // 2).unbind(1)                          # (N,), (N,)
    rows = torch.arange(H, device=x.device) - top[:, None]               # (N, H): row - top
    cols = torch.arange(W, device=x.device) - left[:, None]              # (N, W)
    square = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return torch.where(square[:, None], fill.view(1, -1, 1, 1), x)       # (N, C, H, W)


def alternating_flips(first, epoch):
    """Each image's flip in ``epoch`` (from 1) under alternating flips: ``first`` (bool (N,),
    drawn once at random) in odd epochs, its opposite in even ones, so every image is seen
    both ways round in every pair of epochs (airbench's scheme)."""
    return first ^ (epoch % 2 == 0)


def validation_split(n, size, seed):
    """(held out, kept): sorted int64 indices of ``n`` training images, ``size`` of them held out.

    The permutation has a CPU generator of its own, seeded with ``seed`` (``--val-seed``), apart
    from the training seed's streams: every training seed and every rank holds out the same
    images.  Both index sets are sorted, so the kept images stay in file order.
    """
    if size >= n:
        raise UserError(f"--val {size} leaves no training images: the training files hold {n}; "
                        "hold out fewer")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:size].sort().values, perm[size:].sort().values


def subset(n, size, seed):
    """Sorted int64 indices of ``size`` of ``n`` images (all ``n`` when ``size`` >= ``n``), chosen
    by a permutation of a CPU generator of its own seeded with ``seed`` (``--val-seed``): every
    training seed and every rank gets the same images, in file order."""
    if size >= n:
        return torch.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:size].sort().values


def share_positions(n, batch_size, rank, world):
    """Places in an epoch's order of ``n`` images that rank ``rank`` of ``world`` trains on.

    The order is cut into global batches of ``batch_size`` (a multiple of ``world``); each rank
    takes its contiguous ``batch_size // world`` rows of every one, so the ranks' shares of a
    batch, in rank order, are the batch a single process trains on.  The last, shorter batch
    of m images is shared as m // world rows each: its m % world last images sit the epoch out
    (none when ``world`` divides ``n``, as 2, 4, 8 and 16 divide CIFAR-10's 50,000).
    Returns int64 positions (n_rank,), in training order.
    """
    share = batch_size // world
    full = n // batch_size * batch_size
    order = torch.arange(n)
    body = order[:full].view(-1, world, share)[:, rank].reshape(-1)     # (full // world,)
    tail = (n - full) // world
    return torch.cat([body, order[full + rank * tail:full + (rank + 1) * tail]])


class DeviceCIFAR10:
    """CIFAR-10 held as uint8 tensors on one device, yielding normalised float batches."""

    NORMALIZE_IMAGES = 256                                        # 3 MB of float32 per block
    # Device types that crop by ``gather_crops`` instead of the 7-D window view (unverified there).
    GATHER_CROPS = {"mps"}

    def __init__(self, x_train, y_train, x_test, y_test, device, memory_format=torch.contiguous_format,
                 val=0, val_seed=0, subset_size=0):
        """``val``: training images held out as a validation split; ``subset_size`` (0 = all): train
        on that many of the rest and test on as many test images (at most all), for a quick run."""
        self.device = torch.device(device)
        self.memory_format = memory_format                       # of the float batches it yields
        x_val, y_val = x_train[:0], y_train[:0]
        if val:                                                  # else the arrays as they are
            held, kept = (i.numpy() for i in validation_split(len(y_train), val, val_seed))
            x_train, y_train, x_val, y_val = x_train[kept], y_train[kept], x_train[held], y_train[held]
        if subset_size:
            if subset_size > len(y_train):
                raise UserError(f"--subset {subset_size} is more than the {len(y_train)} training images; "
                                "ask for fewer")
            keep, tested = subset(len(y_train), subset_size, val_seed), subset(len(y_test), subset_size, val_seed)
            x_train, y_train = x_train[keep.numpy()], y_train[keep.numpy()]
            x_test, y_test = x_test[tested.numpy()], y_test[tested.numpy()]
        def to(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        self.x_train, self.y_train = to(x_train), to(y_train)   # (N, 3, 32, 32) uint8, (N,): 50000 - val, or subset
        self.x_val, self.y_val = to(x_val), to(y_val)           # (val, 3, 32, 32) uint8, (val,)
        self.x_test, self.y_test = to(x_test), to(y_test)       # (10000, 3, 32, 32) uint8, (10000,)
        # Cutout's fill: the mean pixel, which normalisation maps to 0 (within 0.005).
        self._fill = torch.tensor([round(255 * m) for m in MEAN], dtype=torch.uint8, device=self.device)
        mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std)                        # x_float = x_uint8 * scale + shift
        self._shift = -mean / std
        self._windows = {}  # by (padding, reflect): crop views (MPS: padded images)

    @classmethod
    def load(cls, folder, device, memory_format=torch.contiguous_format, val=0, val_seed=0):
        return cls(*load_arrays(folder), device, memory_format, val, val_seed)

    def __len__(self):
        return len(self.y_train)

    def normalize(self, x):
        """uint8 (B, 3, H, W) -> float32 normalised, in this dataset's memory format."""
        x = torch.addcmul(self._shift, x, self._scale)            # promotes to float32 in one pass
        return x.contiguous(memory_format=self.memory_format)

    def num_batches(self, batch_size, world=1):
        """Batches per epoch: global batches of ``batch_size``, ``world`` ranks sharing each."""
        full, rest = divmod(len(self), batch_size)
        return full + (rest // world > 0)

    def epoch_tensors(self, generator, augment, positions=None, cutout=0, padding=4, reflect=False,
                      flips=None):
        """One epoch's shuffled (and augmented) uint8 images and labels.

        Draws from ``generator`` (a CPU torch.Generator), in this order: the epoch's
        order; if augmenting, every image's crop offset, then its flip; with ``cutout``
        (a square's side in pixels, 0 = off), every image's Cutout centre, applied
        after the crop and flip.  So the result depends only on the generator's state,
        not on the device, and without Cutout the draws are those of before it existed.
        The crop takes a window of the image padded by ``padding`` pixels (zeros, or its
        mirrored border with ``reflect``).  ``flips`` (bool (N,), one per training image in
        file order) fixes the epoch's flips instead of drawing them (alternating flips).
        ``positions`` (int64, from ``share_positions``) keeps only those places of the
        epoch's order: one rank's share.  Every image's draws are made, kept or not, so
        the generators of all ranks stay in step.
        """
        n = len(self)
        perm = torch.randperm(n, generator=generator)
        if augment:
            shifts = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
            if flips is None:
                flips = torch.randint(0, 2, (n,), generator=generator).bool()
            else:
                flips = flips.cpu()[perm]                            # into the epoch's order
        if cutout:
            centres = torch.randint(0, self.x_train.shape[-1], (n, 2), generator=generator)
        if positions is not None:
            perm = perm[positions]
            if augment:
                shifts, flips = shifts[positions], flips[positions]
            if cutout:
                centres = centres[positions]
        perm = perm.to(self.device)
        if not augment:
            x = self.x_train[perm]
        elif self.device.type in self.GATHER_CROPS and not reflect:
            if (padding, reflect) not in self._windows:          # here: one padded copy
                self._windows = {(padding, reflect): torch.nn.functional.pad(self.x_train, (padding,) * 4)}
            x = gather_crops(self._windows[padding, reflect], perm, shifts.to(self.device),
                             flips.to(self.device), padding)
        else:
            if (padding, reflect) not in self._windows:
                self._windows = {(padding, reflect): crop_windows(self.x_train, padding, reflect)}
            x = take_crops(self._windows[padding, reflect], perm, shifts.to(self.device),
                           flips.to(self.device), padding)
        if cutout:
            x = cut_out(x, centres.to(self.device), cutout, self._fill)
        return x, self.y_train[perm]

    def train_batches(self, batch_size, generator, augment, rank=0, world=1, cutout=0, padding=4,
                      reflect=False, flips=None):
        """Yield (x, y) for one epoch: x float (B, 3, 32, 32) normalised, y int64 (B,).

        ``batch_size`` is the global batch: with ``world`` ranks, rank ``rank`` gets its
        ``batch_size // world`` rows of each (see ``share_positions``).  Normalises
        ``NORMALIZE_IMAGES`` images at a time (whole batches), so that small batches pay one
        call per block rather than one per batch; the values are the same.  ``cutout``,
        ``padding``, ``reflect`` and ``flips`` are ``epoch_tensors``'s.
        """
        share = batch_size // world
        positions = None if world == 1 else share_positions(len(self), batch_size, rank, world)
        x, y = self.epoch_tensors(generator, augment, positions, cutout, padding, reflect, flips)
        block = max(1, self.NORMALIZE_IMAGES // share) * share
        for b in range(0, len(y), block):
            xb = self.normalize(x[b:b + block])
            for s in range(0, len(xb), share):
                yield xb[s:s + share], y[b + s:b + s + share]

    def test_batches(self, batch_size=None, rank=0, world=1):
        """Yield the test set in order, or rank ``rank``'s contiguous 1/``world`` of it."""
        return self.eval_batches("test", batch_size, rank, world)

    def eval_batches(self, split="test", batch_size=None, rank=0, world=1):
        """Yield ``split`` ("test" or "val") in order, or rank ``rank``'s contiguous 1/``world`` of it;
        no augmentation.  ``batch_size`` None: the device's evaluation batch."""
        batch_size = batch_size or EVAL_BATCH_BY_DEVICE.get(self.device.type, EVAL_BATCH)
        x, y = (self.x_test, self.y_test) if split == "test" else (self.x_val, self.y_val)
        n = len(y)
        start, stop = rank * n // world, (rank + 1) * n // world
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            yield self.normalize(x[s:e]), y[s:e]
