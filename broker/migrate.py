"""Run Alembic migrations programmatically (the `broker migrate` command)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from broker.settings import Settings

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    """The project's Alembic config, pointed at `database_url` or DATABASE_URI."""
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "alembic"))
    config.attributes["database_url"] = database_url or Settings().async_database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
