"""The ddgs backend: retries with backoff on rate limits, then one clear error (ddgs is faked)."""

from __future__ import annotations

from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from trainer.search import DdgsImageSearch, SearchError


class FakeDDGS:
    """Stands in for ``ddgs.DDGS``: raises the queued errors, then answers."""

    errors: list[Exception] = []
    calls: list[tuple[str, int]] = []

    def __init__(self, timeout: int | None = 5) -> None:
        pass

    def images(self, query: str, *, max_results: int) -> list[dict[str, Any]]:
        FakeDDGS.calls.append((query, max_results))
        if FakeDDGS.errors:
            raise FakeDDGS.errors.pop(0)
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


def test_retries_rate_limits_then_returns_clean_urls(fake_ddgs: type[FakeDDGS], caplog: pytest.LogCaptureFixture) -> None:
    fake_ddgs.errors = [RatelimitException("202 Ratelimit"), TimeoutException("timed out")]
    urls = DdgsImageSearch(attempts=3, wait_s=0.0).image_urls("grizzly bear", max_results=2)
    assert urls == ["https://a.example/1.jpg", "http://b.example/2.png"]
    assert fake_ddgs.calls == [("grizzly bear", 2)] * 3
    assert "maybe rate-limited" in caplog.text


def test_gives_up_with_a_clear_message(fake_ddgs: type[FakeDDGS]) -> None:
    fake_ddgs.errors = [DDGSException("No results found.")] * 3
    with pytest.raises(SearchError) as caught:
        DdgsImageSearch(attempts=3, wait_s=0.0).image_urls("teddy bear", max_results=5)
    message = str(caught.value)
    assert "'teddy bear' failed 3 times" in message and "rate-limiting" in message and "rerun" in message
