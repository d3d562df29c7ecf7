"""The parse tree: what a compiled template is made of.

Why this module exists: the parser builds these frozen nodes once and the executor walks them on
every render, so they are shared, immutable data. An operand's `str()` is the Go source text of
that operand, which execution errors quote (`executing at <.Input.x>`), as Go's do.
"""

from __future__ import annotations

import dataclasses

from sensors.templates import signatures

# --- operands: the words of a command -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Dot:
    pos: int

    def __str__(self) -> str:
        return "."


@dataclasses.dataclass(frozen=True, slots=True)
class Nil:
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclasses.dataclass(frozen=True, slots=True)
class Bool:
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclasses.dataclass(frozen=True, slots=True)
class String:
    pos: int
    text: str
    quoted: str

    def __str__(self) -> str:
        return self.quoted


@dataclasses.dataclass(frozen=True, slots=True)
class Number:
    pos: int
    text: str
    int_value: int | None
    float_value: float | None
    float_syntax: bool  # Go: an untyped constant written with . e p is a float64

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    pos: int
    names: tuple[str, ...]

    def __str__(self) -> str:
        return "".join(f".{name}" for name in self.names)


@dataclasses.dataclass(frozen=True, slots=True)
class Variable:
    pos: int
    name: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return self.name + "".join(f".{name}" for name in self.fields)


@dataclasses.dataclass(frozen=True, slots=True)
class Ident:
    pos: int
    name: str
    func: signatures.Func

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    pos: int
    node: Operand
    fields: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join(f".{name}" for name in self.fields)


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    pos: int
    args: tuple[Operand, ...]

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, Pipe) else str(arg) for arg in self.args)


@dataclasses.dataclass(frozen=True, slots=True)
class Pipe:
    pos: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]

    def __str__(self) -> str:
        head = ", ".join(self.decl) + (" = " if self.is_assign else " := ") if self.decl else ""
        return head + " | ".join(str(cmd) for cmd in self.cmds)


Operand = Dot | Nil | Bool | String | Number | Field | Variable | Ident | Chain | Pipe

# --- nodes: the statements of a template --------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    pipe: Pipe


@dataclasses.dataclass(frozen=True, slots=True)
class Control:
    keyword: str  # if | with | range
    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Jump:
    keyword: str  # break | continue


Node = Text | Action | Control | Jump
