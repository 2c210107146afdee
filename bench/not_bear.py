"""Bear or not: how often pets are called a bear and real bears are refused, old rule beside new.

The decision "is there a bear at all" is read from the frozen ImageNet head of the serving body
(``BearNet.forward_all``), so it is the same for v0 and for every trained model (training refits
only the label head). This bench extracts the 1000 ImageNet logits of every photo once, at the
serving size with the serving crop, and compares scores of them:

* ``mass``: the softmax mass on ImageNet's bear classes 294–297 + 850 (the rule before issue 17);
* ``ratio``: log of that mass over the strongest non-bear class;
* ``max-logit``: the largest bear-class logit, through a sigmoid (what the bot uses,
  ``bearbot.model_def.bear_score``; thresholds are printed on that 0..1 scale);
* ``energy``: log-sum-exp of the bear-class logits (an unnormalised bear energy);
* ``learned``: a small second head on the frozen pooled features (logistic regression, bears of
  ``--tune`` against the pets, as users' "not a bear" reports would train it). Its tune-folder and
  pet scores are cross-fitted (5 folds: each photo scored by a head that did not see it), so its
  threshold is tuned on unseen photos like the others'; the check folder is scored by a head fit
  on all of them.

For each score, the operating point is tuned on ``--tune`` plus ``--pets``: the most lenient
threshold that lets at most ``--max-pets`` (1 %) of the pets through, placed halfway (for ``mass`` in
log space, for ``max-logit`` in logit space) between that pet and the next score above it among pets and tune-folder bears. It is then
checked on ``--check``. ``old`` is the bear mass ≥ 0.005 the bot had; ``new`` is ``max-logit`` at the serving
setting (``BEARBOT_BEAR_THRESHOLD``).

Counting: the bear folders are web scrapes. Items reviewed by eye and found not to be a photo of a
bear (dogs filed as teddy, cartoons, drawings, printed products, charts, sculptures, a video-game
render) are listed in ``NOT_A_BEAR_PHOTO``; the "real" columns leave them out, the "filed" columns
count every file under its folder. Plush and toy bears count as bears. Only the lowest-scoring
items were reviewed (the 14 lowest of bears/, the 34 lowest of bears-2019), which covers every
threshold printed here; unreviewed items count as real bears.

    python bench/not_bear.py                       # tune on bears/, check on bears-2019/
    python bench/not_bear.py --tune ../shared/data/bears-2019 --check ../shared/data/bears

Prints a table per rule and folder and writes the curve to ``bench/out/not_bear.png``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bearbot.backbone import IMAGENET_BEAR_CLASSES
from bearbot.imaging import image_files
from bearbot.inference import build_v0
from bearbot.model_def import bear_mass, bear_score
from bearbot.preprocess import center_crop_resize, to_batch
from bearbot.settings import Settings
from trainer.data import decoded_batches

OLD_THRESHOLD = 0.005  # the bear-mass threshold before issue 17

# Reviewed by eye (folder name, file relative to it) → why it is not counted as a bear photo.
NOT_A_BEAR_PHOTO: dict[tuple[str, str], str] = {
    ("bears", "teddy/9d2327a60a9d03a4.jpg"): "a black puppy held in a hand",
    ("bears", "teddy/359e642d987c90b6.jpg"): "a Shih-Tzu puppy on a chair",
    ("bears-2019", "black/974959d028d2e2b8.jpg"): "cartoon",
    ("bears-2019", "teddy/356e006d9b5ef613.jpg"): "cartoon (stock vector)",
    ("bears-2019", "teddy/4bae605eb931b654.jpg"): "cartoon",
    ("bears-2019", "teddy/2f8fe55c18898304.jpg"): "cartoon sticker",
    ("bears-2019", "teddy/4fb5194a78e78b63.jpg"): "make-up palette shaped like a bear",
    ("bears-2019", "teddy/c4c84f2cf1523be5.jpg"): "phone case with a printed teddy",
    ("bears-2019", "black/dd8e979f27dbdc56.jpg"): "printed label art",
    ("bears-2019", "teddy/c421e9f7ff201302.jpg"): "cartoon",
    ("bears-2019", "teddy/47c2f85991d57378.jpg"): "metal bear-shaped object",
    ("bears-2019", "grizzly/9891b5feda8bc517.jpg"): "scientific figure (charts)",
    ("bears-2019", "black/ac507a5e463a9293.jpg"): "polygon sculpture",
    ("bears-2019", "black/143fa9b9924fbbea.jpg"): "polygon sculpture",
    ("bears-2019", "black/ecb12a7fbe207454.jpg"): "painting",
    ("bears-2019", "black/e8396a07b00f0f32.jpg"): "cartoon",
    ("bears-2019", "teddy/c908511d1ce5bf81.jpg"): "cake tin and cake",
    ("bears-2019", "black/d2718bc30a21a0b0.jpg"): "cartoon (stock)",
    ("bears-2019", "black/1b8083442ce06b5f.jpg"): "polygon sculpture",
    ("bears-2019", "grizzly/6f152b7745951e43.jpg"): "video-game render",
    ("bears-2019", "teddy/2c1a2cb576cc608a.jpg"): "book cover drawing",
}

_BEAR = list(IMAGENET_BEAR_CLASSES)


def _not_bear_mask(logits: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(logits.shape[-1], dtype=torch.bool)
    keep[_BEAR] = False
    return keep


SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mass": lambda lg: bear_mass(lg, IMAGENET_BEAR_CLASSES),
    "ratio": lambda lg: torch.logsumexp(lg[:, _BEAR], -1) - lg[:, _not_bear_mask(lg)].max(-1).values,
    "max-logit": lambda lg: bear_score(lg, IMAGENET_BEAR_CLASSES),
    "energy": lambda lg: torch.logsumexp(lg[:, _BEAR], -1),
}
# Where thresholds are placed halfway: in log space for the mass, in logit space for the sigmoid.
TO_LINEAR: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "mass": (np.log, np.exp),
    "max-logit": (lambda p: np.log(p / (1 - p)), lambda x: 1 / (1 + np.exp(-x))),
}


@dataclass
class Folder:
    """One folder's photos: ImageNet logits and whether each counts as a real bear."""

    name: str
    features: torch.Tensor  # the body's pooled features
    logits: torch.Tensor
    real: np.ndarray  # bool per photo: counted in the "real" columns
    learned: np.ndarray | None = None  # the learned head's scores (see :func:`learn_head`)

    def score(self, rule: str) -> np.ndarray:
        if rule == "learned":
            assert self.learned is not None
            return self.learned
        return SCORES[rule](self.logits).numpy()


