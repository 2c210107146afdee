"""The ONNX Runtime serving form: same answers as eager torch, cached by artifact sha256, a restart
serves from the cache without building the torch model, and a cache file this installation did not
write (or that computes something else) is never served. A first start answers eagerly while a child
process exports; a hot swap exports before it swaps."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from bearbot.backbone import weights_sha256
from bearbot.exported import load_or_export, matches_eager
from bearbot.imaging import open_image
from bearbot.inference import TorchClassifier, load_classifier
from bearbot.prediction import Prediction
from bearbot.serving_graph import ServingFacts, cache_key, prune_cache, read_cache, write_cache
from bearbot.settings import load_settings
from bot.model_holder import Loading, ModelHolder, ModelLoadError
from sqlalchemy.orm import Session
from storage import model_versions
from storage.models import ModelVersion
from storage.store import open_storage

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
PHOTOS = sorted((FIXTURES / "bears").rglob("*.jpg"))[:6] + sorted((FIXTURES / "not_bears").rglob("*.jpg"))[:3]
Served = tuple[TorchClassifier, TorchClassifier, Path]


def load_v0(models: Path) -> TorchClassifier:
    return load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS, version_id=1,
        models_dir=models,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """v0 loaded twice through the serving loader with one models dir: exported, then from the cache."""
    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("data") / "models"  # a data dir's models dir: settings find it
    return load_v0(models), load_v0(models), models


def test_first_load_exports_and_a_restart_serves_the_cache_without_torch_model(served: Served) -> None:
    first, again, models = served
    assert first.runtime == "onnxruntime (export)"
    assert again.runtime == "onnxruntime (cache)"
    assert again._model is None  # nothing built: no timm, no export
    key = cache_key(ServingFacts.of(first.model), weights_sha256())
    assert sorted(p.name for p in (models / "compiled").iterdir()) == [".key", f"{key}.json", f"{key}.onnx"]
    assert (models / "compiled" / ".key").stat().st_mode & 0o077 == 0
    assert again.model.labels == LABELS  # built on demand (the trainer asks for it)


def test_a_restart_imports_neither_torch_nor_timm(served: Served) -> None:
    """The bot's loader serves a cached graph without importing torch (most of the process's memory)."""
    code = (
        "import sys; from pathlib import Path; from types import SimpleNamespace as V;"
        "from bearbot.backbone import weights_sha256; from bearbot.serving import load_for_settings;"
        "from bearbot.settings import load_settings;"
        f"s = load_settings(data_dir=Path({str(served[2].parent)!r}));"
        "v = V(id=1, artifact_path=None, sha256=weights_sha256(), arch='efficientnet_lite0', labels=['grizzly', 'black', 'teddy']);"
        f"c = load_for_settings(v, s); a = c.predict(Path({str(PHOTOS[0])!r}).read_bytes());"
        "print(c.runtime, a.label, sorted(m for m in ('torch', 'timm', 'torchvision', 'fastai', 'matplotlib') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    eager = TorchClassifier(served[0].model, version_id=1).predict(PHOTOS[0].read_bytes())
    assert out.stdout.strip().splitlines()[-1] == f"onnxruntime (cache) {eager.label} []"


def test_onnx_answers_like_eager_torch_one_by_one_and_in_a_batch(served: Served) -> None:
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


def test_altered_foreign_or_mismatched_cache_files_are_not_read(served: Served, tmp_path: Path) -> None:
    key = cache_key(ServingFacts.of(served[0].model), weights_sha256())
    cache = tmp_path / "compiled"
    shutil.copytree(served[2] / "compiled", cache)
    assert read_cache(cache, key) == (cache / f"{key}.onnx").read_bytes()
    assert read_cache(cache, "0" * 64) is None  # nothing for another model
    meta = json.loads((cache / f"{key}.json").read_text())
    (cache / f"{'1' * 64}.onnx").write_bytes((cache / f"{key}.onnx").read_bytes())
    (cache / f"{'1' * 64}.json").write_text(json.dumps(meta))
    assert read_cache(cache, "1" * 64) is None  # a manifest written for another key
    data = bytearray((cache / f"{key}.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (cache / f"{key}.onnx").write_bytes(bytes(data))
    assert read_cache(cache, key) is None  # altered bytes
    shutil.copy(served[2] / "compiled" / f"{key}.onnx", cache / f"{key}.onnx")
    assert read_cache(cache, key) is not None
    (cache / ".key").write_bytes(os.urandom(32))
    assert read_cache(cache, key) is None  # written by another installation


def test_a_graph_that_computes_something_else_is_exported_again_not_served(served: Served, tmp_path: Path) -> None:
    """Even a validly tagged graph must reproduce the model when the model is at hand."""
    v0 = served[0].model
    other = copy.deepcopy(v0)
    with torch.no_grad():
        other.head.weight.mul_(-1)  # a different model with the same facts
    zeros = lambda x: (torch.zeros(len(x), len(LABELS)), torch.zeros(len(x)))
    assert matches_eager(v0, zeros) > 0.01
    key = cache_key(ServingFacts.of(other), "other")
    write_cache(tmp_path, key, read_cache(served[2] / "compiled", cache_key(ServingFacts.of(v0), weights_sha256())) or b"", "other")
    assert read_cache(tmp_path, key) is not None
    forward, source = load_or_export(other, artifact_sha256="other", cache_dir=tmp_path)
    assert source == "export"
    assert matches_eager(other, forward) < 1e-3
    forward, source = load_or_export(other, artifact_sha256="other", cache_dir=tmp_path)
    assert source == "cache"


def test_a_deferred_export_serves_eagerly_then_the_graph_a_child_process_cached(served: Served, tmp_path: Path) -> None:
    """A first start: the eager model answers at once; a child process fills the cache (here it finds
    the graph already exported, so the test does not pay for a second export) and the graph takes over
    only after it reproduced the model on the probe."""
    models = tmp_path / "models"
    clf = load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS, version_id=1,
        models_dir=models, defer_export=True,
    )
    assert (clf.runtime, clf.export_pending) == ("torch", True)
    images = [open_image(p.read_bytes()) for p in PHOTOS[:3]]
    eager = clf.predict_images(images)
    shutil.copytree(served[2] / "compiled", models / "compiled")
    thread = clf.export_in_background()
    assert thread is not None
    thread.join(300)
    assert (clf.runtime, clf.export_pending) == ("onnxruntime (background export)", False)
    for want, got in zip(eager, clf.predict_images(images), strict=True):
        assert (got.label, got.is_bear) == (want.label, want.is_bear)
        assert got.bear_score == pytest.approx(want.bear_score, abs=1e-4)


def test_a_failed_background_export_keeps_the_eager_model_serving(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clf = load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS, version_id=1,
        models_dir=tmp_path / "models", defer_export=True,
    )
    assert clf._export is not None
    clf._export = dataclasses.replace(clf._export, sha256="0" * 64)  # the child refuses weights with another hash
    thread = clf.export_in_background()
    assert thread is not None
    thread.join(300)
    assert (clf.runtime, clf.export_pending) == ("torch", False)
    assert "background ONNX export of v1 failed" in caplog.text
    assert clf.predict(PHOTOS[0].read_bytes()).label in LABELS


class _Deferred:
    """A classifier whose export the holder must finish: records which way it was asked."""

    labels = LABELS

    def __init__(self, version_id: int) -> None:
        self.version_id, self.calls = version_id, []

    def export_now(self) -> None:
        self.calls.append("now")

    def export_in_background(self) -> None:
        self.calls.append("background")

    def predict(self, data: bytes) -> Prediction:
        self.calls.append("predict")
        return Prediction("teddy", 1.0, dict.fromkeys(LABELS, 1 / 3), is_bear=True, model_version=self.version_id)


def test_the_holder_exports_in_the_background_only_when_nothing_serves_yet(tmp_path: Path) -> None:
    """First load: answer eagerly at once (the export comes later); a swap: the old model serves until
    the new one is exported."""
    storage = open_storage(load_settings(data_dir=tmp_path / "var"))
    loaded: list[_Deferred] = []

    def loader(version: ModelVersion) -> _Deferred:
        loaded.append(_Deferred(version.id))
        return loaded[-1]

    def bootstrap(session: Session) -> None:
        model_versions.ensure_active(session, arch="efficientnet_lite0", labels=list(LABELS), builtin_sha256=lambda: "a" * 64)

    async def scenario() -> None:
        holder = ModelHolder(storage, loader, bootstrap=bootstrap)
        await holder.start()
        with storage.session() as session:
            model_versions.create_version(session, artifact_path="v2.safetensors", sha256="b" * 64,
                                          arch="efficientnet_lite0", labels=list(LABELS), metrics={}, activate=True)
        assert (await holder.refresh()).swapped

    try:
        asyncio.run(scenario())
    finally:
        storage.close()
    assert [c.calls for c in loaded] == [["predict", "background"], ["now", "predict"]]


def test_the_cache_keeps_only_graphs_a_kept_version_can_load(tmp_path: Path) -> None:
    """Old graphs go (other artifacts, superseded exports of a kept one, strays, killed writes); the
    installation key, the newest graph of each kept artifact and anything young stay."""
    cache = tmp_path / "compiled"
    old = 1_000_000.0

    def entry(key: str, sha: str, at: float) -> None:
        write_cache(cache, key, b"graph " + key.encode(), sha)
        for path in (cache / f"{key}.onnx", cache / f"{key}.json"):
            os.utime(path, (at, at))

    entry("kept-old", "a" * 64, old)  # an export by an older torch: its key can never match again
    entry("kept-new", "a" * 64, old + 10)
    entry("dropped", "b" * 64, old)
    entry("dropped-young", "b" * 64, old + 4000)
    for name in ("stray.onnx", ".onnx-x.tmp"):
        (cache / name).write_bytes(b"?")
        os.utime(cache / name, (old, old))
    removed = prune_cache(cache, {"a" * 64}, min_age_s=3600, now=old + 4000)
    assert sorted(p.name for p in removed) == sorted(
        [".onnx-x.tmp", "dropped.json", "dropped.onnx", "kept-old.json", "kept-old.onnx", "stray.onnx"]
    )
    assert sorted(p.name for p in cache.iterdir()) == [
        ".key", "dropped-young.json", "dropped-young.onnx", "kept-new.json", "kept-new.onnx"
    ]
    assert read_cache(cache, "kept-new") == b"graph kept-new"
    assert prune_cache(tmp_path / "none", set(), min_age_s=0) == []


def test_clean_up_after_a_run_drops_the_graphs_of_removed_versions(tmp_path: Path) -> None:
    from trainer.cleanup import MIN_AGE_SECONDS, clean_up

    store = open_storage(load_settings(data_dir=tmp_path / "var", keep_model_versions=1))
    models = store.settings.models_dir
    models.mkdir(parents=True)
    with store.session() as s:
        model_versions.create_version(s, artifact_path=None, sha256="0" * 64, arch="x", labels=list(LABELS),
                                      metrics={}, activate=True)
        for i in range(2, 6):  # v2…v5; kept: the newest (v5) and one rollback (v4), and the built-in v1
            (models / f"model-{i}.safetensors").write_bytes(b"weights %d" % i)
            model_versions.create_version(s, artifact_path=f"model-{i}.safetensors", sha256=f"{i}" * 64, arch="x",
                                          labels=list(LABELS), metrics={}, activate=True)
    old = time.time() - MIN_AGE_SECONDS - 60
    for i in range(1, 6):
        write_cache(models / "compiled", f"graph-{i}", b"g", ("0" if i == 1 else str(i)) * 64)
        for path in (models / "compiled").glob(f"graph-{i}.*"):
            os.utime(path, (old, old))
    clean_up(store)
    store.close()
    assert sorted(p.stem for p in (models / "compiled").glob("*.onnx")) == ["graph-1", "graph-4", "graph-5"]


def test_a_background_first_load_lets_the_bot_answer_before_the_model_is_ready(tmp_path: Path) -> None:
    """start(wait=False): the labels are known at once; a photo waits on its worker thread for the model
    and gets the model's answer; then the model itself serves."""
    storage = open_storage(load_settings(data_dir=tmp_path / "var"))
    release = threading.Event()

    def loader(version: ModelVersion) -> _Deferred:
        release.wait(30)  # a slow first load (imports, export)
        return _Deferred(version.id)

    def bootstrap(session: Session) -> None:
        model_versions.ensure_active(session, arch="efficientnet_lite0", labels=list(LABELS), builtin_sha256=lambda: "a" * 64)

    async def scenario() -> None:
        holder = ModelHolder(storage, loader, bootstrap=bootstrap)
        await asyncio.wait_for(holder.start(wait=False), 10)  # returns while the loader still blocks
        stand_in = holder.current
        assert isinstance(stand_in, Loading) and not holder.serving
        assert (holder.labels, stand_in.image_size) == (LABELS, None)
        answer = asyncio.create_task(asyncio.to_thread(stand_in.predict, b"photo"))
        await asyncio.sleep(0.2)
        assert not answer.done()
        release.set()
        assert (await asyncio.wait_for(answer, 10)).label == "teddy"
        await holder.stop()
        assert holder.serving and isinstance(holder.current, _Deferred) and holder.version is not None

    try:
        asyncio.run(scenario())
    finally:
        storage.close()


