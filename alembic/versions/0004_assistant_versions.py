"""assistant versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # JSONB on Postgres, JSON text on SQLite (the `broker dev` store).
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "assistant_versions",
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("graph_id", sa.Text(), nullable=False),
        sa.Column("config", _json(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("context", _json(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("metadata", _json(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.assistant_id"],
            name=op.f("fk_assistant_versions_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assistant_id", "version", name=op.f("pk_assistant_versions")),
    )
    # Every existing assistant's current state becomes its version.
    op.execute(
        "INSERT INTO assistant_versions "
        "(assistant_id, version, graph_id, config, context, metadata, name, description, "
        "created_at) "
        "SELECT assistant_id, version, graph_id, config, context, metadata, name, description, "
        "updated_at FROM assistants"
    )


def downgrade() -> None:
    op.drop_table("assistant_versions")
