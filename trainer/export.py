"""Export a trained learner: its weights as the serving artifact, the fastai learner beside them.

The bot loads only the weights file (tensors plus JSON facts, no code); ``learn.export``'s pickle
is written next to it (``x.learner.pkl``) for people who want fastai's ``load_learner``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bearbot.artifact import (
    ARTIFACT_SUFFIX,
    learner_companion,
    sha256_file,
    write_weights,
)
from bearbot.atomic import atomic_path

if TYPE_CHECKING:
    from fastai.learner import Learner


def export_learner(learn: Learner, dest: Path) -> tuple[Path, str]:
    """Write ``learn``'s model as a weights artifact at ``dest`` (``.safetensors``; another suffix is
    replaced) and its learner export beside it, atomically; return (weights path, sha256).

    Only fastai / bearbot objects may be inside the learner (no trainer callbacks), so it unpickles
    anywhere bearbot is installed.
    """
    from bearbot.inference import weights_of

    weights = dest if dest.name.endswith(ARTIFACT_SUFFIX) else dest.with_suffix(ARTIFACT_SUFFIX)
    tensors, facts = weights_of(learn.model)
    write_weights(tensors, facts, weights)
    companion = learner_companion(weights)
    with atomic_path(companion, prefix=".export-") as tmp:
        learn.export(tmp)
    return weights, sha256_file(weights)
