"""The label set. Labels are data (settings, dataset rows, the model's own list), not code."""

from __future__ import annotations

import re

DEFAULT_LABELS: tuple[str, ...] = ("grizzly", "black", "teddy")

_LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class UnknownLabelError(ValueError):
    """A label outside the current label set."""

    def __init__(self, label: str, valid: tuple[str, ...]) -> None:
        super().__init__(f"unknown label {label!r}; valid labels: {', '.join(valid)}")
        self.label = label
        self.valid = valid


def normalize_label(label: str) -> str:
    """Lower-case and strip a user-typed label (``" Grizzly "`` → ``"grizzly"``)."""
    return label.strip().lower()


def check_label(label: str, valid: tuple[str, ...]) -> str:
    """Return the normalised label or raise :class:`UnknownLabelError`."""
    norm = normalize_label(label)
    if norm not in valid:
        raise UnknownLabelError(norm, valid)
    return norm


def parse_labels(text: str) -> tuple[str, ...]:
    """Parse ``"grizzly,black,teddy"`` into a validated, de-duplicated tuple (order kept)."""
    labels: list[str] = []
    for part in text.split(","):
        norm = normalize_label(part)
        if not norm:
            continue
        if not _LABEL_RE.match(norm):
            raise ValueError(f"label {norm!r} must be lower-case letters, digits, '-' or '_' (max 32)")
        if norm not in labels:
            labels.append(norm)
    if len(labels) < 2:
        raise ValueError("need at least two comma-separated labels")
    return tuple(labels)

# The answer "there is no bear in this photo": a label users may correct to (``/correct none``), stored
# like any correction, but never a class the label head learns (its photos are negatives for the
# bear/not-bear decision only).
NOT_BEAR = "none"
# What users may type for it: ``/correct none``, ``/correct notbear``, ``/correct not a bear``…
NOT_BEAR_ALIASES: frozenset[str] = frozenset({NOT_BEAR, "notbear", "not-bear", "not_bear", "not-a-bear", "nobear", "no-bear"})


def check_answer(text: str, labels: tuple[str, ...]) -> str:
    """A user's answer: one of ``labels``, or :data:`NOT_BEAR` for any of its aliases.

    Spaces count as hyphens (``"not a bear"``); raises :class:`UnknownLabelError` listing
    the labels and ``none``.
    """
    norm = "-".join(normalize_label(text).split())
    if norm in NOT_BEAR_ALIASES:
        return NOT_BEAR
    try:
        return check_label(norm, labels)
    except UnknownLabelError:
        raise UnknownLabelError(normalize_label(text), (*labels, NOT_BEAR)) from None


def answer_shown(label: str, is_bear: bool) -> str:
    """An answer as users see it: the model's label, or NOT_BEAR when it saw no bear."""
    return label if is_bear else NOT_BEAR
