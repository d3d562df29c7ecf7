"""Hook registration against local fakes of the GitHub and GitLab REST APIs (tests/gateway/fake_githosts.py).

Time is injected: a `Timeline` gives the registrar its clock and its sleep. A retry wait passes at once
(and moves the clock on); a wait as long as the re-check interval "parks" the task until the test wakes
it, so a test knows a pass is over by waiting for every task to park, never by sleeping. Every address
called is a fake on 127.0.0.1; the seed example's gitlabBaseURL is overridden to the fake's port.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway import gitlab, hooks, hooks_gitlab
from gateway.errors import ManifestError
from gateway.hooks import HookRegistrar, formatted_url, normalise_url
from gateway.models import EventSource, SecretKeySelector
from hookgate.app import secret_lookup
from hookgate.manifests import load
from tests.conftest import EXAMPLES, free_port, serving
from tests.gateway.fake_githosts import FakeGitHub, FakeGitLab

GH_TOKEN = "ghp_FAKE0123456789abcdefTOKEN"
GH_SECRET = "github-hook-secret-4f1d9a"
GL_TOKEN = "glpat-FAKE9876543210token"
GL_SECRET = "gitlab-hook-secret-77c2e1"
SECRETS = {"api-token": GH_TOKEN, "webhook-secret": GH_SECRET, "access-token": GL_TOKEN, "secret-token": GL_SECRET}
PUBLIC = "https://hooks.example.test/base/"  # never called: only registered as the hook URL
INTERVAL = 600.0


class Timeline:
    """The registrar's clock and sleep. Waits shorter than `park_at` pass at once; longer ones park."""

    def __init__(self, *, park_at: float = INTERVAL * 0.8) -> None:
        self.now = 1_700_000_000.0
        self.park_at = park_at
        self.waits: list[float] = []
        self.parked = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += delay
        if delay < self.park_at:
            await asyncio.sleep(0)  # a retry wait: passes at once, the clock has moved on
            return
        wake = self._wake
        async with self._changed:
            self.parked += 1
            self._changed.notify_all()
        await wake.wait()

    async def until_parked(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.parked >= count), timeout=10)

    def wake(self) -> None:
        """Let every parked task run its next periodic check."""
        self.parked = 0
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def retries(self) -> list[float]:
        return [w for w in self.waits if w < self.park_at]


def lookup(namespace: str, selector: SecretKeySelector) -> str:
    return SECRETS[selector.key]


def eventsource(kind: str, events: dict[str, dict[str, Any]], *, name: str = "hooks") -> EventSource:
    return EventSource.model_validate({"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
                                       "metadata": {"name": name, "namespace": "default"},
                                       "spec": {kind: events}})


def github_spec(base: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "webhook": {"endpoint": "/github", "port": "13000", "url": PUBLIC},
        "repositories": [{"owner": "octo-org", "names": ["octo-repo"]}],
        "events": ["push", "pull_request"], "active": True, "githubBaseURL": base,
        "apiToken": {"name": "gh", "key": "api-token"}, "webhookSecret": {"name": "gh", "key": "webhook-secret"}}
    spec.update(fields)
    return spec


def gitlab_spec(base: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "webhook": {"endpoint": "/gitlab", "port": "12000", "url": PUBLIC},
        "projects": ["cmp/al-cloud"], "events": ["PushEvents", "MergeRequestsEvents"], "gitlabBaseURL": base,
        "accessToken": {"name": "gl", "key": "access-token"}, "secretToken": {"name": "gl", "key": "secret-token"}}
    spec.update(fields)
    return spec


def registrar(sources: list[EventSource], timeline: Timeline, **options: Any) -> HookRegistrar:
    settings: dict[str, Any] = {"secret": lookup, "interval": INTERVAL, "sleep": timeline.sleep,
                                "clock": timeline.clock, "rng": random.Random(7), "start_jitter": 0.0,
                                "max_backoff": 60.0, "keep_hooks": False}
    settings.update(options)
    return HookRegistrar(sources, **settings)


