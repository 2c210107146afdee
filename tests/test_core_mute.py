"""/mute and /unmute in the core: who may, how the user is named, and that a muted user's corrections stop counting."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.conversation import Conversation
from core.events import CommandEvent, ImageEvent, Sender, Target
from core.texts import NOT_ADMIN
from storage.models import Correction, CorrectionStatus, User, UserTrust
from tests.core_harness import (  # noqa: F401 - pytest fixture
    ADMIN,
    ALICE,
    CachingLoader,
    Recorder,
    bear,
    loader,
    place,
    started_core,
)

pytestmark = pytest.mark.anyio
BOB = Sender("telegram", 2002, "@bob")
CAROL = Sender("telegram", 2003, "@carol")
GROUP = -100


async def _photo(core: Conversation, sender: Sender) -> tuple[int, tuple[str, ...], int]:
    """``sender`` posts a grizzly in the group; returns (my answer's id, its button ids, the photo's id)."""
    where, out = place(GROUP, private=False), Recorder()
    await core.handle(ImageEvent.of_bytes(sender, where, bear("grizzly")), out)
    [(answer_id, answer)] = out.sent
    assert where.message_id is not None
    return answer_id, tuple(b.id for row in answer.buttons for b in row), where.message_id


async def _say(core: Conversation, sender: Sender, name: str, *args: str, target: Target | None = None) -> tuple[str, bool]:
    out = Recorder()
    await core.handle(CommandEvent(sender, place(GROUP, private=False), name, args, target), out)
    [(_, reply)] = out.sent
    return reply.text, reply.private


def _muted(core: Conversation) -> set[int]:
    """The external ids of muted users."""
    with core.services.storage.session() as session:
        query = select(User.external_id).join(UserTrust, UserTrust.user_id == User.id).where(UserTrust.muted.is_(True))
        return set(session.scalars(query))


def _statuses(core: Conversation) -> dict[int, CorrectionStatus]:
    """Users' external ids → the status of their correction."""
    with core.services.storage.session() as session:
        rows = session.execute(select(User.external_id, Correction.status).join(User, Correction.user_id == User.id))
        return {external: status for external, status in rows}


async def test_a_muted_users_agreement_no_longer_accepts_a_label(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        answer_id, buttons, _ = await _photo(core, ALICE)
        on_answer = Target(answer_id, buttons)
        await _photo(core, BOB)  # so that Bob is a known user
        text, _ = await _say(core, ALICE, "mute", "2002")
        assert text == NOT_ADMIN and _muted(core) == set()
        text, private = await _say(core, ADMIN, "mute", "2002")
        assert private and text.startswith("🔇 Muted @bob (telegram user 2002)") and "no longer count" in text
        assert _muted(core) == {2002}
        await _say(core, ALICE, "correct", "teddy", target=on_answer)
        text, _ = await _say(core, BOB, "correct", "teddy", target=on_answer)
        assert "(1 so far)" in text  # Bob's agreement is not counted…
        assert _statuses(core) == {2001: CorrectionStatus.PENDING, 2002: CorrectionStatus.PENDING}
        text, _ = await _say(core, ADMIN, "unmute", "<@2002>")  # a mention works as well as an id
        assert text.startswith("🔊 Unmuted @bob") and _muted(core) == set()
        await _say(core, CAROL, "correct", "teddy", target=on_answer)  # …which it would be, like Carol's
        assert _statuses(core)[2003] == CorrectionStatus.ACCEPTED


async def test_the_user_is_named_by_replying_to_their_photo_or_my_answer(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        answer_id, buttons, photo_id = await _photo(core, BOB)
        text, _ = await _say(core, ADMIN, "mute", target=Target(photo_id))
        assert text.startswith("🔇 Muted @bob") and _muted(core) == {2002}
        text, _ = await _say(core, ADMIN, "unmute", target=Target(answer_id, buttons))
        assert text.startswith("🔊 Unmuted @bob") and _muted(core) == set()


async def test_unclear_or_unknown_users_and_admins_are_not_muted(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    async with started_core(tmp_path / "var", loader) as core:
        await _photo(core, ALICE)
        await _photo(core, ADMIN)
        assert (await _say(core, ADMIN, "mute"))[0].startswith("Name the user: reply to their photo")
        assert (await _say(core, ADMIN, "mute", "bob"))[0].startswith("Name the user")
        assert (await _say(core, ADMIN, "mute", "999"))[0].startswith("I have never heard from telegram user 999")
        assert (await _say(core, ADMIN, "mute", target=Target(123_456)))[0].startswith("That message is no photo")
        assert "admins' corrections always count" in (await _say(core, ADMIN, "mute", "1001"))[0]
        # Alice's Telegram id names no Discord user: ids are per transport.
        discord_admin = Sender("discord", 1, "ada", is_admin=True)
        out = Recorder()
        await core.handle(CommandEvent(discord_admin, place(5, private=False), "mute", ("2001",)), out)
        assert out.texts[0].startswith("I have never heard from discord user 2001") and _muted(core) == set()
