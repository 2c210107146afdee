"""Fault suite, replicas: two `bearbot run` processes and two workers on ONE PostgreSQL server.

Each bot process polls its own fake Bot API (as two replicas behind a load balancer would each
get part of the traffic). Shown: a user over the photo limit on replica A is refused on replica B;
two admins' /retrain at once on A and B queue one run, which one of two workers executes; the
run's outcome reaches the admin once, not once per replica. Skipped where no PostgreSQL server
binaries exist (tests/test_postgres.py starts the throwaway server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bearbot.settings import Settings, load_settings, settings_to_env
from storage import model_versions, runs
from storage.models import PredictionRecord, TrainingRun
from storage.store import Storage, open_storage
from tests.bot_harness import ADMIN, ALICE, BOB, FIXTURES, FakeBotApi, bear
from tests.test_postgres import pg_url  # noqa: F401 - the throwaway PostgreSQL server fixture

pytestmark = pytest.mark.slow

TINY = {"golden_fraction": 0.3, "train_batch_size": 4, "device": "cpu", "image_size": 96}


def _wait(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@contextmanager
def _bot_process(settings: Settings, api: FakeBotApi, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bearbot run`` against ``api``, stopped with SIGTERM (as a container runtime does)."""
    env = {**os.environ, **settings_to_env(settings), "TELEGRAM_API_URL": api.url, "TELEGRAM_BOT_TOKEN": api.token}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bearbot", "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answer(api: FakeBotApi, user: dict[str, Any], **message: Any) -> str:
    """Send ``message`` from ``user`` through ``api``; the text of the bot's reply to it."""
    sent = api.send_user_message(user, **message)
    return api.wait_for(lambda s: s.reply_to == sent["message_id"], timeout=60)[0].text or ""


def _outcomes(apis: list[FakeBotApi]) -> list[str]:
    """Every run-outcome message any replica sent to the admin (not the replies to /retrain)."""
    return [s.text or "" for api in apis for s in api.sent
            if s.chat_id == ADMIN["id"] and s.reply_to is None and (s.text or "").startswith("Training run #")]


def test_two_bots_and_two_workers_share_limits_runs_and_notifications(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    from storage.db import downgrade, upgrade
    from trainer.dataset_import import import_folder

    upgrade(pg_url)
    downgrade(pg_url, "base")  # a clean schema on the shared server
    settings = load_settings(
        data_dir=tmp_path / "var", database_url=pg_url, admin_ids=frozenset({ADMIN["id"]}), trainer_mode="external",
        photos_per_minute=2, model_poll_seconds=0.5, **TINY,
    )
    with open_storage(settings) as store:
        import_folder(store, FIXTURES / "bears", progress=False)
        with store.session() as s:
            model_versions.ensure_serving(s, settings)
    apis = [FakeBotApi(), FakeBotApi()]
    with ExitStack() as stack:
        for api in apis:
            api.start()
            stack.callback(api.stop)
        for i, api in enumerate(apis):
            stack.enter_context(_bot_process(settings, api, tmp_path / f"bot{i}.log"))
        a, b = apis
        for api in apis:  # both replicas are up once they poll for updates
            _wait(lambda api=api: any(m == "getUpdates" for m, _ in api.calls), timeout=120, what="a bot to poll")

        # Limits: Alice's two photos a minute, sent to replica A, use up her limit on replica B too.
        for n in (1, 2):
            assert not (answer := _answer(a, ALICE, photo=bear("black", n))).startswith("Slow down"), answer
        assert (refused := _answer(b, ALICE, photo=bear("black", 3))).startswith("Slow down"), refused
        assert not (answer := _answer(b, BOB, photo=bear("black", 3))).startswith("Slow down"), answer  # others are served
        with open_storage(settings, migrate=False) as store, store.session() as s:
            assert s.scalar(select(func.count()).select_from(PredictionRecord)) == 3  # Alice's third was not classified

        # One run at a time: /retrain on both replicas at once queues one run; the other request joins it.
        asks = [api.send_user_message(ADMIN, text="/retrain") for api in apis]  # sent together, answered in parallel
        replies = [api.wait_for(lambda s, m=m: s.reply_to == m["message_id"], timeout=60)[0].text or ""
                   for api, m in zip(apis, asks, strict=True)]
        assert sorted(r.split(" ", 1)[0] for r in replies) == ["Queued", "Training"], replies
        assert any("already queued" in r for r in replies), replies

        # Two workers start together; one executes the run, the other finds nothing to do.
        env = {**os.environ, **settings_to_env(settings)}
        workers = [subprocess.Popen([sys.executable, "-m", "bearbot", "worker", "--once"], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        outputs = [w.communicate(timeout=420)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        assert sorted(int(o.rsplit("executed ", 1)[1].split()[0]) for o in outputs) == [0, 1], outputs

        # One notification per run: whichever replica claims it tells the admin; the other stays quiet.
        _wait(lambda: _outcomes(apis), timeout=60, what="the run's outcome message")
        time.sleep(8)  # more than two dispatch rounds (3 s) of both replicas
        assert len(_outcomes(apis)) == 1, _outcomes(apis)
        with open_storage(settings, migrate=False) as store, store.session() as s:
            run = runs.get_run(s, run_id=1)
            assert run is not None and run.status in runs.FINISHED and run.notified
            assert int(run.worker.split(":")[1]) in {w.pid for w in workers}
            assert s.scalar(select(func.count()).select_from(TrainingRun)) == 1
            assert s.scalar(select(func.count()).select_from(TrainingRun).where(TrainingRun.status.in_(runs.ACTIVE))) == 0


def test_a_replica_claims_only_the_learned_notices_it_can_deliver(storage: Storage) -> None:
    """A Telegram-only process leaves a Discord user's "now part of vN" to a process that serves Discord."""
    from bearbot.prediction import Prediction
    from storage import predictions
    from storage.models import Correction, CorrectionStatus, Origin
    from storage.notices import claim_learned_notices
    from storage.users import upsert_user
    from tests.helpers import image_bytes

    answer = Prediction(label="grizzly", confidence=0.9, probabilities={"grizzly": 0.9, "black": 0.1},
                        is_bear=True, model_version=None)
    with storage.session() as s:
        version = model_versions.create_version(s, artifact_path=None, sha256="a" * 64, arch="x", labels=["black", "grizzly"],
                                                metrics={}, activate=True)
        for n, transport in enumerate(("telegram", "discord")):
            user = upsert_user(s, external_id=500 + n, display_name=transport, is_admin=False, transport=transport)
            image, _ = storage.images.put(s, data=image_bytes((40 * n, 90, 30)), origin=Origin.UPLOAD)
            pred = predictions.record_prediction(s, image_id=image.id, user_id=user.id, chat_id=900 + n, message_id=n,
                                                 answer=answer, transport=transport)
            s.add(Correction(image_id=image.id, user_id=user.id, label="black", prediction_id=pred.id,
                             status=CorrectionStatus.ACCEPTED, learned_version_id=version.id))
    with storage.session() as s:
        telegram = claim_learned_notices(s, transports={"telegram"})
    with storage.session() as s:
        discord = claim_learned_notices(s, transports={"discord"})
        again = claim_learned_notices(s)  # nothing is left for anyone
    assert [(n.transport, n.chat_id) for n in telegram] == [("telegram", 900)]
    assert [(n.transport, n.chat_id) for n in discord] == [("discord", 901)]
    assert again == []
