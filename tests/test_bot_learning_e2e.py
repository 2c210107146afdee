"""The whole loop through the bot: photo → two users correct → /retrain → trainer process →
promoted → the bot swaps models → the next photo is answered by the new version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bearbot.settings import load_settings
from storage.models import PredictionRecord, TrainingRun
from storage.store import open_storage
from tests.bot_harness import ADMIN, ALICE, BOB, FIXTURES, GROUP, RunningBot, eventually
from trainer.dataset_import import import_folder

pytestmark = pytest.mark.slow

# The real recipe and gate (a run over the fixture photos takes seconds on a CPU). Users correct two
# cinnamon black bears the zero-shot model calls grizzly, each with a second similar photo; every one
# is fixed by a candidate trained without it (4 fixes, 0 breaks, sign test p = 1/16 ≤ 0.1).
TINY = {"golden_fraction": 0.3, "train_batch_size": 4, "device": "cpu", "gate_alpha": 0.1}
HARD = ("black_b4ba30.jpg", "black_b4ba30_mirror.jpg", "black_d4df69.jpg", "black_d4df69_mirror.jpg")


def test_corrections_retrain_promote_and_swap(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    store = open_storage(load_settings(data_dir=data_dir, **TINY))
    import_folder(store, FIXTURES / "bears", progress=False)
    store.close()
    # trust 0/0: Alice's and Bob's agreement counts (tests/test_faults_trust.py runs the default policy)
    with RunningBot(data_dir, learning=True, model_poll_seconds=0.5, trust_min_days=0, trust_min_right=0, **TINY) as bot:
        for name in HARD:
            answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=(FIXTURES / "hard" / name).read_bytes()))
            assert "grizzly" in answer.text  # wrong: a cinnamon black bear
            for user in (ALICE, BOB):
                reply = bot.reply(bot.send(user, chat=GROUP, text="/correct black", reply_to=answer.message_id))
            assert "next training run" in reply.text  # two users agree: accepted
        assert bot.reply(bot.send(ADMIN, text="/retrain")).text.startswith("Queued training run #1")
        outcome = bot.api.wait_for(
            lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Training run #1"), timeout=540
        )[0]
        assert "succeeded" in outcome.text and "fixes 4 photos" in outcome.text, outcome.text
        run = bot.db(lambda s: s.scalar(select(TrainingRun)))
        assert run.model_version_id is not None and run.n_corrections == 4
        assert eventually(lambda: bot.services.serving.version.id == run.model_version_id, timeout=60)
        # The trainer published the graph with the weights: the swap loaded it, no export, no torch model here.
        assert bot.services.serving.current.runtime == "onnxruntime (cache)"
        bot.reply(bot.send(ALICE, photo=(FIXTURES / "hard" / "black_29eeac.jpg").read_bytes()))
        last = eventually(lambda: bot.db(lambda s: s.scalar(select(PredictionRecord).order_by(PredictionRecord.id.desc()))))
        assert last.model_version_id == run.model_version_id
        assert f"Serving model v{run.model_version_id}, trained" in bot.reply(bot.send(ADMIN, text="/stats")).text
