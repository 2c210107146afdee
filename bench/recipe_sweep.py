"""The head-refit recipe, swept on cached features: what should users' labels weigh?

Cross-source, as ``bench/learning_curve.py``: the dataset from ``--base``; users send 60 % of
``--stream`` (near-duplicate groups kept whole, nothing near a base photo), an admin corrects every
wrong answer and the sender confirms ``--confirm`` of the right ones; the other 40 % is the unseen
test. For each recipe — correction weight, confirmation weight, L2 pull λ, base photos on/off —
one head is refit and its unseen-test errors are counted against the zero-shot model's, with the
paired fixes and breaks. No gate: this measures what each recipe *would* do if promoted.

``--knn K`` also scores each head blended with a vote of the K training photos nearest in feature
space (cosine; weights softmax(similarity / 0.05) × the row's weight; answer = argmax of
log softmax(head) + log vote). A candidate recipe, not what the pipeline serves (bench/README.md).

    python bench/recipe_sweep.py --base ../shared/data/bears --stream ../shared/data/bears-2019 --seeds 8
"""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import learning_curve as lc  # noqa: E402


def main() -> None:
    parser = lc.feature_bench_parser(__doc__.split("\n\n")[0], seeds=8)
    parser.add_argument("--correction-weights", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--confirmation-weights", type=float, nargs="+", default=[0.0, 1.0, 4.0])
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01, 0.03])
    parser.add_argument("--base-weights", type=float, nargs="+", default=[1.0, 0.0])
    parser.add_argument("--knn", type=int, default=0, help="also score each head blended with a K-nearest-photo vote")
    args = parser.parse_args()
    src = lc.Sources.load(args.base, args.stream)
    index = {label: i for i, label in enumerate(src.labels)}
    x, y, zero_shot = src.x, src.y, src.zero_shot
    base_train, pool = src.base_train(), src.pool()
    grid = list(itertools.product(args.correction_weights, args.confirmation_weights, args.l2, args.base_weights))
    totals = {cell: [0, 0, 0] for cell in grid}  # errors after, fixes, breaks
    blended = {cell: [0, 0, 0] for cell in grid}  # the same with the nearest-photo vote (--knn)
    v0_errors = n_test = 0
    with torch.no_grad():
        for seed in range(args.seeds):
            rng = random.Random(seed)
            stream, test = lc.split_groups(pool, rng, [0.6, 1.0])
            said = zero_shot.head(x(stream)).argmax(1)
            before = zero_shot.head(x(test)).argmax(1) != y(test)
            v0_errors, n_test = v0_errors + int(before.sum()), n_test + len(test)
            wrong = [p for p, a in zip(stream, said, strict=True) if index[p.label] != int(a)]
            right = [p for p, a in zip(stream, said, strict=True) if index[p.label] == int(a) and rng.random() < args.confirm]
            for cell in grid:
                cw, fw, l2, bw = cell
                rows = [(p, bw) for p in base_train if bw > 0] + [(p, cw) for p in wrong] + [(p, fw) for p in right if fw > 0]
                with torch.enable_grad():
                    head = src.fit(rows, l2=l2)
                logits = head(x(test))
                scores = [(totals[cell], logits)]
                if args.knn:
                    scores.append((blended[cell], with_vote(logits, x(test), rows, src, k=args.knn)))
                for total, out in scores:
                    after = out.argmax(1) != y(test)
                    total[0] += int(after.sum())
                    total[1] += int((before & ~after).sum())
                    total[2] += int((~before & after).sum())
    print(f"# --base {args.base} --stream {args.stream}; {args.seeds} seeds; confirmed {args.confirm:.0%} of right answers")
    print(f"zero-shot: {v0_errors}/{n_test} unseen errors")
    vote = f" | with the {args.knn}-nearest vote: errors, fixes, breaks" if args.knn else ""
    print(f"| correction weight | confirmation weight | λ | base photos | unseen errors | fixes | breaks{vote} |")
    print("|---|---|---|---|---|---|---|" + ("---|" if args.knn else ""))
    for cell, (errors, fixes, breaks) in sorted(totals.items(), key=lambda kv: kv[1][0]):
        cw, fw, l2, bw = cell
        extra = " | {} / {} / {}".format(*blended[cell]) if args.knn else ""
        print(f"| {cw:g} | {fw:g} | {l2:g} | {'yes' if bw else 'no'} | {errors} | {fixes} | {breaks}{extra} |")


def with_vote(logits: torch.Tensor, feats: torch.Tensor, rows: list, src: lc.Sources, *, k: int) -> torch.Tensor:
    """The head's log-probabilities plus the log of a vote of the ``k`` training photos (and mirrors) nearest."""
    photos = [p for p, _ in rows]
    memory = F.normalize(torch.cat([src.x(photos), src.x(photos, True)]), dim=1)
    labels = torch.cat([src.y(photos)] * 2)
    weight = torch.tensor([w for _, w in rows] * 2)
    near, j = (F.normalize(feats, dim=1) @ memory.T).topk(min(k, len(memory)), dim=1)
    share = (near / 0.05).softmax(dim=1) * weight[j]
    vote = torch.zeros(len(feats), logits.shape[1]).scatter_add_(1, labels[j], share)
    vote = vote / vote.sum(dim=1, keepdim=True)
    return logits.log_softmax(dim=1) + vote.clamp_min(1e-4).log()


if __name__ == "__main__":
    main()
