"""Micro-batching: photos waiting together share a forward pass, each gets its own model's answer,
and the bot answers a burst with fewer forward passes than photos."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from sqlalchemy import select

from bearbot.backbone import weights_sha256
from bearbot.imaging import open_image, sha256_hex
from bearbot.inference import TorchClassifier, build_v0
from bearbot.prediction import Prediction
from bearbot.settings import load_settings
from bot.batching import MicroBatcher
from core.conversation import Conversation
from core.events import ImageEvent, Sender
from core.services import make_services
from core.texts import OOPS
from storage.models import Image as StoredImage
from storage.models import Origin, PredictionRecord
from tests.bot_harness import (
    CachingLoader,
    RunningBot,
    bear,
    loader,  # noqa: F401 - pytest fixture
)
from tests.core_harness import Recorder, place

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")


class Recording(TorchClassifier):
    """The real classifier, noting the size of every batch it is given."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        with self._lock:
            self.sizes.append(len(images))
        return super().predict_images(images)


@pytest.fixture(scope="module")
def model() -> object:
    return build_v0(LABELS, expected_sha256=weights_sha256())


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [open_image(p.read_bytes()) for p in sorted((FIXTURES / "bears").rglob("*.jpg"))[:10]]


def run(batcher_args: dict[str, float], jobs: list[tuple[TorchClassifier, Image.Image]]) -> list[Prediction]:
    async def main() -> list[Prediction]:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(pool, **batcher_args)  # type: ignore[arg-type]
            try:
                return await asyncio.gather(*(batcher.predict(c, img) for c, img in jobs))
            finally:
                await batcher.aclose()

    return asyncio.run(main())


def test_waiting_photos_share_batches_and_keep_their_own_answers(model: object, images: list[Image.Image]) -> None:
    clf = Recording(model, version_id=1)
    alone = [clf.predict_images([img])[0] for img in images]
    clf.sizes.clear()
    answers = run({"max_batch": 4, "max_wait_ms": 50}, [(clf, img) for img in images])
    assert [a.label for a in answers] == [a.label for a in alone]
    assert [a.bear_score for a in answers] == pytest.approx([a.bear_score for a in alone], abs=1e-5)
    assert sorted(clf.sizes, reverse=True) == [4, 4, 2]


def test_each_photo_is_answered_by_the_model_its_handler_took(model: object, images: list[Image.Image]) -> None:
    old, new = Recording(model, version_id=1), Recording(model, version_id=2)
    jobs = [(old if i % 3 else new, img) for i, img in enumerate(images)]
    answers = run({"max_batch": 8, "max_wait_ms": 50}, jobs)
    assert [a.model_version for a in answers] == [c.version_id for c, _ in jobs]
    assert sum(old.sizes) + sum(new.sizes) == len(images)
    assert max(old.sizes) > 1


def test_batch_size_one_is_each_photo_alone(model: object, images: list[Image.Image]) -> None:
    clf = Recording(model, version_id=1)
    run({"max_batch": 1, "max_wait_ms": 50}, [(clf, img) for img in images[:4]])
    assert clf.sizes == [1, 1, 1, 1]


def test_a_failing_batch_fails_its_photos_and_the_next_batch_still_runs(model: object, images: list[Image.Image]) -> None:
    class Broken(TorchClassifier):
        def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
            raise RuntimeError("model exploded")

    good = TorchClassifier(model, version_id=1)

    async def main() -> tuple[list[object], Prediction]:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(pool, max_batch=4, max_wait_ms=20)
            broken = Broken(model, version_id=9)
            failed = await asyncio.gather(*(batcher.predict(broken, img) for img in images[:3]), return_exceptions=True)
            ok = await batcher.predict(good, images[0])
            await batcher.aclose()
            return failed, ok

    failed, ok = asyncio.run(main())
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert ok.label in LABELS


def test_the_bot_answers_a_burst_in_fewer_forward_passes_than_photos(
    tmp_path: Path, loader: CachingLoader,  # noqa: F811 - the fixture
) -> None:
    users = [{"id": 4000 + i, "is_bot": False, "first_name": f"u{i}"} for i in range(12)]
    photos = [bear(label, n) for label in ("grizzly", "black", "teddy") for n in (1, 2, 3, 4)]
    with RunningBot(tmp_path / "var", loader=loader, batch_max_size=8, batch_wait_ms=20) as bot:
        sent = [bot.send(user, photo=photos[i]) for i, user in enumerate(users)]
        answers = [bot.reply(m, timeout=60) for m in sent]
        assert bot.services is not None
        batches = bot.services.batcher.batches
    assert all(a.text.startswith("🐻") for a in answers)
    assert sum(size * n for size, n in batches.items()) == len(users)
    assert sum(batches.values()) < len(users)


class _FailsOnPhotos:
    """A model that warms up but fails on every photo it is given."""

    labels = LABELS
    version_id = 1

    def predict(self, data: bytes) -> Prediction:
        return Prediction("teddy", 1.0, dict.fromkeys(LABELS, 1 / 3), is_bear=True, model_version=1)

    def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        raise RuntimeError("the model broke")


def test_a_photo_is_stored_while_the_model_runs_so_a_model_failure_loses_nothing(tmp_path: Path) -> None:
    """The image is written and committed beside the forward pass (off the answer's path), never
    after the answer: a photo the model fails on is kept, and no prediction claims it."""
    settings = load_settings(data_dir=tmp_path / "var")
    core = Conversation(make_services(settings, loader=lambda _version: _FailsOnPhotos()))
    out = Recorder()

    async def scenario() -> None:
        await core.start()
        try:
            await core.handle(ImageEvent.of_bytes(Sender("telegram", 2001, "Alice"), place(2001), bear("grizzly")), out)
        finally:
            await core.stop()

    asyncio.run(scenario())
    assert out.texts == [OOPS]
    with core.services.storage.session() as session:
        images = list(session.scalars(select(StoredImage)))
        assert [(i.sha256, i.origin) for i in images] == [(sha256_hex(bear("grizzly")), Origin.UPLOAD)]
        assert (settings.images_dir / images[0].path).read_bytes() == bear("grizzly")
        assert list(session.scalars(select(PredictionRecord))) == []
    core.services.storage.close()
