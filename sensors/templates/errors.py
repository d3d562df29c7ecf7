"""The errors the template engine raises, and the one its functions raise inside it.

Why this module exists: callers catch the two public errors; every part of the engine raises
them, so they live below all of it::

    ValueError
    ├── TemplateError      compile time: a syntax error or an unknown function
    └── TemplateExecError  render time: Go's execution error text, line:column and all
    Exception
    └── CallError          a template function failed; the executor reports it as
                           `error calling NAME: MSG` inside a TemplateExecError
"""

from __future__ import annotations


class TemplateError(ValueError):
    """The template cannot be compiled: a syntax error or an unknown function."""


class TemplateExecError(ValueError):
    """Rendering failed the way Go's text/template execution fails (Argo then falls back)."""


class CallError(Exception):
    """A function failed; Go reports it as `error calling NAME: MSG`."""


def parse_error(source: str, pos: int, message: str) -> TemplateError:
    """A TemplateError worded as Go's parser words it, with the line of `pos` in `source`."""
    line = source.count("\n", 0, pos) + 1
    return TemplateError(f"template: line {line}: {message}")
