"""The cached serving graph, without torch: its cache (keyed, tagged, pruned) and ONNX Runtime's session.

A restart, and a hot swap to a model whose graph the trainer published (:func:`trainer.pipeline`),
serve from here alone: the bot process never imports torch for them (a restart on this machine:
700 → 233 MB resident, 3.96 → 1.44 s to the first answer; ``bench/bench_startup.py``). Making a
graph needs the torch model and lives in :mod:`bearbot.exported`.

The cache: ``<models_dir>/compiled/<key>.onnx`` with ``<key>.json`` beside it, where ``key`` hashes the
artifact's sha256, the model's facts (labels, size, bear classes) and the exporter's version. The JSON
records an HMAC-SHA256 of the ONNX bytes under a random key that only this installation holds
(``compiled/.key``, mode 0600): a graph is only used when its bytes carry a tag this system wrote, so a
file dropped or altered in the folder is exported again, never run.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bearbot.atomic import write_atomic

if TYPE_CHECKING:
    import torch

    from bearbot.model_def import BearNet

log = logging.getLogger(__name__)

CACHE_FORMAT = "bearbot-onnx/1"


@cache
def exporter_version() -> str:
    """The installed torch's version (its exporter made the graph), read without importing torch."""
    return importlib.metadata.version("torch")


def compiled_dir(models_dir: Path | None) -> Path | None:
    """Where serving graphs are cached: ``<models_dir>/compiled`` (None: no cache)."""
    return models_dir / "compiled" if models_dir is not None else None


def default_threads() -> int:
    """ONNX Runtime's threads: torch's setting where torch is loaded (benchmarks set it), else the CPUs
    this process may run on."""
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ServingFacts:
    """What serving needs besides the graph: the labels, the input size and normalisation."""

    arch: str
    labels: tuple[str, ...]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bear_classes: tuple[int, ...]

    @classmethod
    def of(cls, model: BearNet) -> ServingFacts:
        """The facts of a torch model."""
        return cls.create(model.arch, model.labels, model.image_size, model.mean, model.std, model.bear_classes)

    @classmethod
    def create(
        cls, arch: str, labels: Sequence[str], image_size: int, mean: Sequence[float], std: Sequence[float],
        bear_classes: Sequence[int],
    ) -> ServingFacts:
        """Normalised types, so facts read from JSON and from a model compare (and hash) equal."""
        return cls(str(arch), tuple(str(label) for label in labels), int(image_size), tuple(float(m) for m in mean),
                   tuple(float(v) for v in std), tuple(int(c) for c in bear_classes))


