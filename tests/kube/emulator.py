"""
kmock's KubernetesEmulator, made to behave like a kube-apiserver towards the official client.

kmock 0.8 stores objects as plain JSON with none of the API server's semantics, which the
official ``kubernetes`` client (37) depends on. :class:`Emulator` closes those gaps; each one is
pinned by a test in ``test_emulator.py``, so a kmock upgrade that changes behaviour shows at once:

* ``metadata.generateName``; server-set ``uid``, ``resourceVersion``, ``creationTimestamp``;
* 201 on create; ``Status`` errors: 404 for undeclared resources, 409 AlreadyExists/Conflict,
  422 Invalid, 400 BadRequest (namespace or name mismatch between URL and body);
* list label/field selectors; watch (``watch=true`` and ``watch=True``) with ``resourceVersion``,
  selectors and ``timeoutSeconds``; PUT (replace); merge- and JSON-patch;
* discovery with a trailing slash (``/apis/``, ``/version/``).

Fault injection (not an API server gap, a test tool): :meth:`Handle.inject` makes the next N
requests matching a method and resource answer an error status or answer late, while it runs.

Load: kmock keeps every request and, to route one, scans that whole log once per reaction, so a
request costs time in proportion to all requests served so far (some 50 ms once 100 were served).
For thousands of requests, pass ``request_history=N`` to keep only the last N (kmock's DSL
counters and request assertions then see only those).

:func:`run_emulator` serves it in its own thread and event loop, because the official client
is synchronous and would block a server running on the test's own loop.
"""

import asyncio
import concurrent.futures
import contextlib
import copy
import datetime
import json
import os
import random
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.web
import attrs
import kmock
import kubernetes.client
import yaml

JSON = dict[str, Any]
Key = tuple[kmock.resource, str | None, str]  # (resource, namespace, name): kmock's object key

# What hookgate touches: Argo resources, the trigger targets, and Secrets/ConfigMaps it reads.
RESOURCES: dict[str, tuple[str, bool]] = {  # "group/version/plural": (kind, namespaced)
    'argoproj.io/v1alpha1/workflows': ('Workflow', True),
    'argoproj.io/v1alpha1/workflowtemplates': ('WorkflowTemplate', True),
    'argoproj.io/v1alpha1/clusterworkflowtemplates': ('ClusterWorkflowTemplate', False),
    'argoproj.io/v1alpha1/cronworkflows': ('CronWorkflow', True),
    'argoproj.io/v1alpha1/sensors': ('Sensor', True),
    'argoproj.io/v1alpha1/eventsources': ('EventSource', True),
    'v1/secrets': ('Secret', True),
    'v1/configmaps': ('ConfigMap', True),
    'apps/v1/deployments': ('Deployment', True),
}
VERBS = {'get', 'list', 'watch', 'create', 'update', 'patch', 'delete'}

# The API server's alphabet for generated names (no vowels, no confusable digits).
NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'
GENERATED_SUFFIX = 5
MAX_NAME = 63


