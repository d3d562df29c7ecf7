"""Load-time trigger errors (run-time ones are `PermanentError` / `TemporaryError` in the package)."""

from __future__ import annotations


class TriggerCompileError(ValueError):
    """A trigger template that cannot run as written.

    `path` is relative to the template's kind (`("source", "resource", "metadata")` for
    `template.k8s.source.resource.metadata`); the runner prefixes where the template sits.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(message)