def features_and_logits(root: Path, *, batch_size: int = 32) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Pooled features and the frozen ImageNet head's logits for every image under ``root``, as the bot computes them."""
    model = build_v0(Settings().labels)
    paths = image_files(root)
    names: list[str] = []
    feats: list[torch.Tensor] = []
    for kept, images, unreadable in decoded_batches(paths, batch_size):
        for path in unreadable:
            print(f"  skipped unreadable {path}")
        batch = to_batch([center_crop_resize(img, model.image_size) for img in images], model.mean, model.std)
        with torch.inference_mode():
            feats.append(model.body(batch))
        names += [paths[i].relative_to(root).as_posix() for i in kept]
    features = torch.cat(feats)
    with torch.inference_mode():
        return names, features, model.imagenet_head(features)


def load_folder(root: Path) -> Folder:
    names, features, logits = features_and_logits(root)
    real = np.array([(root.name, n) not in NOT_A_BEAR_PHOTO for n in names])
    return Folder(root.name, features, logits, real)


def learn_head(tuned_on: Folder, pets: Folder, checked_on: Folder, *, folds: int = 5, seed: int = 0) -> None:
    """Fill ``learned`` scores: cross-fitted for ``tuned_on`` and ``pets``, a full fit for ``checked_on``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def head() -> object:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=2000))

    bears = np.flatnonzero(tuned_on.real)
    x = np.concatenate([tuned_on.features.numpy()[bears], pets.features.numpy()])
    y = np.r_[np.ones(len(bears)), np.zeros(len(pets.features))]
    oof = np.zeros(len(y))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        oof[held] = head().fit(x[fit], y[fit]).decision_function(x[held])
    full = head().fit(x, y)
    tuned_on.learned = full.decision_function(tuned_on.features.numpy())  # the unreal ones: never trained on
    tuned_on.learned[bears] = oof[: len(bears)]
    pets.learned = oof[len(bears):]
    checked_on.learned = full.decision_function(checked_on.features.numpy())


def tune(rule: str, bears: np.ndarray, pets: np.ndarray, max_pets: int) -> float:
    """Most lenient threshold letting at most ``max_pets`` pets through, halfway to the next score up."""
    f, back = TO_LINEAR.get(rule, (lambda x: x, lambda x: x))
    pet_sorted = np.sort(pets)[::-1]
    worst = pet_sorted[max_pets]  # the highest pet that must be refused
    above = np.concatenate([pets, bears])
    above = above[above > worst]
    nxt = above.min() if len(above) else worst
    return float(back((f(worst) + f(nxt)) / 2))


def rates(scores: np.ndarray, real: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(refused filed, filed, refused real, real) for one bear folder."""
    refused = scores < threshold
    return int(refused.sum()), len(scores), int(refused[real].sum()), int(real.sum())


