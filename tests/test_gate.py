"""The retrain gate on paired answers (trainer/gate.py) and through the real pipeline.

The case from the field: an admin corrects a few cinnamon-coloured black bears the bot called
grizzly; a retrain on them moves the black/grizzly line across brown grizzlies users had confirmed.
The gate must see those breaks (the confirmed grizzlies, each judged by a candidate trained
without it) and keep the serving model; nothing the rejected run saw may enter the dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bearbot.labels import NOT_BEAR
from bearbot.prediction import Prediction
from bearbot.settings import Settings, load_settings
from storage import corrections, dataset, model_versions, predictions, runs, snapshot, users
from storage.models import Correction, Origin, RunStatus
from storage.store import Storage, open_storage
from trainer import gate, runner
from trainer.dataset_import import import_folder
from trainer.pipeline import folds_of, load_serving

FIXTURES = Path(__file__).parent / "fixtures"
HARD = FIXTURES / "hard"  # cinnamon black bears v0 calls grizzly, and brown grizzlies near the line


def answer(label: str, *, is_bear: bool = True) -> Prediction:
    return Prediction(label=label, confidence=0.9, probabilities={label: 0.9}, is_bear=is_bear, model_version=1)


def pair(truth: str, serving: str, candidate: str, group: str = "reviewed") -> gate.Pair:
    return gate.Pair(Path(f"{truth}.jpg"), truth, group, answer(serving), answer(candidate))


def test_sign_test_values() -> None:
    assert gate.sign_test(0, 0) == 1.0
    assert gate.sign_test(5, 0) == pytest.approx(1 / 32)
    assert gate.sign_test(3, 1) == pytest.approx(5 / 16)
    assert gate.sign_test(1, 3) == pytest.approx(15 / 16)


@pytest.mark.parametrize(
    ("fixes", "breaks", "golden_breaks", "alpha", "promote"),
    [
        (0, 0, 0, 0.05, False),  # the same answers: no evidence, never a log-loss tie-break
        (2, 0, 0, 0.05, False),  # 2:0 is p = 0.25, not enough
        (5, 0, 0, 0.05, True),  # p = 1/32
        (6, 2, 0, 0.05, False),  # p = 0.14
        (9, 1, 0, 0.05, True),  # p = 0.011
        (9, 1, 1, 0.05, True),  # users' photos decide; one golden break is no evidence of worse (p = 0.5)
        (9, 3, 3, 0.2, False),  # but three golden breaks and no golden fix are (p = 0.125)
        (6, 4, 4, 0.05, True),  # users' photos: 6 fixes, no breaks (p = 1/64); golden 0:4 is p = 1/16 > 0.05
        (2, 1, 0, 1.0, True),  # alpha 1 promotes on any net fix
        (1, 1, 0, 1.0, False),  # but never on a tie
    ],
)
def test_decide(fixes: int, breaks: int, golden_breaks: int, alpha: float, promote: bool) -> None:
    """``fixes`` on users' photos; ``breaks``, the first ``golden_breaks`` of them golden."""
    pairs = [pair("black", "grizzly", "black") for _ in range(fixes)]
    pairs += [pair("grizzly", "grizzly", "black", "golden" if k < golden_breaks else "reviewed") for k in range(breaks)]
    pairs += [pair("teddy", "teddy", "teddy", "golden") for _ in range(20)]
    decision = gate.decide(pairs, alpha=alpha)
    assert decision.promote is promote, decision.reason
    assert len(decision.fixes) == fixes and len(decision.breaks) == breaks


def test_golden_decides_when_no_user_reviewed_anything() -> None:
    """A first import's retrain has no users' photos: the golden split is the evidence."""
    golden = [pair("black", "grizzly", "black", "golden") for _ in range(5)] + [pair("teddy", "teddy", "teddy", "golden")]
    decision = gate.decide(golden, alpha=0.05)
    assert decision.promote and "the golden set" in decision.reason and decision.p_value == pytest.approx(1 / 32)
    users = [pair("grizzly", "grizzly", "grizzly", "presumed")]  # one uncorrected answer: users' photos decide
    assert not gate.decide(golden + users, alpha=0.05).promote


def test_not_a_bear_counts_both_ways() -> None:
    pet = gate.Pair(Path("cat.jpg"), NOT_BEAR, "reviewed", answer("black", is_bear=False), answer("black"))
    assert pet.brk and not pet.fix  # the candidate calls a reported pet a bear: a break
    bear = gate.Pair(Path("b.jpg"), "black", "golden", answer("black", is_bear=False), answer("black"))
    assert bear.fix  # the serving model refused a real bear; the candidate answers it


