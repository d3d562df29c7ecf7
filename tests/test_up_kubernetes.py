"""`hookgate up --kubeconfig` against a real HTTP Kubernetes API (the emulator), official client inside."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, fixture_bytes, free_port, github_signature, wait_for
from tests.kube.emulator import Handle, run_emulator
from tests.test_up_dry_run import gitlab_headers, merge_request, post


def documents(*paths: Path) -> list[dict[str, Any]]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def workflows(kube: Handle) -> list[dict[str, Any]]:
    return kube.objects("argoproj.io", "v1alpha1", "workflows", "default")


@pytest.fixture
def kube() -> Iterator[Handle]:
    templates = documents(EXAMPLES / "gitlab" / "workflowtemplates.yaml", EXAMPLES / "github" / "workflowtemplate.yaml")
    with run_emulator(templates) as handle:
        yield handle


def up(tmp_path: Path, hookgate_process: Any, kube: Handle, manifests: list[Path]) -> Any:
    files = [arg for m in manifests for arg in ("-f", str(m))]
    proc = hookgate_process(["up", *files, "--kubeconfig", str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                             "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1"], cwd=tmp_path)
    proc.wait_line("ready")
    return proc


def on_port(tmp_path: Path, source: Path, old: str, port: int) -> Path:
    copy = tmp_path / f"{source.parent.name}-{source.name}"
    copy.write_text(source.read_text().replace(f'"{old}"', f'"{port}"'))
    return copy


def test_gitlab_merge_request_creates_the_workflow_in_the_cluster(tmp_path: Path, hookgate_process: Any,
                                                                  kube: Handle) -> None:
    port = free_port()
    es = on_port(tmp_path, EXAMPLES / "gitlab" / "eventsource.yaml", "12000", port)
    up(tmp_path, hookgate_process, kube, [es, EXAMPLES / "gitlab" / "sensor-merge-request.yaml",
                                          EXAMPLES / "gitlab" / "secret.yaml"])
    key = str(uuid.uuid4())
    assert post(f"http://127.0.0.1:{port}/push", merge_request("opened", iid=5, branch="fix"),
                gitlab_headers(key=key)) == 200
    [wf] = wait_for(lambda: workflows(kube), what="a Workflow in the cluster")
    assert wf["metadata"]["name"].startswith("default-") and len(wf["metadata"]["name"]) == len("default-") + 16
    assert wf["metadata"]["uid"]  # stored by the API server, not echoed back by us
    assert wf["metadata"]["labels"]["events.argoproj.io/sensor"] == "default"
    assert wf["metadata"]["annotations"]["events.hookgate.dev/event-ids"] == f"pr={key}"
    assert wf["spec"]["workflowTemplateRef"] == {"name": "default"}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "branch", "value": "fix"},
                                                     {"name": "pr", "value": "5"}]


def test_github_push_fixture_signed_creates_the_workflow(tmp_path: Path, hookgate_process: Any, kube: Handle) -> None:
    port = free_port()
    es = on_port(tmp_path, EXAMPLES / "github" / "eventsource.yaml", "13000", port)
    up(tmp_path, hookgate_process, kube, [es, EXAMPLES / "github" / "sensor.yaml", EXAMPLES / "github" / "secret.yaml"])
    doc = json.loads(fixture_bytes("github", "push.1.json"))
    doc["ref"] = "refs/heads/main"
    body = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
               "X-Hub-Signature-256": github_signature("github-demo-secret", body)}
    assert post(f"http://127.0.0.1:{port}/github", body, headers) == 200
    [wf] = wait_for(lambda: workflows(kube), what="a Workflow in the cluster")
    assert wf["metadata"]["name"].startswith("github-ci-")
    assert wf["metadata"]["labels"]["events.argoproj.io/trigger"] == "push-ci"
    assert wf["spec"]["arguments"]["parameters"] == [
        {"name": "repo", "value": doc["repository"]["full_name"]}, {"name": "revision", "value": doc["after"]}]


def test_missing_template_creates_nothing_and_is_reported(tmp_path: Path, hookgate_process: Any) -> None:
    port = free_port()
    es = on_port(tmp_path, EXAMPLES / "gitlab" / "eventsource.yaml", "12000", port)
    with run_emulator() as empty:  # no WorkflowTemplates at all
        proc = up(tmp_path, hookgate_process, empty, [es, EXAMPLES / "gitlab" / "sensor-merge-request.yaml",
                                                       EXAMPLES / "gitlab" / "secret.yaml"])
        assert post(f"http://127.0.0.1:{port}/push", merge_request("opened", iid=6, branch="b"),
                    gitlab_headers()) == 200
        wait_for(lambda: any("WorkflowTemplate 'default' not found" in line for line in proc.stderr),
                 what="the error in the log")
        metrics = wait_for(lambda: _metric(port, 'hookgate_triggers_failed_total{reason="permanent",sensor="default"'),
                           what="the failure in /metrics")
        assert metrics.rstrip().endswith("1.0")
        assert workflows(empty) == []


def _metric(port: int, prefix: str) -> str | None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return next((line for line in text.splitlines() if line.startswith(prefix)), None)
