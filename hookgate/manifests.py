"""Reading manifests: files and folders of multi-document YAML into one validated bundle.

This is the only place that knows every kind, so it lives above both `gateway` and `sensors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ManifestError
from gateway.models import EventBus, EventSource, Secret
from sensors.models import Sensor, Trigger, WorkflowTemplate

YAML_SUFFIXES = (".yaml", ".yml")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: thousands of sensors load fast
KINDS: dict[str, type[BaseModel]] = {
    "EventSource": EventSource,
    "Sensor": Sensor,
    "EventBus": EventBus,
    "Secret": Secret,
    "WorkflowTemplate": WorkflowTemplate,
    "ClusterWorkflowTemplate": WorkflowTemplate,
}


@dataclass
class Bundle:
    eventsources: list[EventSource] = field(default_factory=list)
    sensors: list[Sensor] = field(default_factory=list)
    eventbuses: list[EventBus] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    templates: list[WorkflowTemplate] = field(default_factory=list)
    origins: dict[int, tuple[str, int]] = field(default_factory=dict)  # id(model) → (file, document)

    def add(self, model: BaseModel, origin: tuple[str, int]) -> None:
        self.origins[id(model)] = origin
        match model:
            case EventSource():
                self.eventsources.append(model)
            case Sensor():
                self.sensors.append(model)
            case EventBus():
                self.eventbuses.append(model)
            case Secret():
                self.secrets.append(model)
            case WorkflowTemplate():
                self.templates.append(model)

    def origin(self, model: BaseModel) -> tuple[str, int]:
        return self.origins.get(id(model), ("<input>", 0))

    def secret(self, namespace: str, name: str) -> Secret | None:
        for s in self.secrets:
            if s.metadata.name == name and (s.metadata.namespace or namespace) == namespace:
                return s
        return None

    def template(self, kind: str, namespace: str, name: str) -> WorkflowTemplate | None:
        for t in self.templates:
            same_ns = kind == "ClusterWorkflowTemplate" or (t.metadata.namespace or namespace) == namespace
            if t.kind == kind and t.metadata.name == name and same_ns:
                return t
        return None


def expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden entries are skipped: a mounted ConfigMap holds `..data` and `..<timestamp>` copies.
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES
                              and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            yield path
        else:
            raise ManifestError("no such file or folder", file=str(path))


def load(paths: Iterable[str | Path]) -> Bundle:
    bundle = Bundle()
    for path in expand(paths):
        for index, doc in enumerate(_documents(path)):
            if doc is None:
                continue
            bundle.add(parse_document(doc, file=str(path), document=index), (str(path), index))
    _check_names(bundle)
    return bundle


def _documents(path: Path) -> list[Any]:
    try:
        return list(yaml.load_all(path.read_text(), Loader=_LOADER))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ManifestError(f"not valid YAML{where}: {problem}", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read: {e}", file=str(path)) from None


def parse_document(doc: Any, *, file: str, document: int) -> BaseModel:
    if not isinstance(doc, dict):
        raise ManifestError("a manifest must be a mapping with apiVersion and kind", file=file, document=document)
    kind = doc.get("kind")
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError(f"unknown kind {kind!r} (hookgate reads {', '.join(KINDS)})",
                            file=file, document=document, path=("kind",))
    try:
        parsed = model.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more error(s))" if e.error_count() > 1 else ""
        raise ManifestError(_message(first) + more, file=file, document=document,
                            path=_clean_loc(first["loc"]), kind=kind, name=name) from None
    if not parsed.metadata.name:  # type: ignore[attr-defined]
        raise ManifestError("metadata.name is required", file=file, document=document,
                            path=("metadata", "name"), kind=kind)
    return parsed


#: Fields of a Trigger that Argo's own examples sometimes put under `template`, where Argo drops them.
_TRIGGER_FIELDS = frozenset(Trigger.model_fields) - {"template"}


def _known_fields() -> dict[str, str]:
    names: dict[str, str] = {}
    pending: list[type[BaseModel]] = list(KINDS.values())
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.setdefault(name.lower(), name)
            pending.extend(t for t in _model_types(info.annotation) if t not in seen)
    return names


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in getattr(annotation, "__args__", ()) for t in _model_types(arg)]


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        field = str(error["loc"][-1]) if error["loc"] else ""
        if field in _TRIGGER_FIELDS and "template" in error["loc"]:
            return (f"unknown field here: `{field}` belongs on the trigger, beside `template` "
                    "(Argo Events silently ignores it in this place)")
        known = _known_fields().get(field.lower())
        if known and known != field:
            return f"unknown field (did you mean `{known}`? field names are case-sensitive)"
        return "unknown field (not an Argo Events field, or misspelt)"
    if error["type"] == "missing":
        return "required field missing"
    return str(error["msg"]).removeprefix("Value error, ")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds the tag of a union branch or a function name to the location; users never wrote those.
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "union[")))


def _check_names(bundle: Bundle) -> None:
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    for model in [*bundle.eventsources, *bundle.sensors]:
        key = (model.kind, model.namespace, model.name)
        if key in seen:
            file, doc = bundle.origin(model)
            first = seen[key]
            raise ManifestError(f"{model.kind} {model.namespace}/{model.name} is defined twice "
                                f"(first in {first[0]}, document {first[1]})", file=file, document=doc,
                                path=("metadata", "name"))
        seen[key] = bundle.origin(model)
