"""Sensor and WorkflowTemplate manifest models, with Argo Events' field names and defaults.

See `gateway.models` for the rules every model follows (unknown fields rejected, `Unsupported`
fields refused with their path, deployment settings accepted).
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.models import ArgoObject, DeploymentSetting, Model, ObjectMeta, SecretKeySelector, Unsupported

LogicalOperator = Literal["", "and", "or"]

# --- dependencies and filters --------------------------------------------------------------------


class DataFilter(Model):
    path: str
    type: str  # Argo validates nothing here; an unknown type is an error when the filter runs
    value: list[str] = Field(default_factory=list)
    comparator: Literal["", "=", "!=", ">", ">=", "<", "<="] = ""
    template: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _values_as_strings(cls, value: Any) -> Any:
        # YAML reads `value: [2]` or `[true]` as numbers / booleans; Argo's field is []string.
        if isinstance(value, list):
            return [_yaml_scalar_text(v) for v in value]
        return value


def _yaml_scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class PayloadField(Model):
    name: str
    path: str


class ExprFilter(Model):
    expr: str
    fields: list[PayloadField] = Field(default_factory=list)


class TimeFilter(Model):
    start: str
    stop: str
    timezone: str | None = None


class ContextFilter(Model):
    id: str | None = None
    source: str | None = None
    specversion: str | None = None
    type: str | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    time: str | None = None
    dataschema: str | None = None


_LUA = "Lua scripts are not supported (use exprs with CEL, or data filters)"


class EventDependencyFilter(Model):
    time: TimeFilter | None = None
    context: ContextFilter | None = None
    data: list[DataFilter] | None = None
    exprs: list[ExprFilter] | None = None
    dataLogicalOperator: LogicalOperator = ""
    exprLogicalOperator: LogicalOperator = ""
    script: Unsupported(_LUA) = None


class EventDependency(Model):
    name: str
    eventSourceName: str
    eventName: str
    filters: EventDependencyFilter | None = None
    transform: Unsupported("transform (jq / Lua) is not supported; filter the raw event instead") = None
    filtersLogicalOperator: LogicalOperator = ""


# --- triggers ------------------------------------------------------------------------------------


class TriggerParameterSource(Model):
    dependencyName: str
    contextKey: str | None = None
    contextTemplate: str | None = None
    dataKey: str | None = None
    dataTemplate: str | None = None
    value: str | None = None
    useRawData: bool = False

    @field_validator("value", mode="before")
    @classmethod
    def _value_as_string(cls, value: Any) -> Any:
        return _yaml_scalar_text(value)


class TriggerParameter(Model):
    src: TriggerParameterSource
    dest: str = ""
    operation: Literal["", "overwrite", "append", "prepend"] = ""


class Backoff(Model):
    duration: int | str | None = None  # an int is nanoseconds, a string a Go duration ("1s")
    factor: float | str | None = None
    jitter: float | str | None = None
    steps: int | None = None


class K8sResourcePolicy(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    backoff: Backoff | None = None
    errorOnBackoffTimeout: bool = False


class StatusPolicy(Model):
    allow: list[int] = Field(default_factory=list)


class TriggerPolicy(Model):
    k8s: K8sResourcePolicy | None = None
    status: StatusPolicy | None = None


class RateLimit(Model):
    unit: Literal["Second", "Minute", "Hour"] = "Second"
    requestsPerUnit: int = 0


class ArtifactLocation(Model):
    resource: dict[str, Any] | None = None
    inline: str | None = None
    file: Unsupported("source.file: give the resource inline (source.resource) or with -f") = None
    url: Unsupported("source.url: give the resource inline (source.resource)") = None
    configmap: Unsupported("source.configmap: give the resource inline (source.resource)") = None
    git: Unsupported("source.git: give the resource inline (source.resource)") = None
    s3: Unsupported("source.s3: give the resource inline (source.resource)") = None

    @model_validator(mode="after")
    def _one_source(self) -> ArtifactLocation:
        if (self.resource is None) == (self.inline is None):
            raise PydanticCustomError("source", "exactly one of source.resource or source.inline is required")
        return self


class ArgoWorkflowTrigger(Model):
    source: ArtifactLocation
    operation: Literal["submit", "submit-from", "resubmit", "retry", "resume", "suspend", "terminate", "stop"]
    parameters: list[TriggerParameter] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)


class StandardK8STrigger(Model):
    source: ArtifactLocation
    operation: Literal["create", "update", "patch", "delete"] = "create"
    parameters: list[TriggerParameter] = Field(default_factory=list)
    patchStrategy: str = "application/merge-patch+json"
    liveObject: bool = False


class SecureHeader(Model):
    name: str
    valueFrom: dict[str, SecretKeySelector]


class BasicAuth(Model):
    username: SecretKeySelector | None = None
    password: SecretKeySelector | None = None


class HTTPTrigger(Model):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    payload: list[TriggerParameter] = Field(default_factory=list)
    parameters: list[TriggerParameter] = Field(default_factory=list)
    timeout: int = 60
    headers: dict[str, str] = Field(default_factory=dict)
    secureHeaders: list[SecureHeader] = Field(default_factory=list)
    basicAuth: BasicAuth | None = None
    tls: Unsupported("http trigger TLS client settings are not implemented") = None
    dynamicHeaders: Unsupported("http trigger dynamicHeaders are not implemented") = None


class LogTrigger(Model):
    intervalSeconds: int = 0


class ConditionsResetByTime(Model):
    cron: str
    timezone: str | None = None


class ConditionsResetCriteria(Model):
    byTime: ConditionsResetByTime | None = None


_OTHER_TRIGGER = "this trigger type is not implemented (supported: argoWorkflow, k8s, http, log)"


class TriggerTemplate(Model):
    name: str
    conditions: str = ""
    conditionsReset: list[ConditionsResetCriteria] = Field(default_factory=list)
    argoWorkflow: ArgoWorkflowTrigger | None = None
    k8s: StandardK8STrigger | None = None
    http: HTTPTrigger | None = None
    log: LogTrigger | None = None
    awsLambda: Unsupported(_OTHER_TRIGGER) = None
    custom: Unsupported(_OTHER_TRIGGER) = None
    kafka: Unsupported(_OTHER_TRIGGER) = None
    nats: Unsupported(_OTHER_TRIGGER) = None
    slack: Unsupported(_OTHER_TRIGGER) = None
    openWhisk: Unsupported(_OTHER_TRIGGER) = None
    azureEventHubs: Unsupported(_OTHER_TRIGGER) = None
    pulsar: Unsupported(_OTHER_TRIGGER) = None
    azureServiceBus: Unsupported(_OTHER_TRIGGER) = None
    email: Unsupported(_OTHER_TRIGGER) = None

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerTemplate:
        kinds = [k for k in ("argoWorkflow", "k8s", "http", "log") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise PydanticCustomError(
                "trigger", "a trigger template needs exactly one of argoWorkflow, k8s, http, log (got {got})",
                {"got": ", ".join(kinds) or "none"})
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("argoWorkflow", "k8s", "http", "log") if getattr(self, k) is not None)


class Trigger(Model):
    template: TriggerTemplate
    parameters: list[TriggerParameter] = Field(default_factory=list)
    policy: TriggerPolicy | None = None
    retryStrategy: Backoff | None = None
    rateLimit: RateLimit | None = None
    atLeastOnce: bool = False
    dlqTrigger: Trigger | None = None


class SensorSpec(Model):
    dependencies: list[EventDependency]
    triggers: list[Trigger]
    template: DeploymentSetting = None
    replicas: DeploymentSetting = None
    revisionHistoryLimit: DeploymentSetting = None
    eventBusName: str | None = None
    errorOnFailedRound: bool = False  # never read by Argo Events either
    loggingFields: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> SensorSpec:
        for kind, names in (("dependency", [d.name for d in self.dependencies]),
                            ("trigger", [t.template.name for t in self.triggers])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise PydanticCustomError("unique", "duplicate {kind} name(s): {names}",
                                          {"kind": kind, "names": ", ".join(dupes)})
        return self


class Sensor(ArgoObject):
    kind: Literal["Sensor"]
    spec: SensorSpec

    @model_validator(mode="after")
    def _compact(self) -> Sensor:
        compact(self)
        return self


#: One set per distinct combination of fields given, and one instance per distinct value object
#: (see `compact`): what every Sensor loaded in the process refers to.
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_VALUES: dict[tuple[Any, ...], BaseModel] = {}


def compact(value: Any) -> Any:
    """Store a validated manifest compactly: a process keeps thousands of Sensors, mostly alike.

    Every model of the tree is frozen and nothing changes what it holds in place (a trigger's
    resource is copied before its parameters are written). So what is equal is stored once:
    each distinct string (interned); the set of field names given, which pydantic keeps per
    instance and copies before any update (`model_copy`); and the value objects of `_SHARED`
    (filters, parameters, policies), which have no identity of their own. Every value stays
    equal to what was validated. Half of a Sensor's memory, in a bundle of generated Sensors.
    """
    if isinstance(value, BaseModel):
        given = value.__pydantic_fields_set__
        object.__setattr__(value, "__pydantic_fields_set__", _FIELD_SETS.setdefault(frozenset(given), given))
        for fields in (value.__dict__, value.__pydantic_extra__):
            for key, item in (fields or {}).items():
                fields[key] = compact(item)  # type: ignore[index]
        if isinstance(value, _SHARED) and not value.__pydantic_extra__:
            try:
                key = (type(value), id(value.__pydantic_fields_set__), *map(_identity, value.__dict__.values()))
                return _VALUES.setdefault(key, value)
            except TypeError:  # an unhashable value somewhere (a YAML !!set): kept as it is
                return value
        return value
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is list:
        return [compact(item) for item in value]
    if kind is dict:
        return {sys.intern(k) if type(k) is str else k: compact(v) for k, v in value.items()}
    return value


def _identity(value: Any) -> Any:
    """A hashable stand-in for a compacted field value (a model by identity: it is already shared or unique)."""
    if isinstance(value, BaseModel):
        return id(value)
    if type(value) is list:
        return (list, *map(_identity, value))
    if type(value) is dict:
        return (dict, *((k, _identity(v)) for k, v in value.items()))
    return (type(value), value)  # 1, 1.0 and True are equal, but not the same value here


_SHARED = (DataFilter, PayloadField, ExprFilter, TimeFilter, ContextFilter, EventDependencyFilter,
           TriggerParameterSource, TriggerParameter, Backoff, K8sResourcePolicy, StatusPolicy, TriggerPolicy,
           RateLimit, LogTrigger, ConditionsResetByTime, ConditionsResetCriteria, SecureHeader, BasicAuth)


class WorkflowTemplate(BaseModel):
    """Argo Workflows' templates: only names and declared parameters matter here."""

    model_config = ConfigDict(extra="allow", frozen=True)

    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["WorkflowTemplate", "ClusterWorkflowTemplate"]
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)


