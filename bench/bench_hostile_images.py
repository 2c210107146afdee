"""Hostile uploads: time and peak memory of one decode, a plain full Pillow decode beside bearbot's.

Each case runs in a fresh process (peak RSS is per process), on files made here:

* a 16-bit greyscale PNG of 6000×6000 zeros (~70 KB: a decompression bomb),
* a 6000×4000 JPEG (24 MP, what a phone camera sends as a file),
* a 2560×1920 JPEG (the largest photo Telegram itself sends),
* a 2000×1500 16-bit PNG gradient (real 16-bit data, decoded in full by both).

"Pillow, in full" is ``Image.open(...)`` + ``load()`` + an 8-bit RGB conversion, what any decoder
without a policy does; "bearbot" is :func:`bearbot.imaging.open_image` with the default settings.

    .venv/bin/python bench/bench_hostile_images.py
"""

from __future__ import annotations

import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ["png16-bomb-6000", "jpeg-6000x4000", "jpeg-2560x1920", "png16-2000x1500"]


def make(case: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if case == "png16-bomb-6000":
        Image.new("I;16", (6000, 6000), 0).save(buf, format="PNG", optimize=True)
    elif case == "png16-2000x1500":
        img = Image.new("I;16", (2000, 1500))
        img.putdata([(x * 37) % 65536 for x in range(2000 * 1500)])
        img.save(buf, format="PNG")
    else:
        width, height = (int(v) for v in case.removeprefix("jpeg-").split("x"))
        Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def one(path: str, how: str) -> dict[str, object]:
    """Decode one file in this process; report seconds, peak RSS growth and the outcome."""
    data = Path(path).read_bytes()
    from PIL import Image

    from bearbot.imaging import ImageError, open_image

    Image.MAX_IMAGE_PIXELS = None  # the plain decoder has no policy at all
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        if how == "pillow":
            img = Image.open(io.BytesIO(data))
            img.load()
            img = img.convert("I").point(lambda v: v * (255 / 65535)).convert("RGB") if img.mode.startswith("I") else img.convert("RGB")
        else:
            img = open_image(data)
        outcome = f"{img.width}x{img.height}"
    except ImageError as exc:
        outcome = f"refused: {exc}"
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"bytes": len(data), "seconds": seconds, "peak_mb": grown, "outcome": outcome}


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(one(sys.argv[1], sys.argv[2])))
        return
    print(f"{'file':<18} {'size':>8} | {'Pillow, in full':>24} | {'bearbot':>24} | bearbot's answer")
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    for case in CASES:
        path = folder / case
        path.write_bytes(make(case))  # made here, so the decoding process's peak is the decode's own
        row = {}
        for how in ("pillow", "bearbot"):
            out = subprocess.run([sys.executable, __file__, str(path), how], capture_output=True, text=True, check=True)
            row[how] = json.loads(out.stdout.strip().splitlines()[-1])
        fig = {h: f"{r['seconds'] * 1000:7.0f} ms {r['peak_mb']:6.0f} MB" for h, r in row.items()}
        size = f"{row['bearbot']['bytes'] / 1024:.0f} KB"
        print(f"{case:<18} {size:>8} | {fig['pillow']:>24} | {fig['bearbot']:>24} | {str(row['bearbot']['outcome'])[:70]}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
