"""The classifier network. An importable module, so exported pickles never reference ``__main__``.

``BearNet`` = pretrained body → pooled features → two linear readers of the same features:

* ``head``: the label logits (what fastai trains; ``forward`` returns only these);
* ``imagenet_head``: the frozen ImageNet-1k classifier, used only to decide "is this a bear at all".

The label head starts from ImageNet's own rows for the labels it knows (grizzly → 294 brown bear,
black → 295 American black bear, teddy → 850 teddy bear), which with no training at all is the
zero-shot model v0.

"Is this a bear": the bear score is read from the same pooled features in the same pass, by the
frozen ImageNet head: the strongest logit among ImageNet's bear classes 294–297 and 850 (brown,
American black, ice, sloth and teddy bear), squashed by a sigmoid into 0..1 (monotone, so only the
threshold's scale changes). Chosen by ``bench/not_bear.py`` (issue 17) over the softmax mass on those
classes (the rule before), its ratio to the strongest non-bear class, the bear classes'
log-sum-exp and a logistic head on the frozen features trained on bears and pets. At the same
1 of 160 pets called a bear, tuned on ../shared/data/bears, it refuses 0 of 329 real bears there
and 3 of 416 in ../shared/data/bears-2019, where the mass refuses 1 and 9 and the learned head
0 and 14 (tuned on bears-2019 instead: 2 of 416 and 0 of 329). The numbers and the curve: the bench.

So the threshold is 0.88 (``BEARBOT_BEAR_THRESHOLD``; a bear logit of 2.0), the same for v0 and
trained models, since training refits only the label head and the body and ImageNet head stay
frozen (``trainer/train.py``). It is tuned for EfficientNet-Lite0's logits: another architecture
needs its own run of the bench. A 3-class model alone calls everything a bear.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from bearbot.backbone import IMAGENET_BEAR_CLASSES, IMAGENET_CLASS_FOR_LABEL, Backbone
from bearbot.settings import DEFAULT_SERVE_SIZE  # why 288: there

log = logging.getLogger(__name__)




class BearNet(nn.Module):
    """Body + label head + frozen ImageNet head; carries the facts serving needs to preprocess."""

    def __init__(
        self,
        body: nn.Module,
        head: nn.Linear,
        imagenet_head: nn.Linear,
        *,
        labels: Sequence[str],
        arch: str,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        bear_classes: Sequence[int] = IMAGENET_BEAR_CLASSES,
    ) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.imagenet_head = imagenet_head.requires_grad_(False)
        self.labels = tuple(labels)
        self.arch = arch
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.bear_classes = tuple(int(c) for c in bear_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Label logits (N, len(labels))."""
        return self.head(self.body(x))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Label logits and the bear score (:func:`bear_score`, 0..1), one pass."""
        features = self.body(x)
        return self.head(features), bear_score(self.imagenet_head(features), self.bear_classes)


def bearnet_splitter(model: BearNet) -> list[list[nn.Parameter]]:
    """The fastai ``splitter`` of the old whole-network recipe (body, then label head).

    Nothing trains with it now; it stays because learner pickles published before weights files
    (``.pkl`` versions, which still load) hold a reference to it by this name.
    """
    return [list(model.body.parameters()), list(model.head.parameters())]


def bear_score(imagenet_logits: torch.Tensor, bear_classes: Sequence[int] = IMAGENET_BEAR_CLASSES) -> torch.Tensor:
    """Sigmoid of the strongest bear-class ImageNet logit, per image (0..1; higher is more bear)."""
    return imagenet_logits[..., list(bear_classes)].amax(dim=-1).sigmoid()


def bear_mass(imagenet_logits: torch.Tensor, bear_classes: Sequence[int] = IMAGENET_BEAR_CLASSES) -> torch.Tensor:
    """Softmax probability mass on the bear classes: the score before issue 17, kept for the bench."""
    return imagenet_logits.softmax(dim=-1)[..., list(bear_classes)].sum(dim=-1)


def head_from_imagenet(imagenet_head: nn.Linear, labels: Sequence[str]) -> nn.Linear:
    """A label head whose rows are ImageNet's rows for the labels it knows.

    A label with no ImageNet class gets a zero row and zero bias (it starts as "no evidence"
    and learns from data); we log which ones, because such a label needs training to be useful.
    """
    head = nn.Linear(imagenet_head.in_features, len(labels))
    unknown: list[str] = []
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for row, label in enumerate(labels):
            cls = IMAGENET_CLASS_FOR_LABEL.get(label)
            if cls is None:
                unknown.append(label)
                continue
            head.weight[row] = imagenet_head.weight[cls]
            head.bias[row] = imagenet_head.bias[cls]
    if unknown:
        log.warning("labels %s have no ImageNet class; their head rows start at zero and need training", unknown)
    return head


def build_zero_shot(backbone: Backbone, labels: Sequence[str], *, image_size: int = DEFAULT_SERVE_SIZE) -> BearNet:
    """Model v0: the backbone with a label head made of ImageNet's rows; no training needed."""
    return BearNet(
        backbone.body,
        head_from_imagenet(backbone.imagenet_head, labels),
        backbone.imagenet_head,
        labels=labels,
        arch=backbone.arch,
        image_size=image_size,
        mean=backbone.mean,
        std=backbone.std,
    ).eval()
