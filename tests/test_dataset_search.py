"""The ddgs backend: retries with backoff on rate limits, then one clear error (ddgs is faked)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from trainer.search import DdgsImageSearch, SearchError, diagnose


class FakeDDGS:
    """Stands in for ``ddgs.DDGS``: raises the queued errors, then answers."""

    errors: ClassVar[list[Exception]] = []
    calls: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, timeout: int | None = 5) -> None:
        pass

    def images(self, query: str, *, max_results: int, page: int = 1) -> list[dict[str, Any]]:
        FakeDDGS.calls.append((query, page))
        if FakeDDGS.errors:
            raise FakeDDGS.errors.pop(0)
        if page > 1:  # page 2 adds one new image and repeats one; page 3 adds nothing new
            return [{"image": "https://d.example/4.jpg"}, {"image": "https://a.example/1.jpg"}] if page == 2 else []
        return [
            {"image": "https://a.example/1.jpg", "title": "one"},
            {"image": "https://a.example/1.jpg", "title": "the same again"},
            {"image": "data:image/png;base64,AAAA"},
            {"title": "no image key"},
            {"image": "http://b.example/2.png"},
            {"image": "https://c.example/3.webp"},
        ]


@pytest.fixture
def fake_ddgs(monkeypatch: pytest.MonkeyPatch) -> type[FakeDDGS]:
    FakeDDGS.errors, FakeDDGS.calls = [], []
    monkeypatch.setattr("ddgs.DDGS", FakeDDGS)
    return FakeDDGS


def test_retries_rate_limits_then_returns_clean_urls(
    fake_ddgs: type[FakeDDGS], caplog: pytest.LogCaptureFixture
) -> None:
    fake_ddgs.errors = [RatelimitException("202 Ratelimit"), TimeoutException("timed out")]
    urls = DdgsImageSearch(attempts=3, wait_s=0.0).image_urls("grizzly bear", max_results=2)
    assert urls == ["https://a.example/1.jpg", "http://b.example/2.png"]
    assert fake_ddgs.calls == [("grizzly bear", 1)] * 3  # enough on page 1: no page 2
    assert "rate-limiting this address" in caplog.text and "did not answer in time" in caplog.text


def test_pages_until_enough_or_nothing_new(fake_ddgs: type[FakeDDGS]) -> None:
    urls = DdgsImageSearch(wait_s=0.0).image_urls("black bear", max_results=10)
    assert urls == [
        "https://a.example/1.jpg",
        "http://b.example/2.png",
        "https://c.example/3.webp",
        "https://d.example/4.jpg",
    ]
    assert fake_ddgs.calls == [("black bear", 1), ("black bear", 2), ("black bear", 3)]


def test_a_failing_later_page_keeps_the_first(fake_ddgs: type[FakeDDGS], monkeypatch: pytest.MonkeyPatch) -> None:
    class FailOnPage2(FakeDDGS):
        def images(self, query: str, *, max_results: int, page: int = 1) -> list[dict[str, Any]]:
            if page == 2:
                raise DDGSException("No results found.")
            return super().images(query, max_results=max_results, page=page)

    monkeypatch.setattr("ddgs.DDGS", FailOnPage2)
    assert DdgsImageSearch(wait_s=0.0).image_urls("teddy bear", max_results=10) == [
        "https://a.example/1.jpg",
        "http://b.example/2.png",
        "https://c.example/3.webp",
    ]


def test_gives_up_with_a_clear_message(fake_ddgs: type[FakeDDGS]) -> None:
    fake_ddgs.errors = [DDGSException("No results found.")] * 3
    with pytest.raises(SearchError) as caught:
        DdgsImageSearch(attempts=3, wait_s=0.0).image_urls("teddy bear", max_results=5)
    message = str(caught.value)
    assert "'teddy bear' failed 3 times: no results" in message and "a rerun fetches only what is missing" in message


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (RatelimitException("https://duckduckgo.com/i.js 202"), "rate-limiting"),
        (DDGSException("DNSError: error resolving DNS"), "cannot be reached"),
        (TimeoutException("timed out"), "did not answer in time"),
        (DDGSException("No results found."), "no results"),
    ],
)
def test_diagnose_names_the_likely_cause(error: Exception, hint: str) -> None:
    assert hint in diagnose(error)
