"""``bearbot chat``: the bot's conversation core driven from a terminal, offline.

Each console line becomes a core event (an image path → a photo, a folder → an album,
``/correct teddy`` → a correction of the last answer, a number → a tap on that button, other
``/commands`` as typed) handed straight to :class:`core.conversation.Conversation`; its replies
are printed. Works interactively and with piped stdin (exits at EOF).
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import mimetypes
import os
import shlex
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bearbot.imaging import IMAGE_SUFFIXES
from bearbot.settings import Settings
from bot.model_holder import ClassifierLoader
from core.conversation import Conversation
from core.events import (
    ButtonEvent,
    ChatterEvent,
    CommandEvent,
    Event,
    ImageEvent,
    Place,
    Sender,
    Target,
)
from core.replies import Button, Reply
from core.services import make_services
from core.texts import FEEDBACK_PREFIX
from storage import runs

# The console user is an admin, so /retrain, /stats… work as they would for you in Telegram.
YOU_SENDER = Sender("console", 1, "you", is_admin=True)
CHAT = 1
ALBUM_MAX = 10  # as in Telegram, an album holds up to 10 items
BOT = "bearbot ›"
YOU = "you ›"


@dataclass
class Printer:
    """Prints the bot's messages and numbers the buttons of the latest keyboard."""

    out: TextIO
    lock: threading.Lock = field(default_factory=threading.Lock)
    buttons: list[tuple[int, Button]] = field(default_factory=list)  # what "1", "2"… tap: (message id, button)
    last_answer: tuple[int, tuple[str, ...]] | None = None  # the latest answer (id, button ids): /correct targets it
    prompt: str | None = None  # set while the prompt waits for the user's next line (interactive only)

    def show(self, reply: Reply, message_id: int, *, edited: bool = False) -> None:
        """Print one message the bot sent (or edited) and number its buttons."""
        with self.lock:
            prefix = f"{BOT} (edited)" if edited else BOT
            text = f"[photo] {reply.text}" if reply.picture is not None else reply.text
            lines = text.splitlines() or [""]
            indent = " " * (len(BOT) + 1)
            self.write(f"{prefix} {lines[0]}" + "".join(f"\n{indent}{line}" for line in lines[1:]))
            flat = [button for row in reply.buttons for button in row]
            if flat:
                self.buttons = [(message_id, button) for button in flat]
                labels = "  ".join(f"[{i}] {button.label}" for i, button in enumerate(flat, 1))
                self.write(textwrap.fill(labels, width=100, initial_indent=indent, subsequent_indent=indent))
                if any(button.id.startswith(f"{FEEDBACK_PREFIX}:") for button in flat):
                    self.last_answer = (message_id, tuple(button.id for button in flat))

    def toast(self, text: str) -> None:
        """A button's short answer (Telegram shows it as a toast)."""
        with self.lock:
            self.write(f"{BOT} ({text})")

    def write(self, text: str) -> None:
        if self.prompt is None:
            print(text, file=self.out, flush=True)
            return
        # A message arrived while the user is at the prompt (a retrain finishing): clear the prompt
        # line, print the message, then draw the prompt again with what they had typed so far.
        print(f"\r\x1b[K{text}", file=self.out)
        print(f"{self.prompt}{_typed_so_far()}", end="", file=self.out, flush=True)

    def waiting(self, prompt: str | None) -> None:
        """The reader thread is (``prompt``) or is no longer (None) waiting at the prompt."""
        with self.lock:
            self.prompt = prompt

    def note(self, text: str) -> None:
        with self.lock:
            self.write(f"  · {text}")


