"""structlog set-up: JSON lines on stderr, request and upload ids bound through contextvars.

Event names are stable, dotted and lower-case (``upload.created``, ``upload.patch``, ``hook.failed``), so
operators can alert on them. No log call may carry metadata values: they hold patient names and ids.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "json") -> None:
    """Idempotent; call once at start-up (the CLI does) before the app logs anything."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,  # configured once at start-up, before any logger is used
    )
    # uvicorn's access log would print request lines; keep it, but at our level and without bodies.
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
