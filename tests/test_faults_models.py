"""Fault suite, model files: a corrupt or missing active model at start, a hot swap that fails
once, and model files piling up."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bearbot.prediction import Classifier
from bearbot.settings import Settings, load_settings
from core.services import default_bootstrap
from bot.model_holder import ClassifierLoader
from storage import model_versions
from storage.models import ModelVersion, RunStatus, TrainingRun, Trigger
from storage.store import open_storage
from tests.bot_harness import ADMIN, ALICE, CachingLoader, RunningBot, bear, eventually, new_version
from tests.bot_harness import loader  # noqa: F401 - pytest fixture

GARBAGE = b"not a model at all"


def _broken_active(data_dir: Path, problem: str) -> None:
    """v1 (built-in, good) then v2 made active, whose file is garbage or missing."""
    settings = load_settings(data_dir=data_dir)
    store = open_storage(settings)
    with store.session() as s:
        default_bootstrap(settings)(s)
        v1 = model_versions.get_active(s)
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        if problem == "garbage":
            (settings.models_dir / "model-v2.pkl").write_bytes(GARBAGE)
        model_versions.create_version(
            s, artifact_path="model-v2.pkl", sha256=hashlib.sha256(GARBAGE).hexdigest(), arch=v1.arch,
            labels=list(v1.labels), metrics={}, activate=True,
        )
    store.close()


@pytest.mark.parametrize("problem", ["garbage", "missing"])
def test_a_broken_active_model_at_start_serves_the_previous_one(
    tmp_path: Path, loader: CachingLoader, problem: str
) -> None:
    data_dir = tmp_path / "var"
    _broken_active(data_dir, problem)
    with RunningBot(data_dir, loader=loader, model_poll_seconds=0.2) as bot:
        warning = bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("⚠️"))[0]
        assert "v2 could not be loaded at start" in warning.text and "serving v1 instead" in warning.text
        assert bot.services.serving.version.id == 1
        assert "%" in bot.reply(bot.send(ALICE, photo=bear("grizzly"))).text
        active = bot.db(model_versions.get_active)
        broken = bot.db(lambda s: model_versions.get_version(s, version_id=2))
        assert active.id == 1 and active.previous_id is None  # a rollback never leads back to v2
        assert broken.load_error and "could not be loaded at start" in broken.load_error
    listing = subprocess.run(
        [sys.executable, "-m", "bearbot", "models", "list"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "BEARBOT_DATA_DIR": str(data_dir)},
    )
    assert listing.returncode == 0, listing.stderr
    assert "* v1" in listing.stdout and "cannot be loaded" in listing.stdout, listing.stdout


class FlakyLoader(CachingLoader):
    """The real loader, but the first load of each non-initial version fails (a transient OOM)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: set[int] = set()

    def for_settings(self, settings: Settings) -> ClassifierLoader:
        real = super().for_settings(settings)

        def load(version: ModelVersion) -> Classifier:
            if version.id > 1 and version.id not in self.failed:
                self.failed.add(version.id)
                raise MemoryError("out of memory while loading")
            return real(version)

        return load


def test_a_failed_hot_swap_is_retried(tmp_path: Path) -> None:
    with RunningBot(tmp_path / "var", loader=FlakyLoader(), model_poll_seconds=0.2) as bot:
        v2 = new_version(bot)
        warning = bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("⚠️"))[0]
        assert f"v{v2} could not be loaded" in warning.text
        assert bot.db(lambda s: model_versions.get_version(s, version_id=v2)).load_error
        assert eventually(lambda: bot.services.serving.version.id == v2, timeout=15)  # retried after 10 polls
        assert eventually(lambda: bot.db(lambda s: model_versions.get_version(s, version_id=v2)).load_error is None)
        assert len([s for s in bot.api.sent if (s.text or "").startswith("⚠️")]) == 1


