"""The head refit (L2-SP logistic regression) on small synthetic features: weights and the pull work."""

from __future__ import annotations

import torch
from torch import nn

from trainer.data import is_correction
from trainer.head_fit import fit_head

# Two clusters the identity head already separates, plus one odd point labelled 0 that it calls 1.
_G = torch.Generator().manual_seed(0)
X = torch.cat([
    torch.tensor([1.0, 0.0]) + 0.1 * torch.randn(20, 2, generator=_G),
    torch.tensor([0.0, 1.0]) + 0.1 * torch.randn(20, 2, generator=_G),
    torch.tensor([[0.3, 0.5]]),
])
Y = torch.tensor([0] * 20 + [1] * 20 + [0])
ODD = X[-1:]


def identity_head() -> nn.Linear:
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    return head


def p_odd_is_0(correction_weight: float, l2: float) -> float:
    weights = torch.ones(len(Y))
    weights[-1] = correction_weight
    head = fit_head(X, Y, weights, identity_head(), l2=l2)
    with torch.no_grad():
        return float(head(ODD).softmax(dim=1)[0, 0])


def test_a_weighted_correction_moves_the_head_where_plain_data_does_not() -> None:
    assert identity_head()(ODD).argmax().item() == 1
    assert p_odd_is_0(1.0, l2=0.01) < 0.5  # one photo among forty: the head keeps its mind
    assert p_odd_is_0(4.0, l2=0.01) > 0.5  # weighed as four, the correction wins
    assert p_odd_is_0(4.0, l2=0.01) < p_odd_is_0(8.0, l2=0.01)


def test_the_pull_keeps_the_head_near_the_anchor() -> None:
    anchor = identity_head()
    loose = fit_head(X, Y, torch.ones(len(Y)), anchor, l2=0.01)
    tight = fit_head(X, Y, torch.ones(len(Y)), anchor, l2=100.0)
    assert (tight.weight - anchor.weight).abs().max() < 1e-2
    assert (loose.weight - anchor.weight).abs().max() > 0.3
    assert torch.equal(anchor.weight, torch.eye(2))  # the anchor itself is never changed


def test_corrections_are_recognised_by_source() -> None:
    class Item:
        def __init__(self, source: str | None) -> None:
            self.source = source

    assert is_correction(Item("correction"))
    assert not is_correction(Item("import")) and not is_correction(Item(None)) and not is_correction(object())
