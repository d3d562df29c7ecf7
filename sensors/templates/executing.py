"""Renders a parse tree against data, with Go's text/template execution semantics.

Why this module exists: rendering is where Go's rules bite Argo users (a missing key prints
`<no value>`, a field of null is an error, arguments are converted by parameter type, `and`/`or`
short-circuit, `range` walks maps in key order), and where failures must read like Go's
(`template: 1:3: executing at <.x>: ...`). This module walks the tree the parser built; it never
changes it, so one compiled template may render from many threads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sensors.templates import errors, formatting, gotypes, signatures

# Names, not modules, for what every node of every render touches: a module attribute lookup
# per check made rendering measurably (about 5%) slower.
from sensors.templates.gotypes import ABSENT, NO_VALUE, GoInt
from sensors.templates.tree import (
    Action,
    Bool,
    Chain,
    Command,
    Control,
    Dot,
    Field,
    Ident,
    Nil,
    Node,
    Number,
    Operand,
    Pipe,
    String,
    Text,
    Variable,
)


def execute(source: str, nodes: Sequence[Node], data: Any) -> str:
    """The text of the template parsed from `source` rendered with `data` as dot and `$`."""
    state = _State(data)
    try:
        _walk(state, data, nodes)
    except _ExecFailure as failure:
        raise errors.TemplateExecError(_exec_message(source, failure)) from None
    return "".join(state.out)


def _exec_message(source: str, failure: _ExecFailure) -> str:
    pos = getattr(failure.node, "pos", 0)
    line = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1)
    context = str(failure.node)
    if len(context) > 20:
        context = context[:20] + "..."
    return f"template: {line}:{column}: executing at <{context}>: {failure.message}"


class _ExecFailure(Exception):
    """Go's ExecError before it gets its `template: line:col: executing at <node>` prefix."""

    def __init__(self, node: Any, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _BreakLoop(Exception):
    """`{{break}}`: unwinds to the innermost range (the parser rejects it outside one)."""


class _ContinueLoop(Exception):
    """`{{continue}}`: unwinds to the innermost range (the parser rejects it outside one)."""


class _State:
    """The output so far and the variable stack (`$` first) of one render."""

    __slots__ = ("out", "vars")

    def __init__(self, root: Any) -> None:
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", root]]

    def lookup(self, node: Variable) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        raise _ExecFailure(node, f"undefined variable: {node.name}")

    def assign(self, node: Pipe, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise _ExecFailure(node, f"undefined variable: {name}")


def _walk(state: _State, dot: Any, nodes: Sequence[Node]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            state.out.append(node.text)
        elif isinstance(node, Action):
            value = _eval_pipeline(state, dot, node.pipe)
            if not node.pipe.decl:
                state.out.append("<no value>" if value is NO_VALUE else formatting.fmt_v(value))
        elif isinstance(node, Control):
            _run_control(state, dot, node)
        else:
            raise _BreakLoop if node.keyword == "break" else _ContinueLoop


def _run_control(state: _State, dot: Any, node: Control) -> None:
    mark = len(state.vars)
    try:
        value = _eval_pipeline(state, dot, node.pipe)
        if node.keyword == "range":
            _run_range(state, dot, node, value)
        elif gotypes.truth(value):
            _walk(state, value if node.keyword == "with" else dot, node.body)
        elif node.else_body is not None:
            _walk(state, dot, node.else_body)
    finally:
        del state.vars[mark:]


def _run_range(state: _State, dot: Any, node: Control, value: Any) -> None:
    body_mark = len(state.vars)
    declared = len(node.pipe.decl)
    ran = False
    for key, element in _range_items(node, value):
        ran = True
        if declared:
            state.vars[body_mark - 1][1] = element
        if declared > 1:
            state.vars[body_mark - 2][1] = key
        try:
            _walk(state, element, node.body)
        except _BreakLoop:
            break
        except _ContinueLoop:
            continue
        finally:
            del state.vars[body_mark:]
    if not ran and node.else_body is not None:
        _walk(state, dot, node.else_body)


def _range_items(node: Control, value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, list | tuple):
        return ((GoInt(index), item) for index, item in enumerate(value))
    if isinstance(value, dict):
        return ((key, value[key]) for key in sorted(value, key=str))
    if isinstance(value, GoInt):
        return ((GoInt(index), GoInt(index)) for index in range(value))
    if value is None or value is NO_VALUE:
        return iter(())
    raise _ExecFailure(node.pipe, f"range can't iterate over {formatting.fmt_v(value)}")


def _eval_pipeline(state: _State, dot: Any, pipe: Pipe) -> Any:
    value: Any = ABSENT
    for cmd in pipe.cmds:
        value = _eval_command(state, dot, cmd, value)
        if value is None:
            value = NO_VALUE  # Go digs a nil interface{} down to an invalid value
    for name in pipe.decl:
        if pipe.is_assign:
            state.assign(pipe, name, value)
        else:
            state.vars.append([name, value])
    return value


def _eval_command(state: _State, dot: Any, cmd: Command, final: Any) -> Any:
    first = cmd.args[0]
    if isinstance(first, Field):
        return _eval_fields(dot, first, first.names, cmd.args, final)
    if isinstance(first, Ident):
        return _eval_call(state, dot, first, cmd.args[1:], final)
    if isinstance(first, Variable):
        return _eval_variable(state, dot, first, cmd.args, final)
    if isinstance(first, Chain):
        return _eval_chain(state, dot, first, cmd.args, final)
    _not_a_function(cmd.args, final)
    if isinstance(first, Pipe):
        return _eval_pipeline(state, dot, first)
    return _eval_literal(dot, first)


def _not_a_function(args: Sequence[Operand], final: Any) -> None:
    if len(args) > 1 or final is not ABSENT:
        raise _ExecFailure(args[0], f"can't give argument to non-function {args[0]}")


def _eval_literal(dot: Any, node: Operand) -> Any:
    if isinstance(node, Dot):
        return dot
    if isinstance(node, Bool):
        return node.value
    if isinstance(node, String):
        return node.text
    if isinstance(node, Number):
        return _ideal_constant(node)
    raise _ExecFailure(node, "nil is not a command")


def _ideal_constant(node: Number) -> Any:
    if node.float_syntax or node.int_value is None:
        return node.float_value
    return GoInt(node.int_value)


def _eval_fields(receiver: Any, node: Any, names: tuple[str, ...], args: Sequence[Any], final: Any) -> Any:
    boxed = False
    for name in names[:-1]:
        receiver = _eval_field(node, name, receiver, boxed, has_args=False)
        boxed = True
    has_args = len(args) > 1 or final is not ABSENT
    return _eval_field(node, names[-1], receiver, boxed, has_args)


def _eval_field(node: Any, name: str, receiver: Any, boxed: bool, has_args: bool) -> Any:
    if receiver is NO_VALUE:
        return NO_VALUE
    if receiver is None:
        raise _ExecFailure(node, f"nil pointer evaluating interface {{}}.{name}")
    if isinstance(receiver, dict):
        if has_args:
            raise _ExecFailure(node, f"{name} is not a method but has arguments")
        return receiver.get(name, NO_VALUE)
    type_name = "interface {}" if boxed else gotypes.go_type(receiver)
    raise _ExecFailure(node, f"can't evaluate field {name} in type {type_name}")


def _eval_variable(state: _State, dot: Any, node: Variable, args: Sequence[Any], final: Any) -> Any:
    value = state.lookup(node)
    if not node.fields:
        _not_a_function(args, final)
        return value
    return _eval_fields(value, node, node.fields, args, final)


def _eval_chain(state: _State, dot: Any, node: Chain, args: Sequence[Any], final: Any) -> Any:
    receiver = _eval_arg(state, dot, "value", node.node)
    return _eval_fields(receiver, node, node.fields, args, final)


def _eval_call(state: _State, dot: Any, node: Ident, args: Sequence[Operand], final: Any) -> Any:
    func = node.func
    count = len(args) + (final is not ABSENT)
    if func.variadic is None and count != len(func.params):
        raise _ExecFailure(node, f"wrong number of args for {node.name}: want {len(func.params)} got {count}")
    if func.variadic is not None and count < len(func.params):
        raise _ExecFailure(node, f"wrong number of args for {node.name}: want at least {len(func.params)} "
                                 f"got {len(args)}")
    if node.name in ("and", "or"):
        return _eval_and_or(state, dot, node.name, args, final)
    values = [_eval_arg(state, dot, func.kind_at(index), arg) for index, arg in enumerate(args)]
    if final is not ABSENT:
        values.append(_validate(node, final, func.kind_at(count - 1)))
    try:
        return func.call(*values)
    except errors.CallError as exc:
        raise _ExecFailure(node, f"error calling {node.name}: {exc}") from exc


def _eval_and_or(state: _State, dot: Any, name: str, args: Sequence[Operand], final: Any) -> Any:
    # Go short-circuits: later arguments are not evaluated once the answer is known.
    value: Any = NO_VALUE
    for arg in args:
        value = _eval_arg(state, dot, "value", arg)
        if gotypes.truth(value) == (name == "or"):
            return value
    return final if final is not ABSENT else value


def _eval_arg(state: _State, dot: Any, kind: str, node: Operand) -> Any:
    if isinstance(node, Dot):
        return _validate(node, dot, kind)
    if isinstance(node, Nil):
        if kind in ("any", "value", "map"):
            return None
        raise _ExecFailure(node, f"cannot assign nil to {signatures.GO_KIND_NAMES[kind]}")
    if isinstance(node, Field):
        return _validate(node, _eval_fields(dot, node, node.names, (node,), ABSENT), kind)
    if isinstance(node, Variable):
        return _validate(node, _eval_variable(state, dot, node, (node,), ABSENT), kind)
    if isinstance(node, Pipe):
        return _validate(node, _eval_pipeline(state, dot, node), kind)
    if isinstance(node, Ident):
        return _validate(node, _eval_call(state, dot, node, (), ABSENT), kind)
    if isinstance(node, Chain):
        return _validate(node, _eval_chain(state, dot, node, (node,), ABSENT), kind)
    return _literal_arg(node, kind)


def _literal_arg(node: Operand, kind: str) -> Any:
    if kind in ("any", "value"):
        return _eval_literal(None, node)
    if kind == "str" and isinstance(node, String):
        return node.text
    if kind == "int" and isinstance(node, Number) and node.int_value is not None:
        return GoInt(node.int_value)
    expected = {"str": "string", "int": "integer"}.get(kind)
    if expected is None:
        raise _ExecFailure(node, f"can't handle {node} for arg of type {signatures.GO_KIND_NAMES[kind]}")
    raise _ExecFailure(node, f"expected {expected}; found {node}")


def _validate(node: Any, value: Any, kind: str) -> Any:
    """Go's validateType: convert a value for a parameter of the given kind, or fail like Go."""
    if kind == "value":
        return value
    if kind == "any":
        return None if value is NO_VALUE else value
    if value is NO_VALUE:
        if kind == "map":
            return None
        raise _ExecFailure(node, f"invalid value; expected {signatures.GO_KIND_NAMES[kind]}")
    if _has_kind(value, kind):
        return value
    got = "interface {}" if value is None else gotypes.go_type(value)
    raise _ExecFailure(node, f"wrong type for value; expected {signatures.GO_KIND_NAMES[kind]}; got {got}")


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, GoInt)
    return isinstance(value, dict)  # "map"
