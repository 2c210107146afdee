"""Frozen-body features of dataset photos, computed once per photo and kept on disk.

The body never changes (only the label head is refit), so a photo's features depend only on its
bytes, the body's weights and the serving crop. Caching them by image sha256 makes a retrain cost
one forward pass per *new* photo instead of one per photo in the dataset, and lets the gate refit
the head several times (cross-fitting) for the price of a few L-BFGS solves.

Files: ``<cache>/<arch>-<size>-<body hash>/<sha[:2]>/<sha>.npy``, a float32 array (2, D): the plain
centre crop and its mirror image. Written atomically; an unreadable entry is recomputed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from bearbot.atomic import atomic_path
from bearbot.backbone import state_dict_sha256
from bearbot.model_def import BearNet
from trainer.head_fit import extract_features

log = logging.getLogger(__name__)


class Photo(Protocol):
    """What features are taken of: a file and the sha256 of its bytes."""

    @property
    def path(self) -> Path: ...

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class FeatureTable:
    """Features of the photos that could be read; ``row[sha256]`` indexes ``plain``/``mirrored``."""

    plain: torch.Tensor  # (N, D) float32, CPU
    mirrored: torch.Tensor  # (N, D)
    row: dict[str, int]
    unreadable: list[Path]

    def rows(self, shas: Sequence[str]) -> list[int]:
        return [self.row[s] for s in shas]


class FeatureCache:
    """Per-photo feature files for one body and crop size."""

    def __init__(self, root: Path, model: BearNet) -> None:
        self.body_hash = state_dict_sha256(model.body)  # also tells whether another model shares this body
        self.dir = root / f"{model.arch}-{model.image_size}-{self.body_hash[:16]}"

    def _file(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / f"{sha256}.npy"

    def get(self, sha256: str) -> np.ndarray | None:
        path = self._file(sha256)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            log.warning("feature cache entry %s is unreadable; recomputing it", path)
            return None

    def put(self, sha256: str, value: np.ndarray) -> None:
        with atomic_path(self._file(sha256)) as tmp, open(tmp, "wb") as fh:  # a handle: np.save adds no suffix
            np.save(fh, value.astype(np.float32), allow_pickle=False)


def feature_table(
    model: BearNet,
    photos: Sequence[Photo],
    *,
    cache: FeatureCache | None,
    device: str,
    batch_size: int,
    max_pixels: int,
    progress: bool = False,
) -> FeatureTable:
    """Plain and mirrored features of every distinct photo, from the cache where it has them."""
    found: dict[str, np.ndarray] = {}
    missing: dict[str, Path] = {}
    for photo in photos:
        if photo.sha256 in found or photo.sha256 in missing:
            continue
        value = cache.get(photo.sha256) if cache is not None else None
        if value is not None:
            found[photo.sha256] = value
        else:
            missing[photo.sha256] = Path(photo.path)
    unreadable: list[Path] = []
    if missing:
        shas, paths = list(missing), list(missing.values())
        computed = extract_features(
            model, paths, device=device, batch_size=batch_size, max_pixels=max_pixels, flip=True, progress=progress
        )
        assert computed.mirrored is not None
        for k, index in enumerate(computed.kept):
            value = torch.stack([computed.plain[k], computed.mirrored[k]]).numpy()
            found[shas[index]] = value
            if cache is not None:
                cache.put(shas[index], value)
        unreadable = computed.unreadable
    shas = list(found)
    dim = model.head.in_features
    stacked = np.stack([found[s] for s in shas]) if shas else np.zeros((0, 2, dim), np.float32)
    tensor = torch.from_numpy(stacked)
    return FeatureTable(
        plain=tensor[:, 0].contiguous(), mirrored=tensor[:, 1].contiguous(),
        row={s: i for i, s in enumerate(shas)}, unreadable=unreadable,
    )


def readout(model: BearNet, head: nn.Linear | None = None) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``model.forward_all`` on body features instead of images (with ``head`` as its label head).

    A copy with an identity body, so whatever the model decides from its features (label logits,
    the bear score) is decided exactly as in serving, without running the body again.
    """
    view = copy.copy(model)  # shares the weights; only the module table below is its own
    view._modules = dict(model._modules)
    view.body = nn.Identity()
    if head is not None:
        view.head = head
    view.eval()

    def run(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            logits, score = view.forward_all(features.to(next(view.head.parameters()).device))
            return logits.float(), score.float()

    return run
