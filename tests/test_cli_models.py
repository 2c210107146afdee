"""``bearbot models``, and the refusals of the commands that pick a model or train: one line, exit 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bearbot.cli import app
from storage import model_versions
from storage.store import Storage

SHA = "a" * 64


def _version(storage: Storage, *, activate: bool, artifact: str | None = None) -> int:
    with storage.session() as s:
        return model_versions.create_version(
            s, artifact_path=artifact, sha256=SHA, arch="efficientnet_lite0", labels=["grizzly", "black", "teddy"],
            metrics={"golden_error": 0.05}, activate=activate,
        ).id


def test_list_marks_the_active_version_with_its_golden_error(storage: Storage) -> None:
    _version(storage, activate=True)
    second = _version(storage, activate=False, artifact="model-1.safetensors")
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " v" in line]
    assert lines[0].startswith("* v1 ") and "golden error 5.00%" in lines[0] and "(built-in zero-shot)" in lines[0]
    assert lines[1].startswith(f"  v{second} ") and "model-1.safetensors" in lines[1]


def test_activate_then_rollback(storage: Storage) -> None:
    first = _version(storage, activate=True)
    second = _version(storage, activate=False)
    runner = CliRunner()
    assert f"active model is now v{second}" in runner.invoke(app, ["models", "activate", str(second)]).output
    assert f"active model is now v{first}" in runner.invoke(app, ["models", "rollback"]).output
    with storage.session() as s:
        assert model_versions.get_active(s).id == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "activate", "99"], "no model version 99"),
        (["models", "rollback"], "nothing to roll back to"),
    ],
)
def test_refusals_are_one_line_and_exit_1(storage: Storage, args: list[str], message: str) -> None:
    _version(storage, activate=True)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and f"error: {message}" in result.output


def test_predict_without_an_active_version_says_how_to_choose_one(storage: Storage) -> None:
    """Versions exist but an admin deactivated them all: no silent fallback to v1, one line instead."""
    _version(storage, activate=False)
    result = CliRunner().invoke(app, ["predict", "photo.jpg"])
    assert result.exit_code == 1
    assert "error: no model version is active; activate one with `bearbot models activate ID`" in result.output


def test_train_without_a_dataset_says_how_to_get_one(storage: Storage) -> None:
    """The runner raises, the command prints the one line (to stderr) and exits 1; nothing is queued."""
    from storage import runs

    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1
    assert "error: There is no dataset to train on yet. Build one with `bearbot dataset build`" in result.output
    with storage.session() as s:
        assert runs.latest_run(s) is None
