"""per-user limits and trust in the database: rate_limits, user_trust; corrections by user

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What users' corrections earned before this table existed (storage/trust.py keeps it up to date).
_DECIDED = (
    "(SELECT o.label FROM corrections o WHERE o.image_id = c.image_id AND o.status = 'accepted' "
    "ORDER BY o.updated_at DESC, o.id DESC LIMIT 1)"
)
BACKFILL = f"""
INSERT INTO user_trust (user_id, first_seen, made, right_count, wrong_count, muted, updated_at)
SELECT u.id, u.created_at,
  (SELECT COUNT(*) FROM corrections c WHERE c.user_id = u.id),
  (SELECT COUNT(*) FROM corrections c WHERE c.user_id = u.id AND c.status <> 'rejected' AND c.label = {_DECIDED}),
  (SELECT COUNT(*) FROM corrections c WHERE c.user_id = u.id AND (c.status = 'rejected' OR c.label <> {_DECIDED})),
  FALSE, CURRENT_TIMESTAMP
FROM users u WHERE EXISTS (SELECT 1 FROM corrections c WHERE c.user_id = u.id)
"""


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject", "slot", name=op.f("pk_rate_limits")),
    )
    op.create_index(op.f("ix_rate_limits_slot"), "rate_limits", ["slot"], unique=False)
    op.create_table(
        "user_trust",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made", sa.Integer(), nullable=False),
        sa.Column("right_count", sa.Integer(), nullable=False),
        sa.Column("wrong_count", sa.Integer(), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("muted_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["muted_by"], ["users.id"], name=op.f("fk_user_trust_muted_by_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_trust_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_trust")),
    )
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_corrections_user_id"), ["user_id"], unique=False)
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_corrections_user_id"))
    op.drop_table("user_trust")
    op.drop_index(op.f("ix_rate_limits_slot"), table_name="rate_limits")
    op.drop_table("rate_limits")
