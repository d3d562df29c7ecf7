"""Argo Events `exprs[].expr` filters, evaluated as CEL (celpy).

Argo Events evaluates `expr` with govaluate. hookgate evaluates CEL, and accepts the govaluate
forms used in practice by translating them once, at load time (`translate`):

- `a =~ "re"` becomes `a.matches("re")` and `a !~ "re"` becomes `!a.matches("re")`; both
  regexes are unanchored RE2, as in govaluate. A constant pattern is checked at load time.
- `'single quoted'` strings become double-quoted. A string literal is read the govaluate way: a
  backslash makes the next character literal (`"\\d"` is `\\d`, `"\\."` is `.`, `"\\n"` is `n`),
  which agrees with CEL for `\\\\`, `\\"` and `\\'`. CEL raw (`r"..."`), bytes and triple-quoted
  strings are kept as written.
- `x in ("a", "b")` becomes `x in ["a", "b"]`; `IN` is `in`.
- `[odd-name]` (govaluate's escaped parameter) becomes a CEL identifier when `odd-name` is a
  declared field name that is not a CEL identifier.
- `&& || ! == != < > <= >=`, parentheses, numbers, `true`/`false` are the same in both; anything
  else is taken as CEL, so a plain CEL expression passes through unchanged.
- govaluate operators CEL lacks (`**`, `??`, bitwise `& | ^ ~ << >>`) are load-time errors.

Numbers (the one semantic trap): govaluate reads every number, in the payload and in the
expression, as float64, so `e == 2` holds when the payload has `2` and `count > 1.5` works for an
integer. celpy 0.5 has no heterogeneous numeric operators (`2.0 == 2` is a "no such overload"
error). hookgate therefore binds every JSON number as a CEL `double` (as govaluate) and keeps
literals as written, and replaces the comparison operators, `in` and arithmetic with versions that
compare and compute across int, uint and double by numeric value: the CEL specification's
heterogeneous numeric comparison, which cel-go implements. So `e == 2`, `e == 2.0`, `count > 1.5`,
`e in [1, 2]`, `size(labels) > 0` and `labels[0]` all work. `==` / `!=` between values of
different non-numeric types is false / true (govaluate's reflect.DeepEqual, CEL's heterogeneous
equality) instead of an error.

Other semantics:
- The result passes only if it is exactly boolean `true` (Argo: `result == true`).
- A name with no bound value is an error when the evaluation needs it, with govaluate's words
  (`No parameter 'e' found.`). CEL's `||` / `&&` absorb an error on either side when the other side
  decides the result; govaluate evaluates left to right, so `e == 2 || ok` with `e` unbound is an
  error in Argo and `true` here (`b == "b" || (d && e == 2)` is `true` in both).
- Known govaluate differences left as they are: a quoted string that parses as a date is a time
  value in govaluate and a string here; a govaluate string ends at either quote character.

Compilation happens once per expression (cached): celpy parses the CEL text and its transpiler
turns it into Python closures that are called with the bound values directly; if that celpy
internal path is unavailable, the expression runs on celpy's public interpreter instead (slower,
same results).
"""

from __future__ import annotations

import functools
import math
import operator
import re
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import celpy
import celpy.evaluation
import lark
import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError

Engine = Literal["auto", "interpreted"]


class ExprError(ValueError):
    """An expression that cannot be translated, compiled or evaluated."""


class RegexError(ValueError):
    """A regular expression Go's regexp package (RE2 syntax) rejects; the message is Go's."""


# --- Go regular expressions ----------------------------------------------------------------------


class Matcher(Protocol):
    def search(self, text: str, /) -> object | None: ...
    def fullmatch(self, text: str, /) -> object | None: ...


# RE2 (C++) error codes worded the way Go's regexp/syntax words them, as Argo's errors show them.
_GO_REGEX_ERRORS = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
}
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


class _Untranslatable(Exception):
    """A Go pattern with no trivially equivalent Python `re` pattern: RE2 itself is used."""