def cache_key(facts: ServingFacts, artifact_sha256: str) -> str:
    """What the exported graph depends on: the weights (by their artifact's hash), the model's facts and
    the exporter; any change gives a new key, so a stale file is never picked up."""
    described = {"format": CACHE_FORMAT, "artifact_sha256": artifact_sha256, "torch": exporter_version(), **asdict(facts)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class OnnxForward:
    """An ONNX Runtime session computing ``BearNet.forward_all``: :meth:`run` on NumPy arrays (serving,
    no torch), or called with torch tensors like the eager model (export checks, evaluation).

    Thread-safe (ORT sessions are); spinning is off, so idle inference threads give the two cores
    back to the event loop and the decoder instead of busy-waiting for the next batch.
    """

    def __init__(self, onnx_bytes: bytes, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and bear scores of a float32 (N, 3, H, W) batch."""
        logits, bear = self._session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return logits, bear

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch  # a caller holding tensors has torch loaded already

        logits, bear = self.run(x.detach().cpu().numpy())
        return torch.from_numpy(logits), torch.from_numpy(bear)


def _secret(cache_dir: Path, *, create: bool) -> bytes | None:
    """This installation's key for tagging cache files (made on first write, readable by its owner only)."""
    path = cache_dir / ".key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    return path.read_bytes()


def _tag(secret: bytes, key: str, data: bytes) -> str:
    return hmac.new(secret, key.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.onnx", cache_dir / f"{key}.json"


def read_cache(cache_dir: Path, key: str) -> bytes | None:
    """The cached graph's bytes if its manifest is ours, for this key, and the bytes carry our tag."""
    onnx_path, meta_path = _paths(cache_dir, key)
    try:
        secret = _secret(cache_dir, create=False)
        if secret is None or not onnx_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        data = onnx_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        log.warning("ignoring %s: not a bearbot ONNX cache manifest for this model", meta_path)
        return None
    if not hmac.compare_digest(str(meta.get("hmac_sha256", "")), _tag(secret, key, data)):
        log.warning("ignoring %s: this installation did not write it (or it was altered)", onnx_path)
        return None
    return data


def write_cache(cache_dir: Path, key: str, data: bytes, artifact_sha256: str) -> None:
    """Write graph then manifest, each atomically (a reader sees both, or no valid manifest)."""
    onnx_path, meta_path = _paths(cache_dir, key)
    secret = _secret(cache_dir, create=True)
    assert secret is not None
    meta = {"format": CACHE_FORMAT, "key": key, "artifact_sha256": artifact_sha256,
            "hmac_sha256": _tag(secret, key, data)}
    for path, payload in ((onnx_path, data), (meta_path, json.dumps(meta, indent=1).encode())):
        write_atomic(path, payload, prefix=".onnx-")  # prune_cache knows these temp names


def load_cached(
    facts: ServingFacts, *, artifact_sha256: str, cache_dir: Path, threads: int | None = None
) -> OnnxForward | None:
    """The cached graph for these facts and artifact as a ready session, or None (no torch model needed)."""
    data = read_cache(cache_dir, cache_key(facts, artifact_sha256))
    return OnnxForward(data, threads=threads) if data is not None else None


def is_cached(facts: ServingFacts, *, artifact_sha256: str, cache_dir: Path) -> bool:
    """Whether a valid graph for these facts and artifact is cached (read and checked, not loaded)."""
    return read_cache(cache_dir, cache_key(facts, artifact_sha256)) is not None


def prune_cache(cache_dir: Path, keep_sha256: Collection[str], *, min_age_s: float, now: float | None = None) -> list[Path]:
    """Remove cached graphs nothing will load again; return the files removed.

    Kept: for each artifact hash in ``keep_sha256`` its newest entry (an older one was written by another
    torch or exporter version and can never match a key again), the installation's ``.key``, and any
    file younger than ``min_age_s`` (an export may be writing it). Removed: entries of other artifacts,
    graphs without a manifest, temp files of killed writes.
    """
    if not cache_dir.is_dir():
        return []
    now = time.time() if now is None else now
    entries: dict[str, list[tuple[float, Path]]] = {}  # artifact sha256 → (mtime, manifest)
    doomed: list[Path] = []
    for meta_path in cache_dir.glob("*.json"):
        try:
            meta = json.loads(meta_path.read_text())
            sha = str(meta["artifact_sha256"]) if isinstance(meta, dict) and meta.get("format") == CACHE_FORMAT else None
        except (OSError, ValueError, KeyError):
            sha = None
        if sha is None or sha not in keep_sha256:
            doomed.append(meta_path)
        else:
            entries.setdefault(sha, []).append((meta_path.stat().st_mtime, meta_path))
    for found in entries.values():
        doomed += [path for _mtime, path in sorted(found)[:-1]]
    doomed_keys = {path.stem for path in doomed}
    manifests = {path.stem for path in cache_dir.glob("*.json")}
    for path in cache_dir.iterdir():
        if path.suffix == ".onnx" and (path.stem in doomed_keys or path.stem not in manifests):
            doomed.append(path)
        elif path.name.startswith(".onnx-") and path.suffix == ".tmp":
            doomed.append(path)
    removed = []
    for path in doomed:
        try:
            if now - path.stat().st_mtime > min_age_s:
                path.unlink()
                removed.append(path)
        except OSError:  # gone meanwhile (another cleaner) or not ours to remove: leave it
            continue
    if removed:
        log.info("removed %d cached ONNX files no kept model version needs", len(removed))
    return removed
