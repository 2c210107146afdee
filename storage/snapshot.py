"""What one training run sees: the dataset with users' labels applied, and the photos users reviewed.

Corrections change the dataset only when a model trained on them is promoted
(:func:`learn_corrections`); a rejected run leaves the dataset as it was. A run works on a
*view*: accepted corrections are merged inside a savepoint that is rolled back, so the merge rules
of :func:`storage.dataset.add_correction_item` (golden wall, near-duplicates, newest wins) decide
the view exactly as they will decide the promotion.

Reviewed photos are the evaluation data that looks like real traffic: every photo whose accepted
correction no promoted model has learned yet, and every photo whose sender confirmed the answer
(✅, a pending confirmation is enough: it can only vouch for what the model already said).
Confirmed photos also train, as much as corrections do, so a correction that moves a class
boundary is balanced by the photos users said were right on the other side of it. They are never
merged into the dataset (nobody accepted them); a promoted model marks them learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bearbot.labels import NOT_BEAR, answer_shown
from storage import dataset
from storage.dataset import DatasetEntry, Outcome, PhashIndex
from storage.images import ImageStore
from storage.models import (
    Correction,
    CorrectionStatus,
    DatasetItem,
    Image,
    ItemSource,
    ModelVersion,
    PredictionRecord,
    Split,
    utcnow,
)

# Outcomes after which the correction's label is what the view (and a promoted model) trains on.
_TRAINS = frozenset({Outcome.ADDED, Outcome.RELABELED, Outcome.MERGED, Outcome.EXISTING})


@dataclass(frozen=True)
class Reviewed:
    """A photo users labelled that no promoted model has learned: evaluation data for the gate."""

    image_id: int
    path: Path
    sha256: str
    phash: str
    label: str  # a model label, or NOT_BEAR
    item_id: int | None  # the dataset item that carries its label in the view (None: not a dataset item)
    confirmed: bool  # the label is the answer the bot gave
    correction_ids: tuple[int, ...] = ()  # pending confirmations behind it (item_id None)

    @property
    def source(self) -> ItemSource:
        """A user's label (a correction or a ✅): it trains with a correction's weight."""
        return ItemSource.CORRECTION


@dataclass(frozen=True)
class TrainingView:
    """The dataset as one run sees it."""

    train: list[DatasetEntry]
    valid: list[DatasetEntry]
    golden: list[DatasetEntry]
    reviewed: list[Reviewed]  # evaluation photos: users' labels no promoted model has learned
    presumed: list[Reviewed]  # the serving model's recent answers nobody corrected (label = its answer)
    confirmed: list[Reviewed]  # pending ✅ confirmations that train (learned or not), outside the dataset
    labels: tuple[str, ...]
    learnable: list[int]  # corrections in the view that no promoted model has learned
    outcomes: dict[str, int] = field(default_factory=dict)  # merge outcome → corrections


def corrections_waiting(session: Session) -> list[Correction]:
    """Accepted corrections no training run has seen yet (oldest first): what triggers a retrain.

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


def _unlearned(session: Session) -> list[Correction]:
    """Accepted corrections no promoted model has learned (oldest first)."""
    return list(
        session.scalars(
            select(Correction)
            .where(Correction.status == CorrectionStatus.ACCEPTED, Correction.learned_version_id.is_(None))
            .order_by(Correction.id)
        )
    )


def _merge(
    session: Session, corrections: Sequence[Correction], index: PhashIndex
) -> dict[int, tuple[Outcome, DatasetItem]]:
    """Apply ``corrections`` to the dataset (bear labels only); correction id → outcome and item."""
    results: dict[int, tuple[Outcome, DatasetItem]] = {}
    for correction in corrections:
        if correction.label == NOT_BEAR:
            continue  # a negative for the bear/not-bear decision, never an example of a bear class
        image = session.get_one(Image, correction.image_id)
        result = dataset.add_correction_item(
            session, image=image, label=correction.label, correction_id=correction.id, index=index,
            may_relabel_curated=correction.reviewed_by is not None,
        )
        results[correction.id] = (result.outcome, result.item)
    return results


