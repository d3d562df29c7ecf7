"""GitHub's side of hook registration: repository hooks (`/repos/{owner}/{repo}/hooks`) and
organization hooks (`/orgs/{org}/hooks`) through the REST API, authenticated with `apiToken`.

The hook is Argo's: `events` as listed, `active` as set (false by default, as in Argo Events: GitHub
then delivers nothing, so a warning says so), `config.url` the formatted URL, `config.content_type`
from `contentType`, `config.insecure_ssl` "1" when `insecure`, `config.secret` the `webhookSecret`
value. `ping` is not a subscribable GitHub event: GitHub sends it on creation anyway, so it is left
out of the hook's events (hookgate still uses it to decide whether a ping is published).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from yarl import URL

from gateway.hooks import Dialect, SecretLookup, Target, check_url, formatted_url, manifest_error
from gateway.models import EventSource, GithubEventSource

log = logging.getLogger(__name__)

API = "https://api.github.com"
NOT_SUBSCRIBABLE = frozenset({"ping"})


class GitHubDialect(Dialect):
    name = "GitHub"
    update_method = "PATCH"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}

    def hook_url(self, hook: Mapping[str, Any]) -> str | None:
        config = hook.get("config")
        url = config.get("url") if isinstance(config, Mapping) else None
        return url if isinstance(url, str) else None

    def differences(self, hook: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
        have = hook.get("config") if isinstance(hook.get("config"), Mapping) else {}
        want = body["config"]
        events = hook.get("events") if isinstance(hook.get("events"), list) else []
        changed = []
        if {str(e) for e in events} != set(body["events"]):
            changed.append("events")
        if bool(hook.get("active")) != body["active"]:
            changed.append("active")
        if str(have.get("content_type", "form")) != want["content_type"]:
            changed.append("content type")
        if str(have.get("insecure_ssl", "0")) != want["insecure_ssl"]:
            changed.append("insecure_ssl")
        if bool(have.get("secret")) != ("secret" in want):
            changed.append("secret")
        return changed

    def already_exists(self, status: int, payload: Any) -> bool:
        return status == 422 and "already exists" in str(payload).lower()


GITHUB = GitHubDialect()


def hook_events(spec: GithubEventSource) -> list[str]:
    return [e for e in dict.fromkeys(spec.events) if e not in NOT_SUBSCRIBABLE]


def locations(spec: GithubEventSource) -> list[tuple[str, list[str]]]:
    """(label, path segments of the hooks collection) for every repository and organization named."""
    found: list[tuple[str, list[str]]] = []
    for owned in spec.repositories:
        found += [(f"repo {owned.owner}/{name}", ["repos", owned.owner, name, "hooks"]) for name in owned.names]
    if spec.owner and spec.repository:
        found.append((f"repo {spec.owner}/{spec.repository}", ["repos", spec.owner, spec.repository, "hooks"]))
    found += [(f"org {org}", ["orgs", org, "hooks"]) for org in spec.organizations]
    return list(dict((label, segs) for label, segs in found).items())


def check(es: EventSource, event: str, spec: GithubEventSource) -> None:
    if spec.githubApp is not None:
        raise manifest_error(es, "github", event, "GitHub App authentication is not supported by hookgate (it needs "
                             "JWT signing, which hookgate does not ship); use apiToken with a token that may manage "
                             "webhooks, or register the hook yourself and remove githubApp", "githubApp")
    if not spec.wants_hook_registration():
        return
    check_url(es, "github", event, spec.webhook.url or "", "webhook", "url")
    if spec.githubBaseURL:
        check_url(es, "github", event, spec.githubBaseURL, "githubBaseURL")
    if bool(spec.owner) != bool(spec.repository):
        raise manifest_error(es, "github", event, "owner and repository go together", "owner" if spec.owner else
                             "repository")
    for i, owned in enumerate(spec.repositories):
        if not owned.names:
            raise manifest_error(es, "github", event, "names is empty", "repositories", str(i), "names")
    if not locations(spec):
        raise manifest_error(es, "github", event, "to register the hook, name repositories or organizations",
                             "repositories")
    if not hook_events(spec):
        raise manifest_error(es, "github", event, "to register the hook, list the GitHub events it subscribes to "
                             "(or '*')", "events")


def targets(es: EventSource, event: str, spec: GithubEventSource, secret: SecretLookup) -> list[Target]:
    if not spec.wants_hook_registration() or spec.apiToken is None or spec.webhook.url is None:
        return []
    token = secret(es.namespace, spec.apiToken)
    hook_secret = secret(es.namespace, spec.webhookSecret) if spec.webhookSecret else ""
    hook_url = formatted_url(spec.webhook.url, spec.webhook.endpoint)
    config: dict[str, Any] = {"url": hook_url, "content_type": spec.contentType,
                              "insecure_ssl": "1" if spec.insecure else "0"}
    if hook_secret:
        config["secret"] = hook_secret
    body = {"name": "web", "active": spec.active, "events": hook_events(spec), "config": config}
    if not spec.active:
        log.warning("%s/%s: active is false (Argo's default), so the GitHub hook is created inactive and GitHub "
                    "delivers nothing; set active: true", es.name, event)
    base = URL(spec.githubBaseURL or API)
    found = []
    for label, segments in locations(spec):
        collection = base
        for segment in segments:
            collection = collection / segment
        found.append(Target(key=f"{es.name}/{event} {label}", dialect=GITHUB, collection=collection,
                            hook_url=hook_url, body=body, token=token, has_secret=bool(hook_secret),
                            delete_on_finish=spec.deleteHookOnFinish))
    return found
