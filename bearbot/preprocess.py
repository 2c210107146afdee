"""Serving preprocessing: exactly what fastai does to a validation image, without fastai.

fastai's validation ``Resize(size)`` (method crop) takes the centred largest square
(top-left at ``int(0.5·(w−side))``), resizes it bilinearly with Pillow to ``size``×``size``;
``IntToFloatTensor`` divides by 255 and ``Normalize`` subtracts the mean and divides by the std.
The trainer's validation pipeline is built from :func:`fastai_item_tfms`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from bearbot.imaging import open_image, to_rgb

if TYPE_CHECKING:
    import torch


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre square crop then bilinear resize to ``size``×``size`` (fastai ``Resize`` at validation)."""
    w, h = img.size
    side = min(w, h)
    left, top = int(0.5 * (w - side)), int(0.5 * (h - side))
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)


def to_array(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stack same-size RGB images into a normalised float32 batch (N, 3, H, W).

    NumPy, not torch: the same float32 operations in the same order (bit-identical results), but
    no torch thread pool wakes for them, whose threads then compete with the runtime's for the two
    cores; on one photo at serving size this saved ~1.7 ms of ~18 (an interleaved A/B of
    ``lean.predict`` on 100 ``bears-2019`` photos; ``bench/bench_serving.py`` times the whole path).
    """
    arr = np.stack([np.asarray(img, dtype=np.uint8) for img in images]).transpose(0, 3, 1, 2).astype(np.float32, order="C")
    arr /= np.float32(255.0)
    arr -= np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    arr /= np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return arr


def to_batch(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """:func:`to_array` as a torch tensor (the eager model, training and evaluation)."""
    import torch

    return torch.from_numpy(to_array(images, mean, std))


def read_item_image(item: object) -> Image.Image:
    """fastai ``get_x`` for [path, label] items or bare paths: decode with the same safety rules.

    It lives in the shared package because exported learners pickle a reference to it, and the
    bot (which never imports the trainer) must be able to unpickle them. ``item`` is typed
    ``object`` on purpose: fastcore evaluates the hint and cannot parse ``X | Y`` unions.
    """
    if isinstance(item, Image.Image):  # learn.predict(img) passes a decoded image through get_x
        return to_rgb(item)
    path = item[0] if isinstance(item, list | tuple) else item
    return open_image(Path(path).read_bytes())


def fastai_item_tfms(size: int) -> list:
    """fastai item transforms: a centred ``Resize(size)`` (= :func:`center_crop_resize`)."""
    from fastai.vision.augment import Resize

    return [Resize(size)]