class ApiError(Exception):
    """An API failure, answered as a Kubernetes ``Status`` so the client raises ``ApiException``."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> kmock.Response:
        status: JSON = {
            'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
            'message': self.message, 'reason': self.reason, 'code': self.code,
        }
        if self.details:
            status['details'] = self.details
        return kmock.Response(status=self.code, payload=status)


def _qualified(res: kmock.resource) -> str:
    return f'{res.plural}.{res.group}' if res.group else str(res.plural)


def _api_version(res: kmock.resource) -> str:
    return f'{res.group}/{res.version}' if res.group else str(res.version)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


# --- Label and field selectors -------------------------------------------------------------------

Requirement = tuple[str, str, frozenset[str]]  # (key, operator, values)
_TERM = re.compile(
    r'\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][\w./-]*)\s*'
    r'(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|\s(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?\s*'
)


def parse_selector(text: str) -> list[Requirement]:
    """Parse a label selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``."""
    requirements: list[Requirement] = []
    for term in re.split(r',(?![^()]*\))', text):  # commas inside "(...)" separate values, not terms
        if not term.strip():
            continue
        m = _TERM.fullmatch(term)
        if m is None or (m['neg'] and (m['op'] or m['setop'])):
            raise ValueError(f'unable to parse requirement: {term!r}')
        if m['op']:
            requirements.append((m['key'], '!=' if m['op'] == '!=' else '=', frozenset([m['value']])))
        elif m['setop']:
            values = frozenset(v.strip() for v in m['values'].split(','))
            requirements.append((m['key'], m['setop'], values))
        else:
            requirements.append((m['key'], '!' if m['neg'] else 'exists', frozenset()))
    return requirements


def matches(values: Mapping[str, str], requirements: Iterable[Requirement]) -> bool:
    """Whether labels (or flattened fields) satisfy all requirements, as the API server decides."""
    for key, op, wanted in requirements:
        present = key in values
        ok = {
            '=': present and values.get(key) in wanted,
            'in': present and values.get(key) in wanted,
            '!=': not present or values.get(key) not in wanted,  # absent keys satisfy negations
            'notin': not present or values.get(key) not in wanted,
            'exists': present,
            '!': not present,
        }[op]
        if not ok:
            return False
    return True


def _field(obj: JSON, path: str) -> str | None:
    value: Any = obj
    for part in path.split('.'):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value)


# --- Patches -------------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic-merge: lists are replaced, not merged)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: list[JSON]) -> Any:
    """RFC 6902 JSON patch. Raises ValueError (or Key/Index/TypeError) on a failed operation."""
    root: list[Any] = [copy.deepcopy(document)]  # a holder, so the root can be replaced like a child

    def locate(pointer: str) -> tuple[Any, str | int]:
        if pointer and not pointer.startswith('/'):
            raise ValueError(f'invalid JSON pointer: {pointer!r}')
        tokens = [t.replace('~1', '/').replace('~0', '~') for t in pointer.split('/')[1:]]
        parent: Any = root
        key: str | int = 0
        for token in tokens:
            parent = parent[key]
            key = token if isinstance(parent, dict) else len(parent) if token == '-' else int(token)
        return parent, key

    def add(pointer: str, value: Any) -> None:
        parent, key = locate(pointer)
        if isinstance(parent, list) and parent is not root:
            if not isinstance(key, int) or not 0 <= key <= len(parent):
                raise IndexError(pointer)
            parent.insert(key, value)
        else:
            parent[key] = value

    def remove(pointer: str) -> Any:
        parent, key = locate(pointer)
        return parent.pop(key)

    def get(pointer: str) -> Any:
        parent, key = locate(pointer)
        return parent[key]

    for op in operations:
        match op.get('op'):
            case 'add':
                add(op['path'], copy.deepcopy(op['value']))
            case 'remove':
                remove(op['path'])
            case 'replace':
                remove(op['path'])
                add(op['path'], copy.deepcopy(op['value']))
            case 'move':
                add(op['path'], remove(op['from']))
            case 'copy':
                add(op['path'], copy.deepcopy(get(op['from'])))
            case 'test':
                if get(op['path']) != op['value']:
                    raise ValueError(f'test operation failed at {op["path"]}')
            case other:
                raise ValueError(f'unknown JSON patch operation: {other!r}')
    return root[0]


# --- Fault injection -----------------------------------------------------------------------------

@attrs.define(eq=False)
class Fault:
    """One injected fault: the next ``count`` matching requests fail (``status``) or answer late (``stall``)."""

    method: str | None
    plural: str | None
    status: int | None
    stall: float | None
    count: int
    hits: int = 0  # matching requests served with this fault so far (read from any thread)

    @property
    def remaining(self) -> int:
        return self.count - self.hits

    def matches(self, method: str, plural: str | None) -> bool:
        return (self.method is None or self.method == method) and (self.plural is None or self.plural == plural)


class Faults:
    """
    Faults armed from the test's thread and consumed on the emulator's loop, under one lock.

    A ``status`` fault answers that status (a Kubernetes ``Status`` body) without touching the store.
    A ``stall`` fault serves the request normally (a create is stored at once) and holds the answer
    back for ``stall`` seconds: a client that times out meanwhile does not know its write happened.
    Faults apply in the order they were armed; a request consumes at most one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def inject(self, *, method: str | None = None, plural: str | None = None, status: int | None = None,
               stall: float | None = None, count: int = 1) -> Fault:
        if (status is None) == (stall is None):
            raise ValueError('give exactly one of status= or stall=')
        if count < 1 or (stall is not None and stall < 0) or (status is not None and not 100 <= status <= 599):
            raise ValueError(f'invalid fault: count={count} status={status} stall={stall}')
        fault = Fault(method.upper() if method else None, plural, status, stall, count)
        with self._lock:
            self._armed.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, method: str, plural: str | None) -> Fault | None:
        """The first armed fault matching the request, counting the hit (disarmed when used up)."""
        with self._lock:
            for fault in self._armed:
                if fault.matches(method, plural):
                    fault.hits += 1
                    if fault.remaining <= 0:
                        self._armed.remove(fault)
                    return fault
        return None


