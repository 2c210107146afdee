"""Turn verified image bytes into a dataset item: dedup first, then store, then label."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from bearbot.imaging import ImageInfo
from storage.dataset import AddResult, ItemSource, PhashIndex, add_item, find_duplicate
from storage.images import ImageStore
from storage.models import Origin


def ingest_image(
    session: Session,
    *,
    images: ImageStore,
    index: PhashIndex,
    data: bytes,
    info: ImageInfo,
    label: str,
    source: ItemSource,
    source_url: str | None,
    golden_fraction: float,
) -> AddResult:
    """Store ``data`` as a ``source`` item labelled ``label`` unless it (nearly) duplicates one.

    The duplicate check runs before the bytes are stored, so dropped copies leave no files.
    """
    duplicate = find_duplicate(session, sha256=info.sha256, phash=info.phash, index=index)
    if duplicate is not None:
        return duplicate
    origin = Origin.SEARCH if source is ItemSource.SEARCH else Origin.IMPORT
    image, _ = images.put(session, data=data, origin=origin, source_url=source_url, info=info)
    return add_item(session, image=image, label=label, source=source, golden_fraction=golden_fraction, index=index)


@dataclass
class IngestReport:
    """Tallies of a build or import, and the reasons for what was skipped."""

    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (url or path, reason)
    error: str | None = None  # why the job stopped early, if it did

    def count(self, result: AddResult) -> None:
        self.outcomes[str(result.outcome)] += 1

    def fail(self, where: str, reason: str) -> None:
        self.outcomes["failed"] += 1
        self.failures.append((where, reason))

    def summary(self) -> str:
        """``added 10, existing 2, near_duplicate 1, failed 3`` (zero counts left out)."""
        order = ["added", "existing", "near_duplicate", "failed", "skipped"]
        return ", ".join(f"{key} {self.outcomes[key]}" for key in order if self.outcomes[key]) or "nothing to do"
