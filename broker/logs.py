"""How every `broker` process logs: BROKER_LOG_LEVEL and BROKER_LOG_FORMAT (text | json)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from broker.settings import Settings

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
    """BROKER_LOG_LEVEL as logging spells it; an unknown name means INFO."""
    name = Settings().log_level.upper()
    return name if name in logging.getLevelNamesMapping() else "INFO"


def debugging() -> bool:
    return level() == "DEBUG"


def configure() -> None:
    handler = logging.StreamHandler()
    if Settings().log_format.lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level(), handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line of ours says it is done
    # The MCP SDK logs every stateless request's session at INFO: noise in an access log.
    if not debugging():
        logging.getLogger("mcp.server").setLevel(logging.WARNING)
