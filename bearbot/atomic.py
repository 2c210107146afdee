"""Atomic file replacement: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(dest: Path, *, prefix: str = ".tmp-") -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` to write; on a clean exit it is flushed to disk and
    renamed over ``dest``, on an exception it is removed.

    The temp file lives in ``dest``'s folder (a rename across file systems is not atomic) and is
    named ``<prefix>*.tmp``, so a crash leaves only a temp file that clean-up recognises.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # whatever wrote it (fastai, safetensors) may not have synced
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(dest: Path, data: bytes, *, prefix: str = ".tmp-") -> None:
    """Write ``data`` to ``dest`` through :func:`atomic_path`."""
    with atomic_path(dest, prefix=prefix) as tmp:
        tmp.write_bytes(data)