class ConsoleReplier:
    """Answers one console line: prints replies, edits of the tapped message, and toasts."""

    def __init__(self, chat: ConsoleChat, message_id: int | None = None) -> None:
        self.chat = chat
        self.message_id = message_id  # the message whose button was tapped

    async def send(self, reply: Reply) -> int:
        return self.chat.show(reply)

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        assert self.message_id is not None
        old = self.chat.sent.get(self.message_id, Reply(""))
        reply = Reply(text, old.buttons if keep_buttons else (), old.picture)
        self.chat.sent[self.message_id] = reply
        self.chat.printer.show(reply, self.message_id, edited=True)

    async def toast(self, text: str, *, alert: bool = False) -> None:
        self.chat.printer.toast(text)


class ConsoleOutbox:
    """What the bot says unasked (a run's outcome and plots, learned-notices): printed like any reply."""

    transport = "console"

    def __init__(self, chat: ConsoleChat) -> None:
        self.chat = chat

    async def to_chat(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        self.chat.show(reply)

    async def to_admins(self, reply: Reply) -> None:
        self.chat.show(reply)


class ConsoleChat:
    """One console session: the conversation core, and line → event translation."""

    def __init__(self, settings: Settings, *, out: TextIO, loader: ClassifierLoader | None = None) -> None:
        self.printer = Printer(out)
        self.settings = settings
        self.loader = loader
        self._ids = itertools.count(1)  # message ids, the user's and the bot's
        self.sent: dict[int, Reply] = {}  # the bot's messages, so an edit keeps their buttons
        self.core: Conversation | None = None

    def show(self, reply: Reply) -> int:
        message_id = next(self._ids)
        self.sent[message_id] = reply
        self.printer.show(reply, message_id)
        return message_id

    async def run(self, lines: TextIO, *, echo: bool) -> None:
        """Read ``lines`` until EOF or /quit, feeding each to the core and waiting for its answer."""
        self.core = Conversation(make_services(self.settings, loader=self.loader))
        self.core.add_outbox(ConsoleOutbox(self))
        await self.core.start()
        try:
            self._banner()
            queue, next_line = _start_reader(lines, interactive=not echo, printer=self.printer)
            while (line := await queue.get()) is not None:
                line = line.strip()
                if echo and line:
                    self.printer.write(f"{YOU} {line}")
                if line in ("/quit", "/exit"):
                    break
                if line:
                    try:
                        await self.handle(line)
                    except OSError as exc:  # an unreadable path: say so and carry on
                        self.printer.note(f"cannot read that: {exc}")
                next_line.set()  # only now prompt again, so answers never interleave with it
            await self._farewell()
        finally:
            await self.core.stop()

    def _banner(self) -> None:
        assert self.core is not None
        services = self.core.services
        version = services.serving.version
        self.printer.note(
            "bearbot chat — the real bot's conversation, offline. Type an image path (a folder is sent as an album), "
            "/correct <label> to correct my last answer, a number to tap a button, /help, /stats, /retrain; "
            "Ctrl-D or /quit to leave."
        )
        if version is not None:
            self.printer.note(
                f"Serving model v{version.id} ({version.arch}); labels: {', '.join(services.serving.labels)}; "
                f"data in {services.settings.data_dir}"
            )

    async def _farewell(self) -> None:
        assert self.core is not None
        run = await self.core.services.storage.in_thread(runs.active_run)
        if run is not None:
            self.printer.note(
                f"Training run #{run.id} is {run.status.value}; it carries on while `bearbot run` or `bearbot chat` "
                "is open (or run it now with `bearbot worker --once`), and the outcome is reported here next time."
            )

    async def handle(self, line: str) -> None:
        """Turn one console line into core events and answer them to completion."""
        if line.isdigit() and self.printer.buttons:
            index = int(line) - 1
            if not 0 <= index < len(self.printer.buttons):
                self.printer.note(f"there are buttons 1–{len(self.printer.buttons)}")
                return
            message_id, button = self.printer.buttons[index]
            await self._send(ButtonEvent(YOU_SENDER, Place(CHAT, message_id), button.id), message_id)
            return
        path = _as_path(line)
        if path is not None and path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:ALBUM_MAX]
            if not files:
                self.printer.note(f"no images in {path}")
            for file in files:
                self.printer.note(file.name)
                await self._send_file(file)
            return
        if path is not None and path.is_file():
            await self._send_file(path)
            return
        if path is not None and path.suffix.lower() in IMAGE_SUFFIXES:
            self.printer.note(f"no such file: {path}")
            return
        if line.startswith("/"):
            name, *args = line[1:].split()
            last = self.printer.last_answer
            target = Target(last[0], last[1]) if name == "correct" and last is not None else None
            await self._send(CommandEvent(YOU_SENDER, self._place(), name, tuple(args), target))
            return
        await self._send(ChatterEvent(YOU_SENDER, self._place(), "text"))

    def _place(self) -> Place:
        return Place(CHAT, next(self._ids))

    async def _send_file(self, path: Path) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        if (mimetypes.guess_type(path.name)[0] or "").startswith("image/"):
            await self._send(ImageEvent.of_bytes(YOU_SENDER, self._place(), data))
        else:  # PDFs, text files…: what Telegram calls a document that is no image
            await self._send(ChatterEvent(YOU_SENDER, self._place(), "unusable"))

    async def _send(self, event: Event, tapped: int | None = None) -> None:
        assert self.core is not None
        await self.core.handle(event, ConsoleReplier(self, tapped))


