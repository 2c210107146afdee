"""How far could corrections go on these features at most? The ceiling under issue 11's curve target.

Both folders' photos pooled, near-duplicate groups dealt whole into ``--folds`` folds; each fold is
answered by the head refit with the pipeline's recipe (:class:`trainer.train.TrainConfig`: the frozen
body, the head pulled towards ImageNet's rows, mirror images) on every other fold. That is as if users
had labelled about 90 % of every photo there is, from both sources, every confusion included: more
than any stream of corrections can give. Per confusion it prints how many photos the zero-shot model
gets wrong (all the photos of that confusion there are to correct, and to test on) and how many are
still wrong at the ceiling, per folder, for each ``--l2``.

    python bench/feature_ceiling.py
    python bench/feature_ceiling.py --folders ../shared/data/bears ../shared/data/bears-2019 --folds 10 --l2 0.01 0.001
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import learning_curve as lc  # noqa: E402
from trainer.train import TrainConfig  # noqa: E402

Answers = dict[str, str]  # photo sha256 → label answered


def folds_of(photos: list[lc.Photo], k: int, rng: random.Random) -> list[list[lc.Photo]]:
    """Near-duplicate groups shuffled, then dealt largest first into whichever fold is smallest."""
    groups = lc.groups_of(photos)
    rng.shuffle(groups)
    folds: list[list[lc.Photo]] = [[] for _ in range(k)]
    for group in sorted(groups, key=len, reverse=True):
        min(folds, key=len).extend(group)
    return folds


def cross_fit(src: lc.Sources, folds: list[list[lc.Photo]], *, l2: float, max_iter: int) -> Answers:
    """Each fold answered by a head refit on all the other folds."""
    answers: Answers = {}
    for i, test in enumerate(folds):
        train = [p for j, fold in enumerate(folds) if j != i for p in fold]
        head = src.fit([(p, 1.0) for p in train], l2=l2, max_iter=max_iter)
        with torch.no_grad():
            said = head(src.x(test)).argmax(1).tolist()
        answers.update({p.sha256: src.labels[a] for p, a in zip(test, said, strict=True)})
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=Path, nargs=2, default=[lc.SHARED / "bears", lc.SHARED / "bears-2019"])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--l2", type=float, nargs="+", default=[TrainConfig.head_l2, 0.001],
                        help="pulls towards ImageNet's rows to try (the recipe's first)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src = lc.Sources.load(*args.folders)
    photos = src.base + src.stream
    folder_of = {p.sha256: 0 for p in src.base} | {p.sha256: 1 for p in src.stream}  # by position: names may repeat
    with torch.no_grad():
        zero_shot = {p.sha256: src.labels[a] for p, a in zip(photos, src.zero_shot.head(src.x(photos)).argmax(1).tolist(),
                                                              strict=True)}
    folds = folds_of(photos, args.folds, random.Random(args.seed))
    columns: list[tuple[str, Answers]] = [("zero-shot (all there are to correct)", zero_shot)]
    for l2 in args.l2:
        columns.append((f"ceiling, l2 = {l2:g}", cross_fit(src, folds, l2=l2, max_iter=TrainConfig.max_iter)))

    def cells(answers: Answers) -> collections.Counter[tuple[str, str, int]]:
        return collections.Counter((p.label, answers[p.sha256], folder_of[p.sha256]) for p in photos
                                   if answers[p.sha256] != p.label)

    counted = [cells(answers) for _, answers in columns]
    names = [f.name for f in args.folders]
    confusions = sorted({(t, s) for c in counted for t, s, _ in c}, key=lambda ts: -counted[0][(*ts, 0)] - counted[0][(*ts, 1)])
    print(f"# {len(photos)} photos ({' + '.join(f'{len(part)} {n}' for part, n in ((src.base, names[0]), (src.stream, names[1])))}), "
          f"{args.folds} folds of whole near-duplicate groups; each cell: {names[0]} + {names[1]} = both")
    print("| true → answered | " + " | ".join(name for name, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))

    def cell(c: collections.Counter[tuple[str, str, int]], true: str | None, said: str | None) -> str:
        a, b = (sum(n for (t, s, f), n in c.items() if (true is None or (t, s) == (true, said)) and f == folder)
                for folder in (0, 1))
        return f"{a} + {b} = {a + b}"

    for true, said in confusions:
        print(f"| {true} → {said} | " + " | ".join(cell(c, true, said) for c in counted) + " |")
    print("| all errors | " + " | ".join(cell(c, None, None) for c in counted) + " |")


if __name__ == "__main__":
    main()
