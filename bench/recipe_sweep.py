"""Head-refit recipes side by side on the learning-curve benchmark's setup (same seeds, same splits).

Per seed and variant, through the real code: the base part is imported, the stream goes through
prediction + two-user corrections (``bench/learning_curve.py``; ``partial`` corrects only half the
wrong answers) and the snapshot is taken as a retrain would. Every recipe then refits the head on
that snapshot. The body is frozen, so each photo's features (plain and mirrored, at the serving
size) are computed once for all seeds and recipes, which is what makes dozens of seeds affordable.
For each recipe: the gate's decision against zero-shot on the golden split (fewer errors, tie →
lower log-loss), and the errors of whatever would serve after it on the test part, which is never
trained on or corrected, summed over seeds.

    python bench/recipe_sweep.py --seeds $(seq 0 49)
    python bench/recipe_sweep.py --weights 4 --l2 0.01 --seeds $(seq 0 49) --tta
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.learning_curve import Photo, import_base, load_photos, send_stream, split  # noqa: E402
from bearbot.settings import load_settings  # noqa: E402
from storage.store import open_storage  # noqa: E402
from trainer.data import is_correction  # noqa: E402
from trainer.head_fit import extract_features, fit_head  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    correction_weight: float
    l2: float
    flip: bool

    def __str__(self) -> str:
        return f"weight {self.correction_weight:g}, λ {self.l2:g}, flip {'on' if self.flip else 'off'}"


@dataclass
class Tally:
    before: int = 0
    after: int = 0
    worse: int = 0
    promoted: int = 0
    seeds: int = 0
    loss: list[float] = field(default_factory=list)


class FeatureBank:
    """Plain and mirrored features of every photo, keyed by content hash (the store renames files)."""

    def __init__(self, model, photos: list[Photo], max_pixels: int) -> None:  # noqa: ANN001 - BearNet
        found = extract_features(
            model, [p.path for p in photos], device="cpu", batch_size=32, max_pixels=max_pixels, flip=True,
            progress=True,
        )
        assert found.mirrored is not None
        self.digest = {p.path: hashlib.sha256(p.path.read_bytes()).hexdigest() for p in photos}
        self.index = {self.digest[photos[k].path]: i for i, k in enumerate(found.kept)}
        self.plain, self.mirrored = found.plain, found.mirrored

    def rows(self, digests: list[str]) -> list[int]:
        """Feature rows of images given by content hash (a dataset entry's ``sha256``, or ``digest[path]``)."""
        return [self.index[d] for d in digests]


def scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, float]:
    return int((logits.argmax(1) != targets).sum()), float(F.cross_entropy(logits, targets))


def answer(head: torch.nn.Linear, bank: FeatureBank, rows: list[int], *, tta: bool) -> torch.Tensor:
    """Log-probabilities the bot would serve; ``tta`` averages the mirrored photo's probabilities in."""
    logp = head(bank.plain[rows]).log_softmax(1)
    if tta:
        logp = torch.logsumexp(torch.stack([logp, head(bank.mirrored[rows]).log_softmax(1)]), 0) - math.log(2)
    return logp


