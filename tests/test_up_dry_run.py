"""`hookgate up` as a user runs it: seed manifests, embedded NATS, real signed GitLab deliveries, dry-run."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, SEED, fixture_bytes, free_port, wait_for

TOKEN = "gitlab-demo-secret"  # examples/gitlab/secret.yaml


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def merge_request(state: str, *, iid: int, branch: str) -> bytes:
    doc = json.loads(fixture_bytes("gitlab", "merge_request.open.json"))
    doc["object_attributes"].update(state=state, iid=iid, source_branch=branch)
    return json.dumps(doc).encode()


def gitlab_headers(token: str = TOKEN, *, key: str | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": token,
            "Idempotency-Key": key or str(uuid.uuid4())}


def workflows(out: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]


@pytest.fixture
def seed_up(tmp_path: Path, hookgate_process: Any) -> tuple[str, Path, Any]:
    if not SEED.exists():
        pytest.skip("the shared seed manifests are not beside the repository")
    port = free_port()
    seed = tmp_path / "seed"
    seed.mkdir()
    # Same manifests, on a free port so that tests can run side by side.
    for f in SEED.glob("*.yaml"):
        (seed / f.name).write_text(f.read_text().replace('"12000"', f'"{port}"'))
    out = tmp_path / "out"
    proc = hookgate_process(
        ["up", "-f", str(seed), "-f", str(EXAMPLES / "gitlab" / "secret.yaml"),
         "-f", str(EXAMPLES / "gitlab" / "workflowtemplates.yaml"), "--dry-run", str(out),
         "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1"], cwd=tmp_path)
    proc.wait_line("ready")
    return f"http://127.0.0.1:{port}/push", out, proc


def test_prints_the_contract_lines(seed_up: tuple[str, Path, Any]) -> None:
    url, _, proc = seed_up
    assert proc.lines[0].startswith(("nats: nats://", "data: "))
    assert any(line.startswith("nats: nats://127.0.0.1:") for line in proc.lines)
    assert f"listening: {url} (default/pr)" in proc.lines


def test_opened_merge_request_submits_one_workflow(seed_up: tuple[str, Path, Any]) -> None:
    url, out, _ = seed_up
    assert post(url, merge_request("opened", iid=42, branch="feature/x"), gitlab_headers()) == 200
    [wf] = wait_for(lambda: workflows(out), what="a Workflow in the dry-run folder")
    assert wf["kind"] == "Workflow"
    assert wf["metadata"]["name"].startswith("default-")
    assert wf["metadata"]["labels"] == {"events.argoproj.io/sensor": "default",
                                        "events.argoproj.io/trigger": "argo-workflow-trigger"}
    assert wf["spec"]["workflowTemplateRef"] == {"name": "default"}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "branch", "value": "feature/x"},
                                                     {"name": "pr", "value": "42"}]


def discarded(url: str) -> float:
    metrics = urllib.request.urlopen(url.replace("/push", "/metrics"), timeout=5).read().decode()
    line = next((x for x in metrics.splitlines()
                 if x.startswith('hookgate_events_discarded_total{dependency="pr",sensor="default"}')), "x 0")
    return float(line.split()[-1])


def test_closed_merge_request_is_accepted_and_submits_nothing(seed_up: tuple[str, Path, Any]) -> None:
    url, out, _ = seed_up
    assert post(url, merge_request("closed", iid=7, branch="old"), gitlab_headers()) == 200
    wait_for(lambda: discarded(url) == 1, what="the sensor to discard the closed MR")
    assert post(url, merge_request("opened", iid=8, branch="new"), gitlab_headers()) == 200
    [wf] = wait_for(lambda: workflows(out), what="the opened MR's Workflow")
    assert wf["spec"]["arguments"]["parameters"][1]["value"] == "8"
    assert len(workflows(out)) == 1


@pytest.mark.parametrize("token", ["wrong-token", ""], ids=["wrong token", "empty token"])
def test_bad_token_is_refused_and_creates_nothing(seed_up: tuple[str, Path, Any], token: str) -> None:
    url, out, _ = seed_up
    status = post(url, merge_request("opened", iid=9, branch="x"), gitlab_headers(token))
    assert 400 <= status < 500
    assert post(url, merge_request("opened", iid=10, branch="y"), gitlab_headers()) == 200
    [wf] = wait_for(lambda: workflows(out), what="the good delivery's Workflow")
    assert wf["spec"]["arguments"]["parameters"][1]["value"] == "10"


def test_same_delivery_twice_submits_one_workflow(seed_up: tuple[str, Path, Any]) -> None:
    url, out, _ = seed_up
    body = merge_request("opened", iid=11, branch="dup")
    assert post(url, body, gitlab_headers(key="delivery-11")) == 200
    assert post(url, body, gitlab_headers(key="delivery-11")) == 200
    assert post(url, merge_request("opened", iid=12, branch="next"), gitlab_headers(key="delivery-12")) == 200
    found = wait_for(lambda: (w := workflows(out)) and len(w) >= 2 and w, what="two Workflows")
    assert sorted(w["spec"]["arguments"]["parameters"][1]["value"] for w in found) == ["11", "12"]


def test_restart_on_the_same_data_dir_neither_loses_nor_repeats(tmp_path: Path, hookgate_process: Any) -> None:
    port = free_port()
    es = tmp_path / "es.yaml"
    es.write_text((EXAMPLES / "gitlab" / "eventsource.yaml").read_text().replace('"12000"', f'"{port}"'))
    args = ["up", "-f", str(es), "-f", str(EXAMPLES / "gitlab" / "sensor-merge-request.yaml"),
            "-f", str(EXAMPLES / "gitlab" / "secret.yaml"), "-f", str(EXAMPLES / "gitlab" / "workflowtemplates.yaml"),
            "--dry-run", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1"]
    first = hookgate_process(args, cwd=tmp_path)
    first.wait_line("ready")
    url = f"http://127.0.0.1:{port}/push"
    assert post(url, merge_request("opened", iid=1, branch="a"), gitlab_headers(key="k1")) == 200
    wait_for(lambda: len(workflows(tmp_path / "out")) == 1, what="the first Workflow")
    assert first.stop() == 0
    second = hookgate_process(args, cwd=tmp_path)
    second.wait_line("ready")
    assert post(url, merge_request("opened", iid=1, branch="a"), gitlab_headers(key="k1")) == 200
    assert post(url, merge_request("opened", iid=2, branch="b"), gitlab_headers(key="k2")) == 200
    wait_for(lambda: len(workflows(tmp_path / "out")) == 2, what="the second Workflow")
    assert sorted(w["spec"]["arguments"]["parameters"][1]["value"] for w in workflows(tmp_path / "out")) == ["1", "2"]


def test_log_lines_are_json_and_carry_the_delivery_id(seed_up: tuple[str, Path, Any]) -> None:
    url, out, proc = seed_up
    assert post(url, merge_request("opened", iid=22, branch="x"), gitlab_headers("wrong", key="log-bad-22")) == 403
    assert post(url, merge_request("opened", iid=21, branch="logs"), gitlab_headers(key="log-key-21")) == 200
    wait_for(lambda: workflows(out), what="the Workflow")

    def tagged(key: str, logger: str) -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in list(proc.stderr) if x.startswith("{")]
        return [x for x in lines if x.get("event_id") == key and x["logger"] == logger]

    refused = wait_for(lambda: tagged("log-bad-22", "gateway.server"), what="the refusal, tagged")
    fired = wait_for(lambda: tagged("log-key-21", "sensors.runner"), what="the sensor's line, tagged")
    assert all(set(x) >= {"time", "level", "logger", "msg"} for x in refused + fired)
    assert "403" in refused[0]["msg"]
    assert TOKEN not in "\n".join(proc.stderr) and "wrong" not in "\n".join(proc.stderr)
