"""/mute end to end on Telegram: refused to others; an admin's reply-to /mute makes a user's agreement stop counting."""

from __future__ import annotations

from sqlalchemy import select

from bot.telegram.adapter import SENT_PRIVATELY
from core.texts import NOT_ADMIN
from storage.models import Correction, CorrectionStatus
from tests.bot_harness import ADMIN, ALICE, BOB, GROUP, RunningBot, bear, bot, loader  # noqa: F401 - pytest fixtures


def test_an_admin_mutes_by_replying_and_the_users_agreement_no_longer_counts(bot: RunningBot) -> None:  # noqa: F811
    bobs_photo = bot.send(BOB, chat=GROUP, photo=bear("black"))
    bot.reply(bobs_photo)
    assert bot.reply(bot.send(ALICE, chat=GROUP, text="/mute", reply_to=bobs_photo["message_id"])).text == NOT_ADMIN
    # The group only hears that the answer went to the admin's private chat: Bob is not told.
    assert bot.reply(bot.send(ADMIN, chat=GROUP, text="/mute", reply_to=bobs_photo["message_id"])).text == SENT_PRIVATELY
    muted = bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and "Muted" in (s.text or ""))[0].text
    assert muted.startswith("🔇 Muted @bob (telegram user 2002)") and "/unmute 2002 undoes it" in muted
    answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=bear("grizzly")))
    bot.reply(bot.send(ALICE, chat=GROUP, text="/correct teddy", reply_to=answer.message_id))
    agreed = bot.reply(bot.send(BOB, chat=GROUP, text="/correct teddy", reply_to=answer.message_id)).text
    assert agreed.startswith("Recorded: teddy") and "(1 so far)" in agreed  # two agreeing users, but Bob does not count
    statuses = bot.db(lambda s: [c.status for c in s.scalars(select(Correction))])
    assert statuses == [CorrectionStatus.PENDING, CorrectionStatus.PENDING]
    unmuted = bot.reply(bot.send(ADMIN, text="/unmute 2002")).text  # by id, from the admin's private chat
    assert unmuted.startswith("🔊 Unmuted @bob")
