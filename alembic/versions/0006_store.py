"""store: long-term memory items and their embeddings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # JSONB on Postgres, JSON text on SQLite (the `broker dev` store).
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "store_items",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ttl_minutes", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("prefix", "key", name=op.f("pk_store_items")),
    )
    op.create_index(
        op.f("ix_store_items_prefix"),
        "store_items",
        ["prefix"],
        unique=False,
        postgresql_ops={"prefix": "text_pattern_ops"},
    )
    op.create_index(op.f("ix_store_items_expires_at"), "store_items", ["expires_at"], unique=False)
    op.create_table(
        "store_vectors",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("field_path", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prefix", "key"],
            ["store_items.prefix", "store_items.key"],
            name=op.f("fk_store_vectors_prefix_store_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("prefix", "key", "field_path", name=op.f("pk_store_vectors")),
    )


def downgrade() -> None:
    op.drop_table("store_vectors")
    op.drop_index(op.f("ix_store_items_expires_at"), table_name="store_items")
    op.drop_index(op.f("ix_store_items_prefix"), table_name="store_items")
    op.drop_table("store_items")
