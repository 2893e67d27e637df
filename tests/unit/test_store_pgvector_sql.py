"""The SQL the pgvector adapter emits, compiled for Postgres: CI's Postgres has no
pgvector, so these check the statements themselves (the portable path is what the
store contract tests run)."""

from __future__ import annotations

import re
from array import array

from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement

from broker.storage.store.pgvector import as_text, ddl
from broker.storage.store.postgres import _vectors_insert, nearest_statement


def _sql(statement: ClauseElement) -> str:
    """For Postgres, with named parameters (the driver numbers them) and without casts
    of bound values (::VARCHAR), which say nothing about the statement."""
    compiled = statement.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    return re.sub(r"::[A-Z]+(\[\])?", "", " ".join(str(compiled).split()))


def test_search_orders_by_cosine_distance_in_sql_with_prefix_and_filters() -> None:
    sql = _sql(nearest_statement((True, ("$eq", "$gt"))))
    distance = "min(store_vectors.vec <=> CAST(%(q_vec)s AS vector))"
    assert f"1.0 - {distance} AS score" in sql
    assert "FROM store_items JOIN store_vectors ON store_vectors.prefix = store_items.prefix" in sql
    assert "store_items.prefix LIKE %(s_under)s ESCAPE" in sql  # namespace prefix
    assert "(store_items.value #> %(s_path0)s) = CAST(%(s_value0)s AS JSONB)" in sql
    assert "(store_items.value #> %(s_path1)s) > CAST(%(s_value1)s AS JSONB)" in sql
    assert "store_vectors.vec IS NOT NULL" in sql
    assert "store_items.expires_at > now()" in sql  # only live items
    assert "GROUP BY store_items.prefix, store_items.key, store_items.updated_at" in sql
    assert f"ORDER BY {distance}, store_items.updated_at DESC" in sql
    assert sql.endswith("LIMIT %(s_limit)s OFFSET %(s_offset)s")


def test_search_without_prefix_or_filters_reads_the_whole_store() -> None:
    sql = _sql(nearest_statement((False, ())))
    assert "LIKE" not in sql and "#>" not in sql


def test_writes_fill_the_vector_column_only_with_pgvector() -> None:
    with_vec = _sql(_vectors_insert(True))
    assert with_vec.startswith(
        "INSERT INTO store_vectors (prefix, key, field_path, embedding, vec)"
    )
    assert "CAST(source.vec AS vector)" in with_vec
    assert "vec" not in _sql(_vectors_insert(False)).replace("store_vectors", "")


def test_the_column_and_hnsw_index_follow_store_index_dims() -> None:
    assert ddl(64) == [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "ALTER TABLE store_vectors ADD COLUMN IF NOT EXISTS vec vector(64)",
        "CREATE INDEX IF NOT EXISTS store_vectors_vec_hnsw ON store_vectors "
        "USING hnsw (vec vector_cosine_ops)",
    ]


def test_vectors_reach_pgvector_exactly_as_stored() -> None:
    stored = array("f", [0.1, -0.5, 1 / 3])
    text = as_text(stored.tobytes())
    assert text.startswith("[") and text.endswith("]")
    assert array("f", map(float, text[1:-1].split(","))) == stored
    assert as_text([1.0, 0.0]) == "[1.0,0.0]"
