"""Training recipes side by side on the learning-curve benchmark's setup (same seeds, same splits).

Per seed: the base part is imported, the stream goes through the real prediction + correction path
(``bench/learning_curve.py``), the snapshot is taken once as a retrain would. Then every recipe
trains a candidate from that snapshot; WiSE-FT weights α and flip test-time augmentation need no
retraining, so each training is scored at every α, with and without flip TTA. For each: the gate's
decision against the serving model on the golden split, and the test part (never trained on or
corrected) — errors as counts and mean log-loss, which moves long before a count does.

    python bench/recipe_sweep.py --seeds 1 2 3 0 --recipes k1 k4 k8 k4e2
    python bench/recipe_sweep.py --seeds 4 5 6 --recipes k1 k8 k8lr4 k8lr8 --alphas 0.5 --no-flip
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from PIL import ImageOps  # noqa: E402

from bench.learning_curve import import_base, load_photos, send_stream, serving, split  # noqa: E402
from bearbot.inference import TorchClassifier  # noqa: E402
from bearbot.model_def import average_weights  # noqa: E402
from bearbot.preprocess import read_item_image  # noqa: E402
from bearbot.settings import load_settings  # noqa: E402
from storage.store import open_storage  # noqa: E402

# name → TrainConfig overrides, all explicit so the names keep their meaning when defaults change
# (wise_alpha is swept separately, after training). k = correction repeats, lr = base_lr, e = epochs.
RECIPES: dict[str, dict[str, Any]] = {
    "k1": {"correction_repeats": 1, "base_lr": 2e-3, "epochs": 1},  # the default before issue 7
    "k4": {"correction_repeats": 4, "base_lr": 2e-3, "epochs": 1},
    "k8": {"correction_repeats": 8, "base_lr": 2e-3, "epochs": 1},
    "k16": {"correction_repeats": 16, "base_lr": 2e-3, "epochs": 1},
    "k4e2": {"correction_repeats": 4, "base_lr": 2e-3, "epochs": 2},
    "k8lr1": {"correction_repeats": 8, "base_lr": 1e-3, "epochs": 1},
    "k8lr4": {"correction_repeats": 8, "base_lr": 4e-3, "epochs": 1},
    "k1lr4": {"correction_repeats": 1, "base_lr": 4e-3, "epochs": 1},
    "k1lr8": {"correction_repeats": 1, "base_lr": 8e-3, "epochs": 1},
    "k8lr8": {"correction_repeats": 8, "base_lr": 8e-3, "epochs": 1},  # the default since issue 7 (CPU)
    "k8lr16": {"correction_repeats": 8, "base_lr": 1.6e-2, "epochs": 1},
}
ALPHAS = (0.5, 0.7, 1.0)


@dataclass(frozen=True)
class Score:
    errors: int
    n: int
    loss: float


def score(classifier: TorchClassifier, items: list, *, flip: bool) -> Score:  # noqa: ANN001
    """Errors and mean log-loss of the true label; ``flip`` averages the mirrored image's probabilities."""
    errors, losses = 0, []
    labels = classifier.labels
    for start in range(0, len(items), 32):
        chunk = items[start : start + 32]
        images = [read_item_image(i.path) for i in chunk]
        probs = [p.probabilities for p in classifier.predict_images(images)]
        if flip:
            mirrored = [p.probabilities for p in classifier.predict_images([ImageOps.mirror(im) for im in images])]
            probs = [{k: (a[k] + b[k]) / 2 for k in labels} for a, b in zip(probs, mirrored, strict=True)]
        for item, p in zip(chunk, probs, strict=True):
            errors += max(labels, key=p.__getitem__) != item.label
            losses.append(-math.log(max(p[item.label], 1e-12)))
    return Score(errors, len(items), statistics.mean(losses))


def promotes(cand: Score, cur: Score) -> bool:
    """``trainer.runner.should_promote`` with tolerance 0, on counts."""
    return cand.errors < cur.errors or (cand.errors == cur.errors and cand.loss <= cur.loss)


