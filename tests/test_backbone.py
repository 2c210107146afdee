"""The offline backbone: key mapping, zero-shot reading of ImageNet's bear classes, other archs."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from bearbot.artifact import sha256_file
from bearbot.backbone import BackboneError, load_backbone, map_state_dict, weights_file, weights_sha256
from bearbot.inference import TorchClassifier
from bearbot.model_def import build_zero_shot
from bearbot.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ("grizzly", "black", "teddy")


def bear_fixtures() -> list[tuple[Path, str]]:
    return [(p, p.parent.name) for p in sorted((FIXTURES / "bears").glob("*/*.jpg"))]


@pytest.fixture(scope="module")
def backbone():
    torch.set_num_threads(2)
    return load_backbone()


def test_fixtures_cover_every_label() -> None:
    assert {label for _, label in bear_fixtures()} == set(LABELS)


def test_weights_sha256_is_the_package_file() -> None:
    assert weights_sha256() == sha256_file(weights_file())


def test_map_state_dict_checks_count_kind_and_shape() -> None:
    target = OrderedDict([("conv.weight", torch.zeros(2, 3)), ("conv.bias", torch.zeros(3))])
    good = OrderedDict([("_c.weight", torch.ones(2, 3)), ("_c.bias", torch.ones(3))])
    assert list(map_state_dict(good, target)) == ["conv.weight", "conv.bias"]
    with pytest.raises(BackboneError, match="does not fit"):
        map_state_dict(OrderedDict([("_c.weight", torch.ones(3, 2)), ("_c.bias", torch.ones(3))]), target)
    with pytest.raises(BackboneError, match="does not fit"):  # same shapes, swapped kinds
        map_state_dict(OrderedDict([("_c.bias", torch.ones(2, 3)), ("_c.weight", torch.ones(3))]), target)
    with pytest.raises(BackboneError, match="tensors"):
        map_state_dict(OrderedDict([("_c.weight", torch.ones(2, 3))]), target)


def test_reversed_package_weights_are_refused() -> None:
    import timm

    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    shuffled = OrderedDict(reversed(list(source.items())))
    with pytest.raises(BackboneError):
        map_state_dict(shuffled, timm.create_model("efficientnet_lite0", pretrained=False).state_dict())


def test_zero_shot_reads_imagenet_bear_classes(backbone) -> None:
    clf = TorchClassifier(build_zero_shot(backbone, LABELS), version_id=None)
    for path, label in bear_fixtures():
        pred = clf.predict(path.read_bytes())
        assert pred.label == label, path.name
        assert pred.confidence > 0.8, path.name


def test_a_shuffled_class_mapping_would_fail(backbone) -> None:
    # The same model with the head rows rotated (grizzly←295, black←850, teddy←294) gets every fixture wrong:
    # the fixtures really test that rows 294/295/850 mean what we say.
    model = build_zero_shot(backbone, LABELS)
    with torch.no_grad():
        model.head.weight.copy_(model.head.weight.roll(-1, dims=0))
        model.head.bias.copy_(model.head.bias.roll(-1, dims=0))
    clf = TorchClassifier(model, version_id=None)
    wrong = sum(clf.predict(p.read_bytes()).label != label for p, label in bear_fixtures())
    assert wrong == len(bear_fixtures())


def test_bear_score_separates_bears_from_non_bears(backbone) -> None:
    clf = TorchClassifier(build_zero_shot(backbone, LABELS), version_id=None, bear_threshold=Settings().bear_threshold)
    for path, _ in bear_fixtures():
        assert clf.predict(path.read_bytes()).is_bear, path.name
    for path in sorted((FIXTURES / "not_bears").glob("*.jpg")):
        pred = clf.predict(path.read_bytes())
        assert not pred.is_bear, path.name
        assert pred.bear_score < Settings().bear_threshold


def test_unknown_labels_start_at_zero_rows(backbone, caplog) -> None:
    model = build_zero_shot(backbone, ("grizzly", "panda"))
    assert torch.count_nonzero(model.head.weight[1]) == 0
    assert "panda" in caplog.text


def test_downloading_arch_fails_with_one_sentence_offline(monkeypatch) -> None:
    import huggingface_hub.constants

    # Skip the hub's retry back-off (≈45 s); the failure path is the same as with no network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackboneError) as info:
        load_backbone("resnet18")
    message = str(info.value)
    assert "resnet18" in message and "\n" not in message


def test_unknown_arch_is_named() -> None:
    with pytest.raises(BackboneError, match="no_such_net"):
        load_backbone("no_such_net")
