"""A worker's view of its stores: one line when one goes away, one when it is back.

Several side tasks (the claim loop, the cancel listener, the promoter, the sweeper)
meet the same outage; each reports to one Outages, which logs only changes of state
and gives each task a growing pause, so a Redis that is down for an hour costs a few
lines, not thousands.
"""

from __future__ import annotations

import logging
import time

from broker.errors import Store, StoreUnavailable

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0


class Outages:
    def __init__(self, first: float = FIRST_PAUSE, most: float = MAX_PAUSE) -> None:
        self._first, self._most = first, most
        self._failing: dict[Store, set[str]] = {}  # store → tasks that cannot reach it
        self._since: dict[Store, float] = {}
        self._pause: dict[str, float] = {}

    def down(self, task: str, exc: StoreUnavailable) -> float:
        """`task` could not reach `exc.store`: says so if it is news; how long to pause."""
        failing = self._failing.setdefault(exc.store, set())
        if not failing:
            self._since[exc.store] = time.monotonic()
            log.warning("worker: %s Backing off until it answers.", exc.detail)
        failing.add(task)
        pause = self._pause[task] = min(self._most, self._pause.get(task, self._first / 2) * 2)
        return pause

    def up(self, task: str) -> None:
        """`task` reached its stores again; a store every task reaches again is back."""
        self._pause.pop(task, None)
        for store, failing in self._failing.items():
            if task in failing:
                failing.discard(task)
                if not failing:
                    away = time.monotonic() - self._since.pop(store)
                    log.warning("worker: %s is reachable again (after %.0fs)", store, away)

    def is_down(self, store: Store) -> bool:
        return bool(self._failing.get(store))
