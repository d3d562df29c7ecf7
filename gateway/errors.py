"""hookgate's error tree.

    HookgateError
    ├── ManifestError        a manifest that cannot be loaded: file, document index, field path
    ├── RequestRejected      a webhook request refused with an HTTP status and a short reason
    └── BusError             the bus cannot take or give messages right now
        ├── BusUnavailable   not connected, or JetStream did not acknowledge in time
        └── EventTooLarge    over the bus's message size: no retry can help

Messages never contain secret values: callers pass names of secrets, never their contents.
"""

from __future__ import annotations

from collections.abc import Sequence

FieldPath = tuple[str | int, ...]


class HookgateError(Exception):
    pass


def format_path(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


class ManifestError(HookgateError):
    def __init__(self, message: str, *, file: str | None = None, document: int | None = None,
                 path: FieldPath = (), kind: str | None = None, name: str | None = None) -> None:
        self.message = message
        self.file = file
        self.document = document
        self.path = path
        self.kind = kind
        self.name = name
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.document is not None:
            where.append(f"document {self.document}")
        if self.kind:
            where.append(f"{self.kind}/{self.name}" if self.name else self.kind)
        location = ", ".join(where)
        field = f" {format_path(self.path)}:" if self.path else ""
        return f"{location}:{field} {self.message}"


class RequestRejected(HookgateError):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


class BusError(HookgateError):
    pass


class BusUnavailable(BusError):
    pass


class EventTooLarge(BusError):
    pass
