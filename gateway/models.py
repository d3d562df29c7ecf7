"""Manifest models shared by both sides, and the EventSource kind.

Field names and defaults are Argo Events' (`argoproj.io/v1alpha1`), so that a manifest written for
Argo Events loads unchanged. Every model forbids unknown fields: a typo is an error with its path,
never a silently ignored setting. Fields Argo defines but hookgate does not implement are typed
`Unsupported`, which rejects any value with a message naming the field; fields that only configure
Argo's own Deployments (`service`, `template`, `replicas`) are accepted because hookgate is deployed
by `deploy/` instead, and they change nothing about how events are handled.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

ARGO_API_VERSION = "argoproj.io/v1alpha1"
DEFAULT_MAX_PAYLOAD = 25 * 1024 * 1024  # GitHub's maximum delivery size


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _unsupported(reason: str) -> BeforeValidator:
    def reject(value: Any) -> Any:
        raise PydanticCustomError("unsupported", "not supported by hookgate: {reason}", {"reason": reason})

    return BeforeValidator(reject)


def Unsupported(reason: str) -> Any:
    """A field Argo Events defines and hookgate refuses: any value set is a load-time error."""
    return Annotated[Any, _unsupported(reason)]


#: Argo's deployment settings (pod template, Service, replicas): valid, and not hookgate's concern.
DeploymentSetting = Any


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretKeySelector(Model):
    name: str
    key: str
    optional: bool | None = None


class Secret(BaseModel):
    """A v1 Secret given with `-f`; secrets referenced by manifests resolve from these first."""

    model_config = ConfigDict(extra="allow", frozen=True)

    apiVersion: Literal["v1"]
    kind: Literal["Secret"]
    metadata: ObjectMeta
    data: dict[str, str] = Field(default_factory=dict)
    stringData: dict[str, str] = Field(default_factory=dict)
    type: str | None = None

    @field_validator("data")
    @classmethod
    def _base64(cls, data: dict[str, str]) -> dict[str, str]:
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                raise PydanticCustomError("base64", "data.{key} is not valid base64", {"key": key}) from None
        return data

    def value(self, key: str) -> str | None:
        if key in self.stringData:
            return self.stringData[key]
        if key in self.data:
            return base64.b64decode(self.data[key]).decode()
        return None


class EventBus(Model):
    """Only the stream naming matters to hookgate; the NATS deployment fields are Argo's own."""

    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["EventBus"]
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)


# --- EventSource ---------------------------------------------------------------------------------


_ES_FILTER = "EventSource-level filter.expression is not implemented yet; filter in the Sensor instead"


class WebhookContext(Model):
    endpoint: str
    method: str = "POST"
    port: str
    url: str | None = None
    serverCertSecret: Unsupported("TLS is terminated in front of hookgate (Ingress or proxy)") = None
    serverKeySecret: Unsupported("TLS is terminated in front of hookgate (Ingress or proxy)") = None
    metadata: dict[str, str] = Field(default_factory=dict)
    authSecret: SecretKeySelector | None = None
    maxPayloadSize: int = DEFAULT_MAX_PAYLOAD

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> str:
        text = str(value)
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise PydanticCustomError("port", "port must be a number from 1 to 65535, got {value}",
                                      {"value": repr(value)})
        return text

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("/"):
            raise PydanticCustomError("endpoint", "endpoint must start with '/', got {value}",
                                      {"value": repr(value)})
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return value.upper()

    @property
    def port_number(self) -> int:
        return int(self.port)


class WebhookEventSource(WebhookContext):
    filter: Unsupported(_ES_FILTER) = None


class OwnedRepositories(Model):
    owner: str
    names: list[str] = Field(default_factory=list)


class GithubAppCreds(Model):
    privateKey: SecretKeySelector
    appID: int
    installationID: int