def test_near_duplicates_share_a_fold() -> None:
    def photo(phash: str, sha: str) -> snapshot.Reviewed:
        return snapshot.Reviewed(1, Path("x"), sha, phash, "black", None, False)

    photos = [photo("ffff0000ffff0000", "a" * 64), photo("ffff0000ffff0003", "b" * 64), photo("0000ffff0000ffff", "c" * 64)]
    folds = folds_of(photos, 5)
    assert folds[0] == folds[1]  # 2 bits apart: one photo, two crops


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    # golden_fraction 0.3 puts black4, grizzly1 and grizzly2 in the golden split (by their sha256).
    defaults: dict[str, object] = {"golden_fraction": 0.3, "train_batch_size": 8, "device": "cpu"}
    return load_settings(data_dir=tmp_path / "var", **{**defaults, **overrides})


def send(store: Storage, path: Path, *, message_id: int) -> tuple[int, int, str]:
    """A user sends ``path``; the serving model answers it. (image id, prediction id, answer)."""
    model = load_serving(store, store.settings)
    data = path.read_bytes()
    said = model.predict(data)
    with store.session() as s:
        user = users.upsert_user(s, telegram_id=1001, display_name="sender", is_admin=False)
        image, _ = store.images.put(s, data=data, origin=Origin.UPLOAD)
        pred = predictions.record_prediction(s, image_id=image.id, user_id=user.id, chat_id=1001, message_id=message_id, answer=said)
        return image.id, pred.id, said.label


def label(store: Storage, image_id: int, prediction_id: int, label: str, *, admin: bool) -> None:
    with store.session() as s:
        who = users.upsert_user(s, telegram_id=1 if admin else 1001, display_name="x", is_admin=admin)
        corrections.record_correction(
            s, image_id=image_id, user_id=who.id, label=label, prediction_id=prediction_id, is_admin=admin,
            required=store.settings.corrections_to_accept,
        )


@pytest.mark.slow
@pytest.mark.parametrize("confirm", [True, False], ids=["grizzlies-confirmed", "grizzlies-uncorrected"])
def test_cinnamon_corrections_that_break_confirmed_grizzlies_are_rejected(tmp_path: Path, confirm: bool) -> None:
    torch.set_num_threads(2)
    store = open_storage(settings_for(tmp_path))
    try:
        import_folder(store, FIXTURES / "bears", progress=False)
        with store.session() as s:
            before = sorted((c.label, c.split, c.source, c.count) for c in dataset.dataset_counts(s))
        for n, path in enumerate(sorted(HARD.glob("black_*.jpg"))[:3]):
            image_id, pred_id, said = send(store, path, message_id=n)
            assert said == "grizzly"  # what the bot gets wrong
            label(store, image_id, pred_id, "black", admin=True)
        for n, path in enumerate(sorted(HARD.glob("grizzly_*.jpg")), start=10):
            image_id, pred_id, said = send(store, path, message_id=n)
            assert said == "grizzly"
            if confirm:
                label(store, image_id, pred_id, "grizzly", admin=False)  # the sender taps ✅
            # else nobody objects: an answer nobody corrected is presumed right
        run = runner.run_now(store)
        assert run.status is RunStatus.REJECTED, runs.describe_run(run)
        g = run.metrics["gate"]
        assert g["breaks"] >= 1 and g["n"]["reviewed"] == (6 if confirm else 3) and g["n"]["presumed"] == (0 if confirm else 3)
        assert any(b["truth"] == "grizzly" and b["candidate"] == "black" for b in g["broken"])
        text = runs.describe_run(run)
        assert "serving model stays" in text and f"breaks {g['breaks']} it got right" in text and "Broken:" in text
        assert any(p.endswith("breaks_and_fixes.png") and Path(p).is_file() for p in run.metrics["plots"])
        with store.session() as s:
            assert model_versions.get_active(s).artifact_path is None  # v0 keeps serving
            after = sorted((c.label, c.split, c.source, c.count) for c in dataset.dataset_counts(s))
            assert after == before  # a rejected run leaves the dataset as it was
            assert all(c.learned_version_id is None for c in s.query(Correction))
            assert snapshot.corrections_waiting(s) == []  # seen: no retrain loop on the same corrections
    finally:
        store.close()
