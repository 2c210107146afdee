"""How many corrections does a confusion need? Unseen errors per class as users correct more photos.

Cross-source, on cached features: the dataset from ``--base``; per seed, ``--stream`` is split into
the photos users send (60 %, near-duplicate groups whole, nothing near a base photo) and unseen test
photos. The sender confirms half of the right answers (✅). Of the wrong answers on ``--label``
photos (the confusion users correct — for black bears: cinnamon ones called grizzly, plush and
sculptures called teddy), the first *k* are corrected, for k = 0, 1, 2, … all; every other wrong
answer stays uncorrected. For each k the head is refit with the pipeline's recipe
(``trainer.train.TrainConfig`` defaults) and the unseen test errors are counted per true class,
pooled over seeds. Prints the table and saves the curve as a PNG.

    python bench/correction_curve.py --base ../shared/data/bears --stream ../shared/data/bears-2019 --label black
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import learning_curve as lc  # noqa: E402
from trainer.train import TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=lc.SHARED / "bears")
    parser.add_argument("--stream", type=Path, default=lc.SHARED / "bears-2019")
    parser.add_argument("--label", default="black", help="the true class whose wrong answers users correct")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--confirm", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "correction_curve.png")
    args = parser.parse_args()
    cfg = TrainConfig(batch_size=32, device="cpu")
    src = lc.Sources.load(args.base, args.stream)
    labels, zero_shot, x, y = src.labels, src.zero_shot, src.x, src.y
    index = {label: i for i, label in enumerate(labels)}
    base_train, pool = src.base_train(), src.pool()
    errors: dict[int, dict[str, int]] = {}  # k → true class → unseen errors, pooled
    runs: dict[int, int] = {}
    zero_shot_errors = dict.fromkeys(labels, 0)
    every = dict.fromkeys(labels, 0)  # every wrong answer corrected, whatever its class
    for seed in range(args.seeds):
        rng = random.Random(seed)
        stream, test = lc.split_groups(pool, rng, [0.6, 1.0])
        with torch.no_grad():
            said = zero_shot.head(x(stream)).argmax(1)
        wrong = [p for p, a in zip(stream, said, strict=True) if index[p.label] != int(a)]
        right = [p for p, a in zip(stream, said, strict=True) if index[p.label] == int(a) and rng.random() < args.confirm]
        confusion = [p for p in wrong if p.label == args.label]
        rng.shuffle(confusion)
        with torch.no_grad():
            for p, m in zip(test, (zero_shot.head(x(test)).argmax(1) != y(test)).tolist(), strict=True):
                zero_shot_errors[p.label] += int(m)
        for k in [*range(len(confusion) + 1), -1]:
            corrected = wrong if k == -1 else confusion[:k]
            rows = [(p, 1.0) for p in base_train] + [(p, cfg.correction_weight) for p in corrected + right]
            head = src.fit(rows, l2=cfg.head_l2, max_iter=cfg.max_iter)
            with torch.no_grad():
                missed = head(x(test)).argmax(1) != y(test)
            cell = every if k == -1 else errors.setdefault(k, dict.fromkeys(labels, 0))
            for p, m in zip(test, missed.tolist(), strict=True):
                cell[p.label] += int(m)
            if k != -1:
                runs[k] = runs.get(k, 0) + 1
    print(f"# --base {args.base} --stream {args.stream}; {args.seeds} seeds; corrections of wrong '{args.label}' "
          f"answers; {args.confirm:.0%} of right answers confirmed")
    print("| corrections per seed | seeds | " + " | ".join(f"{label} errors" for label in labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    print(f"| zero-shot, no training | {args.seeds} | " + " | ".join(str(zero_shot_errors[label]) for label in labels) + " |")
    # A k only some seeds reach would mix seed sets: show the ks every seed reached, then the rest marked.
    for k in sorted(errors):
        note = "" if runs[k] == args.seeds else " (only seeds with this many)"
        print(f"| {k} | {runs[k]}{note} | " + " | ".join(str(errors[k][label]) for label in labels) + " |")
    print(f"| every wrong answer, all classes | {args.seeds} | " + " | ".join(str(every[label]) for label in labels) + " |")
    plot(errors, runs, zero_shot_errors, labels, args)


def plot(
    errors: dict[int, dict[str, int]], runs: dict[int, int], zero_shot: dict[str, int], labels: tuple[str, ...],
    args: argparse.Namespace,
) -> None:
    """Unseen errors per class (per seed) against corrections per seed; dotted: the zero-shot model."""
    from matplotlib.figure import Figure

    ks = sorted(k for k in errors if runs[k] >= max(3, args.seeds // 2))
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for label in labels:
        line, = ax.plot(ks, [errors[k][label] / runs[k] for k in ks], marker="o", label=f"true {label}")
        ax.axhline(zero_shot[label] / args.seeds, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(xlabel=f"corrected wrong '{args.label}' answers (per seed)", ylabel="unseen test errors (per seed)",
           title=f"{args.stream.name}: users correct {args.label} mistakes")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"curve: {args.out}")


if __name__ == "__main__":
    main()
