"""A tiny real training run (CPU, few images, small size): export, verified reload, lean == learn.predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bearbot.artifact import ArtifactError, learner_companion, publish
from bearbot.imaging import open_image
from bearbot.inference import load_classifier
from bearbot.settings import load_settings
from trainer.data import LabelledImage, folder_items
from trainer.evaluate import CONFUSION_PNG, TOP_LOSSES_PNG, evaluate_classifier
from trainer.train import TrainConfig, TrainResult, train_candidate

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
TINY = TrainConfig(batch_size=4, image_size=96, device="cpu")


def fixture_items() -> list[LabelledImage]:
    return folder_items(FIXTURES / "bears")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    torch.set_num_threads(2)
    items = fixture_items()
    valid = [i for i in items if i.path.stem.endswith("4")]
    train = [i for i in items if i not in valid]
    settings = load_settings(data_dir=tmp_path_factory.mktemp("var"))
    return train_candidate(
        train_items=train, valid_items=valid, labels=LABELS, settings=settings,
        out_dir=tmp_path_factory.mktemp("run"), config=TINY, progress=False,
    )


def test_training_exports_an_artifact(trained: TrainResult) -> None:
    assert trained.artifact_path.is_file() and len(trained.sha256) == 64
    assert trained.labels == LABELS and trained.model.labels == LABELS
    assert trained.model.image_size == 96
    assert 0.0 <= trained.metrics["valid_error"] <= 1.0
    assert trained.metrics["n_train"] == 9 and trained.metrics["n_valid"] == 3


def test_published_artifact_reloads_and_predicts(trained: TrainResult, tmp_path: Path) -> None:
    path, sha = publish(trained.artifact_path, tmp_path / "models")
    clf = load_classifier(
        artifact_path=path.name, sha256=sha, arch="efficientnet_lite0", labels=LABELS, version_id=5,
        models_dir=tmp_path / "models",
    )
    pred = clf.predict((FIXTURES / "bears" / "teddy" / "teddy1.jpg").read_bytes())
    assert pred.model_version == 5 and pred.label in LABELS
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_tampered_or_mislabelled_artifact_is_refused(trained: TrainResult, tmp_path: Path) -> None:
    path, sha = publish(trained.artifact_path, tmp_path / "models")
    with pytest.raises(ArtifactError, match="labels"):
        load_classifier(artifact_path=path, sha256=sha, arch="efficientnet_lite0", labels=("a", "b"), version_id=1)
    with path.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="refusing"):
        load_classifier(artifact_path=path, sha256=sha, arch="efficientnet_lite0", labels=LABELS, version_id=1)


def test_lean_path_equals_learn_predict(trained: TrainResult) -> None:
    from fastai.learner import load_learner

    learn = load_learner(learner_companion(trained.artifact_path), cpu=True)  # the export kept beside the weights
    lean = load_classifier(
        artifact_path=trained.artifact_path, sha256=trained.sha256, arch="efficientnet_lite0", labels=LABELS,
        version_id=None,
    )
    for path in sorted((FIXTURES / "bears").glob("*/*.jpg")) + sorted((FIXTURES / "not_bears").glob("*.jpg")):
        data = path.read_bytes()
        label, _, probs = learn.predict(open_image(data))
        ours = lean.predict(data)
        assert ours.label == label, path.name
        for i, name in enumerate(learn.dls.vocab):
            assert ours.probabilities[name] == pytest.approx(float(probs[i]), abs=1e-3), path.name


def test_evaluation_reports_metrics_and_plots(trained: TrainResult, tmp_path: Path) -> None:
    metrics = evaluate_classifier(trained.classifier, fixture_items(), out_dir=tmp_path)
    assert metrics["n"] == 12 and sum(map(sum, metrics["confusion_matrix"])) == 12
    assert set(metrics["per_class_accuracy"]) == set(LABELS)
    assert (tmp_path / CONFUSION_PNG).stat().st_size > 0 and (tmp_path / TOP_LOSSES_PNG).stat().st_size > 0
    json.dumps(metrics)  # storable in the model_versions.metrics JSON column


def test_cli_train_eval_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bearbot.cli import app

    data = tmp_path / "bears"
    shutil.copytree(FIXTURES / "bears", data)
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BEARBOT_IMAGE_SIZE", "96")
    monkeypatch.setenv("BEARBOT_TRAIN_BATCH_SIZE", "4")
    monkeypatch.setenv("BEARBOT_GOLDEN_FRACTION", "0.3")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(data)])
    assert result.exit_code == 0, result.output
    # The folder joins the dataset, then the one retrain pipeline runs, gate included: the zero-shot
    # model answers every golden photo of these easy fixtures right, so nothing can be fixed.
    assert "dataset import:" in result.output and "Training run #1 finished" in result.output, result.output
    assert "serving model stays" in result.output
    result = runner.invoke(app, ["eval", "--data", str(data), "--model", "1"])
    assert result.exit_code == 0, result.output
    assert "error" in result.output and "confusion" in result.output
    result = runner.invoke(app, ["predict", "--json", str(data / "grizzly" / "grizzly1.jpg")])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert json.loads(line)["model_version"] in (1, 2)


def test_unreadable_training_images_are_skipped_not_fatal(tmp_path: Path) -> None:
    items = fixture_items()
    valid = [i for i in items if i.path.stem.endswith("4")]
    train = [i for i in items if i not in valid]
    missing = LabelledImage(tmp_path / "gone.jpg", "black")  # deleted from disk after it was stored
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = train_candidate(
        train_items=[*train, missing, LabelledImage(broken, "teddy")], valid_items=valid, labels=LABELS,
        settings=load_settings(data_dir=tmp_path / "var"), out_dir=tmp_path / "run", config=TINY, progress=False,
    )
    assert result.metrics["n_train"] == len(train)
    assert sorted(result.metrics["unreadable"]) == sorted([str(missing.path), str(broken)])
    assert result.artifact_path.is_file()
