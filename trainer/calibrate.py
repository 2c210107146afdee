"""Confidence that means what it says: one temperature for the label head, fit on held-out photos.

A head refit towards a few confident corrections tends to be over- or under-confident; dividing its
logits by a temperature T (Guo et al. 2017) changes no answer, only the percentages users read.
T is fit by minimising log-loss on photos no candidate trained on (the cross-fitted reviewed photos
and the valid split), and is folded into the head's weights, so serving needs no change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

MIN_PHOTOS = 20  # fewer held-out photos than this: keep T = 1 (too little to fit even one number)
BOUNDS = (0.25, 4.0)


@dataclass(frozen=True)
class Temperature:
    """The fitted temperature and what it did on the held-out photos."""

    value: float
    n: int
    nll_before: float | None = None
    nll_after: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).float()
    ece = 0.0
    edges = torch.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += float(inside.float().mean() * (confidence[inside].mean() - correct[inside].mean()).abs())
    return ece


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> Temperature:
    """The T in :data:`BOUNDS` minimising log-loss of ``softmax(logits / T)`` (golden-section search)."""
    n = len(labels)
    if n < MIN_PHOTOS:
        return Temperature(1.0, n)
    logits = logits.detach().float().cpu()

    def nll(t: float) -> float:
        return float(F.cross_entropy(logits / t, labels))

    lo, hi = (torch.log(torch.tensor(b)).item() for b in BOUNDS)
    ratio = (5**0.5 - 1) / 2
    for _ in range(60):  # the loss is convex in log T; 60 steps narrow the bracket below 1e-12
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(float(torch.exp(torch.tensor(a)))) < nll(float(torch.exp(torch.tensor(b)))):
            hi = b
        else:
            lo = a
    t = float(torch.exp(torch.tensor((lo + hi) / 2)))
    return Temperature(
        value=round(t, 4), n=n, nll_before=round(nll(1.0), 4), nll_after=round(nll(t), 4),
        ece_before=round(expected_calibration_error(logits.softmax(1), labels), 4),
        ece_after=round(expected_calibration_error((logits / t).softmax(1), labels), 4),
    )


def scaled(head: nn.Linear, temperature: float) -> nn.Linear:
    """A copy of ``head`` whose logits are ``head``'s divided by ``temperature``."""
    out = copy.deepcopy(head)
    with torch.no_grad():
        out.weight.div_(temperature)
        out.bias.div_(temperature)
    return out
