"""Downloads: limits, content types, redirects, timeouts and decode checks against a local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dataset_fakes import SLOW_S, ImageServer, image_server
from trainer.web_images import DownloadPolicy, download_images, fetch_image, make_client

POLICY = DownloadPolicy(max_bytes=20_000, timeout_s=0.5, total_s=5.0, max_redirects=3, workers=4)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with image_server(max_bytes=POLICY.max_bytes) as srv:
        yield srv


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/good/1.jpg", None),
        ("/octet.bin", None),
        ("/redirect", None),
        ("/corrupt.jpg", "not a usable image: the image is corrupt or truncated"),
        ("/html-as-jpeg.jpg", "not a usable image: this is not an image I can read"),
        ("/page.html", "not an image (content-type text/html)"),
        ("/big.jpg", "too large (56"),
        ("/big-undeclared.jpg", "too large (over 20,000 bytes)"),
        ("/loop", "more than 3 redirects"),
        ("/missing.jpg", "HTTP 404"),
        ("/slow.jpg", "timed out"),
    ],
)
def test_fetch_image_outcomes(server: ImageServer, path: str, error: str | None) -> None:
    with make_client(POLICY) as client:
        result = fetch_image(client, server.url(path), policy=POLICY)
    if error is None:
        assert result.error is None and result.info is not None and result.info.format == "JPEG"
        assert result.info.size_bytes == len(result.data)
    else:
        assert result.info is None and result.error is not None and result.error.startswith(error)


def test_bad_urls_are_errors_not_exceptions() -> None:
    with make_client(POLICY) as client:
        for url in ("ftp://example.invalid/x.jpg", "http://", "http://127.0.0.1:1/refused.jpg"):
            result = fetch_image(client, url, policy=POLICY)
            assert result.info is None and result.error


def test_downloads_run_concurrently(server: ImageServer) -> None:
    import time

    urls = [server.url("/slow.jpg")] * 4 + [server.url(f"/good/{n}.jpg") for n in range(1, 5)]
    started = time.monotonic()
    results = list(download_images(urls, policy=POLICY))
    elapsed = time.monotonic() - started
    assert len(results) == 8
    assert sum(r.error == "timed out" for r in results) == 4
    assert sum(r.info is not None for r in results) == 4
    # Four timeouts of 0.5 s on four workers overlap; serially they would take 2 s.
    assert elapsed < SLOW_S
