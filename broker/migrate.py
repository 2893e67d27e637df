"""Run Alembic migrations programmatically (the `broker migrate` command).

The migrations live in ./alembic at the top of the repository; `broker/migrations` is a
link to it, so an installed wheel carries them as package data and every install
(editable or not, any working directory) finds them at the same place.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from broker.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """The project's Alembic config, pointed at `database_url` or DATABASE_URI."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url or Settings().async_database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
