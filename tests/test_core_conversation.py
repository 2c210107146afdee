"""The conversation core on its own: events in, replies out, no transport library involved."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bearbot.settings import load_settings
from core import learning
from core.conversation import Conversation
from core.events import ButtonEvent, ChatterEvent, CommandEvent, ImageEvent, Target
from core.notices import announce_learned
from core.replies import Reply
from core.services import make_services
from core.texts import FOREIGN_BUTTON, NOT_ADMIN, TEXT_HINT, parse_feedback
from storage.models import (
    Correction,
    CorrectionStatus,
    PredictionRecord,
    RunStatus,
    TrainingRun,
    Trigger,
)
from tests.core_harness import (  # noqa: F401 - pytest fixture
    ADMIN,
    ALICE,
    ALICE_ON_DISCORD,
    CachingLoader,
    Mailbox,
    Recorder,
    bear,
    loader,
    place,
    started_core,
)

pytestmark = pytest.mark.anyio


async def _answer(core: Conversation, chat_id: int = 2001) -> tuple[int, Reply, int]:
    """Send a grizzly photo; returns (answer message id, the answer, photo message id)."""
    where = place(chat_id)
    out = Recorder()
    await core.handle(ImageEvent.of_bytes(ALICE, where, bear("grizzly")), out)
    [(answer_id, answer)] = out.sent
    assert where.message_id is not None
    return answer_id, answer, where.message_id


def _rows(core: Conversation, model: type) -> list:
    with core.services.storage.session() as session:
        rows = list(session.scalars(select(model)))
        session.expunge_all()
        return rows


async def test_photo_is_answered_with_buttons_and_stored(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        answer_id, answer, photo_id = await _answer(core)
        assert answer.text.startswith("🐻 ") and "%" in answer.text
        ids = [button.id for row in answer.buttons for button in row]
        assert all(parse_feedback(i) for i in ids) and len(ids) == 4  # ✅ grizzly, it's black, it's teddy, not a bear
        [row] = _rows(core, PredictionRecord)
        assert (row.transport, row.chat_id, row.message_id, row.reply_message_id) == ("telegram", 2001, photo_id, answer_id)


async def test_button_counts_only_under_its_own_answer(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        answer_id, answer, _ = await _answer(core)
        confirm = answer.buttons[0][0].id
        elsewhere = Recorder()  # the same id pressed under another message of the chat
        await core.handle(ButtonEvent(ALICE, place(2001, answer_id + 1), confirm), elsewhere)
        other_transport = Recorder()  # the same chat and message numbers, but on Discord
        await core.handle(ButtonEvent(ALICE_ON_DISCORD, place(2001, answer_id), confirm), other_transport)
        assert elsewhere.toasts == other_transport.toasts == [(FOREIGN_BUTTON, True)]
        assert not _rows(core, Correction)
        out = Recorder()
        await core.handle(ButtonEvent(ALICE, place(2001, answer_id), confirm), out)
        assert "thanks for confirming" in out.toasts[0][0]
        [(text, keep)] = out.edits
        assert keep and text.startswith(answer.text.split("\n")[0]) and "Recorded" in text
        assert len(_rows(core, Correction)) == 1


async def test_correct_command_needs_a_target(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        answer_id, answer, photo_id = await _answer(core)
        out = Recorder()
        await core.handle(CommandEvent(ALICE, place(2001), "correct", ("teddy",)), out)
        assert out.texts[0].startswith("To correct me, reply to my answer")
        button_ids = tuple(b.id for row in answer.buttons for b in row)
        await core.handle(CommandEvent(ALICE, place(2001), "correct", ("teddy",), Target(answer_id, button_ids)), out)
        assert out.texts[1].startswith("Recorded: teddy — I said grizzly")
        await core.handle(CommandEvent(ALICE, place(2001), "correct", ("black",), Target(photo_id)), out)  # the photo itself
        assert out.texts[2].startswith("Updated: black")
        await core.handle(CommandEvent(ALICE, place(2001), "correct", ("black",), Target(photo_id + 999)), out)
        assert out.texts[3].startswith("I have no prediction for that message")


async def test_admin_commands_are_for_admins_and_private(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        refused, allowed = Recorder(), Recorder()
        await core.handle(CommandEvent(ALICE, place(2001), "model"), refused)
        await core.handle(CommandEvent(ADMIN, place(1001), "model"), allowed)
        assert refused.texts == [NOT_ADMIN] and not refused.sent[0][1].private
        assert allowed.texts[0].startswith("Serving model v1") and allowed.sent[0][1].private


async def test_oversize_file_is_refused_before_fetching(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    fetched: list[int] = []

    async def fetch(limit: int) -> bytes:
        fetched.append(limit)
        return b""

    async with started_core(tmp_path / "var", loader, max_download_bytes=1024 * 1024) as core:
        out = Recorder()
        await core.handle(ImageEvent(ALICE, place(2001), 5 * 1024 * 1024, fetch), out)
        assert out.texts == ["That file is too big for me (limit 1 MB). Send a smaller photo."] and not fetched


async def test_corrupt_image_gets_one_clear_line(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        out = Recorder()
        await core.handle(ImageEvent.of_bytes(ALICE, place(2001), b"\xff\xd8 not really a jpeg"), out)
        assert out.texts[0].startswith("Sorry, I can't use that file") and not _rows(core, PredictionRecord)


async def test_text_hint_only_in_private_chats(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        private, group = Recorder(), Recorder()
        await core.handle(ChatterEvent(ALICE, place(2001), "text"), private)
        await core.handle(ChatterEvent(ALICE, place(-100, private=False), "text"), group)
        await core.handle(CommandEvent(ALICE, place(-100, private=False), "frobnicate"), group)
        assert private.texts == [TEXT_HINT] and group.sent == []


async def test_run_outcomes_go_to_the_transport_that_asked(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        telegram, discord = Mailbox("telegram"), Mailbox("discord")
        outboxes = {"telegram": telegram, "discord": discord}
        with core.services.storage.session() as session:
            for chat, transport in ((555, "discord"), (None, None)):
                session.add(TrainingRun(
                    trigger=Trigger.ADMIN, status=RunStatus.REJECTED, requested_chat_id=chat,
                    requested_transport=transport, metrics={}, n_train=10,
                ))
        telegram_only = Mailbox("telegram")  # a process serving Telegram alone leaves Discord's run to Discord's
        await learning.dispatch(core.services, learning.LearningState(), {"telegram": telegram_only})
        assert [r.text[:15] for r in telegram_only.admins] == ["Training run #2"] and not telegram_only.chats
        await learning.dispatch(core.services, learning.LearningState(), outboxes)
        [(chat_id, asked, _)] = discord.chats
        assert chat_id == 555 and asked.text.startswith("Training run #1") and not telegram.chats
        assert not telegram.admins and not discord.admins  # run #2 was told once, above
        with core.services.storage.session() as session:  # a scheduled run: every transport's admins hear
            session.add(TrainingRun(trigger=Trigger.SCHEDULE, status=RunStatus.FAILED, metrics={}, n_train=10))
        await learning.dispatch(core.services, learning.LearningState(), outboxes)
        assert [r.text[:15] for r in telegram.admins] == [r.text[:15] for r in discord.admins] == ["Training run #3"]


async def test_learned_notice_goes_to_the_chat_of_the_correction(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        where = place(777)
        answered = Recorder()
        await core.handle(ImageEvent.of_bytes(ALICE_ON_DISCORD, where, bear("grizzly")), answered)
        [(answer_id, answer)] = answered.sent
        await core.handle(ButtonEvent(ALICE_ON_DISCORD, place(777, answer_id), answer.buttons[0][0].id), Recorder())
        with core.services.storage.session() as session:
            session.execute(update(Correction).values(status=CorrectionStatus.ACCEPTED, learned_version_id=1))
        telegram, discord = Mailbox("telegram"), Mailbox("discord")
        assert await announce_learned(core.services.storage, {"telegram": telegram, "discord": discord}) == 1
        [(chat_id, notice, reply_to)] = discord.chats
        assert (chat_id, reply_to) == (777, where.message_id) and "part of model v1" in notice.text
        assert not telegram.chats


async def test_discord_users_are_told_discord_ways_to_correct(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        discord, telegram = Recorder(), Recorder()
        for out, sender in ((discord, ALICE_ON_DISCORD), (telegram, ALICE)):
            await core.handle(CommandEvent(sender, place(2001), "help"), out)
            await core.handle(CommandEvent(sender, place(2001), "correct", ("teddy",)), out)
        assert all("/correct label:<label>" in text and "reply" not in text for text in discord.texts)
        assert all("/correct <label>" in text and "label:" not in text for text in telegram.texts)


async def test_stop_lets_a_job_in_flight_finish(
    tmp_path: Path, loader: CachingLoader, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """A stop while a scheduled job is mid-way lets it finish: APScheduler would cancel it and log a traceback."""
    started, finished = asyncio.Event(), []

    async def slow_dispatch(*_args: object) -> None:
        started.set()
        await asyncio.sleep(0.3)  # a database round trip, a message to admins
        finished.append(True)

    monkeypatch.setattr(learning, "dispatch", slow_dispatch)
    settings = load_settings(data_dir=tmp_path / "var")
    core = Conversation(make_services(settings, loader=loader.for_settings(settings)), learn=True)
    await core.start()
    await asyncio.wait_for(started.wait(), 30)
    with caplog.at_level(logging.ERROR):
        await core.stop()
    assert finished == [True]
    assert not [r for r in caplog.records if "raised an exception" in r.getMessage()]
