"""Atomic file writes: a temp file in the target folder, fsync, then rename.

A crash or a full disk mid-write leaves the previous file intact and no
half-written file behind.  Example: ``write_json(Path("run_log.json"), rec)``.
"""
import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)
# Temp files and staging folders of the writes in flight, so that an immediate exit can remove them first.
_IN_FLIGHT = set()


class WriteError(UserError):
    """A write that failed (a full disk, a folder that cannot be written): ``path``, ``reason`` and
    ``full`` (the disk is full) let a caller say what the failure leaves behind instead of the
    generic advice."""

    def __init__(self, path, reason, advice, full=False):
        super().__init__(f"cannot write {path} ({reason}); {advice}")
        self.path, self.reason, self.full = path, reason, full


def temp_files(folder, name):
    """The temp files that writes of ``folder/name`` left behind when their process was killed."""
    return sorted(Path(folder).glob(f".{name}.*.tmp"))


def write_with(path, writer, flag="--out"):
    """Call ``writer(fileobj)`` on a temp file beside ``path``, then rename it over ``path``.

    ``flag`` is the option that chooses where the file goes, named in the error message.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc.strerror or exc, f"choose a writable folder with {flag}",
                         full=exc.errno in (errno.ENOSPC, errno.EDQUOT)) from None
    _IN_FLIGHT.add(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise WriteError(path, exc.strerror or exc, f"free some disk space or choose another folder with {flag}",
                         full=exc.errno in (errno.ENOSPC, errno.EDQUOT)) from None
    except RuntimeError:
        # torch.save reports a failed write (a full disk) as RuntimeError from its C++ writer.
        _remove(tmp)
        if _nearly_full(path.parent):
            raise WriteError(path, "No space left on device",
                             f"free some disk space or choose another folder with {flag}", full=True) from None
        raise
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _IN_FLIGHT.discard(tmp)


def _nearly_full(folder, margin=64 << 20):
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return True


@contextmanager
def staging_folder(parent, prefix):
    """A new temporary folder inside ``parent`` for a result to be renamed into place once
    complete (a download and its unpacked files).  It is removed when the block ends, and by
    ``discard_in_flight`` before an immediate exit."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    _IN_FLIGHT.add(tmp)
    try:
        yield Path(tmp)
    finally:
        _remove(tmp)
        _IN_FLIGHT.discard(tmp)


def discard_in_flight():
    """Remove the temp files and staging folders of writes in flight (before an immediate exit)."""
    for tmp in list(_IN_FLIGHT):
        _remove(tmp)


def _remove(tmp):
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_bytes(path, data, flag="--out"):
    write_with(path, lambda f: f.write(data), flag)


def write_text(path, text, flag="--out"):
    write_bytes(path, text.encode("utf-8"), flag)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def torch_save(path, obj):
    import torch
    write_with(path, lambda f: torch.save(obj, f))


def save_figure(path, fig, flag="--out", **kwargs):
    """Save a matplotlib figure as PNG atomically."""
    write_with(path, lambda f: fig.savefig(f, format="png", **kwargs), flag)
