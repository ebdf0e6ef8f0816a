"""structlog, configured once per process: JSON when not on a terminal, colour on one."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(component: str, *, level: str | None = None, **bound: str) -> structlog.stdlib.BoundLogger:
    """Set up logging for a daemon and return its logger with `component` (and e.g. `node`) bound."""
    name = (level or os.environ.get("KUBELITE_LOG_LEVEL", "info")).upper()
    numeric = getattr(logging, name, logging.INFO)
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if sys.stderr.isatty():
        processors.append(structlog.dev.ConsoleRenderer(colors=True))
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(component=component, **bound)
    return structlog.get_logger()
