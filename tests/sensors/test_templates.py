"""Go text/template + sprig as Argo Events renders `dataTemplate` and filter `template`."""

from __future__ import annotations

from typing import Any

import pytest

from sensors import templates

PAYLOAD: dict[str, Any] = {
    "header": {"X-Gitlab-Event": ["Push Hook"]},
    "body": {
        "ref": "refs/heads/main",
        "iid": 7,
        "big": 1000000,
        "ratio": 0.5,
        "tiny": 0.00001,
        "draft": False,
        "note": None,
        "empty": "",
        "labels": [{"name": "bug"}, {"name": "ui"}],
        "sha": "0123456789abcdef",
        "title": "fix: the thing",
        "nested": {"k": "v"},
        "b64": "aGVsbG8=",
    },
}
DATA: dict[str, Any] = {"Input": PAYLOAD}


def render(source: str, data: Any = DATA) -> str:
    return templates.compile_template(source).render(data)


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("hello", "hello", id="plain-text"),
    pytest.param("{{ .Input.body.ref }}", "refs/heads/main", id="field-chain"),
    pytest.param("{{ $.Input.body.ref }}", "refs/heads/main", id="root-variable"),
    pytest.param("{{ .Input.body.iid }}", "7", id="json-int-prints-digits"),
    pytest.param("{{ .Input.body.big }}", "1e+06", id="json-million-is-float64-1e+06"),
    pytest.param("{{ .Input.body.ratio }}", "0.5", id="json-fraction"),
    pytest.param("{{ .Input.body.tiny }}", "1e-05", id="json-small-float-exponent"),
    pytest.param("{{ 1000000 }}", "1000000", id="template-int-literal-digits"),
    pytest.param("{{ 1.5e6 }}", "1.5e+06", id="template-float-literal"),
    pytest.param("{{ .Input.body.missing }}", "<no value>", id="missing-key"),
    pytest.param("{{ .Input.nope.deeper }}", "<no value>", id="missing-chain"),
    pytest.param("{{ .Input.body.note }}", "<no value>", id="json-null-alone"),
    pytest.param("{{ list 1 .Input.body.note \"a\" }}", "[1 <nil> a]", id="null-inside-list"),
    pytest.param("{{ .Input.body.nested }}", "map[k:v]", id="map-prints-go-style"),
    pytest.param("{{ .Input.body.labels }}", "[map[name:bug] map[name:ui]]", id="list-of-maps"),
    pytest.param('{{ .Input.body.ref | trimPrefix "refs/heads/" }}', "main", id="pipe-is-last-arg"),
    pytest.param('{{ trimPrefix "refs/heads/" .Input.body.ref }}', "main", id="call-form"),
    pytest.param('{{ .Input.body.ref | replace "/" "-" }}', "refs-heads-main", id="pipe-into-3-args"),
    pytest.param('{{ replace "heads" "tags" .Input.body.ref }}', "refs/tags/main", id="replace"),
    pytest.param('{{ .Input.body.ref | upper | trimPrefix "REFS/" | lower }}', "heads/main", id="long-pipe"),
    pytest.param('{{ 3 | printf "%d-%s" 4 }}', "4-%!s(int=3)", id="printf-piped-last"),
    pytest.param("{{ .Input.body.sha | substr 0 7 }}", "0123456", id="substr-argo-example"),
    pytest.param("{{ .Input.body.title | title }}", "Fix: The Thing", id="title"),
    pytest.param('{{ title "hello wORLD" }}', "Hello WORLD", id="title-keeps-rest"),
    pytest.param('{{ upper "abc" }}{{ lower "DEF" }}', "ABCdef", id="upper-lower"),
    pytest.param('{{ trim "  x  " }}', "x", id="trim"),
    pytest.param('{{ nospace " a b " }}', "ab", id="nospace"),
    pytest.param('{{ trimSuffix ".git" "repo.git" }}', "repo", id="trimSuffix"),
    pytest.param('{{ trimAll "-" "--x--" }}', "x", id="trimAll-cutset"),
    pytest.param('{{ contains "main" .Input.body.ref }}', "true", id="contains-arg-order"),
    pytest.param('{{ hasPrefix "refs/" .Input.body.ref }} {{ hasSuffix "x" .Input.body.ref }}', "true false",
                 id="has-prefix-suffix"),
    pytest.param('{{ (split "/" .Input.body.ref)._2 }}', "main", id="split-map"),
    pytest.param('{{ splitList "/" .Input.body.ref }}', "[refs heads main]", id="splitList"),
    pytest.param('{{ join "," (list "a" 1 .Input.body.note "b") }}', "a,1,b", id="join-skips-nil"),
    pytest.param('{{ .Input.body.missing | default "none" }}', "none", id="default-missing"),
    pytest.param('{{ .Input.body.empty | default "none" }}', "none", id="default-empty-string"),
    pytest.param('{{ .Input.body.ref | default "none" }}', "refs/heads/main", id="default-kept"),
    pytest.param('{{ default "d" 0 }}', "d", id="default-zero-is-empty"),
    pytest.param("{{ empty .Input.body.labels }} {{ empty .Input.body.draft }}", "false true", id="empty"),
    pytest.param('{{ coalesce .Input.body.missing .Input.body.empty "third" }}', "third", id="coalesce"),
    pytest.param("{{ quote .Input.body.ref }}", '"refs/heads/main"', id="quote"),
    pytest.param('{{ quote "a\\nb" }}', '"a\\nb"', id="quote-escapes"),
    pytest.param("{{ squote .Input.body.iid }}", "'7'", id="squote"),
    pytest.param('{{ b64enc "hello" }}', "aGVsbG8=", id="b64enc"),
    pytest.param("{{ b64dec .Input.body.b64 }}", "hello", id="b64dec"),
    pytest.param('{{ b64dec "abcd!" }}', "illegal base64 data at input byte 4", id="b64dec-bad-char"),
    pytest.param('{{ b64dec "abc" }}', "illegal base64 data at input byte 0", id="b64dec-missing-padding"),
    pytest.param('{{ b64dec "YQ==x" }}', "illegal base64 data at input byte 4", id="b64dec-trailing-garbage"),
    pytest.param("{{ toJson .Input.body.nested }}", '{"k":"v"}', id="toJson"),
    pytest.param('{{ toJson (list .Input.body.big .Input.body.iid "<&>") }}', '[1000000,7,"\\u003c\\u0026\\u003e"]',
                 id="toJson-go-numbers-and-html-escape"),
    pytest.param('{{ toRawJson (list "<&>") }}', '["<&>"]', id="toRawJson"),
    pytest.param('{{ (fromJson "{\\"a\\": 1000000}").a }}', "1e+06", id="fromJson-numbers-are-float64"),
    pytest.param('{{ fromJson "not json" }}', "<no value>", id="fromJson-error-is-nil"),
    pytest.param('{{ trunc 3 "abcdef" }} {{ trunc -2 "abcdef" }}', "abc ef", id="trunc"),
    pytest.param('{{ int "42" }} {{ int .Input.body.ratio }} {{ int64 "7.0" }}', "42 0 7", id="int-casts"),
    pytest.param('{{ float64 "2.5" }}', "2.5", id="float64"),
    pytest.param("{{ toString .Input.body.big }}", "1e+06", id="toString-float64"),
    pytest.param('{{ atoi "12" }} {{ atoi "x" }}', "12 0", id="atoi"),
    pytest.param('{{ date "2006-01-02 15:04:05 Mon Jan" 86400 }}', "1970-01-02 00:00:00 Fri Jan", id="date-layout"),
    pytest.param('{{ date "02/01/06 3:04PM -07:00 MST" 0 }}', "01/01/70 12:00AM +00:00 UTC", id="date-12h-zone"),
    pytest.param('{{ now | date "2006" | len }}', "4", id="now-date"),
    pytest.param('{{ get (dict "a" "b") "a" }}[{{ get (dict) "zz" }}]', "b[]", id="dict-get"),
    pytest.param('{{ hasKey .Input.body "ref" }}', "true", id="hasKey"),
    pytest.param("{{ keys .Input.body.nested }}", "[k]", id="keys"),
    pytest.param("{{ first .Input.body.labels }}", "map[name:bug]", id="first"),
    pytest.param("{{ (last .Input.body.labels).name }}", "ui", id="last-then-field"),
    pytest.param('{{ sortAlpha (list "b" "a") }}', "[a b]", id="sortAlpha"),
    pytest.param('{{ regexMatch "^refs/heads/" .Input.body.ref }}', "true", id="regexMatch"),
    pytest.param('{{ regexFind "[0-9]+" "abc123def45" }}', "123", id="regexFind"),
    pytest.param('{{ regexReplaceAll "(\\\\w+)/(\\\\w+)" "a/b c/d" "${2}_$1" }}', "b_a d_c", id="regexReplaceAll"),
    pytest.param('{{ sha256sum "abc" }}', "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 id="sha256sum"),
    pytest.param("{{ len uuidv4 }}", "36", id="uuidv4"),
    pytest.param('{{ if eq .Input.body.ref "refs/heads/main" }}main{{ else }}other{{ end }}', "main", id="if-eq"),
    pytest.param("{{ if .Input.body.draft }}a{{ else if .Input.body.labels }}b{{ else }}c{{ end }}", "b",
                 id="else-if"),
    pytest.param("{{ if not .Input.body.missing }}absent{{ end }}", "absent", id="not-missing"),
    pytest.param("{{ if and .Input.body.ref .Input.body.draft }}x{{ else }}y{{ end }}", "y", id="and"),
    pytest.param('{{ or .Input.body.empty "fallback" }}', "fallback", id="or-returns-value"),
    pytest.param("{{ and 1 0 2 }}", "0", id="and-returns-first-false"),
    pytest.param("{{ if gt (len .Input.body.labels) 1 }}many{{ end }}", "many", id="gt-len"),
    pytest.param('{{ lt .Input.body.iid 10.0 }} {{ ge .Input.body.iid 7.0 }} {{ ne "a" "b" }} {{ le 2 2 }}',
                 "true true true true", id="comparisons"),
    pytest.param("{{ eq .Input.body.iid 7.0 }}", "true", id="eq-json-number-with-float-literal"),
    pytest.param('{{ eq "a" "b" "a" }}', "true", id="eq-any-of"),
    pytest.param('{{ eq .Input.body.missing "x" }}', "false", id="eq-missing-is-false"),
    pytest.param("{{ range .Input.body.labels }}[{{ .name }}]{{ end }}", "[bug][ui]", id="range-dot"),
    pytest.param("{{ range $i, $l := .Input.body.labels }}{{ $i }}:{{ $l.name }} {{ end }}", "0:bug 1:ui ",
                 id="range-index-value"),
    pytest.param("{{ range $k, $v := .Input.body }}{{ $k }},{{ end }}",
                 "b64,big,draft,empty,iid,labels,nested,note,ratio,ref,sha,tiny,title,", id="range-map-sorted"),
    pytest.param("{{ range .Input.body.missing }}x{{ else }}none{{ end }}", "none", id="range-else"),
    pytest.param('{{ range $i, $e := list "a" "b" "c" }}{{ if eq $i 1 }}{{ continue }}{{ end }}'
                 "{{ if eq $i 2 }}{{ break }}{{ end }}{{ $e }}{{ end }}", "a", id="break-continue"),
    pytest.param("{{ range 3 }}{{ . }}{{ end }}", "012", id="range-int"),
    pytest.param("{{ with .Input.body.nested }}{{ .k }}{{ end }}", "v", id="with-sets-dot"),
    pytest.param("{{ with .Input.body.missing }}x{{ else }}no{{ end }}", "no", id="with-else"),
    pytest.param('{{ $x := .Input.body.ref }}{{ $x = "changed" }}{{ $x }}', "changed", id="variable-assign"),
    pytest.param("{{ $r := .Input.body }}{{ $r.sha | trunc 4 }}", "0123", id="variable-fields"),
    pytest.param('{{ if true }}{{ $v := "in" }}{{ $v }}{{ end }}', "in", id="variable-in-block"),
    pytest.param('a  {{- "b" -}}  c', "abc", id="trim-markers"),
    pytest.param("a\n  {{- /* comment */ -}}\n b", "ab", id="trimmed-comment"),
    pytest.param("{{/* only a comment */}}x", "x", id="comment"),
    pytest.param('{{ "x\\ty" }}', "x\ty", id="string-escapes"),
    pytest.param("{{ `a\\n` }}", "a\\n", id="raw-string"),
    pytest.param("{{ 'a' }}", "97", id="char-constant"),
    pytest.param("{{ 0x1F }} {{ -3 }}", "31 -3", id="go-number-literals"),
    pytest.param('{{ printf "%s=%d %v %q %.2f %5s|%-5s| %x %t %%" "k" 42 .Input.body.big "q" 3.14159 '
                 '"r" "l" 255 true }}', 'k=42 1e+06 "q" 3.14     r|l    | ff true %', id="printf-verbs"),
    pytest.param('{{ printf "%d" .Input.body.iid }}', "%!d(float64=7)", id="printf-d-on-json-number"),
    pytest.param('{{ printf "%.0f" .Input.body.big }}', "1000000", id="printf-f-on-json-number"),
    pytest.param('{{ printf "%s %s" "only" }}', "only %!s(MISSING)", id="printf-missing"),
    pytest.param('{{ printf "%s" "a" "extra" }}', "a%!(EXTRA string=extra)", id="printf-extra"),
    pytest.param('{{ print "a" 1 2 "b" }}', "a1 2b", id="print-spacing"),
    pytest.param('{{ println "a" 1 }}', "a 1\n", id="println"),
    pytest.param('{{ index .Input.header "X-Gitlab-Event" 0 }}', "Push Hook", id="index-hyphen-header"),
    pytest.param('{{ index .Input.body.labels 1 "name" }}', "ui", id="index-nested"),
    pytest.param('{{ index .Input.body "nope" }}', "<no value>", id="index-missing-key"),
    pytest.param("{{ (index .Input.body.labels 0).name }}", "bug", id="index-then-field"),
    pytest.param('{{ len .Input.body.sha }} {{ len "é" }}', "16 2", id="len-counts-bytes"),
    pytest.param('{{ html "<a&b>" }} {{ urlquery "a b&c" }}', "&lt;a&amp;b&gt; a+b%26c", id="html-urlquery"),
    pytest.param("{{ .Input.body.nested.k | printf \"%s!\" }}", "v!", id="printf-piped"),
])
def test_renders(source: str, expected: str) -> None:
    assert render(source) == expected


