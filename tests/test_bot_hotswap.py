"""Hot swap of the serving model: a new active version is picked up, a broken one is refused."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import PredictionRecord
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ADMIN, ALICE, bear, eventually, new_version, RunningBot


def _prediction_versions(bot: RunningBot) -> list[int]:
    return bot.db(lambda s: list(s.scalars(select(PredictionRecord.model_version_id).order_by(PredictionRecord.id))))


def test_new_active_version_answers_the_next_photo(bot: RunningBot) -> None:
    bot.reply(bot.send(ALICE, photo=bear("grizzly")))
    v2 = new_version(bot, metrics={"golden_error": 0.012})
    assert eventually(lambda: bot.services.serving.version.id == v2, timeout=10)
    bot.reply(bot.send(ALICE, photo=bear("grizzly", 2)))
    assert eventually(lambda: _prediction_versions(bot) == [1, v2])
    assert "It errs on 1.2% of the golden set." in bot.reply(bot.send(ADMIN, text="/model")).text


@pytest.mark.parametrize("problem", ["wrong sha256", "garbage file", "missing file"])
def test_broken_artifact_keeps_the_old_model_and_tells_admins(bot: RunningBot, problem: str) -> None:
    models_dir = bot.settings.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not a pickled learner"
    (models_dir / "broken.pkl").write_bytes(garbage)
    sha = {"wrong sha256": "0" * 64, "garbage file": hashlib.sha256(garbage).hexdigest(), "missing file": "1" * 64}[problem]
    path = "gone.pkl" if problem == "missing file" else "broken.pkl"
    bad = new_version(bot, artifact_path=path, sha256=sha)
    warning = bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("⚠️"))[0]
    assert f"Model v{bad} could not be loaded" in warning.text and "still serving v1" in warning.text
    assert bot.services.serving.version.id == 1
    bot.reply(bot.send(ALICE, photo=bear("teddy")))
    assert eventually(lambda: _prediction_versions(bot) == [1])
    assert f"v{bad} is active in the database but not serving yet" in bot.reply(bot.send(ADMIN, text="/stats")).text
    time.sleep(0.5)  # several polls later: reported once, not retried every poll
    assert len([s for s in bot.api.sent if (s.text or "").startswith("⚠️")]) == 1


@pytest.mark.slow
def test_predictions_running_across_a_swap_all_succeed(bot: RunningBot) -> None:
    images = [bear(label, n) for label in ("grizzly", "black", "teddy") for n in (1, 2, 3, 4)]
    services = bot.services

    async def hammer() -> tuple[list[int | None], float]:
        swapped = asyncio.Event()
        versions: list[int | None] = []

        async def client(k: int) -> None:
            # Predicts from before the swap until 10 answers after it, however long the swap takes
            # (on a loaded machine the new version's export alone outlasts any fixed burst).
            i, after = k, 0
            while after < 10:
                answer = await services.predict(services.serving.current, images[i % len(images)])
                versions.append(answer.model_version)
                i, after = i + 4, after + swapped.is_set()

        clients = [asyncio.create_task(client(k)) for k in range(4)]
        await asyncio.sleep(0.1)
        await asyncio.to_thread(new_version, bot)
        result = await services.serving.refresh()
        swapped.set()
        await asyncio.gather(*clients)
        return versions, result.pause_ms

    versions, pause_ms = bot.call(hammer)
    assert len(versions) >= 40 and set(versions) == {1, 2} and versions[0] == 1 and versions[-1] == 2
    assert pause_ms < 5.0
