"""pgvector on Postgres: the `vec` column, its HNSW index, and search ranked in SQL.

`store_vectors.embedding` (unit float32 bytes) stays the record every path writes and
reads, so ops can read every row with plain SQL and the portable path needs nothing
else. With the extension, `vec` holds the same vector as pgvector's type and search
orders by its cosine distance (`<=>`) in the database.

Why not an Alembic migration: the column's type is `vector(dims)`, and dims come from
langgraph.json (store.index.dims), which a migration does not read; and the
extension may be installed after the schema was. So the column and index are made at
start, idempotently (IF NOT EXISTS, under an advisory lock), and only there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, MetaData, Table, cast, literal_column, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import UserDefinedType

from broker.storage.tables import store_vectors

log = logging.getLogger(__name__)

INDEX_NAME = "store_vectors_vec_hnsw"
HOW_TO_ENABLE = (
    "install the pgvector extension on the Postgres server (e.g. the "
    "postgresql-<major>-pgvector package), then restart: the broker creates it"
)


class VectorType(UserDefinedType[Any]):
    """pgvector's `vector`: bound as its text form ('[0.1,0.2]'), cast in SQL."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


# store_vectors with `vec`, for inserts: a metadata of its own, Alembic never sees it.
VECTORS: Table = store_vectors.to_metadata(MetaData())
VECTORS.append_column(Column("vec", VectorType(), nullable=True))

# store_vectors.vec in a select that joins store_vectors itself (the metadata's table).
VEC = literal_column("store_vectors.vec", VectorType())

AVAILABLE = text("SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('langgraph-broker:store-pgvector'))")
_COLUMN_TYPE = text(
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'store_vectors'::regclass AND attname = 'vec' AND NOT attisdropped"
)
_INDEX = text(f"SELECT to_regclass('{INDEX_NAME}')")
_MISSING = text("SELECT prefix, key, field_path, embedding FROM store_vectors WHERE vec IS NULL")
_FILL = text(
    "UPDATE store_vectors SET vec = CAST(:vec AS vector) "
    "WHERE prefix = :prefix AND key = :key AND field_path = :field_path"
)


def as_text(vector: Sequence[float] | bytes) -> str:
    """A vector in pgvector's text form; float32 bytes read as they are stored."""
    values = memoryview(vector).cast("f") if isinstance(vector, bytes) else vector
    return "[" + ",".join(repr(float(x)) for x in values) + "]"


def ddl(dims: int) -> list[str]:
    """What start runs once the extension is there (each idempotent)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        f"ALTER TABLE store_vectors ADD COLUMN IF NOT EXISTS vec vector({int(dims)})",
        f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON store_vectors "
        "USING hnsw (vec vector_cosine_ops)",
    ]


async def prepare(conn: AsyncConnection, dims: int) -> str | None:
    """Makes the column and index in `conn`'s transaction and fills `vec` for rows
    written before; None when ready, else why pgvector is not used."""
    await conn.execute(_LOCK)  # one process at a time makes them
    existing = (await conn.execute(_COLUMN_TYPE)).scalar_one_or_none()
    if existing is not None and existing != f"vector({dims})":
        return (
            f"store_vectors.vec is {existing} but store.index.dims is {dims}; "
            "drop the column (ALTER TABLE store_vectors DROP COLUMN vec) to rebuild it"
        )
    # Only what is missing: ALTER TABLE and CREATE INDEX lock the table even when
    # IF NOT EXISTS finds nothing to do, and every process of the broker starts here.
    if existing is None:
        todo = ddl(dims)
    elif (await conn.execute(_INDEX)).scalar_one() is None:
        todo = ddl(dims)[2:]
    else:
        todo = []
    for statement in todo:
        await conn.execute(text(statement))
    missing = (await conn.execute(_MISSING)).all()
    if missing:
        rows = [
            {"prefix": p, "key": k, "field_path": f, "vec": as_text(bytes(e))}
            for p, k, f, e in missing
        ]
        await conn.execute(_FILL, rows)
        log.info("store: filled pgvector's column for %d earlier vectors", len(rows))
    return None


def vec_of(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A text vector ('[...]') as pgvector's type."""
    return cast(value, VectorType())
