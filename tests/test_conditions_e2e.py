"""A multi-dependency Sensor (`a && (b || c)`) end to end over a real nats-server, across a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port, wait_for
from tests.test_up_dry_run import post, workflows

MANIFESTS = """
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: hooks, namespace: default}
spec:
  webhook:
    a: {port: "PORT", endpoint: /a, method: POST}
    b: {port: "PORT", endpoint: /b, method: POST}
    c: {port: "PORT", endpoint: /c, method: POST}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: combo, namespace: default}
spec:
  dependencies:
    - {name: dep-a, eventSourceName: hooks, eventName: a}
    - {name: dep-b, eventSourceName: hooks, eventName: b}
    - {name: dep-c, eventSourceName: hooks, eventName: c}
  triggers:
    - template:
        name: both
        conditions: "dep-a && (dep-b || dep-c)"
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: combo-}
              spec:
                arguments:
                  parameters: [{name: first}, {name: second}]
                workflowTemplateRef: {name: combo}
          parameters:
            - src: {dependencyName: dep-a, dataKey: body.n}
              dest: spec.arguments.parameters.0.value
            - src: {dependencyName: dep-b, dataKey: body.n, value: "none"}
              dest: spec.arguments.parameters.1.value
            - src: {dependencyName: dep-c, dataKey: body.n}
              dest: spec.arguments.parameters.1.value
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: combo, namespace: default}
spec:
  arguments:
    parameters: [{name: first}, {name: second}]
"""


def send(port: int, event: str, n: int, key: str) -> int:
    return post(f"http://127.0.0.1:{port}/{event}", json.dumps({"n": n}).encode(),
                {"Content-Type": "application/json", "Idempotency-Key": key})


def start(tmp_path: Path, hookgate_process: Any, manifests: Path) -> Any:
    proc = hookgate_process(["up", "-f", str(manifests), "--dry-run", str(tmp_path / "out"),
                             "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1"], cwd=tmp_path)
    proc.wait_line("ready")
    return proc


def test_saved_half_survives_a_restart_and_fires_once_with_the_latest(tmp_path: Path, hookgate_process: Any) -> None:
    port = free_port()
    manifests = tmp_path / "combo.yaml"
    manifests.write_text(MANIFESTS.replace("PORT", str(port)))
    first = start(tmp_path, hookgate_process, manifests)
    assert send(port, "a", 1, "a-1") == 200
    assert send(port, "a", 2, "a-2") == 200  # latest event of a dependency wins
    wait_for(lambda: matched(port, "dep-a") == 2, what="the sensor to have saved a's latest event")
    assert first.stop() == 0
    assert workflows(tmp_path / "out") == []

    second = start(tmp_path, hookgate_process, manifests)
    assert send(port, "b", 3, "b-3") == 200
    [wf] = wait_for(lambda: workflows(tmp_path / "out"), what="the Workflow fired by a && b")
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert params == {"first": "2", "second": "3"}
    assert wf["metadata"]["annotations"]["events.hookgate.dev/event-ids"] == "dep-a=a-2,dep-b=b-3"
    # Firing cleared the saved halves: a lone c now waits for a new a.
    assert send(port, "c", 4, "c-4") == 200
    assert send(port, "a", 5, "a-5") == 200
    found = wait_for(lambda: (w := workflows(tmp_path / "out")) and len(w) == 2 and w, what="the second firing")
    seconds = sorted(yaml.safe_dump(w["spec"]["arguments"]["parameters"]) for w in found)
    assert any("value: '4'" in s and "value: '5'" in s for s in seconds)
    assert second.stop() == 0


def matched(port: int, dependency: str) -> int:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    prefix = f'hookgate_events_matched_total{{dependency="{dependency}",sensor="combo"}}'
    line = next((x for x in text.splitlines() if x.startswith(prefix)), "x 0")
    return int(float(line.split()[-1]))
