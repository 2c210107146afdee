"""Safe image decoding shared by the store, the dataset tools and inference.

Pillow does the decoding; this module adds the policy: a byte limit, a pixel limit against
decompression bombs, EXIF rotation, first frame of animations, and one error type with a
message a user can read.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})


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


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` into an upright RGB image (first frame) or raise :class:`ImageError`."""
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit and raises above twice that; we decide ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "?"
            if fmt not in ALLOWED_FORMATS:
                raise ImageError(f"unsupported image format {fmt}")
            if img.width * img.height > max_pixels:
                raise ImageError(
                    f"the image is too large ({img.width}×{img.height} pixels; limit {max_pixels:,})"
                )
            img.seek(0)  # animated GIF/WebP: the first frame
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageError("this is not an image I can read") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError("the image is corrupt or truncated") from None
    img = ImageOps.exif_transpose(img) or img
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode (RGBA, P, L, I;16, CMYK…) to RGB; transparency is flattened onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping to white.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype("uint8"), mode="L")
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


def hash_distance(a: str, b: str) -> int:
    """Hamming distance between two :func:`perceptual_hash` values."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Verify ``data`` decodes and describe it (raises :class:`ImageError`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            fmt = Image.open(io.BytesIO(data)).format or "?"
        except Exception:  # noqa: BLE001 - open_image below gives the precise reason
            fmt = "?"
    img = open_image(data, max_pixels=max_pixels)
    return ImageInfo(
        sha256=sha256_hex(data),
        width=img.width,
        height=img.height,
        format=fmt,
        phash=perceptual_hash(img),
        size_bytes=len(data),
    )
