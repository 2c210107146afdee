"""The Discord bot end to end: real discord.py, the core, SQLite and the model, against the fake Discord."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.texts import DOWNLOAD_FAILED, NOT_ADMIN, NOT_AN_IMAGE, TEXT_HINT
from storage.models import Correction, Image, PredictionRecord
from tests.bot_harness import eventually
from tests.core_harness import CachingLoader, bear
from tests.fake_discord import FakeDiscord, Sent
from tests.fake_discord.harness import DiscordBot, pointed_at

JPEG = "image/jpeg"


@pytest.fixture(scope="module")
def loader() -> CachingLoader:
    return CachingLoader()


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord().start()
    with pointed_at(server):
        yield server
    server.stop()


@pytest.fixture
def people(fake: FakeDiscord) -> dict[str, dict[str, Any]]:
    return {
        "ada": fake.add_user("ada"),  # an admin by id
        "kim": fake.add_user("kim", admin_role=True),  # an admin by role
        "alice": fake.add_user("alice"),
        "bob": fake.add_user("bob"),
    }


def running(fake: FakeDiscord, data_dir: Path, loader: CachingLoader, people: dict[str, Any], **overrides: Any) -> DiscordBot:
    return DiscordBot(
        fake, data_dir, loader=loader, discord_admin_ids=frozenset({int(people["ada"]["id"])}),
        discord_admin_role="bear keepers", trust_min_days=0, trust_min_right=0, **overrides,
    )


@pytest.fixture
def bot(fake: FakeDiscord, tmp_path: Path, loader: CachingLoader, people: dict[str, Any]) -> Iterator[DiscordBot]:
    with running(fake, tmp_path / "var", loader, people) as started:
        yield started


def photo(label: str) -> list[tuple[str, bytes, str]]:
    return [(f"{label}1.jpg", bear(label), JPEG)]


def predictions(bot: DiscordBot) -> list[PredictionRecord]:
    return bot.db(lambda s: list(s.scalars(select(PredictionRecord).order_by(PredictionRecord.id))))


def corrections(bot: DiscordBot) -> list[tuple[str, int]]:
    return bot.db(lambda s: [(c.label, c.prediction_id) for c in s.scalars(select(Correction).order_by(Correction.id))])


def answered(bot: DiscordBot, n: int) -> list[PredictionRecord]:
    """The first ``n`` predictions, once each has its answer's message id (written just after the answer)."""

    def ready() -> list[PredictionRecord] | None:
        rows = [r for r in predictions(bot) if r.reply_message_id]
        return rows[:n] if len(rows) >= n else None

    return eventually(ready)


def edit_of(fake: FakeDiscord, interaction_id: str) -> Sent:
    return fake.wait_for(lambda s: s.kind == "edit" and s.interaction_id == interaction_id)


