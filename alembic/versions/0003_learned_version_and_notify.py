"""corrections learned by a promoted model; users' opt-out of "your correction is learned" notices

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("learned_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_corrections_learned_version_id_model_versions", "model_versions", ["learned_version_id"], ["id"]
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_learned", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("notify_learned")
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.drop_constraint("fk_corrections_learned_version_id_model_versions", type_="foreignkey")
        batch_op.drop_column("learned_version_id")
