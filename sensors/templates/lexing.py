"""Splits template source into tokens: text between actions, and the words inside `{{ }}`.

Why this module exists: Go decides trimming (`{{- ` / ` -}}`), comments, and what counts as a
number, string or field while lexing, and reports bad characters with Go's wording. Keeping that
here leaves the parser to deal with grammar only.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final, NoReturn

from sensors.templates import errors

_TRIM_CHARS: Final = " \t\r\n"
_TRIM_SET: Final = frozenset(_TRIM_CHARS)
_KEYWORDS: Final = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                              "break", "continue"})
_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*\.?[0-9a-fA-F_]*(?:[pP][+-]?[0-9_]+)?|0[oObB][0-7_]+"
    r"|(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?)i?")
_TERMINATORS: Final = frozenset(" \t\r\n.,|:)(")
_PUNCTUATION: Final = {"(": "lparen", ")": "rparen", "|": "pipe", ",": "comma", "=": "assign"}


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int
    spaced: bool = False  # whitespace precedes it inside an action (Go's itemSpace)


def lex(source: str) -> list[Token]:
    """All tokens of `source`, ending with an "eof" token; raises TemplateError."""
    return _Lexer(source).run()


class _Lexer:
    """Splits the source into text and action tokens, applying `{{-`/`-}}` trimming."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []
        self.spaced = False
        self.depth = 0

    def run(self) -> list[Token]:
        trim_next = False
        while True:
            start = self.src.find("{{", self.pos)
            text = self.src[self.pos:start if start >= 0 else len(self.src)]
            if trim_next:
                text = text.lstrip(_TRIM_CHARS)
            if start >= 0 and self._left_trim(start):
                text = text.rstrip(_TRIM_CHARS)
            if text:
                self.tokens.append(Token("text", text, self.pos))
            if start < 0:
                self.tokens.append(Token("eof", "", len(self.src)))
                return self.tokens
            trim_next = self._action(start)

    def _left_trim(self, start: int) -> bool:
        # `{{-3}}` is the number -3: only "{{- " (dash then white space) trims.
        return self.src.startswith("-", start + 2) and self.src[start + 3:start + 4] in _TRIM_SET

    def _right_trim(self, pos: int) -> bool:
        return self.src[pos:pos + 1] in _TRIM_SET and self.src.startswith("-}}", pos + 1)

    def _fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise errors.parse_error(self.src, self.pos if pos is None else pos, message)

    def _action(self, start: int) -> bool:
        self.pos = start + (4 if self._left_trim(start) else 2)
        if self.src.startswith("/*", self.pos):
            return self._comment()
        self.tokens.append(Token("ldelim", "{{", start))
        self.depth = 0
        return self._inside_action()

    def _comment(self) -> bool:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            self._fail("unclosed comment")
        self.pos = end + 2
        trim = self._right_trim(self.pos)
        if trim:
            self.pos += 2
        if not self.src.startswith("}}", self.pos):
            self._fail("comment ends before closing delimiter")
        self.pos += 2
        return trim

    def _inside_action(self) -> bool:
        self.spaced = False
        while True:
            if self.pos >= len(self.src):
                self._fail("unclosed action")
            if self.src.startswith("}}", self.pos) or self._right_trim(self.pos):
                return self._close_action()
            char = self.src[self.pos]
            if char in _TRIM_CHARS:
                self.pos += 1
                self.spaced = True
                continue
            self._token(char)
            self.spaced = False

    def _close_action(self) -> bool:
        if self.depth > 0:
            self._fail("unclosed left paren")
        trim = not self.src.startswith("}}", self.pos)
        self.tokens.append(Token("rdelim", "}}", self.pos, self.spaced))
        self.pos += 4 if trim else 2
        return trim

    def _emit(self, kind: str, end: int) -> None:
        self.tokens.append(Token(kind, self.src[self.pos:end], self.pos, self.spaced))
        self.pos = end

    def _token(self, char: str) -> None:
        nxt = self.src[self.pos + 1:self.pos + 2]
        if char in _PUNCTUATION:
            self._paren_depth(char)
            self._emit(_PUNCTUATION[char], self.pos + 1)
        elif char == ":":
            if nxt != "=":
                self._fail("expected :=")
            self._emit("declare", self.pos + 2)
        elif char in "\"`'":
            self._quoted(char)
        elif char == "$":
            self._word("variable", self.pos + 1)
        elif char == "." and not nxt.isdigit():
            self._field_or_dot(nxt)
        elif char.isdigit() or (char in "+-." and (nxt.isdigit() or nxt == ".")):
            self._number()
        elif char.isalpha() or char == "_":
            self._identifier()
        else:
            self._fail(f"bad character {_go_char(char)}")

    def _paren_depth(self, char: str) -> None:
        if char == "(":
            self.depth += 1
        elif char == ")":
            self.depth -= 1
            if self.depth < 0:
                self._fail("unexpected right paren")

    def _scan_word(self, pos: int) -> int:
        while pos < len(self.src) and (self.src[pos].isalnum() or self.src[pos] == "_"):
            pos += 1
        return pos

    def _check_terminator(self, pos: int) -> None:
        if pos < len(self.src) and self.src[pos] not in _TERMINATORS and not self.src.startswith("}}", pos):
            self._fail(f"bad character {_go_char(self.src[pos])}", pos)

    def _word(self, kind: str, start: int) -> None:
        end = self._scan_word(start)
        self._check_terminator(end)
        self._emit(kind, end)

    def _field_or_dot(self, nxt: str) -> None:
        if nxt.isalpha() or nxt == "_":
            self._word("field", self.pos + 1)
            return
        self._check_terminator(self.pos + 1)
        self._emit("dot", self.pos + 1)

    def _identifier(self) -> None:
        end = self._scan_word(self.pos)
        self._check_terminator(end)
        word = self.src[self.pos:end]
        kind = "bool" if word in ("true", "false") else "nil" if word == "nil" else (
            "keyword" if word in _KEYWORDS else "ident")
        self._emit(kind, end)

    def _number(self) -> None:
        match = _NUMBER_RE.match(self.src, self.pos)
        end = match.end() if match else self.pos + 1
        if end < len(self.src) and (self.src[end].isalnum() or self.src[end] == "_"):
            self._fail(f"bad number syntax: {self.src[self.pos:end + 1]!r}")
        self._emit("number", end)

    def _quoted(self, quote: str) -> None:
        end = self.pos + 1
        while end < len(self.src) and self.src[end] != quote:
            if quote != "`" and self.src[end] == "\\":
                end += 1
            elif quote != "`" and self.src[end] == "\n":
                break
            end += 1
        if end >= len(self.src) or self.src[end] != quote:
            what = {"`": "raw quoted string", '"': "quoted string", "'": "character constant"}[quote]
            self._fail(f"unterminated {what}")
        self._emit({"`": "raw", '"': "string", "'": "char"}[quote], end + 1)


def _go_char(char: str) -> str:
    return f"U+{ord(char):04X} {char!r}"
