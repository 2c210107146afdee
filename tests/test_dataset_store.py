"""Dataset data access: deterministic splits, near-duplicates, corrections and the golden wall."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bearbot.imaging import hash_distance, inspect_image
from storage.dataset import (
    NEAR_DUPLICATE_DISTANCE,
    SAME_SIDE_DISTANCE,
    AddResult,
    ItemSource,
    Outcome,
    PhashIndex,
    add_correction_item,
    add_item,
    assign_split,
    dataset_counts,
    dataset_labels,
    list_items,
)
from storage.models import Correction, Image, Origin, Split, User
from storage.store import Storage
from tests.dataset_fakes import distinct_image


def _image(storage: Storage, session: Session, data: bytes) -> Image:
    return storage.images.put(session, data=data, origin=Origin.IMPORT)[0]


def _correction(session: Session, image: Image, label: str) -> int:
    user = User(telegram_id=(session.scalar(select(func.max(User.telegram_id))) or 0) + 1)
    session.add(user)
    session.flush()
    correction = Correction(image_id=image.id, user_id=user.id, label=label)
    session.add(correction)
    session.flush()
    return correction.id


def _add(
    storage: Storage, session: Session, data: bytes, *, label: str = "black", index: PhashIndex | None = None
) -> AddResult:
    """Add ``data`` as an import item (golden fraction 0.2)."""
    image = _image(storage, session, data)
    return add_item(session, image=image, label=label, source=ItemSource.IMPORT, golden_fraction=0.2, index=index)


def _correct(session: Session, image: Image, label: str, *, index: PhashIndex | None = None) -> AddResult:
    """Record a correction of ``image`` and merge it."""
    correction_id = _correction(session, image, label)
    return add_correction_item(session, image=image, label=label, correction_id=correction_id, index=index)


def _seed_for(split: Split, *, golden_fraction: float = 0.2, start: int = 0) -> int:
    """The first seed from ``start`` whose image bytes hash into ``split``."""
    seed = start
    while assign_split(inspect_image(distinct_image(seed)).sha256, golden_fraction=golden_fraction) is not split:
        seed += 1
    return seed


def test_assign_split_is_a_stable_hash_bucket() -> None:
    digests = [inspect_image(distinct_image(s)).sha256 for s in range(300)]
    splits = [assign_split(d, golden_fraction=0.2) for d in digests]
    assert splits == [assign_split(d, golden_fraction=0.2) for d in digests]
    share = {s: splits.count(s) / len(splits) for s in Split}
    assert 0.12 < share[Split.GOLDEN] < 0.28 and 0.04 < share[Split.VALID] < 0.16
    assert assign_split("0" * 64, golden_fraction=0.2) is Split.GOLDEN
    assert assign_split("f" * 64, golden_fraction=0.2) is Split.TRAIN


def test_add_item_dedups_exact_and_near_copies(storage: Storage) -> None:
    with storage.session() as s:
        first = _add(storage, s, distinct_image(1))
        again = add_item(s, image=first.item.image, label="teddy", source=ItemSource.SEARCH, golden_fraction=0.2)
        near_bytes = distinct_image(1, quality=55, size=(100, 90))
        assert hash_distance(int(inspect_image(near_bytes).phash, 16), int(first.item.image.phash, 16)) <= NEAR_DUPLICATE_DISTANCE
        near = add_item(
            s, image=_image(storage, s, near_bytes), label="grizzly", source=ItemSource.SEARCH, golden_fraction=0.2
        )
    assert first.outcome is Outcome.ADDED
    assert first.item.split is assign_split(first.item.image.sha256, golden_fraction=0.2)
    assert (again.outcome, again.item.id, again.item.label) == (Outcome.EXISTING, first.item.id, "black")
    assert (near.outcome, near.item.id) == (Outcome.NEAR_DUPLICATE, first.item.id)


def test_corrections_train_and_never_touch_golden(storage: Storage) -> None:
    golden_seed = _seed_for(Split.GOLDEN)
    train_seed = _seed_for(Split.TRAIN, start=golden_seed + 1)
    with storage.session() as s:
        golden = _add(storage, s, distinct_image(golden_seed)).item
        trained = _add(storage, s, distinct_image(train_seed)).item
        assert (golden.split, trained.split) == (Split.GOLDEN, Split.TRAIN)

        # The golden image itself, and a re-encoded copy of it: refused, golden unchanged.
        same = _correct(s, golden.image, "teddy")
        copy = _image(storage, s, distinct_image(golden_seed, quality=50))
        near = _correct(s, copy, "teddy")
        assert same.outcome is near.outcome is Outcome.REFUSED_GOLDEN
        assert (golden.label, golden.split, golden.source) == ("black", Split.GOLDEN, "import")

        # The train image: relabelled in place. Its near-copy: merged into it.
        relabel = _correct(s, trained.image, "grizzly")
        twin = _image(storage, s, distinct_image(train_seed, quality=50))
        merged = _correct(s, twin, "teddy")
        assert (relabel.outcome, merged.outcome) == (Outcome.RELABELED, Outcome.MERGED)
        assert merged.item.id == trained.id and (trained.label, trained.source) == ("teddy", "correction")
        assert trained.correction_id == s.scalar(select(func.max(Correction.id)))  # the twin's, the newest

        # A new photo: a new train item, whatever its hash bucket says.
        fresh_seed = _seed_for(Split.GOLDEN, start=train_seed + 1)
        fresh = _image(storage, s, distinct_image(fresh_seed))
        added = _correct(s, fresh, "grizzly")
        assert added.outcome is Outcome.ADDED and added.item.split is Split.TRAIN and added.item.source == "correction"


def test_correction_moves_a_valid_item_to_train(storage: Storage) -> None:
    seed = _seed_for(Split.VALID)
    with storage.session() as s:
        item = _add(storage, s, distinct_image(seed)).item
        result = _correct(s, item.image, "black")
    assert result.outcome is Outcome.RELABELED and result.item.split is Split.TRAIN


def test_near_variants_stay_on_the_same_side(storage: Storage) -> None:
    """A photo close to a golden one (but not a near-duplicate) is golden too, whatever its hash."""
    golden_seed = _seed_for(Split.GOLDEN)
    with storage.session() as s:
        index = PhashIndex.load(s)
        golden = _add(storage, s, distinct_image(golden_seed), index=index).item
        # A lightly cropped copy would be 7-10 bits away; set such a hash on another image.
        variant = _image(storage, s, distinct_image(_seed_for(Split.TRAIN, start=golden_seed + 1)))
        variant.phash = f"{int(golden.image.phash, 16) ^ 0b1111111:016x}"
        result = add_item(s, image=variant, label="black", source=ItemSource.IMPORT, golden_fraction=0.2, index=index)
    assert result.outcome is Outcome.ADDED and result.item.split is Split.GOLDEN


def test_labels_counts_and_items(storage: Storage) -> None:
    with storage.session() as s:
        for seed, label in [(1, "dog"), (2, "cat"), (3, "dog")]:
            _add(storage, s, distinct_image(seed), label=label)
    with storage.session() as s:
        assert dataset_labels(s) == ("cat", "dog")
        assert sum(c.count for c in dataset_counts(s)) == 3
        assert {(c.label, c.source) for c in dataset_counts(s)} == {("cat", "import"), ("dog", "import")}
        entries = list_items(s, images=storage.images)
        assert [e.label for e in entries] == ["dog", "cat", "dog"] and all(e.path.is_file() for e in entries)
        for split in Split:
            assert all(e.split is split for e in list_items(s, images=storage.images, split=split))


def test_no_correction_ever_reaches_golden_or_sits_beside_it(storage: Storage) -> None:
    """Correct every image and a re-encoded copy of each: golden stays as it was, and apart."""
    with storage.session() as s:
        index = PhashIndex.load(s)
        for seed in range(40):
            _add(storage, s, distinct_image(seed), index=index)
        golden_before = {e.item_id for e in list_items(s, images=storage.images, split=Split.GOLDEN)}
        assert golden_before
        for seed in range(40):
            for data in (distinct_image(seed), distinct_image(seed, quality=40, size=(120, 100))):
                image = _image(storage, s, data)
                _correct(s, image, "teddy", index=index)
    with storage.session() as s:
        golden = list_items(s, images=storage.images, split=Split.GOLDEN)
        trained = [e for e in list_items(s, images=storage.images) if e.split is not Split.GOLDEN]
        assert {e.item_id for e in golden} == golden_before and all(e.source == "import" for e in golden)
        golden_hashes = [s.get_one(Image, e.image_id).phash for e in golden]
        for entry in trained:
            phash = s.get_one(Image, entry.image_id).phash
            assert min(hash_distance(int(phash, 16), int(g, 16)) for g in golden_hashes) > SAME_SIDE_DISTANCE


def test_the_newest_correction_wins_in_any_order(storage: Storage) -> None:
    seed = _seed_for(Split.TRAIN)
    with storage.session() as s:
        item = _add(storage, s, distinct_image(seed)).item
        older, newer = _correction(s, item.image, "teddy"), _correction(s, item.image, "grizzly")
        first = add_correction_item(s, image=item.image, label="grizzly", correction_id=newer)
        late = add_correction_item(s, image=item.image, label="teddy", correction_id=older)
        again = add_correction_item(s, image=item.image, label="grizzly", correction_id=newer)
    assert [r.outcome for r in (first, late, again)] == [Outcome.RELABELED, Outcome.SUPERSEDED, Outcome.EXISTING]
    assert (item.label, item.correction_id) == ("grizzly", newer)
