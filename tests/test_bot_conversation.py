"""End to end through python-telegram-bot and the fake Bot API: photos, /correct, buttons, commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.fake_bot_api import Sent
from storage.models import Correction, CorrectionStatus, Image, PredictionRecord, User
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ADMIN, ALICE, BOB, GROUP, bear, CachingLoader, eventually, not_bear, RunningBot


def test_photo_gets_label_confidence_buttons_and_a_prediction_row(bot: RunningBot) -> None:
    msg = bot.send(ALICE, photo=bear("grizzly"))
    answer = bot.reply(msg)
    assert answer.text is not None and answer.text.startswith("🐻 grizzly · ")
    assert "black" in answer.text and "teddy" in answer.text and "%" in answer.text
    assert any(text.startswith("✅") and data.endswith(":grizzly") for text, data in answer.buttons)
    assert {data.rsplit(":", 1)[1] for _, data in answer.buttons} == {"grizzly", "black", "teddy", "none"}
    row = eventually(lambda: bot.db(lambda s: s.scalar(select(PredictionRecord).where(PredictionRecord.reply_message_id.is_not(None)))))
    assert bot.db(lambda s: s.scalar(select(func.count(PredictionRecord.id)))) == 1
    assert (row.label, row.chat_id, row.message_id, row.reply_message_id) == ("grizzly", ALICE["id"], msg["message_id"], answer.message_id)
    assert row.model_version_id == bot.services.serving.version.id
    assert set(row.probabilities) == {"grizzly", "black", "teddy"} and row.latency_ms > 0 and row.confidence > 0.5
    user = bot.db(lambda s: s.scalar(select(User).where(User.telegram_id == ALICE["id"])))
    assert user is not None and user.role == "user"


def test_image_document_and_no_bear(bot: RunningBot) -> None:
    for fmt in ("PNG", "WEBP", "GIF"):  # sent "as a file"; a GIF is read from its first frame
        data = _reencode(bear("teddy"), fmt)
        doc = bot.send(ALICE, document=data, mime_type=f"image/{fmt.lower()}", file_name=f"teddy.{fmt.lower()}")
        assert bot.reply(doc).text.startswith("🐻 teddy"), fmt
    person = bot.send(ALICE, photo=not_bear("person"))
    assert "I don't see a bear" in bot.reply(person).text


def test_every_photo_of_an_album_is_answered(bot: RunningBot) -> None:
    msgs = [bot.send(ALICE, photo=bear(label, 2), media_group_id="album1") for label in ("grizzly", "black", "teddy")]
    for msg, label in zip(msgs, ("grizzly", "black", "teddy"), strict=True):
        assert bot.reply(msg).text.startswith(f"🐻 {label}")


def _answered_photo(bot: RunningBot) -> tuple[dict, Sent]:
    """Alice sends a black bear; the photo message and the bot's answer to it."""
    photo = bot.send(ALICE, photo=bear("black"))
    return photo, bot.reply(photo)


def _corrections(bot: RunningBot) -> list[Correction]:
    return bot.db(lambda s: s.scalars(select(Correction)).all())


def test_correct_as_a_reply_to_the_answer_is_recorded(bot: RunningBot) -> None:
    _, answer = _answered_photo(bot)
    said = answer.text.split(" · ")[0].removeprefix("🐻 ")
    text = bot.reply(bot.send(ALICE, text="/correct Grizzly", reply_to=answer.message_id)).text
    assert text.startswith(f"Recorded: grizzly — I said {said}") and "%" in text
    rows = _corrections(bot)
    assert len(rows) == 1 and rows[0].label == "grizzly" and rows[0].status == CorrectionStatus.PENDING