def run_seed(data: Path, seed: int, args: argparse.Namespace, out: dict) -> None:  # noqa: C901
    from trainer.runner import take_snapshot
    from trainer.train import default_config, train_candidate

    photos = load_photos(data)
    base, stream, test = split(photos, seed, args.base, args.stream)
    labels = ",".join(sorted({p.label for p in photos}))
    with tempfile.TemporaryDirectory(prefix="bearbot-sweep-") as tmp:
        settings = load_settings(data_dir=Path(tmp), labels=labels)
        store = open_storage(settings)
        import_base(store, settings, base)
        current = serving(store, settings)
        fraction = args.partial
        wrong, corrected = send_stream(
            store, settings, current, stream, fraction=fraction, adversarial=0, rng=random.Random(seed)
        )
        snap = take_snapshot(store)
        store.close()
        print(f"seed {seed}: train {len(snap.train)} (corrections {sum(i.source == 'correction' for i in snap.train)}),"
              f" valid {len(snap.valid)}, golden {len(snap.golden)}, test {len(test)}; stream wrong {wrong},"
              f" corrected {corrected}", flush=True)
        for flip in (False, True):
            g, t = score(current, snap.golden, flip=flip), score(current, test, flip=flip)
            out["zero-shot" + ("+flip" if flip else "")][seed] = (t, t, True, 0.0)
            print(f"  zero-shot flip={flip}: golden {g.errors}/{g.n} loss {g.loss:.4f}; test {t.errors}/{t.n} loss {t.loss:.4f}")
        cur_golden = score(current, snap.golden, flip=False)
        cur_test = score(current, test, flip=False)
        has_corrections = any(i.source == "correction" for i in snap.train)
        trained: dict[Any, tuple[Any, float]] = {}  # config → (fine-tuned model, seconds)
        for name in args.recipes:
            cfg = dataclasses.replace(default_config(settings), wise_alpha=1.0, seed=seed, **RECIPES[name])
            if not has_corrections:  # repeats change nothing then: reuse the same training
                cfg = dataclasses.replace(cfg, correction_repeats=1)
            if cfg not in trained:
                started = time.perf_counter()
                result = train_candidate(
                    train_items=snap.train, valid_items=snap.valid, labels=snap.labels, settings=settings,
                    base=current.model, out_dir=Path(tmp) / f"run-{name}", config=cfg, progress=False,
                )
                trained[cfg] = (result.model.cpu(), time.perf_counter() - started)
            tuned, seconds = trained[cfg]
            for alpha in args.alphas:
                model = average_weights(copy.deepcopy(tuned), current.model.cpu(), alpha)
                cand = TorchClassifier(model, version_id=None)
                for flip in (False, True) if args.flip else (False,):
                    key = f"{name} a{alpha}" + ("+flip" if flip else "")
                    g, t = score(cand, snap.golden, flip=flip), score(cand, test, flip=flip)
                    # the gate compares the un-augmented serving path, as the runner does
                    gate = promotes(score(cand, snap.golden, flip=False), cur_golden) if flip else promotes(g, cur_golden)
                    after = t if gate else cur_test
                    out[key][seed] = (t, after, gate, seconds)
                    print(f"  {key:<18} golden {g.errors}/{g.n} {g.loss:.4f} gate {'Y' if gate else 'n'}; "
                          f"test {t.errors}/{t.n} loss {t.loss:.4f}; train {seconds:.0f} s", flush=True)


def summary(out: dict, seeds: list[int]) -> None:
    """One line per recipe: test errors per seed (candidate / after gate), totals and mean loss."""
    print(f"\n{'recipe':<18} " + " ".join(f"s{s:<6}" for s in seeds) + "  cand-sum  after-sum  loss    gates  train s")
    for key, per in out.items():
        if len(per) != len(seeds):
            continue
        cells = " ".join(f"{per[s][0].errors}/{per[s][1].errors:<4}" for s in seeds)
        cand = sum(per[s][0].errors for s in seeds)
        after = sum(per[s][1].errors for s in seeds)
        n = sum(per[s][0].n for s in seeds)
        loss = statistics.mean(per[s][0].loss for s in seeds)
        gates = sum(per[s][2] for s in seeds)
        secs = statistics.mean(per[s][3] for s in seeds)
        print(f"{key:<18} {cells}  {cand:>3}/{n:<4}  {after:>3}/{n:<4}  {loss:.4f}  {gates}/{len(seeds)}  {secs:>5.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=["k1", "k4"], choices=sorted(RECIPES))
    parser.add_argument("--base", type=float, default=0.35)
    parser.add_argument("--stream", type=float, default=0.4)
    parser.add_argument("--alphas", type=float, nargs="+", default=list(ALPHAS), help="WiSE-FT weights to score")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="skip flip test-time augmentation")
    parser.add_argument("--partial", type=float, default=1.0, help="share of wrong answers corrected")
    args = parser.parse_args()
    torch.set_num_threads(2)
    out: dict[str, dict[int, tuple[Score, Score, bool, float]]] = defaultdict(dict)
    for seed in args.seeds:
        run_seed(args.data, seed, args, out)
    summary(out, args.seeds)


if __name__ == "__main__":
    main()
