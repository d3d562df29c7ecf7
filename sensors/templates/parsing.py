"""Builds the parse tree from tokens, with the checks Go makes at parse time.

Why this module exists: Go rejects some templates before they ever run (an unknown function,
an undefined variable, `break` outside `range`, a literal in the middle of a pipeline), and Argo
users see those errors when a sensor loads. The parser applies Go's text/template/parse rules so
the same templates are rejected here, with Go's wording, at `compile_template` time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, NoReturn

from sensors.templates import decoding, errors, formatting, functions, lexing, tree

_OPERAND_KINDS: Final = frozenset({"bool", "char", "dot", "field", "ident", "number", "nil", "raw", "string",
                                   "variable", "lparen"})


def parse(source: str) -> tuple[tree.Node, ...]:
    """The parse tree of a whole template; raises TemplateError."""
    return _Parser(source).parse()


class _Parser:
    """Go's text/template/parse rules, including the parse-time function and variable checks."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.tokens = lexing.lex(source)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def parse(self) -> tuple[tree.Node, ...]:
        nodes, stop = self._list()
        if stop != "eof":
            self._fail(f"unexpected {{{{{stop}}}}}", self.tokens[self.i - 1].pos)
        return nodes

    def _fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise errors.parse_error(self.src, self._peek().pos if pos is None else pos, message)

    def _peek(self) -> lexing.Token:
        return self.tokens[self.i]

    def _next(self) -> lexing.Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _expect(self, kind: str, context: str) -> lexing.Token:
        token = self._next()
        if token.kind != kind:
            self._fail(f"unexpected {_describe(token)} in {context}", token.pos)
        return token

    def _list(self) -> tuple[tuple[tree.Node, ...], str]:
        nodes: list[tree.Node] = []
        while True:
            token = self._next()
            if token.kind == "eof":
                self.i -= 1  # leave EOF in place so that error positions can still peek at it
                return tuple(nodes), "eof"
            if token.kind == "text":
                nodes.append(tree.Text(token.text))
                continue
            peek = self._peek()
            if peek.kind == "keyword" and peek.text in ("end", "else"):
                self._next()
                if peek.text == "end":
                    self._expect("rdelim", "end")
                return tuple(nodes), peek.text
            nodes.append(self._action())

    def _action(self) -> tree.Node:
        token = self._peek()
        if token.kind != "keyword":
            return tree.Action(self._pipeline("command", "rdelim"))
        self._next()
        if token.text in ("if", "with", "range"):
            return self._control(token.text)
        if token.text in ("break", "continue"):
            return self._jump(token)
        self._fail(f"{{{{{token.text}}}}} is not supported (hookgate renders a single template)", token.pos)

    def _jump(self, token: lexing.Token) -> tree.Jump:
        if self.range_depth == 0:
            self._fail(f"{{{{{token.text}}}}} outside {{{{range}}}}", token.pos)
        self._expect("rdelim", token.text)
        return tree.Jump(token.text)

    def _control(self, keyword: str) -> tree.Control:
        saved_vars = len(self.vars)
        pipe = self._pipeline(keyword, "rdelim")
        self.range_depth += keyword == "range"
        body, stop = self._list()
        self.range_depth -= keyword == "range"
        else_body = self._else_branch(keyword, stop) if stop == "else" else None
        if stop == "eof":
            self._fail("unexpected EOF")
        del self.vars[saved_vars:]
        return tree.Control(keyword, pipe, body, else_body)

    def _else_branch(self, keyword: str, stop: str) -> tuple[tree.Node, ...]:
        token = self._peek()
        if token.kind == "keyword" and token.text in ("if", "with"):
            if token.text != keyword or keyword == "range":
                self._fail(f"unexpected {token.text} in else", token.pos)
            self._next()  # {{else if x}} is {{else}}{{if x}}...{{end}} sharing the outer {{end}}
            return (self._control(keyword),)
        self._expect("rdelim", "else")
        body, stop = self._list()
        if stop != "end":
            self._fail(f"expected end; found {{{{{stop}}}}}")
        return body

    def _pipeline(self, context: str, end: str) -> tree.Pipe:
        pos = self._peek().pos
        decl, is_assign = self._declarations(context)
        cmds: list[tree.Command] = []
        while True:
            token = self._peek()
            if token.kind == end:
                if end == "rdelim":
                    self._next()
                break
            if token.kind not in _OPERAND_KINDS:
                self._fail(f"unexpected {_describe(token)} in {context}", token.pos)
            cmds.append(self._command())
        self._check_pipeline(cmds, context)
        return tree.Pipe(pos, tuple(decl), is_assign, tuple(cmds))

    def _declarations(self, context: str) -> tuple[list[str], bool]:
        decl: list[str] = []
        while self._peek().kind == "variable" and self.tokens[self.i + 1].kind in ("declare", "assign", "comma"):
            name = self._next().text
            sep = self._next()
            decl.append(name)
            self.vars.append(name)
            if sep.kind != "comma":
                return decl, sep.kind == "assign"
            if context != "range" or len(decl) >= 2:
                self._fail(f"too many declarations in {context}", sep.pos)
            if self._peek().kind != "variable":
                self._fail("range can only initialize variables")
        return decl, False

    def _check_pipeline(self, cmds: list[tree.Command], context: str) -> None:
        if not cmds:
            self._fail(f"missing value for {context}")
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], tree.Bool | tree.Dot | tree.Nil | tree.Number | tree.String):
                self._fail(f"non executable command in pipeline stage {stage}", cmd.pos)

    def _command(self) -> tree.Command:
        pos = self._peek().pos
        args: list[tree.Operand] = [self._operand()]
        while True:
            token = self._peek()
            if token.kind in ("rdelim", "rparen"):
                break
            if token.kind == "pipe":
                self._next()
                break
            if not token.spaced or token.kind not in _OPERAND_KINDS:
                self._fail(f"unexpected {_describe(token)} in operand", token.pos)
            args.append(self._operand())
        return tree.Command(pos, tuple(args))

    def _operand(self) -> tree.Operand:
        node = self._term()
        fields: list[str] = []
        while self._peek().kind == "field" and not self._peek().spaced:
            fields.append(self._next().text[1:])
        if not fields:
            return node
        if isinstance(node, tree.Field):
            return tree.Field(node.pos, node.names + tuple(fields))
        if isinstance(node, tree.Variable):
            return tree.Variable(node.pos, node.name, node.fields + tuple(fields))
        if isinstance(node, tree.Bool | tree.String | tree.Number | tree.Nil | tree.Dot):
            self._fail(f"unexpected . after term {formatting.go_quote(str(node))}", node.pos)
        return tree.Chain(node.pos, node, tuple(fields))

    def _term(self) -> tree.Operand:
        token = self._next()
        kind = token.kind
        if kind == "ident":
            return self._function(token)
        if kind == "variable":
            if token.text not in self.vars:
                self._fail(f'undefined variable "{token.text}"', token.pos)
            return tree.Variable(token.pos, token.text, ())
        if kind == "lparen":
            pipe = self._pipeline("parenthesized pipeline", "rparen")
            self._expect("rparen", "parenthesized pipeline")
            return pipe
        return self._literal(token)

    def _literal(self, token: lexing.Token) -> tree.Operand:
        if token.kind == "dot":
            return tree.Dot(token.pos)
        if token.kind == "nil":
            return tree.Nil(token.pos)
        if token.kind == "bool":
            return tree.Bool(token.pos, token.text == "true")
        if token.kind == "field":
            return tree.Field(token.pos, (token.text[1:],))
        if token.kind in ("string", "raw"):
            return tree.String(token.pos, self._unquote(token), token.text)
        if token.kind in ("number", "char"):
            return self._number(token)
        self._fail(f"unexpected {_describe(token)} in operand", token.pos)

    def _function(self, token: lexing.Token) -> tree.Ident:
        func = functions.FUNCTIONS.get(token.text)
        if func is None:
            self._fail(functions.unknown_function_message(token.text), token.pos)
        return tree.Ident(token.pos, token.text, func)

    def _unquote(self, token: lexing.Token) -> str:
        if token.kind == "raw":
            return token.text[1:-1].replace("\r", "")
        try:
            return decoding.go_unquote(token.text[1:-1], '"')
        except ValueError as exc:
            self._fail(str(exc), token.pos)

    def _number(self, token: lexing.Token) -> tree.Number:
        if token.kind == "char":
            try:
                char = decoding.go_unquote(token.text[1:-1], "'")
            except ValueError as exc:
                self._fail(str(exc), token.pos)
            if len(char) != 1:
                self._fail(f"malformed character constant: {token.text}", token.pos)
            return tree.Number(token.pos, token.text, ord(char), float(ord(char)), False)
        return _parse_number(token, self._fail)


