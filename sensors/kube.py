"""Where created resources go: a Kubernetes API (through the official client) or a dry-run folder.

The `kubernetes` client is synchronous, so every call runs in a small thread pool, never on the
event loop. API errors are sorted into permanent and temporary ones here, once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import yaml

from sensors.triggers import PermanentError, TemporaryError

log = logging.getLogger(__name__)

#: Resources hookgate creates or reads without discovery: (group, version, plural, namespaced).
KNOWN_RESOURCES: dict[tuple[str, str], tuple[str, str, str, bool]] = {
    ("argoproj.io/v1alpha1", "Workflow"): ("argoproj.io", "v1alpha1", "workflows", True),
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): ("argoproj.io", "v1alpha1", "workflowtemplates", True),
    ("argoproj.io/v1alpha1", "ClusterWorkflowTemplate"): ("argoproj.io", "v1alpha1", "clusterworkflowtemplates",
                                                           False),
    ("argoproj.io/v1alpha1", "CronWorkflow"): ("argoproj.io", "v1alpha1", "cronworkflows", True),
}


class AlreadyExists(Exception):
    def __init__(self, existing: dict[str, Any]) -> None:
        self.existing = existing
        super().__init__("already exists")


class Cluster(Protocol):
    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        """Create `obj`; raise AlreadyExists with the stored object when its name is taken."""
        ...

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


def resource_of(obj: dict[str, Any]) -> tuple[str, str, str, bool]:
    key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if key not in KNOWN_RESOURCES:
        raise PermanentError(f"cannot create {key[1]} ({key[0]}): hookgate creates Argo Workflows only "
                             "through the argoWorkflow trigger")
    return KNOWN_RESOURCES[key]


class KubeCluster:
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
        self._custom = client.CustomObjectsApi(api)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._timeout = timeout

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        kwargs["_request_timeout"] = self._timeout
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        group, version, plural, namespaced = resource_of(obj)
        try:
            if namespaced:
                created = await self._call(self._custom.create_namespaced_custom_object,
                                           group, version, namespace, plural, obj)
            else:
                created = await self._call(self._custom.create_cluster_custom_object, group, version, plural, obj)
        except ApiException as e:
            if e.status == 409:
                existing = await self.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                                          namespace if namespaced else None)
                raise AlreadyExists(existing or {}) from None
            raise classify(e, f"create {obj['kind']} {obj['metadata'].get('name')}") from None
        except Exception as e:  # urllib3 / socket errors: the API was not reached or did not answer
            raise TemporaryError(f"Kubernetes API unreachable: {type(e).__name__}: {e}") from None
        return dict(created or obj)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural, namespaced = resource_of({"apiVersion": api_version, "kind": kind})
        try:
            if namespaced:
                return dict(await self._call(self._custom.get_namespaced_custom_object,
                                             group, version, namespace, plural, name))
            return dict(await self._call(self._custom.get_cluster_custom_object, group, version, plural, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise classify(e, f"get {kind} {name}") from None
        except Exception as e:
            raise TemporaryError(f"Kubernetes API unreachable: {type(e).__name__}: {e}") from None

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()


def classify(e: Any, what: str) -> PermanentError | TemporaryError:
    status = int(getattr(e, "status", 0) or 0)
    reason = getattr(e, "reason", "") or ""
    message = f"{what}: Kubernetes API answered {status} {reason}".strip()
    if status == 429 or status >= 500 or status == 0:
        return TemporaryError(message)
    return PermanentError(message)


class DryRunCluster:
    """Writes each object that would be created to `<dir>/<metadata.name>.yaml`, and reads them back."""

    def __init__(self, directory: str | Path | None, *, templates: list[dict[str, Any]] | None = None) -> None:
        """With no directory, nothing can be created: the offline cluster of `validate` and `test`."""
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._templates = templates or []

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        resource_of(obj)
        if self.directory is None:
            raise PermanentError("offline: nothing is created")
        path = self.directory / f"{obj['metadata']['name']}.yaml"
        text = yaml.safe_dump(obj, sort_keys=False)
        try:
            # O_EXCL makes the existence check and the write one step, as the API server's create is.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise AlreadyExists(yaml.safe_load(path.read_text()) or {}) from None
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return obj

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        for t in self._templates:
            meta = t.get("metadata", {})
            same_ns = namespace is None or (meta.get("namespace") or namespace) == namespace
            if t.get("kind") == kind and meta.get("name") == name and same_ns:
                return t
        path = self.directory / f"{name}.yaml" if self.directory else None
        if kind == "Workflow" and path is not None and path.exists():
            return yaml.safe_load(path.read_text())
        return None

    async def close(self) -> None:
        return None
