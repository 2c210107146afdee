"""``bearbot dataset``: build from web search, import a folder, show counts."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bearbot.cli.common import fail, settings_or_exit
from bearbot.settings import Settings

if TYPE_CHECKING:
    from trainer.ingest import IngestReport

app = typer.Typer(no_args_is_help=True)


@app.command("build")
def build_cmd(
    labels: str | None = typer.Option(None, "--labels", help="Comma-separated labels (default: BEARBOT_LABELS)."),
    per_label: int | None = typer.Option(
        None, "--per-label", min=1, help="Search results per label (default: BEARBOT_SEARCH_PER_LABEL)."
    ),
    query: str | None = typer.Option(
        None,
        "--query",
        help="Query template with {label} (default: BEARBOT_SEARCH_QUERY_TEMPLATE, e.g. '{label} bear').",
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Fetch again URLs that failed on earlier runs."),
) -> None:
    """Search the web for each label, download, verify, dedup and store the images.

    Rerun it at any time: it fetches only what it has not tried yet.
    """
    from bearbot.labels import parse_labels
    from storage.store import open_storage
    from trainer.dataset_build import build_dataset
    from trainer.search import DdgsImageSearch
    from trainer.web_images import DownloadPolicy

    settings = settings_or_exit()
    # ddgs logs each failing engine at INFO; our retry warning says the same once.
    logging.getLogger("ddgs").setLevel(logging.WARNING)
    try:
        label_set = parse_labels(labels) if labels else settings.labels
    except ValueError as exc:
        raise fail(f"--labels: {exc}", 2) from None
    template = query or settings.search_query_template
    if "{label}" not in template:
        raise fail(f"the query template {template!r} must contain {{label}}", 2)
    try:
        with open_storage(settings) as storage:
            report = build_dataset(
                storage,
                search=DdgsImageSearch(),
                labels=label_set,
                per_label=per_label or settings.search_per_label,
                query_template=template,
                policy=DownloadPolicy(max_pixels=settings.max_image_pixels),
                retry_failed=retry_failed,
            )
    except KeyboardInterrupt:
        raise fail("interrupted; every image stored so far is kept: rerun the same command to continue", 130) from None
    _print_failures(report.failures)
    typer.echo(f"dataset build: {report.summary()}")
    if report.error:
        raise fail(report.error)


@app.command("import")
def import_cmd(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="A folder with one sub-folder per label."),
) -> None:
    """Import FOLDER/<label>/* images: verified, deduplicated, split deterministically."""
    import_or_exit(settings_or_exit(), folder)


def import_or_exit(settings: Settings, folder: Path) -> IngestReport:
    """Import ``folder``, print one line per skipped file and the summary; a bad folder exits 2."""
    from storage.store import open_storage
    from trainer.dataset_import import import_folder

    with open_storage(settings) as storage:
        try:
            report = import_folder(storage, folder)
        except ValueError as exc:
            raise fail(str(exc), 2) from None
    for path, reason in report.failures:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"dataset import: {report.summary()}")
    return report


@app.command("stats")
def stats_cmd() -> None:
    """Item counts per label, split and source; the last line is `total N`."""
    from storage.dataset import dataset_counts
    from storage.dataset_origins import corrected_items_by_origin
    from storage.models import Origin
    from storage.store import open_storage

    with open_storage(settings_or_exit()) as storage, storage.session() as session:
        counts = dataset_counts(session)
        corrected = corrected_items_by_origin(session)
    typer.echo(f"{'label':<16} {'split':<7} {'source':<11} {'count':>6}")
    for row in counts:
        typer.echo(f"{row.label:<16} {row.split.value:<7} {row.source:<11} {row.count:>6}")
    for key in ("label", "split", "source"):
        totals: Counter[str] = Counter()
        for row in counts:
            totals[str(getattr(row, key))] += row.count
        typer.echo(f"per {key}: " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "-"))
    relabelled = {origin: n for origin, n in corrected.items() if origin != Origin.UPLOAD}
    if relabelled:
        # Otherwise `import` said "added 332" and the import count here is lower, with no reason given.
        which = ", ".join(f"{n} {origin}ed" for origin, n in sorted(relabelled.items()))
        sent = corrected.get(Origin.UPLOAD, 0)
        typer.echo(
            f"source correction: {sent} photo{'' if sent == 1 else 's'} users sent, and {which} "
            "photo(s) whose label a user correction changed (counted under correction from then on)"
        )
    typer.echo(f"total {sum(row.count for row in counts)}")


def _print_failures(failures: list[tuple[str, str]]) -> None:
    """One line per kind of failure (web builds fail by the dozen for the same few reasons)."""
    kinds: dict[str, list[str]] = {}
    for url, reason in failures:
        # Sizes differ per file; the rest of a reason names its kind ("HTTP 404", "timed out"…).
        kinds.setdefault(re.sub(r"\d[\d,]{3,}", "…", reason)[:100], []).append(url)
    for kind, urls in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        typer.echo(f"failed {len(urls)}× {kind} (e.g. {urls[0]})", err=True)
