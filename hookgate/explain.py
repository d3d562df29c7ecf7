"""`hookgate test`: one event through the loaded sensors, offline, explained.

Nothing is sent anywhere: the sensors are compiled against an offline cluster, the event is
evaluated by the same filters, conditions and trigger parameters as `hookgate up` uses, and the
resources the triggers would create are shown fully resolved (name already chosen).

The event (`--event FILE`) is one of:

* a CloudEvent (a JSON object with `specversion`): used as is. The dependencies evaluated are
  those whose `eventSourceName` / `eventName` equal its `source` / `subject`, across all loaded
  sensors (`--dependency` narrows them to one);
* a bare `{"header": ..., "body": ...}` (webhook) or `{"headers": ..., "body": ...}` (github,
  gitlab) object: the event data, wrapped in a CloudEvent;
* with `--provider github|gitlab`, a raw payload as the provider sends it, and its headers as
  `--header K:V` (e.g. `--header X-GitHub-Event:push`): shaped exactly as the gateway shapes it
  (signature and token checks skipped).

For a bare or raw event, `--dependency NAME` says which dependency it is for (not needed when the
loaded sensors have exactly one dependency between them); the CloudEvent's `source` / `subject`
are that dependency's `eventSourceName` / `eventName`.

Naming in the report: a dependency is named by its plain name when no other loaded sensor has a
dependency of that name, else `<sensor>/<dependency>`; triggers likewise (`<sensor>/<trigger>`
only when two loaded sensors have a trigger of that name). The names depend on the loaded
sensors only, never on the event. `--dependency` accepts either form.

A trigger fires when its condition holds with the dependencies that matched this one event; a
condition that needs other dependencies too is reported as waiting for them. With `--json`,
stdout is exactly one JSON object::

    {"dependencies": {NAME: {"matched": bool, "error": str | null,
                             "filters": [{"kind", "spec", "passed", "reason"}]}},
     "triggers": [{"name", "fired": bool, "reason", "resource": {...} | null}]}

Exit codes: 0 the event was evaluated (whatever matched); 1 invalid manifests or event, or no
dependency selected (the message names the file, or lists the dependencies); 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from multidict import CIMultiDict

from gateway import github, gitlab
from gateway.envelope import CloudEvent, EnvelopeError
from gateway.errors import HookgateError, ManifestError, RequestRejected
from gateway.models import GithubEventSource, GitlabEventSource
from gateway.webhook import Accepted, Incoming, content_id
from hookgate import manifests
from sensors.filters import Verdict
from sensors.kube import DryRunCluster
from sensors.models import EventDependency, Sensor
from sensors.runner import CompiledSensor, CompiledTrigger, compile_sensor

ProviderSpec = GithubEventSource | GitlabEventSource
_BARE_KEYS = frozenset({"header", "headers", "body", "metadata"})


class EventError(HookgateError):
    """The event file cannot be read or is not an event; the message names the file."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")


class SelectionError(HookgateError):
    """No dependency (or more than one) fits the event; the message lists those available."""


class UsageError(Exception):
    """Options that do not go together: exit 2."""


# --- what was loaded ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dependency:
    sensor: CompiledSensor
    spec: EventDependency
    key: str  # the name in the report

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualified(self) -> str:
        return f"{self.sensor.name}/{self.spec.name}"

    @property
    def origin(self) -> tuple[str, str]:
        return self.spec.eventSourceName, self.spec.eventName

    def describe(self) -> str:
        return (f"{self.key} (sensor {self.sensor.name}; eventSourceName {self.spec.eventSourceName}, "
                f"eventName {self.spec.eventName})")


@dataclass(frozen=True, slots=True)
class Catalog:
    bundle: manifests.Bundle
    sensors: tuple[CompiledSensor, ...]
    dependencies: tuple[Dependency, ...]
    trigger_keys: dict[tuple[str, str], str]  # (sensor, trigger) → name in the report

    def listing(self) -> str:
        return "\n".join(f"  {d.describe()}" for d in self.dependencies)


