"""One full learning cycle, timed: snapshot → train → evaluate → export → hot swap under load.

Imports a photo folder (default ``../shared/data/bears``) into a fresh data dir, runs one
training run exactly as ``/retrain`` does (default settings for the device), then swaps the
promoted model into a :class:`bot.model_holder.ModelHolder` while threads keep predicting,
and reports how long serving paused (the worst prediction latency around the swap compared
with before it). A dataset alone rarely gets past the gate (on either shared folder the candidate
ties or loses on the golden photos), so when the gate keeps the serving model, the swap is timed
to a head refit on the same folder with the same recipe, published and recorded as a version
outside the gate, as an admin's ``/rollback`` target would be: the swap does not depend on which
weights it loads.

    python bench/bench_cycle.py                      # CPU, default CPU settings
    python bench/bench_cycle.py --device cuda        # the same on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bearbot.settings import load_settings  # noqa: E402
from storage import model_versions  # noqa: E402
from storage.models import RunStatus  # noqa: E402
from storage.store import open_storage  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def swap_under_load(store, photos: list[bytes], workers: int, swap_to: int) -> dict[str, float]:  # noqa: ANN001
    from core.services import default_loader
    from bot.model_holder import ModelHolder

    holder = ModelHolder(store, default_loader(store.settings))
    with store.session() as s:
        active = model_versions.get_active(s)
        if active is not None and active.id == swap_to:  # promoted: serve the one it replaced first
            model_versions.rollback(s)
    await holder.start()
    before_version = holder.version.id if holder.version else None
    with store.session() as s:
        model_versions.activate_version(s, version_id=swap_to)
    latencies: list[tuple[float, float]] = []  # (finished at, seconds)
    versions: set[int | None] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def predict_loop(k: int) -> None:
        i = k
        while not stop.is_set():
            t0 = time.perf_counter()
            answer = holder.current.predict(photos[i % len(photos)])
            t1 = time.perf_counter()
            with lock:
                latencies.append((t1, t1 - t0))
                versions.add(answer.model_version)
            i += workers

    threads = [threading.Thread(target=predict_loop, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    await asyncio.sleep(3.0)
    swap_t0 = time.perf_counter()
    result = await holder.refresh()
    swap_t1 = time.perf_counter()
    await asyncio.sleep(3.0)
    stop.set()
    for t in threads:
        t.join()
    before = [s for t, s in latencies if t < swap_t0]
    during = [s for t, s in latencies if swap_t0 <= t <= swap_t1 + 0.5]
    after = [s for t, s in latencies if t > swap_t1 + 0.5]
    return {
        "swapped": float(result.swapped), "from": float(before_version or 0), "to": float(result.version_id or 0),
        "load_warm_s": swap_t1 - swap_t0, "reference_swap_ms": result.pause_ms,
        "p50_before_ms": statistics.median(before) * 1000, "max_before_ms": max(before) * 1000,
        "max_during_ms": max(during or [0.0]) * 1000, "p50_after_ms": statistics.median(after or [0.0]) * 1000,
        "predictions": float(len(latencies)), "versions_seen": float(len(versions)),
    }


def publish_outside_gate(store, folder: Path, work: Path) -> int:  # noqa: ANN001
    """A version to swap to: v0's head refit on ``folder`` (``bench_inference.train_artifact``), published
    into the models dir and recorded, not activated."""
    from bench_inference import train_artifact

    from bearbot.artifact import publish

    with store.session() as s:
        labels = tuple(model_versions.serving_version(s, store.settings).labels)
    final, sha = publish(train_artifact(folder, work, labels), store.settings.models_dir)
    with store.session() as s:
        version = model_versions.create_version(
            s, artifact_path=final.name, sha256=sha, arch=store.settings.arch, labels=list(labels),
            metrics={"note": "bench_cycle: published outside the gate to time a swap"}, activate=False,
        )
        return version.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=2, help="threads predicting during the swap")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no photo folder at {args.data}; pass --data DIR (one sub-folder per label)")
    from trainer.dataset_import import import_folder
    from trainer.runner import run_now

    with tempfile.TemporaryDirectory(prefix="bearbot-cycle-") as tmp:
        settings = load_settings(data_dir=Path(tmp), device=args.device)
        store = open_storage(settings)
        t0 = time.perf_counter()
        import_folder(store, args.data, progress=False)
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = run_now(store)
        t_run = time.perf_counter() - t0
        if run.status is RunStatus.FAILED:
            sys.exit(f"run failed: {run.error}")
        m = run.metrics
        print(f"device {m['config']['device']}  images train {run.n_train} valid {run.n_valid} golden {run.n_golden}")
        print(f"import            {t_import:7.1f} s")
        print(f"training run      {t_run:7.1f} s  (features {m['feature_seconds']} s; status {run.status.value})")
        print(f"golden error      candidate {m['candidate_error']:.2%}  serving {m['current_error']:.2%}")
        if run.status is RunStatus.SUCCEEDED:
            with store.session() as s:
                target = model_versions.list_versions(s)[-1].id
        else:  # a rejected candidate is not published: time the swap to the same recipe's head
            target = publish_outside_gate(store, args.data, Path(tmp))
            print(f"candidate rejected by the gate; the swap is timed to v{target}, the same recipe's head "
                  f"published outside the gate")
        photos = [p.read_bytes() for p in sorted(args.data.rglob("*.jpg"))[:64]]
        s = asyncio.run(swap_under_load(store, photos, args.workers, swap_to=target))
        print(
            f"hot swap v{s['from']:.0f}→v{s['to']:.0f}: load+verify+warm {s['load_warm_s']:.2f} s off the serving path; "
            f"reference swap {s['reference_swap_ms']:.3f} ms"
        )
        print(
            f"predictions under load ({args.workers} threads, {s['predictions']:.0f} done): p50 before "
            f"{s['p50_before_ms']:.1f} ms, max before {s['max_before_ms']:.1f} ms, max during swap "
            f"{s['max_during_ms']:.1f} ms (ratio {s['max_during_ms'] / s['max_before_ms']:.2f}), p50 after "
            f"{s['p50_after_ms']:.1f} ms; all succeeded, {s['versions_seen']:.0f} versions served"
        )
        print(f"full cycle        {t_import + t_run:7.1f} s")
        store.close()


if __name__ == "__main__":
    main()
