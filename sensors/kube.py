"""Where triggers act: a Kubernetes API (the official client's dynamic client) or a dry-run folder.

`KubeCluster` reaches any resource kind the API server serves: the kind is looked up by discovery
on first use and cached in memory (never in a temp file shared with other processes). Argo's own
kinds skip discovery: their creates and reads (one create per fired trigger) are sent over aiohttp
on the event loop with the client's host, TLS settings, headers and credentials
(sensors/kubehttp.py), or, for a configuration that module cannot reproduce, through the client's
generated CustomObjectsApi. The `kubernetes` client is synchronous, so every call through it runs
in a small thread pool, never on the event loop. Errors are sorted here, once: 404 and 409 are
answered to the caller as `None` / `NotFound` / `AlreadyExists`; 429, 5xx, a 409 Conflict on
replace, timeouts and connection errors are `TemporaryError`; any other 4xx, and a kind the
cluster does not serve, are `PermanentError`.

`DryRunCluster` sends nothing. It is honest about what it cannot know: the live state of a cluster.

* create: `<metadata.name>.yaml` is exactly the object that would be sent (name already chosen);
  a second create of the same name finds it there (409 semantics, for idempotent redeliveries).
* update / patch / delete and the argoWorkflow operations (suspend, resume, terminate, stop):
  the trigger does not read a live object first; `<metadata.name>.<operation>.yaml` records the
  request hookgate would send if the object exists, under a `#` comment line naming the
  operation, the kind, the namespace and (for patches) the patch type. For `update` the object is
  what would be merged over the live one; for a patch the patch body; for `delete` the object's
  identity. A later request of the same operation on the same name overwrites the file.
* get: the WorkflowTemplates given with `-f`, and objects this dry run created.

`DryRunCluster(None)` is the offline cluster of `validate` and `test`: it reads templates and
refuses every write.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import orjson
import yaml

from sensors import kubehttp, yaml_dump
from sensors.triggers import PermanentError, TemporaryError

log = logging.getLogger(__name__)

T = TypeVar("T")
Obj = dict[str, Any]

#: Cluster-scoped kinds a rendered resource (no cluster at hand) should not get a namespace for.
#: A live cluster decides by discovery; this list only makes `hookgate test` and dry-run exact.
CLUSTER_SCOPED_KINDS = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "PriorityClass", "IngressClass", "RuntimeClass", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "CSIDriver", "CSINode",
    "VolumeAttachment", "ClusterWorkflowTemplate",
})


class AlreadyExists(Exception):
    def __init__(self, existing: Obj) -> None:
        self.existing = existing
        super().__init__("already exists")


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} not found")


class Cluster(Protocol):
    #: True when live objects cannot be read (dry-run): triggers then record requests instead.
    dry_run: bool

    async def create(self, obj: Obj, namespace: str | None) -> Obj:
        """Create `obj`; raise AlreadyExists with the stored object when its name is taken."""
        ...

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Obj | None: ...

    async def replace(self, obj: Obj, namespace: str | None) -> Obj:
        """PUT `obj` (carrying the resourceVersion it was read at); NotFound when it is gone."""
        ...

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: Any, *,
                    content_type: str, operation: str = "patch") -> Obj:
        """PATCH with `content_type`; NotFound when absent. `operation` names it in logs and dry-run files."""
        ...

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete; False when there was nothing to delete."""
        ...

    async def close(self) -> None: ...