def test_correcting_again_in_reply_to_the_own_photo_updates_the_same_correction(bot: RunningBot) -> None:
    photo, answer = _answered_photo(bot)
    bot.reply(bot.send(ALICE, text="/correct grizzly", reply_to=answer.message_id))
    again = bot.send(ALICE, text="/correct teddy", reply_to=photo["message_id"])
    assert bot.reply(again).text.startswith("Updated: teddy")
    rows = _corrections(bot)
    assert len(rows) == 1 and rows[0].label == "teddy" and rows[0].status == CorrectionStatus.PENDING


def test_correct_without_a_reply_explains_how(bot: RunningBot) -> None:
    _answered_photo(bot)
    assert "reply to my answer" in bot.reply(bot.send(ALICE, text="/correct teddy")).text
    assert _corrections(bot) == []


def test_correct_with_an_unknown_label_lists_the_labels(bot: RunningBot) -> None:
    _, answer = _answered_photo(bot)
    bad = bot.send(ALICE, text="/correct panda", reply_to=answer.message_id)
    assert bot.reply(bad).text == (
        "I don't know the label “panda”. Valid labels: grizzly, black, teddy, none (not a bear; also notbear, not-a-bear)."
    )
    assert _corrections(bot) == []


def test_correct_in_reply_to_a_message_without_a_prediction_is_refused(bot: RunningBot) -> None:
    _answered_photo(bot)
    stray = bot.send(ALICE, text="hello")
    unrelated = bot.send(ALICE, text="/correct teddy", reply_to=stray["message_id"])
    assert "no prediction for that message" in bot.reply(unrelated).text
    assert _corrections(bot) == []


def test_buttons_record_corrections_and_two_users_accept(bot: RunningBot) -> None:
    photo = bot.send(ALICE, chat=GROUP, photo=bear("grizzly", 3))
    answer = bot.reply(photo)
    bot.api.press_button(ALICE, answer, _data(answer, "black"))
    edited = bot.api.wait_for(lambda s: s.message_id == answer.message_id and "Recorded: black" in (s.text or ""))[0]
    assert edited.buttons == answer.buttons  # the keyboard stays
    assert bot.api.callback_answers[-1]["text"].startswith("Recorded: black")
    assert bot.db(lambda s: s.scalar(select(Correction.status))) == CorrectionStatus.PENDING
    bot.api.press_button(BOB, answer, _data(answer, "black"))
    bot.api.wait_for(lambda s: s.message_id == answer.message_id and "next training run" in (s.text or ""))
    statuses = bot.db(lambda s: s.scalars(select(Correction.status)).all())
    assert statuses == [CorrectionStatus.ACCEPTED, CorrectionStatus.ACCEPTED]


def test_admin_correction_is_accepted_at_once(bot: RunningBot) -> None:
    photo = bot.send(ADMIN, photo=bear("teddy", 3))
    answer = bot.reply(photo)
    reply = bot.reply(bot.send(ADMIN, text="/correct black", reply_to=answer.message_id))
    assert "next training run" in reply.text
    assert bot.db(lambda s: s.scalar(select(Correction.status))) == CorrectionStatus.ACCEPTED


def test_help_start_labels_and_text(bot: RunningBot) -> None:
    assert "Send me a photo of a bear" in bot.reply(bot.send(ALICE, text="/start")).text
    help_text = bot.reply(bot.send(ALICE, text="/help")).text
    assert "/correct" in help_text and "/retrain" not in help_text
    assert "/retrain" in bot.reply(bot.send(ADMIN, text="/help")).text
    assert bot.reply(bot.send(ALICE, text="/labels")).text == "I know these labels: grizzly, black, teddy."
    assert "photo" in bot.reply(bot.send(ALICE, text="what is this?")).text


