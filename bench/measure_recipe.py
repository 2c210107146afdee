"""Unseen-photo error of zero-shot vs the training recipe over several random 80/20 splits.

One fine-tune per split (WiSE-FT off), then the held-out fifth is scored at several averaging
weights α (0 = zero-shot, 1 = plain fine-tune), since averaging needs no retraining, and at
several serving resolutions (``--sizes``; the training crop stays ``BEARBOT_TRAIN_IMAGE_SIZE``).

    python bench/measure_recipe.py --data ../shared/data/bears --seeds 0 1 2 3 4 --sizes 224 320
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import statistics
import tempfile
from pathlib import Path

import torch

from bearbot.backbone import load_backbone
from bearbot.inference import TorchClassifier
from bearbot.model_def import average_weights, build_zero_shot
from bearbot.settings import load_settings
from trainer.data import LabelledImage, folder_items, labels_of
from trainer.evaluate import evaluate_classifier
from trainer.train import default_config, train_candidate

ALPHAS = (0.0, 0.3, 0.5, 0.7, 1.0)


def split(items: list[LabelledImage], seed: int, test_fraction: float = 0.2) -> tuple[list, list]:
    """Stratified random split: (train, test)."""
    rng = random.Random(seed)
    train, test = [], []
    for label in labels_of(items):
        group = [i for i in items if i.label == label]
        rng.shuffle(group)
        k = round(len(group) * test_fraction)
        test += group[:k]
        train += group[k:]
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bears"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224], help="serving resolutions to score")
    args = parser.parse_args()
    torch.set_num_threads(2)
    items = folder_items(args.data)
    labels = ("grizzly", "black", "teddy") if set(labels_of(items)) == {"grizzly", "black", "teddy"} else labels_of(items)
    errors: dict[tuple[int, float], list[float]] = {(s, a): [] for s in args.sizes for a in ALPHAS}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp) / "var", device=args.device)
        config = dataclasses.replace(default_config(settings), wise_alpha=1.0)
        if args.epochs:
            config = dataclasses.replace(config, epochs=args.epochs)
        zero_shot = build_zero_shot(load_backbone(settings.arch), labels)
        for seed in args.seeds:
            train, test = split(items, seed)
            result = train_candidate(
                train_items=train, valid_items=[], labels=labels, settings=settings,
                out_dir=Path(tmp) / f"run{seed}", config=dataclasses.replace(config, seed=seed), progress=False,
            )
            tuned = result.model.cpu()
            print(f"seed {seed} ({len(train)} train / {len(test)} test, {config.epochs} epochs)", flush=True)
            for size in args.sizes:
                row = []
                for alpha in ALPHAS:
                    model = average_weights(copy.deepcopy(tuned), zero_shot, alpha)
                    model.image_size = size
                    err = evaluate_classifier(TorchClassifier(model, version_id=None), test)["error_rate"]
                    errors[size, alpha].append(err)
                    row.append(f"α={alpha}: {err:.2%}")
                print(f"  serve {size}px: " + "  ".join(row), flush=True)
    for size in args.sizes:
        means = "  ".join(f"α={a}: {statistics.mean(errors[size, a]):.2%}" for a in ALPHAS)
        print(f"mean over {len(args.seeds)} seeds, serve {size}px: {means}")


if __name__ == "__main__":
    main()
