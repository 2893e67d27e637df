"""How every `broker` process logs: BROKER_LOG_LEVEL and BROKER_LOG_FORMAT (text | json)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time, level, logger, message (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def level() -> str:
    return os.environ.get("BROKER_LOG_LEVEL", "info").upper()


def debugging() -> bool:
    return level() == "DEBUG"


def configure() -> None:
    handler = logging.StreamHandler()
    if os.environ.get("BROKER_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level(), handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line of ours says it is done
