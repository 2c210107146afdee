"""``bearbot run --transport discord|both``: the command line, and both transports on one core in one process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from bearbot.cli import app
from bearbot.settings import load_settings
from bot.discord.serve import NO_TOKEN, serve
from core.services import make_services
from storage.models import PredictionRecord
from storage.store import open_storage
from tests.core_harness import CachingLoader, bear
from tests.fake_bot_api import FakeBotApi
from tests.fake_discord import FakeDiscord
from tests.fake_discord.harness import pointed_at

ALICE = {"id": 2001, "is_bot": False, "first_name": "Alice", "username": "alice"}


def test_run_discord_without_a_token_says_what_to_set() -> None:
    result = CliRunner().invoke(app, ["run", "--transport", "discord"])
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.strip()] == [NO_TOKEN]


def test_run_discord_with_a_rejected_token_fails_in_one_line(tmp_path: Path) -> None:
    with FakeDiscord() as fake, pointed_at(fake):
        env = {"DISCORD_BOT_TOKEN": "not-the-token", "BEARBOT_DATA_DIR": str(tmp_path / "var")}
        result = CliRunner().invoke(app, ["run", "--transport", "discord"], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: Discord rejected DISCORD_BOT_TOKEN")
    assert "not-the-token" not in result.output


def test_both_transports_share_one_core(tmp_path: Path) -> None:
    telegram, discord_api = FakeBotApi(), FakeDiscord().start()
    settings = load_settings(
        data_dir=tmp_path / "var", telegram_api_url=telegram.start(), telegram_bot_token=telegram.token,
        discord_bot_token=discord_api.token,
    )
    loader = CachingLoader()
    services = make_services(settings, loader=loader.for_settings(settings))
    running: dict[str, object] = {}

    async def main() -> None:
        running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve(settings, with_telegram=True, services=services, stop=running["stop"])  # type: ignore[arg-type]

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - surfaced in the test
            running["error"] = exc

    with pointed_at(discord_api):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            alice = discord_api.add_user("alice")
            discord_api.wait_connected()
            on_discord = discord_api.dm(alice, files=[("black1.jpg", bear("black"), "image/jpeg")])
            on_telegram = telegram.send_user_message(ALICE, photo=bear("grizzly"))
            assert discord_api.answer(on_discord).text.startswith("🐻 black")
            assert telegram.wait_for(lambda s: s.reply_to == on_telegram["message_id"])[0].text.startswith("🐻 grizzly")
        finally:
            running["loop"].call_soon_threadsafe(running["stop"].set)  # type: ignore[attr-defined]
            thread.join(60)
            telegram.stop()
            discord_api.stop()
    assert "error" not in running, running.get("error")
    assert loader.loaded == [1]  # one model, loaded once, answered both
    storage = open_storage(settings)
    try:
        with storage.session() as session:
            rows = session.scalars(select(PredictionRecord).order_by(PredictionRecord.id)).all()
            assert sorted((r.transport, r.label) for r in rows) == [("discord", "black"), ("telegram", "grizzly")]
    finally:
        storage.close()
