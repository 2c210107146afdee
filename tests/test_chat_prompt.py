"""`bearbot chat`: a message that arrives while the prompt waits is drawn above a fresh prompt."""

from __future__ import annotations

import io
import threading

from bot.console.chat import Printer
from core.replies import Reply


def test_async_message_at_the_prompt_redraws_the_prompt() -> None:
    out = io.StringIO()
    printer = Printer(out)
    printer.waiting("you › ")
    # The bot's message comes from the core's learning job, as a finished retrain's does.
    thread = threading.Thread(target=printer.show, args=(Reply("Training run #1 succeeded.\nmore"), 7))
    thread.start()
    thread.join()
    indent = " " * len("bearbot › ")
    assert out.getvalue() == f"\r\x1b[Kbearbot › Training run #1 succeeded.\n{indent}more\nyou › "


def test_answers_to_a_typed_line_print_plainly() -> None:
    out = io.StringIO()
    printer = Printer(out)
    printer.waiting("you › ")
    printer.waiting(None)  # the user pressed Enter: the answer prints on its own lines, no prompt drawn
    printer.show(Reply("🐻 grizzly"), 7)
    assert out.getvalue() == "bearbot › 🐻 grizzly\n"