def describe(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


# --- a live cluster ------------------------------------------------------------------------------


def _dynamic_client(api: Any, timeout: float) -> Any:
    """The official dynamic client with a timeout on every request (discovery's too) and in-memory discovery."""
    from kubernetes.dynamic import DynamicClient, LazyDiscoverer

    class MemoryDiscoverer(LazyDiscoverer):  # type: ignore[misc]
        """The client's lazy discovery, minus its cache file in the shared temp folder."""

        def _write_cache(self) -> None:
            return None

    class TimedClient(DynamicClient):  # type: ignore[misc]
        def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
            params.setdefault("_request_timeout", timeout)
            return super().request(method, path, body=body, **params)

    # The cache file never exists, so discovery starts empty and stays in memory.
    never = os.path.join(tempfile.gettempdir(), f"hookgate-{uuid.uuid4().hex}", "discovery.json")
    return TimedClient(api, cache_file=never, discoverer=MemoryDiscoverer)


#: (apiVersion, kind) → (group, version, plural, namespaced) for the kinds the argoWorkflow trigger uses.
ARGO_RESOURCES: dict[tuple[str, str], tuple[str, str, str, bool]] = {
    ("argoproj.io/v1alpha1", "Workflow"): ("argoproj.io", "v1alpha1", "workflows", True),
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): ("argoproj.io", "v1alpha1", "workflowtemplates", True),
    ("argoproj.io/v1alpha1", "ClusterWorkflowTemplate"): ("argoproj.io", "v1alpha1", "clusterworkflowtemplates",
                                                           False),
    ("argoproj.io/v1alpha1", "CronWorkflow"): ("argoproj.io", "v1alpha1", "cronworkflows", True),
}


