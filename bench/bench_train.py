"""Training run time, the first run (body features computed) beside a rerun (features cached).

Imports a photo folder into a fresh data directory, then runs the one retrain pipeline twice, exactly
as ``bearbot train`` does (``trainer.runner.run_now``: features, head refit, cross-fitted gate,
calibration, export when promoted), with the default settings for the device:

    python bench/bench_train.py --data ../shared/data/bears            # CPU defaults
    python bench/bench_train.py --data ../shared/data/bears --device cuda

Prints per run: wall time, the feature pass within it, photos per second of the feature pass, the
gate's golden errors (serving → candidate) and whether the candidate was promoted. The whole cycle
with a hot swap under load is ``bench/bench_cycle.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bearbot.settings import load_settings  # noqa: E402
from storage.models import RunStatus  # noqa: E402
from storage.store import open_storage  # noqa: E402
from trainer.dataset_import import import_folder  # noqa: E402
from trainer.runner import run_now  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=2, help="runs in a row (the first computes the features)")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no photo folder at {args.data}; pass --data DIR (one sub-folder per label)")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bearbot-train-") as tmp:
        settings = load_settings(data_dir=Path(tmp), device=args.device)
        with open_storage(settings) as store:
            report = import_folder(store, args.data, progress=False)
            print(f"dataset import: {report.summary()}")
            for n in range(1, args.runs + 1):
                start = time.perf_counter()
                run = run_now(store)
                seconds = time.perf_counter() - start
                if run.status is RunStatus.FAILED:
                    sys.exit(f"run {n} failed: {run.error}")
                m = run.metrics
                photos = (run.n_train or 0) + (run.n_valid or 0) + (run.n_golden or 0)
                feature_s = m["feature_seconds"]
                # A fresh data directory: the first run computes every photo's features, later ones read them.
                how = f"computed, {photos / feature_s:.1f} photos/s" if n == 1 else "read from the cache"
                golden = m["golden_errors"]
                print(
                    f"run {n} on {m['config']['device']}: {seconds:.1f} s, of which features {feature_s:.1f} s "
                    f"({photos} photos, {how}); train {run.n_train}, valid {run.n_valid}, golden {run.n_golden}; "
                    f"golden errors serving {golden['serving']} → candidate {golden['candidate']}; {run.status.value}"
                )


if __name__ == "__main__":
    main()
