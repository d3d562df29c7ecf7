"""Trigger conditions (`template.conditions`) and the per-trigger event correlation step.

Rules, as in Argo Events (`pkg/sensors/listener.go` getDependencyExpression and the JetStream
`trigger_conn.go` processDependency):

* a condition is a boolean expression over dependency names with ``&&``, ``||`` and parentheses;
  ``&&`` binds tighter than ``||``; names may contain ``-`` and ``_`` (``dep-1 && (dep_2 || dep-3)``);
* an empty condition means every dependency of the sensor, joined with ``&&``;
* a name that is not one of the sensor's dependencies is an error at load time. Argo compares
  names after turning ``-`` into ``_`` on both sides, so ``dep_1`` also finds a dependency named
  ``dep-1``; here an exact match wins and the ``-``/``_`` match is used only when it is unambiguous;
* Argo quirk kept on purpose: when the expression has no ``&&`` (a single name, or names joined by
  ``||``), every passing event fires the trigger at once with just that event and nothing is saved
  (`Condition.needs_state` is False);
* otherwise the latest event of each dependency is saved (a newer one overwrites the older); when
  the saved events plus the current one satisfy the expression the trigger fires with all of them
  and the caller clears the trigger's saved events.

A whitespace-only condition is treated as empty (Argo fails to compile it and the trigger never runs).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\|)|(?P<paren>[()])|(?P<name>[A-Za-z0-9_-]+))")


class ConditionError(ValueError):
    """A trigger condition that cannot be compiled against the sensor's dependencies."""


@dataclass(frozen=True, slots=True)
class _Name:
    name: str

    def holds(self, present: Collection[str]) -> bool:
        return self.name in present

    def render(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class _All:
    terms: tuple[_Node, ...]

    def holds(self, present: Collection[str]) -> bool:
        return all(t.holds(present) for t in self.terms)

    def render(self) -> str:
        return "&&".join(f"({t.render()})" if isinstance(t, _Any) else t.render() for t in self.terms)


@dataclass(frozen=True, slots=True)
class _Any:
    terms: tuple[_Node, ...]

    def holds(self, present: Collection[str]) -> bool:
        return any(t.holds(present) for t in self.terms)

    def render(self) -> str:
        return "||".join(t.render() for t in self.terms)


_Node = _Name | _All | _Any


@dataclass(frozen=True, slots=True)
class Condition:
    source: str  # the condition as written, or the generated "a && b" when it was empty
    expression: str  # canonical form with resolved names, e.g. "dep-1&&(dep_2||dep-3)"
    dependencies: frozenset[str]
    needs_state: bool
    _tree: _Node = field(repr=False, compare=False)

    def evaluate(self, present: Collection[str]) -> bool:
        """Whether the dependencies in `present` (names that have an event) satisfy the condition."""
        return self._tree.holds(present)


@dataclass(frozen=True)
class Decision:
    fire: bool
    # fire: the events to fire with (saved + current); not fire: the new saved state to store.
    events: dict[str, Any]


def compile_condition(text: str, dependency_names: Sequence[str]) -> Condition:
    if not dependency_names:
        raise ConditionError("the sensor has no dependencies")
    source = text.strip() or " && ".join(dependency_names)
    tree = _Parser(source, _Resolver(dependency_names)).parse()
    names = frozenset(_names(tree))
    return Condition(source, tree.render(), names, _has_and(tree), tree)


def correlate(condition: Condition, saved: Mapping[str, Any], dependency: str, event: Any) -> Decision:
    """One passing `event` of `dependency` against the trigger's `saved` events (pure; no I/O)."""
    if dependency not in condition.dependencies:
        raise ValueError(f"dependency {dependency!r} is not part of the condition {condition.source!r}")
    if not condition.needs_state:
        # Argo fires an &&-free condition on every event, alone, and never looks at saved state.
        return Decision(True, {dependency: event})
    # State saved under an older spec may name dependencies this condition no longer uses.
    events = {k: v for k, v in saved.items() if k in condition.dependencies and k != dependency}
    events[dependency] = event  # latest event per dependency wins
    return Decision(condition.evaluate(events), events)


class _Resolver:
    """Maps a name in the condition to a dependency name, the way Argo does (``-`` ≡ ``_``)."""

    def __init__(self, dependency_names: Sequence[str]) -> None:
        self._exact = set(dependency_names)
        self._loose: dict[str, list[str]] = {}
        for name in dependency_names:
            self._loose.setdefault(name.replace("-", "_"), []).append(name)

    def resolve(self, name: str) -> str:
        if name in self._exact:
            return name
        candidates = self._loose.get(name.replace("-", "_"), [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise ConditionError(f"condition name {name!r} is ambiguous between dependencies "
                                 f"{', '.join(candidates)}")
        raise ConditionError(f"condition names {name!r}, which is not a dependency of the sensor "
                             f"(dependencies: {', '.join(sorted(self._exact))})")


class _Parser:
    """Recursive descent: or := and ('||' and)* ; and := atom ('&&' atom)* ; atom := name | '(' or ')'."""

    def __init__(self, text: str, resolver: _Resolver) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._pos = 0
        self._resolver = resolver

    def parse(self) -> _Node:
        node = self._or()
        if self._peek() is not None:
            raise self._error(f"unexpected {self._peek()!r}")
        return node

    def _or(self) -> _Node:
        terms = [self._and()]
        while self._accept("||"):
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else _Any(tuple(terms))

    def _and(self) -> _Node:
        terms = [self._atom()]
        while self._accept("&&"):
            terms.append(self._atom())
        return terms[0] if len(terms) == 1 else _All(tuple(terms))

    def _atom(self) -> _Node:
        token = self._peek()
        if token == "(":
            self._pos += 1
            node = self._or()
            if not self._accept(")"):
                raise self._error("missing ')'")
            return node
        if token is None or token in ("&&", "||", ")"):
            raise self._error("expected a dependency name" + (f" before {token!r}" if token else " at the end"))
        self._pos += 1
        return _Name(self._resolver.resolve(token))

    def _peek(self) -> str | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _accept(self, token: str) -> bool:
        if self._peek() == token:
            self._pos += 1
            return True
        return False

    def _error(self, what: str) -> ConditionError:
        return ConditionError(f"invalid condition {self._text!r}: {what}")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = text[pos:].lstrip()[:1]
            raise ConditionError(f"invalid condition {text!r}: unexpected character {bad!r} "
                                 "(only dependency names, &&, || and parentheses are allowed)")
        tokens.append(match.group(match.lastgroup or "name"))
        pos = match.end()
    return tokens


def _names(node: _Node) -> list[str]:
    if isinstance(node, _Name):
        return [node.name]
    return [n for t in node.terms for n in _names(t)]


def _has_and(node: _Node) -> bool:
    if isinstance(node, _Name):
        return False
    return isinstance(node, _All) or any(_has_and(t) for t in node.terms)
