"""Serving a cached graph without torch: the bot's classifier on a restart, and after a hot swap to a
model whose graph the trainer published with it.

:func:`load_for_settings` is the bot's loader: it verifies the version's artifact (its sha256, then
the facts in its header), finds the graph in the cache and returns a :class:`GraphClassifier`. Only
when no valid graph is cached (a first start, an artifact published by an older version) does it
fall back to :mod:`bearbot.inference`, which builds the torch model and exports the graph.
Why: importing torch is most of the serving process's memory (``bench/bench_startup.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bearbot.artifact import ARTIFACT_SUFFIX, ArtifactError, read_weights_facts, resolve
from bearbot.backbone import (
    IMAGENET_BEAR_CLASSES,
    OFFLINE_ARCH,
    OFFLINE_MEAN,
    OFFLINE_STD,
    weights_sha256,
)
from bearbot.imaging import DEFAULT_MAX_PIXELS, open_image
from bearbot.prediction import ArrayLike, Prediction, predictions_from
from bearbot.preprocess import center_crop_resize, to_array
from bearbot.serving_graph import OnnxForward, ServingFacts, compiled_dir, load_cached
from bearbot.settings import DEFAULT_BEAR_THRESHOLD, DEFAULT_SERVE_SIZE, Settings

if TYPE_CHECKING:
    from bearbot.inference import VersionFields
    from bearbot.model_def import BearNet


class ServedClassifier:
    """What the bot calls on any classifier: encoded bytes or decoded images in, timed answers out.
    Subclasses say how a batch of crops becomes label probabilities and bear scores (:meth:`_scores`)."""

    facts: ServingFacts
    labels: tuple[str, ...]
    version_id: int | None
    bear_threshold: float
    max_pixels: int

    @property
    def image_size(self) -> int:
        """The model's input side: decode uploads with ``min_side=image_size`` (JPEG draft) for it."""
        return self.facts.image_size

    def predict(self, data: bytes) -> Prediction:
        """Classify encoded image bytes; raises ``ImageError`` for bad input."""
        start = time.perf_counter()
        img = open_image(data, max_pixels=self.max_pixels, min_side=self.image_size)
        (pred,) = self._predict_images([img], start)
        return pred

    def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """Classify already-decoded RGB images in one batch."""
        return self._predict_images(images, time.perf_counter())

    def _predict_images(self, images: Sequence[Image.Image], start: float) -> list[Prediction]:
        crops = [center_crop_resize(img, self.facts.image_size) for img in images]
        probs, bear = self._scores(crops)
        latency_ms = (time.perf_counter() - start) * 1000.0 / max(len(images), 1)
        return predictions_from(
            probs, bear, self.labels, threshold=self.bear_threshold, version_id=self.version_id, latency_ms=latency_ms
        )

    def _scores(self, crops: Sequence[Image.Image]) -> tuple[ArrayLike, ArrayLike]:
        """Label probabilities (N, labels) and bear scores (N,) of served-size crops."""
        raise NotImplementedError

    def warm_up(self, passes: int = 3) -> None:
        """Run a blank image so the first user request does not pay for lazy initialisation
        (the runtime allocates its buffers and picks kernels on its first calls)."""
        blank = Image.new("RGB", (self.image_size, self.image_size), (127, 127, 127))
        for _ in range(passes):
            self.predict_images([blank])