def test_a_dm_photo_is_answered_with_buttons_and_stored(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    message = fake.dm(people["alice"], files=photo("grizzly"))
    answer = fake.answer(message)
    assert answer.text.startswith("🐻 grizzly · ")
    assert "others: " in answer.text and "black" in answer.text and "teddy" in answer.text
    [row] = answered(bot, 1)
    assert answer.custom_ids == [f"fb:{row.id}:grizzly", f"fb:{row.id}:black", f"fb:{row.id}:teddy", f"fb:{row.id}:none"]
    # Snowflakes above 2**53 come back exactly: the answer row is bound to this DM and this message.
    assert (row.chat_id, row.message_id, row.reply_message_id) == (
        int(message["channel_id"]), int(message["id"]), int(answer.message["id"])  # type: ignore[index]
    )


def test_in_a_channel_only_a_mention_is_answered(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    ignored = fake.say(people["bob"], files=photo("black"), mention=False)
    asked = fake.say(people["bob"], content="what is this?", files=photo("black"))
    assert fake.answer(asked).text.startswith("🐻 black")
    assert not any((s.message or {}).get("message_reference", {}).get("message_id") == ignored["id"] for s in fake.sent)
    assert len(predictions(bot)) == 1


def test_slash_bear_with_an_attachment(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    interaction = fake.slash(people["alice"], "bear", files={"image": photo("teddy")[0]})
    answer = fake.response(interaction)
    assert answer.text.startswith("🐻 teddy") and not answer.ephemeral
    [row] = answered(bot, 1)
    assert row.chat_id == int(fake.channel_id) and row.reply_message_id == int(answer.message["id"])  # type: ignore[index]
    assert f"fb:{row.id}:teddy" in answer.custom_ids


def test_a_button_press_records_a_correction_and_edits_the_answer(
    fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]
) -> None:
    answer = fake.answer(fake.dm(people["alice"], files=photo("grizzly")))
    [row] = answered(bot, 1)
    press = fake.press(people["alice"], answer.message, f"fb:{row.id}:black")  # type: ignore[arg-type]
    edited = edit_of(fake, press)
    assert edited.message["id"] == answer.message["id"]  # type: ignore[index]
    assert "Recorded: black — I said grizzly" in edited.text
    assert edited.custom_ids == answer.custom_ids  # the buttons stay: a mind may change
    toast = fake.wait_for(lambda s: s.interaction_id == press and s.kind == "create")
    assert toast.ephemeral and toast.text.startswith("Recorded: black")
    assert corrections(bot) == [("black", row.id)]


def test_a_custom_id_that_is_not_under_the_message_is_ignored(
    fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]
) -> None:
    fake.answer(fake.dm(people["alice"], files=photo("grizzly")))
    second = fake.answer(fake.dm(people["alice"], files=photo("black")))
    first_id, second_id = (r.id for r in answered(bot, 2))
    # A client could send any custom id; discord.py acts only on a component the message really has.
    fake.press(people["alice"], second.message, f"fb:{first_id}:teddy")  # type: ignore[arg-type]
    press = fake.press(people["alice"], second.message, f"fb:{second_id}:black")  # type: ignore[arg-type]
    assert "Recorded: black" in edit_of(fake, press).text
    assert corrections(bot) == [("black", second_id)]


def test_correct_command_targets_my_last_answer_or_a_link(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    alice = people["alice"]
    nothing_yet = fake.response(fake.slash(alice, "correct", {"label": "teddy"}, in_dm=True))
    assert nothing_yet.ephemeral and nothing_yet.text.startswith("I have not answered a photo of yours in this channel")
    first = fake.answer(fake.dm(alice, files=photo("grizzly")))
    fake.answer(fake.dm(alice, files=photo("black")))
    rows = answered(bot, 2)
    reply = fake.response(fake.slash(alice, "correct", {"label": "teddy"}, in_dm=True))
    assert reply.ephemeral and reply.text.startswith("Recorded: teddy — I said black")
    link = f"https://discord.com/channels/@me/{first.message['channel_id']}/{first.message['id']}"  # type: ignore[index]
    reply = fake.response(fake.slash(alice, "correct", {"label": "none", "message": link}, in_dm=True))
    assert reply.text.startswith("Recorded: not a bear — I said grizzly")
    assert corrections(bot) == [("teddy", rows[1].id), ("none", rows[0].id)]
    command = next(c for c in fake.commands["global"] if c["name"] == "correct")
    label = next(o for o in command["options"] if o["name"] == "label")
    assert [c["value"] for c in label["choices"]] == ["grizzly", "black", "teddy", "none"]


def test_correct_bear_menu(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    answer = fake.answer(fake.say(people["alice"], files=photo("grizzly")))
    [row] = answered(bot, 1)
    menu = fake.response(fake.context_menu(people["bob"], "Correct bear…", answer.message))  # type: ignore[arg-type]
    assert menu.ephemeral
    picked = fake.press(people["bob"], menu.message, menu.custom_ids[0], values=["teddy"])  # type: ignore[arg-type]
    assert fake.response(picked).text.startswith("Recorded: teddy — I said grizzly")
    assert corrections(bot) == [("teddy", row.id)]


def test_admin_commands_are_refused_to_others_and_ephemeral(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    refused = fake.response(fake.slash(people["bob"], "model"))
    assert refused.ephemeral and refused.text == NOT_ADMIN
    by_id = fake.response(fake.slash(people["ada"], "model"))
    by_role = fake.response(fake.slash(people["kim"], "model"))
    for reply in (by_id, by_role):
        assert reply.ephemeral and "v1" in reply.text and reply.text != NOT_ADMIN
    in_dm = fake.response(fake.slash(people["kim"], "model", in_dm=True))
    assert in_dm.text == NOT_ADMIN  # a DM carries no roles: there only BEARBOT_DISCORD_ADMIN_IDS count


def test_a_corrupt_attachment_gets_a_clear_refusal(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    message = fake.dm(people["alice"], files=[("bear.jpg", b"\xff\xd8\xff\xe0 this is no JPEG", JPEG)])
    assert fake.answer(message).text.startswith("Sorry, I can't use that file")
    assert predictions(bot) == [] and bot.db(lambda s: list(s.scalars(select(Image)))) == []


def test_a_failed_download_and_chatter_get_one_line_each(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    fake.cdn_down = True
    assert fake.answer(fake.dm(people["alice"], files=photo("grizzly"))).text == DOWNLOAD_FAILED
    assert fake.answer(fake.dm(people["alice"], files=[("notes.pdf", b"%PDF-1.4", "application/pdf")])).text == NOT_AN_IMAGE
    assert fake.answer(fake.dm(people["alice"], content="hello bear bot")).text == TEXT_HINT
    assert predictions(bot) == []


def test_an_attachment_over_the_limit_is_refused_unread(
    fake: FakeDiscord, tmp_path: Path, loader: CachingLoader, people: dict[str, Any]
) -> None:
    with running(fake, tmp_path / "var", loader, people, max_download_bytes=2048) as bot:
        interaction = fake.slash(people["alice"], "bear", files={"image": photo("grizzly")[0]})
        assert fake.response(interaction).text == "That file is too big for me (limit 2 KB). Send a smaller photo."
        assert fake.downloads == [] and predictions(bot) == []


def test_an_old_answers_buttons_work_after_a_restart(
    fake: FakeDiscord, tmp_path: Path, loader: CachingLoader, people: dict[str, Any]
) -> None:
    with running(fake, tmp_path / "var", loader, people):
        answer = fake.answer(fake.dm(people["alice"], files=photo("grizzly")))
    with running(fake, tmp_path / "var", loader, people) as again:
        [row] = predictions(again)
        press = fake.press(people["alice"], answer.message, f"fb:{row.id}:teddy")  # type: ignore[arg-type]
        assert "Recorded: teddy" in edit_of(fake, press).text
        assert corrections(again) == [("teddy", row.id)]
    assert len(fake.identifies) == 2


def test_commands_go_to_one_test_server_when_asked(
    fake: FakeDiscord, tmp_path: Path, loader: CachingLoader, people: dict[str, Any]
) -> None:
    with running(fake, tmp_path / "var", loader, people, discord_guild_id=int(fake.guild_id)):
        names = {c["name"] for c in fake.commands[fake.guild_id]}
    assert "global" not in fake.commands
    assert {"bear", "correct", "Correct bear…", "retrain", "stats", "model", "rollback", "pending", "mute", "unmute"} <= names


def test_pending_corrections_are_reviewed_with_buttons(fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]) -> None:
    answer = fake.answer(fake.dm(people["alice"], files=photo("grizzly")))
    [row] = answered(bot, 1)
    fake.press(people["alice"], answer.message, f"fb:{row.id}:teddy")  # type: ignore[arg-type]
    [(_, correction_id)] = eventually(lambda: bot.db(lambda s: [(c.label, c.id) for c in s.scalars(select(Correction))]))
    interaction = fake.slash(people["ada"], "pending")
    header, item = fake.response(interaction), fake.response(interaction, nth=1)
    assert header.ephemeral and header.text.startswith("Pending corrections: 1")
    assert item.ephemeral and item.text.startswith(f"#{correction_id}: alice says teddy")
    assert item.message["attachments"] and item.custom_ids == [f"rv:a:{correction_id}", f"rv:r:{correction_id}"]  # type: ignore[index]
    approve = fake.press(people["ada"], item.message, f"rv:a:{correction_id}")  # type: ignore[arg-type]
    edited = edit_of(fake, approve)
    assert edited.text == f"#{correction_id}: teddy — approved ✅ by ada" and edited.custom_ids == []
    assert bot.db(lambda s: s.get(Correction, correction_id).status.value) == "accepted"


def test_unasked_messages_reach_the_admins(
    fake: FakeDiscord, tmp_path: Path, loader: CachingLoader, people: dict[str, Any]
) -> None:
    with running(fake, tmp_path / "a", loader, people) as bot:
        bot.call(lambda: bot.conversation.tell_admins("⚠️ model v2 failed to load"))
        dm = fake.wait_for(lambda s: s.text == "⚠️ model v2 failed to load")
        assert dm.message["channel_id"] == fake.dms[people["ada"]["id"]]["id"]  # type: ignore[index]
    with running(fake, tmp_path / "b", loader, people, discord_admin_channel_id=int(fake.channel_id)) as bot:
        bot.call(lambda: bot.conversation.tell_admins("⚠️ again"))
        assert fake.wait_for(lambda s: s.text == "⚠️ again").message["channel_id"] == fake.channel_id  # type: ignore[index]


def test_an_admin_mutes_a_user_whose_agreement_then_does_not_count(
    fake: FakeDiscord, bot: DiscordBot, people: dict[str, Any]
) -> None:
    alice, bob = people["alice"], people["bob"]
    fake.answer(fake.dm(bob, files=photo("black")))  # Bob is known to the bot
    refused = fake.response(fake.slash(bob, "mute", {"user": alice["id"]}))
    assert refused.ephemeral and refused.text == NOT_ADMIN
    muted = fake.response(fake.slash(people["ada"], "mute", {"user": bob["id"]}))
    assert muted.ephemeral and muted.text.startswith(f"🔇 Muted bob (discord user {bob['id']})")
    answer = fake.answer(fake.say(alice, files=photo("grizzly")))
    row = answered(bot, 2)[1]
    link = f"https://discord.com/channels/{fake.guild_id}/{fake.channel_id}/{answer.message['id']}"  # type: ignore[index]
    for who in (alice, bob):
        reply = fake.response(fake.slash(who, "correct", {"label": "teddy", "message": link}))
    assert reply.text.startswith("Recorded: teddy") and "(1 so far)" in reply.text  # Bob's agreement is not counted
    statuses = bot.db(lambda s: [c.status.value for c in s.scalars(select(Correction).where(Correction.prediction_id == row.id))])
    assert statuses == ["pending", "pending"]
    command = next(c for c in fake.commands["global"] if c["name"] == "mute")
    assert [(o["name"], o["type"]) for o in command["options"]] == [("user", 6)]  # Discord's user picker
