"""Export a trained learner to a file: fastai's ``learn.export`` into a temp name, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bearbot.artifact import sha256_file

if TYPE_CHECKING:
    from fastai.learner import Learner


def export_learner(learn: Learner, dest: Path) -> tuple[Path, str]:
    """Write ``learn`` (weights, transforms, vocab; no data) to ``dest`` atomically; return (path, sha256).

    Only fastai / bearbot objects may be inside (no trainer callbacks), so the bot can unpickle it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".export-", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        learn.export(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest, sha256_file(dest)
