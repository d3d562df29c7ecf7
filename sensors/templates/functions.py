"""The table of functions a template may call: text/template builtins plus the sprig subset.

Why this module exists: the parser resolves every function name at compile time, as Go does,
so one table must hold both families; an unknown name gets a message listing what is supported.
"""

from __future__ import annotations

from typing import Final

from sensors.templates import builtins, signatures, sprig

FUNCTIONS: Final[dict[str, signatures.Func]] = {**builtins.FUNCTIONS, **sprig.FUNCTIONS}
SUPPORTED_FUNCTIONS: Final[frozenset[str]] = frozenset(FUNCTIONS)


def unknown_function_message(name: str) -> str:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    note = " (a sprig function hookgate does not implement)" if name in sprig.NOT_IMPLEMENTED else ""
    return f'function "{name}" not defined{note}; supported: {supported}'
