"""Telegram files: which image a message carries, and its size-checked download (declared size, then bytes read)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
from telegram import Bot, Message
from telegram.error import BadRequest

from core.events import DownloadError, TooLargeError


@dataclass(frozen=True)
class FileRef:
    """The image file a message carries."""

    file_id: str
    file_size: int | None
    kind: str  # "photo" or "document"


def image_ref(message: Message) -> FileRef | None:
    """The largest photo size, or an image document; None when the message carries neither."""
    if message.photo:
        best = message.photo[-1]  # Telegram lists sizes smallest first
        return FileRef(best.file_id, best.file_size, "photo")
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith("image/"):
        return FileRef(doc.file_id, doc.file_size, "document")
    return None


async def download(bot: Bot, http: httpx.AsyncClient, ref: FileRef, *, limit: int) -> bytes:
    """Fetch the file behind ``ref`` with at most ``limit`` bytes read (raises TooLargeError)."""
    if ref.file_size is not None and ref.file_size > limit:
        raise TooLargeError(ref.file_size, limit)
    try:
        tg_file = await bot.get_file(ref.file_id)
    except BadRequest as exc:
        # Telegram's cloud server refuses getFile over 20 MB with "File is too big".
        if "too big" in str(exc).lower():
            raise TooLargeError(ref.file_size, limit) from None
        raise DownloadError(f"getFile failed: {exc}") from None
    if tg_file.file_size is not None and tg_file.file_size > limit:
        raise TooLargeError(tg_file.file_size, limit)
    if not tg_file.file_path:
        raise DownloadError("the Bot API server gave no file path")
    if not tg_file.file_path.startswith(("http://", "https://")):  # a self-hosted Bot API server in --local mode
        return await asyncio.to_thread(_read_local, Path(tg_file.file_path), limit)
    return await _fetch(http, tg_file.file_path, limit)


def _read_local(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise TooLargeError(size, limit)
        return path.read_bytes()
    except OSError as exc:
        raise DownloadError(f"the Bot API server's local file could not be read ({type(exc).__name__})") from None


async def _fetch(http: httpx.AsyncClient, url: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                # The URL holds the bot token: never put it in the message.
                raise DownloadError(f"file download failed with HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise TooLargeError(int(declared), limit)
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    raise TooLargeError(None, limit)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise DownloadError(f"file download failed ({type(exc).__name__})") from None
    return b"".join(chunks)
