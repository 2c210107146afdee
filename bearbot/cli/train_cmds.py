"""``bearbot predict``, ``bearbot train``, ``bearbot eval``: the classifier from the command line.

Torch, fastai and the database load only inside the commands, so ``bearbot --help`` stays instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bearbot.cli.common import fail, settings_or_exit
from bearbot.settings import Settings

if TYPE_CHECKING:
    from bearbot.inference import TorchClassifier
    from storage.store import Storage


OPTIMIZE_FROM = 50  # images per `predict` call from which the traced CPU model is worth building


@dataclass(frozen=True)
class VersionRow:
    """A model version's fields, copied out of the DB session (``bearbot.inference.VersionFields``)."""

    id: int
    artifact_path: str | None
    sha256: str
    arch: str
    labels: list[str]


def _row(version: Any) -> VersionRow:
    return VersionRow(version.id, version.artifact_path, version.sha256, version.arch, list(version.labels))


def active_version(storage: Storage) -> VersionRow:
    """The active model version; the built-in zero-shot v0 is recorded and activated when none exists."""
    from storage import model_versions

    with storage.session() as session:
        active = model_versions.ensure_serving(session, storage.settings)
        if active is None:  # versions exist but none is active (all deactivated by hand)
            raise RuntimeError("no model version is active; activate one with `bearbot models activate ID`")
        return _row(active)


def version_for_ref(storage: Storage, ref: str, *, trust_file: bool) -> VersionRow:
    """``--model`` value → a version: a version id, or an artifact path (recorded, or trusted by the user)."""
    from bearbot.artifact import sha256_file
    from storage import model_versions

    with storage.session() as session:
        if ref.isdigit():
            version = model_versions.get_version(session, version_id=int(ref))
            if version is None:
                raise RuntimeError(f"no model version {ref}")
            return _row(version)
        path = Path(ref)
        if not path.is_file():
            raise RuntimeError(f"{ref} is neither a model version id nor a file")
        sha = sha256_file(path)
        for version in model_versions.list_versions(session):
            if version.sha256 == sha and version.artifact_path is not None:
                return VersionRow(version.id, str(path.resolve()), sha, version.arch, list(version.labels))
    if not trust_file:
        raise RuntimeError(f"{ref} is not a model this system recorded; pass --trust-file to load it anyway (it is a pickle)")
    from bearbot.inference import model_from_learner_file

    model = model_from_learner_file(path, sha)
    return VersionRow(0, str(path.resolve()), sha, model.arch, list(model.labels))


def load_row(row: VersionRow, settings: Settings, *, optimize: bool = True) -> TorchClassifier:
    """Load a version as a classifier (sha256 checked before unpickling)."""
    from bearbot.inference import load_for_settings

    return load_for_settings(row, settings, optimize=optimize)


def _open(settings: Settings) -> Storage:
    from storage.store import open_storage

    return open_storage(settings)


def format_prediction(path: str, pred: Any) -> str:
    """One human line: ``photo.jpg: grizzly 97.1% (black 2.5%, teddy 0.4%)``."""
    others = sorted(((p, label) for label, p in pred.probabilities.items() if label != pred.label), reverse=True)
    rest = ", ".join(f"{label} {p:.1%}" for p, label in others)
    if not pred.is_bear:
        return f"{path}: I don't see a bear (bear score {pred.bear_score:.3f}; closest {pred.label} {pred.confidence:.1%})"
    return f"{path}: {pred.label} {pred.confidence:.1%} ({rest})"


def predict_cmd(
    images: list[Path] = typer.Argument(..., help="Image files to classify."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line per file."),
) -> None:
    """Classify photos with the active model (the zero-shot v0 when none is trained)."""
    import torch

    from bearbot.imaging import ImageError

    settings = settings_or_exit()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    storage = _open(settings)
    try:
        # Tracing for speed costs seconds once; it pays off only over many images.
        classifier = load_row(active_version(storage), settings, optimize=len(images) >= OPTIMIZE_FROM)
    except Exception as exc:  # noqa: BLE001 - one line for any load failure
        raise fail(str(exc)) from None
    finally:
        storage.close()
    failed = 0
    for path in images:
        try:
            pred = classifier.predict(path.read_bytes())
        except (ImageError, OSError) as exc:
            failed += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if as_json:
                typer.echo(json.dumps({"path": str(path), "error": reason}))
            else:
                typer.echo(f"error: {path}: {reason}", err=True)
            continue
        if as_json:
            typer.echo(json.dumps({
                "path": str(path), "label": pred.label, "confidence": round(pred.confidence, 6),
                "probabilities": {k: round(v, 6) for k, v in pred.probabilities.items()},
                "is_bear": pred.is_bear, "bear_score": round(pred.bear_score, 6),
                "model_version": pred.model_version, "latency_ms": round(pred.latency_ms, 2),
            }))
        else:
            typer.echo(format_prediction(str(path), pred))
    if failed:
        raise typer.Exit(1)


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    """Error rate, per-class accuracy and the confusion matrix as text."""
    typer.echo(f"{title}: error {metrics['error_rate']:.2%} on {metrics['n']} images")
    per_class = ", ".join(
        f"{label} {acc:.1%}" for label, acc in metrics["per_class_accuracy"].items() if acc is not None
    )
    typer.echo(f"  per class: {per_class}")
    names = metrics["labels"]
    width = max(len(n) for n in names) + 2
    typer.echo("  confusion (rows actual, columns predicted):")
    typer.echo("  " + " " * width + "".join(n.rjust(width) for n in names))
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        typer.echo("  " + name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    for key in ("confusion_png", "top_losses_png"):
        if key in metrics:
            typer.echo(f"  {key.removesuffix('_png').replace('_', ' ')}: {metrics[key]}")


def train_cmd(
    data: Path | None = typer.Option(
        None, "--data", exists=True, file_okay=False,
        help="Import this folder (one sub-folder per label) into the dataset first, as `dataset import` does.",
    ),
) -> None:
    """One training run on the dataset, exactly as /retrain runs it: gate included, promoted only if it passes.

    With --data, the folder's photos join the dataset first (verified, deduplicated, split by hash).
    """
    from trainer.runner import run_from_cli

    settings = settings_or_exit()
    if data is not None:
        from bearbot.cli.dataset_cmds import import_or_exit

        import_or_exit(settings, data)
    raise typer.Exit(run_from_cli(settings))


def eval_cmd(
    data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="Folder with one sub-folder per label."),
    model: str | None = typer.Option(None, "--model", help="Model version id or artifact path (default: active)."),
    trust_file: bool = typer.Option(False, "--trust-file", help="Load an artifact this system did not record."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the confusion-matrix and top-losses PNGs."),
) -> None:
    """Evaluate a model on every image under DATA/<label>/ through the serving path."""
    import torch

    from trainer.data import folder_items
    from trainer.evaluate import evaluate_classifier

    settings = settings_or_exit()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    storage = _open(settings)
    try:
        row = version_for_ref(storage, model, trust_file=trust_file) if model else active_version(storage)
        classifier = load_row(row, settings)
        items = folder_items(data)
    except (RuntimeError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        storage.close()
    out_dir = out or settings.runs_dir / f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    metrics = evaluate_classifier(classifier, items, out_dir=out_dir)
    print_metrics(f"model version {row.id}", metrics)
    if metrics["unreadable"]:
        typer.echo(f"  {len(metrics['unreadable'])} unreadable file(s) skipped", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("predict")(predict_cmd)
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
