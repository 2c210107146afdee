"""Admins get a run's pictures after its outcome, and the serving model's pictures on /stats."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from core.plots import CAPTIONS, run_plots
from storage.models import RunStatus, TrainingRun, Trigger
from tests.bot_harness import loader  # noqa: F401 - pytest fixture
from tests.bot_harness import ADMIN, CachingLoader, RunningBot, eventually, new_version


def _png(path: Path, color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 30), color).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def learning_bot(tmp_path: Path, loader: CachingLoader) -> Iterator[RunningBot]:  # noqa: F811 - fixture
    """A bot with the learning jobs (outcome announcements) but no trainer of its own."""
    with RunningBot(tmp_path / "var", loader=loader, learning=True, trainer_mode="external", model_poll_seconds=0.2) as bot:
        yield bot


def _finished_run(bot: RunningBot, metrics: dict[str, object], *, version_id: int | None = None) -> int:
    def add(session: Session) -> int:
        run = TrainingRun(
            trigger=Trigger.ADMIN, status=RunStatus.REJECTED if version_id is None else RunStatus.SUCCEEDED,
            requested_chat_id=ADMIN["id"], metrics=metrics, model_version_id=version_id, n_train=10,
        )
        session.add(run)
        session.flush()
        return run.id

    return bot.db(add)


def test_run_outcome_is_followed_by_its_plots_and_a_missing_file_is_skipped(learning_bot: RunningBot, tmp_path: Path) -> None:
    plots = tmp_path / "runs" / "1" / "plots"
    confusion = _png(plots / "confusion_matrix.png", (200, 0, 0))
    changes = _png(plots / "breaks_and_fixes.png", (0, 0, 200))
    paths = [plots / "breaks_and_fixes.png", plots / "gone.png", plots / "confusion_matrix.png"]
    run_id = _finished_run(learning_bot, {"plots": [str(p) for p in paths]})
    api = learning_bot.api
    text = api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith(f"Training run #{run_id}"))[0]
    photos = api.wait_for(lambda s: s.chat_id == ADMIN["id"] and s.method == "sendPhoto", count=2)
    assert [p.photo for p in photos] == [changes, confusion]  # in the run's order, after the text
    assert all(p.at >= text.at for p in photos)
    assert [p.text for p in photos] == [CAPTIONS["breaks_and_fixes"], CAPTIONS["confusion_matrix"]]
    assert not eventually(lambda: len([s for s in api.sent if s.method == "sendPhoto"]) > 2, timeout=1.0)


def test_stats_sends_the_serving_models_plots(learning_bot: RunningBot, tmp_path: Path) -> None:
    top = _png(tmp_path / "runs" / "2" / "top_losses.png", (0, 150, 0))
    v2 = new_version(learning_bot, metrics={"golden_error": 0.02})
    # An older run's metrics: the candidate's own keys, before metrics["plots"] existed.
    _finished_run(learning_bot, {"candidate": {"top_losses_png": str(tmp_path / "runs" / "2" / "top_losses.png")}}, version_id=v2)
    assert eventually(lambda: learning_bot.services.serving.version.id == v2, timeout=10)
    learning_bot.api.wait_for(lambda s: s.method == "sendPhoto")  # the run's own announcement first
    before = len(learning_bot.api.sent)
    request = learning_bot.send(ADMIN, text="/stats")
    report = learning_bot.reply(request)
    assert f"Serving model v{v2}, trained" in report.text or f"Serving model v{v2}," in report.text
    photo = learning_bot.api.wait_for(lambda s: s.method == "sendPhoto" and s.at >= report.at and s.chat_id == ADMIN["id"])[0]
    assert photo.photo == top and photo.text == CAPTIONS["top_losses"]
    assert len(learning_bot.api.sent) - before == 2  # the report and one picture


def test_run_plots_reads_both_metric_layouts() -> None:
    assert run_plots({"plots": ["/a.png", "/b.png"]}) == [Path("/a.png"), Path("/b.png")]
    assert run_plots({"candidate": {"confusion_png": "/c.png", "top_losses_png": "/t.png"}}) == [Path("/c.png"), Path("/t.png")]
    assert run_plots({"confusion_png": "/c.png"}) == [Path("/c.png")]
    assert run_plots({}) == [] and run_plots(None) == []