_FAULT_REASONS = {429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout'}


# --- The emulator --------------------------------------------------------------------------------

@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """
    An in-memory kube-apiserver for the declared resources (see :data:`RESOURCES`, :meth:`register`).

    All writes happen in the fallback reactions (``_serve_*``), so reactions added via kmock's DSL
    (``emu['post /apis/...'] << 500``) still pre-empt them, and the store keeps kmock's history
    (``emu.objects[res, ns, name].history``) for assertions.
    """

    _revision: int = attrs.field(default=0, init=False)
    _log: list[tuple[Key, JSON]] = attrs.field(factory=list, init=False)  # every watch event, in order
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)  # replaced on every write
    _closing: bool = attrs.field(default=False, init=False)
    faults: Faults = attrs.field(factory=Faults)  # see Handle.inject
    request_history: int | None = None  # past requests kmock keeps (None: all, kmock's default)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, (kind, namespaced) in RESOURCES.items():
            self.register(path, kind, namespaced=namespaced)
        # kmock guesses no k8s action for PUT, so it would never reach an object handler.
        self.fallback[kmock.method.PUT] << self._serve_replace
        # kmock serves discovery only without a trailing slash; clients ask for both
        # (group and version paths with a slash arrive in _serve_list).
        self.fallback['get /api/'] << self._serve_api
        self.fallback['get /apis/'] << self._serve_apis
        self.fallback['get /version/'] << self._serve_server_version

    def register(self, resource: str, kind: str, *, namespaced: bool = True) -> None:
        """Declare a resource ("group/version/plural" or "v1/plural"); undeclared ones answer 404."""
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=VERBS, subresources={'status'},
        )

    def preload(self, obj: Mapping[str, Any]) -> JSON:
        """Store an object as if created through the API (by apiVersion + kind); returns it as stored."""
        api_version, kind = obj.get('apiVersion'), obj.get('kind')
        for res in self.resources:
            info = self.resources[res]
            if _api_version(res) == api_version and info.kind == kind:
                break
        else:
            raise ValueError(f'undeclared resource for apiVersion={api_version!r} kind={kind!r}')
        namespace = obj.get('metadata', {}).get('namespace') or ('default' if info.namespaced else None)
        return self._create(res, namespace, dict(obj))

    def close_watches(self) -> None:
        """End all watch streams (before the server shuts down, which waits for open handlers)."""
        self._closing = True
        self._wake()

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # KubernetesEmulator._handle writes to the store before routing, with none of the checks
        # done here; skip it: our fallback reactions validate first and then write.
        if self.request_history is not None:  # kmock appended this request last: keep it
            del self._requests[:-(self.request_history + 1)]
        method = str(getattr(request.method, 'value', request.method) or '').upper()
        fault = self.faults.take(method, request.resource.plural if request.resource is not None else None)
        if fault is not None and fault.status is not None:
            reason = _FAULT_REASONS.get(fault.status, 'InternalError')
            status = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                      'message': f'injected fault: {fault.status} {reason}', 'reason': reason, 'code': fault.status}
            return aiohttp.web.json_response(status, status=fault.status)
        response = await super(kmock.KubernetesEmulator, self)._handle(request)
        if fault is not None and fault.stall:
            await asyncio.sleep(fault.stall)  # the work is done; only the answer is late
        return response

    # --- Store --------------------------------------------------------------------------------

    def _get(self, key: Key) -> JSON | None:
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def _live(self, res: kmock.resource, namespace: str | None) -> list[tuple[Key, JSON]]:
        return sorted(
            ((key, obj.raw) for key, obj in self.objects.items()
             if key[0] == res and not obj.deleted and (namespace is None or key[1] == namespace)),
            key=lambda item: (item[0][1] or '', item[0][2]),
        )

    def _write(self, key: Key, obj: JSON, event: str) -> JSON:
        """Store a new version (or a deletion) with a fresh resourceVersion and tell the watchers."""
        self._revision += 1
        obj['metadata']['resourceVersion'] = str(self._revision)
        if event == 'DELETED':
            self.objects[key].delete()  # soft: kmock keeps the history
        elif key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        self._log.append((key, {'type': event, 'object': obj}))
        self._wake()
        return obj

    def _wake(self) -> None:
        # Watchers wait on the current event; a fresh one is armed for the next write.
        self._changed.set()
        self._changed = asyncio.Event()

    def _create(self, res: kmock.resource, namespace: str | None, obj: JSON) -> JSON:
        info = self.resources[res]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault('metadata', {})
        if not meta.get('name'):
            prefix = meta.get('generateName')
            if not prefix:
                raise ApiError(
                    422, 'Invalid',
                    f'{info.kind}.{res.group} "" is invalid: metadata.name: Required value: '
                    'name or generateName is required',
                    group=res.group, kind=info.kind, name='',
                )
            meta['name'] = self._generate_name(res, namespace, prefix)
        key: Key = (res, namespace, meta['name'])
        if self._get(key) is not None:
            raise ApiError(
                409, 'AlreadyExists', f'{_qualified(res)} "{meta["name"]}" already exists',
                group=res.group, kind=res.plural, name=meta['name'],
            )
        obj.setdefault('apiVersion', _api_version(res))
        obj.setdefault('kind', info.kind)
        if namespace is not None:
            meta['namespace'] = namespace
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = _now()
        meta.pop('deletionTimestamp', None)
        return self._write(key, obj, 'ADDED')

    def _generate_name(self, res: kmock.resource, namespace: str | None, prefix: str) -> str:
        prefix = prefix[:MAX_NAME - GENERATED_SUFFIX]
        while True:  # the real server also retries on a collision
            name = prefix + ''.join(random.choices(NAME_ALPHABET, k=GENERATED_SUFFIX))
            if self._get((res, namespace, name)) is None:
                return name

    def _update(self, key: Key, current: JSON, new: JSON) -> JSON:
        """Write a changed object: server-owned metadata is kept; finalizer-less deletions complete."""
        res, _, name = key
        meta = new.setdefault('metadata', {})
        if meta.get('name', name) != name:
            raise ApiError(400, 'BadRequest',
                           f'the name of the object ({meta["name"]}) does not match the name on the URL ({name})')
        if meta.get('resourceVersion') not in (None, '', current['metadata']['resourceVersion']):
            raise ApiError(
                409, 'Conflict',
                f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the object has been modified; '
                'please apply your changes to the latest version and try again',
                group=res.group, kind=res.plural, name=name,
            )
        for field in ('name', 'namespace', 'uid', 'creationTimestamp', 'resourceVersion', 'deletionTimestamp'):
            if field in current['metadata']:
                meta[field] = current['metadata'][field]
            else:
                meta.pop(field, None)
        if new == current:
            return current  # like the real server: a no-op write does not bump resourceVersion
        if meta.get('deletionTimestamp') and not meta.get('finalizers'):
            return self._write(key, new, 'DELETED')
        return self._write(key, new, 'MODIFIED')

    # --- Request plumbing -----------------------------------------------------------------------

    def _target(self, request: kmock.Request, *, named: bool) -> tuple[kmock.resource, kmock.ResourceInfo]:
        """The declared resource of a request, or 404 as the real server answers for unknown URLs."""
        res = request.resource
        not_found = ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if res is None or res.plural is None or res not in self.resources:
            raise not_found
        info = self.resources[res]
        if request.namespace is not None and not info.namespaced:
            raise not_found
        if named and info.namespaced and request.namespace is None:
            raise not_found
        if request.subresource not in (None, 'status'):
            raise not_found
        return res, info

    def _existing(self, request: kmock.Request, res: kmock.resource) -> tuple[Key, JSON]:
        assert request.name is not None  # kmock routes only named requests to object handlers
        key: Key = (res, request.namespace, request.name)
        current = self._get(key)
        if current is None:
            raise ApiError(404, 'NotFound', f'{_qualified(res)} "{request.name}" not found',
                           group=res.group, kind=res.plural, name=request.name)
        return key, current

    @staticmethod
    def _body(request: kmock.Request) -> Any:
        try:
            return json.loads(request.body)
        except ValueError as e:
            raise ApiError(400, 'BadRequest', f'the request body is not valid JSON: {e}') from e

    @staticmethod
    def _object_body(request: kmock.Request) -> JSON:
        body = Emulator._body(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'BadRequest', 'the request body must be a JSON object')
        namespace = body.get('metadata', {}).get('namespace')
        if namespace and namespace != request.namespace:
            raise ApiError(400, 'BadRequest',
                           'the namespace of the provided object does not match the namespace sent on the request')
        return body

    @staticmethod
    def _selectors(request: kmock.Request) -> tuple[list[Requirement], list[Requirement]]:
        try:
            labels = parse_selector(request.params.get('labelSelector', ''))
            fields = parse_selector(request.params.get('fieldSelector', ''))
        except ValueError as e:
            raise ApiError(400, 'BadRequest', str(e)) from e
        if any(op not in ('=', '!=') for _, op, _ in fields):
            raise ApiError(400, 'BadRequest', 'field selectors support only =, == and !=')
        return labels, fields

    @staticmethod
    def _selected(obj: JSON, name: str | None, labels: list[Requirement], fields: list[Requirement]) -> bool:
        meta = obj.get('metadata', {})
        values = {key: v for key, _, _ in fields if (v := _field(obj, key)) is not None}
        return (name is None or meta.get('name') == name) and matches(meta.get('labels') or {}, labels) \
            and matches(values, fields)

    # --- Handlers (kmock's fallback reactions call these by name) -------------------------------

    async def _serve_version(self, request: kmock.Request) -> JSON:
        listing = await super()._serve_version(request)
        assert isinstance(listing, dict)
        listing['groupVersion'] = listing['groupVersion'].lstrip('/')  # kmock says "/v1" for the core group
        return listing

    async def _serve_list(self, request: kmock.Request) -> kmock.Response:  # type: ignore[override]
        # kmock treats only "watch=true" as a watch; older clients send "watch=True".
        if request.params.get('watch', '').lower() in ('true', '1'):
            return await self._serve_watch(request)
        if request.resource is not None and request.resource.plural is None:  # "/api/v1/", "/apis/g/v/"
            discover = self._serve_group if request.resource.version is None else self._serve_version
            return kmock.Response(status=200, payload=await discover(request))
        try:
            res, info = self._target(request, named=False)
            labels, fields = self._selectors(request)
        except ApiError as e:
            return e.response()
        return kmock.Response(status=200, payload={
            'apiVersion': _api_version(res), 'kind': f'{info.kind}List',
            'metadata': {'resourceVersion': str(self._revision)},
            'items': [obj for _, obj in self._live(res, request.namespace)
                      if self._selected(obj, None, labels, fields)],
        })

    async def _serve_watch(self, request: kmock.Request) -> kmock.Response:  # type: ignore[override]
        try:
            res, _ = self._target(request, named=False)
            labels, fields = self._selectors(request)
            since = int(request.params.get('resourceVersion') or 0)
            timeout = float(request.params['timeoutSeconds']) if 'timeoutSeconds' in request.params else None
        except ValueError as e:
            return ApiError(400, 'BadRequest', f'invalid watch parameter: {e}').response()
        except ApiError as e:
            return e.response()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        stream = self._watch(res, request.namespace, request.name, labels, fields, since, deadline)
        return kmock.Response(status=200, payload=stream)

    async def _watch(
        self, res: kmock.resource, namespace: str | None, name: str | None,
        labels: list[Requirement], fields: list[Requirement], since: int, deadline: float | None,
    ) -> AsyncIterator[bytes | JSON]:
        yield b''  # kmock sends the headers with the first chunk: release the client at once
        if since:  # replay what happened after the client's list
            position = next((i for i, (_, e) in enumerate(self._log)
                             if int(e['object']['metadata']['resourceVersion']) > since), len(self._log))
        else:  # "0" or absent: the current state as ADDED, then changes
            position = len(self._log)
            for _, obj in self._live(res, namespace):
                if self._selected(obj, name, labels, fields):
                    yield {'type': 'ADDED', 'object': obj}
        loop = asyncio.get_running_loop()
        while not self._closing:
            changed = self._changed  # taken before reading the log, so no write is missed
            while position < len(self._log):
                (event_res, event_ns, _), event = self._log[position]
                position += 1
                if event_res == res and namespace in (None, event_ns) \
                        and self._selected(event['object'], name, labels, fields):
                    yield event
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Response:
        try:
            res, _ = self._target(request, named=True)
            _, current = self._existing(request, res)
        except ApiError as e:
            return e.response()
        return kmock.Response(status=200, payload=current)

    async def _serve_create(self, request: kmock.Request) -> kmock.Response:
        try:
            res, info = self._target(request, named=False)
            if info.namespaced and request.namespace is None:
                raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
            created = self._create(res, request.namespace, self._object_body(request))
        except ApiError as e:
            return e.response()
        return kmock.Response(status=201, payload=created)

    async def _serve_update(self, request: kmock.Request) -> kmock.Response:  # PATCH
        try:
            res, _ = self._target(request, named=True)
            key, current = self._existing(request, res)
            patch = self._body(request)
            content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
            if content_type == 'application/json-patch+json' and isinstance(patch, list):
                try:
                    new = json_patch(current, patch)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    raise ApiError(422, 'Invalid', f'the JSON patch could not be applied: {e!r}') from e
            elif content_type in ('application/merge-patch+json', 'application/strategic-merge-patch+json'):
                new = merge_patch(current, patch)
            else:
                raise ApiError(415, 'UnsupportedMediaType', f'the patch type {content_type!r} is not supported')
            if request.subresource == 'status':
                new = dict(current, status=new.get('status'))
            updated = self._update(key, current, new)
        except ApiError as e:
            return e.response()
        return kmock.Response(status=200, payload=updated)

    async def _serve_replace(self, request: kmock.Request) -> kmock.Response:  # PUT
        try:
            res, _ = self._target(request, named=True)
            key, current = self._existing(request, res)
            new = self._object_body(request)
            if request.subresource == 'status':
                new = dict(current, status=new.get('status'),
                           metadata=dict(current['metadata'], **new.get('metadata', {})))
            updated = self._update(key, current, new)
        except ApiError as e:
            return e.response()
        return kmock.Response(status=200, payload=updated)

    async def _serve_delete(self, request: kmock.Request) -> kmock.Response:
        try:
            res, _ = self._target(request, named=True)
            key, current = self._existing(request, res)
        except ApiError as e:
            return e.response()
        if current['metadata'].get('finalizers'):  # the owners of the finalizers complete it
            if not current['metadata'].get('deletionTimestamp'):
                current['metadata']['deletionTimestamp'] = _now()
                current = self._write(key, current, 'MODIFIED')
            return kmock.Response(status=200, payload=current)
        deleted = self._write(key, current, 'DELETED')
        if res.group not in ('', 'apps'):  # custom resources answer with the object, built-ins with Status
            return kmock.Response(status=200, payload=deleted)
        return kmock.Response(status=200, payload={
            'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
            'details': {'name': key[2], 'group': res.group, 'kind': res.plural,
                        'uid': deleted['metadata']['uid']},
        })


