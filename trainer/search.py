"""Image search: a small protocol and the DuckDuckGo-family backend (``ddgs``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)


class SearchError(RuntimeError):
    """The search failed for good (after retries); the message says what to do."""


class ImageSearch(Protocol):
    """Anything that turns a query into image URLs (the ddgs backend, a fake in tests)."""

    def image_urls(self, query: str, *, max_results: int) -> list[str]:
        """Up to ``max_results`` distinct http(s) image URLs for ``query``; raises :class:`SearchError`."""
        ...


def unique_http_urls(urls: list[str]) -> list[str]:
    """Keep http(s) URLs, first occurrence only, order kept."""
    return list(dict.fromkeys(u.strip() for u in urls if u and u.strip().startswith(("http://", "https://"))))


class DdgsImageSearch:
    """``DDGS().images`` with exponential backoff on rate limits, timeouts and empty answers.

    The engines behind ddgs throttle bursts; most often a pause of seconds to a minute is
    enough, so a few spaced retries turn most failures into successes.
    """

    def __init__(self, *, attempts: int = 4, wait_s: float = 5.0, max_wait_s: float = 60.0, timeout_s: int = 10) -> None:
        self.attempts = attempts
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s

    def image_urls(self, query: str, *, max_results: int) -> list[str]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        retrying = Retrying(
            # DDGSException covers RatelimitException and TimeoutException; ddgs also reports a
            # throttled engine as a plain DDGSException ("No results found"), so retry them all.
            retry=retry_if_exception_type(DDGSException),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_s, max=self.max_wait_s),
            before_sleep=_log_retry(query),
        )
        try:
            results = retrying(DDGS(timeout=self.timeout_s).images, query, max_results=max_results)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SearchError(
                f"image search for {query!r} failed {self.attempts} times ({type(cause).__name__}: {cause}); "
                "the search engines are probably rate-limiting this address. Wait a few minutes and rerun: "
                "images fetched so far are kept and will not be fetched again."
            ) from cause
        return unique_http_urls([str(r.get("image", "")) for r in results])[:max_results]


def _log_retry(query: str) -> Callable[[RetryCallState], None]:
    def hook(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        log.warning("image search for %r: %s (maybe rate-limited); retrying in %.0f s", query, error, wait)

    return hook
