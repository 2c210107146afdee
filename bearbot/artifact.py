"""The model artifact contract: a file this system wrote, named by version, checked before loading.

An exported fastai learner is a pickle, so loading one runs code. We only load files whose
sha256 matches the one recorded in the database when the file was published.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastai.learner import Learner

ARTIFACT_SUFFIX = ".pkl"


class ArtifactError(RuntimeError):
    """A model artifact is missing, altered, or cannot be loaded; the message says which."""


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def versioned_name(sha256: str, *, prefix: str = "model") -> str:
    """A new, sortable, collision-free file name: ``model-20260101T120000-<sha12>.pkl``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}-{stamp}-{sha256[:12]}{ARTIFACT_SUFFIX}"


def publish(src: Path, models_dir: Path, *, prefix: str = "model") -> tuple[Path, str]:
    """Copy ``src`` into ``models_dir`` under a new versioned name, atomically; return (path, sha256).

    The bytes go to a temporary file in the same directory first, are flushed to disk, and then
    renamed, so a reader never sees a half-written artifact.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    sha = sha256_file(src)
    fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=".publish-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(tmp) != sha:
            raise ArtifactError(f"copy of {src} changed while publishing")
        final = models_dir / versioned_name(sha, prefix=prefix)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final, sha


def resolve(artifact_path: str | Path, models_dir: Path | None) -> Path:
    """An artifact path as recorded (absolute, or relative to the models directory) → a real path."""
    path = Path(artifact_path)
    if not path.is_absolute() and models_dir is not None:
        path = models_dir / path
    return path


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """Read the whole artifact once and check its sha256 on those very bytes (no check-then-reopen race)."""
    if not path.is_file():
        raise ArtifactError(f"model artifact {path} does not exist")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactError(
            f"model artifact {path} has sha256 {actual[:12]}…, expected {expected_sha256[:12]}…; refusing to load it"
        )
    return data


def load_learner_verified(path: Path, expected_sha256: str) -> Learner:
    """Verify the sha256, then unpickle the fastai learner on the CPU from the verified bytes."""
    from fastai.learner import load_learner

    data = read_verified(path, expected_sha256)
    try:
        return load_learner(io.BytesIO(data), cpu=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the caller
        raise ArtifactError(f"model artifact {path} could not be loaded: {exc}") from exc
