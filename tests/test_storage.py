"""Storage round trips, image dedup, atomic writes, one active model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bearbot.imaging import ImageError
from storage import model_versions, runs, users
from storage.models import Image, ModelVersion, Origin, PredictionRecord, RunStatus, Trigger
from storage.store import Storage
from tests.helpers import image_bytes


def test_image_round_trip_and_dedup(storage: Storage) -> None:
    data = image_bytes()
    with storage.session() as s:
        row, created = storage.images.put(s, data=data, origin=Origin.UPLOAD)
        again, created_again = storage.images.put(s, data=data, origin=Origin.SEARCH, source_url="http://x")
    assert created and not created_again and again.id == row.id
    with storage.session() as s:
        stored = s.scalars(select(Image)).all()
        assert len(stored) == 1
        assert (stored[0].width, stored[0].height, stored[0].format) == (64, 48, "JPEG")
        assert len(stored[0].phash) == 16 and stored[0].origin == Origin.UPLOAD
        assert storage.images.path_of(stored[0]).read_bytes() == data
    files = [p for p in storage.images.root.rglob("*") if p.is_file()]
    assert len(files) == 1


def test_not_an_image_stores_nothing(storage: Storage) -> None:
    with pytest.raises(ImageError):
        with storage.session() as s:
            storage.images.put(s, data=b"%PDF-1.4 not an image", origin=Origin.UPLOAD)
    with storage.session() as s:
        assert s.scalar(select(func.count(Image.id))) == 0
    assert not storage.images.root.exists() or not any(storage.images.root.rglob("*"))


def test_crash_between_temp_write_and_rename(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        with storage.session() as s:
            storage.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
    monkeypatch.undo()
    with storage.session() as s:
        assert s.scalar(select(func.count(Image.id))) == 0
    leftovers = [p for p in Path(storage.images.root).rglob("*") if p.is_file()]
    assert leftovers == []  # no half file, no temp file
    # and the same bytes store fine afterwards
    with storage.session() as s:
        _, created = storage.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
    assert created


def test_prediction_round_trip(storage: Storage) -> None:
    with storage.session() as s:
        user = users.upsert_user(s, telegram_id=42, display_name="Ann", is_admin=False)
        image, _ = storage.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
        s.add(
            PredictionRecord(
                image_id=image.id, user_id=user.id, chat_id=-100123, message_id=7, reply_message_id=8,
                label="black", confidence=0.62, probabilities={"black": 0.62, "grizzly": 0.3, "teddy": 0.08},
                is_bear=True, latency_ms=12.5,
            )
        )
    with storage.session() as s:
        pred = s.scalars(select(PredictionRecord)).one()
        assert pred.probabilities["grizzly"] == pytest.approx(0.3)
        assert pred.image.sha256 and pred.chat_id == -100123


def test_one_active_model_and_rollback(storage: Storage) -> None:
    with storage.session() as s:
        v1 = model_versions.create_version(
            s, artifact_path=None, sha256="a" * 64, arch="efficientnet_lite0", labels=["a", "b"], metrics={}, activate=True
        )
        v2 = model_versions.create_version(
            s, artifact_path="m2.pkl", sha256="b" * 64, arch="efficientnet_lite0", labels=["a", "b"],
            metrics={"error_rate": 0.01}, activate=True,
        )
        assert model_versions.get_active(s).id == v2.id
        back = model_versions.rollback(s)
        assert back is not None and back.id == v1.id
        assert model_versions.get_active(s).id == v1.id
        assert model_versions.rollback(s) is None  # nothing before v1
    with storage.session() as s:  # the database itself refuses two active rows
        s.get(ModelVersion, v2.id).is_active = True
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_a_published_file_is_found_by_its_bytes(storage: Storage) -> None:
    """``--model FILE`` finds the version whose artifact has those bytes; the built-in v1 has no file to match."""
    with storage.session() as s:
        for path, sha in [(None, "c" * 64), ("m2.safetensors", "c" * 64), ("m3.safetensors", "c" * 64)]:
            model_versions.create_version(
                s, artifact_path=path, sha256=sha, arch="efficientnet_lite0", labels=["a", "b"], metrics={}, activate=False
            )
        found = model_versions.version_with_sha256(s, "c" * 64)
        assert found is not None and found.artifact_path == "m2.safetensors"
        assert model_versions.version_with_sha256(s, "d" * 64) is None


def test_runs_queue_join_claim_finish(storage: Storage) -> None:
    with storage.session() as s:
        run, joined = runs.queue_run(s, trigger=Trigger.ADMIN)
        same, joined2 = runs.queue_run(s, trigger=Trigger.SCHEDULE)
        assert not joined and joined2 and same.id == run.id
        claimed = runs.claim_next(s, worker=runs.worker_id())
        assert claimed is not None and claimed.status == RunStatus.RUNNING
        assert runs.claim_next(s, worker="other:1") is None
        runs.finish_run(
            s, run_id=run.id, worker=runs.worker_id(), status=RunStatus.REJECTED, metrics={"candidate": 0.1},
            counts={"train": 5},
        )
        assert runs.latest_run(s).n_train == 5
        assert [r.id for r in runs.unnotified_finished(s)] == [run.id]


def test_dead_run_recovered(storage: Storage) -> None:
    from datetime import timedelta

    with storage.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.CLI)
        host = runs.worker_id().split(":")[0]
        runs.claim_next(s, worker=f"{host}:999999:0123abcd")  # no such pid
        recovered = runs.recover_stale_runs(s, lease=timedelta(minutes=2), stale_after=timedelta(hours=6))
        assert [r.id for r in recovered] == [run.id]
        assert runs.get_run(s, run_id=run.id).status == RunStatus.FAILED


def test_concurrent_first_contact_creates_one_user(storage: Storage) -> None:
    """An album's updates arrive at once from a new user: every one gets the same single row."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def first_contact(telegram_id: int, barrier: threading.Barrier) -> int:
        barrier.wait()
        with storage.session() as s:
            return users.upsert_user(s, telegram_id=telegram_id, display_name="Ann", is_admin=False).id

    with ThreadPoolExecutor(max_workers=6) as pool:
        for telegram_id in range(100, 110):
            barrier = threading.Barrier(6)
            ids = list(pool.map(lambda _: first_contact(telegram_id, barrier), range(6)))
            assert len(set(ids)) == 1
    with storage.session() as s:
        assert len(s.scalars(select(users.User)).all()) == 10