def _describe(token: lexing.Token) -> str:
    # Only tokens inside an action are ever described, and an action always ends with "}}".
    if token.kind == "rdelim":
        return f'"{token.text}"'
    return f"<{token.text}>"


def _parse_number(token: lexing.Token, fail: Callable[[str, int], NoReturn]) -> tree.Number:
    text = token.text
    if text.endswith("i"):
        fail(f"complex number {text} is not supported", token.pos)
    int_value = decoding.parse_go_int(text)
    float_value = _parse_number_float(text)
    if int_value is None and float_value is None:
        fail(f"illegal number syntax: {text!r}", token.pos)
    is_hex_int = text.lstrip("+-")[:2].lower() == "0x" and not re.search("[pP]", text)
    float_syntax = not is_hex_int and bool(re.search("[.eEpP]", text))
    if int_value is None and float_value is not None and not float_syntax:
        fail(f"integer overflow: {text!r}", token.pos)
    if int_value is None and float_value is not None and float_value.is_integer():
        int_value = int(float_value)
    return tree.Number(token.pos, text, int_value, float_value, float_syntax)


def _parse_number_float(text: str) -> float | None:
    clean = text.replace("_", "")
    try:
        if clean.lstrip("+-")[:2].lower() == "0x":
            return float.fromhex(clean) if re.search("[pP]", clean) else float(int(clean, 16))
        return float(clean)
    except ValueError:
        return None
