"""What the bot says: message texts and buttons (opaque ids), as pure functions of data, for every transport."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bearbot.labels import NOT_BEAR
from core.replies import Button, Buttons
from storage.models import CorrectionStatus

FEEDBACK_PREFIX = "fb"
REVIEW_PREFIX = "rv"
# Button ids are stateless (they survive a restart) and short (Telegram allows 64 bytes, Discord 100 characters).
FEEDBACK_ID_RE = re.compile(rf"{FEEDBACK_PREFIX}:(?P<prediction>\d+):(?P<label>.+)")
REVIEW_ID_RE = re.compile(rf"{REVIEW_PREFIX}:(?P<verdict>[ar]):(?P<correction>\d+)")
# Telegram refuses messages over 4096 characters; whatever a user typed is echoed at most this long.
MAX_ECHO = 40
NOT_BEAR_HINT = "none (not a bear; also notbear, not-a-bear)"


def pct(p: float) -> str:
    """0.623 → '62 %' (under 1 % shown as '<1 %')."""
    value = round(p * 100)
    return "<1 %" if value == 0 and p > 0 else f"{value} %"


# Below this confidence an answer is a guess between labels, and it says so. On unseen photos, answers
# under 60 % were right 56–64 % of the time, those at 60–80 % 72–83 % (bench/learning_curve.py's
# reliability table, 20 seeds, both folder directions, before and after a retrain: 113/201, 74/129,
# 34/53, 20/36).
UNSURE_BELOW = 0.6
# What tells two labels apart, for an answer torn between them (a pair no retrain has learned to split:
# bench/README.md, "Other confusions").
TELLS: dict[frozenset[str], str] = {
    frozenset({"black", "grizzly"}): (
        "Colour can mislead: many black bears are brown or cinnamon. A grizzly has a hump over its shoulders "
        "and a dished face; a black bear has no hump, a straight face and taller, pointed ears."
    ),
}


def prediction_text(*, label: str, confidence: float, probabilities: Mapping[str, float], is_bear: bool) -> str:
    """The answer to a photo: the label and its confidence, then the other classes; an unsure answer
    names the runner-up (and what tells the two apart, where known)."""
    ranked = [name for name, _ in sorted(probabilities.items(), key=lambda kv: -kv[1]) if name != label]
    others = " · ".join(f"{name} {pct(probabilities[name])}" for name in ranked)
    if not is_bear:
        return (
            f"🤔 I don't see a bear here — if there is one, reply /correct {label} (or tap its name below).\n"
            f"If it is a bear, it looks most like {label} ({pct(confidence)}); others: {others}."
        )
    lines = [f"🐻 {label} · {pct(confidence)}", f"others: {others}"]
    if confidence < UNSURE_BELOW and ranked:
        lines.append(f"I'm not sure: it could be {ranked[0]}.")
        tell = TELLS.get(frozenset({label, ranked[0]}))
        if tell is not None:
            lines.append(tell)
    lines.append("Right? Tap ✅, or the right label.")
    return "\n".join(lines)


def feedback_buttons(prediction_id: int, labels: Sequence[str], predicted: str, *, is_bear: bool) -> Buttons:
    """Confirm (✅) the answer, pick another label, or say "not a bear"; button ids ``fb:<id>:<label>``.

    The "not a bear" answer is the label ``none``: "🚫 not a bear" under a bear answer, "✅ right,
    no bear" under a refused one. Which chat and message a button may be pressed in is checked
    against the prediction row when it is pressed (``core.corrections``).
    """

    def button(text: str, label: str) -> Button:
        return Button(text, f"{FEEDBACK_PREFIX}:{prediction_id}:{label}")

    others = tuple(button(f"it's {name}", name) for name in labels if name != predicted or not is_bear)
    if is_bear:
        return ((button(f"✅ yes, {predicted}", predicted),), others, (button("🚫 not a bear", NOT_BEAR),))
    return ((button("✅ right, no bear", NOT_BEAR),), others)


def parse_feedback(data: str) -> tuple[int, str] | None:
    """``fb:12:teddy`` → (12, 'teddy'); None when malformed."""
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] != FEEDBACK_PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def prediction_id_of(button_ids: Sequence[str]) -> int | None:
    """The prediction id carried by an answer's feedback buttons (no DB lookup, no race with it)."""
    for button_id in button_ids:
        parsed = parse_feedback(button_id)
        if parsed is not None:
            return parsed[0]
    return None


