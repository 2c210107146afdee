"""The whole loop through the bot: photo → two users correct → /retrain → trainer process →
promoted → the bot swaps models → the next photo is answered by the new version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from bearbot.settings import load_settings
from storage.models import Prediction, TrainingRun
from storage.store import open_storage
from tests.bot_harness import ADMIN, ALICE, BOB, FIXTURES, GROUP, RunningBot, bear, eventually
from trainer.dataset_import import import_folder

pytestmark = pytest.mark.slow

# The real recipe (a run over the fixture photos takes seconds on a CPU), at 224 px: there the
# candidate beats v0's golden log-loss on these few photos, so the run is promoted. (At 288 px it
# ties v0 and the gate keeps v0; rejection is covered by tests/test_learning_loop.py.)
TINY = {"golden_fraction": 0.3, "train_batch_size": 4, "device": "cpu", "image_size": 224}


def test_corrections_retrain_promote_and_swap(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    dataset = tmp_path / "bears"
    shutil.copytree(FIXTURES / "bears", dataset)
    (dataset / "teddy" / "teddy4.jpg").unlink()  # users send this one
    store = open_storage(load_settings(data_dir=data_dir, **TINY))
    import_folder(store, dataset, progress=False)
    store.close()
    with RunningBot(data_dir, learning=True, model_poll_seconds=0.5, **TINY) as bot:
        answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=bear("teddy", 4)))
        for user in (ALICE, BOB):
            reply = bot.reply(bot.send(user, chat=GROUP, text="/correct teddy", reply_to=answer.message_id))
        assert "next training run" in reply.text  # two users agree: accepted
        assert bot.reply(bot.send(ADMIN, text="/retrain")).text.startswith("Queued training run #1")
        outcome = bot.api.wait_for(
            lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Training run #1"), timeout=540
        )[0]
        assert "succeeded" in outcome.text, outcome.text
        run = bot.db(lambda s: s.scalar(select(TrainingRun)))
        assert run.model_version_id is not None and run.n_corrections == 1
        assert eventually(lambda: bot.services.models.version.id == run.model_version_id, timeout=60)
        bot.reply(bot.send(ALICE, photo=bear("grizzly", 4)))
        last = eventually(lambda: bot.db(lambda s: s.scalar(select(Prediction).order_by(Prediction.id.desc()))))
        assert last.model_version_id == run.model_version_id
        assert f"Serving model v{run.model_version_id}, trained" in bot.reply(bot.send(ADMIN, text="/stats")).text
