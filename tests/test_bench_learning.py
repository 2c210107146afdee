"""The learning benchmarks run end to end on small folders (so they do not rot between uses)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another "source": the hard photos, filed by label (cinnamon black bears, brown grizzlies)."""
    root = tmp_path_factory.mktemp("stream")
    for src in sorted((FIXTURES / "hard").glob("*.jpg")):
        label = src.name.split("_")[0]
        (root / label).mkdir(exist_ok=True)
        shutil.copy(src, root / label / src.name)
    return root


def run_main(module: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    torch.set_num_threads(2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        module.main()  # type: ignore[attr-defined]
    return capsys.readouterr().out


def test_learning_curve_cross_source(stream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import learning_curve

    argv = ["learning_curve", "--base", str(FIXTURES / "bears"), "--stream", str(stream), "--seeds", "0",
            "--stream-share", "0.6", "--cycles", "2", "--alpha", "1.0"]
    out = run_main(learning_curve, argv, capsys)
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+\d+/\d+", line)]
    assert len(rows) == 1 and all(("succeeded" in r or "rejected" in r) for r in rows), out
    assert "pooled unseen errors:" in out and "paired on unseen photos:" in out
    assert "promoted but worse on unseen photos:" in out


def test_learning_curve_corrects_one_confusion_only(stream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import learning_curve

    argv = ["learning_curve", "--base", str(FIXTURES / "bears"), "--stream", str(stream), "--seeds", "0-1",
            "--stream-share", "0.6", "--only", "black:grizzly", "--max-corrections", "1"]
    out = run_main(learning_curve, argv, capsys)
    corrected = [int(line.split()[5]) for line in out.splitlines() if re.match(r"\s*\d+\s+\d+/\d+", line)]
    assert len(corrected) == 2 and all(c <= 1 for c in corrected), out
    assert re.search(r"the corrected confusion on unseen photos \(black answered grizzly\): \d+ → \d+", out), out
    with pytest.raises(SystemExit):  # a confusion must name both sides
        run_main(learning_curve, ["learning_curve", "--only", "black"], capsys)


def test_near_duplicates_never_straddle_the_split() -> None:
    from bench import learning_curve as lc

    photos = [lc.Photo(Path(f"{i}.jpg"), "black", h, str(i)) for i, h in enumerate([0b0, 0b11, 0xFFFF0000, 0xFFFF0001])]
    for seed in range(5):
        a, b = lc.split_groups(photos, __import__("random").Random(seed), [0.5, 1.0])
        for part in (a, b):  # 0/1 and 2/3 are 2 and 1 bits apart: each pair on one side
            names = {p.sha256 for p in part}
            assert ({"0", "1"} <= names or not {"0", "1"} & names) and ({"2", "3"} <= names or not {"2", "3"} & names)


def test_recipe_sweep_prints_a_table(stream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import recipe_sweep

    argv = ["recipe_sweep", "--base", str(FIXTURES / "bears"), "--stream", str(stream), "--seeds", "1",
            "--correction-weights", "4", "--confirmation-weights", "0", "4", "--l2", "0.01", "--base-weights", "1"]
    out = run_main(recipe_sweep, argv, capsys)
    assert "zero-shot:" in out and out.count("| 4 | ") == 2


def test_correction_curve_prints_and_plots(stream: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import correction_curve

    png = tmp_path / "curve.png"
    argv = ["correction_curve", "--base", str(FIXTURES / "bears"), "--stream", str(stream), "--seeds", "2",
            "--label", "black", "--out", str(png)]
    out = run_main(correction_curve, argv, capsys)
    assert "| zero-shot, no training | 2 |" in out and "| every wrong answer, all classes | 2 |" in out
    assert png.stat().st_size > 0


def test_correction_curve_of_one_confusion_counts_its_cell(stream: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--said``: only black bears called grizzly are corrected, and that cell is a column of its own,
    never more than the black errors it is part of."""
    from bench import correction_curve

    argv = ["correction_curve", "--base", str(FIXTURES / "bears"), "--stream", str(stream), "--seeds", "2",
            "--label", "black", "--said", "grizzly", "--out", str(tmp_path / "cell.png")]
    out = run_main(correction_curve, argv, capsys)
    assert "corrections of 'black' called 'grizzly'" in out and "black→grizzly (of them)" in out
    header = next(line for line in out.splitlines() if line.startswith("| corrections per seed"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for line in out.splitlines():
        if line.startswith(("| zero-shot", "| 0 |", "| every wrong")):
            cells = [c.strip().split(" ")[0] for c in line.strip("|").split("|")]
            black, cell = int(cells[columns.index("true black errors")]), int(cells[columns.index("black→grizzly (of them)")])
            assert 0 <= cell <= black
    assert (tmp_path / "cell.png").stat().st_size > 0


def test_feature_ceiling_counts_every_confusion_per_folder(stream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cross-fitting over both folders answers every photo once: each confusion's cells add up, and the
    "all errors" row is the sum of the confusion rows, column by column."""
    from bench import feature_ceiling

    argv = ["feature_ceiling", "--folders", str(FIXTURES / "bears"), str(stream), "--folds", "2", "--l2", "0.01"]
    out = run_main(feature_ceiling, argv, capsys)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if "→" in line or "all errors" in line]
    assert rows[0][1:] == ["zero-shot (all there are to correct)", "ceiling, l2 = 0.01"], out
    sums = [re.fullmatch(r"(\d+) \+ (\d+) = (\d+)", cell) for row in rows[1:] for cell in row[1:]]
    assert all(m is not None and int(m[1]) + int(m[2]) == int(m[3]) for m in sums), out
    totals = [int(row[col].split("= ")[1]) for row in rows[1:-1] for col in (1, 2)]
    assert rows[-1][0] == "all errors" and int(rows[-1][1].split("= ")[1]) == sum(totals[0::2]), out
    assert int(rows[-1][2].split("= ")[1]) == sum(totals[1::2]), out


def test_ceiling_folds_hold_every_photo_once_and_near_duplicates_together() -> None:
    from bench import learning_curve as lc
    from bench.feature_ceiling import folds_of

    hashes = [0b0, 0b11, 0xFFFF0000, 0xFFFF0001, 0x0F0F0F0F, 0xF0F0F0F0F0, 0x123456789]
    photos = [lc.Photo(Path(f"{i}.jpg"), "black", h, str(i)) for i, h in enumerate(hashes)]
    for seed in range(5):
        folds = folds_of(photos, 3, __import__("random").Random(seed))
        names = [p.sha256 for fold in folds for p in fold]
        assert sorted(names) == sorted(p.sha256 for p in photos)  # each photo in exactly one fold
        assert max(map(len, folds)) - min(map(len, folds)) <= 2  # dealt evenly (a pair moves whole)
        for fold in folds:
            held = {p.sha256 for p in fold}
            assert ({"0", "1"} <= held or not {"0", "1"} & held) and ({"2", "3"} <= held or not {"2", "3"} & held)
