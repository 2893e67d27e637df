"""crons

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # JSONB on Postgres, JSON text on SQLite (the `broker dev` store).
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _stamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.text("CURRENT_TIMESTAMP"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "crons",
        sa.Column("cron_id", sa.Uuid(), nullable=False),
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("on_run_completed", sa.Text(), nullable=True),
        sa.Column("payload", _json(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("metadata", _json(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("auth_user", _json(), nullable=True),
        sa.Column("next_run_date", sa.DateTime(timezone=True), nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.assistant_id"],
            name=op.f("fk_crons_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.thread_id"],
            name=op.f("fk_crons_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cron_id", name=op.f("pk_crons")),
    )
    op.create_index(op.f("ix_crons_enabled_next_run_date"), "crons", ["enabled", "next_run_date"])
    op.create_index(op.f("ix_crons_thread_id"), "crons", ["thread_id"])
    op.create_index(op.f("ix_crons_assistant_id"), "crons", ["assistant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_crons_assistant_id"), table_name="crons")
    op.drop_index(op.f("ix_crons_thread_id"), table_name="crons")
    op.drop_index(op.f("ix_crons_enabled_next_run_date"), table_name="crons")
    op.drop_table("crons")