def test_old_model_files_are_cleaned_but_the_rollback_chain_is_kept(tmp_path: Path) -> None:
    from trainer.cleanup import MIN_AGE_SECONDS, clean_up

    store = open_storage(load_settings(data_dir=tmp_path / "var", keep_model_versions=2))
    models_dir, runs_dir = store.settings.models_dir, store.settings.runs_dir
    models_dir.mkdir(parents=True)
    with store.session() as s:
        model_versions.create_version(
            s, artifact_path=None, sha256="0" * 64, arch="x", labels=["a", "b"], metrics={}, activate=True
        )
        for i in range(2, 9):  # v2…v8, each promoted over the one before
            (models_dir / f"model-{i}.pkl").write_bytes(b"weights %d" % i)
            model_versions.create_version(
                s, artifact_path=f"model-{i}.pkl", sha256=f"{i}" * 64, arch="x", labels=["a", "b"], metrics={},
                activate=True,
            )
        for i in range(1, 5):  # runs 1–3 finished, run 4 still running
            s.add(TrainingRun(trigger=Trigger.SCHEDULE, status=RunStatus.FAILED if i < 4 else RunStatus.RUNNING))
            (runs_dir / f"run-{i}" / "export").mkdir(parents=True)
    stale_tmp, fresh_tmp = models_dir / ".publish-old.tmp", models_dir / ".publish-new.tmp"
    for path in (stale_tmp, fresh_tmp):
        path.write_bytes(b"half a model")
    old = time.time() - MIN_AGE_SECONDS - 60
    os.utime(stale_tmp, (old, old))

    removed = clean_up(store)

    left = sorted(p.name for p in models_dir.iterdir())
    # kept: the newest 2 (v7, v8), the serving v8 and 2 rollbacks from it (v7, v6); a young temp file
    assert left == [".publish-new.tmp", "model-6.pkl", "model-7.pkl", "model-8.pkl"]
    assert stale_tmp in removed
    assert sorted(p.name for p in runs_dir.iterdir()) == ["run-3", "run-4"]
    with store.session() as s:
        gone = model_versions.get_version(s, version_id=3)
        assert gone.load_error and "removed" in gone.load_error
        assert model_versions.rollback(s).id == 7  # the rollback still has its file
    store.close()


# --- the serving artifact runs no code ------------------------------------------------------------


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {os.environ['BEARBOT_TEST_MARKER']}",))


def test_a_planted_pickle_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can write the data dir and the database still cannot make the bot run code."""
    import pickle

    from bearbot.artifact import ArtifactError
    from bearbot.inference import load_classifier

    marker = tmp_path / "pwned"
    monkeypatch.setenv("BEARBOT_TEST_MARKER", str(marker))
    evil = tmp_path / "model-evil.safetensors"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ArtifactError, match="not a bearbot weights file"):
        load_classifier(
            artifact_path=evil, sha256=hashlib.sha256(evil.read_bytes()).hexdigest(), arch="efficientnet_lite0",
            labels=("grizzly", "black", "teddy"), version_id=9,
        )
    assert not marker.exists()


def test_weights_round_trip_to_the_same_answers(tmp_path: Path) -> None:
    from bearbot.artifact import learner_companion, publish, write_weights
    from bearbot.inference import TorchClassifier, build_v0, load_classifier, weights_of

    labels = ("grizzly", "black", "teddy")
    model = build_v0(labels)
    export = tmp_path / "export" / "model.safetensors"
    write_weights(*weights_of(model), export)
    learner_companion(export).write_bytes(b"a learner export")  # travels along when published
    path, sha = publish(export, tmp_path / "models")
    assert path.name.endswith(".safetensors") and learner_companion(path).read_bytes() == b"a learner export"
    loaded = load_classifier(
        artifact_path=path.name, sha256=sha, arch="efficientnet_lite0", labels=labels, version_id=3,
        models_dir=tmp_path / "models", optimize=False,
    )
    original = TorchClassifier(model, version_id=3)
    for label in labels:
        data = bear(label)
        assert loaded.predict(data).probabilities == pytest.approx(original.predict(data).probabilities, abs=1e-6)
