"""YAML text for the JSON-shaped objects a dry run writes, about ten times faster than PyYAML.

PyYAML's dumper builds a node object for every value in Python even when libyaml emits the
text; at a thousand Workflows a second that was a quarter of the sensor's CPU. The objects a
trigger creates are JSON trees (dicts with string keys, lists, strings, numbers, booleans, null),
so block YAML can be written directly, in the layout `kubectl get -o yaml` and PyYAML use
(sequences inside a mapping are not indented).

Strings are plain only when no YAML 1.1 or 1.2 reader could take them for anything else;
every other string is double-quoted with JSON's escapes, which YAML's double-quoted style shares,
plus `\\u` escapes for the characters YAML refuses or folds even inside quotes. Anything that is
not a JSON tree (a date a manifest's YAML produced, a non-string key) goes to PyYAML instead.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*", re.ASCII)
# YAML 1.1 reads these (in any case) as booleans or null.
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# A longer key needs YAML's explicit `? key` form: readers refuse implicit keys over 1,024 characters.
_MAX_KEY = 1000
# Not printable for YAML even when quoted (C1 controls, DEL, BOM, non-characters), or a line
# break that a double-quoted scalar would fold (NEL, LS, PS).
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


class _NotJsonTree(Exception):
    pass


def dump(obj: Any) -> str:
    """`obj` as a YAML document that `yaml.safe_load` reads back equal."""
    if isinstance(obj, dict) and obj:
        try:
            out: list[str] = []
            _mapping(obj, "", out)
            return "".join(out)
        except (_NotJsonTree, orjson.JSONEncodeError):
            pass
    return yaml.dump(obj, Dumper=_DUMPER, sort_keys=False)


def _mapping(obj: dict[Any, Any], indent: str, out: list[str]) -> None:
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _NotJsonTree
        text = _string(key)
        if len(text) > _MAX_KEY:
            raise _NotJsonTree
        _entry(indent + text + ":", value, indent, out)


def _sequence(obj: list[Any], indent: str, out: list[str]) -> None:
    for item in obj:
        start = len(out)
        if isinstance(item, dict) and item:
            _mapping(item, indent + "  ", out)
        elif isinstance(item, list) and item:
            _sequence(item, indent + "  ", out)
        else:
            out.append(f"{indent}- {_scalar(item)}\n")
            continue
        # The item's first line starts on the dash's line, as a compact block.
        out[start] = indent + "- " + out[start][len(indent) + 2:]


def _entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        out.append(head + "\n")
        _mapping(value, indent + "  ", out)
    elif isinstance(value, list) and value:
        out.append(head + "\n")
        _sequence(value, indent, out)
    else:
        out.append(f"{head} {_scalar(value)}\n")


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):  # the empty ones; non-empty ones are blocks
        return "{}"
    if isinstance(value, list):
        return "[]"
    raise _NotJsonTree


def _string(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    quoted = orjson.dumps(value).decode()
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    # YAML 1.1 needs a dot for a float: 1e+20 alone would read back as a string.
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text
