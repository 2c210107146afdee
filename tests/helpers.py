"""Small builders for test data."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(color: tuple[int, int, int] = (120, 80, 40), size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> bytes:
    """Encode a small solid image with a gradient (so perceptual hashes differ by colour/shape)."""
    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
