"""The admin reports (/stats, /model) as text, computed inside one DB session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import corrections, model_versions, predictions, runs, snapshot
from storage.models import CorrectionStatus, ModelVersion, Prediction, RunStatus


def _metric(key: str, value: Any) -> str:
    if isinstance(value, float) and 0.0 <= value <= 1.0 and any(w in key for w in ("error", "acc", "rate")):
        return f"{key} {value:.1%}"
    if isinstance(value, float):
        return f"{key} {value:.3g}"
    return f"{key} {value}"


def _shown(key: str, value: Any) -> bool:
    # Scalars only; file paths (plots) and bookkeeping ids belong in `bearbot models list`, not chat.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    return not (key.endswith(("_png", "_path", "_id")) or (isinstance(value, str) and "/" in value))


def metrics_line(metrics: dict[str, Any] | None) -> str:
    """Scalar metrics as 'golden_error 1.5 % · n 66' (nested values, paths and ids skipped)."""
    shown = [_metric(k, v) for k, v in sorted((metrics or {}).items()) if _shown(k, v)]
    return " · ".join(shown) if shown else "no metrics recorded"


def version_line(version: ModelVersion) -> str:
    kind = "built-in zero-shot" if version.artifact_path is None else "trained"
    return f"v{version.id} ({version.arch}, {kind}, labels {', '.join(version.labels)})"


def stats_text(session: Session, *, serving: ModelVersion | None) -> str:
    """/stats: predictions, corrections, per-class agreement, pending, the model and the last run."""
    total = predictions.count_predictions(session)
    no_bear = int(session.scalar(select(func.count(Prediction.id)).where(Prediction.is_bear.is_(False))) or 0)
    by_status = corrections.count_by_status(session)
    lines = [
        "📊 bearbot stats",
        f"Predictions: {total} ({no_bear} with no bear seen)",
        f"Corrections: {sum(by_status.values())} — accepted {by_status[CorrectionStatus.ACCEPTED]}, "
        f"pending {by_status[CorrectionStatus.PENDING]}, rejected {by_status[CorrectionStatus.REJECTED]}",
        f"Accepted, waiting for training: {len(snapshot.corrections_waiting(session))}",
    ]
    agreement = predictions.agreement_by_class(session)
    if agreement:
        lines.append("Agreement with users, by the label I said:")
        for row in agreement:
            rate = f"{row.rate:.0%}" if row.rate is not None else "—"
            lines.append(f"  {row.label}: {rate} ({row.agreed}/{row.reviewed} reviewed, {row.predicted} predicted)")
    active = model_versions.get_active(session)
    if serving is not None:
        lines.append(f"Serving: {version_line(serving)}")
        lines.append(f"  {metrics_line(serving.metrics)}")
    if active is not None and (serving is None or active.id != serving.id):
        lines.append(f"Active in the database: v{active.id} (not loaded yet or failed to load)")
    last = runs.latest_run(session)
    if last is None:
        lines.append("Last training run: none yet")
    elif last.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        lines.append(f"Last training run: #{last.id} {last.status.value} (trigger {last.trigger.value})")
    else:
        lines.append(f"Last training run: {runs.describe_run(last)}")
    return "\n".join(lines)


def model_text(session: Session, *, serving: ModelVersion | None) -> str:
    """/model: the serving version, its metrics and the other versions."""
    versions = model_versions.list_versions(session)
    active = model_versions.get_active(session)
    lines = []
    if serving is not None:
        lines += [f"Serving {version_line(serving)}", f"  {metrics_line(serving.metrics)}"]
    if active is not None and (serving is None or active.id != serving.id):
        lines.append(f"Active in the database: v{active.id} (not serving: loading or failed)")
    if len(versions) > 1:
        lines.append("Versions:")
        for v in versions[-10:]:
            mark = "▶" if serving is not None and v.id == serving.id else " "
            lines.append(f" {mark} v{v.id} {v.created_at:%Y-%m-%d %H:%M} · {metrics_line(v.metrics)}")
    if active is not None and active.previous_id is not None:
        lines.append(f"/rollback goes back to v{active.previous_id}.")
    return "\n".join(lines) or "No model version yet."
