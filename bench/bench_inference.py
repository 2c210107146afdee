"""Serving-path latency and throughput: the lean path beside fastai's ``learn.predict``, same run.

Both paths get the same encoded bytes and include decoding; both use the same model (the zero-shot
v0 by default, wrapped in a fastai Learner for ``learn.predict``; or an exported learner via
``--artifact``). Prints p50/p95 latency, images/s, and the throughput ratio (goal ≥ 3×).

    python bench/bench_inference.py --data ../shared/data/bears --n 100 --threads 2

``--compare-runtimes`` instead times the candidates for running the model on the CPU, on the same
preprocessed photos (288 px, batch 1 and batch 8): eager torch, the TorchScript trace this project used
before (deprecated), ``torch.export`` + AOTInductor, ONNX Runtime, and ONNX Runtime on an int8 graph
(static QDQ quantisation calibrated on ``tests/fixtures/bears``): the one-off cost of building each
(trace, compile or export), of loading the built form again, per-image p50, the largest output
difference from eager torch, and on how many photos the answer (label, bear or not) changes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bearbot.artifact import sha256_file
from bearbot.imaging import open_image
from bearbot.inference import TorchClassifier, build_v0, model_from_learner_file
from bearbot.prediction import predictions_from
from bearbot.settings import DEFAULT_BEAR_THRESHOLD, DEFAULT_MAX_PIXELS
from trainer.data import folder_items, make_dataloaders


def v0_learner(images: list[Path], labels: tuple[str, ...]):
    """A fastai Learner around the v0 model with the training pipeline's validation transforms."""
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat

    from trainer.data import LabelledImage

    model = build_v0(labels)
    items = [LabelledImage(p, labels[0]) for p in images[:2]]
    dls = make_dataloaders(items, items, labels=labels, size=model.image_size, batch_size=2,
                           mean=model.mean, std=model.std, device="cpu", num_workers=0)
    return Learner(dls, model, loss_func=CrossEntropyLossFlat())


def train_artifact(folder: Path, out_dir: Path, labels: tuple[str, ...]) -> Path:
    """A trained weights artifact: v0's head refit on ``folder``'s photos by the pipeline's own fit
    (:func:`trainer.train.fit_examples`, the recipe's defaults), on the feature benches' cached
    features, exported as the trainer exports one (its fastai learner beside it). Not gated: for
    benches that time serving or a swap, not accuracy."""
    from bench.learning_curve import FEATURES, load_photos
    from trainer.export import export_learner
    from trainer.features import FeatureCache, feature_table
    from trainer.train import Example, TrainConfig, fit_examples

    cfg = TrainConfig(batch_size=32, device="cpu")
    photos = load_photos(folder)
    learn = v0_learner([p.path for p in photos], labels)
    FEATURES.mkdir(parents=True, exist_ok=True)
    table = feature_table(learn.model, photos, cache=FeatureCache(FEATURES, learn.model), device="cpu",
                          batch_size=cfg.batch_size, max_pixels=DEFAULT_MAX_PIXELS)
    examples = [Example(p.sha256, p.label, 1.0) for p in photos]
    head = fit_examples(table, examples, labels, learn.model.head, cfg)
    learn.model.head.load_state_dict(head.state_dict())
    return export_learner(learn, out_dir / "trained.safetensors")[0]


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


def answers_of(logits: torch.Tensor, bear: torch.Tensor, threshold: float) -> list[tuple[str, bool]]:
    """Per image: the label and whether it counts as a bear, as the bot answers (:func:`predictions_from`)."""
    labels = tuple(str(i) for i in range(logits.shape[-1]))
    return [(p.label, p.is_bear)
            for p in predictions_from(logits.float().softmax(-1), bear.float(), labels, threshold=threshold, version_id=None)]