def test_renders_filter_input_string_as_argo_does() -> None:
    # Data filters pass gjson's String() of the extracted value as `.Input`.
    assert render("{{ .Input | upper }}", {"Input": "opened"}) == "OPENED"


def test_render_is_repeatable_and_variables_do_not_leak() -> None:
    template = templates.compile_template('{{ $x := .Input.body.ref }}{{ $x }}')
    assert template.render(DATA) == template.render(DATA) == "refs/heads/main"


def test_compile_is_cached_and_keeps_source() -> None:
    source = "{{ .Input.body.ref }}"
    assert templates.compile_template(source) is templates.compile_template(source)
    assert templates.compile_template(source).source == source


@pytest.mark.parametrize(("source", "message"), [
    pytest.param("{{ foo }}", 'function "foo" not defined', id="unknown-function"),
    pytest.param('{{ .Input.x | bar "y" }}', 'function "bar" not defined', id="unknown-function-in-pipe"),
    pytest.param('{{ sha1sum "x" }}', "sprig function hookgate does not implement", id="known-sprig-gap"),
    pytest.param("{{ .Input.x", "unclosed action", id="unclosed-action"),
    pytest.param("{{ if .x }}a", "unexpected EOF", id="unclosed-if"),
    pytest.param("{{ end }}", "unexpected {{end}}", id="stray-end"),
    pytest.param("{{ else }}", "unexpected {{else}}", id="stray-else"),
    pytest.param("{{ if }}x{{ end }}", "missing value for if", id="if-without-pipeline"),
    pytest.param("{{ $y }}", 'undefined variable "$y"', id="undefined-variable"),
    pytest.param("{{ .Input.X-Gitlab-Event }}", "bad character U+002D '-'", id="hyphen-in-field"),
    pytest.param("{{ .Input.commits.0 }}", "unexpected <.0> in operand", id="numeric-field"),
    pytest.param('{{ define "x" }}{{ end }}', "not supported", id="define"),
    pytest.param('{{ template "x" }}', "not supported", id="template-call"),
    pytest.param("{{ break }}", "{{break}} outside {{range}}", id="break-outside-range"),
    pytest.param('{{ "unterminated }}', "unterminated quoted string", id="unterminated-string"),
    pytest.param('{{ .a | "x" }}', "non executable command in pipeline stage 2", id="literal-in-pipe"),
    pytest.param("{{ (1 }}", "unclosed left paren", id="unclosed-paren"),
    pytest.param("{{ 1x }}", "bad number syntax", id="bad-number"),
    pytest.param('{{ "a".b }}', "unexpected . after term", id="field-of-literal"),
    pytest.param("{{ range $a, $b, $c := . }}{{ end }}", "too many declarations", id="too-many-decls"),
    pytest.param("{{ with .x }}{{ else if .y }}{{ end }}", "unexpected if in else", id="else-if-in-with"),
])
def test_rejects_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(templates.TemplateError) as caught:
        templates.compile_template(source)
    assert message in str(caught.value)


