"""How a template function declares its Go parameter types, which decide argument conversion.

Why this module exists: in Go the parameter type of a function decides what happens to each
argument (a missing value becomes nil for `interface{}`, is an error for `string`, is passed as
is to builtins taking `reflect.Value`). The builtins and sprig tables describe their functions
with `Func`; the executor converts arguments by these kinds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

# Parameter kinds, named after the Go parameter types that decide argument conversion:
# "any" interface{} (a missing value arrives as nil), "value" reflect.Value (builtins see missing
# values as they are), "str" string, "int" int, "map" map[string]interface{}.
GO_KIND_NAMES: Final = {"str": "string", "int": "int", "map": "map[string]interface {}",
                        "any": "interface {}", "value": "reflect.Value"}


@dataclasses.dataclass(frozen=True, slots=True)
class Func:
    """A callable with the Go parameter kinds of its fixed parameters and, if variadic, the rest."""

    call: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None

    def kind_at(self, index: int) -> str:
        if index < len(self.params):
            return self.params[index]
        assert self.variadic is not None
        return self.variadic


def str_func(call: Callable[..., Any], arity: int) -> Func:
    """A function taking `arity` Go strings."""
    return Func(call, ("str",) * arity)
