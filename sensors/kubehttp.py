"""Argo's kinds on the hot path: created and read over aiohttp, on the event loop.

A fired argoWorkflow trigger is one POST. Through the official client's urllib3 pool that POST ran in
a worker thread, and the threads and the event loop took turns on one GIL: at 500 events/s the
sensor spent 1.5 ms of CPU per event, and the webhook → Workflow p99 was 20-31 ms, mostly
waiting (bench/e2e.py, see git log). The same POST on the loop costs 0.29 ms against 0.71 ms.

Everything else about the request is the official client's, read from its configuration
(kubeconfig or in-cluster): the host, the TLS settings (verify_ssl, the CA file or data, the
client certificate and key), its default headers (User-Agent), its cookie and its bearer token.
The token is read through the client's refresh hook (exec plugins, the in-cluster token file),
which may block: it runs in the caller's thread pool, at most every SETTINGS_TTL seconds, and again
at once when the API server answers 401. That read also looks at the CA and certificate files and
rebuilds the TLS context when one changed, as urllib3 reads them for each new connection. At most
`connections` requests are sent at once; a request's timeout starts when it is sent, not while it
waits its turn, as in the thread pool. A configuration this module could not reproduce exactly (a
proxy, assert_hostname, tls_server_name, socket options) is `unsupported()`: KubeCluster then sends
these requests through the client in its threads, as it does for every other kind. One difference
is kept: urllib3 retries a failed connection up to three times at once; here it is a
TemporaryError, retried by the trigger's retryStrategy or a later redelivery.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from gateway.errors import HookgateError
from sensors.triggers import PermanentError, TemporaryError

#: How long the credentials and TLS files read through the client are reused. client-go keeps the
#: in-cluster token file's contents for a minute; a token that expires sooner is read again on a 401.
SETTINGS_TTL = 10.0

Headers = dict[str, str]


def unsupported(api: Any) -> str | None:
    """Why `api` (a kubernetes ApiClient) needs its own urllib3 pool; None when this module will do."""
    import urllib3

    conf = api.configuration
    if type(api.rest_client.pool_manager) is not urllib3.PoolManager:
        return "a proxy"
    for name in ("assert_hostname", "tls_server_name", "socket_options"):
        if getattr(conf, name, None) is not None:
            return name
    if getattr(conf, "keep_alive", False):
        return "keep_alive"
    if not str(conf.host).startswith(("http://", "https://")):
        return f"the host {conf.host!r}"
    return None


def ssl_context(conf: Any) -> ssl.SSLContext | None:
    """The TLS settings urllib3 builds from the client's configuration; None for plain HTTP. Blocking."""
    if not str(conf.host).startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=conf.ssl_ca_cert or None,
                                         cadata=getattr(conf, "ca_cert_data", None))
    context.hostname_checks_common_name = False  # as urllib3: the name must be in subjectAltName
    if not conf.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conf.cert_file:
        context.load_cert_chain(conf.cert_file, conf.key_file or None)
    return context


def credentials(api: Any) -> Headers:
    """The headers the generated API methods authenticate with. Blocking: the refresh hook may run."""
    headers: Headers = {}
    if api.cookie:
        headers["Cookie"] = api.cookie
    # The generated methods authenticate with "BearerToken"; reading it runs the configuration's
    # refresh hook, as the client does, so rotated tokens are picked up.
    auth = api.configuration.auth_settings().get("BearerToken")
    if auth and auth.get("value"):
        if auth.get("in") != "header":
            raise PermanentError(f"unsupported Kubernetes credentials: a token in the {auth.get('in')}")
        headers[auth["key"]] = auth["value"]
    return headers