def test_unknown_function_error_lists_supported_functions() -> None:
    with pytest.raises(templates.TemplateError) as caught:
        templates.compile_template("{{ foo }}")
    assert "supported: " in str(caught.value)
    assert "trimPrefix" in str(caught.value)


@pytest.mark.parametrize(("source", "message"), [
    pytest.param("{{ .Input.body.iid | upper }}", "wrong type for value; expected string; got float64",
                 id="string-func-on-json-number"),
    pytest.param("{{ upper .Input.body.missing }}", "invalid value; expected string", id="string-func-on-missing"),
    pytest.param("{{ .Input.body.missing | upper }}", "invalid value; expected string", id="missing-piped"),
    pytest.param("{{ upper .Input.body.note }}", "expected string; got interface {}", id="string-func-on-null"),
    pytest.param("{{ eq .Input.body.iid 7 }}", "incompatible types for comparison", id="eq-float64-vs-int"),
    pytest.param('{{ lt "a" 1 }}', "incompatible types for comparison", id="lt-mixed"),
    pytest.param("{{ lt .Input.body.missing 1 }}", "invalid type for comparison", id="lt-missing"),
    pytest.param("{{ .Input.body.note.x }}", "nil pointer evaluating interface {}.x", id="field-of-null"),
    pytest.param("{{ .Input.body.ref.x }}", "can't evaluate field x in type interface {}", id="field-of-string"),
    pytest.param("{{ .Input.body.ref 1 }}", "ref is not a method but has arguments", id="field-with-args"),
    pytest.param("{{ index .Input.body.labels 5 }}", "index out of range: 5", id="index-out-of-range"),
    pytest.param("{{ index .Input.body.labels .Input.body.iid }}", "cannot index slice/array with type float64",
                 id="index-with-json-number"),
    pytest.param('{{ substr 5 2 "abcdef" }}', "slice bounds out of range", id="substr-panics-like-go"),
    pytest.param("{{ len 3 }}", "len of type int", id="len-of-int"),
    pytest.param('{{ first "x" }}', "Cannot find first on type string", id="first-of-string"),
    pytest.param("{{ nil }}", "nil is not a command", id="nil-command"),
    pytest.param('{{ "a" 1 }}', "can't give argument to non-function", id="args-to-literal"),
    pytest.param('{{ regexFind "(" "x" }}', "error calling regexFind", id="bad-regex"),
    pytest.param("{{ upper }}", "wrong number of args for upper: want 1 got 0", id="arity"),
    pytest.param("{{ $x = 1 }}", "undefined variable: $x", id="assign-undeclared"),
    pytest.param("{{ range .Input.body.ref }}{{ end }}", "range can't iterate over refs/heads/main",
                 id="range-over-string"),
])
def test_fails_at_render_time_like_go(source: str, message: str) -> None:
    template = templates.compile_template(source)
    with pytest.raises(templates.TemplateExecError) as caught:
        template.render(DATA)
    assert message in str(caught.value)
    assert str(caught.value).startswith("template: ")


def test_exec_error_names_the_failing_node() -> None:
    with pytest.raises(templates.TemplateExecError) as caught:
        render("x\n{{ .Input.body.note.deep }}")
    assert "template: 2:3: executing at <.Input.body.note.dee...>" in str(caught.value)


@pytest.mark.parametrize("name", [
    pytest.param(name, id=name) for name in (
        "upper lower title trim trimPrefix trimSuffix trimAll replace contains hasPrefix hasSuffix split "
        "splitList join default empty coalesce quote squote b64enc b64dec toJson toRawJson fromJson substr "
        "trunc int int64 float64 toString atoi now date list dict get hasKey keys first last regexMatch "
        "regexFind regexReplaceAll sha256sum uuidv4 eq ne lt le gt ge and or not len print printf println "
        "index").split()
])
def test_supports_required_function(name: str) -> None:
    assert name in templates.SUPPORTED_FUNCTIONS


def test_error_classes_are_value_errors() -> None:
    assert issubclass(templates.TemplateError, ValueError)
    assert issubclass(templates.TemplateExecError, ValueError)
    assert not issubclass(templates.TemplateError, templates.TemplateExecError)
