"""How many corrections does a confusion need? Unseen errors per class as users correct more photos.

Cross-source, on cached features: the dataset from ``--base``; per seed, ``--stream`` is split into
the photos users send (60 %, near-duplicate groups whole, nothing near a base photo) and unseen test
photos. The sender confirms half of the right answers (✅). Of the wrong answers on ``--label``
photos (the confusion users correct — for black bears: cinnamon ones called grizzly, plush and
sculptures called teddy), the first *k* are corrected, for k = 0, 1, 2, … all; every other wrong
answer stays uncorrected. For each k the head is refit with the pipeline's recipe
(``trainer.train.TrainConfig`` defaults) and the unseen test errors are counted per true class,
pooled over seeds. Prints the table and saves the curve as a PNG. ``--said grizzly`` corrects one
confusion only (black bears the model called grizzly) and adds that cell to the table and the curve.
Seeds hold different numbers of such mistakes, so a k only some seeds reach also shows those seeds'
errors at k = 0 beside it.

    python bench/correction_curve.py --base ../shared/data/bears --stream ../shared/data/bears-2019 --label black
    python bench/correction_curve.py --label black --said grizzly --out bench/out/correction_curve_black_grizzly.png
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
    parser = lc.feature_bench_parser(__doc__.split("\n\n")[0], seeds=20)
    parser.add_argument("--label", default="black", help="the true class whose wrong answers users correct")
    parser.add_argument("--said", help="only the confusion --label → this answer is corrected (e.g. grizzly: cinnamon "
                                       "black bears), and its unseen cell is printed and plotted too")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "correction_curve.png")
    args = parser.parse_args()
    cfg = TrainConfig(batch_size=32, device="cpu")
    src = lc.Sources.load(args.base, args.stream)
    labels, zero_shot, x = src.labels, src.zero_shot, src.x
    index = {label: i for i, label in enumerate(labels)}
    base_train, pool = src.base_train(), src.pool()
    said_index = index[args.said] if args.said else None
    cell_name = f"{args.label}→{args.said}" if args.said else None
    errors: dict[int, dict[str, int]] = {}  # k → true class (and the --said cell) → unseen errors, pooled
    runs: dict[int, int] = {}
    baseline: dict[int, dict[str, int]] = {}  # k → the same seeds' errors at k = 0 (seeds reach different k)
    columns = [*labels, *([cell_name] if cell_name else [])]
    zero_shot_errors = dict.fromkeys(columns, 0)
    every = dict.fromkeys(columns, 0)  # every wrong answer corrected, whatever its class
    for seed in range(args.seeds):
        rng = random.Random(seed)
        stream, test = lc.split_groups(pool, rng, [0.6, 1.0])
        with torch.no_grad():
            said = zero_shot.head(x(stream)).argmax(1)
        wrong = [p for p, a in zip(stream, said, strict=True) if index[p.label] != int(a)]
        right = [p for p, a in zip(stream, said, strict=True) if index[p.label] == int(a) and rng.random() < args.confirm]
        confusion = [p for p, a in zip(stream, said, strict=True) if p.label == args.label and index[p.label] != int(a)
                     and (said_index is None or int(a) == said_index)]
        rng.shuffle(confusion)
        with torch.no_grad():
            count(zero_shot_errors, test, zero_shot.head(x(test)).argmax(1).tolist(), index, cell_name, said_index)
        at_zero: dict[str, int] = {}
        for k in [*range(len(confusion) + 1), -1]:
            corrected = wrong if k == -1 else confusion[:k]
            rows = [(p, 1.0) for p in base_train] + [(p, cfg.correction_weight) for p in corrected + right]
            head = src.fit(rows, l2=cfg.head_l2, max_iter=cfg.max_iter)
            seed_errors = dict.fromkeys(columns, 0)
            with torch.no_grad():
                count(seed_errors, test, head(x(test)).argmax(1).tolist(), index, cell_name, said_index)
            at_zero = at_zero or seed_errors  # k = 0 comes first
            for target, add in ((every if k == -1 else errors.setdefault(k, dict.fromkeys(columns, 0)), seed_errors),
                                (baseline.setdefault(k, dict.fromkeys(columns, 0)), at_zero)):
                for c in columns:
                    target[c] += add[c]
            if k != -1:
                runs[k] = runs.get(k, 0) + 1
    what = f"'{args.label}' called '{args.said}'" if args.said else f"wrong '{args.label}' answers"
    print(f"# --base {args.base} --stream {args.stream}; {args.seeds} seeds; corrections of {what}; "
          f"{args.confirm:.0%} of right answers confirmed")
    heads = [f"true {label} errors" for label in labels] + ([f"{cell_name} (of them)"] if cell_name else [])
    print("| corrections per seed | seeds | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(columns))
    print(f"| zero-shot, no training | {args.seeds} | " + " | ".join(str(zero_shot_errors[c]) for c in columns) + " |")
    # A k only some seeds reach would mix seed sets: show the ks every seed reached, then the rest marked,
    # each with the same seeds' errors at 0 corrections beside it.
    for k in sorted(errors):
        note = "" if runs[k] == args.seeds else " (only seeds with this many)"
        cells = " | ".join(f"{errors[k][c]} ({baseline[k][c]} at 0)" if runs[k] < args.seeds else str(errors[k][c])
                           for c in columns)
        print(f"| {k} | {runs[k]}{note} | {cells} |")
    print(f"| every wrong answer, all classes | {args.seeds} | " + " | ".join(str(every[c]) for c in columns) + " |")
    plot(errors, runs, zero_shot_errors, columns, args)


def count(cell: dict[str, int], test: list, answers: list[int], index: dict[str, int], cell_name: str | None,
          said_index: int | None) -> None:
    """Add each test photo's error to its true class (and to the ``--said`` confusion cell)."""
    for p, a in zip(test, answers, strict=True):
        cell[p.label] += int(a != index[p.label])
        if cell_name is not None and p.label == cell_name.split("→")[0]:
            cell[cell_name] += int(a == said_index)


def plot(
    errors: dict[int, dict[str, int]], runs: dict[int, int], zero_shot: dict[str, int], labels: list[str],
    args: argparse.Namespace,
) -> None:
    """Unseen errors per class (and the ``--said`` cell, dashed) per seed against corrections per seed;
    dotted: the zero-shot model."""
    from matplotlib.figure import Figure

    ks = sorted(k for k in errors if runs[k] >= max(3, args.seeds // 2))
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for label in labels:
        cell = "→" in label
        line, = ax.plot(ks, [errors[k][label] / runs[k] for k in ks], marker="o",
                        linestyle="--" if cell else "-", label=label if cell else f"true {label}")
        ax.axhline(zero_shot[label] / args.seeds, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(xlabel=f"corrected wrong '{args.label}' answers (per seed)", ylabel="unseen test errors (per seed)",
           title=f"{args.stream.name}: users correct {args.label} mistakes" + (f" called {args.said}" if args.said else ""))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"curve: {args.out}")


if __name__ == "__main__":
    main()
