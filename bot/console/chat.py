"""``bearbot chat``: the real bot, handlers and all, driven from a terminal instead of Telegram.

Each console line becomes a Telegram update (an image path → a photo message, ``/correct teddy``
→ a reply to the last answer, a number → a tap on that button) and is handed to the same
``Application`` the real bot uses. The bot's HTTP calls go to :class:`FakeBotApi` on 127.0.0.1,
which prints what the bot sends. Works interactively and with piped stdin (exits at EOF).
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
from typing import Any, TextIO

from pydantic import SecretStr
from telegram import Update

from bearbot.imaging import IMAGE_SUFFIXES
from bearbot.settings import Settings
from bot.app import App, build_application, running
from bot.console.fake_api import FakeBotApi, JSONDict, Sent
from bot.model_holder import ClassifierLoader
from bot.replies import FEEDBACK_PREFIX
from bot.services import get_services
from storage import runs

CONSOLE_USER: JSONDict = {"id": 1, "is_bot": False, "first_name": "You", "username": "you"}
ALBUM_MAX = 10  # Telegram albums hold up to 10 items
BOT = "bearbot ›"
YOU = "you ›"


@dataclass
class Printer:
    """Prints the bot's messages and numbers the buttons of the latest keyboard."""

    out: TextIO
    lock: threading.Lock = field(default_factory=threading.Lock)
    buttons: list[tuple[Sent, str]] = field(default_factory=list)  # what "1", "2"… tap
    last_answer: Sent | None = None  # the latest prediction answer: /correct replies to it
    prompt: str | None = None  # set while the prompt waits for the user's next line (interactive only)

    def event(self, method: str, item: Sent | JSONDict) -> None:
        with self.lock:
            if isinstance(item, Sent):
                self._message(method, item)
            elif item.get("text"):  # answerCallbackQuery: Telegram shows it as a toast
                self.write(f"{BOT} ({item['text']})")

    def _message(self, method: str, sent: Sent) -> None:
        prefix = f"{BOT} (edited)" if method.startswith("edit") else BOT
        text = sent.text or ""
        if method == "sendPhoto":
            text = f"[photo] {text}"
        lines = text.splitlines() or [""]
        indent = " " * (len(BOT) + 1)
        self.write(f"{prefix} {lines[0]}" + "".join(f"\n{indent}{line}" for line in lines[1:]))
        if sent.buttons:
            self.buttons = [(sent, data) for _, data in sent.buttons]
            labels = "  ".join(f"[{i}] {label}" for i, (label, _) in enumerate(sent.buttons, 1))
            self.write(textwrap.fill(labels, width=100, initial_indent=indent, subsequent_indent=indent))
            if any(data.startswith(f"{FEEDBACK_PREFIX}:") for _, data in sent.buttons):
                self.last_answer = sent

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


class ConsoleChat:
    """One console session: the fake Bot API, the application, and line → update translation."""

    def __init__(self, settings: Settings, *, out: TextIO, loader: ClassifierLoader | None = None) -> None:
        self.api = FakeBotApi()
        self.printer = Printer(out)
        self.api.on_event = self.printer.event
        self.base_settings = settings
        self.loader = loader
        self._update_ids = itertools.count(1)
        self.app: App | None = None

    def _settings(self) -> Settings:
        # The console user is an admin, so /retrain, /stats… work as they would for you in Telegram.
        return self.base_settings.model_copy(
            update={
                "telegram_api_url": self.api.url,
                "telegram_bot_token": SecretStr(self.api.token),
                "admin_ids": frozenset(self.base_settings.admin_ids | {CONSOLE_USER["id"]}),
            }
        )

    async def run(self, lines: TextIO, *, echo: bool) -> None:
        """Read ``lines`` until EOF or /quit, feeding each to the bot and waiting for its answer."""
        self.api.start()
        try:
            self.app = build_application(self._settings(), loader=self.loader)
            async with running(self.app, poll=False):
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
            self.api.stop()

    def _banner(self) -> None:
        assert self.app is not None
        services = get_services(self.app)
        version = services.serving.version
        self.printer.note(
            "bearbot chat — the real bot's handlers, offline. Type an image path (a folder is sent as an album), "
            "/correct <label> to correct my last answer, a number to tap a button, /help, /stats, /retrain; "
            "Ctrl-D or /quit to leave."
        )
        if version is not None:
            self.printer.note(
                f"Serving model v{version.id} ({version.arch}); labels: {', '.join(services.serving.labels)}; "
                f"data in {services.settings.data_dir}"
            )

    async def _farewell(self) -> None:
        assert self.app is not None
        services = get_services(self.app)

        def active() -> Any:
            with services.storage.session() as session:
                return runs.active_run(session)

        run = await asyncio.to_thread(active)
        if run is not None:
            self.printer.note(
                f"Training run #{run.id} is {run.status.value}; it carries on while `bearbot run` or `bearbot chat` "
                "is open (or run it now with `bearbot worker --once`), and the outcome is reported here next time."
            )

    async def handle(self, line: str) -> None:
        """Turn one console line into an update and process it to completion."""
        if line.isdigit() and self.printer.buttons:
            index = int(line) - 1
            if not 0 <= index < len(self.printer.buttons):
                self.printer.note(f"there are buttons 1–{len(self.printer.buttons)}")
                return
            sent, data = self.printer.buttons[index]
            message = self.api.messages[(sent.chat_id, sent.message_id)]
            await self._process({"callback_query": {"id": f"cq{next(self._update_ids)}", "from": CONSOLE_USER,
                                                    "chat_instance": "console", "data": data, "message": message}})
            return
        path = _as_path(line)
        if path is not None and path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:ALBUM_MAX]
            if not files:
                self.printer.note(f"no images in {path}")
            album = f"album{next(self._update_ids)}"
            for file in files:
                self.printer.note(file.name)
                await self._send_file(file, media_group_id=album if len(files) > 1 else None)
            return
        if path is not None and path.is_file():
            await self._send_file(path)
            return
        if path is not None and path.suffix.lower() in IMAGE_SUFFIXES:
            self.printer.note(f"no such file: {path}")
            return
        reply_to = None
        if line.startswith("/correct") and self.printer.last_answer is not None:
            reply_to = self.printer.last_answer.message_id
        await self._message(text=line, reply_to=reply_to)

    async def _send_file(self, path: Path, *, media_group_id: str | None = None) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if mime == "image/jpeg":  # what Telegram does with a photo: a compressed JPEG
            await self._message(photo=data, media_group_id=media_group_id)
        else:  # PNG, WebP, GIF, PDFs…: sent "as a file"
            await self._message(document=data, mime_type=mime, file_name=path.name, media_group_id=media_group_id)

    async def _message(self, **kwargs: Any) -> None:
        message = self.api.user_message(CONSOLE_USER, **kwargs)
        await self._process({"message": message})

    async def _process(self, payload: JSONDict) -> None:
        assert self.app is not None
        update = Update.de_json({"update_id": next(self._update_ids), **payload}, self.app.bot)
        await self.app.process_update(update)


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
