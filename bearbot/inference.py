"""The lean serving path: bytes → :func:`bearbot.imaging.open_image` → fastai's validation crop →
the model, without ``learn.predict``'s per-item DataLoader overhead.

Thread-safe: the model is in eval mode and every call runs under ``torch.inference_mode``, which
only reads the weights, so worker threads can share one :class:`TorchClassifier`.
No storage imports here: callers pass a model version's fields (see :func:`load_for_settings`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn

from bearbot.artifact import (
    ARTIFACT_SUFFIX,
    ArtifactError,
    load_learner_verified,
    read_weights,
    resolve,
)
from bearbot.exported import PROBE_TOLERANCE, Forward, load_or_export, matches_eager
from bearbot.imaging import DEFAULT_MAX_PIXELS
from bearbot.model_def import DEFAULT_SERVE_SIZE, BearNet, build_zero_shot
from bearbot.preprocess import to_batch
from bearbot.serving import (
    GraphClassifier,
    ServedClassifier,
    check_labels,
    load_cached_classifier,
)
from bearbot.serving_graph import ServingFacts, compiled_dir, is_cached, load_cached
from bearbot.settings import DEFAULT_BEAR_THRESHOLD, Settings

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 900.0  # a background export child taking longer is stopped (it takes ~20 s on 2 busy cores)
# Settings the export child must not see: it gets its whole job on the command line.
_WITHHELD_PREFIXES = ("TELEGRAM_", "BEARBOT_", "DISCORD_", "POSTGRES_")


@dataclass(frozen=True)
class ExportJob:
    """A model version's fields, enough for another process to rebuild it and cache its ONNX graph."""

    artifact_path: str | None
    sha256: str
    arch: str
    labels: tuple[str, ...]
    models_dir: Path

    @property
    def cache_dir(self) -> Path:
        return compiled_dir(self.models_dir)

    def command(self) -> list[str]:
        """``python -m bearbot.export_child JOB``: rebuild, export, verify, cache."""
        job = {"artifact_path": self.artifact_path, "sha256": self.sha256, "arch": self.arch,
               "labels": list(self.labels), "models_dir": str(self.models_dir), "parent": os.getpid()}
        return [sys.executable, "-m", "bearbot.export_child", json.dumps(job)]


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_WITHHELD_PREFIXES)}


def _serving_forward(model: BearNet, artifact_sha256: str | None, cache_dir: Path | None) -> tuple[Forward, str]:
    """ONNX Runtime's forward for ``model`` (cached under ``cache_dir`` by ``artifact_sha256``), else eager torch."""
    try:
        # Without an artifact hash there is no key to cache under: export, but keep nothing.
        forward, source = load_or_export(
            model, artifact_sha256=artifact_sha256 or "", cache_dir=cache_dir if artifact_sha256 else None
        )
    except Exception:  # noqa: BLE001 - any export/runtime failure: serve eagerly, same numbers, just slower
        log.warning("could not export %s to ONNX; serving the eager model", model.arch, exc_info=True)
        return model.forward_all, "torch"
    return forward, f"onnxruntime ({source})"


