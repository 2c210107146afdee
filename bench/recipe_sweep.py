"""The head-refit recipe, swept on cached features: what should users' labels weigh?

Cross-source, as ``bench/learning_curve.py``: the dataset from ``--base``; users send 60 % of
``--stream`` (near-duplicate groups kept whole, nothing near a base photo), an admin corrects every
wrong answer and the sender confirms ``--confirm`` of the right ones; the other 40 % is the unseen
test. For each recipe — correction weight, confirmation weight, L2 pull λ, base photos on/off —
one head is refit and its unseen-test errors are counted against the zero-shot model's, with the
paired fixes and breaks. No gate: this measures what each recipe *would* do if promoted.

    python bench/recipe_sweep.py --base ../shared/data/bears --stream ../shared/data/bears-2019 --seeds 8
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import learning_curve as lc  # noqa: E402
from storage.dataset import Split, assign_split  # noqa: E402
from trainer.head_fit import fit_head  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=lc.SHARED / "bears")
    parser.add_argument("--stream", type=Path, default=lc.SHARED / "bears-2019")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--confirm", type=float, default=0.5)
    parser.add_argument("--correction-weights", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--confirmation-weights", type=float, nargs="+", default=[0.0, 1.0, 4.0])
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01, 0.03])
    parser.add_argument("--base-weights", type=float, nargs="+", default=[1.0, 0.0])
    args = parser.parse_args()
    from bearbot.backbone import load_backbone
    from bearbot.model_def import build_zero_shot
    from trainer.features import FeatureCache, feature_table

    base, stream_folder = lc.load_photos(args.base), lc.load_photos(args.stream)
    labels = tuple(sorted({p.label for p in base}))
    index = {label: i for i, label in enumerate(labels)}
    zero_shot = build_zero_shot(load_backbone("efficientnet_lite0"), labels)
    with tempfile.TemporaryDirectory() as cache:
        table = feature_table(
            zero_shot, base + stream_folder, cache=FeatureCache(Path(cache), zero_shot), device="cpu",
            batch_size=32, max_pixels=40_000_000,
        )

    def x(photos: list[lc.Photo], mirrored: bool = False) -> torch.Tensor:
        return (table.mirrored if mirrored else table.plain)[table.rows([p.sha256 for p in photos])]

    def y(photos: list[lc.Photo]) -> torch.Tensor:
        return torch.tensor([index[p.label] for p in photos])

    def fit(rows: list[tuple[lc.Photo, float]], l2: float) -> torch.nn.Linear:
        photos = [p for p, _ in rows]
        weights = torch.tensor([w for _, w in rows] * 2)
        return fit_head(torch.cat([x(photos), x(photos, True)]), torch.cat([y(photos)] * 2), weights, zero_shot.head, l2=l2)

    base_train = [p for p in base if assign_split(p.sha256, golden_fraction=0.2) is Split.TRAIN]
    pool = [p for p in stream_folder if not lc.near(p, base)]
    grid = list(itertools.product(args.correction_weights, args.confirmation_weights, args.l2, args.base_weights))
    totals = {cell: [0, 0, 0] for cell in grid}  # errors after, fixes, breaks
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
                    head = fit(rows, l2)
                after = head(x(test)).argmax(1) != y(test)
                totals[cell][0] += int(after.sum())
                totals[cell][1] += int((before & ~after).sum())
                totals[cell][2] += int((~before & after).sum())
    print(f"# --base {args.base} --stream {args.stream}; {args.seeds} seeds; confirmed {args.confirm:.0%} of right answers")
    print(f"zero-shot: {v0_errors}/{n_test} unseen errors")
    print("| correction weight | confirmation weight | λ | base photos | unseen errors | fixes | breaks |")
    print("|---|---|---|---|---|---|---|")
    for cell, (errors, fixes, breaks) in sorted(totals.items(), key=lambda kv: kv[1][0]):
        cw, fw, l2, bw = cell
        print(f"| {cw:g} | {fw:g} | {l2:g} | {'yes' if bw else 'no'} | {errors} | {fixes} | {breaks} |")


if __name__ == "__main__":
    main()
