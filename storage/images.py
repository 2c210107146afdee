"""Content-addressed image store: bytes on disk under ``images/ab/abcdef….ext``, one row per sha256."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bearbot.atomic import write_atomic
from bearbot.imaging import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image, sha256_hex
from storage.db import add_unique
from storage.models import Image, Origin

_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class ImageStore:
    """Stores verified image bytes once; rows in ``images`` point at the files."""

    def __init__(self, root: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = root
        self.max_pixels = max_pixels

    def path_of(self, image: Image) -> Path:
        """Absolute path of an image's bytes."""
        return self.root / image.path

    def find(self, session: Session, *, sha256: str) -> Image | None:
        return session.scalar(select(Image).where(Image.sha256 == sha256))

    def put(
        self, session: Session, *, data: bytes, origin: Origin, source_url: str | None = None,
        info: ImageInfo | None = None,
    ) -> tuple[Image, bool]:
        """Verify and store ``data``; return ``(row, created)``. Same bytes → same row and file.

        Raises :class:`bearbot.imaging.ImageError` for anything that is not a readable image;
        ``info`` from a decode the caller already did saves decoding the bytes again.
        The file is written (atomically) before the row is flushed, so a row never points at
        a missing or partial file; a crash in between leaves at most an orphan file that the
        next ``put`` of the same bytes reuses.
        """
        digest = sha256_hex(data)
        existing = self.find(session, sha256=digest)
        if existing is not None:
            if not self.path_of(existing).exists():  # repaired if the file was lost
                write_atomic(self.path_of(existing), data)
            return existing, False
        if info is None or info.sha256 != digest:  # callers that decoded already pass what they found
            info = inspect_image(data, max_pixels=self.max_pixels)
        rel = f"{digest[:2]}/{digest}.{_EXT.get(info.format, 'bin')}"
        target = self.root / rel
        if not target.exists():
            write_atomic(target, data)
        row = Image(
            sha256=digest,
            path=rel,
            size_bytes=info.size_bytes,
            width=info.width,
            height=info.height,
            format=info.format,
            phash=info.phash,
            origin=origin,
            source_url=source_url,
        )
        # Another session may store the same bytes concurrently: then its row is ours.
        return add_unique(session, row, existing=lambda: self.find(session, sha256=digest))
