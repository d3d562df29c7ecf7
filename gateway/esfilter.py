"""EventSource-level `filter.expression`: Argo's expr-lang expressions, evaluated as CEL (celpy).

Argo Events evaluates `filter.expression` with expr-lang over the event data, whose top-level keys
have `-` replaced by `_` (`headers`, `body`, `metadata`, ...). A false result, or an evaluation
error, means the event is answered 200 and not published. hookgate parses the expr-lang text once,
at load time, and emits an equivalent CEL program that celpy runs:

- operators: `== != < > <= >=`, `&& || !` and `and or not`, `+ - * / % ** ^`, `in` (list element or
  map key), `not in`, `matches` (unanchored RE2, as Go's regexp), `contains`, `startsWith`,
  `endsWith` (each also with `not`), `a ? b : c`, `??`, ranges `1..3`, `[list]` and `{map: literals}`.
- access: `body.action`, `body?.x`, `headers["X-Gitea-Event"]`, `body.commits[0]`, `list[-1]`,
  `s[1:3]`. As in expr-lang, a key missing from a map is `nil` (so `body.missing == "x"` is false),
  while reading a field of `nil` is an error.
- numbers compare and compute across integers and floats by value, as in expr-lang (`body.n == 2`
  holds when the payload has `2.0`); `/` always divides as floats.
- builtins: `len lower upper trim trimPrefix trimSuffix hasPrefix hasSuffix split join replace
  string int float asInt asFloat abs toJson keys values`, and the predicates `all any none one
  filter map count` with `{# > 1}` / `{.name == "x"}` closures (braces optional).

Anything else (sprig functions, `jsonpath`, `let`, pipes, `$env`) is a load-time error naming the
expression and the construct, never a silent difference.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError

from gateway.models import EventSourceFilter
from gateway.webhook import Accepted, Incoming

log = logging.getLogger(__name__)


class FilterError(ValueError):
    """An expression hookgate cannot translate or compile; the message names the expression."""


# --- tokens ----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>\?\.|\?\?|\.\.|==|!=|<=|>=|&&|\|\||\*\*|[-+*/%^<>!?:.,()\[\]{}#|;=])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, name, op, end
    text: str
    pos: int


def _tokens(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise _Syntax(f"unexpected character {src[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("end", "", len(src)))
    return out


def _unquote(text: str, pos: int) -> str:
    if text[0] == "`":
        return text[1:-1]
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise _Syntax(f"invalid escape \\{nxt} in string", pos)
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif body[i + 1 : i + 4].isdigit() and len(body[i + 1 : i + 4]) == 3:
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise _Syntax(f"invalid escape \\{nxt} in string", pos)
    return "".join(out)


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    if clean[:2].lower() in ("0x", "0o", "0b"):
        return int(clean, 0)
    if any(c in clean for c in ".eE"):
        return float(clean)
    return int(clean)


class _Syntax(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


# --- parse (expr-lang's grammar and precedences) ---------------------------------------------------

Node = tuple[Any, ...]  # ("lit", v) ("var", name) ("ptr", n) ("get", obj, key, optional) ("slice", obj, a, b)
#                         ("call", name, args) ("pred", name, seq, n, body) ("un", op, x) ("bin", op, a, b)
#                         ("if", c, a, b) ("list", items) ("map", pairs)

_BINARY = {"or": 10, "||": 10, "and": 15, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20,
           "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20, "..": 25, "+": 30, "-": 30,
           "*": 60, "/": 60, "%": 60, "**": 100, "^": 100, "??": 500}
_RIGHT = {"**", "^"}
_NEGATABLE = {"in", "matches", "contains", "startsWith", "endsWith"}
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_PREDICATES = {"all", "any", "none", "one", "filter", "map", "count"}
_UNSUPPORTED_NAMES = {"let": "`let` bindings", "sprig": "sprig functions", "jsonpath": "the jsonpath function",
                      "$env": "`$env`", "if": "`if` expressions"}


class _Parser:
    def __init__(self, src: str) -> None:
        self.toks = _tokens(src)
        self.i = 0
        self.closures = 0  # closures opened so far: numbers the `#` of each
        self.scope: list[int] = []  # the closures we are inside, innermost last

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text in texts

    def take(self, text: str) -> _Tok:
        if not self.at(text):
            raise _Syntax(f"expected {text!r}, found {self.tok.text or 'end of expression'!r}", self.tok.pos)
        tok = self.tok
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            if self.at("|", ";"):
                raise _Unsupported(f"`{self.tok.text}` (pipes and sequences)")
            raise _Syntax(f"unexpected {self.tok.text!r}", self.tok.pos)
        return node

    def expr(self, min_prec: int = 0) -> Node:
        left = self.unary()
        while True:
            negate = False
            op = self.tok.text if self.tok.kind in ("op", "name") else ""
            if op == "not" and self.toks[self.i + 1].text in _NEGATABLE:
                negate, op = True, self.toks[self.i + 1].text
            prec = _BINARY.get(op)
            if op == "?" and min_prec == 0:
                self.i += 1
                yes = self.expr()
                self.take(":")
                left = ("if", left, yes, self.expr())
                continue
            if prec is None or prec < min_prec:
                return left
            self.i += 2 if negate else 1
            right = self.expr(prec if op in _RIGHT else prec + 1)
            left = ("bin", op, left, right)
            if negate:
                left = ("un", "not", left)

    def unary(self) -> Node:
        op = self.tok.text if self.tok.kind in ("op", "name") else ""
        if op in _UNARY:
            self.i += 1
            return ("un", op, self.expr(_UNARY[op]))
        return self.postfix(self.primary())

    def primary(self) -> Node:
        tok = self.tok
        self.i += 1
        if tok.kind == "num":
            return ("lit", _number(tok.text))
        if tok.kind == "str":
            return ("lit", _unquote(tok.text, tok.pos))
        if tok.kind == "name":
            return self.name(tok)
        if tok.text == "(":
            node = self.expr()
            self.take(")")
            return node
        if tok.text == "[":
            return ("list", self.items("]"))
        if tok.text == "{":
            return ("map", self.pairs())
        if tok.text == "#" and self.scope:
            if self.tok.kind == "name" and self.tok.pos == tok.pos + 1:
                raise _Unsupported(f"`#{self.tok.text}`")
            return ("ptr", self.scope[-1])
        if tok.text == "." and self.scope and self.tok.kind == "name":
            self.i += 1
            return ("get", ("ptr", self.scope[-1]), ("lit", self.toks[self.i - 1].text), False)
        raise _Syntax(f"unexpected {tok.text or 'end of expression'!r}", tok.pos)

    def name(self, tok: _Tok) -> Node:
        if tok.text in ("true", "false"):
            return ("lit", tok.text == "true")
        if tok.text == "nil":
            return ("lit", None)
        if tok.text in _UNSUPPORTED_NAMES:
            raise _Unsupported(_UNSUPPORTED_NAMES[tok.text])
        if not self.at("("):
            return ("var", tok.text)
        self.take("(")
        if tok.text in _PREDICATES:
            return self.predicate(tok)
        if tok.text not in _FUNCTIONS:
            raise _Unsupported(f"the function {tok.text}()")
        args = self.items(")")
        low, high = _FUNCTIONS[tok.text][1]
        if not low <= len(args) <= high:
            raise _Syntax(f"{tok.text}() takes {low if low == high else f'{low} to {high}'} argument(s)", tok.pos)
        return ("call", tok.text, args)

    def predicate(self, tok: _Tok) -> Node:
        seq = self.expr()
        self.take(",")
        self.closures += 1
        n = self.closures
        self.scope.append(n)
        braced = self.at("{")
        if braced:
            self.i += 1
        body = self.expr()
        if braced:
            self.take("}")
        self.scope.pop()
        self.take(")")
        return ("pred", tok.text, seq, n, body)

    def items(self, close: str) -> list[Node]:
        out: list[Node] = []
        while not self.at(close):
            out.append(self.expr())
            if not self.at(close):
                self.take(",")
        self.take(close)
        return out

    def pairs(self) -> list[tuple[Node, Node]]:
        out: list[tuple[Node, Node]] = []
        while not self.at("}"):
            tok = self.tok
            if tok.kind == "name":
                self.i += 1
                key: Node = ("lit", tok.text)
            elif tok.kind in ("str", "num"):
                key = self.primary()
            else:
                self.take("(")
                key = self.expr()
                self.take(")")
            self.take(":")
            out.append((key, self.expr()))
            if not self.at("}"):
                self.take(",")
        self.take("}")
        return out

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at(".", "?."):
                optional = self.tok.text == "?."
                self.i += 1
                if optional and self.at("["):
                    node = self.index(node, optional=True)
                    continue
                if self.tok.kind != "name":
                    raise _Syntax("expected a field name after '.'", self.tok.pos)
                name = self.tok.text
                self.i += 1
                if self.at("("):
                    raise _Unsupported(f"the method call .{name}()")
                node = ("get", node, ("lit", name), optional)
            elif self.at("["):
                node = self.index(node, optional=False)
            else:
                return node

    def index(self, node: Node, *, optional: bool) -> Node:
        self.take("[")
        low = None if self.at(":") else self.expr()
        if self.at(":"):
            self.i += 1
            high = None if self.at("]") else self.expr()
            self.take("]")
            return ("slice", node, low, high)
        self.take("]")
        assert low is not None
        return ("get", node, low, optional)


class _Unsupported(Exception):
    pass


# --- values: celpy's types in, Python values for the helpers, celpy's types out ---------------------


def _py(value: Any) -> Any:
    if value is None or isinstance(value, CELEvalError):
        return value
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, Mapping):
        return {_py(k): _py(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_py(v) for v in value]
    return value


def _cel(value: Any) -> Any:
    """JSON-shaped Python values as celpy's; an integer beyond int64 becomes a double, as Go decodes it."""
    if isinstance(value, bool) or value is None:
        return celpy.json_to_cel(value)
    if isinstance(value, int):
        return celtypes.IntType(value) if -(2**63) <= value < 2**63 else celtypes.DoubleType(float(value))
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(str(k)): _cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([_cel(v) for v in value])
    return celpy.json_to_cel(value)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type(value: Any) -> str:
    return {type(None): "nil", bool: "bool", int: "int", float: "float64", str: "string", list: "array",
            dict: "map"}.get(type(value), type(value).__name__)


