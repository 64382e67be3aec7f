"""Structured logs: one JSON object per line, with the id of the request being served.

`cockpit serve --log-format json` installs `log_config("json")` as uvicorn's logging config,
so uvicorn's own lines (start-up, errors, the access log) and Cockpit's come out the same way.
The request middleware puts each request's id in `REQUEST_ID` (a context variable, so every
line logged while serving it, the access line included, carries it); the proxy may replace it
with the id of the call's ledger row (`set_request_id`), which its answers also carry in
`x-cockpit-request-id`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from contextvars import ContextVar
from typing import Any

from cockpit.observe.tracing import current_trace_id

REQUEST_ID: ContextVar[str | None] = ContextVar("cockpit_request_id", default=None)
FORMATS = ("text", "json")


def set_request_id(request_id: str) -> None:
    REQUEST_ID.set(request_id)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id, trace_id and exception, as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's `log_config` for `log_format`; None keeps uvicorn's default text format."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cockpit.observe.logs.JsonFormatter"}},
        "handlers": {"default": handler, "access": {**handler, "stream": "ext://sys.stdout"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "cockpit": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }
