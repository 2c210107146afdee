"""Test doubles for the dataset tools: distinct images, a fake search, a local image server."""

from __future__ import annotations

import contextlib
import io
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from trainer.search import SearchError

SLOW_S = 2.0


def distinct_image(seed: int, *, quality: int = 90, size: tuple[int, int] = (90, 80)) -> bytes:
    """A JPEG whose difference hash is random per ``seed`` (distinct seeds are ~32 bits apart).

    A random 9×8 grey grid blown up with NEAREST fixes the dhash exactly; re-encoding the same
    seed at another ``quality`` or ``size`` gives a near-duplicate with other bytes.
    """
    rng = random.Random(seed)
    grid = Image.frombytes("L", (9, 8), bytes(rng.randrange(256) for _ in range(72)))
    img = grid.resize(size, Image.Resampling.NEAREST).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_label_folder(root: Path, layout: dict[str, list[int]], *, broken: tuple[str, ...] = ()) -> Path:
    """``root/<label>/<seed>.jpg`` for each seed, plus a truncated ``broken.jpg`` in each ``broken`` label."""
    for label, seeds in layout.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (root / label / f"{seed}.jpg").write_bytes(distinct_image(seed))
    for label in broken:
        (root / label / "broken.jpg").write_bytes(distinct_image(999)[:200])
    return root


@dataclass
class FakeSearch:
    """Returns fixed URLs per query; raises :class:`SearchError` for queries in ``failing``."""

    results: dict[str, list[str]]
    failing: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def image_urls(self, query: str, *, max_results: int) -> list[str]:
        self.calls.append(query)
        if query in self.failing:
            raise SearchError(f"rate limited on {query!r}")
        return self.results.get(query, [])[:max_results]


@dataclass
class ImageServer:
    """What the local server serves, and how often each path was requested."""

    base: str
    requests: Counter[str]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _routes(max_bytes: int) -> dict[str, tuple[int, dict[str, str], bytes]]:
    big = distinct_image(77, size=(1200, 1000), quality=100)
    assert len(big) > max_bytes
    routes = {f"/good/{seed}.jpg": (200, {"Content-Type": "image/jpeg"}, distinct_image(seed)) for seed in range(1, 13)}
    routes.update(
        {
            "/dup.jpg": routes["/good/1.jpg"],  # the same bytes at another URL
            "/near.jpg": (200, {"Content-Type": "image/jpeg"}, distinct_image(2, quality=60)),
            "/octet.bin": (200, {"Content-Type": "application/octet-stream"}, distinct_image(20)),
            "/corrupt.jpg": (200, {"Content-Type": "image/jpeg"}, distinct_image(3)[:300]),
            "/page.html": (200, {"Content-Type": "text/html"}, b"<html>cookie wall</html>"),
            "/html-as-jpeg.jpg": (200, {"Content-Type": "image/jpeg"}, b"<html>not really</html>"),
            "/big.jpg": (200, {"Content-Type": "image/jpeg", "Content-Length": str(len(big))}, big),
            "/big-undeclared.jpg": (200, {"Content-Type": "image/jpeg"}, big),  # no length: counted
            "/redirect": (302, {"Location": "/good/4.jpg"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/missing.jpg": (404, {"Content-Type": "text/plain"}, b"not found"),
        }
    )
    return routes


@contextmanager
def image_server(*, max_bytes: int) -> Iterator[ImageServer]:
    """A threaded HTTP/1.0 server on 127.0.0.1 with good, broken, slow, big and redirecting URLs."""
    routes = _routes(max_bytes)
    requests: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            requests[self.path] += 1
            if self.path == "/slow.jpg":
                time.sleep(SLOW_S)
                self.path = "/good/5.jpg"
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client gave up (size limit)
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()