class GraphClassifier(ServedClassifier):
    """A :class:`bearbot.prediction.Classifier` over a cached ONNX graph: NumPy in, NumPy out, no torch.

    Thread-safe (ONNX Runtime sessions are). ``model`` builds the torch model on demand, for the
    trainer's gate, which compares its answers with a candidate's; the bot never asks for it.
    """

    runtime = "onnxruntime (cache)"
    device = "cpu"
    export_pending = False  # nothing to export: the graph is here

    def __init__(
        self, forward: OnnxForward, facts: ServingFacts, build: Callable[[], BearNet], *, version_id: int | None,
        bear_threshold: float = DEFAULT_BEAR_THRESHOLD, max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self._forward, self.facts, self._build = forward, facts, build
        self._model: BearNet | None = None
        self._build_lock = threading.Lock()
        self.labels = facts.labels
        self.version_id, self.bear_threshold, self.max_pixels = version_id, bear_threshold, max_pixels
        self.exported = threading.Event()  # as TorchClassifier's: no export is pending
        self.exported.set()

    @property
    def model(self) -> BearNet:
        """The torch model, built (and torch imported) on first use."""
        with self._build_lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _scores(self, crops: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        logits, bear = self._forward.run(to_array(crops, self.facts.mean, self.facts.std))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True), bear

    def export_now(self) -> None:
        """Nothing to do: the graph is already serving (the hot-swap path asks every classifier)."""

    def export_in_background(self) -> None:
        """Nothing to do (a first start asks every classifier)."""


def facts_without_model(
    artifact_path: str | Path | None, *, sha256: str, arch: str, labels: Sequence[str], models_dir: Path | None
) -> ServingFacts | None:
    """A version's serving facts, its artifact verified, without building the network (None: not known
    without it, e.g. a learner pickle or a downloaded architecture's normalisation)."""
    if artifact_path is None:
        if arch != OFFLINE_ARCH:
            return None
        if weights_sha256() != sha256:
            from bearbot.inference import build_v0

            build_v0(labels, arch=arch, expected_sha256=sha256)  # raises the one message for this
        return ServingFacts.create(arch, labels, DEFAULT_SERVE_SIZE, OFFLINE_MEAN, OFFLINE_STD, IMAGENET_BEAR_CLASSES)
    if not str(artifact_path).endswith(ARTIFACT_SUFFIX):
        return None
    facts = read_weights_facts(resolve(artifact_path, models_dir), sha256)
    try:
        return ServingFacts.create(
            facts["arch"], facts["labels"], facts["image_size"], facts["mean"], facts["std"], facts["bear_classes"]
        )
    except (KeyError, TypeError, ValueError):  # the full load says what is wrong with the file
        return None


def check_labels(found: Sequence[str], *, artifact_path: str | Path | None, labels: Sequence[str], version_id: int | None) -> None:
    """The artifact's labels must be the ones its version row recorded."""
    if artifact_path is not None and tuple(labels) != tuple(found):
        raise ArtifactError(f"model version {version_id}: recorded labels {tuple(labels)} differ from the artifact's {tuple(found)}")


def load_cached_classifier(
    *, artifact_path: str | Path | None, sha256: str, arch: str, labels: Sequence[str], version_id: int | None,
    models_dir: Path, bear_threshold: float = DEFAULT_BEAR_THRESHOLD, max_pixels: int = DEFAULT_MAX_PIXELS,
    build: Callable[[], BearNet] | None = None,
) -> GraphClassifier | None:
    """The version served from its cached graph (artifact verified first), or None when none is cached."""
    facts = facts_without_model(artifact_path, sha256=sha256, arch=arch, labels=labels, models_dir=models_dir)
    if facts is None:
        return None
    check_labels(facts.labels, artifact_path=artifact_path, labels=labels, version_id=version_id)
    forward = load_cached(facts, artifact_sha256=sha256, cache_dir=compiled_dir(models_dir))
    if forward is None:
        return None

    def build_torch_model() -> BearNet:
        from bearbot.inference import build_model

        return build_model(artifact_path=artifact_path, sha256=sha256, arch=arch, labels=labels,
                           models_dir=models_dir, version_id=version_id)

    return GraphClassifier(forward, facts, build or build_torch_model, version_id=version_id,
                           bear_threshold=bear_threshold, max_pixels=max_pixels)


def load_for_settings(version: VersionFields, settings: Settings, *, defer_export: bool = False) -> Any:
    """The bot's loader for a model-version row: its cached graph without torch, else
    :func:`bearbot.inference.load_for_settings` (the torch model, the graph exported)."""
    cached = load_cached_classifier(
        artifact_path=version.artifact_path, sha256=version.sha256, arch=version.arch, labels=version.labels,
        version_id=version.id, models_dir=settings.models_dir, bear_threshold=settings.bear_threshold,
        max_pixels=settings.max_image_pixels,
    )
    if cached is not None:
        return cached
    from bearbot.inference import load_for_settings as load_with_torch

    return load_with_torch(version, settings, defer_export=defer_export, try_cache=False)