def test_non_image_corrupt_and_oversize_are_refused_and_nothing_is_stored(bot: RunningBot) -> None:
    sticker = bot.send(ALICE, sticker=True)
    assert "I can only look at images" in bot.reply(sticker).text
    pdf = bot.send(ALICE, document=b"%PDF-1.4 ...", mime_type="application/pdf", file_name="bears.pdf")
    assert "I can only look at images" in bot.reply(pdf).text
    corrupt = bot.send(ALICE, photo=bear("grizzly")[:600])
    assert "can't use that file" in bot.reply(corrupt).text
    fake_png = bot.send(ALICE, document=b"not an image at all", mime_type="image/png", file_name="x.png")
    assert "can't use that file" in bot.reply(fake_png).text
    limit = bot.settings.max_download_bytes
    declared = bot.send(ALICE, photo=bear("grizzly"), declared_size=limit + 1)
    assert "too big" in bot.reply(declared).text
    assert not any(m == "getFile" and p.get("file_id") == declared["photo"][0]["file_id"] for m, p in bot.api.calls)
    assert bot.db(lambda s: s.scalar(select(func.count(Image.id)))) == 0
    assert bot.db(lambda s: s.scalar(select(func.count(PredictionRecord.id)))) == 0
    # the bot keeps running
    assert bot.reply(bot.send(ALICE, photo=bear("teddy"))).text.startswith("🐻 teddy")


def test_oversize_without_declared_size_is_cut_off_while_downloading(tmp_path: Path, loader: CachingLoader) -> None:
    data = bear("grizzly")
    with RunningBot(tmp_path / "var", loader=loader, max_download_bytes=len(data) - 1) as bot:
        msg = bot.send(ALICE, photo=data, declared_size=None)
        assert "too big" in bot.reply(msg).text
        assert bot.db(lambda s: s.scalar(select(func.count(Image.id)))) == 0


def test_get_file_refusing_a_big_file_is_answered_as_too_big(bot: RunningBot) -> None:
    bot.api.file_limit = 1000  # as Telegram's cloud server does above 20 MB
    msg = bot.send(ALICE, document=bear("grizzly"), declared_size=None)
    assert "too big" in bot.reply(msg).text


def test_photo_flood_limit(tmp_path: Path, loader: CachingLoader) -> None:
    with RunningBot(tmp_path / "var", loader=loader, photos_per_minute=2, concurrent_updates=1) as bot:
        msgs = [bot.send(ALICE, photo=bear("black", n)) for n in (1, 2, 3)]
        texts = [bot.reply(m).text for m in msgs]
        assert texts[0].startswith("🐻") and texts[1].startswith("🐻")
        assert texts[2].startswith("Slow down") and "2 photos a minute" in texts[2]
        # other users are not affected
        assert bot.reply(bot.send(BOB, photo=bear("black", 3))).text.startswith("🐻")


def test_restart_keeps_data(tmp_path: Path, loader: CachingLoader) -> None:
    with RunningBot(tmp_path / "var", loader=loader) as bot:
        answer = bot.reply(bot.send(ALICE, photo=bear("grizzly")))
        bot.reply(bot.send(ALICE, text="/correct teddy", reply_to=answer.message_id))
        version = bot.services.serving.version.id
    with RunningBot(tmp_path / "var", loader=loader) as bot:
        assert bot.services.serving.version.id == version
        assert bot.db(lambda s: s.scalar(select(func.count(PredictionRecord.id)))) == 1
        assert bot.db(lambda s: s.scalar(select(Correction.label))) == "teddy"
        stats = bot.reply(bot.send(ADMIN, text="/stats")).text
        assert "I have answered 1 photo;" in stats and "1 waiting for review" in stats


def _data(sent: object, label: str) -> str:
    return next(data for _, data in sent.buttons if data.endswith(f":{label}"))  # type: ignore[attr-defined]


def _reencode(data: bytes, fmt: str) -> bytes:
    import io

    from PIL import Image as PILImage

    out = io.BytesIO()
    img = PILImage.open(io.BytesIO(data))
    if fmt == "GIF":  # two frames: only the first is classified
        img.save(out, format=fmt, save_all=True, append_images=[PILImage.new("RGB", img.size, (0, 0, 255))])
    else:
        img.save(out, format=fmt)
    return out.getvalue()
