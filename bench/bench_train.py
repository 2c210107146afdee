"""Training cycle time with the default settings for the device: features, head refit, export.

    python bench/bench_train.py --data ../shared/data/bears            # CPU defaults
    python bench/bench_train.py --data ../shared/data/bears --device cuda

Holds out the golden fifth like ``bearbot train --data`` does, trains on the rest, and prints the
wall time of the whole cycle, images per second, and the golden error of the result.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bearbot.settings import load_settings
from trainer.data import folder_items, labels_of, split_by_content
from trainer.evaluate import evaluate_classifier
from trainer.train import default_config, train_candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bears"))
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp) / "var", device=args.device)
        config = default_config(settings)
        items = folder_items(args.data)
        rest, golden = split_by_content(items, settings.golden_fraction, salt="golden")
        print(f"{len(rest)} training images ({len(golden)} golden held out); config {config}")
        start = time.perf_counter()
        result = train_candidate(
            train_items=rest, valid_items=[], labels=labels_of(items), settings=settings,
            out_dir=Path(tmp) / "run", config=config,
        )
        seconds = time.perf_counter() - start
        metrics = evaluate_classifier(result.classifier, golden)
    images = result.metrics["n_train"] + result.metrics["n_valid"]
    print(f"training cycle: {seconds:.1f} s on {config.device} ({images / seconds:.1f} images/s incl. "
          f"validation and export; of which features + fit {result.metrics['train_seconds']} s); "
          f"golden error {metrics['error_rate']:.2%} on {metrics['n']} images")


if __name__ == "__main__":
    main()
