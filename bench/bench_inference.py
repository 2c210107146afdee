"""Serving-path latency and throughput: the lean path beside fastai's ``learn.predict``, same run.

Both paths get the same encoded bytes and include decoding; both use the same model (the zero-shot
v0 by default, wrapped in a fastai Learner for ``learn.predict``; or an exported learner via
``--artifact``). Prints p50/p95 latency, images/s, and the throughput ratio (goal ≥ 3×).

    python bench/bench_inference.py --data ../shared/data/bears --n 100 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bearbot.artifact import sha256_file
from bearbot.imaging import open_image
from bearbot.inference import TorchClassifier, build_v0, model_from_learner_file
from trainer.data import folder_items, make_dataloaders


def v0_learner(images: list[Path], labels: tuple[str, ...]):  # noqa: ANN201 - fastai Learner
    """A fastai Learner around the v0 model with the training pipeline's validation transforms."""
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat

    from trainer.data import LabelledImage

    model = build_v0(labels)
    items = [LabelledImage(p, labels[0]) for p in images[:2]]
    dls = make_dataloaders(items, items, labels=labels, size=model.image_size, batch_size=2,
                           mean=model.mean, std=model.std, device="cpu", num_workers=0)
    return Learner(dls, model, loss_func=CrossEntropyLossFlat())


def timed(fns: list[Callable[[bytes], str]], blobs: list[bytes]) -> list[tuple[list[float], float, list[str]]]:
    """Per path: per-call latencies (ms), total seconds, answers. Paths alternate image by image,
    so a load spike from other processes hits both alike."""
    for fn in fns:
        fn(blobs[0])  # warm-up
    latencies: list[list[float]] = [[] for _ in fns]
    answers: list[list[str]] = [[] for _ in fns]
    for data in blobs:
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            answers[i].append(fn(data))
            latencies[i].append((time.perf_counter() - t) * 1000)
    return [(lat, sum(lat) / 1000, ans) for lat, ans in zip(latencies, answers, strict=True)]


def report(name: str, latencies: list[float], total: float) -> float:
    q = statistics.quantiles(latencies, n=20)
    rate = len(latencies) / total
    print(f"{name:>14}: p50 {statistics.median(latencies):6.1f} ms  p95 {q[18]:6.1f} ms  {rate:6.1f} img/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bears"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--artifact", type=Path, help="an exported learner (default: the v0 model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import fastai.callback.all  # noqa: F401 - Learner.no_bar

    paths = [item.path for item in folder_items(args.data)][: args.n]
    blobs = [p.read_bytes() for p in paths]
    if args.artifact:
        from bearbot.artifact import load_learner_verified

        sha = sha256_file(args.artifact)
        learn = load_learner_verified(args.artifact, sha)
        model = model_from_learner_file(args.artifact, sha)
    else:
        labels = ("grizzly", "black", "teddy")
        learn = v0_learner(paths, labels)
        model = learn.model
    lean = TorchClassifier(model, version_id=None, optimize=True)
    lean.warm_up()

    def fastai_predict(data: bytes) -> str:
        with learn.no_bar():
            return str(learn.predict(open_image(data))[0])

    print(f"{len(blobs)} images, {args.threads} torch threads, model {'artifact' if args.artifact else 'v0'}")
    (lean_lat, lean_total, lean_ans), (fa_lat, fa_total, fa_ans) = timed(
        [lambda d: lean.predict(d).label, fastai_predict], blobs
    )
    lean_rate = report("lean path", lean_lat, lean_total)
    fa_rate = report("learn.predict", fa_lat, fa_total)
    same = sum(a == b for a, b in zip(lean_ans, fa_ans, strict=True))
    print(f"throughput ratio lean / learn.predict: {lean_rate / fa_rate:.2f}x; same label on {same}/{len(blobs)}")


if __name__ == "__main__":
    main()
