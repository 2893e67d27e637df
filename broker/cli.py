"""The `broker` command: migrate, api, worker, dev, inspect.

`api` and `worker` are resolved by name at call time: the core never imports the
processes built on it (api → broker ← worker), it only knows where they start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from broker import inspect, logs, reach, taskdump
from broker.errors import ConfigError, NotFound, StoreUnavailable
from broker.models import RunStatus
from broker.settings import Settings, environment

PROCESSES = {"api": "api.main:serve", "worker": "worker.main:serve", "dev": "api.dev:serve"}
# `broker dev` runs a worker inside the API process; the CLI is where the two meet.
EMBEDDED_WORKER = "worker.embed:run_embedded"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "langgraph.json"
# What each command needs answering before it starts (`dev` needs neither).
NEEDS: dict[str, tuple[reach.Service, ...]] = {
    "migrate": (reach.POSTGRES,),
    "api": (reach.POSTGRES, reach.REDIS),
    "worker": (reach.POSTGRES, reach.REDIS),
}


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each option, and the environment list kept as written."""


def _epilog() -> str:
    lines = [f"  {name:<34} {default}" for name, default in environment()]
    return "environment variables (with their defaults):\n" + "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker", description=__doc__.splitlines()[0], formatter_class=_Help, epilog=_epilog()
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks (also BROKER_LOG_LEVEL=debug)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=help, formatter_class=_Help, epilog=_epilog()
        )

    migrate = command("migrate", "alembic upgrade head against DATABASE_URI")
    migrate.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="do not migrate: wait up to SECONDS until the database is at the latest "
        "migration (exit 1 if not), as an initContainer behind a migrate Job",
    )
    api = command("api", "serve the HTTP API on Postgres (DATABASE_URI) and Redis (REDIS_URI)")
    _add_config(api)
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=int, default=8123, help="port to listen on")
    api.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not log one line per request",
    )
    worker = command("worker", "execute runs, N_JOBS_PER_WORKER at a time")
    _add_config(worker)
    dev = command("dev", "API + worker in one process on a SQLite file, no servers needed")
    _add_config(dev, default=f"$BROKER_CONFIG, else {EXAMPLES.parent.name}/{EXAMPLES.name}")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dev.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: 2024, or the next free one)%(default).0s",
    )
    dev.add_argument(
        "--data", type=Path, default=Path(".broker/dev.sqlite3"), help="the SQLite file"
    )
    _add_inspect(command("inspect", "show runs, a thread's checkpoints, the queue (read-only)"))
    return parser


def _add_inspect(inspect: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data", type=Path, default=None, help="a `broker dev` SQLite file instead of DATABASE_URI"
    )
    common.add_argument("--json", action="store_true", help="JSON for scripts, not tables")
    common.add_argument("--limit", type=int, default=50, help="rows at most")
    views = inspect.add_subparsers(dest="view", required=True, metavar="VIEW")

    def view(name: str, help: str) -> argparse.ArgumentParser:
        return views.add_parser(
            name, help=help, description=help, parents=[common], formatter_class=_Help
        )

    runs = view("runs", "the newest runs of every thread")
    runs.add_argument("--status", choices=[s.value for s in RunStatus], help="only these")
    runs.add_argument("--thread", type=UUID, help="only this thread's")
    view("thread", "a thread: its status, runs and checkpoints by step and node").add_argument(
        "thread_id", type=UUID
    )
    checkpoint = view("checkpoint", "a checkpoint's values and what changed from the previous")
    checkpoint.add_argument("thread_id", type=UUID)
    checkpoint.add_argument("--step", type=int, help="this step's (default: the latest)")
    view("queue", "pending and running runs: lease left, stuck and over-attempted ones")


def _add_config(parser: argparse.ArgumentParser, default: str = "$BROKER_CONFIG") -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("BROKER_CONFIG"),
        help=f"langgraph.json (default: {default})%(default).0s",
    )


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _uri(service: reach.Service, settings: Settings) -> str:
    return settings.database_uri if service is reach.POSTGRES else settings.redis_uri


def _preflight(args: argparse.Namespace) -> None:
    """Each store the command needs answers, or the command stops with one line."""
    settings = Settings()
    needs = NEEDS.get(args.command, ())
    if args.command == "inspect" and args.data is None:
        needs = (reach.POSTGRES,)
    for service in needs:
        reach.require(service, reach.libpq(_uri(service, settings)))


def _run(args: argparse.Namespace) -> None:
    _preflight(args)
    if args.command == "inspect":
        print(asyncio.run(inspect.show(args)))
        return
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
    options = {k: v for k, v in vars(args).items() if k not in ("command", "debug")}
    if args.command == "dev":
        options["embed"] = _resolve(EMBEDDED_WORKER)
    _resolve(PROCESSES[args.command])(**options)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logs.configure()
    taskdump.install()  # `kill -USR1 <pid>`: where each task of a stuck process waits
    try:
        _run(args)
    except (ConfigError, NotFound) as exc:
        sys.exit(f"broker {args.command}: {exc}")
    except (reach.Unreachable, StoreUnavailable) as exc:
        if args.debug or logs.debugging():
            raise
        sys.exit(f"broker {args.command}: {exc}")