class TlsFiles:
    """`ssl_context(conf)`, built again when the CA or certificate files it was read from change."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf
        self._stamp: tuple[Any, ...] = ()
        self.context: ssl.SSLContext | None = None
        try:
            self.refresh()
        except (OSError, ssl.SSLError) as e:
            raise HookgateError(f"cannot load the Kubernetes API's TLS settings: {e}") from None

    def refresh(self) -> None:
        """Blocking: stats the files, and reads them when they changed (a rotated in-cluster CA)."""
        conf = self._conf
        stamp = tuple(_identity(path) for path in (conf.ssl_ca_cert, conf.cert_file, conf.key_file))
        if stamp != self._stamp:
            self.context = ssl_context(conf)
            self._stamp = stamp


def _identity(path: str | None) -> tuple[int, int, int] | None:
    if not path:
        return None
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class ApiHttp:
    """JSON requests to the API server over one aiohttp session (created on first use, on the loop)."""

    def __init__(self, api: Any, *, timeout: float, connections: int,
                 blocking: Callable[[Callable[[], Headers]], Awaitable[Headers]]) -> None:
        conf = api.configuration
        self._api = api
        self._base = str(conf.host).rstrip("/")
        self._tls = TlsFiles(conf)
        self._fixed = {**api.default_headers, "Accept": "application/json", "Content-Type": "application/json"}
        self._refreshes = conf.refresh_api_key_hook is not None
        self._timeout = timeout
        self._connections = connections
        self._slots = asyncio.Semaphore(connections)
        self._blocking = blocking
        self._session: aiohttp.ClientSession | None = None
        self._headers: Headers | None = None  # the fixed ones and the credentials, as last read
        self._headers_until = 0.0
        self._reading: asyncio.Future[Headers] | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """The decoded JSON answer. A non-2xx answer is raised as the client's own ApiException, so that
        the caller sorts it as it sorts the client's; no answer at all is a TemporaryError."""
        from kubernetes.client.exceptions import ApiException

        status, reason, data = await self._exchange(method, path, body)
        if status == 401 and self._refreshes:  # the token expired since it was read: read it again, once
            self._headers = None
            status, reason, data = await self._exchange(method, path, body)
        if not 200 <= status <= 299:
            error = ApiException(status=status, reason=reason)
            error.body = data.decode("utf-8", "replace")
            raise error
        return dict(orjson.loads(data))

    async def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, str, bytes]:
        headers = await self._settings()
        async with self._slots:
            if self._session is None:
                connector = aiohttp.TCPConnector(limit=self._connections)
                self._session = aiohttp.ClientSession(connector=connector,
                                                      timeout=aiohttp.ClientTimeout(total=self._timeout))
            try:
                async with self._session.request(method, self._base + path, data=body, ssl=self._tls.context or True,
                                                 headers=headers) as answer:
                    return answer.status, answer.reason or "", await answer.read()
            except TimeoutError:
                raise TemporaryError(f"Kubernetes API unreachable: no answer within {self._timeout:g} s") from None
            except (aiohttp.ClientError, OSError) as e:  # refused, reset, TLS refused: no answer
                raise TemporaryError(f"Kubernetes API unreachable: {type(e).__name__}: {e}") from None

    async def _settings(self) -> Headers:
        """The request headers, credentials read again (with the TLS files) once SETTINGS_TTL old."""
        if self._headers is not None and time.monotonic() < self._headers_until:
            return self._headers
        reading = self._reading
        if reading is None:  # one read for every request waiting on it
            reading = self._reading = asyncio.ensure_future(self._blocking(self._read_settings))
            reading.add_done_callback(self._settings_read)
        return await asyncio.shield(reading)

    def _read_settings(self) -> Headers:
        headers = {**self._fixed, **credentials(self._api)}  # first: the hook may change the certificate files
        self._tls.refresh()
        return headers

    def _settings_read(self, reading: asyncio.Future[Headers]) -> None:
        # Here rather than in a waiter: with every waiter cancelled, a failed read must not be
        # handed to the next request, nor a good one lost.
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled() and reading.exception() is None:
            self._headers, self._headers_until = reading.result(), time.monotonic() + SETTINGS_TTL

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
