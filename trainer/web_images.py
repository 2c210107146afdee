"""Concurrent, bounded image downloads, each verified to decode (like fastai's ``verify_images``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import httpx

from bearbot.imaging import DEFAULT_MAX_PIXELS, ImageError, ImageInfo, inspect_image

# Servers often label images generically; anything else (text/html, JSON…) is an error page.
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits for one download; the defaults suit web image search results."""

    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 15.0  # connect / read / between chunks
    total_s: float = 60.0  # the whole response, so a trickling server cannot hold a worker
    max_redirects: int = 5
    workers: int = 8
    max_pixels: int = DEFAULT_MAX_PIXELS
    user_agent: str = "Mozilla/5.0 (compatible; bearbot-dataset/0.1)"


@dataclass(frozen=True)
class Download:
    """The outcome for one URL: verified bytes and their facts, or a short error."""

    url: str
    data: bytes = b""
    info: ImageInfo | None = None
    error: str | None = None


class _RejectedError(Exception):
    """A response we refuse; the message is the reason."""


def make_client(policy: DownloadPolicy) -> httpx.Client:
    """One pooled client for all workers (httpx clients are thread-safe)."""
    return httpx.Client(
        timeout=httpx.Timeout(policy.timeout_s),
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        headers={"User-Agent": policy.user_agent, "Accept": "image/*,*/*;q=0.5"},
        limits=httpx.Limits(max_connections=policy.workers * 2),
    )


def fetch_image(client: httpx.Client, url: str, *, policy: DownloadPolicy) -> Download:
    """Download ``url`` within the limits and verify it decodes; never raises for a bad URL."""
    try:
        data = _read_limited(client, url, policy=policy)
        return Download(url, data, inspect_image(data, max_pixels=policy.max_pixels))
    except _RejectedError as exc:
        return Download(url, error=str(exc))
    except ImageError as exc:
        return Download(url, error=f"not a usable image: {exc}")
    except httpx.TimeoutException:
        return Download(url, error="timed out")
    except httpx.TooManyRedirects:
        return Download(url, error=f"more than {policy.max_redirects} redirects")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Download(url, error=f"network error: {type(exc).__name__}: {exc}"[:200])


def _read_limited(client: httpx.Client, url: str, *, policy: DownloadPolicy) -> bytes:
    deadline = time.monotonic() + policy.total_s
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise _RejectedError(f"HTTP {response.status_code}")
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/") and ctype not in _GENERIC_TYPES:
            raise _RejectedError(f"not an image (content-type {ctype})")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise _RejectedError(f"too large ({int(declared):,} bytes; limit {policy.max_bytes:,})")
        chunks: list[bytes] = []
        size = 0
        # The declared length may lie or be absent: count while streaming.
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                raise _RejectedError(f"too large (over {policy.max_bytes:,} bytes)")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("total time limit", request=response.request)
            chunks.append(chunk)
    return b"".join(chunks)


def download_images(
    urls: Iterable[str], *, policy: DownloadPolicy, client: httpx.Client | None = None
) -> Iterator[Download]:
    """Fetch ``urls`` on ``policy.workers`` threads, yielding each result as it completes.

    Closing the iterator early (an error or Ctrl-C in the consumer) cancels what has not
    started and waits only for the downloads in flight, which the timeouts bound.
    """
    own_client = client is None
    http = make_client(policy) if client is None else client
    pool = ThreadPoolExecutor(max_workers=policy.workers, thread_name_prefix="download")
    try:
        futures = [pool.submit(fetch_image, http, url, policy=policy) for url in urls]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if own_client:
            http.close()
