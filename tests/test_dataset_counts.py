"""`bearbot dataset stats` says when a correction relabelled an imported photo, so its counts add up."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from bearbot.cli import app
from storage import model_versions, snapshot
from storage.models import Correction, CorrectionStatus, DatasetItem, Split
from storage.users import upsert_user
from tests.dataset_fakes import make_label_folder

LAYOUT = {"grizzly": list(range(1, 8)), "black": list(range(8, 15)), "teddy": list(range(15, 22))}


def test_stats_names_the_imported_photo_a_correction_relabelled(tmp_path: Path) -> None:
    root = make_label_folder(tmp_path / "bears", LAYOUT)
    env = {"BEARBOT_DATA_DIR": str(tmp_path / "var")}
    runner = CliRunner()
    imported = runner.invoke(app, ["dataset", "import", str(root)], env=env)
    assert imported.exit_code == 0 and "added 21" in imported.output

    from bearbot.settings import load_settings
    from storage.store import open_storage

    storage = open_storage(load_settings(data_dir=tmp_path / "var"))
    with storage.session() as session:  # an admin says an imported grizzly is black; a model learns it
        item = session.scalar(select(DatasetItem).where(DatasetItem.label == "grizzly", DatasetItem.split == Split.TRAIN))
        admin = upsert_user(session, telegram_id=1, display_name="ada", is_admin=True)
        correction = Correction(
            image_id=item.image_id, user_id=admin.id, label="black", status=CorrectionStatus.ACCEPTED, reviewed_by=admin.id
        )
        session.add(correction)
        session.flush()
        version = model_versions.create_version(
            session, artifact_path=None, sha256="0" * 64, arch="efficientnet_lite0", labels=list(LAYOUT),
            metrics={}, activate=True,
        )
        snapshot.learn_corrections(session, correction_ids=[correction.id], version_id=version.id)
    storage.close()

    stats = runner.invoke(app, ["dataset", "stats"], env=env)
    assert stats.exit_code == 0, stats.output
    lines = stats.output.splitlines()
    assert "per source: correction 1, import 20" in lines
    assert "per label: black 8, grizzly 6, teddy 7" in lines
    assert any(line.startswith("source correction: 0 photos users sent, and 1 imported photo(s)") for line in lines)
    assert lines[-1] == "total 21"