async def run_once(reg: HookRegistrar, timeline: Timeline, targets: int = 1) -> dict[str, str]:
    """Start, let every task finish its first pass, and return the statuses (the tasks stay parked)."""
    await reg.start()
    await timeline.until_parked(targets)
    return reg.status()


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub(token=GH_TOKEN, repos=("octo-org/octo-repo", "octo-org/other"), orgs=("octo-org",))
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def gitlab_host() -> AsyncIterator[FakeGitLab]:
    fake = FakeGitLab(token=GL_TOKEN, projects={"cmp/al-cloud": 15, "cmp/other": 16},
                      groups={"platform/team": 7})
    await fake.start()
    yield fake
    await fake.stop()


HOOK_URL = formatted_url(PUBLIC, "/github")
GL_HOOK_URL = formatted_url(PUBLIC, "/gitlab")


# --- URLs ----------------------------------------------------------------------------------------------


def test_hook_url_is_argos_formatted_url() -> None:
    assert formatted_url("https://h.example/", "/push") == "https://h.example/push"
    assert formatted_url("https://h.example/base", "/push") == "https://h.example/base/push"


def test_urls_match_after_normalising() -> None:
    assert normalise_url("HTTPS://Hooks.Example:443/a/push/") == normalise_url("https://hooks.example/a/push")
    assert normalise_url("http://h:8080/x") != normalise_url("http://h/x")
    assert normalise_url("https://h/x?k=1") != normalise_url("https://h/x?k=2")


def test_every_gitlab_event_name_maps_to_an_api_field() -> None:
    assert set(hooks_gitlab.HOOK_FIELDS) == set(gitlab.EVENT_HEADERS)


# --- GitHub ----------------------------------------------------------------------------------------------


async def test_github_creates_the_hook_when_absent(github: FakeGitHub) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop()

    [hook] = github.hooks("octo-org/octo-repo")
    assert status == {"hooks/ci repo octo-org/octo-repo": f"registered hook {hook['id']} (created)"}
    assert hook["config"] == {"url": "https://hooks.example.test/base/github", "content_type": "json",
                              "insecure_ssl": "0", "secret": "********"}
    assert sorted(hook["events"]) == ["pull_request", "push"] and hook["active"] is True
    assert github.secrets[hook["id"]] == GH_SECRET
    assert {r.auth for r in github.requests} == {f"Bearer {GH_TOKEN}"}
    assert github.hooks("octo-org/other") == []


async def test_github_restart_reuses_the_hook(github: FakeGitHub) -> None:
    sources = [eventsource("github", {"ci": github_spec(github.base_url)})]
    first, second = Timeline(), Timeline()
    reg = registrar(sources, first)
    await run_once(reg, first)
    await reg.stop()
    [before] = github.hooks("octo-org/octo-repo")

    reg = registrar(sources, second)
    status = await run_once(reg, second)
    await reg.stop()

    [after] = github.hooks("octo-org/octo-repo")
    assert after["id"] == before["id"]
    assert github.count("POST") == 1
    # The secret cannot be read back, so a new run writes it once; nothing else changed.
    assert status["hooks/ci repo octo-org/octo-repo"] == f"registered hook {after['id']} (updated secret)"
    assert github.secrets[after["id"]] == GH_SECRET


