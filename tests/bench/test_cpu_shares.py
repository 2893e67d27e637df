"""CPU per run: store processes compared pid by pid, a server's Postgres its own backends."""

from __future__ import annotations

import os

from bench import cpu


def test_a_store_process_that_exits_cannot_make_a_share_negative() -> None:
    before = {"api": 1.0, "redis": 0.0, "redis@10": 5.0, "redis@11": 2.0, "postgres": 0.0}
    after = {"api": 1.5, "redis": 0.0, "redis@10": 5.25, "redis@12": 0.5, "postgres": 0.0}

    used = cpu.Usage.between(before, after).seconds

    assert used == {"api": 0.5, "redis": 0.75, "postgres": 0.0}  # 10: +0.25, 12 new: 0.5


def test_no_databases_and_no_ports_count_no_store_process() -> None:
    taken = cpu.snapshot({"self": os.getpid()}, databases=[], redis_ports=[])

    assert not [key for key in taken if "@" in key]
    assert taken["postgres"] == taken["redis"] == 0.0 and taken["self"] > 0
