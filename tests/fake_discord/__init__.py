"""An offline fake of Discord's REST API and gateway for the Discord adapter's tests."""

from tests.fake_discord.server import FakeDiscord, Sent

__all__ = ["FakeDiscord", "Sent"]
