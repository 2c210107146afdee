"""The model artifact contract: a file this system wrote, named by version, checked before loading.

The serving artifact is plain tensors (safetensors) with the model's facts as JSON in the file's
header: loading it runs no code, whoever wrote the file. Its sha256 is still recorded in the
database when it is published and checked before loading. A fastai learner export (a pickle) is
kept beside it as ``<name>.learner.pkl`` for people who want ``load_learner``; the bot never reads
it. Versions published before this format (``.pkl``) still load, after the same sha256 check.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bearbot.atomic import atomic_path

if TYPE_CHECKING:
    import torch
    from fastai.learner import Learner

ARTIFACT_SUFFIX = ".safetensors"
LEARNER_SUFFIX = ".learner.pkl"
WEIGHTS_FORMAT = "bearbot-weights/1"


class ArtifactError(RuntimeError):
    """A model artifact is missing, altered, or cannot be loaded; the message says which."""


def learner_companion(weights: Path) -> Path:
    """Where the fastai learner export of a weights artifact lives: ``x.safetensors`` → ``x.learner.pkl``."""
    return weights.with_name(weights.name.removesuffix(ARTIFACT_SUFFIX) + LEARNER_SUFFIX)


def write_weights(tensors: dict[str, torch.Tensor], facts: dict[str, Any], dest: Path) -> None:
    """Write ``tensors`` and the JSON ``facts`` to ``dest`` as one safetensors file, atomically."""
    from safetensors.torch import save_file

    # Clones: safetensors refuses tensors that share memory.
    plain = {key: value.detach().cpu().clone().contiguous() for key, value in tensors.items()}
    with atomic_path(dest, prefix=".export-") as tmp:
        save_file(plain, str(tmp), metadata={"format": WEIGHTS_FORMAT, "model": json.dumps(facts)})


def read_weights(path: Path, expected_sha256: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Verify the sha256, then read tensors and facts from the verified bytes (no code runs)."""
    from safetensors.torch import load

    data = read_verified(path, expected_sha256)
    facts = _facts(path, data)
    try:
        return load(data), facts
    except Exception as exc:
        raise ArtifactError(f"model artifact {path} is not a bearbot weights file: {exc}") from exc


def read_weights_facts(path: Path, expected_sha256: str) -> dict[str, Any]:
    """Verify the sha256, then read only the facts from the header (no tensors, no torch)."""
    return _facts(path, read_verified(path, expected_sha256))


def _facts(path: Path, data: bytes) -> dict[str, Any]:
    """The model facts in a safetensors header's metadata (a bearbot weights file's)."""
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        meta = header.get("__metadata__") or {}
        if meta.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r}")
        return json.loads(meta["model"])
    except Exception as exc:
        raise ArtifactError(f"model artifact {path} is not a bearbot weights file: {exc}") from exc


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def versioned_name(sha256: str, *, prefix: str = "model") -> str:
    """A new, sortable, collision-free file name: ``model-20260101T120000-<sha12>.safetensors``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}-{stamp}-{sha256[:12]}{ARTIFACT_SUFFIX}"


def publish(src: Path, models_dir: Path, *, prefix: str = "model") -> tuple[Path, str]:
    """Copy ``src`` into ``models_dir`` under a new versioned name, atomically; return (path, sha256).

    The bytes go to a temporary file in the same directory first, are flushed to disk, and then
    renamed, so a reader never sees a half-written artifact. The learner export beside ``src``,
    if any, is copied along under the matching name.
    """
    sha = sha256_file(src)
    suffix = ARTIFACT_SUFFIX if src.name.endswith(ARTIFACT_SUFFIX) else src.suffix
    final = models_dir / versioned_name(sha, prefix=prefix).replace(ARTIFACT_SUFFIX, suffix)
    companion = learner_companion(src)
    if suffix == ARTIFACT_SUFFIX and companion.is_file():
        _copy_atomic(companion, learner_companion(final))
    _copy_atomic(src, final, expected_sha256=sha)
    return final, sha


def _copy_atomic(src: Path, final: Path, *, expected_sha256: str | None = None) -> None:
    """Copy ``src`` to ``final`` atomically (the copy's sha256 checked first, if asked)."""
    with atomic_path(final, prefix=".publish-") as tmp:
        shutil.copyfile(src, tmp)
        if expected_sha256 is not None and sha256_file(tmp) != expected_sha256:
            raise ArtifactError(f"copy of {src} changed while publishing")


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
    """Verify the sha256, then unpickle the fastai learner on the CPU from the verified bytes
    (the format before weights files; a pickle runs code, so only ever after the hash check)."""
    from fastai.learner import load_learner

    data = read_verified(path, expected_sha256)
    try:
        return load_learner(io.BytesIO(data), cpu=True)
    except Exception as exc:
        raise ArtifactError(f"model artifact {path} could not be loaded: {exc}") from exc
