"""Delete what old runs leave behind: model files no kept version needs, their cached serving graphs,
stale temp files, old run folders.

Kept: the newest ``keep_model_versions`` versions, the serving one, and the versions its rollback
chain reaches within as many steps. A removed version keeps its row (history, metrics) and says
why it can no longer be loaded.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bearbot.artifact import learner_companion, resolve
from bearbot.serving_graph import compiled_dir, prune_cache
from storage import model_versions
from storage.models import TrainingRun
from storage.runs import FINISHED
from storage.store import Storage

log = logging.getLogger(__name__)

# A file this young may belong to a publish or export still in progress (its row not committed yet).
MIN_AGE_SECONDS = 3600.0


def kept_version_ids(session: Session, *, keep: int) -> set[int]:
    """The newest ``keep`` versions, the active one and ``keep`` steps of its rollback chain."""
    versions = model_versions.list_versions(session)
    kept = {v.id for v in versions[-keep:]}
    by_id = {v.id: v for v in versions}
    version = model_versions.get_active(session)
    for _ in range(keep + 1):  # the serving version, then ``keep`` rollbacks
        if version is None:
            break
        kept.add(version.id)
        version = by_id.get(version.previous_id) if version.previous_id is not None else None
    return kept


def _old(path: Path, now: float) -> bool:
    return now - path.stat().st_mtime > MIN_AGE_SECONDS


def clean_up(storage: Storage, *, now: float | None = None) -> list[Path]:
    """Remove model files, temp files and run folders nothing needs any more; return what went."""
    settings = storage.settings
    now = time.time() if now is None else now
    models_dir, removed = settings.models_dir, []
    with storage.session() as session:
        kept = kept_version_ids(session, keep=settings.keep_model_versions)
        named: set[Path] = set()
        # Serving graphs cached per artifact (bearbot/exported.py): the kept versions' and the built-in
        # v0's, the fallback of last resort.
        graphs_kept: set[str] = set()
        for version in model_versions.list_versions(session):
            if version.id in kept or version.artifact_path is None:
                graphs_kept.add(version.sha256)
            if version.artifact_path is None:
                continue
            path = resolve(version.artifact_path, models_dir)
            named.update((path, learner_companion(path)))
            if version.id not in kept and path.is_file():
                for gone in (path, learner_companion(path)):
                    if gone.is_file():
                        gone.unlink()
                        removed.append(gone)
                model_versions.record_load(
                    session, version_id=version.id,
                    error=f"model file removed (only the newest {settings.keep_model_versions} versions and the "
                    "serving one's rollback chain are kept)",
                )
        finished = set(session.scalars(select(TrainingRun.id).where(TrainingRun.status.in_(FINISHED))))
    if models_dir.is_dir():  # files no version names: failed publishes, temp files of killed exports
        for path in models_dir.iterdir():
            if path.is_file() and path not in named and _old(path, now):
                path.unlink()
                removed.append(path)
    removed += prune_cache(compiled_dir(settings.models_dir), graphs_kept, min_age_s=MIN_AGE_SECONDS, now=now)
    run_dirs = sorted(
        (d for d in settings.runs_dir.glob("run-*") if d.is_dir() and d.name[4:].isdigit()),
        key=lambda d: int(d.name[4:]),
    )
    for folder in run_dirs[: -settings.keep_model_versions]:
        if int(folder.name[4:]) in finished:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("cleaned up %d old model files and run folders", len(removed))
    return removed
