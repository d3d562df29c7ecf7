"""GitLab's side of hook registration: project hooks (`/api/v4/projects/{id}/hooks`) and group hooks
(`/api/v4/groups/{id}/hooks`, GitLab Premium), authenticated with `accessToken` (`PRIVATE-TOKEN`).

`gitlabBaseURL` is the instance (`https://gitlab.example.com`); `/api/v4` is added unless present, as
the Go client Argo uses does. A project or group is a number or a path (`group/project`), sent
URL-encoded. `events` are Argo's names, each the API boolean below; every known boolean is sent, so
an event removed from the manifest is switched off on the host. `token` is the `secretToken` value,
`enable_ssl_verification` is `enableSSLVerification`. Member, subgroup and project events exist only
on group hooks: asking a project hook for them is an error at load, as it is in Argo Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from yarl import URL

from gateway.hooks import Dialect, SecretLookup, Target, check_url, formatted_url, manifest_error
from gateway.models import EventSource, GitlabEventSource

#: Argo's event names (fields of the Go client's hook options) → the REST API's booleans.
HOOK_FIELDS: dict[str, str] = {
    "PushEvents": "push_events",
    "TagPushEvents": "tag_push_events",
    "IssuesEvents": "issues_events",
    "ConfidentialIssuesEvents": "confidential_issues_events",
    "MergeRequestsEvents": "merge_requests_events",
    "NoteEvents": "note_events",
    "ConfidentialNoteEvents": "confidential_note_events",
    "JobEvents": "job_events",
    "PipelineEvents": "pipeline_events",
    "WikiPageEvents": "wiki_page_events",
    "DeploymentEvents": "deployment_events",
    "ReleasesEvents": "releases_events",
    "FeatureFlagEvents": "feature_flag_events",
    "EmojiEvents": "emoji_events",
    "ResourceAccessTokenEvents": "resource_access_token_events",
    "MemberEvents": "member_events",
    "SubGroupEvents": "subgroup_events",
    "ProjectEvents": "project_events",
}
GROUP_ONLY = frozenset({"MemberEvents", "SubGroupEvents", "ProjectEvents"})


class GitLabDialect(Dialect):
    name = "GitLab"
    update_method = "PUT"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    def hook_url(self, hook: Mapping[str, Any]) -> str | None:
        url = hook.get("url")
        return url if isinstance(url, str) else None

    def differences(self, hook: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
        # A field the host does not report (an older GitLab) is not compared: updating could not change it.
        return [k for k, v in body.items() if isinstance(v, bool) and k in hook and bool(hook[k]) != v]


GITLAB = GitLabDialect()


def api_base(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/api/v4") else base + "/api/v4"


def hook_body(spec: GitlabEventSource, hook_url: str, token: str, *, group: bool) -> dict[str, Any]:
    wanted = set(spec.events)
    body: dict[str, Any] = {"url": hook_url}
    body.update({f: name in wanted for name, f in HOOK_FIELDS.items() if group or name not in GROUP_ONLY})
    body["enable_ssl_verification"] = spec.enableSSLVerification
    if token:
        body["token"] = token
    return body


def projects(spec: GitlabEventSource) -> list[str]:
    return list(dict.fromkeys([*spec.projects, *([spec.projectID] if spec.projectID else [])]))


def check(es: EventSource, event: str, spec: GitlabEventSource) -> None:
    if not spec.wants_hook_registration():
        return
    check_url(es, "gitlab", event, spec.webhook.url or "", "webhook", "url")
    if not spec.gitlabBaseURL:
        raise manifest_error(es, "gitlab", event, "to register the hook, set gitlabBaseURL (the GitLab instance, "
                             "e.g. https://gitlab.com)", "gitlabBaseURL")
    check_url(es, "gitlab", event, spec.gitlabBaseURL, "gitlabBaseURL")
    if not projects(spec) and not spec.groups:
        raise manifest_error(es, "gitlab", event, "to register the hook, name projects or groups", "projects")
    if not spec.events:
        raise manifest_error(es, "gitlab", event, "to register the hook, list its events (e.g. PushEvents)",
                             "events")
    group_only = sorted(set(spec.events) & GROUP_ONLY)
    if group_only and projects(spec):
        raise manifest_error(es, "gitlab", event, f"{', '.join(group_only)} exist only on group hooks; "
                             "projects cannot subscribe to them", "events")


def targets(es: EventSource, event: str, spec: GitlabEventSource, secret: SecretLookup) -> list[Target]:
    if not spec.wants_hook_registration() or spec.accessToken is None or spec.webhook.url is None \
            or not spec.gitlabBaseURL:
        return []
    token = secret(es.namespace, spec.accessToken)
    hook_token = secret(es.namespace, spec.secretToken) if spec.secretToken else ""
    hook_url = formatted_url(spec.webhook.url, spec.webhook.endpoint)
    base = str(URL(api_base(spec.gitlabBaseURL)))
    where = [("project", "projects", p) for p in projects(spec)] + [("group", "groups", g) for g in spec.groups]
    return [Target(key=f"{es.name}/{event} {kind} {ident}", dialect=GITLAB,
                   collection=URL(f"{base}/{plural}/{quote(ident, safe='')}/hooks", encoded=True),
                   hook_url=hook_url, body=hook_body(spec, hook_url, hook_token, group=kind == "group"),
                   token=token, has_secret=bool(hook_token), delete_on_finish=spec.deleteHookOnFinish)
            for kind, plural, ident in where]