# --- Running it in a thread ----------------------------------------------------------------------

@attrs.frozen
class Handle:
    """A running emulator, as seen from the (synchronous) test."""

    url: str
    faults: Faults | None = attrs.field(default=None, eq=False, repr=False)

    def inject(self, *, method: str | None = None, plural: str | None = None, status: int | None = None,
               stall: float | None = None, count: int = 1) -> Fault:
        """
        Make the next ``count`` requests matching ``method`` and ``plural`` (None: any) fail, from now on.

        ``status=500``: answered with that status and a ``Status`` body, nothing stored.
        ``stall=11.0``: served (a create is stored) but answered ``stall`` seconds late.
        Thread-safe; returns the :class:`Fault`, whose ``hits`` / ``remaining`` show its use.
        """
        if self.faults is None:
            raise RuntimeError('this handle has no running emulator to inject faults into')
        return self.faults.inject(method=method, plural=plural, status=status, stall=stall, count=count)

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        """Write a kubeconfig for this server (no auth, insecure) and return its path."""
        config = {
            'apiVersion': 'v1', 'kind': 'Config', 'preferences': {},
            'clusters': [{'name': 'emulator', 'cluster': {'server': self.url, 'insecure-skip-tls-verify': True}}],
            'users': [{'name': 'emulator', 'user': {}}],
            'contexts': [{'name': 'emulator',
                          'context': {'cluster': 'emulator', 'user': 'emulator', 'namespace': 'default'}}],
            'current-context': 'emulator',
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new official client for this server; close it (or use it as a context manager)."""
        return kubernetes.client.ApiClient(kubernetes.client.Configuration(host=self.url))

    def objects(self, group: str, version: str, plural: str, namespace: str | None = None) -> list[JSON]:
        """The stored objects of a resource (all namespaces unless given), read via the official client."""
        path = f'/apis/{group}/{version}' if group else f'/api/{version}'
        path += f'/namespaces/{namespace}/{plural}' if namespace else f'/{plural}'
        with self.api_client() as client:
            response = client.call_api(*client.param_serialize('GET', path))
            response.read()
            if response.status != 200:
                raise kubernetes.client.ApiException(http_resp=response)
            items: list[JSON] = json.loads(response.data)['items']
            return items


class RunningEmulator:
    """
    Serve an :class:`Emulator` on 127.0.0.1 (a free port unless given) in its own thread and loop.

    Use as a context manager: entering waits until it serves, exiting ends open watches,
    stops the server (releasing the port) and joins the thread.
    """

    def __init__(self, preload: Iterable[Mapping[str, Any]] = (), *, port: int = 0,
                 request_history: int | None = None) -> None:
        self._preload = [dict(obj) for obj in preload]
        self._port = port
        self._request_history = request_history
        self._started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]]
        self._started = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name='kube-emulator', daemon=True)
        self._stop: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._faults = Faults()

    def __enter__(self) -> Handle:
        self._thread.start()
        loop, stop, url = self._started.result(timeout=30)  # re-raises a failure to start
        self._stop = loop, stop
        return Handle(url, faults=self._faults)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        if self._stop is not None:
            loop, stop = self._stop
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError('the emulator thread did not stop')

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            # Created on its own loop: kmock binds asyncio primitives to it.
            emulator = Emulator(faults=self._faults, request_history=self._request_history)
            for obj in self._preload:
                emulator.preload(obj)
            # Plain aiohttp rather than kmock.Server: that one patches aiohttp's resolver process-wide,
            # which breaks when several emulators (or threads) enter and exit out of order.
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(emulator), shutdown_timeout=5)
            async with emulator:
                await runner.setup()
                try:
                    site = aiohttp.web.TCPSite(runner, '127.0.0.1', self._port)
                    await site.start()
                    host, port = runner.addresses[0][:2]
                    stop = asyncio.Event()
                    self._started.set_result((asyncio.get_running_loop(), stop, f'http://{host}:{port}'))
                    await stop.wait()
                    emulator.close_watches()
                finally:
                    await runner.cleanup()
        except BaseException as e:
            if not self._started.done():
                self._started.set_exception(e)
            raise


@contextlib.contextmanager
def run_emulator(preload: Iterable[Mapping[str, Any]] = (), *, port: int = 0,
                 request_history: int | None = None) -> Iterator[Handle]:
    """Serve an emulator (with ``preload`` objects stored first) for the duration of the block.

    ``request_history``: how many past requests kmock keeps (None: all); bound it for heavy traffic.
    """
    with RunningEmulator(preload, port=port, request_history=request_history) as handle:
        yield handle
