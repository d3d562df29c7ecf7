"""Hook registration with the Git host: keep one webhook per repository, organization, project or group
pointing at this gateway, in the background, without ever holding up the listeners.

When a manifest asks for it (GitHub: `apiToken` and `webhook.url`; GitLab: `accessToken` and
`webhook.url`), one asyncio task per hook location reconciles the host with the manifest:

* The hook URL is Argo's `FormattedURL`: `webhook.url` without one trailing slash, then
  `webhook.endpoint`. Hooks are matched on that URL, normalised (scheme and host case, default port,
  trailing slash), never on their events: a hook whose events, secret, content type or TLS setting
  differ is updated in place (GitHub PATCH, GitLab PUT), and one is created only when none matches.
* No duplicates across restarts or replicas: after creating, the task lists again; if replicas raced
  and several hooks carry our URL, every one but the lowest id is deleted. Ids grow with time, so the
  replica that created last always sees both and removes its own: all replicas converge on the same
  hook. The same rule cleans up duplicates left by earlier tools (argo-events#2682, #408). GitHub's
  422 "Hook already exists" on create is the same race, resolved by listing again.
* Secrets cannot be read back (GitHub shows `********`, GitLab nothing), so a process writes the full
  configuration once per run to a hook it did not create: a rotated `webhookSecret` / `secretToken`
  reaches the host at the next start (argo-events#3459). After that, a write happens only when a
  visible field differs.
* Rate limits are respected (argo-events#1929): a 429, a `Retry-After`, or GitHub's
  `X-RateLimit-Remaining: 0` (GitLab `RateLimit-Remaining: 0`) with its reset time closes a gate for
  that host and token; no request is sent until it opens. Other failures retry with a jittered
  exponential backoff bounded by `max_backoff`; 4xx answers (bad token, unknown project) wait a
  whole `interval`. Re-checks are rare: every `interval` (10 min, ±10 %), not Argo's 60 s.
* Nothing here blocks receiving: `start()` only spawns tasks. Tokens and secrets never appear in logs,
  statuses or errors; any echo of them in a host's answer is scrubbed.

`deleteHookOnFinish` (Argo deletes on shutdown, and a rolling update's old pod then deletes the hook
the new pod relies on, argo-events#1177). hookgate cannot know how many replicas run, so it narrows
what a stopping process may delete instead of refusing the field:
1. only a hook this process created itself during this run. A hook it found (made by another
   replica, by the previous pod, or by a person) is never deleted, so a pod that merely joined never
   pulls the hook from under the others;
2. never when `HOOKGATE_KEEP_HOOKS=1` is in the environment at shutdown. Set it wherever more than
   one gateway may serve the same EventSource at once (replicas > 1, rolling updates): there the
   creator may still stop while a peer relies on its hook, and only coordination between replicas,
   which hookgate does not have, could make that safe. A peer re-creates a deleted hook at its next
   check, up to `interval` later, and GitHub does not redeliver what was missed in between.
The flag is therefore meant for a single process (`hookgate up` on a laptop, a tunnel URL, CI), where
it removes exactly what that process added.

GitHub App credentials (`githubApp`) are refused at load: they need JWT signing, which hookgate does
not ship. Use `apiToken`, or register the hook yourself.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from gateway.errors import ManifestError
from gateway.models import EventSource, SecretKeySelector

log = logging.getLogger(__name__)

SecretLookup = Callable[[str, SecretKeySelector], str]
Sleep = Callable[[float], Awaitable[None]]
SessionFactory = Callable[[], aiohttp.ClientSession]

KEEP_HOOKS_ENV = "HOOKGATE_KEEP_HOOKS"
DEFAULT_INTERVAL = 600.0
USER_AGENT = "hookgate"
MAX_PAGES = 50  # 5,000 hooks at 100 a page: far beyond GitHub's 20 and GitLab's 100 per project
MAX_RATE_WAIT = 3600.0
MASK = "***"


# --- the provider-neutral pieces ---------------------------------------------------------------------


def formatted_url(url: str, endpoint: str) -> str:
    """Argo's `FormattedURL`: the externally reachable base without one trailing slash, then the endpoint."""
    return (url[:-1] if url.endswith("/") else url) + endpoint