class KubeCluster:
    dry_run = False

    def __init__(self, *, kubeconfig: str | None = None, workers: int = 8, timeout: float = 10.0) -> None:
        from kubernetes import client, config

        if kubeconfig:
            api = config.new_client_from_config(config_file=kubeconfig)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            api = client.ApiClient()
        else:
            api = config.new_client_from_config()
        # The connection pool must allow as many parallel calls as there are worker threads.
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = workers
        self._api = api
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._timeout = timeout
        self._dynamic: Any = None
        self._discovery = threading.Lock()  # the client's discovery cache is not thread-safe
        self._custom = client.CustomObjectsApi(api)
        reason = kubehttp.unsupported(api)
        self._http = None if reason else kubehttp.ApiHttp(api, timeout=timeout, connections=workers,
                                                          blocking=self._run)
        if reason:
            log.info("Kubernetes API %s: Workflows go through the client's own (threaded) connection pool, "
                     "because of the kubeconfig's %s", api.configuration.host, reason)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    # -- plumbing (runs in the pool) --

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        with self._discovery:
            if self._dynamic is None:
                self._dynamic = _dynamic_client(self._api, self._timeout)
            try:
                return self._dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                raise PermanentError(f"the cluster serves no {kind} in {api_version} "
                                     "(is its CustomResourceDefinition installed?)") from None

    def _scoped(self, api_version: str, kind: str, namespace: str | None) -> tuple[Any, str | None]:
        res = self._resource(api_version, kind)
        return res, namespace if res.namespaced else None

    async def _run(self, fn: Callable[[], T]) -> T:
        import urllib3

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except (urllib3.exceptions.HTTPError, OSError) as e:  # timeouts, refused, reset: the API did not answer
            raise TemporaryError(f"Kubernetes API unreachable: {type(e).__name__}: {e}") from None

    # Argo's own kinds, the hot path, skip discovery and the dynamic client: a known URL and a plain
    # dict, sent over aiohttp on the loop (sensors/kubehttp.py) where the configuration allows.
    async def _create_argo(self, argo: tuple[str, str, str, bool], obj: Obj, namespace: str | None) -> Obj:
        if not argo[3]:  # cluster-scoped
            obj = _without_namespace(obj)
        if self._http is not None:
            return await self._http.request("POST", _argo_path(argo, namespace), _json(obj))
        return await self._run(self._custom_object("create", argo, namespace, obj))

    async def _get_argo(self, argo: tuple[str, str, str, bool], name: str, namespace: str | None) -> Obj:
        if self._http is not None:
            return await self._http.request("GET", f"{_argo_path(argo, namespace)}/{quote(name, safe='')}")
        return await self._run(self._custom_object("get", argo, namespace, name))

    def _custom_object(self, verb: str, argo: tuple[str, str, str, bool], namespace: str | None,
                       arg: Any) -> Callable[[], Obj]:
        """The generated CustomObjectsApi call `<verb>_{namespaced|cluster}_custom_object`, for the pool."""
        group, version, plural, namespaced = argo
        if namespaced:
            method = getattr(self._custom, f"{verb}_namespaced_custom_object")
            where: tuple[str, ...] = (group, version, namespace or "default", plural)
        else:
            method = getattr(self._custom, f"{verb}_cluster_custom_object")
            where = (group, version, plural)
        return lambda: dict(method(*where, arg, _request_timeout=self._timeout))

    # -- operations --

    async def create(self, obj: Obj, namespace: str | None) -> Obj:
        from kubernetes.client.exceptions import ApiException

        def call() -> Obj:
            res, ns = self._scoped(obj["apiVersion"], obj["kind"], namespace)
            body = obj if ns is not None else _without_namespace(obj)
            return dict(self._dynamic.create(res, body=body, namespace=ns).to_dict())

        meta = obj.get("metadata") or {}
        what = describe(obj.get("kind", "?"), meta.get("name") or meta.get("generateName", ""), namespace)
        argo = ARGO_RESOURCES.get((obj["apiVersion"], obj["kind"]))
        try:
            return await (self._create_argo(argo, obj, namespace) if argo is not None else self._run(call))
        except ApiException as e:
            if e.status != 409:
                raise classify(e, f"create {what}") from None
        existing = await self.get(obj["apiVersion"], obj["kind"], meta.get("name", ""), namespace)
        if existing is None:  # deleted between our create and our read: the next attempt decides
            raise TemporaryError(f"create {what}: it existed, then vanished")
        raise AlreadyExists(existing)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        def call() -> Obj:
            res, ns = self._scoped(api_version, kind, namespace)
            return dict(self._dynamic.get(res, name=name, namespace=ns).to_dict())

        argo = ARGO_RESOURCES.get((api_version, kind))
        try:
            return await (self._get_argo(argo, name, namespace) if argo is not None else self._run(call))
        except ApiException as e:
            if e.status == 404:
                return None
            raise classify(e, f"get {describe(kind, name, namespace)}") from None

    async def replace(self, obj: Obj, namespace: str | None) -> Obj:
        def call() -> Obj:
            res, ns = self._scoped(obj["apiVersion"], obj["kind"], namespace)
            body = obj if ns is not None else _without_namespace(obj)
            return dict(self._dynamic.replace(res, body=body, namespace=ns).to_dict())

        return await self._write(call, describe(obj["kind"], obj["metadata"]["name"], namespace), "update")

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: Any, *,
                    content_type: str, operation: str = "patch") -> Obj:
        def call() -> Obj:
            res, ns = self._scoped(api_version, kind, namespace)
            # The client serializes a dict or a list to JSON whatever the patch type is.
            patched = self._dynamic.patch(res, body=body, name=name, namespace=ns, content_type=content_type)
            return dict(patched.to_dict())

        return await self._write(call, describe(kind, name, namespace), operation)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        def call() -> bool:
            res, ns = self._scoped(api_version, kind, namespace)
            self._dynamic.delete(res, name=name, namespace=ns)
            return True

        try:
            return await self._write(call, describe(kind, name, namespace), "delete")
        except NotFound:
            return False

    async def _write(self, call: Callable[[], T], what: str, operation: str) -> T:
        from kubernetes.client.exceptions import ApiException

        try:
            return await self._run(call)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(what) from None
            if e.status == 409:  # Conflict: changed since we read it; a fresh read-modify-write will do
                raise TemporaryError(f"{operation} {what}: modified concurrently ({_api_message(e)})") from None
            raise classify(e, f"{operation} {what}") from None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()


