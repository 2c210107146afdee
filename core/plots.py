"""The pictures of a training run (confusion matrix, top losses, what the candidate breaks) for admins."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from core.replies import Reply

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


async def plot_replies(paths: list[Path], *, private: bool = False) -> list[Reply]:
    """Each existing PNG as a picture with its caption; a missing file is skipped with a log line."""
    replies = []
    for path in paths:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.info("plot %s not sent: %s", path, exc.strerror or exc)
            continue
        replies.append(Reply(caption(path), picture=data, private=private))
    return replies