async def test_github_updates_a_hook_whose_settings_changed(github: FakeGitHub) -> None:
    # Same URL once normalised (host case, default port, trailing slash): it is ours, not a second hook.
    old = github.add_hook("octo-org/octo-repo", url="https://Hooks.Example.Test:443/base/github/",
                          events=["push"], content_type="form")
    timeline = Timeline()
    spec = github_spec(github.base_url, events=["push", "issues"], insecure=True)
    reg = registrar([eventsource("github", {"ci": spec})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop()

    [hook] = github.hooks("octo-org/octo-repo")
    assert hook["id"] == old
    assert sorted(hook["events"]) == ["issues", "push"]
    assert hook["config"]["content_type"] == "json" and hook["config"]["insecure_ssl"] == "1"
    assert github.secrets[old] == GH_SECRET
    assert status["hooks/ci repo octo-org/octo-repo"] == \
        f"registered hook {old} (updated events, content type, insecure_ssl, secret)"
    assert github.count("PATCH") == 1 and github.count("POST") == 0


async def test_github_organization_hook(github: FakeGitHub) -> None:
    timeline = Timeline()
    spec = github_spec(github.base_url, repositories=[], organizations=["octo-org"], events=["*"])
    reg = registrar([eventsource("github", {"org": spec})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop()

    [hook] = github.hooks("octo-org")
    assert hook["type"] == "Organization" and hook["events"] == ["*"]
    assert status == {"hooks/org org octo-org": f"registered hook {hook['id']} (created)"}
    assert github.count("POST", path_part="/orgs/octo-org/hooks") == 1


async def test_github_ping_is_not_sent_as_a_hook_event(github: FakeGitHub) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url, events=["ping", "push"])})], timeline)
    await run_once(reg, timeline)
    await reg.stop()
    [hook] = github.hooks("octo-org/octo-repo")
    assert hook["events"] == ["push"]


async def test_github_follows_pages_and_finds_its_hook(github: FakeGitHub) -> None:
    github.max_per_page = 2
    for i in range(5):
        github.add_hook("octo-org/octo-repo", url=f"https://elsewhere.example/{i}")
    mine = github.add_hook("octo-org/octo-repo", url=HOOK_URL, events=["push", "pull_request"], secret=GH_SECRET)
    timeline = Timeline()
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop()
    assert github.count("GET") == 3 and github.count("POST") == 0
    assert status["hooks/ci repo octo-org/octo-repo"] == f"registered hook {mine} (updated secret)"


# --- replicas ------------------------------------------------------------------------------------------


async def test_two_gitlab_registrars_racing_converge_on_one_hook(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    sources = [eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})]
    one, two = registrar(sources, timeline), registrar(sources, timeline)
    gitlab_host.barrier("GET", 2)  # both list before either creates: both see no hook
    await one.start()
    await two.start()
    await timeline.until_parked(2)
    statuses = [one.status(), two.status()]
    await one.stop(delete=False)
    await two.stop(delete=False)

    assert gitlab_host.count("POST") == 2  # GitLab accepts duplicates: both created one
    [hook] = gitlab_host.hooks("cmp/al-cloud")
    assert hook["id"] == 1  # the lowest id survives, whoever deleted the other
    assert all(s["hooks/pr project cmp/al-cloud"].startswith("registered hook 1") for s in statuses)


async def test_two_github_registrars_racing_converge_on_one_hook(github: FakeGitHub) -> None:
    github.reject_duplicates = False  # a host that lets the race through, to exercise the clean-up
    timeline = Timeline()
    sources = [eventsource("github", {"ci": github_spec(github.base_url)})]
    one, two = registrar(sources, timeline), registrar(sources, timeline)
    github.barrier("GET", 2)
    await one.start()
    await two.start()
    await timeline.until_parked(2)
    await one.stop(delete=False)
    await two.stop(delete=False)
    [hook] = github.hooks("octo-org/octo-repo")
    assert hook["id"] == 1 and github.count("POST") == 2


