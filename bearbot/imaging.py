"""Safe image decoding shared by the store, the dataset tools and inference.

Pillow does the decoding; this module adds the policy: a pixel limit against decompression
bombs (larger JPEGs shrink while they decode, other formats are refused), EXIF rotation, the
first frame of animations, no float copies, and one error type (malformed EXIF included) with a
message a user can read.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

from bearbot.settings import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# A drafted JPEG keeps its shorter side at least this many times the model's input. At 1× a borderline
# answer moved on 1 of 100 photos per folder (upscaled to 1280 px); at 1.5× none did, and a 4:3 Telegram
# photo (1280×960) still decodes at half size.
DRAFT_MARGIN = 1.5
# File names worth offering to the decoder when walking a folder (the decoder still decides).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


class ImageError(ValueError):
    """The bytes are not an image we accept; ``str(exc)`` is a short user-facing reason."""


@dataclass(frozen=True)
class ImageInfo:
    """Facts about decoded image bytes, as stored in the ``images`` table."""

    sha256: str
    width: int
    height: int
    format: str
    phash: str
    size_bytes: int


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the image store's content address."""
    return hashlib.sha256(data).hexdigest()


def hash_fraction(hex_digest: str) -> float:
    """A number in [0, 1) fixed by a hex digest: the content-hash bucket that splits data stably."""
    return int(hex_digest[:16], 16) / 2**64


def visible_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (recursively) whose name does not start with a dot, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """The :func:`visible_files` under ``folder`` with an image suffix."""
    return [p for p in visible_files(folder) if p.suffix.lower() in IMAGE_SUFFIXES]


def _decode(
    data: bytes, *, max_pixels: int, max_side: int, min_side: int | None = None
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode once into an upright RGB image at most ``max_side`` px long; return it, the format and
    the upright size of the image as sent.

    A JPEG larger than that is shrunk by the decoder itself (DCT scaling, 1/2 to 1/8), so its
    full-size raster never exists; larger images in other formats are refused before decoding.
    With ``min_side`` (the model's input size), a JPEG is decoded at the smallest such scale that keeps
    its shorter side at least :data:`DRAFT_MARGIN` times that long: the model sees a centre crop resized
    to that size anyway, and a 1280-px phone photo decodes in well under half the time
    (``bench/bench_serving.py``'s draft rows).
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (we decide ourselves) and about every odd EXIF tag
            # (a hostile file would write many log lines); the outcome is all that counts.
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "?"
            if fmt not in ALLOWED_FORMATS:
                raise ImageError(f"unsupported image format {fmt}")
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(f"the image is too large ({width}×{height} pixels; limit {max_pixels:,})")
            longest = max(width, height)
            # Lower bounds for the decoded size; the decoder picks the smallest DCT scale at least as big.
            scales: list[float] = []
            if longest > max_side:
                if fmt not in ("JPEG", "MPO") or longest > 8 * max_side:
                    raise ImageError(
                        f"the image is too large ({width}×{height} pixels; at most {max_side} px on the long side"
                        f"{'' if fmt in ('JPEG', 'MPO') else ' unless it is a JPEG photo'})"
                    )
                scales.append(max_side / 2 / longest)  # half the limit: the scale picked is then at most the limit
            if min_side is not None and fmt in ("JPEG", "MPO") and min(width, height) >= 2 * DRAFT_MARGIN * min_side:
                scales.append(DRAFT_MARGIN * min_side / min(width, height))
            if scales:
                scale = max(scales)
                img.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
            img.seek(0)  # animated GIF/WebP: the first frame
            img.load()
            if max(img.size) > max_side:  # a decoder that ignored the draft request
                img.thumbnail((max_side, max_side), Image.BILINEAR)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageError("this is not an image I can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise ImageError("the image is corrupt or truncated") from None
    except Exception as exc:  # noqa: BLE001 - any other decoder failure is still this one file's fault
        raise ImageError(f"the image could not be decoded ({type(exc).__name__})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" warnings: one hostile file, many log lines
            turned = (img.width, img.height)
            img = ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - fuzzed EXIF raises struct/Type/Key/ZeroDivision errors
        raise ImageError(f"its EXIF metadata is malformed ({type(exc).__name__})") from None
    sent = (width, height) if img.size == turned else (height, width)  # a 90° EXIF turn swaps the sides
    return to_rgb(img), fmt, sent


def open_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE, min_side: int | None = None
) -> Image.Image:
    """Decode ``data`` into an upright RGB image (first frame) or raise :class:`ImageError`; ``min_side``
    lets a large JPEG decode smaller, its shorter side still at least that long (serving)."""
    return _decode(data, max_pixels=max_pixels, max_side=max_side, min_side=min_side)[0]


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode (RGBA, P, L, I;16, CMYK…) to RGB; transparency is flattened onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the brightest value to 255 instead of clipping to white. Pillow
        # applies the linear map in C on 32-bit integers: no float copy of the image.
        img = img.convert("I") if img.mode != "I" else img
        hi = img.getextrema()[1]
        scale = 255.0 / hi if isinstance(hi, int | float) and hi > 0 else 1.0
        img = img.point(lambda v: v * scale).convert("L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def perceptual_hash(img: Image.Image) -> str:
    """64-bit difference hash as 16 hex chars; near-identical photos differ in few bits."""
    return str(imagehash.dhash(img))


def hash_distance(a: int, b: int) -> int:
    """Hamming distance between two :func:`perceptual_hash` values read as ints (``int(phash, 16)``)."""
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class Decoded:
    """One upload decoded once: the image to classify and the facts to store."""

    image: Image.Image
    info: ImageInfo


def decode(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE, min_side: int | None = None
) -> Decoded:
    """Decode ``data`` once and describe it (raises :class:`ImageError`); ``min_side`` as for :func:`open_image`
    (the facts describe the image as sent either way)."""
    img, fmt, (width, height) = _decode(data, max_pixels=max_pixels, max_side=max_side, min_side=min_side)
    info = ImageInfo(
        sha256=sha256_hex(data), width=width, height=height, format=fmt,
        phash=perceptual_hash(img), size_bytes=len(data),
    )
    return Decoded(img, info)


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE) -> ImageInfo:
    """Verify ``data`` decodes and describe it (raises :class:`ImageError`)."""
    return decode(data, max_pixels=max_pixels, max_side=max_side).info
