"""The learning benchmarks run end to end on a small folder (so they do not rot between uses)."""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture bears and their mirror images: 8 photos per label."""
    root = tmp_path_factory.mktemp("bears")
    for src in sorted((FIXTURES / "bears").glob("*/*.jpg")):
        (root / src.parent.name).mkdir(exist_ok=True)
        (root / src.parent.name / src.name).write_bytes(src.read_bytes())
        ImageOps.mirror(Image.open(src).convert("RGB")).save(root / src.parent.name / f"m-{src.name}", quality=90)
    return root


def test_learning_curve_two_cycles(photos: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bench import learning_curve

    torch.set_num_threads(2)
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(base=0.5, stream=0.25, partial=0.5, adversarial=1, cycles=2)
    result = learning_curve.one_seed(photos, 0, "adversarial", args)
    assert result.n_test == 6 and len(result.afters) == 2 and len(result.statuses) == 2
    assert all(status in ("succeeded", "rejected") for status in result.statuses), result.statuses
    assert 0 <= result.corrected <= result.wrong_in_stream
    assert result.never_worse == all(b <= a for a, b in pairwise([result.before, *result.afters]))
    assert "total adversarial" in learning_curve.summarize([result], "adversarial")


def test_recipe_sweep_prints_a_table(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import recipe_sweep

    torch.set_num_threads(2)
    argv = ["recipe_sweep", "--data", str(photos), "--seeds", "0", "--weights", "4", "--l2", "0.01",
            "--base", "0.5", "--stream", "0.25", "--variants", "all"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        recipe_sweep.main()
    out = capsys.readouterr().out
    assert "variant all, 1 seeds" in out
    assert out.count("| weight 4, λ 0.01, flip") == 2