class GithubEventSource(Model):
    id: int | None = None
    webhook: WebhookContext
    owner: str | None = None
    repository: str | None = None
    repositories: list[OwnedRepositories] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    apiToken: SecretKeySelector | None = None
    githubApp: GithubAppCreds | None = None
    webhookSecret: SecretKeySelector | None = None
    insecure: bool = False
    active: bool = False
    contentType: Literal["json", "form"] = "json"
    githubBaseURL: str | None = None
    githubUploadURL: str | None = None
    deleteHookOnFinish: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    filter: Unsupported(_ES_FILTER) = None

    def wants_hook_registration(self) -> bool:
        return bool((self.apiToken or self.githubApp) and self.webhook.url)


class GitlabEventSource(Model):
    webhook: WebhookContext
    projectID: str | None = None
    projects: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    accessToken: SecretKeySelector | None = None
    enableSSLVerification: bool = False
    gitlabBaseURL: str | None = None
    deleteHookOnFinish: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    secretToken: SecretKeySelector | None = None
    filter: Unsupported(_ES_FILTER) = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        from gateway import gitlab  # the mapping lives with the provider, which imports this module

        unknown = gitlab.unknown_events(events)
        if unknown:
            raise PydanticCustomError("events", "unknown GitLab event(s) {names} (known: {known})",
                                      {"names": ", ".join(unknown), "known": ", ".join(gitlab.EVENT_HEADERS)})
        return events

    @field_validator("projects", mode="before")
    @classmethod
    def _projects(cls, value: Any) -> Any:
        # Argo accepts numeric project ids; YAML reads them as ints.
        return [str(v) for v in value] if isinstance(value, list) else value

    def wants_hook_registration(self) -> bool:
        return bool(self.accessToken and self.webhook.url)


_OTHER_SOURCE = "this EventSource type is not implemented (supported: webhook, github, gitlab)"


class EventSourceSpec(Model):
    eventBusName: str | None = None
    replicas: DeploymentSetting = None
    service: DeploymentSetting = None
    template: DeploymentSetting = None
    webhook: dict[str, WebhookEventSource] = Field(default_factory=dict)
    github: dict[str, GithubEventSource] = Field(default_factory=dict)
    gitlab: dict[str, GitlabEventSource] = Field(default_factory=dict)
    # Argo's other source types, named so the error says "not implemented" rather than "unknown".
    amqp: Unsupported(_OTHER_SOURCE) = None
    azureEventsHub: Unsupported(_OTHER_SOURCE) = None
    azureQueueStorage: Unsupported(_OTHER_SOURCE) = None
    azureServiceBus: Unsupported(_OTHER_SOURCE) = None
    bitbucket: Unsupported(_OTHER_SOURCE) = None
    bitbucketserver: Unsupported(_OTHER_SOURCE) = None
    calendar: Unsupported(_OTHER_SOURCE) = None
    emitter: Unsupported(_OTHER_SOURCE) = None
    file: Unsupported(_OTHER_SOURCE) = None
    generic: Unsupported(_OTHER_SOURCE) = None
    gerrit: Unsupported(_OTHER_SOURCE) = None
    hdfs: Unsupported(_OTHER_SOURCE) = None
    kafka: Unsupported(_OTHER_SOURCE) = None
    minio: Unsupported(_OTHER_SOURCE) = None
    mqtt: Unsupported(_OTHER_SOURCE) = None
    nats: Unsupported(_OTHER_SOURCE) = None
    nsq: Unsupported(_OTHER_SOURCE) = None
    pubSub: Unsupported(_OTHER_SOURCE) = None
    pulsar: Unsupported(_OTHER_SOURCE) = None
    redis: Unsupported(_OTHER_SOURCE) = None
    redisStream: Unsupported(_OTHER_SOURCE) = None
    resource: Unsupported(_OTHER_SOURCE) = None
    sftp: Unsupported(_OTHER_SOURCE) = None
    slack: Unsupported(_OTHER_SOURCE) = None
    sns: Unsupported(_OTHER_SOURCE) = None
    sqs: Unsupported(_OTHER_SOURCE) = None
    storageGrid: Unsupported(_OTHER_SOURCE) = None
    stripe: Unsupported(_OTHER_SOURCE) = None


class EventSource(Model):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["EventSource"]
    metadata: ObjectMeta
    spec: EventSourceSpec
    status: DeploymentSetting = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"
