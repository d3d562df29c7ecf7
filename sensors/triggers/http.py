"""The `http` trigger: one HTTP request per firing, with aiohttp (one ClientSession per action).

As Argo (`pkg/sensors/triggers/http/http.go`): `method` (default POST), `url`, body from `payload`
(`construct_payload`; no payload → empty body), `headers`, then `secureHeaders`, then `basicAuth`
(which sets Authorization), `timeout` in seconds (<= 0 → 60). The template's own `parameters`
rewrite `url`, `method`, `headers` or `timeout` per event (a dest elsewhere is refused at load).
Secret values (`secureHeaders[].valueFrom.secretKeyRef`, `basicAuth`) are resolved once at load
through the Secret lookup and never logged or rendered; an `optional` selector that does not
resolve leaves its header out. `configMapKeyRef` is refused at load.

Deliberate differences, each louder or more useful than the original:
* Without `policy.status.allow`, Argo counts every answer as success. Here 5xx, 408 and 429 are
  TemporaryErrors (retried) and other 4xx PermanentErrors. With an allow list, a status outside
  it is an error, temporary or permanent by the same rule.
* Connection errors and timeouts are TemporaryErrors.
* A non-empty body that is JSON is sent with `Content-Type: application/json` unless `headers`
  set one (Go sends none); any other body is sent without a Content-Type.
* A URL with user info is shown without it in logs, errors and `render`; with basicAuth set, the
  user info is not sent (Go lets the Authorization header win too).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from pydantic import ValidationError

from gateway.envelope import CloudEvent
from gateway.errors import HookgateError
from gateway.models import SecretKeySelector
from sensors import params
from sensors.models import HTTPTrigger, StatusPolicy
from sensors.triggers import Outcome, PermanentError, TemporaryError, TriggerError
from sensors.triggers.errors import TriggerCompileError

log = logging.getLogger(__name__)

SecretLookup = Callable[[str, SecretKeySelector], str]
DEFAULT_TIMEOUT = 60
REWRITABLE = ("url", "method", "headers", "timeout")
RESPONSE_SNIPPET = 300  # bytes of an error response quoted in the error message
TEMPORARY_STATUSES = frozenset({408, 429})
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SecretHeader:
    name: str
    selector: SecretKeySelector
    value: str | None  # None: no Secret lookup was given (validate / test)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    timeout: int


class HttpAction:
    kind = "http"

    def __init__(self, spec: HTTPTrigger, *, namespace: str, trigger: str, status: StatusPolicy | None = None,
                 secret: SecretLookup | None = None) -> None:
        check_url(spec.url, ("url",))
        self.spec = spec
        self.trigger = trigger
        self.payload = _compile(spec.payload, "payload", require_dest=False)
        self.parameters = _compile(spec.parameters, "parameters", require_dest=True)
        _check_rewrites(self.parameters)
        self.secure = secure_headers(spec, namespace, secret)
        self.auth = basic_auth(spec, lambda part, sel, where: _lookup(part, sel, namespace, secret, where))
        self.allow = frozenset(status.allow) if status is not None and status.allow else frozenset()
        self._session: aiohttp.ClientSession | None = None

    # --- the request ---------------------------------------------------------------------------

    def _resolved_spec(self, events: Mapping[str, CloudEvent]) -> HTTPTrigger:
        """The template's own parameters applied to its JSON, as Argo's ApplyResourceParameters."""
        if not self.parameters:
            return self.spec
        doc = params.apply_parameters(self.spec.model_dump(mode="json", exclude_none=True), self.parameters, events)
        try:
            spec = HTTPTrigger.model_validate(doc)
            check_url(spec.url, ("url",))
        except ValidationError as e:
            raise PermanentError(f"the http trigger's parameters made it invalid: {e}") from None
        except TriggerCompileError as e:
            raise PermanentError(f"the http trigger's parameters made its url invalid: {e.message}") from None
        return spec

    def request(self, events: Mapping[str, CloudEvent], *, reveal: bool = True) -> Request:
        """The request for these events; with `reveal=False` secret values are replaced by their source."""
        try:
            spec = self._resolved_spec(events)
            body = params.construct_payload(self.payload, events) if self.payload else b""
        except params.ParamError as e:
            raise PermanentError(str(e)) from None
        headers = dict(spec.headers)
        for header in self.secure:
            headers[header.name] = _secret_text(header, reveal)
        self._basic_auth(headers, reveal)
        if body and not any(k.lower() == "content-type" for k in headers) and _is_json(body):
            headers["Content-Type"] = "application/json"
        return Request(spec.method, spec.url, headers, body, spec.timeout if spec.timeout > 0 else DEFAULT_TIMEOUT)

    def _basic_auth(self, headers: dict[str, str], reveal: bool) -> None:
        if not self.auth:
            return
        if not reveal:
            headers["Authorization"] = "Basic <" + ", ".join(_source(h.selector) for h in self.auth) + ">"
            return
        values = {h.name: _secret_text(h, True) for h in self.auth}
        pair = f"{values.get('username', '')}:{values.get('password', '')}"  # Go's SetBasicAuth
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def render(self, events: Mapping[str, CloudEvent]) -> dict[str, Any]:
        req = self.request(events, reveal=False)
        return {"method": req.method, "url": safe_url(req.url), "headers": req.headers, "body": _shown(req.body),
                "timeout": req.timeout}

    # --- sending it ----------------------------------------------------------------------------

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome:
        req = self.request(events)
        target = f"{req.method} {safe_url(req.url)}"
        status, snippet = await self._send(req, target)
        error = judge(status, self.allow, f"{target} answered {status}", snippet)
        if error is not None:
            raise error
        log.info("http trigger %s: %s answered %d", self.trigger, target, status)
        return Outcome(name=f"{target} → {status}", created=True, resource={"status": status})

    async def _send(self, req: Request, target: str) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        names = {k.lower() for k in req.headers}
        skip = () if "content-type" in names else ("Content-Type",)
        # Go uses a URL's user info only when no Authorization header is set; aiohttp refuses both.
        url = safe_url(req.url) if "authorization" in names else req.url
        try:
            async with self._session.request(req.method, url, data=req.body, headers=req.headers,
                                             skip_auto_headers=skip,
                                             timeout=aiohttp.ClientTimeout(total=req.timeout)) as resp:
                return resp.status, await resp.content.read(RESPONSE_SNIPPET)
        except TimeoutError:
            raise TemporaryError(f"{target}: no answer within {req.timeout}s") from None
        except aiohttp.InvalidURL:
            raise PermanentError(f"{target}: not a valid URL") from None
        except aiohttp.ClientError as e:  # refused, reset, DNS, TLS: the request did not get an answer
            raise TemporaryError(f"{target}: {type(e).__name__}: {e}") from None
        except ValueError as e:  # a header value with a newline, or the like: this request cannot be sent
            raise PermanentError(f"{target}: cannot send: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def judge(status: int, allow: frozenset[int], what: str, snippet: bytes) -> TriggerError | None:
    """None for success; else the error, temporary for 5xx / 408 / 429 (see the module docstring)."""
    if allow:
        if status in allow:
            return None
        what += f", which policy.status.allow ({', '.join(map(str, sorted(allow)))}) does not list"
    elif status < 400:
        return None
    if snippet:
        what += f": {snippet.decode(errors='replace').strip()}"
    return TemporaryError(what) if status >= 500 or status in TEMPORARY_STATUSES else PermanentError(what)


# --- load-time checks and secrets ------------------------------------------------------------------


def check_url(url: str, path: Path) -> None:
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as e:
        raise TriggerCompileError(path, f"not a URL: {e}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TriggerCompileError(path, f"needs an http:// or https:// URL with a host, got {safe_url(url)!r}")


def safe_url(url: str) -> str:
    try:
        return str(yarl.URL(url).with_user(None))
    except (ValueError, TypeError):
        return url


def _compile(parameters: Any, where: str, *, require_dest: bool) -> tuple[params.CompiledParameter, ...]:
    try:
        return params.compile_parameters(parameters, where=where, require_dest=require_dest)
    except params.ParamError as e:
        raise TriggerCompileError((where,), str(e)) from None


def _check_rewrites(parameters: tuple[params.CompiledParameter, ...]) -> None:
    for i, p in enumerate(parameters):
        if p.spec.dest.split(".", 1)[0] not in REWRITABLE:
            raise TriggerCompileError(("parameters", i, "dest"), f"{p.spec.dest!r}: the http trigger's parameters "
                                      f"may rewrite only {', '.join(REWRITABLE)}")


def secure_headers(spec: HTTPTrigger, namespace: str, secret: SecretLookup | None) -> list[SecretHeader]:
    out = []
    for i, header in enumerate(spec.secureHeaders):
        where: Path = ("secureHeaders", i, "valueFrom")
        unknown = sorted(set(header.valueFrom) - {"secretKeyRef"})
        if unknown:
            raise TriggerCompileError((*where, unknown[0]), "only secretKeyRef is supported (give the value "
                                                            "in a Secret)")
        if "secretKeyRef" not in header.valueFrom:
            raise TriggerCompileError(where, "needs secretKeyRef")
        resolved = _lookup(header.name, header.valueFrom["secretKeyRef"], namespace, secret, (*where, "secretKeyRef"))
        if resolved is not None:
            out.append(resolved)
    return out


def basic_auth(spec: HTTPTrigger, resolve: Callable[[str, SecretKeySelector, Path], SecretHeader | None]
               ) -> list[SecretHeader]:
    if spec.basicAuth is None:
        return []
    parts = (("username", spec.basicAuth.username), ("password", spec.basicAuth.password))
    return [h for part, sel in parts if sel is not None
            and (h := resolve(part, sel, ("basicAuth", part))) is not None]


def _lookup(name: str, selector: SecretKeySelector, namespace: str, secret: SecretLookup | None,
            where: Path) -> SecretHeader | None:
    if secret is None:
        return SecretHeader(name, selector, None)
    try:
        return SecretHeader(name, selector, secret(namespace, selector))
    except Exception as e:  # not found, or the cluster could not be asked: either way no value to send
        if selector.optional:
            return None
        reason = e.message if isinstance(e, HookgateError) and hasattr(e, "message") else f"{type(e).__name__}: {e}"
        raise TriggerCompileError(where, f"cannot read {_source(selector)}: {reason}") from None


def _secret_text(header: SecretHeader, reveal: bool) -> str:
    if not reveal:
        return f"<{_source(header.selector)}>"
    if header.value is None:
        raise PermanentError(f"the value of {header.name} comes from {_source(header.selector)}, "
                             "and no Secret lookup was configured")
    return header.value


def _source(selector: SecretKeySelector) -> str:
    return f"Secret {selector.name} key {selector.key}"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _shown(body: bytes) -> Any:
    """The body for `hookgate test`: parsed when it is JSON, else its text."""
    return json.loads(body) if body and _is_json(body) else body.decode(errors="replace")
