"""Local fakes of the GitHub and GitLab webhook REST APIs, written from their public documentation.

GitHub ("REST API endpoints for repository webhooks" / "organization webhooks"):
  GET/POST /repos/{owner}/{repo}/hooks, GET/PATCH/DELETE /repos/{owner}/{repo}/hooks/{hook_id},
  and the same under /orgs/{org}/hooks. Auth `Authorization: Bearer <token>` or `token <token>`.
  A hook: {type, id, name: "web", active, events, config: {url, content_type, insecure_ssl, secret
  shown as "********"}, created_at, updated_at, url, ping_url, deliveries_url, last_response}. Create
  defaults: events ["push"], active true, content_type "form", insecure_ssl "0"; a second hook with
  the same URL is refused with 422 "Hook already exists on this repository". PATCH replaces `config`
  whole: a secret not sent again is removed. Pages: `per_page` (default 30, at most 100) and a `Link`
  header. Rate limit headers X-RateLimit-Limit / -Remaining / -Reset / -Used on every answer; an
  exhausted quota answers 403 "API rate limit exceeded".
GitLab ("Project webhooks API" / "Group webhooks API"):
  GET/POST /api/v4/projects/{id}/hooks, GET/PUT/DELETE /api/v4/projects/{id}/hooks/{hook_id}, the
  same under /api/v4/groups/{id}/hooks; `id` a number or a URL-encoded path. Auth `PRIVATE-TOKEN`.
  A hook: {id, url, project_id | group_id, the event booleans, enable_ssl_verification,
  alert_status, ...}; `token` is write-only. Create defaults: push_events true, other events false,
  enable_ssl_verification true. `url` is required on POST and PUT. Member, subgroup and project
  events exist on group hooks only. Pages: `page` / `per_page` (default 20, at most 100),
  X-Next-Page, X-Total and `Link`. Duplicates with the same URL are allowed, as on gitlab.com.

Test controls on both: `fail()` queues canned error answers, `hold()` makes every request wait until
`release()`, `barrier()` holds requests of one method until that many have arrived (to stage races),
`requests` records what was asked, and the stored hooks (with their real secrets) are inspectable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STAMP = "2024-01-01T00:00:00Z"


@dataclass
class Fault:
    status: int
    headers: dict[str, str]
    body: Any
    method: str | None
    times: int


@dataclass
class Seen:
    method: str
    path: str  # as sent, still URL-encoded
    query: dict[str, str]
    auth: str  # the credential header as sent


@dataclass
class Barrier:
    method: str
    parties: int
    arrived: int = 0
    open: asyncio.Event = field(default_factory=asyncio.Event)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


class FakeHost:
    """What both fakes share: the server, ids, faults, holding, barriers, the request log, pages."""

    default_per_page = 30
    auth_header = "Authorization"

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.requests: list[Seen] = []
        self._faults: list[Fault] = []
        self._held: asyncio.Event | None = None
        self._barrier: Barrier | None = None
        self._next_id = 1
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.max_per_page = 100

    # --- server ---

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        self.release()
        if self._barrier is not None:
            self._barrier.open.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- controls ---

    def fail(self, status: int, *, headers: dict[str, str] | None = None, body: Any = None, times: int = 1,
             method: str | None = None) -> None:
        """The next `times` requests (of `method`, if given) get this answer instead of being served."""
        self._faults.append(Fault(status, headers or {}, body if body is not None else {"message": "fake fault"},
                                  method, times))

    def hold(self) -> None:
        self._held = asyncio.Event()

    def release(self) -> None:
        if self._held is not None:
            self._held.set()
            self._held = None

    def barrier(self, method: str, parties: int) -> None:
        """Hold the next requests of `method` until `parties` of them have arrived, then let all through."""
        self._barrier = Barrier(method, parties)

    def count(self, method: str, *, path_part: str = "") -> int:
        return sum(1 for r in self.requests if r.method == method and path_part in r.path)

    # --- helpers for subclasses ---

    def new_id(self) -> int:
        hook_id, self._next_id = self._next_id, self._next_id + 1
        return hook_id

    def authorised(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorised(self) -> web.Response:
        raise NotImplementedError

    def extra_headers(self) -> dict[str, str]:
        return {}

    def page(self, request: web.Request, items: list[dict[str, Any]], *, gitlab: bool = False) -> web.Response:
        try:
            per_page = min(int(request.query.get("per_page", self.default_per_page)), self.max_per_page)
            number = max(int(request.query.get("page", "1")), 1)
        except ValueError:
            per_page, number = self.default_per_page, 1
        pages = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(number - 1) * per_page: number * per_page]
        links = []
        url = request.url.with_host("127.0.0.1")
        if number < pages:
            links.append(f'<{url.update_query(page=number + 1, per_page=per_page)}>; rel="next"')
        links.append(f'<{url.update_query(page=pages, per_page=per_page)}>; rel="last"')
        headers = {"Link": ", ".join(links)}
        if gitlab:
            headers.update({"X-Page": str(number), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                            "X-Total-Pages": str(pages), "X-Next-Page": str(number + 1) if number < pages else "",
                            "X-Prev-Page": str(number - 1) if number > 1 else ""})
        return _json(chunk, headers=headers)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(Seen(request.method, request.raw_path.split("?")[0], dict(request.query),
                                  request.headers.get(self.auth_header, "")))
        if self._held is not None:
            await self._held.wait()
        barrier = self._barrier
        if barrier is not None and barrier.method == request.method and not barrier.open.is_set():
            barrier.arrived += 1
            if barrier.arrived >= barrier.parties:
                barrier.open.set()
                self._barrier = None
            await barrier.open.wait()
        for fault in self._faults:
            if fault.method in (None, request.method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return _json(fault.body, status=fault.status, headers={**self.extra_headers(), **fault.headers})
        if not self.authorised(request):
            return self.unauthorised()
        response = await handler(request)
        for key, value in self.extra_headers().items():
            response.headers.setdefault(key, value)
        return response


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except (ValueError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# --- GitHub ------------------------------------------------------------------------------------------------


class FakeGitHub(FakeHost):
    def __init__(self, *, token: str, repos: tuple[str, ...] = (), orgs: tuple[str, ...] = (),
                 reject_duplicates: bool = True, clock: Callable[[], float] | None = None) -> None:
        """`clock` (epoch seconds) decides when an exhausted `quota` comes back at its reset time."""
        super().__init__(token=token)
        self.clock = clock
        self.refused_for_quota = 0  # requests that arrived with no quota left
        self.repo_hooks: dict[str, list[dict[str, Any]]] = {r: [] for r in repos}
        self.org_hooks: dict[str, list[dict[str, Any]]] = {o: [] for o in orgs}
        self.secrets: dict[int, str] = {}  # hook id -> the secret as last written
        self.reject_duplicates = reject_duplicates
        self.quota: tuple[int, float] | None = None  # (remaining, reset epoch) once set

    def routes(self, app: web.Application) -> None:
        for scope, prefix in (("repo", "/repos/{owner}/{name}"), ("org", "/orgs/{owner}")):
            app.router.add_get(prefix + "/hooks", self._list(scope))
            app.router.add_post(prefix + "/hooks", self._create(scope))
            app.router.add_get(prefix + "/hooks/{hook_id}", self._get(scope))
            app.router.add_patch(prefix + "/hooks/{hook_id}", self._patch(scope))
            app.router.add_delete(prefix + "/hooks/{hook_id}", self._delete(scope))

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") in (f"Bearer {self.token}", f"token {self.token}")

    def unauthorised(self) -> web.Response:
        return _json({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}, 401)

    def extra_headers(self) -> dict[str, str]:
        if self.quota is None:
            return {}
        remaining, reset = self.quota
        return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(int(reset)), "X-RateLimit-Used": str(5000 - remaining),
                "X-RateLimit-Resource": "core"}

    def hooks(self, where: str) -> list[dict[str, Any]]:
        """The stored hooks of "owner/repo" or of an org, rendered as the API shows them."""
        scope = "repo" if "/" in where else "org"
        store = self.repo_hooks if scope == "repo" else self.org_hooks
        return [self._render(scope, where, h) for h in store[where]]

    def add_hook(self, where: str, *, url: str, events: list[str] | None = None, secret: str = "",
                 active: bool = True, content_type: str = "json") -> int:
        """Seed a hook made by someone else."""
        store = self.repo_hooks if "/" in where else self.org_hooks
        hook_id = self.new_id()
        store[where].append({"id": hook_id, "active": active, "events": events or ["push"],
                             "config": {"url": url, "content_type": content_type, "insecure_ssl": "0"}})
        self.secrets[hook_id] = secret
        return hook_id

    def _where(self, scope: str, request: web.Request) -> tuple[str, list[dict[str, Any]]] | None:
        m = request.match_info
        key = f"{m['owner']}/{m['name']}" if scope == "repo" else m["owner"]
        store = self.repo_hooks if scope == "repo" else self.org_hooks
        return (key, store[key]) if key in store else None

    def _render(self, scope: str, key: str, hook: dict[str, Any]) -> dict[str, Any]:
        config = dict(hook["config"])
        if self.secrets.get(hook["id"]):
            config["secret"] = "********"
        path = f"/repos/{key}" if scope == "repo" else f"/orgs/{key}"
        api = f"{self.base_url}{path}/hooks/{hook['id']}"
        return {"type": "Repository" if scope == "repo" else "Organization", "id": hook["id"], "name": "web",
                "active": hook["active"], "events": list(hook["events"]), "config": config,
                "created_at": STAMP, "updated_at": STAMP, "url": api, "ping_url": api + "/pings",
                "deliveries_url": api + "/deliveries",
                "last_response": {"code": None, "status": "unused", "message": None}}

    def _limited(self) -> web.Response | None:
        if self.quota is not None and self.clock is not None and self.clock() >= self.quota[1]:
            self.quota = (5000, self.clock() + 3600)
        if self.quota is not None and self.quota[0] <= 0:
            self.refused_for_quota += 1
            return _json({"message": "API rate limit exceeded for user ID 1.",
                          "documentation_url": "https://docs.github.com/rest/rate-limit"}, 403)
        if self.quota is not None:
            self.quota = (self.quota[0] - 1, self.quota[1])
        return None

    @staticmethod
    def _not_found() -> web.Response:
        return _json({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404)

    @staticmethod
    def _invalid(message: str) -> web.Response:
        return _json({"message": "Validation Failed",
                      "errors": [{"resource": "Hook", "code": "custom", "message": message}]}, 422)

    def _find(self, hooks: list[dict[str, Any]], request: web.Request) -> dict[str, Any] | None:
        try:
            hook_id = int(request.match_info["hook_id"])
        except ValueError:
            return None
        return next((h for h in hooks if h["id"] == hook_id), None)

    def _list(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            limited = self._limited()
            if limited is not None:
                return limited
            where = self._where(scope, request)
            if where is None:
                return self._not_found()
            key, hooks = where
            return self.page(request, [self._render(scope, key, h) for h in hooks])

        return handler

    def _get(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            hook = self._find(where[1], request) if where else None
            return self._not_found() if where is None or hook is None else _json(self._render(scope, where[0], hook))

        return handler

    def _create(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            limited = self._limited()
            if limited is not None:
                return limited
            where = self._where(scope, request)
            if where is None:
                return self._not_found()
            key, hooks = where
            body = await _body(request)
            if body is None:
                return _json({"message": "Problems parsing JSON"}, 400)
            config = body.get("config")
            if not isinstance(config, dict) or not config.get("url"):
                return self._invalid("config.url is missing")
            if body.get("name", "web") != "web":
                return self._invalid("name must be web")
            if self.reject_duplicates and any(h["config"]["url"] == config["url"] for h in hooks):
                place = "repository" if scope == "repo" else "organization"
                return self._invalid(f"Hook already exists on this {place}")
            hook_id = self.new_id()
            hook = {"id": hook_id, "active": bool(body.get("active", True)),
                    "events": list(body.get("events") or ["push"]),
                    "config": _stored_config(config)}
            hooks.append(hook)
            self.secrets[hook_id] = str(config.get("secret") or "")
            return _json(self._render(scope, key, hook), 201)

        return handler

    def _patch(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            limited = self._limited()
            if limited is not None:
                return limited
            where = self._where(scope, request)
            hook = self._find(where[1], request) if where else None
            if where is None or hook is None:
                return self._not_found()
            body = await _body(request)
            if body is None:
                return _json({"message": "Problems parsing JSON"}, 400)
            if isinstance(body.get("config"), dict):
                config = body["config"]
                if not config.get("url"):
                    return self._invalid("config.url is missing")
                hook["config"] = _stored_config(config)
                self.secrets[hook["id"]] = str(config.get("secret") or "")  # not sent again: removed
            if isinstance(body.get("events"), list):
                hook["events"] = list(body["events"])
            hook["events"] += [e for e in body.get("add_events", []) if e not in hook["events"]]
            hook["events"] = [e for e in hook["events"] if e not in body.get("remove_events", [])]
            if "active" in body:
                hook["active"] = bool(body["active"])
            return _json(self._render(scope, where[0], hook))

        return handler

    def _delete(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            limited = self._limited()
            if limited is not None:
                return limited
            where = self._where(scope, request)
            hook = self._find(where[1], request) if where else None
            if where is None or hook is None:
                return self._not_found()
            where[1].remove(hook)
            return web.Response(status=204)

        return handler


# --- GitLab ------------------------------------------------------------------------------------------------

PROJECT_EVENTS = ("push_events", "tag_push_events", "issues_events", "confidential_issues_events",
                  "merge_requests_events", "note_events", "confidential_note_events", "job_events",
                  "pipeline_events", "wiki_page_events", "deployment_events", "releases_events",
                  "feature_flag_events", "emoji_events", "resource_access_token_events")
GROUP_EVENTS = (*PROJECT_EVENTS, "subgroup_events", "member_events", "project_events")


class FakeGitLab(FakeHost):
    default_per_page = 20
    auth_header = "PRIVATE-TOKEN"

    def __init__(self, *, token: str, projects: dict[str, int] | None = None,
                 groups: dict[str, int] | None = None) -> None:
        """`projects` / `groups`: full path -> numeric id; either identifies it in a URL."""
        super().__init__(token=token)
        self.project_ids = dict(projects or {})
        self.group_ids = dict(groups or {})
        self.project_hooks: dict[str, list[dict[str, Any]]] = {p: [] for p in self.project_ids}
        self.group_hooks: dict[str, list[dict[str, Any]]] = {g: [] for g in self.group_ids}
        self.tokens: dict[int, str] = {}  # hook id -> the secret token as last written

    def routes(self, app: web.Application) -> None:
        for scope in ("projects", "groups"):
            prefix = f"/api/v4/{scope}/{{id}}/hooks"
            app.router.add_get(prefix, self._list(scope))
            app.router.add_post(prefix, self._create(scope))
            app.router.add_get(prefix + "/{hook_id}", self._get(scope))
            app.router.add_put(prefix + "/{hook_id}", self._put(scope))
            app.router.add_delete(prefix + "/{hook_id}", self._delete(scope))

    def authorised(self, request: web.Request) -> bool:
        return (request.headers.get("PRIVATE-TOKEN") == self.token
                or request.headers.get("Authorization") == f"Bearer {self.token}")

    def unauthorised(self) -> web.Response:
        return _json({"message": "401 Unauthorized"}, 401)

    def hooks(self, path: str, *, group: bool = False) -> list[dict[str, Any]]:
        store = self.group_hooks if group else self.project_hooks
        return [self._render("groups" if group else "projects", path, h) for h in store[path]]

    def add_hook(self, path: str, *, url: str, group: bool = False, **events: bool) -> int:
        """Seed a hook made by someone else."""
        store = self.group_hooks if group else self.project_hooks
        hook_id = self.new_id()
        names = GROUP_EVENTS if group else PROJECT_EVENTS
        store[path].append({"id": hook_id, "url": url, "enable_ssl_verification": True,
                            **{n: events.get(n, n == "push_events") for n in names}})
        self.tokens[hook_id] = ""
        return hook_id

    def _where(self, scope: str, request: web.Request) -> tuple[str, list[dict[str, Any]]] | None:
        ident = request.match_info["id"]  # decoded: "group/project" arrives as group%2Fproject
        ids = self.project_ids if scope == "projects" else self.group_ids
        store = self.project_hooks if scope == "projects" else self.group_hooks
        for path, number in ids.items():
            if ident in (path, str(number)):
                return path, store[path]
        return None

    def _render(self, scope: str, path: str, hook: dict[str, Any]) -> dict[str, Any]:
        ids = self.project_ids if scope == "projects" else self.group_ids
        owner = {"project_id": ids[path]} if scope == "projects" else {"group_id": ids[path]}
        shown = {k: v for k, v in hook.items() if k != "token"}
        return {**shown, **owner, "name": "", "description": "", "push_events_branch_filter": "",
                "repository_update_events": False, "alert_status": "executable", "disabled_until": None,
                "url_variables": [], "created_at": STAMP, "custom_headers": []}

    @staticmethod
    def _not_found(what: str) -> web.Response:
        return _json({"message": f"404 {what} Not Found"}, 404)

    def _find(self, hooks: list[dict[str, Any]], request: web.Request) -> dict[str, Any] | None:
        try:
            hook_id = int(request.match_info["hook_id"])
        except ValueError:
            return None
        return next((h for h in hooks if h["id"] == hook_id), None)

    def _what(self, scope: str) -> str:
        return "Project" if scope == "projects" else "Group"

    def _list(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            if where is None:
                return self._not_found(self._what(scope))
            path, hooks = where
            return self.page(request, [self._render(scope, path, h) for h in hooks], gitlab=True)

        return handler

    def _get(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            if where is None:
                return self._not_found(self._what(scope))
            hook = self._find(where[1], request)
            return self._not_found("Hook") if hook is None else _json(self._render(scope, where[0], hook))

        return handler

    def _apply(self, scope: str, hook: dict[str, Any], body: dict[str, Any]) -> None:
        names = PROJECT_EVENTS if scope == "projects" else GROUP_EVENTS
        for name in (*names, "enable_ssl_verification"):
            if name in body:
                hook[name] = bool(body[name])  # unknown attributes (a group-only event on a project) are ignored

    def _create(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            if where is None:
                return self._not_found(self._what(scope))
            path, hooks = where
            body = await _body(request)
            if body is None or not body.get("url"):
                return _json({"error": "url is missing"}, 400)
            names = PROJECT_EVENTS if scope == "projects" else GROUP_EVENTS
            hook: dict[str, Any] = {"id": self.new_id(), "url": body["url"], "enable_ssl_verification": True,
                                    **{n: n == "push_events" for n in names}}
            self._apply(scope, hook, body)
            hooks.append(hook)
            self.tokens[hook["id"]] = str(body.get("token") or "")
            return _json(self._render(scope, path, hook), 201)

        return handler

    def _put(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            if where is None:
                return self._not_found(self._what(scope))
            hook = self._find(where[1], request)
            if hook is None:
                return self._not_found("Hook")
            body = await _body(request)
            if body is None or not body.get("url"):
                return _json({"error": "url is missing"}, 400)
            if body["url"] != hook["url"]:
                self.tokens[hook["id"]] = ""  # documented: a new URL resets the secret token
                hook["url"] = body["url"]
            if "token" in body:
                self.tokens[hook["id"]] = str(body["token"] or "")
            self._apply(scope, hook, body)
            return _json(self._render(scope, where[0], hook))

        return handler

    def _delete(self, scope: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            where = self._where(scope, request)
            if where is None:
                return self._not_found(self._what(scope))
            hook = self._find(where[1], request)
            if hook is None:
                return self._not_found("Hook")
            where[1].remove(hook)
            return web.Response(status=204)

        return handler


def _stored_config(config: dict[str, Any]) -> dict[str, str]:
    """What GitHub keeps of a hook's config and shows back: never the secret."""
    return {"url": config["url"], "content_type": config.get("content_type", "form"),
            "insecure_ssl": str(config.get("insecure_ssl", "0"))}
