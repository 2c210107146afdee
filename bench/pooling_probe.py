"""Would GeM pooling beside the average help the head learn from users? A probe, not the recipe.

The body's last feature map (9×9×1280 at 288 px) is pooled two ways: the average (the features the
bot uses) and generalised-mean pooling (GeM, p = 3), concatenated to 2560 features. The head is refit
with the pipeline's recipe (``trainer.train.TrainConfig``) on either; the GeM half is pulled to zero,
so the zero-shot v0 is the same model on both. The same protocols as the other feature benches run
on both, side by side, on ``--stream`` photos with nothing near a ``--base`` photo:

* the dataset alone: a head refit on the base photos' train split, errors on every stream photo;
* one cycle per seed (stream split 60/40 into users' photos and unseen test photos): every wrong
  answer of that head corrected, ``--confirm`` of its right answers ✅; unseen errors before → after,
  and the paired fixes and breaks, pooled over seeds;
* the curve of one confusion, as ``correction_curve.py --label black --said grizzly``: the first *k*
  of zero-shot's ``--label`` photos called ``--said`` corrected, unseen errors per class and the cell.

Features are computed once (about 90 s for both folders) and kept in ``out/pooled_features.pt``.

    python bench/pooling_probe.py --base ../shared/data/bears --stream ../shared/data/bears-2019
    python bench/pooling_probe.py --base ../shared/data/bears-2019 --stream ../shared/data/bears
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bearbot.preprocess import center_crop_resize, to_batch
from bench import learning_curve as lc
from trainer.data import decoded_batches
from trainer.head_fit import fit_head
from trainer.train import TrainConfig

GEM_P = 3.0
POOLED = Path(__file__).resolve().parent / "out" / "pooled_features.pt"
VARIANTS = ("average", "average+GeM")


def pooled_features(src: lc.Sources, cache: Path) -> dict[str, torch.Tensor]:
    """sha256 → (2, 2·D): [average | GeM] of the plain and of the mirrored crop; computed once, cached."""
    have: dict[str, torch.Tensor] = torch.load(cache) if cache.exists() else {}
    todo = [p for p in src.base + src.stream if p.sha256 not in have]
    model = src.zero_shot.eval()
    with torch.inference_mode():
        for indices, images, _bad in decoded_batches([p.path for p in todo], 32, max_pixels=40_000_000):
            batch = to_batch([center_crop_resize(image, model.image_size) for image in images], model.mean, model.std)
            pooled = []
            for maps in (model.body.forward_features(batch), model.body.forward_features(batch.flip(-1))):
                gem = maps.clamp(min=1e-6).pow(GEM_P).mean((2, 3)).pow(1 / GEM_P)
                pooled.append(torch.cat([maps.mean((2, 3)), gem], 1))
            for j, i in enumerate(indices):
                have[todo[i].sha256] = torch.stack([pooled[0][j], pooled[1][j]])
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(have, cache)
    return have


class Probe:
    """Heads refit on either pooling, over one pair of folders."""

    def __init__(self, src: lc.Sources, features: dict[str, torch.Tensor]) -> None:
        self.src, self.features = src, features
        self.cfg = TrainConfig(batch_size=32, device="cpu")
        self.index = {label: i for i, label in enumerate(src.labels)}
        width = src.zero_shot.head.in_features
        self.width = {"average": width, "average+GeM": 2 * width}
        # The average half must be the bot's own features: same decode, crop and body.
        first = src.base[0]
        assert float((features[first.sha256][0][:width] - src.x([first])[0]).abs().max()) < 1e-4

    def x(self, photos: list[lc.Photo], variant: str, mirrored: bool = False) -> torch.Tensor:
        """The photos' features under one pooling (the average alone is the first half)."""
        return torch.stack([self.features[p.sha256][int(mirrored)][: self.width[variant]] for p in photos])

    def fit(self, rows: list[tuple[lc.Photo, float]], variant: str) -> nn.Linear:
        """The recipe's head on (photo, weight) rows and their mirror images; the GeM half pulled to zero."""
        zero_shot = self.src.zero_shot.head
        anchor = nn.Linear(self.width[variant], zero_shot.out_features)
        with torch.no_grad():
            anchor.weight.zero_()
            anchor.weight[:, : zero_shot.in_features] = zero_shot.weight
            anchor.bias.copy_(zero_shot.bias)
        photos = [p for p, _ in rows]
        x = torch.cat([self.x(photos, variant), self.x(photos, variant, mirrored=True)])
        weights = torch.tensor([w for _, w in rows] * 2)
        cfg = self.cfg
        return fit_head(x, torch.cat([self.src.y(photos)] * 2), weights, anchor, l2=cfg.head_l2, max_iter=cfg.max_iter)

    def answers(self, head: nn.Linear, photos: list[lc.Photo], variant: str) -> list[int]:
        """The head's label index for each photo."""
        with torch.no_grad():
            return head(self.x(photos, variant)).argmax(1).tolist()

    def per_class(self, photos: list[lc.Photo], answers: list[int]) -> list[int]:
        """Wrong answers per true label, in label order."""
        errors = [0] * len(self.index)
        for p, a in zip(photos, answers, strict=True):
            errors[self.index[p.label]] += int(a != self.index[p.label])
        return errors