class _Fail(Exception):
    """An expr-lang runtime error inside a helper; becomes a CEL error value."""


def _helper(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, CELEvalError):  # an error operand is the result, as in CEL's own operators
                return arg
        try:
            return _cel(fn(*(_py(a) for a in args)))
        except re2.error as e:
            return CELEvalError(f"invalid regular expression: {_regex_message(e)}")
        except (_Fail, ValueError, TypeError, OverflowError, ZeroDivisionError) as e:
            return CELEvalError(str(e) or type(e).__name__)

    return call


def _same(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _order(op: str, a: Any, b: Any) -> bool:
    if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise _Fail(f"invalid operation: {op} (mismatched types {_type(a)} and {_type(b)})")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _contained(a: Any, b: Any) -> bool:
    if isinstance(b, list):
        return any(_same(a, x) for x in b)
    if isinstance(b, dict):
        return isinstance(a, str) and a in b
    raise _Fail(f"invalid operation: in (mismatched types {_type(a)} and {_type(b)})")


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return a + b
    if not (_is_num(a) and _is_num(b)):
        raise _Fail(f"invalid operation: {op} (mismatched types {_type(a)} and {_type(b)})")
    if op == "/":
        if b == 0:
            return math.copysign(math.inf, a) if a else math.nan
        return a / b
    if op == "%":
        if a != int(a) or b != int(b) or b == 0:
            raise _Fail("invalid operation: % needs non-zero integers")
        return int(math.fmod(int(a), int(b)))
    if op in ("**", "^"):
        return float(a) ** float(b)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _fetch(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key) if isinstance(key, str) else None
    if isinstance(obj, list | str):
        if not _is_num(key) or key != int(key):
            raise _Fail(f"cannot use {_type(key)} as an index")
        i = int(key) + (len(obj) if key < 0 else 0)
        if not 0 <= i < len(obj):
            raise _Fail(f"index out of range: {int(key)} (length {len(obj)})")
        return obj[i]
    raise _Fail(f"cannot fetch {key} from {_type(obj)}")


def _slice(obj: Any, low: Any, high: Any) -> Any:
    if not isinstance(obj, list | str):
        raise _Fail(f"cannot slice {_type(obj)}")
    return obj[int(low) if low is not None else None : int(high) if high is not None else None]


def _text(name: str, *values: Any) -> None:
    for v in values:
        if not isinstance(v, str):
            raise _Fail(f"{name}: expected a string, got {_type(v)}")


def _matches(text: Any, pattern: Any) -> bool:
    _text("matches", text, pattern)
    return _regex(pattern).search(text) is not None


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _regex_message(error: Exception) -> str:
    raw = error.args[0] if error.args else b""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        return int(float(value)) if "." in value or "e" in value.lower() else int(value)
    if isinstance(value, bool) or not _is_num(value):
        raise _Fail(f"invalid operation: int({_type(value)})")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not (_is_num(value) or isinstance(value, str)):
        raise _Fail(f"invalid operation: float({_type(value)})")
    return float(value)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if _is_num(value):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _len(value: Any) -> int:
    if not isinstance(value, str | list | dict):
        raise _Fail(f"invalid argument for len (type {_type(value)})")
    return len(value)


def _strings(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        _text(name, *args)
        return fn(*args)

    return call


def _number_arg(name: str, value: Any) -> int | float:
    if not _is_num(value):
        raise _Fail(f"invalid argument for {name} (type {_type(value)})")
    return value  # type: ignore[no-any-return]


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Fail(f"invalid argument for {name} (type {_type(value)})")
    return value


def _join(items: Any, sep: str = "") -> str:
    _text("join", sep)
    return sep.join(_to_string(x) for x in _as_list(items))


def _trim(text: Any, chars: Any = None) -> str:
    _text("trim", text, *([] if chars is None else [chars]))
    return str(text).strip(chars)


#: expr-lang builtins hookgate translates: name → (implementation on Python values, (min, max) arity).
_FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, int]]] = {
    "len": (_len, (1, 1)),
    "lower": (_strings(str.lower, "lower"), (1, 1)),
    "upper": (_strings(str.upper, "upper"), (1, 1)),
    "trim": (_trim, (1, 2)),
    "trimPrefix": (_strings(str.removeprefix, "trimPrefix"), (2, 2)),
    "trimSuffix": (_strings(str.removesuffix, "trimSuffix"), (2, 2)),
    "hasPrefix": (_strings(str.startswith, "hasPrefix"), (2, 2)),
    "hasSuffix": (_strings(str.endswith, "hasSuffix"), (2, 2)),
    "split": (_strings(str.split, "split"), (2, 2)),
    "join": (_join, (1, 2)),
    "replace": (_strings(str.replace, "replace"), (3, 3)),
    "string": (_to_string, (1, 1)),
    "int": (_to_int, (1, 1)),
    "asInt": (_to_int, (1, 1)),
    "float": (_to_float, (1, 1)),
    "asFloat": (_to_float, (1, 1)),
    "abs": (lambda x: abs(_number_arg("abs", x)), (1, 1)),
    "toJson": (lambda x: json.dumps(x, separators=(",", ":"), ensure_ascii=False), (1, 1)),
    "keys": (lambda m: list(_mapping("keys", m)), (1, 1)),
    "values": (lambda m: list(_mapping("values", m).values()), (1, 1)),
}


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _Fail(f"cannot iterate over {_type(value)}")
    return value