def unique_keys(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(sensor, name) → `name` when no other sensor uses it, else `sensor/name`."""
    sensors_of: dict[str, set[str]] = {}
    for sensor, name in pairs:
        sensors_of.setdefault(name, set()).add(sensor)
    return {(s, n): n if len(sensors_of[n]) == 1 else f"{s}/{n}" for s, n in pairs}


def load_catalog(files: Sequence[str]) -> Catalog:
    bundle = manifests.load(files)
    if not bundle.sensors:
        raise ManifestError("no Sensor among the given manifests; `hookgate test` needs at least one",
                            file=", ".join(files))
    offline = DryRunCluster(None, templates=[t.model_dump(mode="json") for t in bundle.templates])
    sensors = tuple(_compile(bundle, s, offline) for s in bundle.sensors)
    pairs = [(c.name, name) for c in sensors for name in c.dependencies]
    keys = unique_keys(pairs)
    deps = tuple(Dependency(c, c.dependencies[n].dependency, keys[(c.name, n)]) for c in sensors
                 for n in c.dependencies)
    trigger_keys = unique_keys([(c.name, t.name) for c in sensors for t in c.triggers])
    return Catalog(bundle, sensors, deps, trigger_keys)


def _compile(bundle: manifests.Bundle, sensor: Sensor, cluster: DryRunCluster) -> CompiledSensor:
    try:
        return compile_sensor(sensor, cluster=cluster)
    except ManifestError as e:
        file, document = bundle.origin(sensor)
        raise ManifestError(e.message, file=file, document=document, path=e.path, kind=e.kind,
                            name=e.name) from None


# --- choosing dependencies ------------------------------------------------------------------------


def pick_dependency(catalog: Catalog, wanted: str | None) -> Dependency:
    """The one dependency a bare or raw event is for."""
    if wanted is None:
        if len(catalog.dependencies) == 1:
            return catalog.dependencies[0]
        raise SelectionError("the event is not a CloudEvent, so it does not say which dependency it is for; "
                             f"name one with --dependency NAME. Dependencies:\n{catalog.listing()}")
    found = [d for d in catalog.dependencies if wanted in (d.name, d.qualified)]
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(d.qualified for d in found)
        raise SelectionError(f"dependency {wanted!r} is in several sensors; use one of: {names}")
    raise SelectionError(f"no dependency named {wanted!r}. Dependencies:\n{catalog.listing()}")


def route(catalog: Catalog, event: CloudEvent, wanted: str | None) -> list[Dependency]:
    """The dependencies a CloudEvent reaches, by source / subject, as the sensors route it."""
    routed = [d for d in catalog.dependencies if d.origin == (event.source, event.subject)]
    if wanted is not None:
        routed = [d for d in routed if wanted in (d.name, d.qualified)]
    if routed:
        return routed
    narrowed = f" named {wanted!r}" if wanted is not None else ""
    raise SelectionError(f"no dependency{narrowed} listens to source {event.source!r}, subject "
                         f"{event.subject!r} (the CloudEvent's). Dependencies:\n{catalog.listing()}")


# --- reading the event ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    event: CloudEvent
    dependencies: list[Dependency]
    notes: list[str]


def read_event(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EventError(path, "no such file") from None
    except OSError as e:
        raise EventError(path, f"cannot read: {e.strerror or e}") from None


def parse_json(path: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise EventError(path, f"not valid JSON: {e}") from None


def parse_headers(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r}: expected NAME:VALUE, e.g. X-GitHub-Event:push")
        pairs.append((name.strip(), text.strip()))
    return pairs


def check_usage(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The --header pairs; options that do not go together are a UsageError."""
    if args.header and not args.provider:
        raise UsageError("--header goes with --provider github|gitlab (it describes a raw provider payload)")
    return parse_headers(args.header)


def load_input(args: argparse.Namespace, catalog: Catalog, headers: list[tuple[str, str]]) -> Input:
    raw = read_event(args.event)
    if args.provider:
        return provider_input(args.event, raw, args.provider, headers, pick_dependency(catalog, args.dependency),
                              catalog.bundle)
    doc = parse_json(args.event, raw)
    if isinstance(doc, dict) and "specversion" in doc:
        event = cloud_event(args.event, doc)
        return Input(event, route(catalog, event, args.dependency), [])
    if is_bare(doc):
        return bare_input(doc, raw, pick_dependency(catalog, args.dependency), catalog.bundle)
    raise EventError(args.event, "neither a CloudEvent (no \"specversion\") nor a {\"header\"/\"headers\", \"body\"} "
                                 "object; for a raw GitHub or GitLab payload add --provider github|gitlab and its "
                                 "headers, e.g. --header X-GitHub-Event:push")


def cloud_event(path: str, doc: dict[str, Any]) -> CloudEvent:
    try:
        return CloudEvent.from_dict(doc)
    except EnvelopeError as e:
        raise EventError(path, f"not a valid CloudEvent: {e}") from None


def is_bare(doc: Any) -> bool:
    return isinstance(doc, dict) and "body" in doc and ("header" in doc or "headers" in doc) \
        and set(doc) <= _BARE_KEYS


def source_type(bundle: manifests.Bundle, dep: Dependency) -> str | None:
    """The type (webhook, github, gitlab) of the EventSource entry `dep` listens to, when it is loaded."""
    for es in bundle.eventsources:
        if es.name != dep.spec.eventSourceName or es.namespace != dep.sensor.sensor.namespace:
            continue
        for kind in ("webhook", "github", "gitlab"):
            if dep.spec.eventName in getattr(es.spec, kind):
                return kind
    return None


def bare_input(doc: dict[str, Any], raw: bytes, dep: Dependency, bundle: manifests.Bundle) -> Input:
    known = source_type(bundle, dep)
    event = CloudEvent(id=content_id(raw), source=dep.spec.eventSourceName, subject=dep.spec.eventName,
                       type=known or "webhook", data=doc)
    expected = {"webhook": "header", "github": "headers", "gitlab": "headers"}.get(known or "")
    if not expected or expected in doc:
        return Input(event, [dep], [])
    note = (f"EventSource {dep.spec.eventSourceName} is of type {known}, whose events carry \"{expected}\", "
            f"not \"{'headers' if expected == 'header' else 'header'}\": paths starting with {expected}. "
            "find nothing in this event")
    return Input(event, [dep], [note])


# --- raw provider payloads ------------------------------------------------------------------------


def provider_spec(bundle: manifests.Bundle, provider: str, dep: Dependency, notes: list[str]) -> ProviderSpec:
    for es in bundle.eventsources:
        if es.name == dep.spec.eventSourceName and es.namespace == dep.sensor.sensor.namespace:
            entries: Mapping[str, ProviderSpec] = getattr(es.spec, provider)
            if dep.spec.eventName in entries:
                return entries[dep.spec.eventName]
    known = source_type(bundle, dep)
    if known is not None:
        notes.append(f"EventSource {dep.spec.eventSourceName}/{dep.spec.eventName} is of type {known}, "
                     f"not {provider}; the event is shaped as {provider} would send it")
    model = GithubEventSource if provider == "github" else GitlabEventSource
    return model.model_validate({"webhook": {"endpoint": "/", "port": "12000"}})


def provider_input(path: str, raw: bytes, provider: str, headers: list[tuple[str, str]], dep: Dependency,
                   bundle: manifests.Bundle) -> Input:
    notes: list[str] = []
    spec = provider_spec(bundle, provider, dep, notes)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers = [*headers, ("Content-Type", "application/json")]
    incoming = Incoming(method="POST", path=spec.webhook.endpoint, headers=CIMultiDict(headers),
                        header_items=headers, body=raw)
    accepted = shape(path, provider, spec, incoming)
    if not accepted.publish:
        notes.append(f"the gateway would not publish this event ({accepted.note}); evaluated as if it did")
        accepted = shape(path, provider, spec.model_copy(update={"events": []}), incoming)
    event = CloudEvent(id=accepted.event_id, source=dep.spec.eventSourceName, subject=dep.spec.eventName,
                       type=provider, data=accepted.data)
    return Input(event, [dep], notes)


def shape(path: str, provider: str, spec: ProviderSpec, incoming: Incoming) -> Accepted:
    try:
        if isinstance(spec, GithubEventSource):
            return github.accept(spec, incoming, secret=None)
        return gitlab.accept(spec, incoming, secret=None)
    except RequestRejected as e:
        hint = {"github": " (add --header X-GitHub-Event:<event>)",
                "gitlab": " (add --header 'X-Gitlab-Event:<Push Hook|Merge Request Hook|...>')"}[provider]
        hint = hint if "header" in e.reason else ""
        raise EventError(path, f"the {provider} gateway would refuse it with {e.status}: {e.reason}{hint}") from None


# --- evaluating -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DependencyReport:
    dependency: Dependency
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class TriggerReport:
    key: str
    fired: bool
    reason: str
    resource: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Report:
    event: CloudEvent
    dependencies: list[DependencyReport]
    triggers: list[TriggerReport]

    def to_json(self) -> dict[str, Any]:
        deps = {r.dependency.key: {
            "matched": r.verdict.matched,
            "error": r.verdict.error,
            "filters": [{"kind": f.kind, "spec": f.spec, "passed": f.passed, "reason": f.reason}
                        for f in r.verdict.filters],
        } for r in self.dependencies}
        triggers = [{"name": t.key, "fired": t.fired, "reason": t.reason, "resource": t.resource}
                    for t in self.triggers]
        return {"dependencies": deps, "triggers": triggers}


def evaluate(catalog: Catalog, given: Input) -> Report:
    deps = [DependencyReport(d, d.sensor.dependencies[d.name].evaluate(given.event)) for d in given.dependencies]
    triggers: list[TriggerReport] = []
    for compiled in catalog.sensors:
        verdicts = {r.dependency.name: r.verdict for r in deps if r.dependency.sensor is compiled}
        for trigger in compiled.triggers:
            if trigger.condition.dependencies & verdicts.keys():
                key = catalog.trigger_keys[(compiled.name, trigger.name)]
                triggers.append(judge(trigger, key, list(compiled.dependencies), verdicts, given.event))
    return Report(given.event, deps, triggers)


def judge(trigger: CompiledTrigger, key: str, order: list[str], verdicts: Mapping[str, Verdict],
          event: CloudEvent) -> TriggerReport:
    condition = trigger.condition
    relevant = [n for n in order if n in verdicts and n in condition.dependencies]
    matched = [n for n in relevant if verdicts[n].matched]
    if not matched:
        return TriggerReport(key, False, f"{words(relevant)} did not match (condition {condition.source})")
    if not condition.evaluate(matched):
        return TriggerReport(key, False, f"{words(matched)} matched; {waits_for(trigger, matched, order)}")
    return fire(trigger, key, matched, event)


def waits_for(trigger: CompiledTrigger, present: list[str], order: list[str]) -> str:
    condition = trigger.condition
    missing = [n for n in order if n in condition.dependencies and n not in present]
    enough = [n for n in missing if condition.evaluate([*present, n])]
    needs_all = all(not condition.evaluate([*present, *(m for m in missing if m != n)]) for n in missing)
    if enough:
        wanted = " or ".join(enough)
    elif needs_all:
        wanted = " and ".join(missing)
    else:
        wanted = "more of " + ", ".join(missing)
    return f"waits for {wanted} (condition {condition.source})"


def fire(trigger: CompiledTrigger, key: str, matched: list[str], event: CloudEvent) -> TriggerReport:
    condition = trigger.condition
    firing = matched if condition.needs_state else matched[:1]
    events = {name: event for name in firing}
    reason = f"condition {condition.source} holds ({words(matched)} matched)"
    if len(firing) < len(matched):
        reason += (f"; with no && in the condition, Argo Events fires once for each of {', '.join(matched)}: "
                   f"shown is the resource for {firing[0]}")
    try:
        resource = trigger.action_for(events).render(events)
    except (ValueError, HookgateError) as e:  # a parameter that does not resolve, an invalid template
        return TriggerReport(key, False, f"{reason}, but the trigger fails: {e}")
    return TriggerReport(key, True, reason, resource)


def words(names: Sequence[str]) -> str:
    return ", ".join(names)


# --- showing --------------------------------------------------------------------------------------


def human(report: Report) -> str:
    e = report.event
    lines = [f"event: {e.type} event {e.id}, source {e.source}, subject {e.subject}"]
    for dep in report.dependencies:
        lines.extend(dependency_lines(dep))
    for trigger in report.triggers:
        lines.extend(trigger_lines(trigger))
    if not report.triggers:
        lines.append("no trigger's condition uses these dependencies")
    fired = sum(t.fired for t in report.triggers)
    matched = sum(r.verdict.matched for r in report.dependencies)
    lines.append(f"{matched} of {len(report.dependencies)} dependencies matched; "
                 f"{fired} of {len(report.triggers)} triggers fire")
    return "\n".join(lines)


def dependency_lines(report: DependencyReport) -> list[str]:
    dep, verdict = report.dependency, report.verdict
    lines = [f"sensor {dep.sensor.name}, dependency {dep.key}: {'MATCHED' if verdict.matched else 'NOT MATCHED'}"]
    for f in verdict.filters:
        mark = "✓" if f.passed else "-" if f.reason.startswith("not evaluated") else "✗"
        lines.append(f"  {mark} {f.kind} {f.spec} — {f.reason}")
    if not verdict.filters:
        lines.append("  (no filters: every event passes)")
    if verdict.error:
        lines.append(f"  error: {verdict.error}")
    return lines


def trigger_lines(report: TriggerReport) -> list[str]:
    lines = [f"trigger {report.key}: {'FIRES' if report.fired else 'DOES NOT FIRE'}", f"  {report.reason}"]
    if report.resource is not None:
        lines.append(f"  {summary(report.resource)}")
        text = yaml.safe_dump(report.resource, sort_keys=False, allow_unicode=True, width=1000)
        lines.extend(f"    {line}" for line in text.rstrip("\n").splitlines())
    return lines


def summary(resource: Mapping[str, Any]) -> str:
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") if isinstance(resource.get("spec"), dict) else {}
    details = []
    ref = spec.get("workflowTemplateRef")
    if isinstance(ref, dict) and ref.get("name"):
        details.append(f"{'clusterWorkflowTemplateRef' if ref.get('clusterScope') else 'workflowTemplateRef'} "
                       f"{ref['name']}")
    params = (spec.get("arguments") or {}).get("parameters") or []
    shown = [f"{p.get('name')}={short(p.get('value', '<unset>'))}" for p in params if isinstance(p, dict)]
    if shown:
        details.append(", ".join(shown))
    where = "/".join(str(x) for x in (meta.get("namespace"), meta.get("name")) if x)
    tail = f"  ({'; '.join(details)})" if details else ""
    return f"{resource.get('kind', '?')} {where}{tail}"


def short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the command ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """`hookgate test`; invalid manifests or event raise a HookgateError, which the CLI reports (exit 1)."""
    try:
        headers = check_usage(args)
    except UsageError as e:
        print(f"hookgate test: {e}", file=sys.stderr)
        return 2
    catalog = load_catalog(args.files)
    given = load_input(args, catalog, headers)
    for note in given.notes:
        print(f"note: {note}", file=sys.stderr)
    report = evaluate(catalog, given)
    emit(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else human(report))
    return 0


def emit(text: str) -> None:
    """Print the report; a reader that stops early (`| head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
