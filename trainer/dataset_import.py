"""``bearbot dataset import DIR``: one sub-folder per label (the book's ``bears/`` layout)."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from bearbot.imaging import ImageError, inspect_image, visible_files
from storage.dataset import ItemSource, PhashIndex
from storage.store import Storage
from trainer.data import label_folders
from trainer.ingest import IngestReport, ingest_image


def import_folder(storage: Storage, root: Path, *, progress: bool = True) -> IngestReport:
    """Verify every file under each label folder and add the new ones as import items.

    Files are read in sorted order, so importing the same folder into a fresh database
    always keeps the same copy of near-duplicates. Unreadable files are reported with their
    reason, not fatal; each file is decoded once (the store reuses what the check found).
    """
    report = IngestReport()
    files = [(label, path) for label, folder in label_folders(root).items() for path in visible_files(folder)]
    settings = storage.settings
    max_pixels, max_side, max_bytes = settings.max_image_pixels, settings.max_image_side, settings.max_download_bytes
    with storage.session() as session:
        index = PhashIndex.load(session)
        for label, path in tqdm(files, desc="import", unit="img", disable=not progress):
            if path.stat().st_size > max_bytes:
                report.fail(str(path), f"too large ({path.stat().st_size:,} bytes; limit {max_bytes:,})")
                continue
            data = path.read_bytes()
            try:
                info = inspect_image(data, max_pixels=max_pixels, max_side=max_side)
            except ImageError as exc:  # every decoder failure, malformed EXIF included: this file only
                report.fail(str(path), str(exc))
                continue
            result = ingest_image(
                session,
                images=storage.images,
                index=index,
                data=data,
                info=info,
                label=label,
                source=ItemSource.IMPORT,
                source_url=None,
                golden_fraction=storage.settings.golden_fraction,
            )
            session.commit()
            report.count(result)
    return report

