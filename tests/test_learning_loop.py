"""The learning loop with real (tiny) training: corrections → run → gate → promote / reject / fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bearbot.settings import Settings, load_settings, settings_to_env
from storage import corrections, dataset, model_versions, runs, snapshot, users
from storage.models import Correction, CorrectionStatus, Origin, RunStatus, Trigger
from storage.store import Storage, open_storage
from trainer import runner
from trainer.dataset_import import import_folder
from trainer.pipeline import load_serving

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_settings(tmp_path: Path, **overrides: object) -> Settings:
    # golden_fraction 0.3 puts 3 of the 12 fixture photos in the golden split (by their sha256).
    defaults: dict[str, object] = {"golden_fraction": 0.3, "train_batch_size": 4, "image_size": 96, "device": "cpu"}
    return load_settings(data_dir=tmp_path / "var", **{**defaults, **overrides})


@pytest.fixture
def store(tmp_path: Path) -> Storage:
    torch.set_num_threads(2)
    store = open_storage(tiny_settings(tmp_path))
    import_folder(store, FIXTURES / "bears", progress=False)
    yield store
    store.close()


def correct(store: Storage, *, path: Path, label: str, telegram_ids: tuple[int, ...]) -> None:
    """Users send ``path`` and correct it to ``label`` (two users agreeing are accepted)."""
    with store.session() as s:
        image, _ = store.images.put(s, data=path.read_bytes(), origin=Origin.UPLOAD)
        for tid in telegram_ids:
            user = users.upsert_user(s, telegram_id=tid, display_name=str(tid), is_admin=False)
            corrections.record_correction(
                s, image_id=image.id, user_id=user.id, label=label, prediction_id=None,
                is_admin=False, required=store.settings.corrections_to_accept,
            )


def active_id(store: Storage) -> int | None:
    with store.session() as s:
        active = model_versions.get_active(s)
        return active.id if active else None


def test_no_dataset_no_run(tmp_path: Path) -> None:
    empty = open_storage(tiny_settings(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="bearbot dataset build"):
        runner.run_now(empty)
    with empty.session() as s:
        assert runs.latest_run(s) is None
    empty.close()


def test_corrections_train_and_gate(store: Storage) -> None:
    photo = FIXTURES / "hard" / "black_b4ba30.jpg"  # a new image, corrected to "black" by two users
    correct(store, path=photo, label="black", telegram_ids=(1, 2))
    correct(store, path=FIXTURES / "bears" / "black" / "black1.jpg", label="grizzly", telegram_ids=(3,))  # one user: pending
    with store.session() as s:
        waiting = snapshot.corrections_waiting(s)
        assert len(waiting) == 2 and len({c.image_id for c in waiting}) == 1  # two users, one image
    run = runner.run_now(store)
    assert run.status in (RunStatus.SUCCEEDED, RunStatus.REJECTED), run.error
    m = run.metrics
    assert m["promoted"] == m["gate"]["promote"] == (run.status is RunStatus.SUCCEEDED)
    assert run.n_corrections == 1 and run.n_golden == 3 and m["gate"]["n"]["golden"] == 3 and m["gate"]["n"]["reviewed"] == 1
    assert all(Path(p).is_file() for p in m["plots"]) and any(p.endswith("confusion_matrix.png") for p in m["plots"])
    with store.session() as s:
        assert snapshot.corrections_waiting(s) == []  # seen once: no retrain loop on the same corrections
        pending = corrections.list_pending(s)
        assert len(pending) == 1 and pending[0].status == CorrectionStatus.PENDING  # the lone user's stays out
        active = model_versions.get_active(s)
        if run.status is RunStatus.SUCCEEDED:
            assert active.id == run.model_version_id and active.artifact_path
            assert (store.settings.models_dir / active.artifact_path).is_file()
        else:
            assert active.artifact_path is None  # v0 keeps serving


HARD = FIXTURES / "hard"
PROMOTABLE = ("black_b4ba30.jpg", "black_b4ba30_mirror.jpg", "black_d4df69.jpg", "black_d4df69_mirror.jpg")


def test_promoted_corrections_join_the_dataset_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    # Two cinnamon black bears the zero-shot model calls grizzly, each with a second similar photo:
    # every one is fixed by a candidate trained without it (4 fixes, 0 breaks, p = 1/16).
    store = open_storage(tiny_settings(tmp_path, image_size=288, gate_alpha=0.1))
    try:
        import_folder(store, FIXTURES / "bears", progress=False)
        for name in PROMOTABLE:
            correct(store, path=HARD / name, label="black", telegram_ids=(1, 2))
        first = runner.run_now(store)
        assert first.status is RunStatus.SUCCEEDED, runs.describe_run(first)
        assert first.metrics["gate"]["fixes"] == 4 and first.metrics["gate"]["breaks"] == 0
        assert "fixes 4 photos serving gets wrong and breaks 0" in runs.describe_run(first)
        with store.session() as s:
            learned = [c for c in s.query(Correction) if c.learned_version_id == first.model_version_id]
            assert len(learned) == 8  # two users × four photos, merged for good
            assert sum(c.count for c in dataset.dataset_counts(s) if c.source == "correction") == 4
        promoted = load_serving(store, store.settings)
        assert promoted.version_id == first.model_version_id
        for pet in sorted((FIXTURES / "not_bears").glob("*.jpg")):  # the retrain kept refusing pets and people
            assert not promoted.predict(pet.read_bytes()).is_bear, pet.name
        second = runner.run_now(store)  # nothing new: the same head, the same answers
        assert second.status is RunStatus.REJECTED, runs.describe_run(second)
        assert second.metrics["gate"]["fixes"] == second.metrics["gate"]["breaks"] == 0
        assert active_id(store) == first.model_version_id
        assert "serving model stays" in runs.describe_run(second)
    finally:
        store.close()


def test_worse_candidate_is_rejected(store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import pipeline

    real = pipeline.fit_examples

    def sabotaged(*args: object, **kwargs: object) -> torch.nn.Linear:
        head = real(*args, **kwargs)
        with torch.no_grad():  # invert the head: every confident answer becomes wrong
            head.weight.mul_(-1.0)
            head.bias.mul_(-1.0)
        return head

    monkeypatch.setattr(pipeline, "fit_examples", sabotaged)
    before = active_id(store) or load_serving(store, store.settings).version_id
    run = runner.run_now(store)
    assert run.status is RunStatus.REJECTED, runs.describe_run(run)
    assert run.metrics["golden_errors"]["candidate"] > run.metrics["golden_errors"]["serving"]
    assert active_id(store) == before
    assert "worse on the golden set" in runs.describe_run(run)


def test_run_that_raises_keeps_the_model_and_records_the_error(store: Storage) -> None:
    before = load_serving(store, store.settings).version_id
    for f in store.settings.images_dir.rglob("*.jpg"):  # the image files vanish under the trainer
        f.unlink()
    run = runner.run_now(store)
    assert run.status is RunStatus.FAILED
    assert run.error and ("No such file" in run.error or "FileNotFoundError" in run.error or "unreadable" in run.error)
    assert active_id(store) == before
    assert "failed" in runs.describe_run(run)


def test_killed_worker_is_recovered_at_next_start(store: Storage) -> None:
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
    env = {**os.environ, **settings_to_env(store.settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bearbot", "worker", "--once"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with store.session() as s:
                if runs.get_run(s, run_id=run.id).status is RunStatus.RUNNING:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the worker never claimed the run")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # like an OOM kill: no chance to record anything
        proc.wait(timeout=30)
    assert runner.recover(store) == [run.id]
    with store.session() as s:
        dead = runs.get_run(s, run_id=run.id)
        assert dead.status is RunStatus.FAILED and "died" in (dead.error or "")