async def test_github_refusing_a_duplicate_is_resolved_by_listing_again(github: FakeGitHub) -> None:
    timeline = Timeline()
    sources = [eventsource("github", {"ci": github_spec(github.base_url)})]
    one, two = registrar(sources, timeline), registrar(sources, timeline)
    github.barrier("GET", 2)
    await one.start()
    await two.start()
    await timeline.until_parked(2)
    statuses = [one.status()["hooks/ci repo octo-org/octo-repo"], two.status()["hooks/ci repo octo-org/octo-repo"]]
    await one.stop(delete=False)
    await two.stop(delete=False)
    [hook] = github.hooks("octo-org/octo-repo")
    assert github.count("POST") == 2 and github.count("DELETE") == 0
    assert sorted(statuses) == [f"registered hook {hook['id']} (created)",
                                f"registered hook {hook['id']} (updated secret)"]
    assert timeline.retries() == []  # the 422 was not treated as a failure


async def test_duplicates_left_by_earlier_tools_are_removed(gitlab_host: FakeGitLab) -> None:
    first = gitlab_host.add_hook("cmp/al-cloud", url=GL_HOOK_URL)
    gitlab_host.add_hook("cmp/al-cloud", url=GL_HOOK_URL + "/")
    other = gitlab_host.add_hook("cmp/al-cloud", url="https://elsewhere.example/hook")
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop()
    assert [h["id"] for h in gitlab_host.hooks("cmp/al-cloud")] == [first, other]
    assert status["hooks/pr project cmp/al-cloud"].startswith(f"registered hook {first} (updated")


# --- GitLab -------------------------------------------------------------------------------------------------


async def test_gitlab_creates_a_project_hook_with_argos_event_names(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, enableSSLVerification=True)})],
                    timeline)
    status = await run_once(reg, timeline)
    await reg.stop()

    [hook] = gitlab_host.hooks("cmp/al-cloud")
    assert status == {"hooks/pr project cmp/al-cloud": f"registered hook {hook['id']} (created)"}
    assert hook["url"] == "https://hooks.example.test/base/gitlab"
    on = {k for k, v in hook.items() if k.endswith("_events") and v is True}
    assert on == {"push_events", "merge_requests_events"}
    assert hook["enable_ssl_verification"] is True
    assert gitlab_host.tokens[hook["id"]] == GL_SECRET
    assert "token" not in hook
    assert {r.path for r in gitlab_host.requests} == {"/api/v4/projects/cmp%2Fal-cloud/hooks"}
    assert {r.auth for r in gitlab_host.requests} == {GL_TOKEN}


async def test_gitlab_updates_events_and_keeps_the_hook(gitlab_host: FakeGitLab) -> None:
    sources = [eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, events=["PushEvents"])})]
    timeline = Timeline()
    reg = registrar(sources, timeline)
    await run_once(reg, timeline)
    await reg.stop()
    [before] = gitlab_host.hooks("cmp/al-cloud")

    changed = [eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url,
                                                        events=["MergeRequestsEvents", "NoteEvents"])})]
    timeline = Timeline()
    reg = registrar(changed, timeline)
    status = await run_once(reg, timeline)
    await reg.stop()

    [after] = gitlab_host.hooks("cmp/al-cloud")
    assert after["id"] == before["id"]
    assert (after["push_events"], after["merge_requests_events"], after["note_events"]) == (False, True, True)
    assert status["hooks/pr project cmp/al-cloud"] == \
        f"registered hook {after['id']} (updated push_events, merge_requests_events, note_events, secret)"
    assert gitlab_host.count("PUT") == 1 and gitlab_host.count("POST") == 1


