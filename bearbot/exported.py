"""The serving form of a :class:`~bearbot.model_def.BearNet`: ``forward_all`` exported to ONNX and run
by ONNX Runtime on the CPU, cached next to the model artifacts so a restart does not export again.

Why ONNX Runtime: measured on this model (EfficientNet-Lite0 v0, 288 px, one image, 2 threads) on the
2-core machine beside the TorchScript trace it replaces and ``torch.export`` + AOTInductor
(``bench/bench_inference.py --compare-runtimes``): ORT answered fastest and its export takes seconds,
where AOTInductor's C++ compile took over a minute. Outputs equal the eager model's to ~1e-6.

The cache: ``<models_dir>/compiled/<key>.onnx`` with ``<key>.json`` beside it, where ``key`` hashes the
artifact's sha256, the model's facts (labels, size, bear classes) and the exporter's version. The JSON
records the ONNX file's own sha256; a cache file is only used when its bytes have that hash and the
loaded graph reproduces the eager model's outputs on a probe input, otherwise it is exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bearbot.model_def import BearNet

log = logging.getLogger(__name__)

CACHE_FORMAT = "bearbot-onnx/1"
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


def cache_key(model: BearNet, artifact_sha256: str) -> str:
    """What the exported graph depends on: the weights (by their artifact's hash), the model's facts and
    the exporter; any change gives a new key, so a stale file is never picked up."""
    facts = {
        "format": CACHE_FORMAT, "artifact_sha256": artifact_sha256, "arch": model.arch, "labels": list(model.labels),
        "image_size": model.image_size, "bear_classes": list(model.bear_classes), "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


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


class OnnxForward:
    """An ONNX Runtime session that takes and returns tensors like ``BearNet.forward_all``.

    ``run`` is thread-safe (ORT sessions are); spinning is off, so idle inference threads give the
    two cores back to the event loop and the decoder instead of busy-waiting for the next batch.
    """

    def __init__(self, onnx_bytes: bytes, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, bear = self._session.run(None, {self._input: x.detach().cpu().contiguous().numpy()})
        return torch.from_numpy(logits), torch.from_numpy(bear)


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


def _read_cache(onnx_path: Path, meta_path: Path, key: str) -> bytes | None:
    """The cached graph's bytes if its manifest is ours, for this key, and the bytes have the recorded hash."""
    try:
        meta = json.loads(meta_path.read_text())
        data = onnx_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        log.warning("ignoring %s: not a bearbot ONNX cache manifest for this model", meta_path)
        return None
    if hashlib.sha256(data).hexdigest() != meta.get("onnx_sha256"):
        log.warning("ignoring %s: its bytes do not have the sha256 its manifest records", onnx_path)
        return None
    return data


def _write_cache(onnx_path: Path, meta_path: Path, key: str, data: bytes, artifact_sha256: str) -> None:
    """Write graph then manifest, each atomically (a reader sees both, or no manifest)."""
    meta = {"format": CACHE_FORMAT, "key": key, "artifact_sha256": artifact_sha256,
            "onnx_sha256": hashlib.sha256(data).hexdigest()}
    for path, payload in ((onnx_path, data), (meta_path, json.dumps(meta, indent=1).encode())):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".onnx-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_or_export(
    model: BearNet, *, artifact_sha256: str, cache_dir: Path | None, threads: int | None = None
) -> tuple[OnnxForward, str]:
    """The model's ONNX Runtime forward, from the cache when a valid entry exists; returns it and
    where it came from (``"cache"`` or ``"export"``). Raises if exporting fails."""
    key = cache_key(model, artifact_sha256)
    paths = (cache_dir / f"{key}.onnx", cache_dir / f"{key}.json") if cache_dir is not None else None
    if paths is not None and paths[0].is_file():
        data = _read_cache(*paths, key)
        if data is not None:
            forward = OnnxForward(data, threads=threads)
            diff = matches_eager(model, forward)
            if diff <= PROBE_TOLERANCE:
                return forward, "cache"
            log.warning("cached ONNX graph %s differs from the model by %.2g; exporting again", paths[0], diff)
    data = export_onnx(model)
    forward = OnnxForward(data, threads=threads)
    diff = matches_eager(model, forward)
    if diff > PROBE_TOLERANCE:
        raise RuntimeError(f"the exported ONNX graph differs from the model by {diff:.2g}")
    if paths is not None:
        try:
            _write_cache(*paths, key, data, artifact_sha256)
        except OSError as exc:  # a read-only models dir: serve anyway, export again next start
            log.warning("could not cache the ONNX graph in %s: %s", cache_dir, exc)
    return forward, "export"

