"""A thread's checkpoints as people read them: step, the nodes that made it, its values.

Reads the readable columns (`values`, `metadata`) and the task paths of the writes, on
the primary keys (thread, namespace, checkpoint id): one thread's timeline costs the
same on a table of a million checkpoints as on ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import checkpoint_writes, checkpoints


@dataclass(frozen=True)
class Step:
    checkpoint_id: str
    parent_id: str | None
    step: int | None
    run_id: str | None
    source: str | None  # input, loop, update, fork
    nodes: list[str]  # the tasks whose writes made this checkpoint
    values: Any
    created_at: datetime


async def timeline(
    engine: AsyncEngine,
    thread_id: str,
    *,
    checkpoint_ns: str = "",
    step: int | None = None,
    checkpoint_id: str | None = None,
    limit: int = 50,
) -> list[Step]:
    """The thread's latest `limit` checkpoints, oldest first (or those of one `step`, or
    the one `checkpoint_id`)."""
    query = (
        select(checkpoints)
        .where(checkpoints.c.thread_id == thread_id, checkpoints.c.checkpoint_ns == checkpoint_ns)
        .order_by(checkpoints.c.checkpoint_id.desc())
        .limit(limit)
    )
    if step is not None:
        query = query.where(checkpoints.c.step == step)
    if checkpoint_id is not None:
        query = query.where(checkpoints.c.checkpoint_id == checkpoint_id)
    async with engine.connect() as conn:
        rows = list(reversed((await conn.execute(query)).all()))
        parents = {r.parent_checkpoint_id for r in rows if r.parent_checkpoint_id}
        nodes = await _nodes(conn, thread_id, checkpoint_ns, parents)
    return [
        Step(
            checkpoint_id=r.checkpoint_id,
            parent_id=r.parent_checkpoint_id,
            step=r.step,
            run_id=r.run_id,
            source=(r.metadata or {}).get("source"),
            nodes=nodes.get(r.parent_checkpoint_id or "", []),
            values=r.values,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def _nodes(conn: Any, thread_id: str, ns: str, parents: set[str]) -> dict[str, list[str]]:
    """For each parent checkpoint, the nodes whose writes were saved against it."""
    if not parents:
        return {}
    query = (
        select(checkpoint_writes.c.checkpoint_id, checkpoint_writes.c.task_path)
        .where(
            checkpoint_writes.c.thread_id == thread_id,
            checkpoint_writes.c.checkpoint_ns == ns,
            checkpoint_writes.c.checkpoint_id.in_(sorted(parents)),
        )
        .distinct()
    )
    found: dict[str, set[str]] = {}
    for checkpoint_id, task_path in (await conn.execute(query)).all():
        found.setdefault(checkpoint_id, set()).add(_node(task_path))
    return {k: sorted(v) for k, v in found.items()}


def _node(task_path: str) -> str:
    """`~__pregel_pull, agent` → agent (a pulled node's path ends with its name)."""
    parts = [p.strip() for p in task_path.split(",")]
    return parts[1] if len(parts) > 1 and parts[0] == "~__pregel_pull" else task_path
