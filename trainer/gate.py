"""The promotion gate: paired answers of the serving model and the candidate, and sign tests.

For every evaluation photo (the fixed golden split; the photos users reviewed, scored by
cross-fitted candidates that never trained on them; and the serving model's recent answers nobody
corrected, presumed right), each model is right or wrong. A photo the candidate gets right and
serving wrong is a *fix*; the reverse is a *break*; the rest say nothing about which model is
better. Under "the candidate is no better", fixes and breaks are equally likely, so the one-sided
exact sign test (McNemar's exact test) gives ``p = P(Binomial(fixes + breaks, ½) ≥ fixes)``.

The decision is made on users' photos (reviewed and presumed: the traffic the bot serves, hard
cases included); only when there are none, on the golden split. The candidate is promoted when
fixes outnumber breaks there with ``p ≤ alpha``. The golden split stays a second, fixed check: a
candidate significantly worse on it (breaks against fixes, the same test at the same ``alpha``)
is rejected whatever users' photos say. Two error-free scores are no evidence, so a tie never
promotes (unlike a log-loss tie-break, which favours whichever model is surer of itself).

Why golden is a check and not pooled into the decision: the golden split is imported photos, often
from another source than users' traffic. Pooled, one or two of its photos near the line (breaks
that are no evidence on their own, p ≥ 0.25) outvoted users' photos every time: with
``bench/learning_curve.py --base ../shared/data/bears-2019 --stream ../shared/data/bears`` the gate
promoted 0 of 20 runs (40 → 40 unseen errors); judged on users' photos, 10 of 20 (40 → 35), one of
them worse (bench/README.md).

Right means: the true label for a bear photo that the model also calls a bear; "not a bear" for a
photo users reported as not a bear. A candidate that calls more pets bears breaks those photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bearbot.labels import answer_shown
from bearbot.prediction import Prediction


def says(answer: Prediction) -> str:
    """An answer as users see it: a label, or NOT_BEAR when the model saw no bear."""
    return answer_shown(answer.label, answer.is_bear)


@dataclass(frozen=True)
class Pair:
    """One evaluation photo, answered by serving and by the candidate."""

    path: Path
    truth: str  # a model label, or NOT_BEAR
    group: str  # "golden", "reviewed" (users' labels, cross-fitted) or "presumed" (answers nobody corrected)
    serving: Prediction
    candidate: Prediction

    @property
    def serving_right(self) -> bool:
        return says(self.serving) == self.truth

    @property
    def candidate_right(self) -> bool:
        return says(self.candidate) == self.truth

    @property
    def fix(self) -> bool:
        return self.candidate_right and not self.serving_right

    @property
    def brk(self) -> bool:
        return self.serving_right and not self.candidate_right


def sign_test(fixes: int, breaks: int) -> float:
    """One-sided exact sign test: P(X ≥ fixes) for X ~ Binomial(fixes + breaks, ½); 1.0 with no pairs."""
    n = fixes + breaks
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(fixes, n + 1)) / 2**n


@dataclass(frozen=True)
class Decision:
    """The gate's verdict and the evidence behind it."""

    promote: bool
    reason: str
    fixes: list[Pair]
    breaks: list[Pair]
    p_value: float
    alpha: float
    n: dict[str, int]  # evaluation photos per group

    def summary(self) -> dict[str, Any]:
        """JSON-able figures for the run's metrics."""

        def names(pairs: Sequence[Pair]) -> list[dict[str, str]]:
            return [
                {"path": str(p.path), "truth": p.truth, "group": p.group,
                 "serving": says(p.serving), "candidate": says(p.candidate)}
                for p in pairs
            ]

        return {
            "promote": self.promote, "reason": self.reason, "p_value": round(self.p_value, 6), "alpha": self.alpha,
            "fixes": len(self.fixes), "breaks": len(self.breaks), "n": self.n,
            "golden_fixes": sum(p.group == "golden" for p in self.fixes),
            "golden_breaks": sum(p.group == "golden" for p in self.breaks),
            "fixed": names(self.fixes), "broken": names(self.breaks),
        }


def decide(pairs: Sequence[Pair], *, alpha: float) -> Decision:
    """Promote only on enough paired evidence from users' photos, and never when significantly worse
    on the golden split (module docstring). ``p_value`` is the decision's: on users' photos."""
    fixes = [p for p in pairs if p.fix]
    breaks = [p for p in pairs if p.brk]
    n = {group: sum(p.group == group for p in pairs) for group in ("golden", "reviewed", "presumed")}
    users = n["reviewed"] + n["presumed"] > 0  # without users' photos (a first import), golden decides
    main_fixes = [p for p in fixes if (p.group != "golden") == users]
    main_breaks = [p for p in breaks if (p.group != "golden") == users]
    p_value = sign_test(len(main_fixes), len(main_breaks))
    judged = "users' photos" if users else "the golden set"
    golden_fixes = sum(p.group == "golden" for p in fixes)
    golden_breaks = sum(p.group == "golden" for p in breaks)
    golden_p = sign_test(golden_breaks, golden_fixes)  # how sure "worse on golden" is
    if not fixes and not breaks:
        reason = "it answers every evaluation photo as the serving model does"
        promote = False
    elif golden_breaks > golden_fixes and golden_p <= alpha:
        reason = f"it is worse on the golden set ({golden_breaks} broken, {golden_fixes} fixed, p = {golden_p:.2f})"
        promote = False
    elif len(main_fixes) <= len(main_breaks):
        reason = f"on {judged} it does not fix more photos than it breaks ({len(main_fixes)} fixed, {len(main_breaks)} broken)"
        promote = False
    elif p_value > alpha:
        reason = (f"on {judged}, {len(main_fixes)} fixes against {len(main_breaks)} breaks is not enough evidence yet "
                  f"(p = {p_value:.2f} > {alpha:g})")
        promote = False
    else:
        reason = f"on {judged}, {len(main_fixes)} fixes against {len(main_breaks)} breaks (p = {p_value:.3f} ≤ {alpha:g})"
        promote = True
    return Decision(promote, reason, fixes, breaks, p_value, alpha, n)


def plot_changes(decision: Decision, path: Path, *, k: int = 12) -> Path | None:
    """A PNG of the photos the candidate breaks (red) and fixes (green); None when there are none."""
    shown = decision.breaks[:k] + decision.fixes[: max(0, k - len(decision.breaks))]
    if not shown:
        return None
    import numpy as np
    from matplotlib.figure import Figure

    from bearbot.preprocess import read_item_image

    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(cols * 2.8, rows * 3.1))
    fig.suptitle(f"Breaks {len(decision.breaks)} (red) / fixes {len(decision.fixes)} (green)")
    for i, pair in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        try:
            img = read_item_image(pair.path)
            img.thumbnail((220, 220))
            ax.imshow(np.asarray(img))
        except OSError:
            pass
        colour = "red" if pair.brk else "green"
        ax.set_title(
            f"true {pair.truth}\nserving {says(pair.serving)} → {says(pair.candidate)}", fontsize=8, color=colour
        )
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