def normalise_url(url: str) -> str:
    """The form two hook URLs are compared in: scheme and host lower case, no default port, no fragment,
    no trailing slash on the path."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{host}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


class Dialect:
    """What differs between the hosts' hook APIs; one instance per host kind."""

    name = "host"
    update_method = "PUT"

    def auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def hook_url(self, hook: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def differences(self, hook: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
        """Names of the visible settings in which `hook` differs from what `body` would write."""
        raise NotImplementedError

    def already_exists(self, status: int, payload: Any) -> bool:
        """Whether a create was refused because a hook with this URL exists (a race with a peer)."""
        return False


@dataclass(frozen=True)
class Target:
    """One hook location (a repository, organization, project or group) and what the hook must be."""

    key: str  # "<eventsource>/<event> <where>", the status key
    dialect: Dialect
    collection: URL  # list (GET) and create (POST); a hook is collection / id
    hook_url: str
    body: Mapping[str, Any] = field(repr=False)  # create and update payload; carries the secret
    token: str = field(repr=False)
    has_secret: bool = False
    delete_on_finish: bool = False

    @property
    def host(self) -> str:
        return self.dialect.name

    def secret_values(self) -> set[str]:
        """The token and the hook secret: scrubbed from anything shown."""
        found = {self.token}
        for key in ("secret", "token"):
            for mapping in (self.body, self.body.get("config")):
                if isinstance(mapping, Mapping) and isinstance(mapping.get(key), str):
                    found.add(mapping[key])
        return found

    def headers(self) -> dict[str, str]:
        return {"User-Agent": USER_AGENT, **self.dialect.auth_headers(self.token)}

    def item(self, hook_id: int) -> URL:
        return self.collection / str(hook_id)

    def scrub(self, text: str) -> str:
        for value in self.secret_values():
            if value:
                text = text.replace(value, MASK)
        return text


@dataclass(frozen=True)
class Hook:
    id: int
    raw: Mapping[str, Any]


class HostError(Exception):
    """A host call that did not succeed. `wait` set: rate limited, retry after that many seconds;
    `transient`: retry soon with backoff; otherwise retry only at the next periodic check."""

    def __init__(self, message: str, *, status: int | None = None, wait: float | None = None,
                 transient: bool = True, exists: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.wait = wait
        self.transient = transient
        self.exists = exists


# --- the HTTP side ---------------------------------------------------------------------------------------


class HostClient:
    """Lists, creates, updates and deletes hooks; keeps one rate-limit gate per host and token."""

    def __init__(self, session: aiohttp.ClientSession, *, clock: Callable[[], float],
                 secrets: Iterable[str] = ()) -> None:
        self.session = session
        self.clock = clock
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)  # every target's, not just one
        self._gates: dict[tuple[str, str], float] = {}  # (origin, token) -> not before (clock time)

    async def list(self, target: Target) -> list[Hook]:
        """Every hook of the location whose URL is ours, lowest id first."""
        wanted = normalise_url(target.hook_url)
        found: list[Hook] = []
        url: URL | None = target.collection.update_query(per_page=100)
        for _ in range(MAX_PAGES):
            if url is None:
                break
            _, payload, headers = await self._call(target, "GET", url)
            if not isinstance(payload, list):
                raise HostError(f"unexpected answer from {target.host} when listing hooks", transient=True)
            for raw in payload:
                hook = _hook(raw)
                address = target.dialect.hook_url(raw) if hook is not None else None
                if hook is not None and address is not None and normalise_url(address) == wanted:
                    found.append(hook)
            url = self._next_page(target, url, headers)
        return sorted(found, key=lambda h: h.id)

    async def create(self, target: Target) -> Hook:
        _, payload, _ = await self._call(target, "POST", target.collection, body=target.body)
        hook = _hook(payload)
        if hook is None:
            raise HostError(f"unexpected answer from {target.host} when creating a hook", transient=True)
        return hook

    async def update(self, target: Target, hook_id: int) -> None:
        await self._call(target, target.dialect.update_method, target.item(hook_id), body=target.body)

    async def delete(self, target: Target, hook_id: int) -> bool:
        """Delete one hook; False when it was already gone."""
        try:
            await self._call(target, "DELETE", target.item(hook_id))
        except HostError as e:
            if e.status == 404:
                return False
            raise
        return True

    def scrub(self, target: Target, text: str) -> str:
        """Mask every token and secret this process knows in text that came from a host."""
        text = target.scrub(text)
        for value in self._secrets:
            text = text.replace(value, MASK)
        return text

    def _next_page(self, target: Target, current: URL, headers: Mapping[str, str]) -> URL | None:
        link = _next_link(headers.get("Link", ""))
        if link is not None:
            nxt = URL(link, encoded=True)
            if nxt.origin() != target.collection.origin():
                raise HostError(f"{target.host} pointed the next page at another host; not following it",
                                transient=False)
            return nxt
        page = headers.get("X-Next-Page", "").strip()  # GitLab, also without a Link header
        return current.update_query(page=page) if page.isdigit() else None

    async def _call(self, target: Target, method: str, url: URL, *, body: Mapping[str, Any] | None = None
                    ) -> tuple[int, Any, Mapping[str, str]]:
        gate = (str(target.collection.origin()), target.token)
        wait = self._gates.get(gate, 0.0) - self.clock()
        if wait > 0:
            raise HostError(f"rate limited by {target.host} for {wait:.0f}s more", wait=wait)
        try:
            async with self.session.request(method, url, json=body, headers=target.headers()) as resp:
                status, headers, text = resp.status, resp.headers, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            detail = self.scrub(target, str(e))
            raise HostError(f"cannot reach {target.host}: {type(e).__name__}{': ' + detail if detail else ''}",
                            transient=True) from None
        self._note_limits(gate, headers)
        payload = _json(text)
        if 200 <= status < 300:
            return status, payload, headers
        error = self._error(target, method, status, headers, payload)
        if error.wait is not None and status in (403, 429):  # the other tasks on this token wait too
            self._gates[gate] = max(self._gates.get(gate, 0.0), self.clock() + error.wait)
        raise error

    def _note_limits(self, gate: tuple[str, str], headers: Mapping[str, str]) -> None:
        reset = self._reset_wait(headers)
        if reset is not None:
            self._gates[gate] = self.clock() + reset

    def _reset_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until the quota comes back when the host says none is left (GitHub and GitLab headers)."""
        for remaining, reset in (("X-RateLimit-Remaining", "X-RateLimit-Reset"),
                                 ("RateLimit-Remaining", "RateLimit-Reset")):
            if headers.get(remaining, "").strip() == "0":
                try:
                    at = float(headers.get(reset, ""))
                except ValueError:
                    continue
                return _clamp(at - self.clock())
        return None

    def _error(self, target: Target, method: str, status: int, headers: Mapping[str, str], payload: Any
               ) -> HostError:
        message = f"{status} from {target.host}"
        detail = _message(payload)
        if detail:
            message += f": {self.scrub(target, detail)}"
        wait = _retry_after(headers.get("Retry-After", ""), self.clock())
        quota = self._reset_wait(headers)
        if status == 429 or (status == 403 and (wait is not None or quota is not None)):
            chosen = wait if wait is not None else quota
            return HostError(f"{message} (rate limited)", status=status, wait=chosen, transient=True)
        if status >= 500 or status == 408:
            return HostError(message, status=status, wait=wait, transient=True)
        exists = method == "POST" and target.dialect.already_exists(status, payload)
        if status == 404 and method == target.dialect.update_method:
            return HostError(f"{message} (the hook vanished; listing again)", status=status, transient=True)
        if status in (401, 403):
            message += " (check the token and its permissions)"
        elif status == 404 and method in ("GET", "POST"):
            message += " (unknown location, or the token cannot see it)"
        return HostError(message, status=status, transient=False, exists=exists)


def _hook(raw: Any) -> Hook | None:
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), int) and not isinstance(raw.get("id"), bool):
        return Hook(id=raw["id"], raw=raw)
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _message(payload: Any) -> str:
    if isinstance(payload, Mapping):
        parts = [str(payload.get(k)) for k in ("message", "error") if payload.get(k)]
        errors = payload.get("errors")
        if isinstance(errors, list):
            parts += [str(e.get("message")) for e in errors if isinstance(e, Mapping) and e.get("message")]
        text = "; ".join(parts)
    else:
        text = ""
    return text[:200]


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if len(pieces) > 1 and pieces[0].startswith("<") and pieces[0].endswith(">") \
                and any(p.replace(" ", "") in ('rel="next"', "rel=next") for p in pieces[1:]):
            return pieces[0][1:-1]
    return None


def _retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return _clamp(float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _clamp(when.timestamp() - now)


def _seconds(delay: float) -> str:
    return f"{delay:.1f}s" if delay < 10 else f"{delay:.0f}s"


def _clamp(seconds: float) -> float:
    return min(max(seconds, 1.0), MAX_RATE_WAIT)


# --- load-time checks and targets ----------------------------------------------------------------------


def check(eventsources: Iterable[EventSource]) -> None:
    """Refuse, with the field's path, what hook registration cannot do. Also usable by `validate`."""
    from gateway import hooks_github, hooks_gitlab  # they import this module

    for es in eventsources:
        for event, spec in es.spec.github.items():
            hooks_github.check(es, event, spec)
        for event, spec in es.spec.gitlab.items():
            hooks_gitlab.check(es, event, spec)


def targets(eventsources: Iterable[EventSource], secret: SecretLookup) -> list[Target]:
    from gateway import hooks_github, hooks_gitlab

    found: list[Target] = []
    for es in eventsources:
        for event, gh in es.spec.github.items():
            found += hooks_github.targets(es, event, gh, secret)
        for event, gl in es.spec.gitlab.items():
            found += hooks_gitlab.targets(es, event, gl, secret)
    seen: dict[tuple[str, str], Target] = {}
    for t in found:
        where = (str(t.collection), normalise_url(t.hook_url))
        if where in seen:
            raise ManifestError(f"{t.key} and {seen[where].key} would both manage the hook {t.hook_url} at the same "
                                "place; give them different webhook endpoints", kind="EventSource")
        seen[where] = t
    return found


def manifest_error(es: EventSource, source_type: str, event: str, message: str, *fields: str) -> ManifestError:
    return ManifestError(message, kind="EventSource", name=es.name, path=("spec", source_type, event, *fields))


def check_url(es: EventSource, source_type: str, event: str, value: str, *fields: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise manifest_error(es, source_type, event, f"must be an absolute http(s) URL, got {value!r}", *fields)


# --- the registrar ---------------------------------------------------------------------------------------


@dataclass
class _State:
    target: Target
    status: str = "pending"
    hook_id: int | None = None
    owned: int | None = None  # a hook this process created in this run
    written: int | None = None  # the hook whose whole configuration (with the secret) this run wrote
    failures: int = 0


def _default_session(timeout: float) -> SessionFactory:
    return lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))


class HookRegistrar:
    """Keeps the hooks that manifests ask for in place, in the background. See the module docstring."""

    def __init__(self, eventsources: Iterable[EventSource], *, secret: SecretLookup,
                 interval: float = DEFAULT_INTERVAL, session_factory: SessionFactory | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, start_jitter: float = 2.0, max_backoff: float = 300.0,
                 request_timeout: float = 30.0, stop_timeout: float = 10.0, keep_hooks: bool | None = None) -> None:
        sources = list(eventsources)
        check(sources)
        self._states = [_State(t) for t in targets(sources, secret)]  # secrets resolve now: errors at load
        self.interval = interval
        self._session_factory = session_factory or _default_session(request_timeout)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._start_jitter = start_jitter
        self._max_backoff = max_backoff
        self._stop_timeout = stop_timeout
        self._keep_hooks = keep_hooks
        self._session: aiohttp.ClientSession | None = None
        self._client: HostClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def status(self) -> dict[str, str]:
        return {s.target.key: s.status for s in self._states}

    async def start(self) -> None:
        """Spawn one background task per hook location and return at once."""
        if not self._states or self._tasks:
            return
        self._session = self._session_factory()
        known = (v for s in self._states for v in s.target.secret_values())
        self._client = HostClient(self._session, clock=self._clock, secrets=known)
        self._tasks = [asyncio.create_task(self._run(s), name=f"hook {s.target.key}") for s in self._states]
        log.info("hook registration: %d hook(s) to keep in place, re-checked every %.0fs",
                 len(self._states), self.interval)
        if any(s.target.delete_on_finish for s in self._states) and not self._keeping():
            log.info("deleteHookOnFinish: hooks this process creates are deleted when it stops; with several "
                     "replicas or rolling updates set %s=1 (argo-events#1177)", KEEP_HOOKS_ENV)

    async def stop(self, *, delete: bool = True) -> None:
        """Cancel the tasks; then, for `deleteHookOnFinish`, delete the hooks this process created in this
        run, unless `HOOKGATE_KEEP_HOOKS=1`. Bounded by `stop_timeout`."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if delete and self._client is not None:
                await self._finish()
        finally:
            if self._session is not None:
                await self._session.close()
            self._session = self._client = None

    # --- internals ---

    def _keeping(self) -> bool:
        if self._keep_hooks is not None:
            return self._keep_hooks
        return os.environ.get(KEEP_HOOKS_ENV, "").strip().lower() in ("1", "true", "yes")

    async def _finish(self) -> None:
        wanted = [s for s in self._states if s.target.delete_on_finish]
        if not wanted:
            return
        if self._keeping():
            log.info("%s=1: leaving %d hook(s) in place despite deleteHookOnFinish", KEEP_HOOKS_ENV, len(wanted))
            return
        for s in wanted:
            if s.owned is None and s.hook_id is not None:
                log.info("%s: keeping hook %d: this process did not create it (another replica, an earlier run "
                         "or a person may rely on it)", s.target.key, s.hook_id)
        owned = [s for s in wanted if s.owned is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(self._delete_owned(s) for s in owned)), self._stop_timeout)
        except TimeoutError:
            log.warning("deleteHookOnFinish: gave up deleting hooks after %.0fs", self._stop_timeout)

    async def _delete_owned(self, s: _State) -> None:
        assert self._client is not None and s.owned is not None
        hook_id = s.owned
        try:
            gone = await self._client.delete(s.target, hook_id)
        except HostError as e:
            log.warning("%s: could not delete hook %d on %s: %s", s.target.key, hook_id, s.target.host, e)
            s.status = f"not deleted: {e}"
            return
        s.owned = None
        s.status = f"deleted hook {hook_id} (deleteHookOnFinish)" if gone else f"hook {hook_id} was already gone"
        log.info("%s: %s", s.target.key, s.status)

    async def _run(self, s: _State) -> None:
        if self._start_jitter > 0:  # replicas starting together do not all list at the same instant
            await self._sleep(self._rng.uniform(0, self._start_jitter))
        while True:
            try:
                await self._reconcile(s)
            except HostError as e:
                delay = self._retry_delay(s, e)
                s.status = (f"retrying in {_seconds(delay)}: {e}" if e.transient or e.wait is not None
                            else f"failed: {e}; next check in {_seconds(delay)}")
                log.warning("%s: %s", s.target.key, s.status)
            except Exception as e:  # a bug here must not end the task or reach the listeners
                delay = self._retry_delay(s, HostError(type(e).__name__))
                s.status = f"retrying in {_seconds(delay)}: internal error {type(e).__name__}"
                shown = self._client.scrub(s.target, repr(e)) if self._client else type(e).__name__
                log.error("%s: hook registration failed: %s", s.target.key, shown)
            else:
                s.failures = 0
                delay = self.interval * self._rng.uniform(0.9, 1.1)
            await self._sleep(delay)

    def _retry_delay(self, s: _State, e: HostError) -> float:
        if e.wait is not None:
            return e.wait * self._rng.uniform(1.0, 1.1)
        if not e.transient:
            s.failures = 0
            return self.interval * self._rng.uniform(0.9, 1.1)
        s.failures += 1
        ceiling = min(self._max_backoff, self.interval, 2.0 ** (s.failures - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _reconcile(self, s: _State) -> None:
        client, t = self._client, s.target
        assert client is not None
        action: str | None = None
        mine = await client.list(t)
        if not mine:
            created: Hook | None = None
            try:
                created = await client.create(t)
            except HostError as e:
                if not e.exists:
                    raise
                log.info("%s: %s already has a hook for %s (a peer was faster); listing again", t.key, t.host,
                         t.hook_url)
            if created is not None:
                s.owned = s.written = created.id
                action = "created"
                log.info("%s: created hook %d on %s for %s", t.key, created.id, t.host, t.hook_url)
            mine = await client.list(t)  # a replica may have created one at the same time
            if not mine and created is not None:
                mine = [created]  # not listed yet; the next check sees it
            if not mine:
                raise HostError(f"{t.host} refused a second hook and lists none for {t.hook_url}")
        keep, extra = mine[0], mine[1:]
        for dup in extra:  # the lowest id wins on every replica, so all of them converge on it
            if await client.delete(t, dup.id):
                log.info("%s: deleted duplicate hook %d on %s (keeping %d)", t.key, dup.id, t.host, keep.id)
        if s.owned is not None and s.owned != keep.id:
            s.owned = None  # ours lost the race, or someone removed it: it is no longer ours to delete
            if action == "created":
                action = "a peer's hook kept, ours removed"
        changed = t.dialect.differences(keep.raw, t.body)
        if t.has_secret and s.written != keep.id and "secret" not in changed:
            changed.append("secret")  # cannot be read back: write it once per run
        if changed:
            await client.update(t, keep.id)
            s.written = keep.id
            action = action or f"updated {', '.join(changed)}"
            log.info("%s: updated hook %d on %s (%s)", t.key, keep.id, t.host, ", ".join(changed))
        s.hook_id = keep.id
        s.status = f"registered hook {keep.id}" + (f" ({action})" if action else "")
        log.debug("%s: %s", t.key, s.status)

