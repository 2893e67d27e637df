"""thread ttl

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 15:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("ttl_strategy", sa.Text(), nullable=True))
    op.add_column("threads", sa.Column("ttl_minutes", sa.Float(), nullable=True))
    op.add_column("threads", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("threads", "expires_at")
    op.drop_column("threads", "ttl_minutes")
    op.drop_column("threads", "ttl_strategy")
