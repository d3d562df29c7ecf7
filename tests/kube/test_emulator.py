"""
One test per gap of kmock 0.8 closed in emulator.py, driven through the official client.

If kmock or kubernetes is upgraded and one of these fails, the emulator's fix needs revisiting.
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.dynamic import DynamicClient

from .emulator import Handle, run_emulator

ARGO = ('argoproj.io', 'v1alpha1')
NS = 'default'
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kube() -> Iterator[Handle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def client(kube: Handle) -> Iterator[ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def custom(client: ApiClient) -> CustomObjectsApi:
    return CustomObjectsApi(client)


def workflow(name: str | None = None, **metadata: Any) -> dict[str, Any]:
    if name is not None:
        metadata['name'] = name
    return {'apiVersion': 'argoproj.io/v1alpha1', 'kind': 'Workflow', 'metadata': metadata,
            'spec': {'entrypoint': 'main'}}


def create(custom: CustomObjectsApi, body: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    created: dict[str, Any] = custom.create_namespaced_custom_object(*ARGO, namespace, 'workflows', body)
    return created


def get_raw(client: ApiClient, path: str, **query: str) -> tuple[int, bytes]:
    response = client.call_api(*client.param_serialize('GET', path, query_params=list(query.items())))
    response.read()
    return response.status, response.data


def assert_status(error: ApiException, code: int, reason: str) -> None:
    assert error.status == code
    body = json.loads(error.body)
    assert (body['kind'], body['status'], body['reason'], body['code']) == ('Status', 'Failure', reason, code)


def test_generate_name(custom: CustomObjectsApi) -> None:
    first = create(custom, workflow(generateName='wf-'))
    second = create(custom, workflow(generateName='wf-'))
    names = {first['metadata']['name'], second['metadata']['name']}
    assert len(names) == 2
    assert all(re.fullmatch(r'wf-[bcdfghjklmnpqrstvwxz2456789]{5}', name) for name in names)


def test_create_answers_201_with_the_object(custom: CustomObjectsApi) -> None:
    _, status, _ = custom.create_namespaced_custom_object_with_http_info(
        *ARGO, NS, 'workflows', workflow('a'))
    created = create(custom, workflow('b'))
    assert status == 201
    assert created['metadata']['name'] == 'b' and created['metadata']['namespace'] == NS
    assert created['spec'] == {'entrypoint': 'main'}


def test_server_sets_uid_resource_version_and_timestamp(custom: CustomObjectsApi) -> None:
    created = create(custom, workflow('a'))
    meta = created['metadata']
    uuid.UUID(meta['uid'])
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', meta['creationTimestamp'])
    datetime.fromisoformat(meta['creationTimestamp'])
    patched = custom.patch_namespaced_custom_object(*ARGO, NS, 'workflows', 'a', {'spec': {'x': 1}})
    listed = custom.list_namespaced_custom_object(*ARGO, NS, 'workflows')
    assert int(patched['metadata']['resourceVersion']) > int(meta['resourceVersion'])
    assert patched['metadata']['uid'] == meta['uid']
    assert patched['metadata']['creationTimestamp'] == meta['creationTimestamp']
    assert int(listed['metadata']['resourceVersion']) >= int(patched['metadata']['resourceVersion'])


def test_create_without_name_or_generate_name_is_invalid(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as error:
        create(custom, workflow())
    assert_status(error.value, 422, 'Invalid')


def test_undeclared_resource_is_not_found(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as error:
        custom.create_namespaced_custom_object('example.com', 'v1', NS, 'widgets', {'metadata': {'name': 'w'}})
    assert_status(error.value, 404, 'NotFound')
    with pytest.raises(ApiException) as error:
        custom.list_namespaced_custom_object('example.com', 'v1', NS, 'widgets')
    assert_status(error.value, 404, 'NotFound')
    with pytest.raises(ApiException) as error:
        custom.get_namespaced_custom_object(*ARGO, NS, 'workflows', 'missing')
    assert_status(error.value, 404, 'NotFound')


def test_namespace_mismatch_is_bad_request(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as error:
        create(custom, workflow('a', namespace='other'))
    assert_status(error.value, 400, 'BadRequest')


def test_duplicate_create_already_exists(custom: CustomObjectsApi) -> None:
    create(custom, workflow('a'))
    with pytest.raises(ApiException) as error:
        create(custom, workflow('a'))
    assert_status(error.value, 409, 'AlreadyExists')


def test_list_label_selectors(custom: CustomObjectsApi) -> None:
    create(custom, workflow('ab', labels={'a': '1', 'b': '1'}))
    create(custom, workflow('a2', labels={'a': '2'}))
    create(custom, workflow('none'))

    def names(selector: str) -> set[str]:
        listed = custom.list_namespaced_custom_object(*ARGO, NS, 'workflows', label_selector=selector)
        return {item['metadata']['name'] for item in listed['items']}

    assert names('a=1') == names('a==1') == {'ab'}
    assert names('a!=1') == {'a2', 'none'}
    assert names('a') == {'ab', 'a2'}
    assert names('!a') == {'none'}
    assert names('a,b') == names('a=1,b=1') == {'ab'}
    assert names('a in (1,2)') == {'ab', 'a2'}
    assert names('a notin (1)') == {'a2', 'none'}
    assert names('') == {'ab', 'a2', 'none'}


def test_watch_replays_streams_filters_and_times_out(custom: CustomObjectsApi) -> None:
    create(custom, workflow('before', labels={'app': 'x'}))
    since = custom.list_namespaced_custom_object(*ARGO, NS, 'workflows')['metadata']['resourceVersion']
    create(custom, {'metadata': {'name': 'replayed', 'labels': {'app': 'x'}}})  # no namespace in the body
    create(custom, workflow('filtered-out', labels={'app': 'y'}))
    create(custom, workflow('elsewhere', labels={'app': 'x'}), namespace='other')

    seen: list[tuple[str, str]] = []
    started = time.monotonic()
    for event in kubernetes.watch.Watch().stream(
        custom.list_namespaced_custom_object, *ARGO, NS, 'workflows',
        label_selector='app=x', resource_version=since, timeout_seconds=1,
    ):
        seen.append((event['type'], event['object']['metadata']['name']))
        if event['object']['metadata']['name'] == 'replayed':  # a live change while watching
            custom.patch_namespaced_custom_object(*ARGO, NS, 'workflows', 'replayed', {'spec': {'x': 1}})
    assert seen == [('ADDED', 'replayed'), ('MODIFIED', 'replayed')]
    assert 1 <= time.monotonic() - started < 10  # ended by the server-side timeoutSeconds


@pytest.mark.parametrize('spelling', ['true', 'True'])
def test_watch_param_spellings(custom: CustomObjectsApi, client: ApiClient, spelling: str) -> None:
    create(custom, workflow('a'))
    status, data = get_raw(client, f'/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows',
                           watch=spelling, timeoutSeconds='1')
    events = [json.loads(line) for line in data.splitlines()]
    assert status == 200
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [('ADDED', 'a')]


def test_replace_bumps_resource_version_and_rejects_stale(custom: CustomObjectsApi) -> None:
    created = create(custom, workflow('a'))
    body = dict(created, spec={'entrypoint': 'other'})
    replaced = custom.replace_namespaced_custom_object(*ARGO, NS, 'workflows', 'a', body)
    assert replaced['spec'] == {'entrypoint': 'other'}
    assert int(replaced['metadata']['resourceVersion']) > int(created['metadata']['resourceVersion'])
    with pytest.raises(ApiException) as error:  # still carries the old resourceVersion
        custom.replace_namespaced_custom_object(*ARGO, NS, 'workflows', 'a', body)
    assert_status(error.value, 409, 'Conflict')


def test_discovery_with_trailing_slash(client: ApiClient, tmp_path: Path) -> None:
    for path in ('/apis/', '/version/', '/api/', '/api/v1/', '/apis/argoproj.io/v1alpha1/'):
        status, _ = get_raw(client, path)
        assert status == 200, path
    assert CoreV1Api(client).get_api_resources().group_version == 'v1'
    dynamic = DynamicClient(client, cache_file=str(tmp_path / 'discovery.json'))
    templates = dynamic.resources.get(api_version='argoproj.io/v1alpha1', kind='ClusterWorkflowTemplate')
    assert not templates.namespaced
    templates.create(body={'apiVersion': 'argoproj.io/v1alpha1', 'kind': 'ClusterWorkflowTemplate',
                           'metadata': {'name': 't'}})
    assert [item.metadata.name for item in templates.get().items] == ['t']


def test_merge_and_json_patch(custom: CustomObjectsApi) -> None:
    create(custom, workflow('a', labels={'keep': '1', 'drop': '1'}))
    merged = custom.patch_namespaced_custom_object(
        *ARGO, NS, 'workflows', 'a', {'metadata': {'labels': {'drop': None}}, 'spec': {'x': [1]}})
    assert merged['metadata']['labels'] == {'keep': '1'}
    assert merged['spec'] == {'entrypoint': 'main', 'x': [1]}
    patched = custom.patch_namespaced_custom_object(
        *ARGO, NS, 'workflows', 'a',
        [{'op': 'test', 'path': '/spec/x/0', 'value': 1}, {'op': 'add', 'path': '/spec/x/-', 'value': 2},
         {'op': 'remove', 'path': '/spec/entrypoint'}],
        _content_type='application/json-patch+json')
    assert patched['spec'] == {'x': [1, 2]}
    with pytest.raises(ApiException) as error:
        custom.patch_namespaced_custom_object(
            *ARGO, NS, 'workflows', 'a', [{'op': 'test', 'path': '/spec/x/0', 'value': 9}],
            _content_type='application/json-patch+json')
    assert_status(error.value, 422, 'Invalid')


def test_core_and_apps_resources(client: ApiClient, kube: Handle) -> None:
    core = CoreV1Api(client)
    core.create_namespaced_secret(NS, {'metadata': {'name': 's'}, 'stringData': {'k': 'v'}})
    core.create_namespaced_config_map(NS, {'metadata': {'name': 'c'}, 'data': {'k': 'v'}})
    AppsV1Api(client).create_namespaced_deployment(NS, {'metadata': {'name': 'd'}, 'spec': {
        'selector': {'matchLabels': {'app': 'd'}},
        'template': {'metadata': {'labels': {'app': 'd'}}, 'spec': {'containers': []}}}})
    assert core.read_namespaced_secret('s', NS).metadata.uid
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ['c']
    assert [d['metadata']['name'] for d in kube.objects('apps', 'v1', 'deployments', NS)] == ['d']
    assert core.delete_namespaced_secret('s', NS)['status'] == 'Success'
    assert kube.objects('', 'v1', 'secrets') == []


def test_preload_and_kubeconfig(tmp_path: Path) -> None:
    template = {'apiVersion': 'argoproj.io/v1alpha1', 'kind': 'WorkflowTemplate',
                'metadata': {'name': 't', 'namespace': 'argo'}, 'spec': {}}
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 's'}, 'data': {}}
    with run_emulator(preload=[template, secret]) as kube:
        assert [t['metadata']['name'] for t in kube.objects(*ARGO, 'workflowtemplates', 'argo')] == ['t']
        api_client = kubernetes.config.new_client_from_config(str(kube.write_kubeconfig(tmp_path / 'kubeconfig')))
        with api_client:
            secrets = CoreV1Api(api_client).list_namespaced_secret('default').items
        assert [s.metadata.name for s in secrets] == ['s']


def test_shutdown_joins_thread_and_releases_port() -> None:
    before = set(threading.enumerate())
    with run_emulator() as kube, kube.api_client() as api_client:
        port = int(kube.url.rsplit(':', 1)[1])
        # A watch without timeout is open (headers received) when the emulator stops...
        watch = api_client.call_api(*api_client.param_serialize(
            'GET', '/api/v1/secrets', query_params=[('watch', 'true')]))
        assert watch.status == 200
    watch.read()  # ...and is ended by the shutdown rather than holding it up
    assert set(threading.enumerate()) == before
    with socket.socket() as sock:  # nothing listens there any more (TIME_WAIT is fine, as for servers)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', port))
        sock.listen()


def test_serve_script(tmp_path: Path) -> None:
    preload = tmp_path / 'preload.yaml'
    preload.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n')
    kubeconfig = tmp_path / 'kubeconfig'
    command = [sys.executable, '-m', 'tests.kube.serve', '--port', '0', '--kubeconfig', str(kubeconfig),
               '--preload', str(preload)]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # blocks until ready; the pytest timeout bounds it
            assert line.startswith('ready http://127.0.0.1:')
            with kubernetes.config.new_client_from_config(str(kubeconfig)) as api_client:
                configmaps = CoreV1Api(api_client).list_namespaced_config_map(NS).items
            assert [c.metadata.name for c in configmaps] == ['c']
            process.terminate()
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()  # no-op once it has exited


def test_injected_faults(kube: Handle, custom: CustomObjectsApi) -> None:
    # Not a kmock gap: the fault-injection tool of the fault suite (tests/faults), armed while serving.
    failing = kube.inject(method='POST', plural='workflows', status=500, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            create(custom, workflow('a'))
        assert_status(e.value, 500, 'InternalError')
    assert (failing.hits, failing.remaining) == (2, 0)
    assert kube.objects(*ARGO, 'workflows', NS) == []  # a failed create stores nothing
    create(custom, workflow('a'))  # used up: served again
    late = kube.inject(method='post', plural='workflows', stall=0.5)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - urllib3's ReadTimeoutError, whatever wraps it
        custom.create_namespaced_custom_object(*ARGO, NS, 'workflows', workflow('b'), _request_timeout=0.1)
    assert time.monotonic() - started < 0.45
    assert late.hits == 1
    # The stalled create was stored all the same: the client that timed out meets it as a conflict.
    with pytest.raises(ApiException) as e:
        create(custom, workflow('b'))
    assert_status(e.value, 409, 'AlreadyExists')
    other = kube.inject(method='GET', plural='workflowtemplates', status=503)
    assert custom.get_namespaced_custom_object(*ARGO, NS, 'workflows', 'a')['metadata']['name'] == 'a'
    assert other.remaining == 1  # only the matching method and resource consume a fault
    with pytest.raises(ValueError):
        kube.inject(status=500, stall=1.0)