class TorchClassifier(ServedClassifier):
    """A :class:`bearbot.prediction.Classifier` over a :class:`BearNet` on the CPU (or a given device).

    ``optimize`` serves the model through ONNX Runtime (:mod:`bearbot.exported`): exported once per
    artifact sha256 and cached in ``cache_dir``, then several times faster per image than eager torch;
    :func:`load_classifier` turns it on, plain construction (tests, evaluation of a fresh model) leaves
    it off. If the export fails the eager model serves (same numbers, slower) and the failure is logged.
    A version whose graph is cached is served by :class:`bearbot.serving.GraphClassifier` instead, without torch.
    """

    def __init__(
        self,
        model: BearNet,
        *,
        version_id: int | None,
        bear_threshold: float = DEFAULT_BEAR_THRESHOLD,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "cpu",
        optimize: bool = False,
        artifact_sha256: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.facts = ServingFacts.of(model)
        self.runtime = "torch"  # what runs the forward pass: "torch", or "onnxruntime (cache|export)"
        self._forward: Forward = model.forward_all
        self._export: ExportJob | None = None  # set by load_classifier(defer_export=True)
        self.exported = threading.Event()  # set once no export is pending (done, failed or none asked)
        if optimize and self.device.type == "cpu":
            self._forward, self.runtime = _serving_forward(model, artifact_sha256, cache_dir)
        self.labels: tuple[str, ...] = self.facts.labels
        self.version_id = version_id
        self.bear_threshold = bear_threshold
        self.max_pixels = max_pixels
        self.exported.set()

    @property
    def export_pending(self) -> bool:
        """True while this classifier serves eagerly and its ONNX graph is still to be made."""
        return self._export is not None and not self.exported.is_set()

    def export_now(self) -> None:
        """Make the serving graph and wait for it, then serve through it: for a hot swap, while the old
        model keeps serving. A graph already cached is loaded here; otherwise the low-priority child
        process of :meth:`export_in_background` exports it, because exporting in this process holds
        the GIL and both cores: during a swap one answer took 1.1 s (``bench/bench_cycle.py``)."""
        job = self._export
        if job is not None and not is_cached(self.facts, artifact_sha256=job.sha256, cache_dir=job.cache_dir):
            self._export_in_child(job)  # on failure the eager model serves, as below
            return
        self._export = None
        if job is not None:
            self._forward, self.runtime = _serving_forward(self.model, job.sha256, job.cache_dir)
        self.exported.set()

    def export_in_background(self) -> threading.Thread | None:
        """Serve eagerly now and switch to the ONNX graph once a child process has exported it.

        For a first start: nothing else could answer meanwhile. The export runs in a process of its
        own (at low priority) because tracing temporarily swaps the module's parameters, which
        threads answering with the same module must never see; the graph it caches is then loaded
        like any other (our HMAC tag) and must reproduce this model on the probe before it serves.
        """
        job = self._export
        if job is None or self.exported.is_set():
            return None
        thread = threading.Thread(target=self._export_in_child, args=(job,), name="onnx-export", daemon=True)
        thread.start()
        return thread

    def _export_in_child(self, job: ExportJob) -> None:
        started = time.perf_counter()
        try:
            done = subprocess.run(
                job.command(), env=_child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, timeout=EXPORT_TIMEOUT_S, check=False,
            )
            forward = load_cached(self.facts, artifact_sha256=job.sha256, cache_dir=job.cache_dir)
            if done.returncode != 0 or forward is None:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
                log.warning("background ONNX export of v%s failed (exit %s); serving the eager model: %s",
                            self.version_id, done.returncode, " | ".join(tail))
                return
            diff = matches_eager(self.model, forward)
            if diff > PROBE_TOLERANCE:
                log.warning("background ONNX graph of v%s differs from the model by %.2g; serving the eager model",
                            self.version_id, diff)
                return
            self._forward, self.runtime = forward, "onnxruntime (background export)"  # one reference: calls in flight finish eagerly
            log.info("model v%s now served by ONNX Runtime (exported in the background in %.1f s)",
                     self.version_id, time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - the eager model keeps serving; only slower
            log.warning("background ONNX export of v%s failed; serving the eager model", self.version_id, exc_info=True)
        finally:
            self._export = None
            self.exported.set()

    def _scores(self, crops: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = to_batch(crops, self.facts.mean, self.facts.std)
        with torch.inference_mode():
            logits, bear = self._forward(batch.to(self.device))
            return logits.float().softmax(dim=-1).cpu(), bear.float().cpu()


def build_v0(
    labels: Sequence[str],
    *,
    arch: str = "efficientnet_lite0",
    expected_sha256: str | None = None,
    image_size: int = DEFAULT_SERVE_SIZE,
) -> BearNet:
    """The zero-shot model v0 (ImageNet rows as the label head); checks the weights' sha256 when given."""
    from bearbot.backbone import load_backbone

    backbone = load_backbone(arch)
    if expected_sha256 is not None and backbone.weights_sha256 != expected_sha256:
        raise ArtifactError(
            f"backbone weights for {arch} have sha256 {backbone.weights_sha256[:12]}…, "
            f"but this model version recorded {expected_sha256[:12]}…; refusing to serve it"
        )
    return build_zero_shot(backbone, labels, image_size=image_size)


def weights_of(model: BearNet) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What a weights artifact holds: every tensor, and the facts needed to rebuild the network."""
    facts = {
        "arch": model.arch, "labels": list(model.labels), "image_size": model.image_size,
        "mean": list(model.mean), "std": list(model.std), "bear_classes": list(model.bear_classes),
    }
    return dict(model.state_dict()), facts


def model_from_weights_file(path: Path, sha256: str) -> BearNet:
    """Verify, then rebuild a :class:`BearNet` from a weights artifact: the architecture is made
    untrained (no download) and every tensor comes from the file, checked name by name and shape by shape."""
    import timm

    tensors, facts = read_weights(path, sha256)
    try:
        net = timm.create_model(facts["arch"], pretrained=False)
        imagenet_head = net.get_classifier()
        net.reset_classifier(0)
        model = BearNet(
            net, nn.Linear(imagenet_head.in_features, len(facts["labels"])), imagenet_head,
            labels=facts["labels"], arch=facts["arch"], image_size=facts["image_size"], mean=facts["mean"],
            std=facts["std"], bear_classes=facts["bear_classes"],
        )
        model.load_state_dict(tensors, strict=True)
    except Exception as exc:
        raise ArtifactError(f"model artifact {path} does not fit its architecture: {exc}") from exc
    return model.eval()


def model_from_learner_file(path: Path, sha256: str) -> BearNet:
    """Verify then unpickle an exported learner; return its :class:`BearNet` in eval mode on the CPU."""
    learn = load_learner_verified(path, sha256)
    model = learn.model
    if not isinstance(model, BearNet):
        raise ArtifactError(f"model artifact {path} holds a {type(model).__name__}, not a BearNet")
    vocab = tuple(str(v) for v in learn.dls.vocab)
    if vocab != model.labels:
        raise ArtifactError(f"model artifact {path}: learner vocab {vocab} differs from model labels {model.labels}")
    return model.cpu().eval()


def build_model(
    *, artifact_path: str | Path | None, sha256: str, arch: str, labels: Sequence[str], models_dir: Path | None,
    version_id: int | None = None,
) -> BearNet:
    """The torch model of one model version: v0 from the packaged weights, else its verified artifact."""
    if artifact_path is None:
        model = build_v0(labels, arch=arch, expected_sha256=sha256)
    elif str(artifact_path).endswith(ARTIFACT_SUFFIX):
        model = model_from_weights_file(resolve(artifact_path, models_dir), sha256)
    else:  # a version published as a learner pickle, before weights files
        model = model_from_learner_file(resolve(artifact_path, models_dir), sha256)
    check_labels(model.labels, artifact_path=artifact_path, labels=labels, version_id=version_id)
    return model


def load_classifier(
    *,
    artifact_path: str | Path | None,
    sha256: str,
    arch: str,
    labels: Sequence[str],
    version_id: int | None,
    bear_threshold: float = DEFAULT_BEAR_THRESHOLD,
    models_dir: Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "cpu",
    optimize: bool = True,
    defer_export: bool = False,
    try_cache: bool = True,
) -> TorchClassifier | GraphClassifier:
    """Load one model version (the fields of a ``model_versions`` row) as a ready classifier.

    ``artifact_path`` None means the built-in zero-shot v0; otherwise the artifact is read, its
    sha256 checked against ``sha256`` BEFORE anything is parsed, and its labels checked against ``labels``.
    ``defer_export``: when no cached graph exists, return the eager model at once and leave the export
    to the caller (:meth:`TorchClassifier.export_now` or :meth:`TorchClassifier.export_in_background`).
    """
    fields = {"artifact_path": artifact_path, "sha256": sha256, "arch": arch, "labels": labels, "models_dir": models_dir}

    def build() -> BearNet:
        return build_model(**fields, version_id=version_id)

    cache_dir = compiled_dir(models_dir)
    if try_cache and optimize and device == "cpu" and models_dir is not None:
        # A restart: the verified artifact's facts and the cached graph are all serving needs.
        cached = load_cached_classifier(
            artifact_path=artifact_path, sha256=sha256, arch=arch, labels=labels, version_id=version_id,
            models_dir=models_dir, bear_threshold=bear_threshold, max_pixels=max_pixels, build=build,
        )
        if cached is not None:
            return cached
    defer = defer_export and optimize and device == "cpu" and models_dir is not None
    classifier = TorchClassifier(
        build(), version_id=version_id, bear_threshold=bear_threshold, max_pixels=max_pixels, device=device,
        optimize=optimize and not defer, artifact_sha256=sha256, cache_dir=cache_dir,
    )
    if defer:
        assert models_dir is not None
        classifier._export = ExportJob(
            None if artifact_path is None else str(artifact_path), sha256, arch, tuple(labels), models_dir
        )
        classifier.exported.clear()
    return classifier


class VersionFields(Protocol):
    """What :func:`load_for_settings` reads from a model version (a ``storage.models.ModelVersion`` fits)."""

    id: int
    artifact_path: str | None
    sha256: str
    arch: str
    labels: list[str]


def load_for_settings(
    version: VersionFields, settings: Settings, *, optimize: bool = True, defer_export: bool = False,
    try_cache: bool = True,
) -> TorchClassifier | GraphClassifier:
    """:func:`load_classifier` for a model-version row (its fields read inside the DB session) with the
    serving settings (models dir, bear threshold, pixel limit). The bot loads through
    :func:`bearbot.serving.load_for_settings`, which tries the cache without importing this module."""
    return load_classifier(
        artifact_path=version.artifact_path, sha256=version.sha256, arch=version.arch, labels=version.labels,
        version_id=version.id, bear_threshold=settings.bear_threshold, models_dir=settings.models_dir,
        max_pixels=settings.max_image_pixels, optimize=optimize, defer_export=defer_export, try_cache=try_cache,
    )
