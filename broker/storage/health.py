"""Is the database answering? One round trip, for `/ok?check_db=1` and `/metrics`."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping(engine: AsyncEngine) -> None:
    """Raises StoreUnavailable (the engine's outage hooks) when the database is away."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
