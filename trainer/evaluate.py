"""Evaluate a classifier on labelled images through the serving path; draw the book's two plots.

:func:`load_model` loads the model a command names (``bearbot eval --model``, ``bearbot predict``).

Metrics: error rate, per-class accuracy, confusion matrix (rows = true label, columns = predicted),
plus a confusion-matrix PNG and a top-losses PNG (as fastai's ``ClassificationInterpretation``),
drawn with matplotlib's object API (Agg canvas, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from bearbot.artifact import ARTIFACT_SUFFIX, read_weights, sha256_file
from bearbot.inference import (
    TorchClassifier,
    load_for_settings,
    model_from_learner_file,
)
from bearbot.prediction import Prediction
from bearbot.preprocess import read_item_image
from storage import model_versions
from storage.models import ModelVersion
from storage.store import Storage
from trainer.data import LabelledItem, decoded_batches

CONFUSION_PNG = "confusion_matrix.png"
TOP_LOSSES_PNG = "top_losses.png"


def load_model(
    storage: Storage, ref: str | None = None, *, trust_file: bool = False, optimize: bool = True
) -> TorchClassifier:
    """The model a command names, loaded as the bot loads it (sha256 checked before anything is parsed).

    ``ref``: a version id, or an artifact file — one this system published (found by its sha256), or
    with ``trust_file`` any weights file or learner pickle; None is the serving version (v1 recorded
    on a fresh install). Raises LookupError with a one-line reason.
    """
    with storage.session() as session:
        version = _version_for(session, ref, trust_file=trust_file) if ref else model_versions.serving_version(
            session, storage.settings
        )
    return load_for_settings(version, storage.settings, optimize=optimize)


def _version_for(session: Session, ref: str, *, trust_file: bool) -> ModelVersion:
    if ref.isdigit():
        version = model_versions.get_version(session, version_id=int(ref))
        if version is None:
            raise LookupError(f"no model version {ref}")
        return version
    path = Path(ref).resolve()
    if not path.is_file():
        raise LookupError(f"{ref} is neither a model version id nor a file")
    sha = sha256_file(path)
    recorded = model_versions.version_with_sha256(session, sha)
    if recorded is not None:  # the same bytes as a published version: load this copy under its id
        arch, labels, version_id = recorded.arch, list(recorded.labels), recorded.id
    elif not trust_file:
        raise LookupError(
            f"{ref} is not a model this system recorded; pass --trust-file to load it anyway "
            "(a learner pickle runs code when loaded)"
        )
    elif path.name.endswith(ARTIFACT_SUFFIX):
        facts = read_weights(path, sha)[1]
        arch, labels, version_id = facts["arch"], list(facts["labels"]), None
    else:
        model = model_from_learner_file(path, sha)
        arch, labels, version_id = model.arch, list(model.labels), None
    # Not added to any session: a version as the loader reads it, never stored.
    return ModelVersion(id=version_id, artifact_path=str(path), sha256=sha, arch=arch, labels=labels)


@dataclass(frozen=True)
class Scored:
    """One evaluated image."""

    path: Path
    label: str
    prediction: Prediction

    @property
    def loss(self) -> float:
        """Cross-entropy of the true label (large when confidently wrong)."""
        return -math.log(max(self.prediction.probabilities.get(self.label, 0.0), 1e-12))


def score_items(classifier: TorchClassifier, items: Sequence[LabelledItem], *, batch_size: int = 32) -> tuple[list[Scored], list[str]]:
    """Predict every item in batches; return the scored ones and the paths that could not be decoded."""
    scored: list[Scored] = []
    unreadable: list[str] = []
    for kept, images, bad in decoded_batches([item.path for item in items], batch_size):
        unreadable += [str(path) for path in bad]
        if images:
            preds = classifier.predict_images(images)
            scored += [Scored(Path(items[k].path), items[k].label, p) for k, p in zip(kept, preds, strict=True)]
    return scored, unreadable


def metrics_of(scored: Sequence[Scored], labels: Sequence[str]) -> dict[str, Any]:
    """Error rate, per-class accuracy and confusion matrix over ``labels`` (+ any unknown true labels)."""
    names = list(labels) + sorted({s.label for s in scored} - set(labels))
    index = {name: i for i, name in enumerate(names)}
    confusion = np.zeros((len(names), len(names)), dtype=int)
    for s in scored:
        confusion[index[s.label], index[s.prediction.label]] += 1
    n = int(confusion.sum())
    correct = int(np.trace(confusion))
    per_class = {
        name: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, name in enumerate(names)
    }
    return {
        "n": n,
        "error_rate": (n - correct) / n if n else 1.0,
        "accuracy": correct / n if n else 0.0,
        "per_class_accuracy": per_class,
        "labels": names,
        "confusion_matrix": confusion.tolist(),
        "not_bear": sum(not s.prediction.is_bear for s in scored),
        "mean_loss": float(np.mean([s.loss for s in scored])) if scored else None,
    }


def plot_confusion(metrics: dict[str, Any], path: Path) -> Path:
    """Save the confusion matrix as a PNG (counts in the cells)."""
    from matplotlib.figure import Figure

    names, cm = metrics["labels"], np.array(metrics["confusion_matrix"])
    fig = Figure(figsize=(1.2 * len(names) + 2, 1.2 * len(names) + 1.5))
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="Predicted", ylabel="Actual", title=f"Confusion matrix (error {metrics['error_rate']:.2%})")
    for (r, c), value in np.ndenumerate(cm):
        ax.text(c, r, str(value), ha="center", va="center", color="white" if value > cm.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_top_losses(scored: Sequence[Scored], path: Path, *, k: int = 9) -> Path:
    """Save the ``k`` highest-loss images titled prediction/actual/loss/probability, as fastai does."""
    from matplotlib.figure import Figure

    worst = sorted(scored, key=lambda s: s.loss, reverse=True)[:k]
    cols = 3
    rows = max(1, math.ceil(len(worst) / cols))
    fig = Figure(figsize=(cols * 3.2, rows * 3.4))
    fig.suptitle("Prediction/Actual/Loss/Probability")
    for i, s in enumerate(worst):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = read_item_image(s.path)
        img.thumbnail((256, 256))
        ax.imshow(np.asarray(img))
        p = s.prediction
        ax.set_title(f"{p.label}/{s.label} / {s.loss:.2f} / {p.confidence:.2f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def evaluate_classifier(
    classifier: TorchClassifier,
    items: Sequence[LabelledItem],
    *,
    out_dir: Path | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Metrics of ``classifier`` on ``items`` (serving preprocessing); PNGs into ``out_dir`` when given."""
    scored, unreadable = score_items(classifier, items, batch_size=batch_size)
    metrics = metrics_of(scored, classifier.labels)
    metrics["unreadable"] = unreadable
    metrics["model_version"] = classifier.version_id
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics["confusion_png"] = str(plot_confusion(metrics, out_dir / CONFUSION_PNG))
        metrics["top_losses_png"] = str(plot_top_losses(scored, out_dir / TOP_LOSSES_PNG))
    return metrics