def quantize_int8(onnx_path: Path, out: Path, calibration: torch.Tensor) -> Path:
    """ONNX Runtime static int8 quantisation (QDQ, per-channel weights), calibrated on ``calibration``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(calibration.split(1))

        def get_next(self) -> dict[str, Any] | None:
            row = next(self.rows, None)
            return None if row is None else {"x": row.numpy()}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def compare_runtimes(model: Any, batch: torch.Tensor, out_dir: Path, *, calibration: torch.Tensor, threshold: float) -> None:
    """Build, reload and time each CPU runtime on ``batch`` (see the module docstring)."""
    import warnings

    from bearbot.exported import _ForwardAll, export_onnx
    from bearbot.serving_graph import OnnxForward

    wrapped = _ForwardAll(model).eval()
    with torch.inference_mode():
        want = model.forward_all(batch[:8])
        eager_answers = answers_of(*model.forward_all(batch), threshold)
    rows = []

    def measure(name: str, build: Callable[[], Callable[..., Any]], reload: Callable[[], Callable[..., Any]] | None) -> None:
        t = time.perf_counter()
        fn = build()
        build_s = time.perf_counter() - t
        reload_s = float("nan")
        if reload is not None:
            t = time.perf_counter()
            fn = reload()
            reload_s = time.perf_counter() - t
        with torch.inference_mode():
            got = fn(batch[:8])
            diff = max(float((a - b).abs().max()) for a, b in zip(want, got, strict=True))
            for _ in range(3):
                fn(batch[:1])
            one, outs = [], []
            for i in range(len(batch)):
                t = time.perf_counter()
                outs.append(fn(batch[i : i + 1]))
                one.append((time.perf_counter() - t) * 1000)
            got_answers = answers_of(torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]), threshold)
            changed = sum(a != b for a, b in zip(eager_answers, got_answers, strict=True))
            eight = []
            for _ in range(3):
                t = time.perf_counter()
                fn(batch[:8])
                eight.append((time.perf_counter() - t) * 1000 / 8)
        rows.append((name, build_s, reload_s, statistics.median(one), statistics.median(eight), diff, changed))
        print(f"  measured {name}", flush=True)

    def trace() -> Callable[..., Any]:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapped, batch[:1])
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def aoti() -> Callable[..., Any]:
        dim = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(wrapped, (batch[:2],), dynamic_shapes={"x": {0: dim}})
        torch._inductor.aoti_compile_and_package(program, package_path=str(out_dir / "model.pt2"))
        return torch._inductor.aoti_load_package(str(out_dir / "model.pt2"))

    def onnx() -> Callable[..., Any]:
        (out_dir / "model.onnx").write_bytes(export_onnx(model))
        return OnnxForward((out_dir / "model.onnx").read_bytes())

    measure("eager torch", lambda: model.forward_all, None)
    measure("TorchScript trace+freeze", trace, None)
    measure("ONNX Runtime", onnx, lambda: OnnxForward((out_dir / "model.onnx").read_bytes()))
    measure("ONNX Runtime int8 (QDQ)", lambda: OnnxForward(quantize_int8(out_dir / "model.onnx", out_dir / "int8.onnx",
                                                                       calibration).read_bytes()), None)
    measure("torch.export+AOTInductor", aoti, lambda: torch._inductor.aoti_load_package(str(out_dir / "model.pt2")))
    print(f"{'runtime':<26} {'build (s)':>9} {'reload (s)':>10} {'p50 batch 1 (ms)':>17} "
          f"{'per image, batch 8 (ms)':>24} {'max |diff| vs eager':>20} {'answers changed':>16}")
    for name, build_s, reload_s, one, eight, diff, changed in rows:
        print(f"{name:<26} {build_s:>9.1f} {reload_s:>10.2f} {one:>17.1f} {eight:>24.1f} {diff:>20.1e} "
              f"{changed:>9}/{len(batch)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bears"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--artifact", type=Path, help="an exported learner (default: the v0 model)")
    parser.add_argument("--compare-runtimes", action="store_true", help="time eager, TorchScript, AOTInductor, ONNX Runtime (fp32, int8)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_runtimes:
        import tempfile

        from bearbot.preprocess import center_crop_resize, to_batch

        model = build_v0(("grizzly", "black", "teddy"))
        paths = [item.path for item in folder_items(args.data)][: args.n]
        images = [center_crop_resize(open_image(p.read_bytes()), model.image_size) for p in paths]
        print(f"{len(images)} photos of {args.data} at {model.image_size} px, {args.threads} threads, v0")
        # int8 calibrates on the repository's fixture photos, never on the photos it is timed on.
        fixtures = sorted(Path(__file__).resolve().parent.parent.glob("tests/fixtures/bears/*/*.jpg"))
        calibration = to_batch([center_crop_resize(open_image(p.read_bytes()), model.image_size) for p in fixtures],
                               model.mean, model.std)
        with tempfile.TemporaryDirectory() as tmp:
            compare_runtimes(model, to_batch(images, model.mean, model.std), Path(tmp), calibration=calibration,
                             threshold=DEFAULT_BEAR_THRESHOLD)
        return
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
    lean = TorchClassifier(model, version_id=None, optimize=True)  # ONNX Runtime (exported here, not cached)
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
