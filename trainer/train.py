"""Fine-tune a candidate model: the book's recipe with a head started from ImageNet's bear rows,
then WiSE-FT weight averaging with the zero-shot model (DESIGN.md: α = 0.5 was best on unseen photos).

Callable without the database: items are anything with ``.path`` and ``.label``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bearbot.backbone import load_backbone
from bearbot.inference import TorchClassifier
from bearbot.model_def import BearNet, average_weights, bearnet_splitter, build_zero_shot, serve_size_for
from bearbot.settings import Settings
from trainer.data import LabelledItem, make_dataloaders, split_by_content
from trainer.export import export_learner

if TYPE_CHECKING:
    from fastai.learner import Learner

log = logging.getLogger(__name__)

EXPORT_NAME = "learner.pkl"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tune."""

    epochs: int
    batch_size: int
    image_size: int  # training crop
    device: str
    serve_size: int | None = None  # validation / serving resize; None = serve_size_for(image_size)
    freeze_epochs: int = 1
    base_lr: float = 2e-3  # fastai's fine_tune default
    wise_alpha: float = 0.5  # weight of the fine-tuned weights in the average; 1.0 = plain fine-tune
    num_workers: int = 0
    seed: int = 42


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("BEARBOT_DEVICE=cuda but no CUDA GPU is available")
    return setting


def default_config(settings: Settings, device: str | None = None) -> TrainConfig:
    """Defaults per device; ``BEARBOT_TRAIN_*`` settings win when set.

    GPU: DESIGN.md's recipe, ``fine_tune(4)`` at bs 32. CPU (2 cores): ``fine_tune(1)`` at bs 16:
    the whole cycle on 280 photos takes 27 s on an idle 2-core machine (≈70 s when shared).
    Measured on 5 random 80/20 splits of ../shared/data/bears, served at 288 px with WiSE α = 0.5:
    1 epoch 0.91 % error, 3 epochs 1.21 % (zero-shot 1.21 %), so more CPU epochs buy nothing.
    """
    device = device or resolve_device(settings.device)
    gpu = device.startswith("cuda")
    return TrainConfig(
        epochs=settings.train_epochs or (4 if gpu else 1),
        batch_size=settings.train_batch_size or (32 if gpu else 16),
        image_size=settings.train_image_size,
        device=device,
        num_workers=8 if gpu else 0,  # on 2 CPU cores, loader workers only steal time from the model
    )


@dataclass
class TrainResult:
    """A trained, exported (but not yet published) candidate."""

    classifier: TorchClassifier  # serving wrapper around the trained model (version_id None)
    learner: Learner
    artifact_path: Path  # learn.export output; publish with bearbot.artifact.publish
    sha256: str
    arch: str
    labels: tuple[str, ...]
    config: TrainConfig
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> BearNet:
        return self.classifier.model


def _start_weights(model: BearNet, base: BearNet | None) -> None:
    # Continue from the serving model when it is compatible; otherwise start from zero-shot.
    if base is None:
        return
    if (base.labels, base.arch, type(base.body)) != (model.labels, model.arch, type(model.body)):
        log.info("serving model differs (labels/arch); starting from the zero-shot weights")
        return
    model.load_state_dict(base.state_dict())


def train_candidate(
    *,
    train_items: Sequence[LabelledItem],
    valid_items: Sequence[LabelledItem],
    labels: Sequence[str],
    settings: Settings,
    out_dir: Path,
    base: BearNet | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune, WiSE-average with zero-shot, export to ``out_dir/export/learner.pkl``.

    ``base`` (the serving model) is the starting point when its labels and arch match.
    With no ``valid_items``, ~15 % of ``train_items`` are held out by content hash.
    """
    import fastai.callback.all  # noqa: F401 - patches fine_tune, adds the progress bar / epoch table
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy, error_rate
    from fastai.torch_core import set_seed

    cfg = config or default_config(settings)
    labels = tuple(labels)
    started = time.perf_counter()
    if not valid_items:
        train_items, valid_items = split_by_content(list(train_items), 0.15, salt="valid")  # type: ignore[arg-type]
    if not train_items or not valid_items:
        raise ValueError("need at least one training and one validation image")

    backbone = load_backbone(settings.arch)
    serve_size = cfg.serve_size or serve_size_for(cfg.image_size)
    anchor = build_zero_shot(backbone, labels, image_size=serve_size)
    model = copy.deepcopy(anchor)
    _start_weights(model, base)
    set_seed(cfg.seed, reproducible=True)
    dls = make_dataloaders(
        train_items, valid_items, labels=labels, size=cfg.image_size,
        batch_size=min(cfg.batch_size, len(train_items)),  # fastai drops the last partial training batch
        valid_size=serve_size,
        mean=model.mean, std=model.std, device=cfg.device, num_workers=cfg.num_workers,
    )
    learn = Learner(
        dls, model, loss_func=CrossEntropyLossFlat(), metrics=[error_rate, accuracy],
        splitter=bearnet_splitter, path=out_dir, model_dir=".",
    )
    if progress:
        learn.fine_tune(cfg.epochs, base_lr=cfg.base_lr, freeze_epochs=cfg.freeze_epochs)
    else:
        with learn.no_bar(), learn.no_logging():
            learn.fine_tune(cfg.epochs, base_lr=cfg.base_lr, freeze_epochs=cfg.freeze_epochs)
    with learn.no_bar(), learn.no_logging():
        fine_tuned_valid = learn.validate()
        if cfg.wise_alpha < 1.0:
            average_weights(learn.model, anchor.to(cfg.device), cfg.wise_alpha)
        valid_loss, valid_error, _ = learn.validate()
    train_seconds = time.perf_counter() - started
    path, sha = export_learner(learn, out_dir / "export" / EXPORT_NAME)
    learn.model.eval()
    metrics = {
        "valid_error": float(valid_error),
        "valid_loss": float(valid_loss),
        "valid_error_before_wise": float(fine_tuned_valid[1]),
        "n_train": len(train_items),
        "n_valid": len(valid_items),
        "train_seconds": round(train_seconds, 1),
        "config": asdict(cfg),
    }
    classifier = TorchClassifier(
        learn.model, version_id=None, bear_threshold=settings.bear_threshold,
        max_pixels=settings.max_image_pixels, device=cfg.device,
    )
    return TrainResult(
        classifier=classifier, learner=learn, artifact_path=path, sha256=sha, arch=settings.arch,
        labels=labels, config=cfg, metrics=metrics,
    )
