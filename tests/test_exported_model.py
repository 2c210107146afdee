"""The ONNX Runtime serving form: same answers as eager torch, cached by artifact sha256, and a cache
file that is not exactly what this system wrote is never used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from bearbot.backbone import weights_sha256
from bearbot.exported import (
    OnnxForward,
    _read_cache,
    cache_key,
    load_or_export,
    matches_eager,
)
from bearbot.imaging import open_image
from bearbot.inference import TorchClassifier, build_v0, load_classifier

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
PHOTOS = sorted((FIXTURES / "bears").rglob("*.jpg"))[:6] + sorted((FIXTURES / "not_bears").rglob("*.jpg"))[:3]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[TorchClassifier, TorchClassifier, Path]:
    """v0 loaded twice through the serving loader with one models dir: exported, then from the cache."""
    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("models")
    load = lambda: load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS, version_id=1,
        models_dir=models,
    )
    return load(), load(), models


def test_first_load_exports_and_a_restart_loads_the_cache(served: tuple[TorchClassifier, TorchClassifier, Path]) -> None:
    first, again, models = served
    assert first.runtime == "onnxruntime (export)"
    assert again.runtime == "onnxruntime (cache)"
    cached = sorted(p.name for p in (models / "compiled").iterdir())
    key = cache_key(first.model, weights_sha256())
    assert cached == [f"{key}.json", f"{key}.onnx"]


def test_onnx_answers_like_eager_torch_one_by_one_and_in_a_batch(
    served: tuple[TorchClassifier, TorchClassifier, Path],
) -> None:
    onnx = served[1]
    eager = TorchClassifier(onnx.model, version_id=1)
    images = [open_image(p.read_bytes()) for p in PHOTOS]
    want = eager.predict_images(images)
    batched = onnx.predict_images(images)
    single = [onnx.predict_images([img])[0] for img in images]
    for w, b, s in zip(want, batched, single, strict=True):
        assert (b.label, b.is_bear) == (s.label, s.is_bear) == (w.label, w.is_bear)
        for label in LABELS:
            assert b.probabilities[label] == pytest.approx(w.probabilities[label], abs=1e-4)
        assert b.bear_score == pytest.approx(w.bear_score, abs=1e-4)


def test_altered_or_foreign_cache_files_are_not_read(served: tuple[TorchClassifier, TorchClassifier, Path]) -> None:
    model, models = served[0].model, served[2]
    key = cache_key(model, weights_sha256())
    onnx, meta = models / "compiled" / f"{key}.onnx", models / "compiled" / f"{key}.json"
    assert _read_cache(onnx, meta, key) == onnx.read_bytes()
    assert _read_cache(onnx, meta, "0" * 64) is None  # a manifest for another model
    altered = models / "altered.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    assert _read_cache(altered, meta, key) is None  # bytes without the recorded hash
    foreign = models / "foreign.json"
    foreign.write_text(json.dumps({"key": key, "onnx_sha256": json.loads(meta.read_text())["onnx_sha256"]}))
    assert _read_cache(onnx, foreign, key) is None  # not our manifest format


def test_a_graph_that_computes_something_else_fails_the_probe(
    served: tuple[TorchClassifier, TorchClassifier, Path],
) -> None:
    model = served[0].model
    zeros = lambda x: (torch.zeros(len(x), len(LABELS)), torch.zeros(len(x)))
    assert matches_eager(model, zeros) > 0.01
    assert isinstance(served[1]._forward, OnnxForward)


def test_a_tampered_cache_is_exported_again_not_served(
    served: tuple[TorchClassifier, TorchClassifier, Path], tmp_path: Path,
) -> None:
    """Another model's graph planted under this model's key (with a manifest that matches it) is caught
    by the probe and replaced."""
    model = served[0].model
    other = build_v0(("teddy", "black", "grizzly"))  # same body, rows swapped: a different function
    other_graph, _ = load_or_export(other, artifact_sha256="other", cache_dir=tmp_path)
    key_other = cache_key(other, "other")
    key = cache_key(model, weights_sha256())
    meta = json.loads((tmp_path / f"{key_other}.json").read_text())
    meta["key"] = key
    (tmp_path / f"{key}.onnx").write_bytes((tmp_path / f"{key_other}.onnx").read_bytes())
    (tmp_path / f"{key}.json").write_text(json.dumps(meta))
    forward, source = load_or_export(model, artifact_sha256=weights_sha256(), cache_dir=tmp_path)
    assert source == "export"
    assert matches_eager(model, forward) < 1e-3
    assert matches_eager(model, other_graph) > 1e-3


def test_blank_image_same_label_either_way(served: tuple[TorchClassifier, TorchClassifier, Path]) -> None:
    onnx = served[1]
    blank = Image.new("RGB", (300, 200), (10, 200, 30))
    assert onnx.predict_images([blank])[0].label == TorchClassifier(onnx.model, version_id=1).predict_images([blank])[0].label
