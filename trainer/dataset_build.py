"""``bearbot dataset build``: search the web per label, download, verify, dedup and store.

Resumable by construction: every image is committed as soon as it is stored, and a URL is
never fetched again once the database holds its bytes or the fetch log says it failed or
duplicated an item. A rerun after a crash, Ctrl-C or a rate limit continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session
from tqdm import tqdm

from storage.dataset import ItemSource, Outcome, PhashIndex, known_source_urls
from storage.store import Storage
from trainer.fetch_log import DUPLICATE, FAILED, FetchLog
from trainer.ingest import IngestReport, ingest_image
from trainer.search import ImageSearch, SearchError
from trainer.web_images import Download, DownloadPolicy, download_images

FETCH_LOG_NAME = "dataset_fetch_log.jsonl"


def build_dataset(
    storage: Storage,
    *,
    search: ImageSearch,
    labels: Iterable[str],
    per_label: int,
    query_template: str,
    policy: DownloadPolicy,
    retry_failed: bool = False,
    progress: bool = True,
) -> IngestReport:
    """Search ``per_label`` images for each label and add the new ones as search items.

    A search that fails for good stops the build: the report's ``error`` says why, and all
    that was stored before stays.
    """
    fetch_log = FetchLog.open(storage.settings.data_dir / FETCH_LOG_NAME)
    report = IngestReport()
    with storage.session() as session:
        index = PhashIndex.load(session)
        seen = known_source_urls(session)
    for label in labels:
        try:
            urls = search.image_urls(query_template.format(label=label), max_results=per_label)
        except SearchError as exc:
            report.error = str(exc)
            break
        skip = seen | fetch_log.done(retry_failed=retry_failed)
        todo = [url for url in urls if url not in skip]
        report.outcomes["skipped"] += len(urls) - len(todo)
        with storage.session() as session, tqdm(total=len(todo), desc=label, unit="img", disable=not progress) as bar:
            for download in download_images(todo, policy=policy):
                _store(
                    session, storage=storage, download=download, label=label, index=index, log=fetch_log, report=report
                )
                seen.add(download.url)
                bar.update(1)
                bar.set_postfix_str(report.summary(), refresh=False)
    return report


def _store(
    session: Session,
    *,
    storage: Storage,
    download: Download,
    label: str,
    index: PhashIndex,
    log: FetchLog,
    report: IngestReport,
) -> None:
    if download.info is None:
        reason = download.error or "unknown error"
        report.fail(download.url, reason)
        log.record(url=download.url, label=label, status=FAILED, reason=reason)
        return
    result = ingest_image(
        session,
        images=storage.images,
        index=index,
        data=download.data,
        info=download.info,
        label=label,
        source=ItemSource.SEARCH,
        source_url=download.url,
        golden_fraction=storage.settings.golden_fraction,
    )
    session.commit()  # one image at a time: an interruption keeps everything before it
    report.count(result)
    if result.outcome is not Outcome.ADDED:
        log.record(url=download.url, label=label, status=DUPLICATE, reason=str(result.outcome))
