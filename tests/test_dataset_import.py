"""``dataset import``: a label-per-folder tree with a broken file; splits stable across re-imports."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bearbot.cli import app
from bearbot.settings import load_settings
from storage.dataset import list_items
from storage.models import Split
from storage.store import Storage, open_storage
from tests.dataset_fakes import distinct_image, make_label_folder
from trainer.dataset_import import import_folder

LAYOUT = {"grizzly": list(range(1, 16)), "black": list(range(16, 31)), "teddy": list(range(31, 46))}


def _splits(storage: Storage) -> dict[str, tuple[str, Split]]:
    with storage.session() as s:
        return {e.sha256: (e.label, e.split) for e in list_items(s, images=storage.images)}


def test_import_verifies_dedups_and_reports_broken_files(storage: Storage, tmp_path: Path) -> None:
    root = make_label_folder(tmp_path / "bears", LAYOUT, broken=("teddy",))
    (root / "teddy" / "copy-of-1.jpg").write_bytes(distinct_image(1))  # grizzly (imported first) has these bytes
    (root / "teddy" / "recompressed-2.jpg").write_bytes(distinct_image(2, quality=50))
    (root / "grizzly" / "notes.txt").write_text("not an image")
    report = import_folder(storage, root, progress=False)
    assert report.outcomes == {"added": 45, "existing": 1, "near_duplicate": 1, "failed": 2}
    assert sorted(Path(p).name for p, _ in report.failures) == ["broken.jpg", "notes.txt"]
    labels = [label for label, _ in _splits(storage).values()]
    assert {label: labels.count(label) for label in LAYOUT} == {"grizzly": 15, "black": 15, "teddy": 15}


def test_golden_split_is_stable_across_reimports(tmp_path: Path) -> None:
    root = make_label_folder(tmp_path / "bears", LAYOUT, broken=("black",))
    first_store = open_storage(load_settings(data_dir=tmp_path / "one"))
    import_folder(first_store, root, progress=False)
    again = import_folder(first_store, root, progress=False)
    assert again.outcomes == {"existing": 45, "failed": 1}
    # A fresh database with the files in another order (as another machine might list them).
    second_store = open_storage(load_settings(data_dir=tmp_path / "two"))
    reordered = make_label_folder(tmp_path / "again", {k: v[::-1] for k, v in reversed(LAYOUT.items())})
    import_folder(second_store, reordered, progress=False)
    first, second = _splits(first_store), _splits(second_store)
    assert first == second
    assert {split for _, split in first.values()} == set(Split)  # 45 images reach every split
    first_store.close()
    second_store.close()


def test_import_rejects_a_folder_without_label_folders(storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="one sub-folder per label"):
        import_folder(storage, tmp_path / "flat", progress=False)


def test_cli_import_and_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_label_folder(tmp_path / "bears", {"grizzly": [1, 2, 3], "teddy": [4, 5]}, broken=("grizzly",))
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    imported = runner.invoke(app, ["dataset", "import", str(root)])
    assert imported.exit_code == 0, imported.output
    assert "dataset import: added 5, failed 1" in imported.output
    assert "broken.jpg: the image is corrupt or truncated" in imported.output

    stats = runner.invoke(app, ["dataset", "stats"])
    assert stats.exit_code == 0, stats.output
    lines = stats.output.strip().splitlines()
    assert lines[0].split() == ["label", "split", "source", "count"]
    assert "per label: grizzly 3, teddy 2" in lines and "per source: import 5" in lines
    assert lines[-1] == "total 5"

    flat = tmp_path / "flat"
    flat.mkdir()
    bad = runner.invoke(app, ["dataset", "import", str(flat)])
    assert bad.exit_code == 2 and "one sub-folder per label" in bad.output


def test_cli_stats_on_an_empty_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARBOT_DATA_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["dataset", "stats"])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1] == "total 0"


def test_import_skips_files_over_the_size_limit(tmp_path: Path) -> None:
    root = make_label_folder(tmp_path / "bears", {"grizzly": [1], "teddy": [2]})
    (root / "teddy" / "huge.jpg").write_bytes(distinct_image(3, size=(900, 800), quality=100))
    store = open_storage(load_settings(data_dir=tmp_path / "var", max_download_bytes=10_000))
    report = import_folder(store, root, progress=False)
    store.close()
    assert report.outcomes == {"added": 2, "failed": 1}
    assert report.failures[0][1].startswith("too large (")
