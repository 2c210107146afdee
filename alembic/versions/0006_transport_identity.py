"""users, predictions, training runs: which transport (Telegram, Discord, the console) an id belongs to

A Telegram user and a Discord user with the same number are two people: users are unique by
(transport, external_id), the column formerly called telegram_id. Existing rows are Telegram's.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _transport() -> sa.Column:
    return sa.Column("transport", sa.String(length=16), server_default="telegram", nullable=False)


def _defer_foreign_keys() -> None:
    """SQLite's batch mode copies ``users`` and drops the original, which the rows pointing at it
    forbid. Outside a transaction ``foreign_keys = OFF`` lifts that (the migration's connection is
    closed after it); inside one (earlier migrations wrote rows) only deferring works: the keys are
    checked at commit, when the copy is ``users`` again. Each pragma is a no-op where the other acts."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys = OFF")
        op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    _defer_foreign_keys()
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(_transport())
        batch_op.drop_constraint("uq_users_telegram_id", type_="unique")
        batch_op.alter_column("telegram_id", new_column_name="external_id", existing_type=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("users", schema=None) as batch_op:  # a second pass: the renamed column exists now
        batch_op.create_unique_constraint("uq_users_transport_external_id", ["transport", "external_id"])
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(_transport())
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_transport", sa.String(length=16), nullable=True))
    op.execute("UPDATE training_runs SET requested_transport = 'telegram' WHERE requested_chat_id IS NOT NULL")


def downgrade() -> None:
    _defer_foreign_keys()
    # Fails (unique telegram_id) if a Discord user and a Telegram user share a number: one id space again.
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("requested_transport")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("transport")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_transport_external_id", type_="unique")
        batch_op.alter_column("external_id", new_column_name="telegram_id", existing_type=sa.BigInteger(), existing_nullable=False)
        batch_op.drop_column("transport")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_users_telegram_id", ["telegram_id"])
