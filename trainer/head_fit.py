"""The label head refit on frozen features, pulled towards ImageNet's bear rows (L2-SP).

Two steps, both small: :func:`extract_features` runs the frozen body once over the images, with the
serving preprocessing (so the head learns exactly the features it will be served), and
:func:`fit_head` solves a weighted logistic regression whose penalty is the squared distance to the
zero-shot head, ``l2 · ‖W − W₀‖²`` (Li et al. 2018, "Explicit inductive bias for transfer learning
with convolutional networks"). The penalty is why a few hundred noisy web photos cannot drag the
head far from what ImageNet already knows, while a handful of corrections still can move it where
they agree. L-BFGS solves the convex problem to convergence: no learning rate, epochs or seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from bearbot.model_def import BearNet
from bearbot.preprocess import center_crop_resize, to_batch
from trainer.data import decoded_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Features:
    """Features of the readable images; ``kept`` indexes them into the paths asked for."""

    plain: torch.Tensor  # (N, D), on the CPU
    mirrored: torch.Tensor | None  # the same of the mirrored images, when asked for
    kept: list[int]
    unreadable: list[Path]


def extract_features(
    model: BearNet,
    paths: Sequence[Path],
    *,
    device: str,
    batch_size: int,
    max_pixels: int,
    flip: bool = False,
    progress: bool = False,
) -> Features:
    """Pooled body features of served-size centre crops (and of their mirror images if ``flip``).

    A file that is missing or no longer decodes is skipped and logged rather than failing the run.
    """
    model = model.to(device).eval()
    plain: list[torch.Tensor] = []
    mirrored: list[torch.Tensor] = []
    kept: list[int] = []
    unreadable: list[Path] = []
    with torch.inference_mode(), tqdm(total=len(paths), desc="features", unit="img", disable=not progress) as bar:
        for indices, images, bad in decoded_batches(paths, batch_size, max_pixels=max_pixels):
            bar.update(len(indices) + len(bad))
            for path in bad:
                log.warning("skipping unreadable training image %s", path)
            kept += indices
            unreadable += bad
            if not images:
                continue
            crops = [center_crop_resize(image, model.image_size) for image in images]
            batch = to_batch(crops, model.mean, model.std).to(device)
            plain.append(model.body(batch).float().cpu())
            if flip:
                mirrored.append(model.body(batch.flip(-1)).float().cpu())
    empty = torch.empty(0, model.head.in_features)
    return Features(
        plain=torch.cat(plain) if plain else empty,
        mirrored=(torch.cat(mirrored) if mirrored else empty) if flip else None,
        kept=kept,
        unreadable=unreadable,
    )


def fit_head(
    features: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    anchor: nn.Linear,
    *,
    l2: float,
    max_iter: int = 100,
) -> nn.Linear:
    """A new head minimising weighted cross-entropy + ``l2``·‖(W, b) − (W₀, b₀)‖², started at the anchor."""
    w0 = anchor.weight.detach().float().cpu()
    b0 = anchor.bias.detach().float().cpu()
    weight = w0.clone().requires_grad_(True)
    bias = b0.clone().requires_grad_(True)
    norm = weights / weights.sum()
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        fit = (F.cross_entropy(features @ weight.T + bias, targets, reduction="none") * norm).sum()
        loss = fit + l2 * ((weight - w0).pow(2).sum() + (bias - b0).pow(2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    head = nn.Linear(w0.shape[1], w0.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head.to(anchor.weight.device)
