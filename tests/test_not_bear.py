"""Bear or not (issue 17) below the bot: the score, the "none" answer, the keyboard, the admin rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bearbot.backbone import IMAGENET_BEAR_CLASSES, load_backbone
from bearbot.imaging import open_image
from bearbot.inference import TorchClassifier
from bearbot.labels import NOT_BEAR, UnknownLabelError, check_answer
from bearbot.model_def import bear_mass, bear_score, build_zero_shot
from bearbot.prediction import Prediction
from bearbot.preprocess import center_crop_resize, to_batch
from bearbot.settings import Settings
from bot.telegram.adapter import keyboard
from core.texts import MAX_ECHO, correction_text, feedback_buttons, prediction_text, unknown_label
from storage import corrections, predictions
from storage.models import CorrectionStatus, Origin
from storage.store import Storage
from storage.users import upsert_user
from tests.helpers import image_bytes

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
# Cats and dogs from ../shared/data/not-bears that the bot refuses (the bear-mass rule before issue 17
# called the black ones bears), and the one of its 160 pets the chosen threshold still lets through.
PETS = ("cat_black", "cat_grey", "dog_black", "dog_brown")
PET_CALLED_BEAR = FIXTURES / "pet_called_bear" / "cat.jpg"  # kept out of not_bears/, which must all be refused


@pytest.fixture(scope="module")
def classifier() -> TorchClassifier:
    return TorchClassifier(build_zero_shot(load_backbone(), LABELS), version_id=None, bear_threshold=Settings().bear_threshold)


def _read(name: str) -> bytes:
    return (FIXTURES / "not_bears" / f"{name}.jpg").read_bytes()


def test_pets_are_refused_and_every_fixture_bear_is_kept(classifier: TorchClassifier) -> None:
    for name in PETS:
        pred = classifier.predict(_read(name))
        assert not pred.is_bear and pred.bear_score < classifier.bear_threshold, (name, pred.bear_score)
    for path in sorted((FIXTURES / "bears").rglob("*.jpg")):
        pred = classifier.predict(path.read_bytes())
        assert pred.is_bear and pred.bear_score >= classifier.bear_threshold, (path.name, pred.bear_score)
    # Honest about the limit: this cat scores above the threshold (1 of the 160 pets measured).
    assert classifier.predict(PET_CALLED_BEAR.read_bytes()).is_bear


def test_the_old_mass_rule_called_two_of_these_pets_bears(classifier: TorchClassifier) -> None:
    """Why the rule changed: the bear-class mass ≥ 0.005 accepted pets the new score refuses."""
    model = classifier.model
    batch = to_batch([center_crop_resize(open_image(_read(name)), model.image_size) for name in PETS], model.mean, model.std)
    with torch.inference_mode():
        mass = bear_mass(model.imagenet_head(model.body(batch)))
    assert int((mass >= 0.005).sum()) >= 2, mass.tolist()


def test_bear_score_is_the_sigmoid_of_the_strongest_bear_logit() -> None:
    logits = torch.full((2, 1000), -1.0)
    logits[0, 295] = 2.0
    logits[1, 850] = 0.5
    logits[1, 296] = 1.0
    expected = torch.tensor([2.0, 1.0]).sigmoid()
    assert torch.allclose(bear_score(logits, IMAGENET_BEAR_CLASSES), expected)
    # Many dog classes lower a bear's softmax share but not its own logit.
    logits[0, 151:269] = 3.0
    assert float(bear_score(logits)[0]) == pytest.approx(float(expected[0]))
    assert float(bear_mass(logits)[0]) < 0.01


@pytest.mark.parametrize("typed", ["none", "None", "notbear", "not-bear", "not a bear", " Not_Bear ", "nobear"])
def test_not_bear_aliases(typed: str) -> None:
    assert check_answer(typed, LABELS) == NOT_BEAR


def test_labels_and_unknowns() -> None:
    assert check_answer(" Grizzly", LABELS) == "grizzly"
    with pytest.raises(UnknownLabelError) as err:
        check_answer("panda", LABELS)
    assert err.value.valid == (*LABELS, NOT_BEAR)


def test_unknown_label_echo_is_capped() -> None:
    text = unknown_label("x" * 4000, LABELS)
    assert len(text) < 200 and "x" * MAX_ECHO not in text and "x" * (MAX_ECHO - 1) + "…" in text


def test_every_answer_has_a_not_a_bear_button() -> None:
    bear_kb = keyboard(feedback_buttons(7, LABELS, "black", is_bear=True)).to_dict()["inline_keyboard"]
    flat = [(b["text"], b["callback_data"]) for row in bear_kb for b in row]
    assert flat[0] == ("✅ yes, black", "fb:7:black") and flat[-1] == ("🚫 not a bear", "fb:7:none")
    assert {d for _, d in flat} == {"fb:7:black", "fb:7:grizzly", "fb:7:teddy", "fb:7:none"}
    refused = keyboard(feedback_buttons(8, LABELS, "black", is_bear=False)).to_dict()["inline_keyboard"]
    flat = [(b["text"], b["callback_data"]) for row in refused for b in row]
    assert flat[0] == ("✅ right, no bear", "fb:8:none")
    assert {d for _, d in flat} == {"fb:8:none", "fb:8:grizzly", "fb:8:black", "fb:8:teddy"}
    assert all(len(d.encode()) <= 64 for _, d in flat)  # Telegram's limit on callback data


def test_an_unsure_answer_says_so_and_what_tells_the_two_apart() -> None:
    torn = prediction_text(label="black", confidence=0.52, probabilities={"black": 0.52, "grizzly": 0.46, "teddy": 0.02},
                           is_bear=True)
    assert torn.startswith("🐻 black · 52 %\nothers: grizzly 46 % · teddy 2 %\nI'm not sure: it could be grizzly.")
    assert "hump" in torn and torn.endswith("Right? Tap ✅, or the right label.")
    plush = prediction_text(label="teddy", confidence=0.55, probabilities={"teddy": 0.55, "black": 0.40, "grizzly": 0.05},
                            is_bear=True)
    assert "I'm not sure: it could be black." in plush and "hump" not in plush  # no tell known for that pair
    sure = prediction_text(label="grizzly", confidence=0.9, probabilities={"grizzly": 0.9, "black": 0.08, "teddy": 0.02},
                           is_bear=True)
    assert "not sure" not in sure and "hump" not in sure


def test_refusal_text_is_kind_and_says_what_to_do() -> None:
    text = prediction_text(label="grizzly", confidence=0.6, probabilities={"grizzly": 0.6, "black": 0.3, "teddy": 0.1},
                           is_bear=False)
    assert text.startswith("🤔 I don't see a bear here — if there is one, reply /correct grizzly")
    confirmed = correction_text(label=NOT_BEAR, said="black", confidence=0.7, is_bear=False, updated=False,
                                status=CorrectionStatus.PENDING, agreeing=1, required=2)
    assert confirmed.startswith("Recorded: not a bear — thanks for confirming.")
    held = correction_text(label="black", said="black", confidence=0.7, is_bear=False, updated=False,
                           status=CorrectionStatus.PENDING, agreeing=2, required=2, admin_only=True)
    assert "an admin has to approve it" in held


def _refused_photo(session, storage: Storage) -> tuple[list[int], int, int, int]:  # noqa: ANN001
    users = [upsert_user(session, telegram_id=100 + i, display_name=f"u{i}", is_admin=False).id for i in range(3)]
    admin = upsert_user(session, telegram_id=1, display_name="admin", is_admin=True).id
    image, _ = storage.images.put(session, data=image_bytes((200, 120, 40)), origin=Origin.UPLOAD)
    answer = Prediction(label="black", confidence=0.7, probabilities={"black": 0.7, "grizzly": 0.2, "teddy": 0.1},
                    is_bear=False, model_version=None, bear_score=0.5)
    pred = predictions.record_prediction(session, image_id=image.id, user_id=users[0], chat_id=1, message_id=1, answer=answer)
    return users, admin, image.id, pred.id


def test_admin_only_labels_stay_pending_however_many_users_agree(storage: Storage) -> None:
    with storage.session() as session:
        users, admin, image_id, pred_id = _refused_photo(session, storage)
        for user in users:
            outcome = corrections.record_correction(session, image_id=image_id, user_id=user, label="black",
                                                    prediction_id=pred_id, is_admin=False, required=2, admin_only=True)
        assert outcome.status == CorrectionStatus.PENDING and outcome.agreeing_users == 3
        by_admin = corrections.record_correction(session, image_id=image_id, user_id=admin, label="black",
                                                 prediction_id=pred_id, is_admin=True, required=2, admin_only=True)
        assert by_admin.status == CorrectionStatus.ACCEPTED
        pending = corrections.list_pending(session)
        assert len(pending) == 3  # the users' rows wait for an admin's review, not for agreement
        approved = corrections.review(session, correction_id=pending[0].id, admin_id=admin, approve=True)
        assert approved is not None and approved.status == CorrectionStatus.ACCEPTED


def test_none_follows_the_ordinary_policy(storage: Storage) -> None:
    with storage.session() as session:
        users, _admin, image_id, pred_id = _refused_photo(session, storage)
        first = corrections.record_correction(session, image_id=image_id, user_id=users[0], label=NOT_BEAR,
                                              prediction_id=pred_id, is_admin=False, required=2)
        assert first.status == CorrectionStatus.PENDING
        second = corrections.record_correction(session, image_id=image_id, user_id=users[1], label=NOT_BEAR,
                                               prediction_id=pred_id, is_admin=False, required=2)
        assert second.status == CorrectionStatus.ACCEPTED and second.correction.label == NOT_BEAR