async def test_gitlab_group_hook_and_numeric_project(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    spec = gitlab_spec(gitlab_host.base_url + "/", projects=[], groups=["platform/team"],
                       events=["PushEvents", "MemberEvents", "SubGroupEvents"])
    numeric = gitlab_spec(gitlab_host.base_url + "/api/v4", projects=[16], events=["PipelineEvents"],
                          webhook={"endpoint": "/pipelines", "port": "12000", "url": PUBLIC})
    reg = registrar([eventsource("gitlab", {"group": spec, "pipes": numeric})], timeline)
    status = await run_once(reg, timeline, targets=2)
    await reg.stop()

    [group_hook] = gitlab_host.hooks("platform/team", group=True)
    assert (group_hook["member_events"], group_hook["subgroup_events"], group_hook["push_events"]) == (True, True, True)
    assert group_hook["group_id"] == 7
    [project_hook] = gitlab_host.hooks("cmp/other")
    assert project_hook["pipeline_events"] is True and project_hook["push_events"] is False
    assert set(status) == {"hooks/group group platform/team", "hooks/pipes project 16"}
    assert gitlab_host.count("POST", path_part="/api/v4/groups/platform%2Fteam/hooks") == 1


async def test_the_seed_example_registers_against_a_fake_gitlab(gitlab_host: FakeGitLab) -> None:
    bundle = load([EXAMPLES / "gitlab" / "eventsource.yaml", EXAMPLES / "gitlab" / "secret.yaml"])
    doc = bundle.eventsources[0].model_dump(mode="json", exclude_none=True)
    assert doc["spec"]["gitlab"]["pr"]["gitlabBaseURL"] == "http://127.0.0.1:6080"
    doc["spec"]["gitlab"]["pr"]["gitlabBaseURL"] = gitlab_host.base_url  # never the example's own port
    source = EventSource.model_validate(doc)
    gitlab_host.token = "glpat-demo-not-a-real-token"
    timeline = Timeline()
    reg = registrar([source], timeline, secret=secret_lookup(bundle))
    status = await run_once(reg, timeline)
    [hook] = gitlab_host.hooks("cmp/al-cloud")
    await reg.stop()

    assert hook["url"] == "http://127.0.0.1:12000/push"
    assert {k for k, v in hook.items() if k.endswith("_events") and v is True} == \
        {"push_events", "merge_requests_events", "tag_push_events", "note_events"}
    assert gitlab_host.tokens[hook["id"]] == "gitlab-demo-secret"
    assert list(status) == ["default/pr project cmp/al-cloud"]  # al-cloud-push asks for no registration
    assert gitlab_host.hooks("cmp/al-cloud") == []  # deleteHookOnFinish: true, and this run created it


# --- failures, retries, rate limits --------------------------------------------------------------------------


async def test_server_errors_are_retried_with_growing_jittered_backoff(gitlab_host: FakeGitLab) -> None:
    gitlab_host.fail(502, times=3, body={"message": "502 Bad Gateway"})
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop(delete=False)

    first, second, third = timeline.retries()
    assert 0.5 <= first <= 1 and 1 <= second <= 2 and 2 <= third <= 4
    assert INTERVAL * 0.9 <= timeline.waits[-1] <= INTERVAL * 1.1  # then the rare periodic check
    [hook] = gitlab_host.hooks("cmp/al-cloud")
    assert status["hooks/pr project cmp/al-cloud"] == f"registered hook {hook['id']} (created)"


async def test_backoff_is_bounded(gitlab_host: FakeGitLab) -> None:
    gitlab_host.fail(503, times=12)
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline, max_backoff=20.0)
    await run_once(reg, timeline)
    await reg.stop(delete=False)
    retries = timeline.retries()
    assert len(retries) == 12 and max(retries) <= 20.0 and retries[-1] >= 10.0


async def test_status_says_retrying_while_the_host_fails(gitlab_host: FakeGitLab) -> None:
    gitlab_host.fail(500, times=1)
    timeline = Timeline(park_at=0.1)  # park on the first retry wait to look at the status
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop(delete=False)
    assert re.fullmatch(r"retrying in [01]\.\ds: 500 from GitLab: fake fault", status["hooks/pr project cmp/al-cloud"])


async def test_429_waits_for_retry_after(gitlab_host: FakeGitLab) -> None:
    gitlab_host.fail(429, headers={"Retry-After": "30"}, body={"message": "Retry later"})
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    await run_once(reg, timeline)
    await reg.stop(delete=False)
    [wait] = timeline.retries()
    assert 30 <= wait <= 33
    assert len(gitlab_host.hooks("cmp/al-cloud")) == 1


