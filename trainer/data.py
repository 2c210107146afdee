"""Training items: (path, label) pairs, folder layouts, decoding in batches, and the fastai
``DataLoaders`` an exported learner carries.

Training itself works on features (:mod:`trainer.head_fit`); the ``DataLoaders`` only give the
exported ``Learner`` its pipeline — the book's ``DataBlock(ImageBlock, CategoryBlock)`` with
fastai's centred ``Resize``, exactly what serving does (``bearbot.preprocess``) — so that
``learn.predict`` on an exported model answers as the bot does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PIL import Image

from bearbot.imaging import DEFAULT_MAX_PIXELS, ImageError, image_files, open_image
from bearbot.labels import parse_labels
from bearbot.preprocess import fastai_item_tfms, read_item_image
from storage.models import ItemSource

if TYPE_CHECKING:
    from fastai.data.core import DataLoaders

class LabelledItem(Protocol):
    """Anything with a path and a label (``storage.dataset.DatasetEntry`` fits)."""

    @property
    def path(self) -> Path: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class LabelledImage:
    """One image file and its label."""

    path: Path
    label: str


def label_folders(root: Path) -> dict[str, Path]:
    """Label → folder for each visible sub-folder of ``root`` (the book's ``bears/`` layout);
    raises ValueError on bad names or fewer than two."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(f"{root} needs one sub-folder per label, at least two (e.g. {root}/grizzly/*.jpg)")
    labels = parse_labels(",".join(p.name for p in folders))
    if len(labels) != len(folders):
        raise ValueError("two sub-folders name the same label (names are compared in lower case)")
    return dict(zip(labels, folders, strict=True))


def folder_items(root: Path) -> list[LabelledImage]:
    """Images under ``root/<label>/``, sorted for determinism."""
    items = [LabelledImage(path, label) for label, folder in label_folders(root).items() for path in image_files(folder)]
    if not items:
        raise ValueError(f"{root} has no images in label sub-folders (expected {root}/<label>/*.jpg)")
    return items


def is_correction(item: LabelledItem) -> bool:
    """Whether ``item``'s label came from a user correction; items without a ``source`` are not."""
    return getattr(item, "source", None) == ItemSource.CORRECTION


def decoded_batches(
    paths: Sequence[Path], batch_size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[tuple[list[int], list[Image.Image], list[Path]]]:
    """Decode ``paths`` ``batch_size`` at a time, with the serving safety rules.

    Yields per batch: the indices (into ``paths``) of the images that decoded, those images, and
    the paths that are missing or do not decode — skipped, so one bad file never sinks a run.
    """
    for start in range(0, len(paths), batch_size):
        kept: list[int] = []
        images: list[Image.Image] = []
        unreadable: list[Path] = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                images.append(open_image(Path(paths[i]).read_bytes(), max_pixels=max_pixels))
                kept.append(i)
            except (ImageError, OSError):
                unreadable.append(Path(paths[i]))
        yield kept, images, unreadable


def as_pairs(items: Iterable[LabelledItem]) -> list[list[str]]:
    """fastai items: plain ``[path, label]`` lists (not tuples: fastai transforms map over tuples)."""
    return [[str(item.path), item.label] for item in items]


def make_dataloaders(
    train_items: Sequence[LabelledItem],
    valid_items: Sequence[LabelledItem],
    *,
    labels: Sequence[str],
    size: int,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: str,
    num_workers: int,
) -> DataLoaders:
    """``DataLoaders`` over explicit train / valid items, centre-cropped to ``size`` and normalised."""
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import IndexSplitter, ItemGetter, Normalize
    from fastai.vision.data import ImageBlock

    items = as_pairs(train_items) + as_pairs(valid_items)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(labels), sort=False)),  # model row order
        get_x=read_item_image,  # bearbot.preprocess: the bot can unpickle an exported learner
        get_y=ItemGetter(1),
        splitter=IndexSplitter(list(range(len(train_items), len(items)))),
        item_tfms=fastai_item_tfms(size),
        batch_tfms=[Normalize.from_stats(list(mean), list(std))],
    )
    return block.dataloaders(items, bs=batch_size, device=device, num_workers=num_workers)
