"""The serving form of a :class:`~bearbot.model_def.BearNet`: ``forward_all`` exported to ONNX and run
by ONNX Runtime on the CPU, cached next to the model artifacts so a restart does not export again.

Why ONNX Runtime: ``python bench/bench_inference.py --compare-runtimes --n 30`` (v0, 288 px, 2 threads,
on the shared 2-core machine, load average ~8) gave p50 per photo: eager torch 238 ms, the TorchScript
trace+freeze this replaced (deprecated) 90 ms, ``torch.export`` + AOTInductor 54 ms (31.5 s to compile,
a C++ toolchain at run time), ONNX Runtime 31 ms (18 s to export, 0.11 s to load the file again).
All four agree with eager torch to within 6e-6.

This module makes graphs and checks them against the torch model; the cache and the runtime session
are in :mod:`bearbot.serving_graph`, which needs no torch. When a load builds the torch model anyway
(:func:`load_or_export`: a learner pickle, another architecture), a cached graph must also reproduce
it on a probe input, and a fresh export always must. A graph is only cached after that check, so
a restart that finds a valid entry never builds the torch model: no torch, no timm, no export.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bearbot.model_def import BearNet
from bearbot.serving_graph import (
    OnnxForward,
    ServingFacts,
    cache_key,
    read_cache,
    write_cache,
)

log = logging.getLogger(__name__)

MAX_BATCH = 64  # the exported graph's batch axis is dynamic up to this
PROBE_TOLERANCE = 1e-3  # largest |difference| in logits or bear score between the graph and eager torch

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _ForwardAll(nn.Module):
    # forward_all as a module's forward, so it can be exported.
    def __init__(self, model: BearNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_all(x)


def export_onnx(model: BearNet) -> bytes:
    """``model.forward_all`` as an ONNX graph with a dynamic batch axis (seconds; needs onnxscript)."""
    example = torch.zeros(2, 3, model.image_size, model.image_size)  # batch 2: a batch of 1 would be specialised
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _ForwardAll(model).eval(), (example,), dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False
        )
    assert program is not None
    with tempfile.TemporaryDirectory() as tmp:  # ONNXProgram writes files; a file under 2 GB is self-contained
        path = Path(tmp) / "model.onnx"
        program.save(path)
        return path.read_bytes()


def _probe(model: BearNet) -> torch.Tensor:
    # Deterministic input: the same probe for every load of a model, no global RNG touched.
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, model.image_size, model.image_size, generator=generator)


def matches_eager(model: BearNet, forward: Forward) -> float:
    """Largest |difference| between ``forward`` and the eager ``forward_all`` on the probe batch."""
    probe = _probe(model)
    with torch.inference_mode():
        want = model.forward_all(probe)
        got = forward(probe)
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(want, got, strict=True))


def load_or_export(
    model: BearNet, *, artifact_sha256: str, cache_dir: Path | None, threads: int | None = None
) -> tuple[OnnxForward, str]:
    """The model's ONNX Runtime forward, from the cache when a valid entry exists; returns it and
    where it came from (``"cache"`` or ``"export"``). Raises if exporting fails."""
    key = cache_key(ServingFacts.of(model), artifact_sha256)
    if cache_dir is not None and (data := read_cache(cache_dir, key)) is not None:
        forward = OnnxForward(data, threads=threads)
        diff = matches_eager(model, forward)
        if diff <= PROBE_TOLERANCE:
            return forward, "cache"
        log.warning("cached ONNX graph %s differs from the model by %.2g; exporting again", key, diff)
    data = export_onnx(model)
    forward = OnnxForward(data, threads=threads)
    diff = matches_eager(model, forward)
    if diff > PROBE_TOLERANCE:
        raise RuntimeError(f"the exported ONNX graph differs from the model by {diff:.2g}")
    if cache_dir is not None:
        try:
            write_cache(cache_dir, key, data, artifact_sha256)
        except OSError as exc:  # a read-only models dir: serve anyway, export again next start
            log.warning("could not cache the ONNX graph in %s: %s", cache_dir, exc)
    return forward, "export"