@functools.lru_cache(maxsize=4096)
def compile_go_regex(pattern: str) -> Matcher:
    """Compile a Go (RE2 syntax) pattern; raise `RegexError` worded as Go's regexp.Compile.

    RE2 decides what is valid. Matching uses Python's `re` when the pattern translates trivially
    (ASCII classes as in Go, `$` = end of text, `\\z`, `\\Q..\\E`, POSIX classes), because its
    per-call cost is far lower; anything else is matched by RE2 itself.
    """
    options = re2.Options()
    options.log_errors = False  # RE2 would otherwise print parse errors on stderr
    try:
        slow = re2.compile(pattern, options)
    except re2.error as e:
        raise RegexError(_go_regex_message(e)) from None
    try:
        return _python_regex(pattern)
    except _Untranslatable:
        return slow


def _go_regex_message(error: Exception) -> str:
    raw = error.args[0] if error.args else b""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    code, _, arg = text.partition(": ")
    return f"error parsing regexp: {_GO_REGEX_ERRORS.get(code, code)}: `{arg}`"


def _python_regex(pattern: str) -> re.Pattern[str]:
    flags = re.findall(r"\(\?([a-zA-Z]+)[:)]", pattern)
    if any("U" in f for f in flags) or "{," in pattern:
        raise _Untranslatable  # Go-only flag; `{,n}` is a literal in Go and a repeat in Python
    if any("i" in f for f in flags) and not pattern.isascii():
        raise _Untranslatable  # Go folds Unicode case, re.ASCII would not
    multiline = any("m" in f for f in flags)
    text = "".join(_translate_regex(pattern, multiline=multiline))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. FutureWarning on possible set operations
            return re.compile(text, re.ASCII)
    except (re.error, Warning):
        raise _Untranslatable from None


def _translate_regex(pattern: str, *, multiline: bool) -> Iterator[str]:
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            piece, i = _translate_escape(pattern, i)
            yield piece
            continue
        if in_class:
            if pattern.startswith("[:", i):
                piece, i = _posix_class(pattern, i)
                yield piece
                continue
            in_class = c != "]"
            yield "\\" + c if c in "[&~|" else c  # literal in Go, set syntax hints in Python
        elif c == "[":
            start = i + 2 if pattern.startswith("[^", i) else i + 1
            close_first = pattern.startswith("]", start)  # `[]a]`: a leading ] is literal
            yield pattern[i:start] + ("\\]" if close_first else "")
            i, in_class = start + (1 if close_first else 0), True
            continue
        else:
            yield "\\Z" if c == "$" and not multiline else c  # Go's `$` is end of text
        i += 1


def _translate_escape(pattern: str, i: int) -> tuple[str, int]:
    nxt = pattern[i + 1 : i + 2]
    if nxt == "z":
        return "\\Z", i + 2
    if nxt == "Q":
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if nxt in ("p", "P", "C") or nxt.isdigit() or pattern.startswith("x{", i + 1):
        raise _Untranslatable  # Unicode classes, octal and \x{...} differ between the two
    return pattern[i : i + 2], i + 2


def _posix_class(pattern: str, i: int) -> tuple[str, int]:
    end = pattern.find(":]", i + 2)
    name = pattern[i + 2 : end] if end > 0 else ""
    if name not in _POSIX_CLASSES:
        raise _Untranslatable  # negated `[:^x:]` and unknown names
    return _POSIX_CLASSES[name], end + 2


# --- govaluate → CEL translation -----------------------------------------------------------------

_UNSUPPORTED_OPERATORS = {
    "**": "govaluate's exponent `**`", "??": "govaluate's null coalescence `??`",
    "<<": "govaluate's bit shift `<<`", ">>": "govaluate's bit shift `>>`",
    "&": "govaluate's bitwise `&`", "|": "govaluate's bitwise `|`", "^": "govaluate's bitwise `^`",
    "~": "govaluate's bitwise `~`", "=": "`=` (did you mean `==`?)",
}
_OPERATORS = sorted(
    ["=~", "!~", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":",
     ",", ".", *_UNSUPPORTED_OPERATORS], key=len, reverse=True)
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_SEGMENT_BREAKS = {"&&", "||", "?", ":", ","}
_COMPARATORS = {"==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CEL_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?")
_CEL_STRING = re.compile(r"""([rR][bB]?|[bB][rR]?)?("{3}|'{3}|"|')""")
_NOT_VARIABLES = {"true", "false", "null", "in", "int", "uint", "double", "bool", "string", "bytes",
                  "list", "map", "null_type", "type", "timestamp", "duration", "dyn", "has"}