def test_a_background_first_load_that_finds_nothing_tells_the_admins_and_fails_photos(tmp_path: Path) -> None:
    storage = open_storage(load_settings(data_dir=tmp_path / "var"))
    told: list[str] = []

    def loader(version: ModelVersion) -> _Deferred:
        raise ModelLoadError("the weights are gone")

    def bootstrap(session: Session) -> None:
        model_versions.ensure_active(session, arch="efficientnet_lite0", labels=list(LABELS), builtin_sha256=lambda: "a" * 64)

    async def report(text: str) -> None:
        told.append(text)

    async def scenario() -> None:
        holder = ModelHolder(storage, loader, bootstrap=bootstrap, report=report)
        await holder.start(wait=False)
        await holder.stop()
        with pytest.raises(ModelLoadError):
            holder.current.predict(b"photo")

    try:
        asyncio.run(scenario())
    finally:
        storage.close()
    assert len(told) == 1 and "No model could be loaded at start" in told[0] and "the weights are gone" in told[0]


def test_an_export_child_ends_with_the_bot_that_started_it(tmp_path: Path) -> None:
    """A bot stopped mid-export leaves no exporter behind (it would hold a core for half a minute)."""
    job = {"artifact_path": None, "sha256": weights_sha256(), "arch": "efficientnet_lite0", "labels": list(LABELS),
           "models_dir": str(tmp_path / "models")}
    starter = (
        "import json, os, subprocess, sys, time;"
        f"job = {{**{job!r}, 'parent': os.getpid()}};"
        "child = subprocess.Popen([sys.executable, '-m', 'bearbot.export_child', json.dumps(job)]);"
        "print(child.pid, flush=True); time.sleep(1.5)"  # then exits while the child still imports torch
    )
    out = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=60, check=True)
    status = Path(f"/proc/{int(out.stdout.split()[0])}/status")
    deadline = time.monotonic() + 30
    while status.exists() and "\tZ" not in status.read_text().split("State:")[1][:4] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status.exists() or "\tZ" in status.read_text().split("State:")[1][:4]  # gone (or a reaped-later zombie)
    assert not (tmp_path / "models" / "compiled").exists()