async def test_github_exhausted_quota_waits_for_the_reset(github: FakeGitHub) -> None:
    timeline = Timeline()
    github.clock = timeline.clock
    github.quota = (0, timeline.now + 120)
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url)})], timeline)
    await run_once(reg, timeline)
    await reg.stop(delete=False)

    [wait] = timeline.retries()
    assert 120 <= wait <= 132
    assert github.refused_for_quota == 1  # asked once, then waited for the reset instead of asking again
    assert len(github.hooks("octo-org/octo-repo")) == 1


async def test_github_last_request_of_the_quota_closes_the_gate_without_asking(github: FakeGitHub) -> None:
    timeline = Timeline()
    github.clock = timeline.clock
    github.quota = (1, timeline.now + 90)  # the list uses it up, and GitHub's headers say so
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop(delete=False)

    assert github.refused_for_quota == 0  # the create waited for the reset: no 403 was ever provoked
    [wait] = timeline.retries()
    assert 90 <= wait <= 99
    assert status["hooks/ci repo octo-org/octo-repo"].endswith("(created)")


async def test_a_client_error_waits_for_the_next_periodic_check(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, projects=["nope/missing"])})],
                    timeline)
    status = await run_once(reg, timeline)
    await reg.stop(delete=False)
    assert timeline.retries() == []
    assert status["hooks/pr project nope/missing"].startswith("failed: 404 from GitLab: 404 Project Not Found")
    assert "next check in" in status["hooks/pr project nope/missing"]


async def test_periodic_check_restores_a_hook_removed_by_hand(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    await run_once(reg, timeline)
    gitlab_host.project_hooks["cmp/al-cloud"].clear()
    timeline.wake()
    await timeline.until_parked(1)
    status = reg.status()
    await reg.stop(delete=False)
    [hook] = gitlab_host.hooks("cmp/al-cloud")
    assert status["hooks/pr project cmp/al-cloud"] == f"registered hook {hook['id']} (created)"


async def test_an_unchanged_hook_costs_one_list_per_check(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url)})], timeline)
    await run_once(reg, timeline)
    before = len(gitlab_host.requests)
    timeline.wake()
    await timeline.until_parked(1)
    await reg.stop(delete=False)
    assert [r.method for r in gitlab_host.requests[before:]] == ["GET"]


# --- deleteHookOnFinish ----------------------------------------------------------------------------------------


async def test_delete_on_finish_deletes_only_the_hook_this_run_created(gitlab_host: FakeGitLab) -> None:
    other = gitlab_host.add_hook("cmp/al-cloud", url="https://elsewhere.example/hook")
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, deleteHookOnFinish=True)})],
                    timeline)
    status = await run_once(reg, timeline)
    ours = int(status["hooks/pr project cmp/al-cloud"].split()[2])
    await reg.stop()
    assert [h["id"] for h in gitlab_host.hooks("cmp/al-cloud")] == [other]
    assert reg.status()["hooks/pr project cmp/al-cloud"] == f"deleted hook {ours} (deleteHookOnFinish)"


async def test_delete_on_finish_keeps_a_hook_it_found(github: FakeGitHub) -> None:
    found = github.add_hook("octo-org/octo-repo", url=HOOK_URL, events=["push", "pull_request"], secret="old")
    timeline = Timeline()
    reg = registrar([eventsource("github", {"ci": github_spec(github.base_url, deleteHookOnFinish=True)})], timeline)
    await run_once(reg, timeline)
    await reg.stop()
    assert [h["id"] for h in github.hooks("octo-org/octo-repo")] == [found]
    assert github.secrets[found] == GH_SECRET  # the rotated secret reached the host
    assert github.count("DELETE") == 0


