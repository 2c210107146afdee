"""Where the dataset's corrected items came from, so counts per source add up for a reader."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import DatasetItem, Image, ItemSource


def corrected_items_by_origin(session: Session) -> dict[str, int]:
    """Items whose label a user correction set, by how their image first arrived (upload, import, search).

    An imported or searched photo that a correction relabelled counts under the ``correction``
    source from then on; this tells those apart from photos users sent.
    """
    rows = session.execute(
        select(Image.origin, func.count(DatasetItem.id))
        .join(DatasetItem.image)
        .where(DatasetItem.source == ItemSource.CORRECTION)
        .group_by(Image.origin)
    )
    return {str(origin): int(n) for origin, n in rows}