def review_buttons(correction_id: int) -> Buttons:
    """Approve / reject buttons for one pending correction; button ids ``rv:a|r:<id>``."""
    return ((Button("✅ approve", f"{REVIEW_PREFIX}:a:{correction_id}"), Button("❌ reject", f"{REVIEW_PREFIX}:r:{correction_id}")),)


def parse_review(data: str) -> tuple[bool, int] | None:
    """``rv:a:7`` → (True, 7); None when malformed."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != REVIEW_PREFIX or parts[1] not in ("a", "r") or not parts[2].isdigit():
        return None
    return parts[1] == "a", int(parts[2])


def correction_text(
    *, label: str, said: str, confidence: float, is_bear: bool, updated: bool, status: CorrectionStatus, agreeing: int,
    required: int, admin_only: bool = False,
) -> str:
    """'Recorded: grizzly — I said black, 62 %' plus what happens to it next.

    ``admin_only``: a bear label for a photo I saw no bear in, which only an admin can accept.
    """
    verb = "Updated" if updated else "Recorded"
    name = "not a bear" if label == NOT_BEAR else label
    if (label == said and is_bear) or (label == NOT_BEAR and not is_bear):
        head = f"{verb}: {name} — thanks for confirming."
    elif not is_bear:
        head = f"{verb}: {name} — I said I saw no bear ({said} {pct(confidence)})."
    else:
        head = f"{verb}: {name} — I said {said}, {pct(confidence)}."
    if status == CorrectionStatus.ACCEPTED:
        tail = "It will be used in the next training run."
    elif admin_only:
        tail = "I saw no bear in this photo, so an admin has to approve it before I learn from it."
    else:
        tail = f"It will teach me once {required} trusted people agree ({agreeing} so far) or an admin approves it."
    return f"{head}\n{tail}"


@dataclass(frozen=True)
class HowToCorrect:
    """How a user names the answer a correction is about, in a transport's own words."""

    command: str  # the command, with {label}
    on_answer: str  # how to aim it at my answer: "{how} <command>"
    note: str = ""  # after the command
    menu: str = ""  # another way, if the transport has one


# Discord's slash commands cannot reply to a message: /correct takes the user's last photo in the
# channel, or a message link (bot/discord), and a context menu corrects any answer.
HOW_TO_CORRECT = {
    "telegram": HowToCorrect("/correct {label}", "reply to my answer (or to your photo) with"),
    "discord": HowToCorrect(
        "/correct label:{label}", "use", " (it corrects your last photo here; add message:<link> for another)",
        " You can also right-click my answer → Apps → Correct bear…",
    ),
}


def how_to_correct(transport: str) -> HowToCorrect:
    """The transport's way (Telegram's for those without their own, e.g. the console)."""
    return HOW_TO_CORRECT.get(transport, HOW_TO_CORRECT["telegram"])


def usage_correct(labels: Sequence[str], transport: str = "telegram") -> str:
    how = how_to_correct(transport)
    return (
        f"To correct me, {how.on_answer} {how.command.format(label='<label>')}{how.note}, "
        f"e.g. {how.command.format(label=labels[0])}, or {how.command.format(label='none')} if there is no bear."
        f"{how.menu}\nLabels: {', '.join(labels)}, {NOT_BEAR_HINT}."
    )


def no_prediction(transport: str = "telegram") -> str:
    """A /correct whose target is no answer of mine."""
    how = how_to_correct(transport)
    if how is HOW_TO_CORRECT["telegram"]:
        return "I have no prediction for that message. Reply to one of my answers with /correct <label>."
    return f"I have no prediction for that message. To correct me, {how.on_answer} {how.command.format(label='<label>')}{how.note}.{how.menu}"


