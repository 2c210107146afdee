"""A tiny real training run (CPU, few images, small size) through the pipeline's own steps — features,
the head refit (``fit_examples``), the export (``export_model``) — then a verified reload, lean ==
``learn.predict``, evaluation, and the CLI's train / eval / predict."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bearbot.artifact import ArtifactError, learner_companion, publish
from bearbot.backbone import load_backbone
from bearbot.imaging import open_image, sha256_hex
from bearbot.inference import TorchClassifier, load_classifier
from bearbot.model_def import BearNet, build_zero_shot
from trainer.data import folder_items
from trainer.evaluate import CONFUSION_PNG, TOP_LOSSES_PNG, evaluate_classifier
from trainer.features import FeatureTable, feature_table
from trainer.train import (
    TrainConfig,
    examples_of,
    export_model,
    fit_examples,
    with_head,
)

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
TINY = TrainConfig(batch_size=4, image_size=96, device="cpu")


@dataclass(frozen=True)
class Photo:
    """A labelled file and the sha256 of its bytes, as the pipeline's dataset view gives them."""

    path: Path
    label: str
    sha256: str


def photo(path: Path, label: str) -> Photo:
    try:
        sha = sha256_hex(path.read_bytes())
    except OSError:
        sha = f"missing:{path}"
    return Photo(path, label, sha)


def fixture_photos() -> list[Photo]:
    return [photo(item.path, item.label) for item in folder_items(FIXTURES / "bears")]


def features(model: BearNet, photos: list[Photo]) -> FeatureTable:
    return feature_table(model, photos, cache=None, device="cpu", batch_size=TINY.batch_size, max_pixels=40_000_000)


@dataclass(frozen=True)
class Trained:
    model: BearNet
    artifact_path: Path
    sha256: str
    table: FeatureTable


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    torch.set_num_threads(2)
    photos = fixture_photos()
    valid = [p for p in photos if p.path.stem.endswith("4")]
    train = [p for p in photos if p not in valid]
    zero_shot = build_zero_shot(load_backbone("efficientnet_lite0"), LABELS, image_size=TINY.image_size)
    table = features(zero_shot, photos)
    model = with_head(zero_shot, fit_examples(table, examples_of(train, TINY), LABELS, zero_shot.head, TINY))
    path, sha = export_model(model, train_items=train, valid_items=valid, cfg=TINY, out_dir=tmp_path_factory.mktemp("run"))
    return Trained(model, path, sha, table)


def test_training_exports_an_artifact(trained: Trained) -> None:
    assert trained.artifact_path.is_file() and len(trained.sha256) == 64
    assert trained.artifact_path.name == "model.safetensors" and learner_companion(trained.artifact_path).is_file()
    assert trained.model.labels == LABELS and trained.model.image_size == 96
    assert len(trained.table.row) == 12 and not trained.table.unreadable


def test_published_artifact_reloads_and_predicts(trained: Trained, tmp_path: Path) -> None:
    path, sha = publish(trained.artifact_path, tmp_path / "models")
    clf = load_classifier(
        artifact_path=path.name, sha256=sha, arch="efficientnet_lite0", labels=LABELS, version_id=5,
        models_dir=tmp_path / "models",
    )
    pred = clf.predict((FIXTURES / "bears" / "teddy" / "teddy1.jpg").read_bytes())
    assert pred.model_version == 5 and pred.label in LABELS
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_tampered_or_mislabelled_artifact_is_refused(trained: Trained, tmp_path: Path) -> None:
    path, sha = publish(trained.artifact_path, tmp_path / "models")
    with pytest.raises(ArtifactError, match="labels"):
        load_classifier(artifact_path=path, sha256=sha, arch="efficientnet_lite0", labels=("a", "b"), version_id=1)
    with path.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="refusing"):
        load_classifier(artifact_path=path, sha256=sha, arch="efficientnet_lite0", labels=LABELS, version_id=1)


def test_lean_path_equals_learn_predict(trained: Trained) -> None:
    from fastai.learner import load_learner

    learn = load_learner(learner_companion(trained.artifact_path), cpu=True)  # the export kept beside the weights
    lean = load_classifier(
        artifact_path=trained.artifact_path, sha256=trained.sha256, arch="efficientnet_lite0", labels=LABELS,
        version_id=None,
    )
    for path in sorted((FIXTURES / "bears").glob("*/*.jpg")) + sorted((FIXTURES / "not_bears").glob("*.jpg")):
        data = path.read_bytes()
        # The same decode as serving (a large JPEG is drafted down to the model's size): the pipelines are compared.
        label, _, probs = learn.predict(open_image(data, min_side=trained.model.image_size))
        ours = lean.predict(data)
        assert ours.label == label, path.name
        for i, name in enumerate(learn.dls.vocab):
            assert ours.probabilities[name] == pytest.approx(float(probs[i]), abs=1e-3), path.name


