"""The conversation core without any transport: recording repliers and outboxes, a started core."""

from __future__ import annotations

import itertools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bearbot.prediction import Classifier
from bearbot.settings import Settings, load_settings
from bot.model_holder import ClassifierLoader
from core.conversation import Conversation
from core.events import Place, Sender
from core.replies import Reply
from core.services import default_loader, make_services
from storage.models import ModelVersion

FIXTURES = Path(__file__).parent / "fixtures"


def bear(label: str, n: int = 1) -> bytes:
    return (FIXTURES / "bears" / label / f"{label}{n}.jpg").read_bytes()


def not_bear(name: str = "person") -> bytes:
    return (FIXTURES / "not_bears" / f"{name}.jpg").read_bytes()


class CachingLoader:
    """The real loader, but the built-in v0 network is built once per test session (saves ~3 s a bot)."""

    def __init__(self) -> None:
        self._v0: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        self.loaded: list[int] = []

    def for_settings(self, settings: Settings) -> ClassifierLoader:
        real = default_loader(settings)

        def load(version: ModelVersion) -> Classifier:
            self.loaded.append(version.id)
            if version.artifact_path is not None:
                return real(version)
            from bearbot.inference import TorchClassifier, build_v0

            key = (version.sha256, tuple(version.labels))
            with self._lock:
                if key not in self._v0:
                    self._v0[key] = build_v0(version.labels, arch=version.arch, expected_sha256=version.sha256)
            return TorchClassifier(
                self._v0[key], version_id=version.id, bear_threshold=settings.bear_threshold,
                max_pixels=settings.max_image_pixels,
            )

        return load


# Fixtures for the test modules (import them there: ``from tests.core_harness import loader``).
@pytest.fixture(scope="module")
def loader() -> CachingLoader:
    """One v0 network per test module."""
    return CachingLoader()


ADMIN = Sender("telegram", 1001, "@ada", is_admin=True)
ALICE = Sender("telegram", 2001, "@alice")
ALICE_ON_DISCORD = Sender("discord", 2001, "alice#0")  # the same number, another person
_ids = itertools.count(10_000)


@dataclass
class Recorder:
    """A :class:`core.replies.Replier` that keeps what the core said; sent messages get fresh ids."""

    sent: list[tuple[int, Reply]] = field(default_factory=list)
    edits: list[tuple[str, bool]] = field(default_factory=list)
    toasts: list[tuple[str, bool]] = field(default_factory=list)

    async def send(self, reply: Reply) -> int:
        message_id = next(_ids)
        self.sent.append((message_id, reply))
        return message_id

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        self.edits.append((text, keep_buttons))

    async def toast(self, text: str, *, alert: bool = False) -> None:
        self.toasts.append((text, alert))

    @property
    def texts(self) -> list[str]:
        return [reply.text for _, reply in self.sent]


@dataclass
class Mailbox:
    """A :class:`core.replies.Outbox` that keeps what the core sent unasked."""

    transport: str
    chats: list[tuple[int, Reply, int | None]] = field(default_factory=list)
    admins: list[Reply] = field(default_factory=list)

    async def to_chat(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        self.chats.append((chat_id, reply, reply_to))

    async def to_admins(self, reply: Reply) -> None:
        self.admins.append(reply)


def place(chat_id: int, message_id: int | None = None, *, private: bool = True) -> Place:
    return Place(chat_id, message_id if message_id is not None else next(_ids), private=private)


@asynccontextmanager
async def started_core(data_dir: Path, loader: CachingLoader, **overrides: Any) -> AsyncIterator[Conversation]:
    """A started core on a fresh data dir (the built-in model; no learning loop unless asked)."""
    learn = overrides.pop("learn", False)
    settings = load_settings(data_dir=data_dir, trust_min_days=0, trust_min_right=0, **overrides)
    core = Conversation(make_services(settings, loader=loader.for_settings(settings)), learn=learn)
    await core.start()
    try:
        yield core
    finally:
        await core.stop()
