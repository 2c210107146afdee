"""The serving contract: what a classifier returns and the interface the bot calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL import Image


class ArrayLike(Protocol):
    """A NumPy array or a torch tensor: rows of numbers."""

    def tolist(self) -> list: ...


@dataclass(frozen=True)
class Prediction:
    """One answer for one image."""

    label: str  # the most likely label of the model's label set
    confidence: float  # probability of ``label``, 0..1
    probabilities: dict[str, float]  # every label → probability (sums to 1)
    is_bear: bool  # False: "I don't see a bear" (decided from the backbone's ImageNet view)
    model_version: int | None  # model_versions.id that produced it
    latency_ms: float = 0.0
    bear_score: float = field(default=1.0)  # ImageNet bear-class probability mass behind ``is_bear``


class Classifier(Protocol):
    """Thread-safe image classifier; ``predict`` is called from worker threads."""

    labels: tuple[str, ...]
    version_id: int | None

    def predict(self, data: bytes) -> Prediction:
        """Classify encoded image bytes; raises ``bearbot.imaging.ImageError`` for bad input."""
        ...

    def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """Classify already-decoded RGB images (the bot decodes each upload once, then stores it too)."""
        ...


def predictions_from(
    probs: ArrayLike,
    bear_scores: ArrayLike,
    labels: Sequence[str],
    *,
    threshold: float,
    version_id: int | None,
    latency_ms: float = 0.0,
) -> list[Prediction]:
    """One :class:`Prediction` per row of label probabilities and bear scores (serving and the gate alike;
    NumPy arrays or torch tensors)."""
    out = []
    for row, score in zip(probs.tolist(), bear_scores.tolist(), strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            Prediction(
                label=labels[best],
                confidence=row[best],
                probabilities=dict(zip(labels, row, strict=True)),
                is_bear=score >= threshold,
                model_version=version_id,
                latency_ms=latency_ms,
                bear_score=score,
            )
        )
    return out
