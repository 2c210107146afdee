"""Train a candidate model: the zero-shot model with its label head refit on the dataset.

The body stays frozen as ImageNet trained it; the label head — ImageNet's bear rows in v0 — is
refit by L-BFGS on the body's features of every training photo and its mirror image, at the serving
size, with an L2 pull towards ImageNet's rows (:mod:`trainer.head_fit`). A user correction weighs
as much as several search/import photos. Every run starts from zero-shot again and sees the whole
dataset, so cycles add data but never compound drift. Why this recipe and not the book's
``fine_tune``: fine-tuning the body on a few hundred noisy web photos made unseen photos worse
(../shared/DESIGN.md), while a pulled head cannot forget what ImageNet knows and costs one forward
pass per photo. The measurements behind each number are in bench/README.md, with the commands.

Callable without the database: items are anything with ``.path`` and ``.label`` (and ``.source``,
which marks user corrections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bearbot.model_def import DEFAULT_SERVE_SIZE, BearNet
from bearbot.settings import Settings
from trainer.data import LabelledItem, is_correction, make_dataloaders
from trainer.export import export_learner
from trainer.features import FeatureTable
from trainer.head_fit import fit_head

EXPORT_NAME = "model.safetensors"  # the fastai learner goes beside it (trainer/export.py)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one head refit (the defaults are the measured recipe, module docstring)."""

    batch_size: int  # images per feature-extraction batch
    device: str
    image_size: int = DEFAULT_SERVE_SIZE  # features are extracted, and the model served, at this size
    head_l2: float = 0.01  # pull towards ImageNet's rows: l2 · ‖(W, b) − (W₀, b₀)‖²
    correction_weight: float = 4.0  # a user correction weighs this many search/import photos
    flip: bool = True  # also fit on the mirrored photos (same label)
    max_iter: int = 100  # L-BFGS iterations


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("BEARBOT_DEVICE=cuda but no CUDA GPU is available")
    return setting


def default_config(settings: Settings, device: str | None = None) -> TrainConfig:
    """The measured recipe on the settings' device, image size and batch size."""
    device = device or resolve_device(settings.device)
    gpu = device.startswith("cuda")
    return TrainConfig(
        batch_size=settings.train_batch_size or (64 if gpu else 16),
        device=device,
        image_size=settings.image_size,
    )


@dataclass(frozen=True)
class Example:
    """One training row: a photo's features (by sha256), its label and its weight."""

    sha256: str
    label: str
    weight: float


def examples_of(items: Sequence[LabelledItem], cfg: TrainConfig) -> list[Example]:
    """Training rows; a user's label (a correction, or a ✅ confirmation) weighs ``cfg.correction_weight``."""
    return [
        Example(i.sha256, i.label, cfg.correction_weight if is_correction(i) else 1.0) for i in items
    ]


def fit_examples(
    table: FeatureTable, examples: Sequence[Example], labels: Sequence[str], anchor: nn.Linear, cfg: TrainConfig
) -> nn.Linear:
    """The label head refit on ``examples`` (those with features; with their mirror images if ``cfg.flip``)."""
    index = {label: i for i, label in enumerate(labels)}
    usable = [e for e in examples if e.sha256 in table.row and e.label in index]
    if not usable:
        raise ValueError("no readable training image has a model label")
    rows = table.rows([e.sha256 for e in usable])
    x = table.plain[rows]
    y = torch.tensor([index[e.label] for e in usable])
    w = torch.tensor([e.weight for e in usable])
    if cfg.flip:
        x, y, w = torch.cat([x, table.mirrored[rows]]), torch.cat([y, y]), torch.cat([w, w])
    return fit_head(x, y, w, anchor, l2=cfg.head_l2, max_iter=cfg.max_iter)


def with_head(model: BearNet, head: nn.Linear) -> BearNet:
    """``model`` serving ``head`` instead of its own label head (same body, same ImageNet head)."""
    model.head = head.to(next(model.body.parameters()).device)
    return model


def export_model(
    model: BearNet,
    *,
    train_items: Sequence[LabelledItem],
    valid_items: Sequence[LabelledItem],
    cfg: TrainConfig,
    out_dir: Path,
) -> tuple[Path, str]:
    """Export ``model`` as a fastai learner (the artifact format the bot loads): (path, sha256).

    fastai's ``Learner`` carries the weights, the serving transforms and the vocab; nothing is fitted
    with it, so it gets no loss function or splitter.
    """
    from fastai.learner import Learner

    dls = make_dataloaders(
        train_items, valid_items or train_items[:1], labels=model.labels, size=cfg.image_size,
        batch_size=min(cfg.batch_size, len(train_items)), mean=model.mean, std=model.std,
        device=cfg.device, num_workers=0,
    )
    learn = Learner(dls, model, path=out_dir, model_dir=".")
    path, sha = export_learner(learn, out_dir / "export" / EXPORT_NAME)
    model.eval()
    return path, sha