def _json(obj: Obj) -> bytes:
    """The request body, as the client would write it (dates and times in isoformat)."""
    try:
        return orjson.dumps(obj, default=_iso, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # an integer beyond 64 bits, or a value JSON has no form for: the standard library decides
        return json.dumps(obj, default=_iso).encode()


def _iso(value: Any) -> str:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _argo_path(argo: tuple[str, str, str, bool], namespace: str | None) -> str:
    group, version, plural, namespaced = argo
    if namespaced:
        return f"/apis/{group}/{version}/namespaces/{quote(namespace or 'default', safe='')}/{plural}"
    return f"/apis/{group}/{version}/{plural}"


def _without_namespace(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("namespace", None)
    return out


def classify(e: Any, what: str) -> PermanentError | TemporaryError:
    status = int(getattr(e, "status", 0) or 0)
    message = f"{what}: Kubernetes API answered {status} {_api_message(e)}".strip()
    if status == 429 or status >= 500 or status == 0:
        return TemporaryError(message)
    return PermanentError(message)


def _api_message(e: Any) -> str:
    """The API server's own explanation (a Status message), else the HTTP reason."""
    try:
        message = json.loads(getattr(e, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or getattr(e, "reason", "") or "")


# --- dry run -------------------------------------------------------------------------------------


class DryRunCluster:
    """See the module docstring: creates are files; other writes are recorded requests."""

    dry_run = True

    def __init__(self, directory: str | Path | None, *, templates: list[Obj] | None = None) -> None:
        """With no directory, nothing can be written: the offline cluster of `validate` and `test`."""
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._templates = templates or []

    def _dir(self) -> Path:
        if self.directory is None:
            raise PermanentError("offline: nothing is created or changed")
        return self.directory

    async def create(self, obj: Obj, namespace: str | None) -> Obj:
        path = self._dir() / f"{obj['metadata']['name']}.yaml"
        staged = _staged(path, yaml_dump.dump(obj))
        try:
            # A hard link appears complete and fails if the name is taken: the existence check and
            # the write are one step, as the API server's create is, and no reader sees half a file.
            os.link(staged, path)
        except FileExistsError:
            raise AlreadyExists(yaml.safe_load(path.read_bytes()) or {}) from None
        finally:
            staged.unlink()
        return obj

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Obj | None:
        for t in self._templates:
            meta = t.get("metadata", {})
            same_ns = namespace is None or (meta.get("namespace") or namespace) == namespace
            if t.get("kind") == kind and meta.get("name") == name and same_ns:
                return t
        path = self.directory / f"{name}.yaml" if self.directory else None
        if path is None or not path.exists():
            return None
        obj = yaml.safe_load(path.read_bytes())
        same = isinstance(obj, dict) and obj.get("kind") == kind and obj.get("apiVersion") == api_version
        return obj if same else None

    async def replace(self, obj: Obj, namespace: str | None) -> Obj:
        name = obj["metadata"]["name"]
        self._record("update", name, obj, f"update {describe(obj['kind'], name, namespace)} (merged over the live one)")
        return obj

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: Any, *,
                    content_type: str, operation: str = "patch") -> Obj:
        self._record(operation, name, body, f"{operation} {describe(kind, name, namespace)} ({api_version}) "
                                            f"with {content_type}")
        return {"apiVersion": api_version, "kind": kind, "metadata": _identity(name, namespace)}

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        ref = {"apiVersion": api_version, "kind": kind, "metadata": _identity(name, namespace)}
        self._record("delete", name, ref, f"delete {describe(kind, name, namespace)}")
        return True

    def _record(self, operation: str, name: str, body: Any, headline: str) -> None:
        path = self._dir() / f"{name}.{operation}.yaml"
        os.replace(_staged(path, f"# {headline}\n" + yaml_dump.dump(body)), path)
        log.info("dry-run: %s written to %s", headline, path)

    async def close(self) -> None:
        return None


def _staged(path: Path, text: str) -> Path:
    """`text` in a temporary file beside `path`, to be moved or linked into place whole."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.{next(_STAGE_IDS)}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        data = memoryview(text.encode())
        while data:  # a regular file takes it in one write; the loop is for the rare short write
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    return staged

_STAGE_IDS = itertools.count()


def _identity(name: str, namespace: str | None) -> Obj:
    return {"name": name, "namespace": namespace} if namespace else {"name": name}