def take_view(session: Session, *, images: ImageStore) -> TrainingView:
    """The run's view of the data; marks the corrections it saw, changes nothing else."""
    pending = _unlearned(session)
    with session.begin_nested() as savepoint:
        index = PhashIndex.load(session)
        merged = _merge(session, pending, index)
        items = dataset.list_items(session, images=images)
        labels = dataset.dataset_labels(session)
        reviewed, confirmed = _reviewed(session, pending, merged, index, items, images)
        savepoint.rollback()
    outcomes: dict[str, int] = {}
    for outcome, _ in merged.values():
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
    now = utcnow()
    for correction in corrections_waiting(session):
        correction.merged_at = now  # seen by a run: no longer a reason to queue another
    by_split = {split: [i for i in items if i.split is split] for split in Split}
    return TrainingView(
        train=by_split[Split.TRAIN], valid=by_split[Split.VALID], golden=by_split[Split.GOLDEN],
        reviewed=reviewed, confirmed=confirmed, presumed=_presumed(session, images=images, index=index), labels=labels,
        learnable=[cid for cid, (outcome, _) in merged.items() if outcome in _TRAINS]
        + [cid for r in confirmed if r in reviewed for cid in r.correction_ids],
        outcomes=outcomes,
    )


def _reviewed(
    session: Session,
    pending: Sequence[Correction],
    merged: dict[int, tuple[Outcome, DatasetItem]],
    index: PhashIndex,
    items: Sequence[DatasetEntry],
    images: ImageStore,
) -> tuple[list[Reviewed], list[Reviewed]]:
    """(evaluation photos, training confirmations): unlearned accepted corrections with their final
    label, and pending confirmations of photos that are not (near) dataset items."""
    label_of_item = {i.item_id: i.label for i in items}
    said = _answers(session, [c.prediction_id for c in pending if c.prediction_id is not None])
    found: dict[int, tuple[str, int | None, bool]] = {}  # image id → label, dataset item id, confirmed
    for correction in pending:
        answer = said.get(correction.prediction_id) if correction.prediction_id is not None else None
        if correction.label == NOT_BEAR:
            found[correction.image_id] = (NOT_BEAR, None, answer == NOT_BEAR)
            continue
        outcome, item = merged[correction.id]
        if outcome in _TRAINS:
            label = label_of_item[item.id]
            found[correction.image_id] = (label, item.id, answer == label)
    candidates = [c for c in _pending_confirmations(session) if c[0] not in found]
    wanted = list(found) + [image_id for image_id, *_ in candidates]
    rows = {image.id: image for image in session.scalars(select(Image).where(Image.id.in_(wanted)))}
    confirmations: dict[int, tuple[str, tuple[int, ...], bool]] = {}
    for image_id, label, ids, learned in candidates:
        # The index holds every dataset item (distance 0 for the photo itself) and its near-copies.
        if index.nearest(rows[image_id].phash, max_distance=dataset.SAME_SIDE_DISTANCE) is None:
            confirmations[image_id] = (label, ids, learned)  # nothing like it in the dataset

    def photo(image_id: int, label: str, item_id: int | None, confirmed: bool, ids: tuple[int, ...] = ()) -> Reviewed:
        image = rows[image_id]
        return Reviewed(image_id, images.path_of(image), image.sha256, image.phash, label, item_id, confirmed, ids)

    evaluation = [photo(i, *found[i]) for i in sorted(found)]
    training = [photo(i, label, None, True, ids) for i, (label, ids, _) in sorted(confirmations.items())]
    evaluation += [r for r in training if not confirmations[r.image_id][2]]
    return evaluation, training


PRESUMED_LIMIT = 2000  # the newest uncorrected answers the gate looks at


