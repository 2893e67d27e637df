"""One error hierarchy; each class carries the HTTP status the contract gives it."""

from __future__ import annotations

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, InternalError, OperationalError


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


class GraphLoadError(BrokerError):
    """A graph in langgraph.json could not be loaded."""


class ThreadBusy(Conflict):
    """Thread is already running a task. Wait for it to finish or choose a different multitask strategy."""


# Failures of Redis or Postgres themselves, not of a request: retried by the worker's
# loops, answered 503 by the API.
REDIS_DOWN: tuple[type[Exception], ...] = (RedisError,)
POSTGRES_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
UNAVAILABLE: tuple[type[Exception], ...] = (*REDIS_DOWN, *POSTGRES_DOWN, OSError)


def is_transient(exc: BaseException) -> bool:
    """A failure of the infrastructure (connection lost, server gone), not of the graph.

    A run that hits one is handed back and retried from its last checkpoint instead
    of ending in error; BROKER_MAX_ATTEMPTS still bounds the retries.
    """
    if isinstance(exc, DBAPIError):
        broken = (OperationalError, InterfaceError, InternalError)
        return exc.connection_invalidated or isinstance(exc, broken)
    return isinstance(exc, (*REDIS_DOWN, OSError))