async def test_keep_hooks_env_skips_deletion(gitlab_host: FakeGitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hooks.KEEP_HOOKS_ENV, "1")
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, deleteHookOnFinish=True)})],
                    timeline, keep_hooks=None)
    await run_once(reg, timeline)
    await reg.stop()
    assert len(gitlab_host.hooks("cmp/al-cloud")) == 1 and gitlab_host.count("DELETE") == 0


async def test_stop_without_delete_and_without_the_flag_keeps_hooks(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, deleteHookOnFinish=True),
                                            "mr": gitlab_spec(gitlab_host.base_url, projects=["cmp/other"])})],
                    timeline)
    await run_once(reg, timeline, targets=2)
    await reg.stop(delete=False)
    assert len(gitlab_host.hooks("cmp/al-cloud")) == 1 and len(gitlab_host.hooks("cmp/other")) == 1


async def test_a_hook_lost_to_a_peer_is_not_deleted_at_finish(gitlab_host: FakeGitLab) -> None:
    timeline = Timeline()
    sources = [eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, deleteHookOnFinish=True)})]
    one, two = registrar(sources, timeline), registrar(sources, timeline)
    gitlab_host.barrier("GET", 2)
    await one.start()
    await two.start()
    await timeline.until_parked(2)
    owners = [reg for reg in (one, two) if reg.status()["hooks/pr project cmp/al-cloud"].endswith("(created)")]
    assert len(owners) == 1  # the peer whose hook was removed as a duplicate owns nothing
    loser = two if owners[0] is one else one
    await loser.stop()
    assert len(gitlab_host.hooks("cmp/al-cloud")) == 1
    await owners[0].stop()
    assert gitlab_host.hooks("cmp/al-cloud") == []


# --- never blocking, never leaking ------------------------------------------------------------------------------


