"""Image search: a small protocol and the DuckDuckGo-family backend (``ddgs``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

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

    def __init__(
        self,
        *,
        attempts: int = 4,
        wait_s: float = 5.0,
        max_wait_s: float = 60.0,
        timeout_s: int = 10,
        max_pages: int = 5,
    ) -> None:
        self.attempts = attempts
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.max_pages = max_pages

    def image_urls(self, query: str, *, max_results: int) -> list[str]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        retrying = Retrying(
            # In ddgs 9 a throttled engine just answers non-200, which surfaces as a plain
            # DDGSException("No results found."); RatelimitException exists but is not raised.
            # TimeoutException is a DDGSException too. So every DDGSException is retried.
            retry=retry_if_exception_type(DDGSException),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_s, max=self.max_wait_s),
            before_sleep=_log_retry(query),
        )
        ddgs = DDGS(timeout=self.timeout_s)
        try:
            urls = _image_urls(retrying(ddgs.images, query, max_results=max_results))
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SearchError(
                f"image search for {query!r} failed {self.attempts} times: {diagnose(cause)} "
                f"({type(cause).__name__}: {str(cause)[:160]}). Images fetched so far are kept and a rerun "
                "fetches only what is missing."
            ) from cause
        # The engines answer a few dozen per page: ask for more pages (once each, no backoff:
        # a short list beats a long wait) until there are enough or a page brings nothing new.
        for page in range(2, self.max_pages + 1):
            if len(urls) >= max_results:
                break
            try:
                more = _image_urls(ddgs.images(query, max_results=max_results, page=page))
            except DDGSException:
                break
            before = len(urls)
            urls = unique_http_urls(urls + more)
            if len(urls) == before:
                break
        return urls[:max_results]


def _image_urls(results: list[dict[str, Any]]) -> list[str]:
    return unique_http_urls([str(r.get("image", "")) for r in results])


def diagnose(error: BaseException | None) -> str:
    """A one-line guess at why ddgs failed; its engines fold every cause into DDGSException text."""
    text = f"{type(error).__name__} {error}".lower()
    if any(mark in text for mark in ("ratelimit", "rate limit", "403", "429")):
        return "the search engines are rate-limiting this address; wait a few minutes, then rerun"
    if any(mark in text for mark in ("dns", "connect", "error sending request", "network")):
        return "the search engines cannot be reached; check the network (or DDGS_PROXY), then rerun"
    if "timeout" in text or "timed out" in text:
        return "the search engines did not answer in time (often a rate limit); rerun later"
    return "no results (engines often answer empty when rate-limiting); rerun later or change the query"


def _log_retry(query: str) -> Callable[[RetryCallState], None]:
    def hook(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        log.warning("image search for %r failed: %s; retrying in %.0f s", query, diagnose(error).split(";")[0], wait)

    return hook
