"""Run Alembic migrations programmatically (the `broker migrate` command).

The migrations live in ./alembic at the top of the repository; `broker/migrations` is a
link to it, so an installed wheel carries them as package data and every install
(editable or not, any working directory) finds them at the same place.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from broker.errors import StoreUnavailable
from broker.settings import Settings
from broker.storage.engine import TRANSACTION_POOLER_ARGS, report_outages

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


def at_head(database_url: str | None = None) -> bool:
    """Whether the database's schema is at the latest migration (nothing is changed)."""
    config = alembic_config(database_url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    return asyncio.run(_current_heads(str(config.attributes["database_url"]))) == heads


def wait_for_head(timeout_seconds: float, database_url: str | None = None) -> bool:
    """Until the schema is at head (True), or `timeout_seconds` pass (False).

    What a Kubernetes initContainer runs before `api` and `worker` start, while the
    migrate Job upgrades: one process migrates, the others only wait for it.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            if at_head(database_url):
                return True
        except StoreUnavailable:
            pass  # Postgres not up yet: wait as for the migration
        if time.monotonic() >= deadline:
            return False
        time.sleep(2.0)


async def _current_heads(url: str) -> set[str]:
    pooled = Settings().database_pooler == "transaction"
    engine = create_async_engine(
        url, poolclass=NullPool, connect_args=TRANSACTION_POOLER_ARGS if pooled else {}
    )
    report_outages(engine)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_heads_of)
    finally:
        await engine.dispose()


def _heads_of(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
