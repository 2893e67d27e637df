"""Domain objects → the JSON shapes of the contract (Thread, Run, Assistant)."""

from __future__ import annotations

from typing import Any

from broker.models import Assistant, Cron, Thread, ThreadTTL
from broker.wire import run_json

__all__ = [
    "assistant_json",
    "assistant_version_json",
    "cron_json",
    "run_json",
    "select",
    "thread_json",
    "ttl_json",
]


def thread_json(thread: Thread, *, include_ttl: bool = False) -> dict[str, Any]:
    """The Thread schema; `ttl` only when asked for (`?include=ttl`), and null if unset."""
    shown = {
        "thread_id": thread.thread_id,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "state_updated_at": thread.state_updated_at,
        "metadata": thread.metadata,
        "status": thread.status.value,
        "config": thread.config,
        "values": thread.values,
        "interrupts": thread.interrupts,
        "error": thread.error,
    }
    if include_ttl:
        shown["ttl"] = ttl_json(thread.ttl)
    return shown


def ttl_json(ttl: ThreadTTL | None) -> dict[str, Any] | None:
    if ttl is None:
        return None
    return {"strategy": ttl.strategy, "ttl_minutes": ttl.minutes, "expires_at": ttl.expires_at}


def assistant_json(assistant: Assistant) -> dict[str, Any]:
    return {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": assistant.config,
        "context": assistant.context,
        "created_at": assistant.created_at,
        "updated_at": assistant.updated_at,
        "metadata": assistant.metadata,
        "version": assistant.version,
        "name": assistant.name,
        "description": assistant.description,
    }


def assistant_version_json(version: Assistant) -> dict[str, Any]:
    """An AssistantVersion: an assistant as it was, without `updated_at`."""
    item = assistant_json(version)
    del item["updated_at"]
    return item


def cron_json(cron: Cron) -> dict[str, Any]:
    """The Cron schema (the creator's identity, never what auth said about them)."""
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": cron.on_run_completed,
        "end_time": cron.end_time,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "user_id": cron.user_id,
        "payload": {**cron.payload, "assistant_id": str(cron.assistant_id)},
        "next_run_date": cron.next_run_date,
        "metadata": cron.metadata,
        "enabled": cron.enabled,
    }


def select(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item
