"""The labelled dataset: which images train, validate or judge a model, and with which label.

Splits are decided once, when an item is added, and then kept:

* search and import images go to a split chosen from their sha256 (a hash bucket), so the
  same bytes land in the same split on every import, in any database;
* the golden split is never trained on; nothing that looks like a golden image (perceptual
  hash within :data:`SAME_SIDE_DISTANCE`) may enter train or valid, and vice versa;
* accepted user corrections always train.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bearbot.imaging import hash_distance, hash_fraction
from storage.images import ImageStore
from storage.models import DatasetItem, Image, ItemSource, Split

# Thresholds on the Hamming distance between two 64-bit difference hashes (bearbot.imaging).
# Measured on ../shared/data/bears, all 332 photos (its manifest's dhash is the bitwise
# complement of imagehash's, so the distances are the same):
#   * distinct photos (54,946 pairs): closest pair 8 bits apart, 9 pairs ≤ 9, 13 pairs ≤ 10;
#   * the same photo re-encoded at JPEG q40, halved, or thumbnailed to 128 px: ≤ 2 bits;
#     brightened 15 %: ≤ 4; cropped 2.5 % per side: 83 % of them ≤ 6, 99 % ≤ 10;
#     cropped 5 % per side: 19 % ≤ 6, 66 % ≤ 10.
# NEAR_DUPLICATE_DISTANCE drops data, so it must never fire on distinct photos: 6 keeps a
# 2-bit margin below the closest distinct pair and still catches every re-encode and resize.
NEAR_DUPLICATE_DISTANCE = 6
# SAME_SIDE_DISTANCE guards the golden wall, where a miss leaks evaluation data into training
# but a false hit only moves a photo to its neighbour's split (or refuses one correction):
# 10 catches nearly all light crops while matching a distinct photo once in ~4,000 pairs.
SAME_SIDE_DISTANCE = 10
# Golden gets settings.golden_fraction of the hash buckets, valid the next VALID_FRACTION.
VALID_FRACTION = 0.1


class Outcome(enum.StrEnum):
    ADDED = "added"  # a new item
    EXISTING = "existing"  # the same bytes are already an item (kept as they were)
    NEAR_DUPLICATE = "near_duplicate"  # a near-identical photo is already an item (nothing added)
    RELABELED = "relabeled"  # a correction changed an existing item of the same image
    MERGED = "merged"  # a correction relabelled the existing near-duplicate item instead
    REFUSED_GOLDEN = "refused_golden"  # a correction of (a near-copy of) a golden image: not trained on
    SUPERSEDED = "superseded"  # a newer correction (higher id) already set this item's label: unchanged
    KEPT_CURATED = "kept_curated"  # a non-admin correction of an imported/searched photo: the curated label stays


@dataclass(frozen=True)
class AddResult:
    """What adding an image did; ``item`` is the new, changed or already-present item."""

    outcome: Outcome
    item: DatasetItem


@dataclass(frozen=True)
class Neighbour:
    item_id: int
    split: Split
    distance: int


@dataclass
class PhashIndex:
    """Perceptual hashes of all dataset items, for near-duplicate look-ups in memory.

    Hamming distance has no portable SQL form, and a linear scan over ints is ~1 ms per
    10,000 items, so bulk jobs load this once and keep it current with :meth:`add`.
    """

    entries: list[tuple[int, int, Split]] = field(default_factory=list)  # (hash, item id, split)

    @classmethod
    def load(cls, session: Session) -> PhashIndex:
        rows = session.execute(select(Image.phash, DatasetItem.id, DatasetItem.split).join(DatasetItem.image))
        return cls([(int(phash, 16), item_id, split) for phash, item_id, split in rows])

    def add(self, *, phash: str, item_id: int, split: Split) -> None:
        self.entries.append((int(phash, 16), item_id, split))

    def move(self, *, item_id: int, split: Split) -> None:
        """Record that an item changed split."""
        self.entries = [(value, i, split if i == item_id else old) for value, i, old in self.entries]

    def nearest(self, phash: str, *, max_distance: int, splits: frozenset[Split] | None = None) -> Neighbour | None:
        """The closest item within ``max_distance`` bits (optionally only in ``splits``)."""
        target = int(phash, 16)
        best: Neighbour | None = None
        for value, item_id, split in self.entries:
            if splits is not None and split not in splits:
                continue
            distance = hash_distance(value, target)
            if distance <= max_distance and (best is None or distance < best.distance):
                best = Neighbour(item_id, split, distance)
        return best


def assign_split(sha256: str, *, golden_fraction: float, valid_fraction: float = VALID_FRACTION) -> Split:
    """The split for new search/import bytes: a fixed bucket of their sha256."""
    bucket = hash_fraction(sha256)
    if bucket < golden_fraction:
        return Split.GOLDEN
    if bucket < golden_fraction + valid_fraction:
        return Split.VALID
    return Split.TRAIN


def item_for_image(session: Session, *, image_id: int) -> DatasetItem | None:
    return session.scalar(select(DatasetItem).where(DatasetItem.image_id == image_id))


def find_duplicate(session: Session, *, sha256: str, phash: str, index: PhashIndex) -> AddResult | None:
    """The item these bytes duplicate exactly or nearly, as an :class:`AddResult`; None if new."""
    same = session.scalar(select(DatasetItem).join(DatasetItem.image).where(Image.sha256 == sha256))
    if same is not None:
        return AddResult(Outcome.EXISTING, same)
    near = index.nearest(phash, max_distance=NEAR_DUPLICATE_DISTANCE)
    if near is not None:
        return AddResult(Outcome.NEAR_DUPLICATE, session.get_one(DatasetItem, near.item_id))
    return None


def add_item(
    session: Session,
    *,
    image: Image,
    label: str,
    source: ItemSource,
    golden_fraction: float,
    index: PhashIndex | None = None,
) -> AddResult:
    """Add a search or import image as a dataset item, unless it (nearly) duplicates one.

    A new photo close to an existing item (within :data:`SAME_SIDE_DISTANCE`) takes that
    item's split, so near-variants never sit on both sides of the golden wall.
    """
    if source is ItemSource.CORRECTION:
        raise ValueError("use add_correction_item for corrections")
    index = index if index is not None else PhashIndex.load(session)
    duplicate = find_duplicate(session, sha256=image.sha256, phash=image.phash, index=index)
    if duplicate is not None:
        return duplicate
    neighbour = index.nearest(image.phash, max_distance=SAME_SIDE_DISTANCE)
    split = neighbour.split if neighbour else assign_split(image.sha256, golden_fraction=golden_fraction)
    return AddResult(Outcome.ADDED, _insert(session, image=image, label=label, source=source, split=split, index=index))


def add_correction_item(
    session: Session,
    *,
    image: Image,
    label: str,
    correction_id: int,
    index: PhashIndex | None = None,
    may_relabel_curated: bool = True,
) -> AddResult:
    """Put an accepted correction into the training split.

    * the image is golden, or near a golden image → ``REFUSED_GOLDEN``, nothing changes
      (the golden split is fixed; the returned item is the golden one);
    * the image already is a train/valid item → that item is relabelled, marked as this
      correction and moved to train (``RELABELED``);
    * a near-duplicate train/valid item exists → it is relabelled instead of adding a second
      copy with a conflicting label (``MERGED``);
    * otherwise a new train item (``ADDED``).

    When several corrections reach one item, the newest (highest ``correction_id``) wins in any
    order: an older one leaves it unchanged (``SUPERSEDED``); the same one again is ``EXISTING``.
    Relabelling an imported or searched item needs ``may_relabel_curated`` (an admin's word);
    without it the curated label stays (``KEPT_CURATED``).
    """
    index = index if index is not None else PhashIndex.load(session)
    existing = item_for_image(session, image_id=image.id)
    if existing is not None and existing.split is Split.GOLDEN:
        return AddResult(Outcome.REFUSED_GOLDEN, existing)
    golden = index.nearest(image.phash, max_distance=SAME_SIDE_DISTANCE, splits=frozenset({Split.GOLDEN}))
    if golden is not None:
        return AddResult(Outcome.REFUSED_GOLDEN, session.get_one(DatasetItem, golden.item_id))
    outcome = Outcome.RELABELED
    if existing is None:
        near = index.nearest(image.phash, max_distance=NEAR_DUPLICATE_DISTANCE)
        if near is None:
            item = _insert(
                session,
                image=image,
                label=label,
                source=ItemSource.CORRECTION,
                split=Split.TRAIN,
                index=index,
                correction_id=correction_id,
            )
            return AddResult(Outcome.ADDED, item)
        existing, outcome = session.get_one(DatasetItem, near.item_id), Outcome.MERGED
    if existing.correction_id is not None and existing.correction_id >= correction_id:
        return AddResult(Outcome.EXISTING if existing.correction_id == correction_id else Outcome.SUPERSEDED, existing)
    if existing.source != ItemSource.CORRECTION and existing.label != label and not may_relabel_curated:
        return AddResult(Outcome.KEPT_CURATED, existing)
    existing.label = label
    existing.source = ItemSource.CORRECTION
    existing.correction_id = correction_id
    existing.split = Split.TRAIN
    session.flush()
    index.move(item_id=existing.id, split=Split.TRAIN)
    return AddResult(outcome, existing)


def _insert(
    session: Session,
    *,
    image: Image,
    label: str,
    source: ItemSource,
    split: Split,
    index: PhashIndex,
    correction_id: int | None = None,
) -> DatasetItem:
    item = DatasetItem(image_id=image.id, label=label, source=str(source), split=split, correction_id=correction_id)
    session.add(item)
    session.flush()
    index.add(phash=image.phash, item_id=item.id, split=split)
    return item


def dataset_labels(session: Session) -> tuple[str, ...]:
    """The label set as the data defines it: every label with an item, sorted."""
    return tuple(session.scalars(select(DatasetItem.label).distinct().order_by(DatasetItem.label)))


@dataclass(frozen=True)
class ItemCount:
    label: str
    split: Split
    source: str
    count: int


def dataset_counts(session: Session) -> list[ItemCount]:
    """Item counts per (label, split, source), sorted by those three."""
    keys = (DatasetItem.label, DatasetItem.split, DatasetItem.source)
    rows = session.execute(select(*keys, func.count(DatasetItem.id)).group_by(*keys).order_by(*keys))
    return [ItemCount(label, split, source, count) for label, split, source, count in rows]


@dataclass(frozen=True)
class DatasetEntry:
    """One labelled image as a trainer needs it."""

    item_id: int
    image_id: int
    path: Path
    sha256: str
    label: str
    split: Split
    source: str
    correction_id: int | None = None  # the user correction that set its label, if one did
    phash: str = ""


def list_items(session: Session, *, images: ImageStore, split: Split | None = None) -> list[DatasetEntry]:
    """All items (or one split's), oldest first, with the absolute path of each image file."""
    query = select(DatasetItem, Image).join(DatasetItem.image).order_by(DatasetItem.id)
    if split is not None:
        query = query.where(DatasetItem.split == split)
    return [
        DatasetEntry(
            item.id, image.id, images.path_of(image), image.sha256, item.label, item.split, item.source,
            item.correction_id, image.phash,
        )
        for item, image in session.execute(query)
    ]


def known_source_urls(session: Session) -> set[str]:
    """Every source URL the image store already holds bytes for."""
    return set(session.scalars(select(Image.source_url).where(Image.source_url.is_not(None))))
