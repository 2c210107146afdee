"""``bearbot predict``, ``bearbot train``, ``bearbot eval``: the classifier from the command line.

Torch, fastai and the database load only inside the commands, so ``bearbot --help`` stays instant.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bearbot.cli.common import fail, settings_or_exit
from bearbot.cli.dataset_cmds import import_or_exit

OPTIMIZE_FROM = 50  # images per `predict` call from which the exported CPU graph is worth building


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
    """Classify photos with the active model (the zero-shot v1 when none is trained)."""
    import torch

    from bearbot.imaging import ImageError
    from storage.store import open_storage
    from trainer.evaluate import load_model

    settings = settings_or_exit()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    with open_storage(settings) as storage:
        try:
            # Exporting for speed costs seconds once; it pays off only over many images.
            classifier = load_model(storage, optimize=len(images) >= OPTIMIZE_FROM)
        except Exception as exc:  # noqa: BLE001 - one line for any load failure
            raise fail(str(exc)) from None
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
    from storage.models import RunStatus
    from storage.runs import describe_run
    from storage.store import open_storage
    from trainer.runner import run_now

    settings = settings_or_exit()
    if data is not None:
        import_or_exit(settings, data)
    with open_storage(settings) as storage:
        try:
            run = run_now(storage)
        except RuntimeError as exc:
            raise fail(str(exc)) from None
    typer.echo(describe_run(run))
    if run.status is RunStatus.FAILED:
        raise typer.Exit(1)


def eval_cmd(
    data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="Folder with one sub-folder per label."),
    model: str | None = typer.Option(None, "--model", help="Model version id or artifact path (default: active)."),
    trust_file: bool = typer.Option(False, "--trust-file", help="Load an artifact this system did not record."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the confusion-matrix and top-losses PNGs."),
) -> None:
    """Evaluate a model on every image under DATA/<label>/ through the serving path."""
    import torch

    from storage.store import open_storage
    from trainer.data import folder_items
    from trainer.evaluate import evaluate_classifier, load_model

    settings = settings_or_exit()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    with open_storage(settings) as storage:
        try:
            classifier = load_model(storage, model, trust_file=trust_file)
            items = folder_items(data)
        except (LookupError, RuntimeError, ValueError) as exc:
            raise fail(str(exc)) from None
    out_dir = out or settings.runs_dir / f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    metrics = evaluate_classifier(classifier, items, out_dir=out_dir)
    version = classifier.version_id
    print_metrics(f"model v{version}" if version is not None else f"model {model}", metrics)
    if metrics["unreadable"]:
        typer.echo(f"  {len(metrics['unreadable'])} unreadable file(s) skipped", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("predict")(predict_cmd)
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
