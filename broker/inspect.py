"""`broker inspect`: runs, threads, checkpoints and the queue, for people and scripts.

Reads through the storage read ports the API uses (RunStore, ThreadStore, the checkpoint
timeline, the run statistics), on Postgres (DATABASE_URI) or on the SQLite file of
`broker dev` (`--data`). Each view is a JSON-able dict; `render` turns it into tables.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import jsonable
from broker.errors import NotFound
from broker.settings import Settings
from broker.storage import stats
from broker.storage.checkpoints.timeline import Step, timeline
from broker.storage.engine import create_engine
from broker.storage.runs import RunStore
from broker.storage.sqlite import create_sqlite_engine
from broker.storage.threads import ThreadStore

View = dict[str, Any]
_CELL = 60  # characters of a value shown in a table cell


async def show(args: Any) -> str:
    """What `broker inspect VIEW` prints for its parsed arguments."""
    engine = open_engine(args.data)
    try:
        view = await _view(engine, args)
    finally:
        await engine.dispose()
    return to_json(view) if args.json else render(view)


async def _view(engine: AsyncEngine, args: Any) -> View:
    if args.view == "runs":
        return await runs(engine, status=args.status, thread_id=args.thread, limit=args.limit)
    if args.view == "thread":
        return await thread(engine, args.thread_id, limit=args.limit)
    if args.view == "checkpoint":
        return await checkpoint(engine, args.thread_id, step=args.step)
    return await queue(engine, max_attempts=Settings().max_attempts, limit=args.limit)


def open_engine(data: Path | None) -> AsyncEngine:
    if data is None:
        return create_engine(Settings(), pool_size=1)
    if not data.exists():
        raise NotFound(f"--data {data}: no such file (the SQLite file of `broker dev`)")
    return create_sqlite_engine(data)


async def runs(
    engine: AsyncEngine, *, status: str | None, thread_id: UUID | None, limit: int
) -> View:
    found = await RunStore(engine).search(status=status, thread_id=thread_id, limit=limit)
    return {
        "runs": [
            {
                "run_id": r.run_id,
                "thread_id": r.thread_id,
                "status": r.status.value,
                "attempt": r.attempt,
                # An inspector shows every row, even one this broker would refuse to run.
                "graph": r.options.configurable.get("graph_id"),
                "created_at": r.created_at,
                "updated_at": r.updated_at,
            }
            for r in found
        ]
    }


async def thread(engine: AsyncEngine, thread_id: UUID, *, limit: int) -> View:
    found = await ThreadStore(engine).get(thread_id, include_temporary=True)
    steps = await timeline(engine, str(thread_id), limit=limit)
    return {
        "thread": {
            "thread_id": found.thread_id,
            "status": found.status.value,
            "created_at": found.created_at,
            "updated_at": found.updated_at,
            "metadata": found.metadata,
        },
        **await runs(engine, status=None, thread_id=thread_id, limit=limit),
        "checkpoints": [_step(s, with_values=False) for s in steps],
    }


async def checkpoint(engine: AsyncEngine, thread_id: UUID, *, step: int | None) -> View:
    """The latest checkpoint (or the one of `step`), and what changed since its parent."""
    steps = await timeline(engine, str(thread_id), step=step, limit=1)
    if not steps:
        at = "" if step is None else f" at step {step}"
        raise NotFound(f"Thread '{thread_id}' has no checkpoint{at}.")
    current = steps[0]
    previous = await _parent(engine, thread_id, current)
    before = previous.values if previous is not None else {}
    return {
        "checkpoint": _step(current, with_values=True),
        "previous_checkpoint_id": current.parent_id,
        "diff": diff(before if isinstance(before, dict) else {}, current.values or {}),
    }


async def queue(engine: AsyncEngine, *, max_attempts: int, limit: int) -> View:
    now = datetime.now(UTC)
    counts = await stats.run_counts(engine)
    active = await stats.active_runs(engine, limit)
    rows = [_queued(r, now, max_attempts) for r in active]
    return {
        "pending": counts.by_status["pending"],
        "running": counts.by_status["running"],
        "due": counts.due,
        "oldest_due_age_seconds": round(counts.oldest_due_age, 3),
        "runs": rows,
        "stuck": [r["run_id"] for r in rows if r["stuck"]],
        "over_attempted": [r["run_id"] for r in rows if r["over_attempted"]],
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys added, removed and changed (old → new) between two states."""
    return {
        "added": {k: after[k] for k in after.keys() - before.keys()},
        "removed": sorted(before.keys() - after.keys()),
        "changed": {
            k: {"old": before[k], "new": after[k]}
            for k in after.keys() & before.keys()
            if before[k] != after[k]
        },
    }


async def _parent(engine: AsyncEngine, thread_id: UUID, current: Step) -> Step | None:
    if current.parent_id is None:
        return None
    steps = await timeline(engine, str(thread_id), checkpoint_id=current.parent_id, limit=1)
    return steps[0] if steps else None


def _step(step: Step, *, with_values: bool) -> dict[str, Any]:
    shown = asdict(step)
    if not with_values:
        shown["values"] = _short(step.values)
    return shown


def _queued(run: stats.ActiveRun, now: datetime, max_attempts: int) -> dict[str, Any]:
    lease_left = (run.lease_until - now).total_seconds() if run.lease_until else None
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "status": run.status,
        "attempt": run.attempt,
        "worker": run.worker_id,
        "waiting_seconds": round((now - run.created_at).total_seconds(), 1),
        "lease_left_seconds": None if lease_left is None else round(lease_left, 1),
        # Running with an expired lease: its worker died; the sweeper has not recovered it yet.
        "stuck": run.status == "running" and lease_left is not None and lease_left < 0,
        "over_attempted": run.attempt >= max_attempts,
    }


def _short(value: Any) -> str:
    text = jsonable.dumps(value).decode()
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


# -- rendering -----------------------------------------------------------------------


def to_json(view: View) -> str:
    return jsonable.dumps(view).decode()


def render(view: View) -> str:
    """Tables for lists of rows, `key: value` lines for the rest, sections in order."""
    parts: list[str] = []
    scalars: list[str] = []
    for key, value in view.items():
        if isinstance(value, dict):
            lines = [f"  {k}: {_cell(v, wide=True)}" for k, v in value.items()]
            parts.append(f"{key}\n" + "\n".join(lines))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            parts.append(f"{key} ({len(value)})\n{_table(value)}")
        elif isinstance(value, list):
            scalars.append(f"{key}: {', '.join(map(str, value)) or 'none'}")
        else:
            scalars.append(f"{key}: {_cell(value, wide=True)}")
    return "\n\n".join(filter(None, ["\n".join(scalars), *parts]))


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any, *, wide: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str | UUID | int | float | bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return jsonable.dumps(value).decode() if wide else _short(value)
