"""The `broker` command: migrate, api, worker.

`api` and `worker` are resolved by name at call time: the core never imports the
processes built on it (api → broker ← worker), it only knows where they start.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker.errors import ConfigError

PROCESSES = {"api": "api.main:serve", "worker": "worker.main:serve", "dev": "api.dev:serve"}
# `broker dev` runs a worker inside the API process; the CLI is where the two meet.
EMBEDDED_WORKER = "worker.embed:run_embedded"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "langgraph.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="alembic upgrade head against DATABASE_URI")
    migrate.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="do not migrate: wait up to SECONDS until the database is at the latest "
        "migration (exit 1 if not), as an initContainer behind a migrate Job",
    )
    api = commands.add_parser("api", help="serve the HTTP API")
    _add_config(api)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8123)
    worker = commands.add_parser("worker", help="execute runs (N_JOBS_PER_WORKER at a time)")
    _add_config(worker)
    dev = commands.add_parser(
        "dev", help="API + worker in one process on SQLite, no servers needed"
    )
    _add_config(dev)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=None, help="default 2024, or the next free port")
    dev.add_argument(
        "--data", type=Path, default=Path(".broker/dev.sqlite3"), help="the SQLite file"
    )
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("BROKER_CONFIG"),
        help="langgraph.json (default: $BROKER_CONFIG)",
    )


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line of ours says it is done
    if args.command == "migrate":
        from broker import migrate

        if args.wait is not None:
            if not migrate.wait_for_head(args.wait):
                sys.exit(f"broker migrate --wait: database not migrated after {args.wait:g}s")
        else:
            migrate.upgrade()
        print("broker: database is at the latest migration", file=sys.stderr)
        return
    if args.config is None and args.command == "dev" and EXAMPLES.exists():
        args.config = EXAMPLES  # a newcomer's first run: the bundled examples
    if args.config is None:
        sys.exit(
            f"broker {args.command}: no graphs; pass --config langgraph.json or set BROKER_CONFIG"
        )
    options = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "dev":
        options["embed"] = _resolve(EMBEDDED_WORKER)
    try:
        _resolve(PROCESSES[args.command])(**options)
    except ConfigError as exc:
        sys.exit(f"broker {args.command}: {exc}")
