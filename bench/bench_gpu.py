"""Issue 16's GPU rows in one run: the serving model's latency at batch 1 and batch 32 on the device,
its answers against the CPU's ONNX Runtime path, and one retrain cycle (``bench_cycle.py``) there.

Rows, on the first ``--n`` photos of ``--data`` (the zero-shot v0, fp32, eager torch as the bot serves
on a GPU: :class:`bearbot.inference.TorchClassifier` exports to ONNX only for the CPU):

* the forward pass alone, batch 1 and batch 32: p50 per batch and per photo (the device synchronised);
* one photo end to end (decode and crop on the CPU, the forward pass on the device), beside the CPU's
  ONNX Runtime path on the same photos;
* the same label and bear/not-bear on every photo, device vs CPU path;

then ``bench_cycle.py --device`` on the same folder: import, training run (features, head fit,
gate), and the hot swap under load.

    python bench/bench_gpu.py --data ../shared/data/bears --device cuda
    python bench/bench_gpu.py --data tests/fixtures/bears --device cpu --n 4 --batch 4 --repeats 2 --no-cycle  # its test

On a lent GPU machine, ``bench/gpu_check.sh`` runs it with the wheels and photos that
``bench/gpu_prepare.sh`` put beside the repository (bench/README.md, "GPU rows").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bearbot.imaging import open_image  # noqa: E402
from bearbot.inference import TorchClassifier, build_v0  # noqa: E402
from bearbot.preprocess import center_crop_resize, to_batch  # noqa: E402
from trainer.data import folder_items  # noqa: E402

LABELS = ("grizzly", "black", "teddy")
Row = tuple[str, str]


def p50_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``fn`` in ms, the device synchronised before and after each call."""
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def device_rows(blobs: list[bytes], device: str, *, big_batch: int = 32, repeats: int = 50) -> list[Row]:
    """Forward latency at batch 1 and ``big_batch``, one photo end to end, and agreement with the CPU path."""
    model = build_v0(LABELS)
    on_device = TorchClassifier(model, version_id=None, device=device)
    on_cpu = TorchClassifier(build_v0(LABELS), version_id=None, optimize=True)  # the CPU serving path
    on_device.warm_up()
    on_cpu.warm_up()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    size, facts = on_device.facts.image_size, on_device.facts
    crops = [center_crop_resize(open_image(b, min_side=size), size) for b in blobs]
    batch = to_batch([crops[i % len(crops)] for i in range(big_batch)], facts.mean, facts.std).to(device)
    rows: list[Row] = []
    with torch.inference_mode():
        for n in (1, big_batch):
            x = batch[:n]
            for _ in range(5):  # kernels picked and memory allocated before timing
                model.forward_all(x)
            ms = p50_ms(lambda x=x: model.forward_all(x), repeats, sync)
            rows.append((f"forward pass, batch {n}, eager torch fp32 on {device}", f"p50 {ms:.2f} ms = {ms / n:.3f} ms/photo"))
    device_ms = [p50_ms(lambda b=b: on_device.predict(b), 3, sync) for b in blobs]
    cpu_ms = [p50_ms(lambda b=b: on_cpu.predict(b), 3, lambda: None) for b in blobs]
    rows.append((f"one photo end to end (decode, crop on the CPU; forward on {device})",
                 f"p50 {statistics.median(device_ms):.2f} ms"))
    rows.append((f"the same photos, CPU path ({on_cpu.runtime}, {torch.get_num_threads()} threads)",
                 f"p50 {statistics.median(cpu_ms):.2f} ms"))
    same = sum((a.label, a.is_bear) == (b.label, b.is_bear)
               for a, b in zip((on_device.predict(b) for b in blobs), (on_cpu.predict(b) for b in blobs), strict=True))
    rows.append((f"same label and bear/not-bear, {device} vs CPU path", f"{same}/{len(blobs)}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32, help="the large batch")
    parser.add_argument("--repeats", type=int, default=50, help="timed forward passes per batch size")
    parser.add_argument("--no-cycle", action="store_true", help="skip bench_cycle.py (the training cycle)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here; --device cpu runs the same code on the CPU")
    blobs = [item.path.read_bytes() for item in folder_items(args.data)][: args.n]
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{where}; torch {torch.__version__}; {len(blobs)} photos of {args.data}", flush=True)
    rows = device_rows(blobs, args.device, big_batch=args.batch, repeats=args.repeats)
    width = max(len(r[0]) for r in rows)
    for figure, measured in rows:
        print(f"{figure:<{width}}  {measured}", flush=True)
    if not args.no_cycle:
        print(f"\nbench_cycle.py --device {args.device} --data {args.data}", flush=True)
        cycle = Path(__file__).resolve().parent / "bench_cycle.py"
        subprocess.run([sys.executable, str(cycle), "--device", args.device, "--data", str(args.data)], check=True)


if __name__ == "__main__":
    main()
