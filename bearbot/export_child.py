"""``python -m bearbot.export_child JOB``: export one model version's ONNX serving graph into the cache.

The bot starts this process on a first start (:meth:`bearbot.inference.TorchClassifier.export_in_background`)
and answers with the eager model meanwhile. JOB is JSON with the version's fields (artifact path,
sha256, arch, labels, models dir): the model is rebuilt and verified exactly as the bot loads it, the
graph must reproduce it on the probe (:func:`bearbot.exported.load_or_export`), and it is written
with this installation's tag. Low priority and one thread, so the serving process keeps its core.
Exit status 0 means the cache holds the graph. The child ends with the bot that started it (Linux:
``PR_SET_PDEATHSIG``), so a bot stopped mid-export leaves no exporter running.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with(parent: int) -> None:
    """Get SIGTERM when ``parent`` (the bot) exits; exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it exited before the request above took effect
        sys.exit(3)


def main(argv: list[str]) -> int:
    """Rebuild the version named by ``argv[1]`` (JSON), export it, cache it; 0 on success."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    job = json.loads(argv[1])
    if "parent" in job:
        die_with(int(job["parent"]))
    os.nice(10)  # the serving process answers users meanwhile
    import torch

    from bearbot.exported import load_or_export
    from bearbot.inference import build_model
    from bearbot.serving_graph import compiled_dir

    torch.set_num_threads(1)
    models_dir = Path(job["models_dir"])
    model = build_model(artifact_path=job["artifact_path"], sha256=job["sha256"], arch=job["arch"],
                        labels=job["labels"], models_dir=models_dir)
    _forward, source = load_or_export(model, artifact_sha256=job["sha256"], cache_dir=compiled_dir(models_dir))
    print(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