def run_seed(photos: list[Photo], bank: FeatureBank, seed: int, fraction: float, args: argparse.Namespace,
             recipes: list[Recipe], tallies: dict[Recipe | str, Tally]) -> None:
    from trainer.runner import load_serving, should_promote, take_snapshot

    base, stream, test = split(photos, seed, args.base, args.stream)
    labels = sorted({p.label for p in photos})
    with tempfile.TemporaryDirectory(prefix="bearbot-sweep-") as tmp:
        settings = load_settings(data_dir=Path(tmp), labels=",".join(labels))
        store = open_storage(settings)
        import_base(store, settings, base)
        current = load_serving(store, settings)
        send_stream(store, settings, current, stream, fraction=fraction, adversarial=0, rng=random.Random(seed))
        snap = take_snapshot(store)
        fit_items = [*snap.train, *snap.valid] if args.fit_valid else snap.train
        train_rows = bank.rows([i.sha256 for i in fit_items])
        golden_rows = bank.rows([i.sha256 for i in snap.golden])
        store.close()
    index = {label: i for i, label in enumerate(labels)}
    zero_shot = current.model.head.cpu()
    y_train = torch.tensor([index[i.label] for i in fit_items])
    is_corr = [is_correction(i) for i in fit_items]
    y_golden = torch.tensor([index[i.label] for i in snap.golden])
    test_rows = bank.rows([bank.digest[p.path] for p in test])
    y_test = torch.tensor([index[p.label] for p in test])
    with torch.no_grad():
        golden_now = scores(answer(zero_shot, bank, golden_rows, tta=args.tta), y_golden)
        before, before_loss = scores(answer(zero_shot, bank, test_rows, tta=args.tta), y_test)
    tallies["zero-shot"].before += before
    tallies["zero-shot"].after += before
    tallies["zero-shot"].loss.append(before_loss)
    for recipe in recipes:
        x, y = bank.plain[train_rows], y_train
        w = torch.tensor([recipe.correction_weight if c else 1.0 for c in is_corr])
        if recipe.flip:
            x, y, w = torch.cat([x, bank.mirrored[train_rows]]), torch.cat([y, y]), torch.cat([w, w])
        head = fit_head(x, y, w, zero_shot, l2=recipe.l2)
        with torch.no_grad():
            golden_new = scores(answer(head, bank, golden_rows, tta=args.tta), y_golden)
            promote = should_promote(
                {"error_rate": golden_new[0], "mean_loss": golden_new[1]},
                {"error_rate": golden_now[0], "mean_loss": golden_now[1]}, tolerance=0.0,
            )
            after, loss = scores(answer(head if promote else zero_shot, bank, test_rows, tta=args.tta), y_test)
        t = tallies[recipe]
        t.before += before
        t.after += after
        t.worse += after > before
        t.promoted += promote
        t.seeds += 1
        t.loss.append(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--variants", nargs="+", default=["all", "partial"])
    parser.add_argument("--weights", type=float, nargs="+", default=[1, 4, 8], help="correction weights")
    parser.add_argument("--l2", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03, 0.1], help="pulls λ")
    parser.add_argument("--fit-valid", action="store_true", help="fit on the valid split too")
    parser.add_argument("--tta", action="store_true", help="serve (and gate) with flip test-time augmentation")
    parser.add_argument("--base", type=float, default=0.35)
    parser.add_argument("--stream", type=float, default=0.4)
    parser.add_argument("--partial", type=float, default=0.5, help="share of wrong answers corrected in 'partial'")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no photo folder at {args.data}; pass --data DIR (one sub-folder per label)")
    torch.set_num_threads(2)
    photos = load_photos(args.data)
    settings = load_settings(labels=",".join(sorted({p.label for p in photos})))
    from bearbot.inference import build_v0

    bank = FeatureBank(build_v0(settings.labels), photos, settings.max_image_pixels)
    recipes = [Recipe(w, l2, flip) for w, l2, flip in itertools.product(args.weights, args.l2, (False, True))]
    for variant in args.variants:
        tallies: dict[Recipe | str, Tally] = defaultdict(Tally)
        fraction = args.partial if variant == "partial" else 1.0
        for seed in args.seeds:
            run_seed(photos, bank, seed, fraction, args, recipes, tallies)
        zs = tallies.pop("zero-shot")
        n = len(args.seeds)
        print(f"\nvariant {variant}, {n} seeds: zero-shot {zs.before} test errors, loss {sum(zs.loss) / n:.4f}")
        print("| recipe | test errors after | after/before | seeds worse | promoted | test loss |")
        print("|---|---|---|---|---|---|")
        for recipe, t in sorted(tallies.items(), key=lambda kv: (kv[1].after, sum(kv[1].loss))):
            print(f"| {recipe} | {t.after} | {t.after / max(t.before, 1):.2f} | {t.worse} | "
                  f"{t.promoted}/{t.seeds} | {sum(t.loss) / n:.4f} |", flush=True)


if __name__ == "__main__":
    main()