@dataclass(slots=True)
class _Tok:
    kind: str  # "str", "num", "ident", "op", "open", "close"
    text: str  # the CEL text for this token
    ws: str = ""  # whitespace before it
    value: str | None = None  # a plain string literal's value


@dataclass(slots=True)
class _Group:
    open: _Tok
    items: list[_Tok | _Group]
    close: _Tok


_Item = _Tok | _Group


def cel_identifier(name: str, index: int) -> str:
    """The CEL name a field is bound to: itself when it is a CEL identifier."""
    if _CEL_IDENT.match(name) and name not in ("true", "false", "null", "in"):
        return name
    return f"_hg_field_{index}"


def translate(expr: str, *, fields: Iterable[str] = ()) -> str:
    """The CEL text for a govaluate (or CEL) expression; `fields` are the declared field names."""
    return _translate(expr, _names(fields))[0]


def _names(fields: Iterable[str]) -> dict[str, str]:
    return {name: cel_identifier(name, i) for i, name in enumerate(fields)}


def _translate(expr: str, names: Mapping[str, str]) -> tuple[str, list[str]]:
    tokens, trailing = _tokenize(expr, names)
    renderer = _Renderer()
    return renderer.seq(_group(tokens)) + trailing, renderer.patterns


def _tokenize(src: str, names: Mapping[str, str]) -> tuple[list[_Tok], str]:
    tokens: list[_Tok] = []
    i = 0
    while True:
        start = i
        while i < len(src) and src[i].isspace():
            i += 1
        if i >= len(src):
            return tokens, src[start:]
        tok, end = _read_token(src, i, names)
        tok.ws = src[start:i]
        tokens.append(tok)
        i = end


def _read_token(src: str, i: int, names: Mapping[str, str]) -> tuple[_Tok, int]:
    c = src[i]
    string = _CEL_STRING.match(src, i)
    if string and (string.group(1) or len(string.group(2)) == 3):
        return _read_cel_string(src, i, string)
    if c in "\"'":
        value, end = _read_plain_string(src, i)
        return _Tok("str", _cel_quote(value), value=value), end
    if c == "[":
        escaped = _escaped_field(src, i, names)
        if escaped:
            return escaped
    if c in _PAIRS:
        return _Tok("open", c), i + 1
    if c in ")]}":
        return _Tok("close", c), i + 1
    number = _NUMBER.match(src, i)
    if number and (c.isdigit() or c == "."):
        return _Tok("num", number.group()), number.end()
    ident = _IDENT.match(src, i)
    if ident:
        word = ident.group()
        return _Tok("ident", "in" if word == "IN" else word), ident.end()
    return _read_operator(src, i)


def _read_operator(src: str, i: int) -> tuple[_Tok, int]:
    for op in _OPERATORS:
        if src.startswith(op, i):
            if op in _UNSUPPORTED_OPERATORS:
                raise ExprError(f"{_UNSUPPORTED_OPERATORS[op]} is not supported (no CEL equivalent)")
            return _Tok("op", op), i + len(op)
    raise ExprError(f"unexpected character {src[i]!r} at position {i}")


def _escaped_field(src: str, i: int, names: Mapping[str, str]) -> tuple[_Tok, int] | None:
    # govaluate's `[odd-name]`: only for declared names that cannot be CEL identifiers, so that a
    # CEL list literal such as `[ref]` keeps its CEL meaning.
    end = src.find("]", i)
    name = src[i + 1 : end] if end > 0 else None
    if name is None or name not in names or names[name] == name:
        return None
    return _Tok("ident", names[name]), end + 1


def _read_plain_string(src: str, i: int) -> tuple[str, int]:
    quote, out, j = src[i], [], i + 1
    while j < len(src):
        c = src[j]
        if c == "\\" and j + 1 < len(src):
            out.append(src[j + 1])  # govaluate: a backslash makes the next character literal
            j += 2
        elif c == quote:
            return "".join(out), j + 1
        else:
            out.append(c)
            j += 1
    raise ExprError(f"unclosed string literal starting at position {i}")