def test_evaluation_reports_metrics_and_plots(trained: Trained, tmp_path: Path) -> None:
    classifier = TorchClassifier(trained.model, version_id=None)
    metrics = evaluate_classifier(classifier, folder_items(FIXTURES / "bears"), out_dir=tmp_path)
    assert metrics["n"] == 12 and sum(map(sum, metrics["confusion_matrix"])) == 12
    assert set(metrics["per_class_accuracy"]) == set(LABELS)
    assert (tmp_path / CONFUSION_PNG).stat().st_size > 0 and (tmp_path / TOP_LOSSES_PNG).stat().st_size > 0
    json.dumps(metrics)  # storable in the model_versions.metrics JSON column


def test_cli_train_imports_the_folder_then_runs_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bearbot.cli import app

    data = tmp_path / "bears"
    shutil.copytree(FIXTURES / "bears", data)
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BEARBOT_IMAGE_SIZE", "96")
    monkeypatch.setenv("BEARBOT_TRAIN_BATCH_SIZE", "4")
    monkeypatch.setenv("BEARBOT_GOLDEN_FRACTION", "0.3")
    result = CliRunner().invoke(app, ["train", "--data", str(data)])
    assert result.exit_code == 0, result.output
    # The folder joins the dataset, then the one retrain pipeline runs, gate included: the zero-shot
    # model answers every golden photo of these easy fixtures right, so nothing can be fixed.
    assert "dataset import: added 12" in result.output and "Training run #1 finished" in result.output, result.output
    assert "serving model stays" in result.output


def test_cli_eval_scores_the_serving_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bearbot.cli import app

    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["eval", "--data", str(FIXTURES / "bears"), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert "model v1: error" in result.output and "on 12 images" in result.output and "confusion" in result.output
    assert (tmp_path / "eval" / CONFUSION_PNG).is_file()


def test_eval_takes_a_version_id_or_an_artifact_file(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model``: a recorded file loads under its version id; an unrecorded one only with --trust-file."""
    from typer.testing import CliRunner

    from bearbot.cli import app
    from bearbot.settings import load_settings
    from storage import model_versions
    from storage.store import open_storage

    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    data, copy = FIXTURES / "bears", tmp_path / "elsewhere.safetensors"
    shutil.copyfile(trained.artifact_path, copy)
    runner = CliRunner()
    refused = runner.invoke(app, ["eval", "--data", str(data), "--model", str(copy)])
    assert refused.exit_code == 1 and "pass --trust-file" in refused.output
    trusted = runner.invoke(app, ["eval", "--data", str(data), "--model", str(copy), "--trust-file"])
    assert trusted.exit_code == 0, trusted.output
    assert f"model {copy}: error" in trusted.output
    settings = load_settings()
    with open_storage(settings) as store, store.session() as session:
        final, sha = publish(trained.artifact_path, settings.models_dir)
        version = model_versions.create_version(
            session, artifact_path=final.name, sha256=sha, arch="efficientnet_lite0", labels=list(LABELS),
            metrics={}, activate=False,
        )
    recorded = runner.invoke(app, ["eval", "--data", str(data), "--model", str(copy)])
    assert recorded.exit_code == 0 and f"model v{version.id}: error" in recorded.output, recorded.output
    by_id = runner.invoke(app, ["eval", "--data", str(data), "--model", str(version.id)])
    assert by_id.exit_code == 0 and f"model v{version.id}: error" in by_id.output, by_id.output
    unknown = runner.invoke(app, ["eval", "--data", str(data), "--model", "99"])
    assert unknown.exit_code == 1 and "no model version 99" in unknown.output


def test_unreadable_training_images_are_skipped_not_fatal(tmp_path: Path) -> None:
    """A photo deleted after it was stored, or one that no longer decodes, is left out of the fit, not fatal."""
    photos = [p for p in fixture_photos() if not p.path.stem.endswith("4")]
    missing = photo(tmp_path / "gone.jpg", "black")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    zero_shot = build_zero_shot(load_backbone("efficientnet_lite0"), LABELS, image_size=TINY.image_size)
    table = features(zero_shot, [*photos, missing, photo(broken, "teddy")])
    assert sorted(map(str, table.unreadable)) == sorted([str(missing.path), str(broken)])
    assert len(table.row) == len(photos)
    examples = examples_of([*photos, missing, photo(broken, "teddy")], TINY)
    head = fit_examples(table, examples, LABELS, zero_shot.head, TINY)
    readable_only = fit_examples(table, examples_of(photos, TINY), LABELS, zero_shot.head, TINY)
    assert torch.allclose(head.weight, readable_only.weight, atol=1e-5)