def pct(k: int, n: int) -> str:
    return f"{k:3d}/{n:<3d} {100 * k / max(n, 1):5.2f} %"


def table(rows: list[tuple[str, str, float]], folders: list[Folder], pets: Folder) -> None:
    print(f"{'rule':<22}{'threshold':>10}  {'pets called bear':>18}", end="")
    for f in folders:
        print(f"  {f.name + ' refused (filed)':>24}  {f.name + ' refused (real)':>24}", end="")
    print()
    for label, rule, thr in rows:
        ps = pets.score(rule)
        print(f"{label:<22}{thr:>10.4g}  {pct(int((ps >= thr).sum()), len(ps)):>18}", end="")
        for f in folders:
            k, n, kr, nr = rates(f.score(rule), f.real, thr)
            print(f"  {pct(k, n):>24}  {pct(kr, nr):>24}", end="")
        print()


def _rates_panel(ax, rule: str, grid: np.ndarray, folders: list[Folder], pets: Folder, point: tuple[str, float]) -> None:
    """Pets called bear and real bears refused against one score's threshold."""
    ps = pets.score(rule)
    ax.plot(grid, [100 * np.mean(ps >= t) for t in grid], label="pets called bear", color="tab:red")
    for f, style in zip(folders, ("-", "--"), strict=False):
        s = f.score(rule)[f.real]
        ax.plot(grid, [100 * np.mean(s < t) for t in grid], style, label=f"{f.name}: real bears refused", color="tab:blue")
    name, thr = point
    ax.axvline(thr, color="grey", linestyle=":")
    ax.text(thr, 30, f" {name} {thr:g}", rotation=90, va="center")
    ax.axhline(1.0, color="tab:red", linewidth=0.5)
    ax.axhline(0.5, color="tab:blue", linewidth=0.5)
    ax.set(yscale="symlog", ylim=(0, 100), xlabel=f"{rule} threshold", ylabel="% (symlog)", title=f"{rule}: rates by threshold")
    ax.legend(loc="upper left", fontsize=8)


def plot(path: Path, folders: list[Folder], pets: Folder, old: float, new: float) -> None:
    """Rates against the old (mass) and new (max-logit) thresholds; each score's trade-off curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(18, 5))
    _rates_panel(left, "mass", np.logspace(-3.5, -0.5, 400), folders, pets, ("old", old))
    left.set_xscale("log")
    _rates_panel(mid, "max-logit", np.linspace(0.5, 1.0, 400), folders, pets, ("new", new))
    for rule in (*SCORES, "learned"):
        ps = pets.score(rule)
        for f, style in zip(folders, ("-", "--"), strict=False):
            s = f.score(rule)[f.real]
            thr = np.unique(np.concatenate([ps, s]))
            right.plot([100 * np.mean(ps >= t) for t in thr], [100 * np.mean(s < t) for t in thr], style,
                       label=f"{rule} ({f.name})")
    right.set(xlim=(0, 10), ylim=(0, 10), xlabel="% pets called bear", ylabel="% real bears refused",
              title="trade-off per score (lower left is better)")
    right.axvline(1.0, color="grey", linewidth=0.5)
    right.axhline(0.5, color="grey", linewidth=0.5)
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"curve: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune", type=Path, default=Path("../shared/data/bears"))
    parser.add_argument("--check", type=Path, default=Path("../shared/data/bears-2019"))
    parser.add_argument("--pets", type=Path, default=Path("../shared/data/not-bears"))
    parser.add_argument("--max-pets", type=float, default=0.01, help="largest share of pets a tuned rule may call a bear")
    parser.add_argument("--out", type=Path, default=Path("bench/out/not_bear.png"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tuned_on, checked_on, pets = (load_folder(p) for p in (args.tune, args.check, args.pets))
    pets.real = np.zeros(len(pets.logits), dtype=bool)
    allowed = math.floor(args.max_pets * len(pets.logits))
    new = Settings().bear_threshold
    rows = [("old (mass ≥ 0.005)", "mass", OLD_THRESHOLD), (f"new (max-logit ≥ {new:g})", "max-logit", new)]
    learn_head(tuned_on, pets, checked_on)
    for rule in (*SCORES, "learned"):
        thr = tune(rule, tuned_on.score(rule)[tuned_on.real], pets.score(rule), allowed)
        rows.append((f"{rule} tuned", rule, thr))
    print(f"tuned on {args.tune} + {args.pets} (at most {allowed} of {len(pets.logits)} pets), checked on {args.check}")
    table(rows, [tuned_on, checked_on], pets)
    plot(args.out, [tuned_on, checked_on], pets, OLD_THRESHOLD, new)


if __name__ == "__main__":
    main()