def _presumed(session: Session, *, images: ImageStore, index: PhashIndex) -> list[Reviewed]:
    """The serving model's newest answers that nobody corrected or confirmed, presumed right.

    Without them a run with corrections but no ✅ would be judged only on photos the serving model
    got wrong (every one a possible fix, none a possible break) and on the easy golden photos. An
    answer nobody objected to is what users accepted; a candidate that changes it breaks it, as far
    as the gate can tell. That is conservative: an uncorrected mistake the candidate fixes counts
    against it, never for it.
    """
    active = session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))
    if active is None:
        return []
    reviewed = select(Correction.image_id)
    rows = session.execute(
        select(PredictionRecord.image_id, PredictionRecord.label, PredictionRecord.is_bear, Image)
        .join(Image, PredictionRecord.image_id == Image.id)
        .where(PredictionRecord.model_version_id == active, PredictionRecord.image_id.not_in(reviewed))
        .order_by(PredictionRecord.id.desc())
        .limit(PRESUMED_LIMIT)
    ).all()
    out: dict[int, Reviewed] = {}
    for image_id, label, is_bear, image in rows:
        if image_id in out or index.nearest(image.phash, max_distance=dataset.SAME_SIDE_DISTANCE) is not None:
            continue  # one answer per photo; nothing that trains or is golden
        out[image_id] = Reviewed(
            image_id, images.path_of(image), image.sha256, image.phash, answer_shown(label, is_bear), None, False
        )
    return list(out.values())


def _answers(session: Session, prediction_ids: Sequence[int]) -> dict[int, str]:
    """What the bot answered in these predictions (NOT_BEAR where it saw no bear)."""
    if not prediction_ids:
        return {}
    rows = session.execute(
        select(PredictionRecord.id, PredictionRecord.label, PredictionRecord.is_bear).where(PredictionRecord.id.in_(list(prediction_ids)))
    )
    return {pid: answer_shown(label, is_bear) for pid, label, is_bear in rows}


def _pending_confirmations(session: Session) -> list[tuple[int, str, tuple[int, ...], bool]]:
    """(image id, label, correction ids, learned) of pending ✅ confirmations no user contradicts."""
    rows = session.execute(
        select(Correction.id, Correction.image_id, Correction.label, Correction.learned_version_id,
               PredictionRecord.label, PredictionRecord.is_bear)
        .join(PredictionRecord, Correction.prediction_id == PredictionRecord.id)
        .where(Correction.status == CorrectionStatus.PENDING)
    ).all()
    labels_of: dict[int, set[str]] = {}
    confirmed: dict[int, list[tuple[int, str, bool]]] = {}
    for cid, image_id, label, learned, said, is_bear in rows:
        labels_of.setdefault(image_id, set()).add(label)
        if label == answer_shown(said, is_bear) and label != NOT_BEAR:
            confirmed.setdefault(image_id, []).append((cid, label, learned is not None))
    disputed = set(
        session.scalars(select(Correction.image_id).where(Correction.status != CorrectionStatus.PENDING))
    )
    return [
        (image_id, rows_[0][1], tuple(c for c, _, _ in rows_), all(learned for _, _, learned in rows_))
        for image_id, rows_ in sorted(confirmed.items())
        if len(labels_of[image_id]) == 1 and image_id not in disputed
    ]


def learn_corrections(session: Session, *, correction_ids: Sequence[int], version_id: int) -> dict[int, str]:
    """Merge the accepted corrections a promoted model was trained on into the dataset, for good.

    Same rules, same order as the run's view; each correction (and each pending confirmation it
    trained on) records the version that learned it.
    Returns correction id → merge outcome.
    """
    rows = list(session.scalars(select(Correction).where(Correction.id.in_(list(correction_ids))).order_by(Correction.id)))
    accepted = [r for r in rows if r.status == CorrectionStatus.ACCEPTED]  # pending ✅ are marked, not merged
    merged = _merge(session, accepted, PhashIndex.load(session))
    now = utcnow()
    for row in rows:
        row.learned_version_id = version_id
        row.merged_at = row.merged_at or now
        if row.id in merged:
            row.merge_outcome = str(merged[row.id][0])[:16]
    session.flush()
    return {cid: str(outcome) for cid, (outcome, _) in merged.items()}


def split_counts(session: Session) -> dict[Split, int]:
    """Dataset items per split (0 for empty splits)."""
    counts = {split: 0 for split in Split}
    for row in dataset.dataset_counts(session):
        counts[Split(row.split)] += row.count
    return counts


def dataset_ready(session: Session) -> str | None:
    """None when a training run can start; otherwise the reason, phrased for an admin."""
    counts = split_counts(session)
    if counts[Split.GOLDEN] == 0 or counts[Split.TRAIN] + len(_unlearned(session)) < 2:
        return (
            "There is no dataset to train on yet. Build one with `bearbot dataset build` "
            "(web image search) or `bearbot dataset import DIR` (one sub-folder per label), then /retrain."
        )
    return None
