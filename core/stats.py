"""The admin reports (/stats, /model) in plain sentences, computed inside one DB session.

Labels are always listed in one order (the configured labels first, any others alphabetically),
so two reports can be compared line by line whatever order a model version stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.plots import run_plots
from storage import corrections, model_versions, predictions, runs, snapshot
from storage.models import (
    CorrectionStatus,
    ModelVersion,
    PredictionRecord,
    RunStatus,
    TrainingRun,
)


def ordered(labels: Iterable[str], canonical: Sequence[str] = ()) -> list[str]:
    """``labels`` in the fixed order: those in ``canonical`` first (its order), then the rest sorted."""
    present = set(labels)
    return [label for label in canonical if label in present] + sorted(present - set(canonical))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def metrics_sentence(metrics: dict[str, Any] | None) -> str:
    """What a version's recorded metrics say, as one sentence (unknown keys are left out)."""
    m = metrics or {}
    if "builtin" in m:
        return "No training: EfficientNet-Lite0 reading ImageNet's own bear classes."
    parts = []
    error = m.get("golden_error", m.get("error_rate"))
    if isinstance(error, int | float):
        n = m.get("n")
        on = f" ({round(error * n)} of {n} photos)" if isinstance(n, int) and n else ""
        parts.append(f"it errs on {error:.1%} of the golden set{on}")
    gate = m.get("gate")
    if isinstance(gate, dict) and isinstance(gate.get("fixes"), int) and isinstance(gate.get("breaks"), int):
        than = f"v{m['replaced']}" if isinstance(m.get("replaced"), int) else "the model it replaced"
        parts.append(f"against {than} it fixed {_plural(gate['fixes'], 'photo')} and broke {gate['breaks']}")
    loss = m.get("mean_loss")
    if isinstance(loss, int | float):
        parts.append(f"its mean log-loss is {loss:.3f}")
    if not parts:
        return "No metrics recorded."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def version_sentence(version: ModelVersion, canonical: Sequence[str] = ()) -> str:
    """``v3, trained (efficientnet_lite0), made 2026-12-06 04:10; labels grizzly, black, teddy.``"""
    kind = "the built-in zero-shot model" if version.artifact_path is None else "trained"
    labels = ", ".join(ordered(version.labels, canonical))
    return f"v{version.id}, {kind} ({version.arch}), made {version.created_at:%Y-%m-%d %H:%M}; labels {labels}."


def serving_plots(session: Session, version: ModelVersion | None) -> list[Path]:
    """The pictures of the run that produced ``version`` (none for the built-in model)."""
    if version is None:
        return []
    run = session.scalar(
        select(TrainingRun).where(TrainingRun.model_version_id == version.id).order_by(TrainingRun.id.desc())
    )
    return run_plots(run.metrics) if run is not None else []


def stats_text(session: Session, *, serving: ModelVersion | None, labels: Sequence[str] = ()) -> str:
    """/stats: answers, corrections, agreement per label, the model and the last run."""
    total = predictions.count_predictions(session)
    no_bear = int(session.scalar(select(func.count(PredictionRecord.id)).where(PredictionRecord.is_bear.is_(False))) or 0)
    by_status = corrections.count_by_status(session)
    waiting = len(snapshot.corrections_waiting(session))
    lines = [
        "📊 bearbot stats",
        f"I have answered {_plural(total, 'photo')}; in {no_bear} of them I saw no bear.",
        (
            f"Users sent {_plural(sum(by_status.values()), 'correction')}: {by_status[CorrectionStatus.ACCEPTED]} accepted, "
            f"{by_status[CorrectionStatus.PENDING]} waiting for review, {by_status[CorrectionStatus.REJECTED]} rejected. "
            f"Waiting for the next training run: {waiting} accepted."
        ),
    ]
    agreement = {row.label: row for row in predictions.agreement_by_class(session)}
    confirmed = sum(row.agreed for row in agreement.values())
    if confirmed:
        # Confirmations train and judge retrains as corrections do (storage/snapshot.py), so they are worth counting.
        lines.append(f"{confirmed} of them {'was a ✅ confirmation' if confirmed == 1 else 'were ✅ confirmations'} of my answer.")
    if agreement:
        lines.append("When users reviewed my answer (confirmed ✅ or corrected it), how often I was right, by my label:")
        for label in ordered(agreement, labels):
            row = agreement[label]
            reviewed = (
                f"{row.agreed} of {row.reviewed} reviewed right ({row.agreed / row.reviewed:.0%})"
                if row.reviewed else "none reviewed yet"
            )
            lines.append(f"  {label}: {reviewed}; {_plural(row.predicted, 'answer')} in all")
    lines += _serving_lines(session, serving, labels)
    last = runs.latest_run(session)
    if last is None:
        lines.append("Training runs: none yet.")
    elif last.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        lines.append(f"Training run #{last.id} is {last.status.value} (asked by {last.trigger.value}).")
    else:
        lines.append(f"Last training run: {runs.describe_run(last)}")
    return "\n".join(lines)


def _serving_lines(session: Session, serving: ModelVersion | None, labels: Sequence[str]) -> list[str]:
    lines = []
    if serving is not None:
        lines += [f"Serving model {version_sentence(serving, labels)}", f"  {metrics_sentence(serving.metrics)}"]
    active = model_versions.get_active(session)
    if active is not None and (serving is None or active.id != serving.id):
        lines.append(f"v{active.id} is active in the database but not serving yet (loading, or it failed to load).")
    return lines


def model_text(session: Session, *, serving: ModelVersion | None, labels: Sequence[str] = ()) -> str:
    """/model: the serving version, what its metrics say, and the latest other versions."""
    versions = model_versions.list_versions(session)
    lines = _serving_lines(session, serving, labels)
    if len(versions) > 1:
        lines.append("Versions (▶ serving):")
        for v in versions[-10:]:
            mark = "▶" if serving is not None and v.id == serving.id else "·"
            lines.append(f" {mark} v{v.id}, made {v.created_at:%Y-%m-%d %H:%M}. {metrics_sentence(v.metrics)}")
    active = model_versions.get_active(session)
    if active is not None and active.previous_id is not None:
        lines.append(f"/rollback goes back to v{active.previous_id}.")
    return "\n".join(lines) or "No model version yet."