def _read_cel_string(src: str, i: int, match: re.Match[str]) -> tuple[_Tok, int]:
    raw, quote = "r" in (match.group(1) or "").lower(), match.group(2)
    j = match.end()
    while j < len(src):
        if src.startswith(quote, j):
            return _Tok("str", src[i : j + len(quote)]), j + len(quote)
        j += 2 if src[j] == "\\" and not raw else 1
    raise ExprError(f"unclosed string literal starting at position {i}")


def _cel_quote(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _group(tokens: list[_Tok]) -> list[_Item]:
    stack: list[list[_Item]] = [[]]
    opens: list[_Tok] = []
    for tok in tokens:
        if tok.kind == "open":
            opens.append(tok)
            stack.append([])
        elif tok.kind == "close":
            if not opens or _PAIRS[opens[-1].text] != tok.text:
                raise ExprError(f"unbalanced {tok.text!r}")
            items = stack.pop()
            stack[-1].append(_Group(opens.pop(), items, tok))
        else:
            stack[-1].append(tok)
    if opens:
        raise ExprError(f"unclosed {opens[-1].text!r}")
    return stack[0]


class _Renderer:
    """Writes grouped tokens back as CEL, rewriting `=~`, `!~` and `in (...)` in place."""

    def __init__(self) -> None:
        self.patterns: list[str] = []  # constant regexes, checked at load time

    def seq(self, items: list[_Item]) -> str:
        out = []
        for segment, separator in _segments(items):
            out.append(self.segment(segment))
            if separator is not None:
                out.append(separator.ws + separator.text)
        return "".join(out)

    def segment(self, items: list[_Item]) -> str:
        self._note_matches_call(items)
        first, rest = _split_comparisons(items)
        if not any(op.text in ("=~", "!~") or _is_tuple_in(op, right) for op, right in rest):
            return "".join(self.item(x) for x in items)
        text, simple = self.verbatim(first), _is_primary(first)
        for op, right in rest:
            text, simple = self.combine(text, simple, op, right)
        return _leading_ws(items) + text

    def combine(self, left: str, simple: bool, op: _Tok, right: list[_Item]) -> tuple[str, bool]:
        if op.text in ("=~", "!~"):
            self._note_pattern(right)
            call = f"{left if simple else f'({left})'}.matches({self.verbatim(right)})"
            return (call, True) if op.text == "=~" else ("!" + call, False)
        if _is_tuple_in(op, right):
            group = right[0]
            assert isinstance(group, _Group)
            return f"{left} in [{self.seq(group.items).strip()}]", False
        return f"{left} {op.text} {self.verbatim(right)}", False

    def verbatim(self, items: list[_Item]) -> str:
        return "".join(self.item(x) for x in items).strip()

    def item(self, item: _Item) -> str:
        if isinstance(item, _Tok):
            return item.ws + item.text
        inner = self.seq(item.items)
        return f"{item.open.ws}{item.open.text}{inner}{item.close.ws}{item.close.text}"

    def _note_pattern(self, right: list[_Item]) -> None:
        if len(right) == 1 and isinstance(right[0], _Tok) and right[0].value is not None:
            self.patterns.append(right[0].value)

    def _note_matches_call(self, items: list[_Item]) -> None:
        # CEL written directly: `x.matches("lit")` gets its constant pattern checked too.
        for a, b, c in zip(items, items[1:], items[2:], strict=False):
            if _is_op(a, ".") and isinstance(b, _Tok) and b.text == "matches" and isinstance(c, _Group):
                self._note_pattern(c.items)


def _is_op(item: _Item, text: str) -> bool:
    return isinstance(item, _Tok) and item.kind in ("op", "ident") and item.text == text


def _segments(items: list[_Item]) -> Iterator[tuple[list[_Item], _Tok | None]]:
    current: list[_Item] = []
    for item in items:
        if isinstance(item, _Tok) and item.kind == "op" and item.text in _SEGMENT_BREAKS:
            yield current, item
            current = []
        else:
            current.append(item)
    yield current, None


def _split_comparisons(items: list[_Item]) -> tuple[list[_Item], list[tuple[_Tok, list[_Item]]]]:
    first: list[_Item] = []
    rest: list[tuple[_Tok, list[_Item]]] = []
    for i, item in enumerate(items):
        after_dot = i > 0 and _is_op(items[i - 1], ".")
        if isinstance(item, _Tok) and item.text in _COMPARATORS and item.kind != "str" and not after_dot:
            rest.append((item, []))
        elif rest:
            rest[-1][1].append(item)
        else:
            first.append(item)
    return first, rest


def _is_tuple_in(op: _Tok, right: list[_Item]) -> bool:
    if op.text != "in" or len(right) != 1 or not isinstance(right[0], _Group):
        return False
    group = right[0]
    return group.open.text == "(" and any(_is_op(x, ",") for x in group.items)


def _is_primary(items: list[_Item]) -> bool:
    """Whether `items` can receive `.matches(...)` without parentheses."""
    head = items[0] if items else None
    if head is None or not (isinstance(head, _Group) or head.kind in ("ident", "str", "num")):
        return False
    i = 1
    while i < len(items):
        item = items[i]
        if _is_op(item, ".") and i + 1 < len(items) and isinstance(items[i + 1], _Tok):
            i += 2  # member: a.b
        elif isinstance(item, _Group) and item.open.text in "([":
            i += 1  # call or index: f(x), a[0]
        else:
            return False
    return True


def _leading_ws(items: list[_Item]) -> str:
    if not items:
        return ""
    first = items[0]
    return first.ws if isinstance(first, _Tok) else first.open.ws


def free_names(cel: str) -> tuple[str, ...]:
    """Identifiers a CEL text reads as variables (not functions, members, macro variables)."""
    tokens = [t for t in _tokenize(cel, {})[0] if t.kind != "str"]
    macro_vars = set(re.findall(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,", cel))
    names = set()
    for i, tok in enumerate(tokens):
        after_dot = i > 0 and tokens[i - 1].text == "."
        called = i + 1 < len(tokens) and tokens[i + 1].text == "("
        if tok.kind == "ident" and not after_dot and not called:
            names.add(tok.text)
    return tuple(sorted(names - macro_vars - _NOT_VARIABLES))


# --- CEL runtime: govaluate-compatible operators -------------------------------------------------

def _is_number(value: Any) -> bool:
    # celpy's int, uint and double, and the plain floats its double arithmetic returns; not bools.
    return isinstance(value, int | float) and not isinstance(value, bool | celtypes.BoolType)


def _py_number(value: Any) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


def _kind(value: Any) -> str:
    names = {celtypes.StringType: "string", celtypes.DoubleType: "double", celtypes.IntType: "int",
             celtypes.UintType: "uint", celtypes.BoolType: "bool", celtypes.ListType: "list",
             celtypes.MapType: "map", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _errors_first(function: Callable[..., Any]) -> Callable[..., Any]:
    # An error value from a sub-expression is passed on, as celpy's own operators do.
    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        return function(*args)

    return wrapper


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return _py_number(a) == _py_number(b)
    if type(a) is not type(b):
        return False  # govaluate's reflect.DeepEqual; CEL's heterogeneous equality
    return bool(a == b)


@_errors_first
def _eq(a: Any, b: Any) -> Any:
    return celtypes.BoolType(_equal(a, b))


@_errors_first
def _ne(a: Any, b: Any) -> Any:
    return celtypes.BoolType(not _equal(a, b))


def _ordering(symbol: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    @_errors_first
    def order(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b):
            return celtypes.BoolType(compare(_py_number(a), _py_number(b)))
        if type(a) is not type(b) or isinstance(a, celtypes.MapType | celtypes.ListType | type(None)):
            raise TypeError(f"cannot compare {_kind(a)} with {_kind(b)} using {symbol}")
        return celtypes.BoolType(compare(a, b))

    order.__name__ = order.__qualname__ = f"_order_{compare.__name__}"
    return order


@_errors_first
def _in(item: Any, container: Any) -> Any:
    if isinstance(container, celtypes.ListType):
        return celtypes.BoolType(any(_equal(item, x) for x in container))
    if isinstance(container, celtypes.MapType):
        return celtypes.BoolType(item in container)
    raise TypeError(f"'in' needs a list or a map on its right, not {_kind(container)}")


def _arithmetic(compute: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    @_errors_first
    def arithmetic(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b) and type(a) is not type(b):
            a, b = celtypes.DoubleType(a), celtypes.DoubleType(b)  # govaluate computes in float64
        result = compute(a, b)
        return celtypes.DoubleType(result) if type(result) is float else result

    arithmetic.__name__ = arithmetic.__qualname__ = f"_arith_{compute.__name__}"
    return arithmetic


def _modulo(a: Any, b: Any) -> Any:
    if isinstance(a, celtypes.DoubleType) or isinstance(b, celtypes.DoubleType):
        # govaluate uses math.Mod on float64; CEL has no double modulus.
        return celtypes.DoubleType(math.fmod(a, b) if b else math.nan)
    return operator.mod(a, b)


@_errors_first
def _matches(text: Any, pattern: Any) -> Any:
    if not isinstance(text, celtypes.StringType) or not isinstance(pattern, celtypes.StringType):
        raise TypeError(f"matches() needs strings, not {_kind(text)} and {_kind(pattern)}")
    try:
        regex = compile_go_regex(str(pattern))
    except RegexError as e:
        return CELEvalError(str(e), RegexError, (str(e),))
    return celtypes.BoolType(regex.search(str(text)) is not None)


_FUNCTIONS: dict[str, Any] = {
    "_==_": _eq, "_!=_": _ne, "_in_": _in, "matches": _matches,
    "_<_": _ordering("<", operator.lt), "_<=_": _ordering("<=", operator.le),
    "_>_": _ordering(">", operator.gt), "_>=_": _ordering(">=", operator.ge),
    "_+_": _arithmetic(operator.add), "_-_": _arithmetic(operator.sub),
    "_*_": _arithmetic(operator.mul), "_/_": _arithmetic(operator.truediv),
    "_%_": _arithmetic(_modulo),
}


def to_cel(value: Any) -> Any:
    """A JSON value as a celpy value; every number is a double, as govaluate reads it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, int | float):
        return celtypes.DoubleType(value)
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    raise ExprError(f"cannot bind a {type(value).__name__} value")


def describe_error(error: CELEvalError) -> str:
    """A CEL evaluation error in a sentence; unbound names in govaluate's words, as Argo shows."""
    message, cls, args = [*error.args, None, None, ()][:3]
    text = str(message)
    if cls is NameError or text.startswith("undeclared reference"):
        return f"No parameter '{args[0] if args else '?'}' found."
    detail = args[0] if isinstance(args, tuple) and args else None
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
    if not isinstance(detail, str) or not detail or detail in text:
        return text
    if cls is TypeError:  # celpy words the operator position; the detail says what went wrong
        return detail if detail.startswith("no such overload") else f"no such overload: {detail}"
    return f"{text}: {detail}"


# --- CEL engines ---------------------------------------------------------------------------------


class _Bindings:
    """The activation the transpiled code reads (`activation.name`): a plain dict behind it."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise NameError(name) from None  # celpy turns it into "undeclared reference"

    def resolve_variable(self, name: str) -> Any:
        return self.__getattr__(name)

    def nested_activation(self, vars: dict[str, Any] | None = None, **_: Any) -> _Bindings:
        return _Bindings({**self._values, **(vars or {})})


_RESERVED_BINDINGS = {"resolve_variable", "nested_activation", "_values"}
Runner = Callable[[dict[str, Any]], Any]


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


def _transpiled(ast: lark.Tree, names: Iterable[str]) -> Runner | None:
    """celpy's transpiler output run with a light activation; None when that path is unusable."""
    if any(n in _RESERVED_BINDINGS or n.startswith("__") for n in names):
        return None
    try:
        runner = celpy.CompiledRunner(_environment(), _as_transpiler_tree(ast), _FUNCTIONS)
        entry = _entry_point(runner.tp.source_text)
    except Exception:  # any celpy-internal surprise means: use the interpreter
        return None
    return None if entry is None else lambda values: entry(_Bindings(values))


def _as_transpiler_tree(node: Any) -> Any:
    # celpy's parser is a process-wide singleton whose tree class is fixed by whoever made the
    # first Environment; the transpiler needs its own tree class, so copy the tree into it.
    if isinstance(node, lark.Tree):
        children = [_as_transpiler_tree(c) for c in node.children]
        return celpy.evaluation.TranspilerTree(node.data, children, node.meta)
    return node


def _entry_point(source: str) -> Callable[[_Bindings], Any] | None:
    *body, last = source.rstrip("\n").split("\n")
    prefix = "CEL = celpy.evaluation.result(base_activation, "
    if not last.startswith(prefix):
        return None
    code = "\n".join([*body, "def _entry(base_activation):", f"    return {last[len('CEL = '):]}"])
    namespace = dict(vars(celpy.evaluation))  # the globals celpy's generated code expects
    namespace.update(_function_namespace())
    exec(compile(code, "<cel>", "exec"), namespace)
    return namespace["_entry"]  # type: ignore[no-any-return]


@functools.cache
def _function_namespace() -> dict[str, Any]:
    # The transpiler names overriding functions `<module>.<qualname>`; make that path resolve.
    root: dict[str, Any] = {}
    for function in _FUNCTIONS.values():
        *packages, last = function.__module__.split(".")
        node = root
        for part in packages:
            node = node.setdefault(part, {})
        node.setdefault(last, {})[function.__qualname__] = function
    return {k: _as_namespace(v) for k, v in root.items()}


def _as_namespace(tree: dict[str, Any]) -> Any:
    return types.SimpleNamespace(**{k: _as_namespace(v) if isinstance(v, dict) else v
                                    for k, v in tree.items()})


def _interpreted(ast: lark.Tree) -> Runner:
    program = _environment().program(ast, functions=_FUNCTIONS)
    return lambda values: program.evaluate(values)


# --- compiled expressions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    source: str  # the expression as written in the manifest
    cel: str  # what is evaluated
    fields: tuple[str, ...]  # declared field names
    names: tuple[str, ...]  # variables the expression reads
    engine: str  # "transpiled" or "interpreted"
    _run: Runner = field(repr=False, compare=False)
    _cel_names: Mapping[str, str] = field(repr=False, compare=False)

    def unbound_names(self) -> tuple[str, ...]:
        """Variables the expression reads that no declared field binds."""
        bound = set(self._cel_names.values())
        return tuple(n for n in self.names if n not in bound)

    def evaluate(self, bindings: Mapping[str, Any]) -> bool:
        """True only for an exact boolean true; `ExprError` when the evaluation fails."""
        values = {self._cel_names.get(k, k): to_cel(v) for k, v in bindings.items()}
        try:
            result = self._run(values)
        except CELEvalError as e:
            raise ExprError(describe_error(e)) from None
        except Exception as e:  # celpy can raise plain Python errors, e.g. on a.b.c
            raise ExprError(f"evaluation error: {e}") from None
        if isinstance(result, CELEvalError):
            raise ExprError(describe_error(result))
        return isinstance(result, celtypes.BoolType) and bool(result)


def compile_expr(expr: str, *, fields: Iterable[str] = (), engine: Engine = "auto") -> CompiledExpr:
    """Translate and compile once; `ExprError` names the expression and its CEL form."""
    return _compile(expr, tuple(fields), engine)


@functools.lru_cache(maxsize=1024)
def _compile(expr: str, fields: tuple[str, ...], engine: Engine) -> CompiledExpr:
    names = _names(fields)
    try:
        cel, patterns = _translate(expr, names)
    except ExprError as e:
        raise ExprError(f"cannot translate expr {expr!r}: {e}") from None
    try:
        ast = _environment().compile(cel)
    except celpy.CELParseError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "syntax error"
        raise ExprError(f"cannot compile expr {expr!r} (as CEL: {cel!r}): {first}") from None
    for pattern in patterns:
        try:
            compile_go_regex(pattern)
        except RegexError as e:
            raise ExprError(f"expr {expr!r}: {e}") from None
    variables = free_names(cel)
    run = _transpiled(ast, variables) if engine == "auto" else None
    kind = "transpiled" if run else "interpreted"
    return CompiledExpr(expr, cel, fields, variables, kind, run or _interpreted(ast), names)
