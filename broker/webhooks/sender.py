"""Sends the webhook outbox: runs in every worker process (and `broker dev`).

Each round claims the due deliveries (a lease each), POSTs them concurrently and records
how each went. A 2xx is delivered; a 5xx, a timeout or a connection error is retried
with exponential backoff until BROKER_WEBHOOK_MAX_ATTEMPTS, then given up (logged); any
other status (a 4xx: the receiver refused it) is final at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from broker import jsonable, metrics
from broker.storage.outbox import DueDelivery, OutboxStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendPolicy:
    timeout: float = 10.0  # seconds per POST
    max_attempts: int = 5
    backoff: float = 1.0  # seconds before the 2nd attempt, doubling, at most `max_backoff`
    max_backoff: float = 300.0
    batch: int = 20

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff * 2 ** (attempts - 1), self.max_backoff))


class WebhookSender:
    def __init__(
        self, outbox: OutboxStore, policy: SendPolicy, headers: Mapping[str, str] | None = None
    ) -> None:
        self.outbox, self.policy = outbox, policy
        self.headers = {"content-type": "application/json", **(headers or {})}

    async def deliver_due(self) -> int:
        """One round: how many deliveries it claimed."""
        # A claim outlives the POST's timeout: no other sender takes it meanwhile.
        lease = timedelta(seconds=self.policy.timeout + 5.0)
        due = await self.outbox.claim(self.policy.batch, lease)
        for delivery in due:
            log.debug(
                "webhook %s (run %s): attempt %d",
                delivery.delivery_id,
                delivery.run_id,
                delivery.attempts,
            )
        if due:
            # A client per round that has work: rounds are rare, and none is left open.
            async with httpx.AsyncClient(timeout=self.policy.timeout) as client:
                await asyncio.gather(*(self._send(client, d) for d in due))
        return len(due)

    async def _send(self, client: httpx.AsyncClient, delivery: DueDelivery) -> None:
        body = delivery.payload | {"webhook_sent_at": datetime.now(UTC).isoformat()}
        try:
            with metrics.WEBHOOK_POST_DURATION.time():
                response = await client.post(
                    delivery.url, content=jsonable.dumps(body), headers=self.headers
                )
        except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
            await self._failed(delivery, None, f"{type(exc).__name__}: {exc}", final=False)
            return
        code = response.status_code
        if response.is_success:
            await self.outbox.delivered(delivery.delivery_id, code)
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
        else:
            await self._failed(delivery, code, f"HTTP {code}", final=code < 500)

    async def _failed(
        self, delivery: DueDelivery, code: int | None, error: str, *, final: bool
    ) -> None:
        if final or delivery.attempts >= self.policy.max_attempts:
            log.warning(
                "webhook for run %s to %s: giving up after %d attempts (%s)",
                delivery.run_id,
                delivery.url,
                delivery.attempts,
                error,
            )
            await self.outbox.give_up(delivery.delivery_id, code, error)
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            return
        after = self.policy.delay(delivery.attempts)
        await self.outbox.retry(delivery.delivery_id, after, code, error)
        metrics.WEBHOOK_DELIVERIES.labels("retried").inc()
