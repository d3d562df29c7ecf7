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


class EventSourceFilter(Model):
    """Argo's EventSource-level filter: an expr-lang expression over the event data, run as CEL."""

    expression: str

    @field_validator("expression")
    @classmethod
    def _compiles(cls, expression: str) -> str:
        from gateway import esfilter  # esfilter imports this module

        try:
            esfilter.compile_filter(expression)
        except esfilter.FilterError as e:
            raise PydanticCustomError("expression", "{message}", {"message": str(e)}) from None
        return expression


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
    filter: EventSourceFilter | None = None


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
    filter: EventSourceFilter | None = None

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
    filter: EventSourceFilter | None = None

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


class BasicAuth(Model):
    username: SecretKeySelector
    password: SecretKeySelector


class TLSConfig(Model):
    caCertSecret: SecretKeySelector | None = None
    clientCertSecret: SecretKeySelector | None = None
    clientKeySecret: SecretKeySelector | None = None
    insecureSkipVerify: bool = False


class BitbucketAuth(Model):
    basic: BasicAuth | None = None
    oauthToken: SecretKeySelector | None = None


class BitbucketRepository(Model):
    owner: str
    repositorySlug: str


class BitbucketEventSource(Model):
    """Bitbucket Cloud. `webhookSecret` is hookgate's own field (Argo has none): with it, deliveries
    must carry Bitbucket's `X-Hub-Signature: sha256=<hex>`."""

    deleteHookOnFinish: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook: WebhookContext
    auth: BitbucketAuth | None = None
    events: list[str] = Field(default_factory=list)
    owner: str | None = None
    projectKey: str | None = None
    repositorySlug: str | None = None
    repositories: list[BitbucketRepository] = Field(default_factory=list)
    filter: EventSourceFilter | None = None
    webhookSecret: SecretKeySelector | None = None

    def wants_hook_registration(self) -> bool:
        return bool(self.auth and (self.auth.basic or self.auth.oauthToken) and self.webhook.url)


class BitbucketServerRepository(Model):
    projectKey: str
    repositorySlug: str


def _only_false(reason: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value not in (False, None, "false"):
            raise PydanticCustomError("unsupported", "not supported by hookgate: {reason}", {"reason": reason})
        return False

    return BeforeValidator(check)


class BitbucketServerEventSource(Model):
    webhook: WebhookContext
    projectKey: str | None = None
    repositorySlug: str | None = None
    projects: list[str] = Field(default_factory=list)
    repositories: list[BitbucketServerRepository] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    skipBranchRefsChangedOnOpenPR: Annotated[bool, _only_false(
        "it asks the Bitbucket Server API about open pull requests for every push; filter in the Sensor")] = False
    oneEventPerChange: Annotated[bool, _only_false(
        "one event per change of a repo:refs_changed delivery")] = False
    accessToken: SecretKeySelector | None = None
    webhookSecret: SecretKeySelector | None = None
    bitbucketserverBaseURL: str | None = None
    deleteHookOnFinish: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    filter: EventSourceFilter | None = None
    tls: TLSConfig | None = None  # for the API client of hook registration
    checkInterval: str | None = None  # hook registration re-check period

    def wants_hook_registration(self) -> bool:
        return bool(self.accessToken and self.webhook.url)


class GiteaEventSource(Model):
    """Gitea and Forgejo (hookgate's own type; Argo Events has none, argo-events#1431). Field names
    follow Argo's `github` source."""

    webhook: WebhookContext
    owner: str | None = None
    repositories: list[OwnedRepositories] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    webhookSecret: SecretKeySelector | None = None
    apiToken: SecretKeySelector | None = None
    giteaBaseURL: str | None = None
    deleteHookOnFinish: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    filter: EventSourceFilter | None = None
    contentType: Literal["json", "form"] = "json"

    def wants_hook_registration(self) -> bool:
        return bool(self.apiToken and self.webhook.url)


class Backoff(Model):
    """Argo's Backoff: `duration` in nanoseconds or a Go duration string; `factor`/`jitter` decimals."""

    duration: int | str | None = None
    steps: int | None = None
    factor: float | str | None = None
    jitter: float | str | None = None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | str | None:
        from gateway.natssource import go_duration  # the parser lives with its only user

        if value is not None:
            try:
                go_duration(value)
            except ValueError as e:
                raise PydanticCustomError("duration", "{message}", {"message": str(e)}) from None
        return value

    @field_validator("factor", "jitter")
    @classmethod
    def _decimal(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                raise PydanticCustomError("decimal", "not a decimal number: {value}", {"value": repr(value)}) from None
        return value


class NATSAuth(Model):
    basic: BasicAuth | None = None
    token: SecretKeySelector | None = None
    nkey: Unsupported("NKey authentication needs the nkeys package, which hookgate does not ship") = None
    credential: Unsupported("credentials files need the nkeys package, which hookgate does not ship") = None


class NATSEventsSource(Model):
    url: str
    subject: str
    jsonBody: bool = False
    connectionBackoff: Backoff | None = None
    tls: Unsupported("TLS to the NATS source server; use a plain or token-authenticated connection") = None
    metadata: dict[str, str] = Field(default_factory=dict)
    auth: NATSAuth | None = None
    queue: str | None = None
    filter: EventSourceFilter | None = None


_OTHER_SOURCE = ("this EventSource type is not implemented (supported: webhook, github, gitlab, bitbucket, "
                 "bitbucketserver, gitea, nats)")


class EventSourceSpec(Model):
    eventBusName: str | None = None
    replicas: DeploymentSetting = None
    service: DeploymentSetting = None
    template: DeploymentSetting = None
    webhook: dict[str, WebhookEventSource] = Field(default_factory=dict)
    github: dict[str, GithubEventSource] = Field(default_factory=dict)
    gitlab: dict[str, GitlabEventSource] = Field(default_factory=dict)
    bitbucket: dict[str, BitbucketEventSource] = Field(default_factory=dict)
    bitbucketserver: dict[str, BitbucketServerEventSource] = Field(default_factory=dict)
    gitea: dict[str, GiteaEventSource] = Field(default_factory=dict)
    nats: dict[str, NATSEventsSource] = Field(default_factory=dict)
    # Argo's other source types, named so the error says "not implemented" rather than "unknown".
    amqp: Unsupported(_OTHER_SOURCE) = None
    azureEventsHub: Unsupported(_OTHER_SOURCE) = None
    azureQueueStorage: Unsupported(_OTHER_SOURCE) = None
    azureServiceBus: Unsupported(_OTHER_SOURCE) = None
    calendar: Unsupported(_OTHER_SOURCE) = None
    emitter: Unsupported(_OTHER_SOURCE) = None
    file: Unsupported(_OTHER_SOURCE) = None
    generic: Unsupported(_OTHER_SOURCE) = None
    gerrit: Unsupported(_OTHER_SOURCE) = None
    hdfs: Unsupported(_OTHER_SOURCE) = None
    kafka: Unsupported(_OTHER_SOURCE) = None
    minio: Unsupported(_OTHER_SOURCE) = None
    mqtt: Unsupported(_OTHER_SOURCE) = None
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


class ArgoObject(Model):
    """What every argoproj.io kind hookgate runs has: identity, and a status it leaves alone."""

    apiVersion: Literal["argoproj.io/v1alpha1"]
    metadata: ObjectMeta
    status: DeploymentSetting = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


class EventSource(ArgoObject):
    kind: Literal["EventSource"]
    spec: EventSourceSpec
