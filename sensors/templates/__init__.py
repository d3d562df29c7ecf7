"""Go text/template with the sprig functions Argo Events sensors use, in Python.

Why this package exists: Argo Events renders trigger `dataTemplate` / `contextTemplate` and the
data-filter `template` with Go's text/template plus sprig. A manifest that Argo accepts must load
unchanged here and render the same text. This is a re-implementation of the Go engine from its
observable behaviour (no Go code carried over): parsed once into a tree by `compile_template`,
rendered many times by `Template.render(data)`. Callers pass the root value themselves; Argo's
is `{"Input": payload}`.

Syntax supported: text and `{{ }}` actions, `{{-` / `-}}` trimming, `{{/* comments */}}`; `.`,
`$`, `.Input.a.b`, `$x.a`, `(pipeline).a`; pipelines `a | f x` (the piped value is the LAST
argument, as in Go); parenthesised sub-pipelines; "strings" with Go escapes, `raw` strings,
'c' characters, Go numbers, true/false/nil; `if`/`else if`/`else`, `range` (lists, maps in key
order, ints; `$v :=` and `$i, $v :=`; `else`; `break`/`continue`), `with`/`else with`;
variables `$x := ...` and `$x = ...`.

Functions: see SUPPORTED_FUNCTIONS. An unknown function is a compile-time TemplateError
(`function "foo" not defined`, as Go says at parse time) listing what is supported.

Go semantics kept on purpose, because Argo users see them:

* A missing map key renders `<no value>`; so does JSON null printed on its own. Inside a map or
  list null prints `<nil>`. A field of null is an exec error (`nil pointer evaluating ...`).
* JSON numbers are float64 in Argo. Here every Python `int`/`float` that comes from the data is
  treated as float64: `{{ .Input.iid }}` with 7 renders `7`, but 1000000 renders `1e+06`,
  because Go prints float64 with %v, which switches to exponent form from 1e6 (a real gotcha:
  `printf "%.0f"` or `int` gives digits; `toJson` keeps digits up to 1e21). Numbers written in
  the template and results of `len`, `atoi`, `int` are Go ints (GoInt) and print as digits.
* Because of that, `eq .Input.iid 7` is an exec error (float64 vs int: "incompatible types for
  comparison"); write `eq .Input.iid 7.0`. `printf "%d" .Input.iid` prints `%!d(float64=7)`.
* String functions take Go `string` parameters: `upper .Input.iid` (a number) or piping a missing
  value into `upper` is an exec error, exactly as in Go; `toString` converts first.
* `b64dec` of invalid base64 returns Go's error text (`illegal base64 data at input byte N`);
  Argo's filter tests rely on it. `default`/`empty`/`coalesce` use sprig emptiness.
* `substr`/`trunc`/`len` count bytes of the UTF-8 text, as Go does.
* `date`/`now` use UTC for Go's "Local" (a container's usual zone). `date` with a value that is
  not a time or a Go int formats the current time (sprig does the same for float64 input).

Not supported (compile-time TemplateError or documented difference): `define`, `template`,
`block`; methods on values (`now.Year`), `call`, `js`, `slice`, complex numbers; printf argument indexes
(`%[1]d`) and `*` widths; sprig functions outside SUPPORTED_FUNCTIONS. Regular expressions use
Python's `re`, close to but not exactly RE2. Time values print without Go's monotonic clock
suffix. Exec-error messages follow Go's wording but not always its exact type names.

Layout, in the order a template goes through it: `lexing` (source to tokens) and `parsing`
(tokens to the `tree`, resolving names in `functions`), then `executing` (tree and data to
text). The callable functions are `builtins` (text/template's own) and `sprig`, described by
`signatures`. What Go types values have is `gotypes`; how Go prints them is `formatting` (with
`time_layouts`); how Go reads literals and encoded text is `decoding`. `errors` holds the errors.
"""

from __future__ import annotations

import functools
from typing import Any

from sensors.templates import executing, parsing
from sensors.templates.errors import TemplateError, TemplateExecError
from sensors.templates.functions import SUPPORTED_FUNCTIONS
from sensors.templates.gotypes import GoInt

__all__ = ["SUPPORTED_FUNCTIONS", "GoInt", "Template", "TemplateError", "TemplateExecError", "compile_template"]


class Template:
    """A compiled template; `render` may be called any number of times, from any thread."""

    __slots__ = ("_nodes", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._nodes = parsing.parse(source)

    def render(self, data: Any) -> str:
        return executing.execute(self.source, self._nodes, data)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


@functools.lru_cache(maxsize=1024)
def compile_template(source: str) -> Template:
    """Parse a Go template once (cached by source text); raises TemplateError."""
    if not isinstance(source, str):
        raise TemplateError(f"template must be a string, got {type(source).__name__}")
    return Template(source)
