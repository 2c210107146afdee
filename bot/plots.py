"""The pictures of a training run (confusion matrix, top losses, what the candidate breaks) for admins."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

log = logging.getLogger(__name__)

# What each picture shows, by file name (trainer/evaluate.py and trainer/pipeline.py write them).
CAPTIONS = {
    "confusion_matrix": "Confusion matrix of the candidate on the golden set (rows: the true label).",
    "top_losses": "Top losses: the golden-set photos the candidate got most wrong, or was least sure of.",
    "breaks_and_fixes": "The photos the candidate answers differently from the serving model: what it breaks and fixes.",
}


def run_plots(metrics: dict[str, Any] | None) -> list[Path]:
    """A run's PNG files: ``metrics["plots"]``, or the older ``candidate`` keys."""
    metrics = metrics or {}
    paths = metrics.get("plots")
    if not isinstance(paths, list):
        candidate = metrics.get("candidate") if isinstance(metrics.get("candidate"), dict) else metrics
        paths = [candidate.get(key) for key in ("confusion_png", "top_losses_png")]
    return [Path(p) for p in paths if isinstance(p, str) and p]


def caption(path: Path) -> str:
    return CAPTIONS.get(path.stem, path.stem.replace("_", " ").capitalize())


async def send_plots(bot: Bot, chat_id: int, paths: list[Path]) -> int:
    """Send each existing PNG as a photo; a missing file is skipped with a log line. Returns how many went."""
    sent = 0
    for path in paths:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.info("plot %s not sent: %s", path, exc.strerror or exc)
            continue
        try:
            await bot.send_photo(chat_id=chat_id, photo=data, caption=caption(path))
            sent += 1
        except TelegramError as exc:
            log.warning("could not send plot %s to chat %s: %s", path.name, chat_id, exc)
    return sent
