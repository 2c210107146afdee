"""The lean serving path: v0, bad images, preprocessing parity with fastai, threads, artifact checks."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bearbot.artifact import ArtifactError, publish, read_verified, sha256_file
from bearbot.backbone import weights_sha256
from bearbot.imaging import ImageError, decode
from bearbot.inference import TorchClassifier, load_classifier, load_for_settings
from bearbot.preprocess import center_crop_resize
from bearbot.settings import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")
GRIZZLY = FIXTURES / "bears" / "grizzly" / "grizzly1.jpg"


@pytest.fixture(scope="module")
def v0() -> TorchClassifier:
    torch.set_num_threads(2)
    return load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS, version_id=7
    )


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_v0_answers_with_the_full_contract(v0: TorchClassifier) -> None:
    pred = v0.predict(GRIZZLY.read_bytes())
    assert pred.label == "grizzly" and pred.model_version == 7
    assert set(pred.probabilities) == set(LABELS)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.confidence == max(pred.probabilities.values())
    assert pred.is_bear and 0.0 <= pred.bear_score <= 1.0 and pred.latency_ms > 0
    assert v0.labels == LABELS and v0.version_id == 7


def test_v0_refuses_other_backbone_weights() -> None:
    with pytest.raises(ArtifactError, match="refusing"):
        load_classifier(artifact_path=None, sha256="0" * 64, arch="efficientnet_lite0", labels=LABELS, version_id=1)


def test_load_for_settings_reads_row_fields(tmp_path: Path) -> None:
    class Row:
        id = 3
        artifact_path = None
        sha256 = weights_sha256()
        arch = "efficientnet_lite0"
        labels = list(LABELS)

    clf = load_for_settings(Row(), load_settings(data_dir=tmp_path, bear_threshold=0.2))
    assert clf.version_id == 3 and clf.bear_threshold == 0.2


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"hello, I am not a picture", "not an image"),
        (GRIZZLY.read_bytes()[:2000], "corrupt"),
    ],
)
def test_bad_bytes_raise_image_error(v0: TorchClassifier, data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        v0.predict(data)


def test_decompression_bomb_is_refused() -> None:
    small_limit = load_classifier(
        artifact_path=None, sha256=weights_sha256(), arch="efficientnet_lite0", labels=LABELS,
        version_id=None, max_pixels=1_000_000, optimize=False,
    )
    bomb = encode(Image.new("L", (2000, 2000)), "PNG")  # 4 Mpx, a few KB compressed
    with pytest.raises(ImageError, match="too large"):
        small_limit.predict(bomb)


def odd_modes() -> dict[str, bytes]:
    """The grizzly fixture re-encoded in modes and containers users send."""
    rgb = Image.open(GRIZZLY).convert("RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(200)
    grey16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "rgba_png": encode(rgba, "PNG"),
        "palette_png": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "grey16_png": encode(grey16, "PNG"),
        "grey_jpeg": encode(rgb.convert("L"), "JPEG"),
        "animated_gif": gif.getvalue(),
        "webp": encode(rgb, "WEBP"),
    }


ODD_KINDS = ["rgba_png", "palette_png", "grey16_png", "grey_jpeg", "animated_gif", "webp"]


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_odd_image_modes_are_classified(v0: TorchClassifier, kind: str) -> None:
    data = odd_modes()[kind]
    if kind == "grey16_png":
        assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pred = v0.predict(data)
    assert pred.label in LABELS and pred.is_bear


def test_exif_rotation_is_undone(v0: TorchClassifier) -> None:
    upright = Image.open(GRIZZLY).convert("RGB")
    # Stored rotated, with EXIF orientation 6 ("rotate 90° clockwise to view"), as phones do.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = v0.predict(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    plain = v0.predict(encode(upright, "JPEG", quality=95))
    assert rotated.label == plain.label
    assert rotated.probabilities["grizzly"] == pytest.approx(plain.probabilities["grizzly"], abs=0.02)


def test_a_big_jpeg_decodes_at_the_model_size_and_keeps_its_answer_and_facts(v0: TorchClassifier) -> None:
    """Serving decodes a large JPEG by DCT scaling (PIL draft) down to the smallest size whose shorter
    side still covers the model's input; the answer is the one the full decode gives, and the stored
    facts describe the photo as sent (upright), not the smaller raster."""
    size = v0.image_size
    for path in sorted((FIXTURES / "bears").rglob("*.jpg"))[:4]:
        photo = Image.open(path).convert("RGB")
        big = photo.resize((photo.width * 1400 // min(photo.size), photo.height * 1400 // min(photo.size)))
        data = encode(big, "JPEG", quality=92)
        full, drafted = decode(data), decode(data, min_side=size)
        assert 1.5 * size <= min(drafted.image.size) < 3 * size and min(drafted.image.size) <= min(full.image.size) // 2
        assert (drafted.info.width, drafted.info.height) == (full.info.width, full.info.height) == big.size
        assert drafted.info.sha256 == full.info.sha256
        want, got = v0.predict_images([full.image])[0], v0.predict_images([drafted.image])[0]
        assert (got.label, got.is_bear) == (want.label, want.is_bear)
        assert got.probabilities[got.label] == pytest.approx(want.probabilities[want.label], abs=0.05)
        assert v0.predict(data).label == want.label  # the lean path decodes with the draft itself
    turned = Image.open(GRIZZLY).convert("RGB").resize((1200, 900)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = decode(encode(turned, "JPEG", exif=exif.tobytes()), min_side=size)
    assert upright.image.width > upright.image.height and (upright.info.width, upright.info.height) == (1200, 900)
    small = encode(Image.open(GRIZZLY).convert("RGB"), "PNG")  # not a JPEG: decoded whole
    assert decode(small, min_side=64).image.size == Image.open(GRIZZLY).size


@pytest.mark.parametrize("size", [(301, 199), (199, 301), (224, 224), (97, 400)])
def test_center_crop_matches_fastai_validation_resize(size: tuple[int, int]) -> None:
    from fastai.vision.augment import Resize
    from fastai.vision.core import PILImage

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = np.asarray(center_crop_resize(img, 224))
    theirs = np.asarray(Resize(224)(PILImage(img), split_idx=1))
    assert np.array_equal(ours, theirs)


def test_worker_threads_get_the_same_answers(v0: TorchClassifier) -> None:
    blobs = [p.read_bytes() for p in sorted((FIXTURES / "bears").glob("*/*.jpg"))]
    sequential = [v0.predict(b).probabilities for b in blobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = [p.probabilities for p in pool.map(v0.predict, blobs * 2)]
    for a, b in zip(sequential * 2, threaded, strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_publish_is_versioned_and_tampering_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "export.pkl"
    src.write_bytes(b"pretend learner")
    first, sha = publish(src, tmp_path / "models")
    assert first.parent == tmp_path / "models" and sha == sha256_file(first)
    assert read_verified(first, sha) == b"pretend learner"
    assert not list((tmp_path / "models").glob(".publish-*"))  # no temp files left behind
    first.write_bytes(b"pretend learner, but altered")
    with pytest.raises(ArtifactError, match="refusing"):
        read_verified(first, sha)
    with pytest.raises(ArtifactError, match="does not exist"):
        read_verified(tmp_path / "missing.pkl", sha)


def test_predict_cli_uses_v0_and_reports_bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from bearbot.cli import app

    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    bad = tmp_path / "notes.txt"
    bad.write_text("not a photo")
    teddy = FIXTURES / "bears" / "teddy" / "teddy2.jpg"
    temple = FIXTURES / "not_bears" / "temple.jpg"
    result = CliRunner().invoke(app, ["predict", "--json", str(teddy), str(bad), str(temple)])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["path"] for line in lines] == [str(teddy), str(bad), str(temple)]
    assert lines[0]["label"] == "teddy" and lines[0]["is_bear"] and lines[0]["model_version"] == 1
    assert set(lines[0]["probabilities"]) == set(LABELS)
    assert "error" in lines[1] and lines[2]["is_bear"] is False
    text = CliRunner().invoke(app, ["predict", str(teddy), str(temple)])
    assert text.exit_code == 0 and "teddy" in text.output and "I don't see a bear" in text.output
