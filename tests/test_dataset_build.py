"""``dataset build`` against a fake search and a local server: dedup, failures, resume, CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bearbot.cli import app
from storage.dataset import dataset_counts, dataset_labels
from storage.models import DatasetItem, Image, Origin
from storage.store import Storage
from tests.dataset_fakes import FakeSearch, ImageServer, image_server
from trainer.dataset_build import FETCH_LOG_NAME, build_dataset
from trainer.ingest import IngestReport
from trainer.web_images import DownloadPolicy

POLICY = DownloadPolicy(max_bytes=20_000, timeout_s=0.5, total_s=5.0, max_redirects=3, workers=4)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with image_server(max_bytes=POLICY.max_bytes) as srv:
        yield srv


def _results(server: ImageServer) -> dict[str, list[str]]:
    good = [server.url(f"/good/{n}.jpg") for n in range(1, 9)]
    return {
        # 4 new images, plus every kind of failure.
        "grizzly bear": [
            *good[:4],
            *(server.url(p) for p in ("/corrupt.jpg", "/page.html", "/big.jpg", "/slow.jpg", "/loop")),
        ],
        # 3 new, an exact copy of grizzly's first, a near-copy of grizzly's second, one via a redirect.
        "black bear": [*good[4:7], *(server.url(p) for p in ("/dup.jpg", "/near.jpg", "/redirect"))],
        "teddy bear": [good[7], good[0]],  # an URL another label already fetched
    }


def _build(
    storage: Storage,
    search: FakeSearch,
    *,
    labels: tuple[str, ...] = ("grizzly", "black", "teddy"),
    template: str = "{label} bear",
    retry_failed: bool = False,
) -> IngestReport:
    return build_dataset(
        storage,
        search=search,
        labels=labels,
        per_label=20,
        query_template=template,
        policy=POLICY,
        retry_failed=retry_failed,
        progress=False,
    )


def _stored(storage: Storage) -> dict[str, int]:
    totals: Counter[str] = Counter()
    with storage.session() as s:
        for row in dataset_counts(s):
            totals[row.label] += row.count
        totals["images"] = s.scalar(select(func.count(Image.id))) or 0
    return dict(totals)


def test_build_stores_verified_unique_images(storage: Storage, server: ImageServer) -> None:
    server.requests.clear()
    report = _build(storage, FakeSearch(_results(server)))
    # /redirect lands on good/4, which grizzly already stored: same bytes, a duplicate.
    assert report.outcomes == {"added": 8, "existing": 2, "near_duplicate": 1, "failed": 5, "skipped": 1}
    assert {reason.split(" (")[0] for _, reason in report.failures} == {
        "not a usable image: the image is corrupt or truncated",
        "not an image",
        "too large",
        "timed out",
        "more than 3 redirects",
    }
    assert _stored(storage) == {"grizzly": 4, "black": 3, "teddy": 1, "images": 8}  # no files for dropped copies
    with storage.session() as s:
        rows = s.execute(
            select(Image.source_url, Image.origin, DatasetItem.source).join(
                DatasetItem, DatasetItem.image_id == Image.id
            )
        ).all()
        assert all(
            str(url).startswith(server.base) and origin == Origin.SEARCH and src == "search"
            for url, origin, src in rows
        )
    assert len([p for p in storage.images.root.rglob("*") if p.is_file()]) == 8


def test_rerun_fetches_nothing_again(storage: Storage, server: ImageServer) -> None:
    search = FakeSearch(_results(server))
    _build(storage, search)
    server.requests.clear()
    report = _build(storage, search)
    assert sum(server.requests.values()) == 0
    assert report.outcomes == {"skipped": 17} and report.summary() == "skipped 17"
    assert (storage.settings.data_dir / FETCH_LOG_NAME).is_file()


def test_retry_failed_fetches_only_the_failures(storage: Storage, server: ImageServer) -> None:
    search = FakeSearch(_results(server))
    _build(storage, search)
    server.requests.clear()
    _build(storage, search, retry_failed=True)
    assert set(server.requests) == {"/corrupt.jpg", "/page.html", "/big.jpg", "/slow.jpg", "/loop"}


def test_search_failure_keeps_what_was_fetched_and_resumes(storage: Storage, server: ImageServer) -> None:
    results = _results(server)
    report = _build(storage, FakeSearch(results, failing={"black bear"}))
    assert report.error == "rate limited on 'black bear'"
    assert _stored(storage) == {"grizzly": 4, "images": 4}  # grizzly kept, teddy never started

    server.requests.clear()
    resumed = _build(storage, FakeSearch(results))
    fetched = set(server.requests)
    assert not fetched & {f"/good/{n}.jpg" for n in range(1, 4)}  # grizzly's images: not again…
    assert server.requests["/good/4.jpg"] == server.requests["/redirect"] == 1  # …but where black's redirect leads
    assert {"/good/5.jpg", "/good/8.jpg"} <= fetched
    assert resumed.error is None and _stored(storage) == {"grizzly": 4, "black": 3, "teddy": 1, "images": 8}


def test_interrupted_download_keeps_stored_images(
    storage: Storage, server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of a label: what was committed stays, the rerun fetches the rest."""
    import trainer.dataset_build as build_module

    real_store = build_module._store
    calls = {"n": 0}

    def store_then_interrupt(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_store(*args, **kwargs)  # type: ignore[arg-type]

    urls = {"dog pics": [server.url(f"/good/{n}.jpg") for n in range(1, 7)]}
    monkeypatch.setattr(build_module, "_store", store_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _build(storage, FakeSearch(urls), labels=("dog",), template="{label} pics")
    assert _stored(storage) == {"dog": 2, "images": 2}

    monkeypatch.setattr(build_module, "_store", real_store)
    server.requests.clear()
    report = _build(storage, FakeSearch(urls), labels=("dog",), template="{label} pics")
    assert report.outcomes["added"] == 4 and report.outcomes["skipped"] == 2
    assert sum(server.requests.values()) == 4 and _stored(storage) == {"dog": 6, "images": 6}


def test_cli_build_for_other_labels_and_stats(
    tmp_path: Path, server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = FakeSearch(
        {
            "cat photo": [server.url("/good/9.jpg"), server.url("/good/10.jpg")],
            "dog photo": [server.url("/good/11.jpg"), server.url("/page.html")],
        }
    )
    monkeypatch.setattr("trainer.search.DdgsImageSearch", lambda: search)
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    bad = runner.invoke(app, ["dataset", "build", "--labels", "cat,dog", "--query", "photos"])
    assert bad.exit_code == 2 and "{label}" in bad.output

    built = runner.invoke(
        app, ["dataset", "build", "--labels", "cat,dog", "--per-label", "5", "--query", "{label} photo"]
    )
    assert built.exit_code == 0, built.output
    assert "dataset build: added 3, failed 1" in built.output
    assert "failed 1× not an image (content-type text/html) (e.g. http://127.0.0.1:" in built.output
    assert search.calls == ["cat photo", "dog photo"]

    stats = runner.invoke(app, ["dataset", "stats"])
    assert stats.exit_code == 0, stats.output
    lines = stats.output.strip().splitlines()
    assert lines[-1] == "total 3"
    assert "per label: cat 2, dog 1" in lines and "per source: search 3" in lines

    from bearbot.settings import load_settings
    from storage.store import open_storage

    store = open_storage(load_settings(data_dir=tmp_path / "var"))
    with store.session() as s:
        assert dataset_labels(s) == ("cat", "dog")
    store.close()


def test_cli_build_reports_a_search_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trainer.search.DdgsImageSearch", lambda: FakeSearch({}, failing={"grizzly bear"}))
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["dataset", "build"])
    assert result.exit_code == 1 and "rate limited on 'grizzly bear'" in result.output