async def test_start_returns_at_once_and_events_are_served_while_the_host_hangs(github: FakeGitHub) -> None:
    github.hold()  # every API request waits, as a host that never answers
    reg = HookRegistrar([eventsource("github", {"ci": github_spec(github.base_url)})], secret=lookup,
                        start_jitter=0.0, stop_timeout=1.0)
    await asyncio.wait_for(reg.start(), timeout=1)

    async def receive(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/github", receive)
    try:
        async with serving(app) as port, aiohttp.ClientSession() as client, \
                client.post(f"http://127.0.0.1:{port}/github") as resp:
            assert resp.status == 200
        assert reg.status() == {"hooks/ci repo octo-org/octo-repo": "pending"}
        assert github.count("GET") >= 1
    finally:
        await asyncio.wait_for(reg.stop(), timeout=5)
        github.release()


async def test_no_token_or_secret_in_logs_statuses_or_errors(github: FakeGitHub, gitlab_host: FakeGitLab,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"message": f"boom {GH_TOKEN} {GH_SECRET} {GL_TOKEN} {GL_SECRET}"}
    github.fail(500, body=echo)
    github.fail(401, body=echo)
    gitlab_host.fail(502, body=echo)
    gitlab_host.fail(422, body=echo, method="POST")
    timeline = Timeline()
    sources = [eventsource("github", {"ci": github_spec(github.base_url, deleteHookOnFinish=True)}, name="gh"),
               eventsource("gitlab", {"pr": gitlab_spec(gitlab_host.base_url, deleteHookOnFinish=True)}, name="gl")]
    reg = registrar(sources, timeline)
    statuses = await run_once(reg, timeline, targets=2)
    timeline.wake()
    await timeline.until_parked(2)
    statuses |= reg.status()
    await reg.stop()

    shown = caplog.text + repr(statuses) + repr(reg.status())
    for value in (GH_TOKEN, GH_SECRET, GL_TOKEN, GL_SECRET):
        assert value not in shown
    assert "boom ***" in caplog.text
    target = hooks.targets(sources, lookup)[0]
    assert GH_TOKEN not in repr(target) and GH_SECRET not in repr(target)


async def test_unreachable_host_is_a_transient_failure() -> None:
    timeline = Timeline(park_at=0.1)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reg = registrar([eventsource("gitlab", {"pr": gitlab_spec(closed)})], timeline)
    status = await run_once(reg, timeline)
    await reg.stop(delete=False)
    assert re.match(r"retrying in [01]\.\ds: cannot reach GitLab: ClientConnectorError",
                    status["hooks/pr project cmp/al-cloud"])


# --- refused at load -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "fields", "path", "words"), [
    ("github", {"githubApp": {"privateKey": {"name": "app", "key": "pem"}, "appID": 1, "installationID": 2}},
     "spec.github.e.githubApp", "GitHub App authentication is not supported"),
    ("github", {"repositories": [], "organizations": []}, "spec.github.e.repositories",
     "repositories or organizations"),
    ("github", {"events": []}, "spec.github.e.events", "list the GitHub events"),
    ("github", {"events": ["ping"]}, "spec.github.e.events", "list the GitHub events"),
    ("github", {"owner": "solo"}, "spec.github.e.owner", "owner and repository go together"),
    ("github", {"webhook": {"endpoint": "/x", "port": "1", "url": "hooks.example"}}, "spec.github.e.webhook.url",
     "absolute http(s) URL"),
    ("gitlab", {"gitlabBaseURL": None}, "spec.gitlab.e.gitlabBaseURL", "set gitlabBaseURL"),
    ("gitlab", {"projects": [], "groups": []}, "spec.gitlab.e.projects", "name projects or groups"),
    ("gitlab", {"events": []}, "spec.gitlab.e.events", "list its events"),
    ("gitlab", {"events": ["PushEvents", "MemberEvents"]}, "spec.gitlab.e.events", "exist only on group hooks"),
])
def test_what_registration_cannot_do_is_refused_at_load(kind: str, fields: dict[str, Any], path: str,
                                                       words: str) -> None:
    spec = (github_spec if kind == "github" else gitlab_spec)("http://127.0.0.1:1", **fields)
    with pytest.raises(ManifestError) as caught:
        HookRegistrar([eventsource(kind, {"e": {k: v for k, v in spec.items() if v is not None}})], secret=lookup)
    assert path in str(caught.value) and words in str(caught.value)


def test_github_app_is_refused_even_without_registration() -> None:
    spec = github_spec("http://127.0.0.1:1", githubApp={"privateKey": {"name": "a", "key": "k"}, "appID": 1,
                                                        "installationID": 2}, apiToken=None)
    spec["webhook"] = {"endpoint": "/github", "port": "13000"}
    with pytest.raises(ManifestError, match="githubApp"):
        hooks.check([eventsource("github", {"e": {k: v for k, v in spec.items() if v is not None}})])


def test_two_events_managing_the_same_hook_are_refused() -> None:
    a = gitlab_spec("http://127.0.0.1:1")
    b = gitlab_spec("http://127.0.0.1:1", webhook={"endpoint": "/gitlab", "port": "12001", "url": PUBLIC})
    with pytest.raises(ManifestError, match="would both manage the hook"):
        HookRegistrar([eventsource("gitlab", {"a": a, "b": b})], secret=lookup)


def test_nothing_to_register_starts_nothing() -> None:
    spec = gitlab_spec("http://127.0.0.1:1")
    del spec["accessToken"]
    reg = HookRegistrar([eventsource("gitlab", {"e": spec})], secret=lookup)
    assert reg.status() == {}


async def test_missing_secret_is_a_load_error_naming_it() -> None:
    def strict(namespace: str, selector: SecretKeySelector) -> str:
        raise ManifestError(f"Secret {namespace}/{selector.name} not found", kind="Secret", name=selector.name)

    with pytest.raises(ManifestError, match="Secret default/gl not found"):
        HookRegistrar([eventsource("gitlab", {"e": gitlab_spec("http://127.0.0.1:1")})], secret=strict)

