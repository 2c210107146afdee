"""Fine-tune a candidate model: head started from ImageNet's bear rows, fastai ``fine_tune``,
user corrections repeated 8×, then WiSE-FT weight averaging with the zero-shot model (α = 0.5).

Callable without the database: items are anything with ``.path`` and ``.label`` (and ``.source``,
which marks user corrections). How the default was chosen — ``bench/recipe_sweep.py``: the
learning-curve setup of ``bench/learning_curve.py`` (per seed, ../shared/data/bears split per label
35 % imported base / 40 % stream sent through prediction + two-user corrections / 25 % test never
trained on or corrected), one retrain from the snapshot, the gate emulated on the golden split, 2 CPU
cores, 1 epoch (+1 frozen), bs 16. Test errors per seed (82 photos each) after the gate; loss = mean
test log-loss, which moves before a count does. Stream corrections per seed: s0 0, s1 4, s2 2, s3 3.

| recipe (α = 0.5 unless noted)          | s0 | s1 | s2 | s3 | total /328   | loss   | gate |
|----------------------------------------|----|----|----|----|--------------|--------|------|
| zero-shot (serving before the cycle)   | 2  | 1  | 2  | 3  | 8 (2.44 %)   | 0.0898 | –    |
| previous default: k=1, lr 2e-3         | 2  | 0  | 2  | 3  | 7 (2.13 %)   | 0.0833 | 4/4  |
| k=1, lr 2e-3, α = 0.7                  | 2  | 1  | 2  | 2  | 7            | 0.0885 | 1/4  |
| k=1, lr 2e-3, α = 1.0 (plain fine-tune)| 2  | 1  | 2  | 3  | 8 (rejected) | 0.1117 | 0/4  |
| k=4, lr 2e-3                           | 2  | 0  | 2  | 3  | 7            | 0.0828 | 3/4  |
| k=8, lr 2e-3                           | 2  | 0  | 1  | 3  | 6            | 0.0817 | 4/4  |
| k=16, lr 2e-3                          | 2  | 1  | 1  | 2  | 6            | 0.0833 | 3/4  |
| k=4, lr 2e-3, 2 epochs                 | 2  | 0  | 2  | 2  | 6            | 0.0851 | 3/4  |
| k=8, lr 1e-3                           | 2  | 0  | 2  | 3  | 7            | 0.0833 | 4/4  |
| k=8, lr 4e-3                           | 2  | 0  | 1  | 3  | 6            | 0.0797 | 4/4  |
| k=1, lr 8e-3                           | 2  | 0  | 2  | 3  | 7            | 0.0796 | 4/4  |
| **k=8, lr 8e-3 (default)**             | 2  | 0  | 1  | 3  | 6 (1.83 %)   | 0.0770 | 4/4  |
| k=8, lr 1.6e-2                         | 3  | 0  | 1  | 2  | 6, s0 worse  | 0.0729 | 4/4  |
| flip TTA on zero-shot / k=1 / k=8      | 2/1/1 | 1/0/0 | 2/2/2 | 3/3/3 | 8 / 6 / 6 | 0.0890 / 0.0823 / 0.0810 | – |

Fresh seeds 4, 5, 6 (246 photos, corrections 2, 1, 2), checked after choosing: zero-shot 1+4+1 = 6
(loss 0.0956); previous default 0+3+1 = 4 (0.0856); k=8 lr 2e-3 4 (0.0848); k=8 lr 4e-3 4 (0.0826);
**k=8 lr 8e-3 0+2+1 = 3 (0.0797)**. Over all 7 seeds: zero-shot 14/574, previous default 11/574,
default 9/574 (after/before 0.64), never worse on any seed. Training itself takes ~10 s on idle cores.

The real path, ``bench/learning_curve.py --variants all`` (bytes → traced serving model, ``run_now``
with snapshot, gate and publish), test errors before → after:

| recipe           | s0  | s1  | s2         | s3  | s4  | s5  | s6  | total /574 | run s |
|------------------|-----|-----|------------|-----|-----|-----|-----|------------|-------|
| previous default | 2→2 | 1→0 | 2→2 (rej.) | 3→3 | 1→0 | 4→3 | 1→1 | 14 → 11    | 9–12  |
| default          | 2→2 | 1→0 | 2→1        | 3→2 | 1→0 | 4→3 | 1→1 | 14 → 9     | 11–14 |

So corrections now lower unseen-photo error by about a third (after/before 0.64), never raise it,
but do not halve it: the 0–4 corrections a stream of ~130 photos yields fix few of the test errors.

Why: corrections are 0–4 photos among ~90, so unrepeated they barely move one epoch; repeated 8× they
weigh like a small class (16× starts to fail the gate). α = 0.5 is the only weight the gate (golden
log-loss) keeps accepting and has the lowest test loss at every k and epoch count tried, as DESIGN.md
found; 0.7 and 1.0 are kept out of the default. A second CPU epoch raises test loss (0.0851 vs 0.0828
at k=4) and fails the gate once. Flip test-time augmentation: −0.001 loss, one photo better on s0 and
one worse on s2, for 1.6× the serving latency (p50 8 → 13 ms a photo, traced, 2 cores): not used.
With a single epoch whose move is then halved by the averaging, a larger lr (8e-3, 4× fastai's) helps
on every seed; 1.6e-2 made seed 0 worse, so the default stops at 8e-3. Continuing from the serving
model vs from zero-shot cannot differ in a one-cycle benchmark (the serving model *is* zero-shot);
it stays as it was (continue from serving, always average towards zero-shot). The GPU default
(4 epochs, lr 2e-3) is DESIGN.md's and was not re-measured with corrections (no GPU in this session).
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
from trainer.data import LabelledItem, make_dataloaders, repeat_corrections, split_by_content
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
    correction_repeats: int = 8  # times each user correction is listed in the training set
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
    """Defaults per device; ``BEARBOT_TRAIN_*`` settings win when set (see the module docstring).

    GPU: DESIGN.md's recipe, ``fine_tune(4)`` at bs 32 and fastai's base_lr. CPU (2 cores):
    ``fine_tune(1)`` at bs 16 with base_lr 8e-3 — one epoch moves the weights less than four, and
    half the move is averaged away again (WiSE α = 0.5), so the single CPU epoch takes bigger steps.
    Corrections are repeated 8× on both (measured on CPU; the reason — a handful of corrections
    among ~90 photos — holds on any device). One CPU epoch, measured before corrections existed on
    5 random 80/20 splits served at 288 px, α = 0.5: 1 epoch 0.91 % error, 3 epochs 1.21 %
    (zero-shot 1.21 %); with corrections a second epoch raised test loss too (module docstring).
    """
    device = device or resolve_device(settings.device)
    gpu = device.startswith("cuda")
    return TrainConfig(
        epochs=settings.train_epochs or (4 if gpu else 1),
        batch_size=settings.train_batch_size or (32 if gpu else 16),
        image_size=settings.train_image_size,
        device=device,
        base_lr=2e-3 if gpu else 8e-3,
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
    n_train = len(train_items)
    train_items = repeat_corrections(train_items, cfg.correction_repeats)

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
        "n_train": n_train,
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
