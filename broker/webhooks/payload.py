"""What a webhook delivery carries: the run as `GET /threads/{tid}/runs/{rid}` returns it,
with its final status, `run_started_at`/`run_ended_at`, the thread's `values` and, for a
failed run, `error` (the message), as LangGraph's servers send it. The sender adds
`webhook_sent_at` when it posts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker import jsonable
from broker.ids import uuid7
from broker.models import Run, RunStatus
from broker.storage.ledger.outcomes import Delivery
from broker.wire import run_json


@dataclass(frozen=True)
class Webhooks:
    """Builds the delivery of a run that ends; none without a `webhook`, or when
    `http.disable_webhooks` turned deliveries off."""

    enabled: bool = True

    def delivery(
        self,
        run: Run,
        status: RunStatus,
        values: Any = None,
        error: dict[str, Any] | None = None,
    ) -> Delivery | None:
        url = run.options.webhook
        if not url or not self.enabled:
            return None
        ended = datetime.now(UTC)
        body = run_json(run) | {
            "status": status.value,
            "updated_at": ended,
            # A claimed run's row was last touched when its attempt started.
            "run_started_at": run.updated_at if run.status == RunStatus.RUNNING else None,
            "run_ended_at": ended,
            "values": values,
        }
        if error is not None:
            body["error"] = error.get("message", "") if isinstance(error, dict) else str(error)
        plain = jsonable.loads(jsonable.dumps(body))
        return Delivery(uuid7(), run.run_id, run.thread_id, url, plain)
