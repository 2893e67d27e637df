"""The async engine: one pool per process, sized by settings."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from broker.settings import Settings


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """An asyncpg engine whose JSONB columns are encoded with orjson."""
    options: dict[str, Any] = {
        # No overflow: overflow connections are closed on return, and a new Postgres
        # connection (fork + asyncpg's type introspection) costs milliseconds.
        "pool_size": settings.db_pool_size,
        "max_overflow": 0,
        # A pre-ping costs three round trips per checkout; recycling old connections is enough.
        "pool_recycle": 1800,
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
    }
    options.update(overrides)
    return create_async_engine(settings.async_database_url, **options)