def main() -> None:
    parser = lc.feature_bench_parser(__doc__.split("\n\n")[0], seeds=20)
    parser.add_argument("--label", default="black")
    parser.add_argument("--said", default="grizzly")
    parser.add_argument("--cache", type=Path, default=POOLED)
    args = parser.parse_args()
    src = lc.Sources.load(args.base, args.stream)
    probe = Probe(src, pooled_features(src, args.cache))
    labels, index, weight = src.labels, probe.index, probe.cfg.correction_weight
    base_train, pool = src.base_train(), src.pool()
    print(f"# --base {args.base} --stream {args.stream}: {len(base_train)} dataset photos, {len(pool)} stream photos")
    print("\n## The dataset alone: errors on every stream photo (" + " | ".join(labels) + ")\n")
    dataset_only = {v: probe.fit([(p, 1.0) for p in base_train], v) for v in VARIANTS}
    for v in VARIANTS:
        errors = probe.per_class(pool, probe.answers(dataset_only[v], pool, v))
        print(f"- {v}: {sum(errors)} ({' | '.join(map(str, errors))})")

    cycle = {v: [0, 0, 0, 0] for v in VARIANTS}  # before, after, fixes, breaks
    said_index = index[args.said]
    curve: dict[tuple[str, int], list[int]] = {}  # (variant, k) → per-class errors, the cell, seeds
    for seed in range(args.seeds):
        rng = random.Random(seed)
        stream, test = lc.split_groups(pool, rng, [0.6, 1.0])
        confirm_draws = [rng.random() < args.confirm for _ in stream]
        truth = [index[p.label] for p in test]
        for v in VARIANTS:
            said = probe.answers(dataset_only[v], stream, v)
            labelled = [p for p, a, c in zip(stream, said, confirm_draws, strict=True) if a != index[p.label] or c]
            before = probe.answers(dataset_only[v], test, v)
            head = probe.fit([(p, 1.0) for p in base_train] + [(p, weight) for p in labelled], v)
            after = probe.answers(head, test, v)
            pairs = list(zip(truth, before, after, strict=True))
            cycle[v][0] += sum(b != t for t, b, _ in pairs)
            cycle[v][1] += sum(a != t for t, _, a in pairs)
            cycle[v][2] += sum(b != t and a == t for t, b, a in pairs)
            cycle[v][3] += sum(b == t and a != t for t, b, a in pairs)
        # The curve, as correction_curve.py: zero-shot's answers are what users see and correct.
        with torch.no_grad():
            said = src.zero_shot.head(src.x(stream)).argmax(1).tolist()
        right = [p for p, a, c in zip(stream, said, confirm_draws, strict=True) if a == index[p.label] and c]
        confusion = [p for p, a in zip(stream, said, strict=True) if p.label == args.label and a == said_index]
        rng.shuffle(confusion)
        for k in range(len(confusion) + 1):
            for v in VARIANTS:
                rows = [(p, 1.0) for p in base_train] + [(p, weight) for p in confusion[:k] + right]
                answers = probe.answers(probe.fit(rows, v), test, v)
                cell = sum(p.label == args.label and a == said_index for p, a in zip(test, answers, strict=True))
                total = curve.setdefault((v, k), [0] * (len(labels) + 2))
                for i, n in enumerate([*probe.per_class(test, answers), cell, 1]):
                    total[i] += n

    print(f"\n## One cycle, {args.seeds} seeds: every wrong answer corrected, {args.confirm:.0%} of right answers ✅\n")
    print("| pooling | unseen errors before → after | fixes | breaks |\n|---|---|---|---|")
    for v, (before, after, fixes, breaks) in cycle.items():
        print(f"| {v} | {before} → {after} | {fixes} | {breaks} |")
    cell = f"{args.label}→{args.said}"
    print(f"\n## Corrections of {cell} (zero-shot's answers), unseen errors pooled over the seeds that reach k\n")
    print(f"| k | seeds | pooling | {' | '.join(labels)} | {cell} |\n|---|---|---|" + "---|" * (len(labels) + 1))
    for (v, k), total in sorted(curve.items(), key=lambda item: (item[0][1], VARIANTS.index(item[0][0]))):
        print(f"| {k} | {total[-1]} | {v} | " + " | ".join(map(str, total[:-1])) + " |")


if __name__ == "__main__":
    main()
