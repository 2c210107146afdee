"""What ``dataset build`` already tried, so a rerun never fetches the same URL twice.

Stored images are found again by their ``source_url`` in the database; this append-only
JSON-lines file adds the URLs that gave nothing (failed, or duplicated an item). One line
per URL, flushed at once: a crash loses at most the line being written, which a reader skips.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

FAILED = "failed"
DUPLICATE = "duplicate"


@dataclass
class FetchLog:
    """URL → last status (``failed`` / ``duplicate``), backed by a JSON-lines file."""

    path: Path
    statuses: dict[str, str]

    @classmethod
    def open(cls, path: Path) -> FetchLog:
        statuses: dict[str, str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    statuses[str(entry["url"])] = str(entry["status"])
                except (ValueError, KeyError, TypeError):
                    log.warning("skipping an unreadable line in %s", path)
        return cls(path, statuses)

    def record(self, *, url: str, label: str, status: str, reason: str = "") -> None:
        self.statuses[url] = status
        entry = {"url": url, "label": label, "status": status, "reason": reason, "at": datetime.now(UTC).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def done(self, *, retry_failed: bool) -> set[str]:
        """URLs not to fetch again (failed ones only unless ``retry_failed``)."""
        return {url for url, status in self.statuses.items() if not (retry_failed and status == FAILED)}