def _start_reader(
    lines: TextIO, *, interactive: bool, printer: Printer | None = None
) -> tuple[asyncio.Queue[str | None], threading.Event]:
    """Read lines on a daemon thread (Ctrl-C never waits for a blocked read); None marks EOF.

    The thread reads the next line only after the returned event is set (the last one is handled).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    next_line = threading.Event()
    next_line.set()
    if interactive:
        _enable_line_editing()

    def read() -> None:
        while True:
            next_line.wait()
            next_line.clear()
            if interactive and printer is not None:
                printer.waiting(f"{YOU} ")
            try:
                line: str | None = input(f"{YOU} ") if interactive else (lines.readline() or None)
            except EOFError:
                line = None
            finally:
                if printer is not None:
                    printer.waiting(None)
            loop.call_soon_threadsafe(queue.put_nowait, line)
            if line is None:
                return

    threading.Thread(target=read, name="console-input", daemon=True).start()
    return queue, next_line


def _typed_so_far() -> str:
    """What the user has typed at the prompt (readline's buffer; empty without readline)."""
    try:
        import readline
    except ImportError:
        return ""
    return readline.get_line_buffer()


def _enable_line_editing() -> None:
    """History and Tab completion of file paths at the prompt, where the platform has readline."""
    try:
        import readline
    except ImportError:
        return

    def complete(text: str, state: int) -> str | None:
        matches = sorted(glob.glob(os.path.expanduser(text) + "*"))
        matches = [m + "/" if os.path.isdir(m) else m for m in matches]
        return matches[state] if state < len(matches) else None

    readline.set_completer_delims(" \t\n")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")


def _as_path(line: str) -> Path | None:
    """The line as a path when it looks like one (quotes and ~ handled), else None."""
    if line.startswith("/") and not Path(line.split()[0]).exists() and " " in line:
        return None  # a command with arguments
    try:
        parts = shlex.split(line)
    except ValueError:
        return None
    if len(parts) != 1:
        return None
    path = Path(parts[0]).expanduser()
    if path.exists() or path.suffix.lower() in IMAGE_SUFFIXES:
        return path
    return None


def chat(settings: Settings, *, lines: TextIO = sys.stdin, out: TextIO = sys.stdout, loader: ClassifierLoader | None = None) -> None:
    """Run a console session until EOF (piped input is echoed so the transcript reads well)."""
    session = ConsoleChat(settings, out=out, loader=loader)
    try:
        asyncio.run(session.run(lines, echo=not lines.isatty()))
    except KeyboardInterrupt:
        print(file=out)
