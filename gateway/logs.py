"""JSON log lines that carry the id of the event they are about.

The id lives in a context variable: each HTTP request and each sensor message is handled in its
own task, so setting it once at the start of the handling tags every line logged below it.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

event_id: ContextVar[str | None] = ContextVar("event_id", default=None)

#: Headers that carry a delivery id, most specific first (for lines logged before a provider ran).
DELIVERY_HEADERS = ("X-GitHub-Delivery", "Idempotency-Key", "X-Gitlab-Event-UUID", "X-Request-UUID",
                    "X-Request-Id", "X-Gitea-Delivery", "X-Forgejo-Delivery")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        current = event_id.get()
        if current is not None:
            line["event_id"] = current
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        current = event_id.get()
        return f"{text} [event {current}]" if current is not None else text