def slow_down(what: str, per_minute: int, wait: float) -> str:
    """The reply to a user over a per-minute limit (``what``: "photos", "corrections")."""
    return (
        f"Slow down a little: I take up to {per_minute} {what} a minute per person. "
        f"Try again in {max(1, round(wait))} s."
    )


def echo(text: str, limit: int = MAX_ECHO) -> str:
    """User text to quote back, cut to ``limit`` characters (with '…') so a reply always fits."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unknown_label(label: str, labels: Sequence[str]) -> str:
    return f"I don't know the label “{echo(label)}”. Valid labels: {', '.join(labels)}, {NOT_BEAR_HINT}."


def help_text(labels: Sequence[str], *, is_admin: bool, transport: str = "telegram") -> str:
    """/help and /start: what the bot does and which commands exist."""
    how = how_to_correct(transport)
    if how is HOW_TO_CORRECT["telegram"]:  # Telegram's (and the console's) wording
        correct, none = "reply to it with /correct <label>.", "reply /correct none"
    else:
        correct = f"{how.on_answer} {how.command.format(label='<label>')}{how.note}.{how.menu}"
        none = how.command.format(label="none")
    text = (
        "Send me a photo of a bear and I'll tell you which kind it is: "
        f"{', '.join(labels)}.\n"
        "Photos, albums and image files (JPEG, PNG, WebP, GIF) all work.\n\n"
        f"If I'm wrong, tap the right label under my answer, or {correct} "
        "Your corrections teach me.\n"
        f"Not a bear at all (your cat, your dog, you)? Tap 🚫 not a bear, or {none} "
        "(notbear and not-a-bear work too).\n\n"
        "When a new model has learned your correction, I tell you once; /notify off (or /quiet) stops that, "
        "/notify on turns it back on.\n\n"
        "/labels — the labels I know\n/help — this message"
    )
    if is_admin:
        text += (
            "\n\nAdmin:\n/retrain — queue a training run now\n/stats — usage and accuracy\n"
            "/model — the serving model\n/rollback — go back to the previous model\n"
            "/pending — review pending corrections\n"
            "/mute <user> — their corrections stop counting (/unmute undoes it)"
        )
    return text


def usage_mute(command: str, transport: str = "telegram") -> str:
    """How to name the user of a /mute or /unmute."""
    if transport == "discord":
        return f"Name the user: /{command} user:@someone."
    return f"Name the user: reply to their photo (or my answer to it) with /{command}, or /{command} <their user id>."


def mute_text(*, name: str, transport: str, external_id: int, muted: bool, made: int, right: int, wrong: int) -> str:
    """The admin's confirmation of a /mute or /unmute, with what it does and the user's record."""
    who = f"{name} ({transport} user {external_id})"
    record = f"Their record: {made} correction{'' if made == 1 else 's'}, {right} turned out right, {wrong} wrong."
    if not muted:
        return f"🔊 Unmuted {who}: their corrections count again once their record earns trust.\n{record}"
    return (
        f"🔇 Muted {who}. Their corrections no longer count: they don't help accept a label and don't "
        "count toward a retrain (an admin can still approve one in /pending). They are not told, and can "
        f"still send photos.\n{record}\n/unmute {external_id} undoes it."
    )


NOT_ADMIN = "Sorry, that command is for the bot's admins."
NOT_AN_IMAGE = "I can only look at images: send a photo or an image file (JPEG, PNG, WebP or GIF)."
FOREIGN_BUTTON = "That button belongs to another message; I can't take it from here."
TEXT_HINT = "Send me a photo of a bear 🐻 — or /help to see what I can do."


def size_text(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def too_big(limit: int) -> str:
    """The one-line refusal of a file over the download limit."""
    return f"That file is too big for me (limit {size_text(limit)}). Send a smaller photo."


def unusable(reason: object) -> str:
    """The refusal of a file that is no image the bot can read (``reason``: the ImageError)."""
    return f"Sorry, I can't use that file: {reason}. Send a JPEG, PNG, WebP or GIF photo."


DOWNLOAD_FAILED = "I couldn't download that file. Please try sending it again."
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
OOPS = "Sorry, something went wrong on my side. Please try again."
