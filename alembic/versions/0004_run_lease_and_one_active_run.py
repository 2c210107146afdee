"""training runs: a heartbeat lease and at most one queued-or-running run (per lane); model load errors

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lane", sa.String(length=32), server_default="train", nullable=False))
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("load_error", sa.Text(), nullable=True))
    # Older code could leave several queued/running rows: keep the oldest, fail the rest, so the
    # index below can be built.
    op.execute(
        f"UPDATE training_runs SET status = 'failed', error = 'superseded by an earlier active run (migration 0004)' "
        f"WHERE {ACTIVE} AND id > (SELECT MIN(id) FROM training_runs WHERE {ACTIVE})"
    )
    op.create_index(
        "uq_training_runs_one_active",
        "training_runs",
        ["lane"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_training_runs_one_active", table_name="training_runs")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("load_error")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("lane")
        batch_op.drop_column("heartbeat_at")
