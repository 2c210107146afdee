"""Fault suite, hostile input: decompression bombs, oversized photos, fuzzed EXIF, decode storms.

Every hostile file is made here, by the test: nothing large is kept in the repository.
"""

from __future__ import annotations

import io
import random
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bearbot.imaging import ImageError, open_image, to_rgb
from storage.models import Image as ImageRow
from tests.bot_harness import ADMIN, ALICE, BOB, RunningBot, bear
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures

# --- the files ---------------------------------------------------------------------------------------


def png16_bomb(side: int = 6000) -> bytes:
    """~70 KB of 16-bit PNG that decodes to side² pixels (the old path made a float64 copy of them)."""
    buf = io.BytesIO()
    Image.new("I;16", (side, side), 0).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def big_jpeg(width: int = 6000, height: int = 4000) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 60, 30)).save(buf, format="JPEG", quality=50)
    return buf.getvalue()


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    exif[0x010F], exif[0x0110], exif[0x0131] = "BearCam", "Model X", "fw 1.0"
    exif[0x011A], exif[0x011B], exif[0x0128] = 72.0, 72.0, 2
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 80, 40)).save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def fuzzed_exif(seed: int) -> bytes:
    """The JPEG above with 1–4 random bytes of its EXIF segment changed."""
    data = bytearray(_exif_jpeg())
    start = data.index(b"Exif\x00\x00") + 6
    end = start - 8 + int.from_bytes(data[start - 8 : start - 6], "big")
    rnd = random.Random(seed)
    for _ in range(rnd.randint(1, 4)):
        data[rnd.randrange(start, end)] = rnd.randrange(256)
    return bytes(data)


# Seeds whose EXIF made Pillow raise struct.error / TypeError / AttributeError outside the image
# error path (21 of seeds 0–2999 did; these are among them).
CRASHING_SEEDS = [24, 166, 753, 1039, 1090, 1260]


# --- decoding ----------------------------------------------------------------------------------------


def test_the_16bit_png_bomb_is_refused_before_it_is_decoded() -> None:
    data = png16_bomb()
    assert len(data) < 100_000
    started = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        open_image(data)
    assert time.perf_counter() - started < 0.5


def test_a_large_jpeg_is_shrunk_while_it_decodes() -> None:
    img = open_image(big_jpeg())
    assert max(img.size) <= 2560 and img.size[0] / img.size[1] == pytest.approx(1.5, rel=0.01)


def test_16bit_greyscale_is_scaled_without_a_float_copy() -> None:
    src = Image.new("I;16", (2000, 1500))
    src.putdata([(x * 37) % 4096 for x in range(2000 * 1500)])  # 12-bit values in a 16-bit image
    tracemalloc.start()
    try:
        img = to_rgb(src)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert img.mode == "RGB" and img.getextrema()[0][1] == 255  # the brightest value maps to white
    assert peak < 8_000_000, f"{peak / 1e6:.0f} MB of Python-visible copies (a float64 copy is 24 MB)"


def test_fuzzed_exif_is_one_refused_image_with_its_reason() -> None:
    reasons: set[str] = set()
    for seed in [*CRASHING_SEEDS, *range(300)]:
        try:
            open_image(fuzzed_exif(seed))
        except ImageError as exc:
            reasons.add(str(exc))
    assert any("EXIF" in r for r in reasons), reasons


def test_dataset_import_refuses_fuzzed_files_one_by_one(tmp_path: Path, storage: object) -> None:
    from trainer.dataset_import import import_folder

    root = tmp_path / "bears"
    for label in ("grizzly", "black"):
        (root / label).mkdir(parents=True)
        (root / label / f"{label}1.jpg").write_bytes(bear(label))
    for seed in CRASHING_SEEDS:
        (root / "black" / f"fuzzed{seed}.jpg").write_bytes(fuzzed_exif(seed))
    report = import_folder(storage, root, progress=False)  # type: ignore[arg-type]
    assert report.outcomes["added"] == 2
    assert len(report.failures) == len(CRASHING_SEEDS)
    assert all("EXIF" in reason for _, reason in report.failures), report.failures


# --- through the bot ---------------------------------------------------------------------------------


def test_the_bot_answers_hostile_files_and_stores_nothing(bot: RunningBot) -> None:
    bomb = bot.send(ALICE, document=png16_bomb(), mime_type="image/png", file_name="bomb.png")
    assert "too large" in bot.reply(bomb).text
    fuzzed = bot.send(BOB, photo=fuzzed_exif(CRASHING_SEEDS[0]))
    assert "EXIF" in bot.reply(fuzzed).text
    assert bot.db(lambda s: s.scalar(select(func.count()).select_from(ImageRow))) == 0


def test_one_decode_per_upload(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = Image.open

    def counting_open(fp: object, *args: object, **kwargs: object) -> Image.Image:
        opened.append(1)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    assert "%" in bot.reply(bot.send(ALICE, photo=bear("grizzly"))).text
    assert len(opened) == 1


def test_concurrent_decodes_are_bounded(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.services as services_module

    real = services_module.decode
    lock, now, peak = threading.Lock(), [0], [0]

    def slow_decode(data: bytes, **kwargs: object) -> object:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.3)
            return real(data, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(services_module, "decode", slow_decode)
    users = [{**ALICE, "id": 3000 + i} for i in range(6)]
    messages = [bot.send(user, photo=bear("black", 1 + i % 4)) for i, user in enumerate(users)]
    for message in messages:
        assert "%" in bot.reply(message).text
    assert peak[0] == bot.settings.max_concurrent_decodes == 2


def test_decodes_do_not_hold_up_other_users_commands(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """While decodes queue behind the bound, /help is answered at once (it never waits for a decode)."""
    import core.services as services_module

    real = services_module.decode
    monkeypatch.setattr(services_module, "decode", lambda data, **kw: (time.sleep(1.0), real(data, **kw))[1])
    for i in range(4):
        bot.send({**ALICE, "id": 4000 + i}, photo=bear("teddy", 1 + i % 4))
    started = time.monotonic()
    bot.reply(bot.send(ADMIN, text="/help"))
    assert time.monotonic() - started < 1.0
