"""corrections: when the user was told that a serving model learned their correction

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("learned_notice_at", sa.DateTime(timezone=True), nullable=True))
    # Corrections learned before this feature existed are not announced weeks late.
    op.execute(
        "UPDATE corrections SET learned_notice_at = CURRENT_TIMESTAMP WHERE learned_version_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.drop_column("learned_notice_at")
