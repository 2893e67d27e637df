"""One error hierarchy; each class carries the HTTP status the contract gives it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class BrokerError(Exception):
    """The broker could not do what was asked."""

    status_code = 500

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (type(self).__doc__ or "").strip()
        super().__init__(self.detail)


class NotFound(BrokerError):
    """Not found."""

    status_code = 404


class Conflict(BrokerError):
    """The resource is in a state that does not allow this request."""

    status_code = 409


class Invalid(BrokerError):
    """The request is not valid."""

    status_code = 422


class BadRequest(BrokerError):
    """Bad request."""

    status_code = 400


class LeaseLost(BrokerError):
    """This worker's claim on the run was taken over; its writes are refused."""

    status_code = 409


class ConfigError(BrokerError):
    """langgraph.json asks for something this broker cannot or will not do; the
    process stops at start with one line saying which key and why."""


class GraphLoadError(ConfigError):
    """A graph in langgraph.json could not be loaded."""


class MalformedRun(BrokerError):
    """A stored run lacks what every run made by this broker has."""


class ThreadBusy(Conflict):
    """Thread is already running a task. Wait for it to finish or choose a different multitask strategy."""


Store = Literal["Postgres", "SQLite", "Redis"]

_REMEDY: dict[Store, str] = {
    "Postgres": "check DATABASE_URI and that Postgres is running and accepting connections",
    "SQLite": "check that the data file of `broker dev` is on a readable, writable disk",
    "Redis": "check REDIS_URI and that Redis is running and accepting connections",
}


class StoreUnavailable(BrokerError):
    """A store the broker runs on (Postgres, SQLite or Redis) could not be reached.

    Raised only by the adapters of that store, from their own driver's connection
    errors: the one failure that is the infrastructure's, not a request's or a graph's.
    """

    status_code = 503

    def __init__(self, store: Store, cause: BaseException | None = None) -> None:
        self.store = store
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(f"{store} is unreachable{why}; {_REMEDY[store]}.")


def is_transient(exc: BaseException) -> bool:
    """Whether the store under the run went away (retry it), not the graph (fail it).

    A run that raises one is handed back for another attempt (BROKER_MAX_ATTEMPTS still
    bounds it); anything else a graph raises ends the run in error."""
    return isinstance(exc, StoreUnavailable)


# What redis-py raises when the server cannot be reached or does not answer in time;
# any other RedisError (a wrong type, a script error) is a bug, not an outage.
REDIS_OUTAGE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    # A Redis Cluster while a master fails over: its slots are served by no node (or the
    # cluster refuses every command) until the replica is promoted, a second or two.
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)


# A master configured with min-replicas-to-write refuses writes while it has no replica:
# during a failover, that is the old master until it is turned into a replica.
REDIS_REFUSALS_WHILE_FAILING_OVER = ("NOREPLICAS",)


@contextmanager
def reaching_redis() -> Iterator[None]:
    """Redis adapters call Redis inside this: its outage arrives as StoreUnavailable."""
    try:
        yield
    except REDIS_OUTAGE as exc:
        raise StoreUnavailable("Redis", exc) from exc
    except RedisResponseError as exc:
        if str(exc).startswith(REDIS_REFUSALS_WHILE_FAILING_OVER):
            raise StoreUnavailable("Redis", exc) from exc
        raise
