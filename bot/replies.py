"""What the bot says: message texts and inline keyboards, as pure functions of data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from storage.models import CorrectionStatus

FEEDBACK_PREFIX = "fb"
REVIEW_PREFIX = "rv"


def pct(p: float) -> str:
    """0.623 → '62 %' (under 1 % shown as '<1 %')."""
    value = round(p * 100)
    return "<1 %" if value == 0 and p > 0 else f"{value} %"


def prediction_text(*, label: str, confidence: float, probabilities: Mapping[str, float], is_bear: bool) -> str:
    """The answer to a photo: the label and its confidence, then the other classes."""
    others = " · ".join(
        f"{name} {pct(p)}" for name, p in sorted(probabilities.items(), key=lambda kv: -kv[1]) if name != label
    )
    if not is_bear:
        return (
            "🤔 I don't see a bear here.\n"
            f"If there is one, it looks most like {label} ({pct(confidence)}); others: {others}.\n"
            "Tap the right label if I'm wrong."
        )
    return f"🐻 {label} · {pct(confidence)}\nothers: {others}\nRight? Tap ✅, or the right label."


def feedback_keyboard(prediction_id: int, labels: Sequence[str], predicted: str, *, is_bear: bool) -> InlineKeyboardMarkup:
    """Confirm (✅) the predicted label or pick another one; callback data ``fb:<id>:<label>``."""
    others = [
        InlineKeyboardButton(f"it's {name}", callback_data=f"{FEEDBACK_PREFIX}:{prediction_id}:{name}")
        for name in labels
        if name != predicted or not is_bear
    ]
    rows = [others]
    if is_bear:
        rows.insert(0, [InlineKeyboardButton(f"✅ yes, {predicted}", callback_data=f"{FEEDBACK_PREFIX}:{prediction_id}:{predicted}")])
    return InlineKeyboardMarkup(rows)


def parse_feedback(data: str) -> tuple[int, str] | None:
    """``fb:12:teddy`` → (12, 'teddy'); None when malformed."""
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] != FEEDBACK_PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def prediction_id_of(markup: InlineKeyboardMarkup | None) -> int | None:
    """The prediction id carried by an answer's feedback buttons (no DB lookup, no race with it)."""
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            parsed = parse_feedback(str(button.callback_data or ""))
            if parsed is not None:
                return parsed[0]
    return None


def review_keyboard(correction_id: int) -> InlineKeyboardMarkup:
    """Approve / reject buttons for one pending correction; callback data ``rv:a|r:<id>``."""
    return InlineKeyboardMarkup(
        [[
            InlineKeyboardButton("✅ approve", callback_data=f"{REVIEW_PREFIX}:a:{correction_id}"),
            InlineKeyboardButton("❌ reject", callback_data=f"{REVIEW_PREFIX}:r:{correction_id}"),
        ]]
    )


def parse_review(data: str) -> tuple[bool, int] | None:
    """``rv:a:7`` → (True, 7); None when malformed."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != REVIEW_PREFIX or parts[1] not in ("a", "r") or not parts[2].isdigit():
        return None
    return parts[1] == "a", int(parts[2])


def correction_text(
    *, label: str, said: str, confidence: float, is_bear: bool, updated: bool, status: CorrectionStatus, agreeing: int, required: int
) -> str:
    """'Recorded: grizzly — I said black, 62 %' plus what happens to it next."""
    verb = "Updated" if updated else "Recorded"
    if label == said and is_bear:
        head = f"{verb}: {label} — thanks for confirming (I said {said}, {pct(confidence)})."
    elif not is_bear:
        head = f"{verb}: {label} — I said I saw no bear ({said} {pct(confidence)})."
    else:
        head = f"{verb}: {label} — I said {said}, {pct(confidence)}."
    if status == CorrectionStatus.ACCEPTED:
        tail = "It will be used in the next training run."
    else:
        tail = f"It will teach me once {required} people agree ({agreeing} so far) or an admin approves it."
    return f"{head}\n{tail}"


def usage_correct(labels: Sequence[str]) -> str:
    return (
        "To correct me, reply to my answer (or to your photo) with /correct <label>, "
        f"e.g. /correct {labels[0]}.\nLabels: {', '.join(labels)}."
    )


def unknown_label(label: str, labels: Sequence[str]) -> str:
    return f"I don't know the label “{label}”. Valid labels: {', '.join(labels)}."


def help_text(labels: Sequence[str], *, is_admin: bool) -> str:
    """/help and /start: what the bot does and which commands exist."""
    text = (
        "Send me a photo of a bear and I'll tell you which kind it is: "
        f"{', '.join(labels)}.\n"
        "Photos, albums and image files (JPEG, PNG, WebP, GIF) all work.\n\n"
        "If I'm wrong, tap the right label under my answer, or reply to it with /correct <label>. "
        "Your corrections teach me.\n\n"
        "When a new model has learned your correction, I tell you once; /notify off (or /quiet) stops that, "
        "/notify on turns it back on.\n\n"
        "/labels — the labels I know\n/help — this message"
    )
    if is_admin:
        text += (
            "\n\nAdmin:\n/retrain — queue a training run now\n/stats — usage and accuracy\n"
            "/model — the serving model\n/rollback — go back to the previous model\n"
            "/pending — review pending corrections"
        )
    return text


NOT_ADMIN = "Sorry, that command is for the bot's admins."
NOT_AN_IMAGE = "I can only look at images: send a photo or an image file (JPEG, PNG, WebP or GIF)."
TEXT_HINT = "Send me a photo of a bear 🐻 — or /help to see what I can do."
