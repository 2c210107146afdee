"""Queries the learning loop needs: what is waiting to be learned, and whether a dataset exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.dataset import dataset_counts
from storage.models import Correction, CorrectionStatus, DatasetItem, Split, utcnow


def corrections_waiting(session: Session) -> list[Correction]:
    """Accepted corrections no training snapshot has dealt with yet (oldest first).

    Corrections of golden images never train (the golden split is fixed), so they never wait.
    """
    golden = select(DatasetItem.image_id).where(DatasetItem.split == Split.GOLDEN)
    return list(
        session.scalars(
            select(Correction)
            .where(
                Correction.status == CorrectionStatus.ACCEPTED,
                Correction.merged_at.is_(None),
                Correction.image_id.not_in(golden),
            )
            .order_by(Correction.id)
        )
    )


def mark_merged(session: Session, *, correction: Correction, outcome: str) -> None:
    """Record that a snapshot dealt with ``correction`` (so it stops waiting)."""
    correction.merged_at = utcnow()
    correction.merge_outcome = outcome[:16]


def split_counts(session: Session) -> dict[Split, int]:
    """Dataset items per split (0 for empty splits)."""
    counts = {split: 0 for split in Split}
    for row in dataset_counts(session):
        counts[Split(row.split)] += row.count
    return counts


def dataset_ready(session: Session) -> str | None:
    """None when a training run can start; otherwise the reason, phrased for an admin."""
    counts = split_counts(session)
    if counts[Split.GOLDEN] == 0 or counts[Split.TRAIN] + len(corrections_waiting(session)) < 2:
        return (
            "There is no dataset to train on yet. Build one with `bearbot dataset build` "
            "(web image search) or `bearbot dataset import DIR` (one sub-folder per label), then /retrain."
        )
    return None