def _truth(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Fail(f"{name}: the predicate must be a boolean, got {_type(value)}")
        return value

    return check


_HELPERS: dict[str, Callable[..., Any]] = {
    "_==_": _helper(_same),
    "_!=_": _helper(lambda a, b: not _same(a, b)),
    **{f"_{op}_": _helper(functools.partial(_order, op)) for op in ("<", "<=", ">", ">=")},
    "_in_": _helper(_contained),
    **{f"_{op}_": _helper(functools.partial(_arith, op)) for op in ("+", "-", "*", "/", "%")},
    "-_": _helper(lambda a: -_number_arg("-", a)),
    "_hg_pos": _helper(lambda a: _number_arg("+", a)),
    "_hg_pow": _helper(functools.partial(_arith, "**")),
    "_hg_get": _helper(_fetch),
    "_hg_oget": _helper(lambda obj, key: None if obj is None else _fetch(obj, key)),
    "_hg_slice": _helper(_slice),
    "_hg_matches": _helper(_matches),
    "_hg_contains": _helper(lambda a, b: _text("contains", a, b) or b in a),
    "_hg_startsWith": _helper(lambda a, b: _text("startsWith", a, b) or a.startswith(b)),
    "_hg_endsWith": _helper(lambda a, b: _text("endsWith", a, b) or a.endswith(b)),
    "_hg_coalesce": _helper(lambda a, b: b if a is None else a),
    "_hg_range": _helper(lambda a, b: list(range(_to_int(a), _to_int(b) + 1))),
    "_hg_list": _helper(_as_list),
    "_hg_bool": _helper(_truth("predicate")),
    **{f"_hg_fn_{name}": _helper(fn) for name, (fn, _) in _FUNCTIONS.items()},
}


# --- emit CEL ---------------------------------------------------------------------------------------


@dataclass
class _Emitter:
    constants: dict[str, Any] = dataclasses.field(default_factory=dict)
    variables: dict[str, str] = dataclasses.field(default_factory=dict)  # expr-lang name → CEL name
    patterns: list[str] = dataclasses.field(default_factory=list)

    def const(self, value: Any) -> str:
        name = f"_hgk{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, node: Node) -> str:
        kind = node[0]
        if kind == "lit":
            value = node[1]
            if value is None or isinstance(value, bool):
                return {None: "null", True: "true", False: "false"}[value]
            return self.const(value)
        if kind == "var":
            return self.variables.setdefault(node[1], f"_hgv{len(self.variables)}")
        if kind == "ptr":
            return f"_hgit{node[1]}"
        if kind == "get":
            return f"{'_hg_oget' if node[3] else '_hg_get'}({self.emit(node[1])}, {self.emit(node[2])})"
        if kind == "slice":
            bounds = [self.emit(b) if b is not None else "null" for b in node[2:]]
            return f"_hg_slice({self.emit(node[1])}, {', '.join(bounds)})"
        if kind == "call":
            return f"_hg_fn_{node[1]}({', '.join(self.emit(a) for a in node[2])})"
        if kind == "pred":
            return self.predicate(node)
        if kind == "un":
            arg = self.emit(node[2])
            return {"not": f"!({arg})", "!": f"!({arg})", "-": f"-({arg})", "+": f"_hg_pos({arg})"}[node[1]]
        if kind == "bin":
            return self.binary(node[1], node[2], node[3])
        if kind == "if":
            return f"({self.emit(node[1])} ? {self.emit(node[2])} : {self.emit(node[3])})"
        if kind == "list":
            return f"[{', '.join(self.emit(x) for x in node[1])}]"
        if kind == "map":
            return "{" + ", ".join(f"{self.emit(k)}: {self.emit(v)}" for k, v in node[1]) + "}"
        raise AssertionError(kind)

    def binary(self, op: str, left: Node, right: Node) -> str:
        if op == "matches" and right[0] == "lit":
            if not isinstance(right[1], str):
                raise _Unsupported("`matches` with a pattern that is not a string")
            self.patterns.append(right[1])
        a, b = self.emit(left), self.emit(right)
        cel = {"or": "||", "and": "&&"}.get(op, op)
        if cel in ("||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"):
            return f"({a} {cel} {b})"
        name = {"**": "pow", "^": "pow", "??": "coalesce", "..": "range"}.get(op, op)
        return f"_hg_{name}({a}, {b})"

    def predicate(self, node: Node) -> str:
        _, name, seq, n, body = node
        it, xs = f"_hgit{n}", f"_hg_list({self.emit(seq)})"
        test = f"_hg_bool({self.emit(body)})"
        return {"all": f"{xs}.all({it}, {test})", "any": f"{xs}.exists({it}, {test})",
                "none": f"!{xs}.exists({it}, {test})", "one": f"{xs}.exists_one({it}, {test})",
                "filter": f"{xs}.filter({it}, {test})", "map": f"{xs}.map({it}, {self.emit(body)})",
                "count": f"size({xs}.filter({it}, {test}))"}[name]


# --- the compiled filter ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str
    error: bool = False


@dataclass(frozen=True)
class EventFilter:
    expression: str
    cel: str
    variables: Mapping[str, str]
    constants: Mapping[str, Any]
    program: Any

    def evaluate(self, data: Mapping[str, Any]) -> Verdict:
        try:
            # Converting the data is inside the try too: a body nested hundreds deep exhausts the stack.
            params = parameters(data)
            activation: dict[str, Any] = {cel: _cel(params.get(name)) for name, cel in self.variables.items()}
            activation.update(self.constants)
            result = self.program.evaluate(activation)
        except CELEvalError as e:
            return Verdict(False, f"filter.expression {self.expression!r} failed: {_cel_message(e)}", error=True)
        except Exception as e:  # celpy surfaces some evaluation failures as Python errors
            return Verdict(False, f"filter.expression {self.expression!r} failed: {type(e).__name__}: {e}",
                           error=True)
        if not isinstance(result, celtypes.BoolType):
            return Verdict(False, f"filter.expression {self.expression!r} gave {_type(_py(result))}, "
                                  "not a boolean", error=True)
        if result:
            return Verdict(True, f"filter.expression {self.expression!r} is true")
        return Verdict(False, f"filter.expression {self.expression!r} is false")


def _cel_message(error: CELEvalError) -> str:
    return str(error.args[0]) if error.args else "evaluation error"


def parameters(data: Mapping[str, Any]) -> dict[str, Any]:
    """Argo's environment: the event data's top-level keys, with `-` replaced by `_`."""
    return {str(key).replace("-", "_"): value for key, value in data.items()}


@functools.lru_cache(maxsize=1024)
def compile_filter(expression: str) -> EventFilter:
    """Translate and compile once; raise FilterError naming the expression when that is not possible."""
    if not expression.strip():
        raise FilterError("filter.expression is empty")
    try:
        tree = _Parser(expression).parse()
        emitter = _Emitter()
        cel = emitter.emit(tree)
    except _Syntax as e:
        raise FilterError(f"filter.expression {expression!r}: {e.message} at offset {e.pos}") from None
    except _Unsupported as e:
        raise FilterError(f"filter.expression {expression!r}: not supported by hookgate: {e}") from None
    except (ValueError, RecursionError) as e:  # a number or escape Python cannot represent; absurd nesting
        raise FilterError(f"filter.expression {expression!r} cannot be parsed: {e}") from None
    for pattern in emitter.patterns:
        try:
            _regex(pattern)
        except re2.error as e:
            raise FilterError(f"filter.expression {expression!r}: invalid regular expression {pattern!r}: "
                              f"{_regex_message(e)}") from None
    env = celpy.Environment()
    try:
        program = env.program(env.compile(cel), functions=_HELPERS)
    except Exception as e:  # a translation hookgate got wrong: still name the expression
        raise FilterError(f"filter.expression {expression!r} cannot be compiled: {e}") from None
    return EventFilter(expression=expression, cel=cel, variables=dict(emitter.variables),
                       constants={k: _cel(v) for k, v in emitter.constants.items()}, program=program)


# --- applying it --------------------------------------------------------------------------------------


def screen(accepted: Accepted, flt: EventFilter | None, *, label: str) -> Accepted:
    """An accepted delivery the filter says no to stays accepted (200), and is not published."""
    if flt is None or not accepted.publish:
        return accepted
    verdict = flt.evaluate(accepted.data)
    if verdict.passed:
        return accepted
    if verdict.error:
        log.warning("%s delivery %s not published: %s", label, accepted.event_id, verdict.reason)
    return accepted.unpublished(verdict.reason)


def guard(provider: Callable[[Incoming], Accepted], spec: EventSourceFilter | None, *, label: str
          ) -> Callable[[Incoming], Accepted]:
    """`provider` with the EventSource's `filter.expression` applied to what it accepts."""
    if spec is None:
        return provider
    flt = compile_filter(spec.expression)
    return lambda incoming: screen(provider(incoming), flt, label=label)

